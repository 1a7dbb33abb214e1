//! What a layout answered as a registry says: every status, header and
//! error a host sends for a layout, decided here from what the request
//! asked and what the files hold, as distribution would answer. The host
//! reads and writes the files and moves the bytes.

use crate::digest::Digest;
use crate::layout::request::{Object, Refusal};
use crate::manifest::ManifestChildren;
use crate::media_type::{OCI_INDEX, OCI_MANIFEST, OCTET_STREAM};
use crate::range::ByteRange;
pub use crate::service::reply::Head;

/// The largest manifest a layout takes or serves (the cache's limit).
pub const MANIFEST_LIMIT: u64 = 4 * 1024 * 1024;

/// Why the layout's files could not do what was asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trouble {
    /// A read or a write failed (a full disk, permissions): not retried,
    /// a full disk stays full.
    Io,
    /// The layout's files are not sound (found mid-run).
    Unsound,
    /// Bytes are not what they were sent as.
    Mismatch,
}

/// A JSON answer of `status`.
pub fn json(status: u16, body: String) -> (Head, String) {
    let mut head = Head::new(status);
    if !body.is_empty() {
        head = head.with("content-type", "application/json");
    }
    (head.with("content-length", body.len().to_string()), body)
}

/// The distribution API's error document for `refusal`.
pub fn refused(refusal: &Refusal) -> (Head, String) {
    json(refusal.status, refusal.body())
}

/// What a failure of the layout's files (`trouble`, said by `message`,
/// which names the file) answers.
pub fn trouble(trouble: Trouble, message: String) -> (Head, String) {
    let (status, code) = match trouble {
        Trouble::Io => (507, "UNKNOWN"),
        Trouble::Unsound => (500, "UNKNOWN"),
        Trouble::Mismatch => (400, "DIGEST_INVALID"),
    };
    refused(&Refusal::new(status, code, message))
}

/// A manifest's head: its media type, length and digest.
pub fn manifest(digest: &Digest, media_type: &str, length: u64) -> Head {
    Head::new(200)
        .with("content-type", media_type)
        .with("content-length", length.to_string())
        .with("docker-content-digest", digest.to_string())
}

/// A manifest's media type from its own `mediaType`, else from its shape.
pub fn media_type_of(bytes: &[u8]) -> String {
    let value: serde_json::Value = serde_json::from_slice(bytes).unwrap_or_default();
    match value.get("mediaType").and_then(|m| m.as_str()) {
        Some(m) => m.to_string(),
        None if value.get("manifests").is_some() => OCI_INDEX.to_string(),
        None => OCI_MANIFEST.to_string(),
    }
}

/// A manifest to store, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Storing {
    /// Its digest.
    pub digest: Digest,
    /// Its media type (the request's `Content-Type`, else its own).
    pub media_type: String,
    /// Whether it is listed in `index.json`: under its tag; or unnamed
    /// when it has a `subject`, where tools reading the layout (oras)
    /// find referrers; else not at all (a child of an index).
    pub listed: Listed,
}

/// How a stored manifest is listed in `index.json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listed {
    /// Under this tag.
    Named(String),
    /// Without a name (a referrer).
    Unnamed,
    /// Not at all.
    No,
}

/// Checks a manifest put as `object` (its bytes hash to a digest put by
/// digest, and everything it names is in the layout: `has`) and says how
/// it is stored; or the refusal.
pub fn storing(
    object: &Object,
    bytes: &[u8],
    content_type: Option<&str>,
    has: impl Fn(&Digest) -> bool,
) -> Result<Storing, Refusal> {
    let digest = match object {
        Object::Digest(d) => {
            let actual = Digest::of(d.algorithm(), bytes);
            if &actual != d {
                return Err(Refusal::new(
                    400,
                    "DIGEST_INVALID",
                    format!("the manifest put as {d} is {actual}"),
                ));
            }
            actual
        }
        Object::Tag(_) => Digest::sha256(bytes),
    };
    let children = ManifestChildren::parse(bytes)
        .map_err(|e| Refusal::new(400, "MANIFEST_INVALID", e.to_string()))?;
    let named = children
        .manifests
        .iter()
        .chain(children.config.iter())
        .chain(children.layers.iter().filter(|l| l.urls.is_empty()));
    if let Some(missing) = named.map(|c| &c.digest).find(|d| !has(d)) {
        return Err(Refusal::new(
            400,
            "MANIFEST_BLOB_UNKNOWN",
            format!("{missing}: not in the layout"),
        ));
    }
    let subject = serde_json::from_slice::<serde_json::Value>(bytes)
        .ok()
        .and_then(|v| v.get("subject").cloned());
    let listed = match object {
        Object::Tag(tag) => Listed::Named(tag.clone()),
        Object::Digest(_) if subject.is_some() => Listed::Unnamed,
        Object::Digest(_) => Listed::No,
    };
    Ok(Storing {
        digest,
        media_type: content_type.map_or_else(|| media_type_of(bytes), str::to_string),
        listed,
    })
}

/// A 201 for what is now stored at `location`.
pub fn created(location: String, digest: &Digest) -> Head {
    Head::new(201)
        .with("content-length", "0")
        .with("location", location)
        .with("docker-content-digest", digest.to_string())
}

/// Which bytes of a blob of `size` go out for `range`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobPart {
    /// The answer's head (200 or 206).
    pub head: Head,
    /// The first byte sent.
    pub first: u64,
    /// How many bytes are sent.
    pub length: u64,
}

/// The answer to a read of blob `digest` (`size` bytes), whole or the
/// `range` asked for; a range outside it is a 416.
pub fn blob(
    digest: &Digest,
    size: u64,
    range: Option<ByteRange>,
) -> Result<BlobPart, (Head, String)> {
    let (status, first, last) = match range.map(|r| r.resolve(size)) {
        None => (200, 0, size.saturating_sub(1)),
        Some(Some((first, last))) => (206, first, last),
        Some(None) => {
            let (head, body) = refused(&Refusal::new(
                416,
                "BLOB_UNKNOWN",
                format!("{digest}: no such range of {size} bytes"),
            ));
            return Err((head.with("content-range", format!("bytes */{size}")), body));
        }
    };
    let length = if size == 0 { 0 } else { last - first + 1 };
    let mut head = Head::new(status)
        .with("content-type", OCTET_STREAM)
        .with("content-length", length.to_string())
        .with("docker-content-digest", digest.to_string());
    if status == 206 {
        head = head.with("content-range", format!("bytes {first}-{last}/{size}"));
    }
    Ok(BlobPart {
        head,
        first,
        length,
    })
}

/// Where upload `id` of repository `name` stands: `size` bytes taken.
pub fn upload_state(name: &str, id: &str, size: u64, status: u16) -> Head {
    Head::new(status)
        .with("content-length", "0")
        .with("location", format!("/v2/{name}/blobs/uploads/{id}"))
        .with("docker-upload-uuid", id)
        .with("range", format!("0-{}", size.saturating_sub(1)))
}

/// A page of repository `name`'s tags (`all`, sorted): those after
/// `last`, `n` at most, with a `Link` to the next page when there is one.
pub fn tags_page(
    name: &str,
    all: &[String],
    n: Option<usize>,
    last: Option<&str>,
) -> (Head, String) {
    let after: Vec<&String> = all
        .iter()
        .filter(|t| last.is_none_or(|l| t.as_str() > l))
        .collect();
    let page: Vec<&String> = after
        .iter()
        .copied()
        .take(n.unwrap_or(usize::MAX))
        .collect();
    let body = serde_json::json!({"name": name, "tags": page}).to_string();
    let (mut head, body) = json(200, body);
    if let (Some(n), Some(end)) = (n, page.last()) {
        if after.len() > page.len() {
            let link = format!("</v2/{name}/tags/list?last={end}&n={n}>; rel=\"next\"");
            head = head.with("link", link);
        }
    }
    (head, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(bytes: &[u8]) -> Digest {
        Digest::sha256(bytes)
    }

    #[test]
    fn tags_are_paged_as_distribution_pages_them() {
        let all: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        let (head, body) = tags_page("r", &all, Some(2), None);
        assert!(body.contains(r#"["a","b"]"#), "{body}");
        assert_eq!(
            head.get("link"),
            Some("</v2/r/tags/list?last=b&n=2>; rel=\"next\"")
        );
        let (head, body) = tags_page("r", &all, Some(2), Some("b"));
        assert!(
            body.contains(r#"["c"]"#) && head.get("link").is_none(),
            "{body}"
        );
        let (_, body) = tags_page("r", &all, None, None);
        assert!(body.contains(r#"["a","b","c"]"#));
    }

    #[test]
    fn a_blob_read_is_whole_a_part_or_a_416() {
        let digest = d(b"layer");
        let whole = blob(&digest, 5, None).unwrap();
        assert_eq!((whole.head.status, whole.first, whole.length), (200, 0, 5));
        let part = blob(&digest, 5, ByteRange::parse("bytes=2-")).unwrap();
        assert_eq!((part.head.status, part.first, part.length), (206, 2, 3));
        assert_eq!(part.head.get("content-range"), Some("bytes 2-4/5"));
        let (head, body) = blob(&digest, 5, ByteRange::parse("bytes=9-")).unwrap_err();
        assert_eq!(
            (head.status, head.get("content-range")),
            (416, Some("bytes */5"))
        );
        assert!(body.contains("BLOB_UNKNOWN"));
    }

    #[test]
    fn a_manifest_is_stored_only_whole_and_with_what_it_names() {
        let config = d(b"{}");
        let manifest = format!(
            r#"{{"schemaVersion":2,"config":{{"mediaType":"c","digest":"{config}","size":2}},"layers":[]}}"#
        );
        let tag = Object::Tag("v1".into());
        let refused = storing(&tag, manifest.as_bytes(), None, |_| false).unwrap_err();
        assert_eq!(refused.code, "MANIFEST_BLOB_UNKNOWN");
        let stored = storing(&tag, manifest.as_bytes(), None, |_| true).unwrap();
        assert_eq!(stored.listed, Listed::Named("v1".into()));
        assert_eq!(stored.media_type, OCI_MANIFEST);
        let wrong = Object::Digest(d(b"other"));
        let refused = storing(&wrong, manifest.as_bytes(), None, |_| true).unwrap_err();
        assert_eq!(refused.code, "DIGEST_INVALID");
        let child = Object::Digest(d(manifest.as_bytes()));
        let stored = storing(&child, manifest.as_bytes(), Some("t"), |_| true).unwrap();
        assert_eq!(
            (stored.listed, stored.media_type.as_str()),
            (Listed::No, "t")
        );
        let referrer = manifest.replacen(
            '{',
            &format!(r#"{{"subject":{{"mediaType":"m","digest":"{config}","size":2}},"#),
            1,
        );
        let stored = storing(
            &Object::Digest(d(referrer.as_bytes())),
            referrer.as_bytes(),
            None,
            |_| true,
        )
        .unwrap();
        assert_eq!(stored.listed, Listed::Unnamed);
        assert_eq!(
            storing(&tag, b"[", None, |_| true).unwrap_err().code,
            "MANIFEST_INVALID"
        );
    }

    #[test]
    fn troubles_answer_by_kind() {
        assert_eq!(trouble(Trouble::Io, "f: full".into()).0.status, 507);
        assert_eq!(trouble(Trouble::Unsound, "f".into()).0.status, 500);
        let (head, body) = trouble(Trouble::Mismatch, "f".into());
        assert_eq!(head.status, 400);
        assert!(body.contains("DIGEST_INVALID"));
    }
}
