//! The distribution-spec endpoints ocirelay uses, and the registry error body.

use serde::Deserialize;

use crate::digest::Digest;

/// `/v2/<repo>/manifests/<tag|digest>`
pub fn manifest_path(repository: &str, object: &str) -> String {
    format!("/v2/{repository}/manifests/{object}")
}

/// `/v2/<repo>/blobs/<digest>`
pub fn blob_path(repository: &str, digest: &Digest) -> String {
    format!("/v2/{repository}/blobs/{digest}")
}

/// The digest a blob read asks for: `/v2/<repo>/blobs/<digest>`, no query.
pub fn blob_digest(path_and_query: &str) -> Option<Digest> {
    let rest = path_and_query.strip_prefix("/v2/")?;
    let (_, digest) = rest.rsplit_once("/blobs/")?;
    Digest::parse(digest).ok()
}

/// The digest an upload's completing `PUT` names: its query's `digest=`
/// (`:` written as itself or as `%3A`), when there is one.
pub fn upload_digest(path_and_query: &str) -> Option<Digest> {
    let (_, query) = path_and_query.split_once('?')?;
    let value = query
        .split('&')
        .find_map(|pair| pair.strip_prefix("digest="))?;
    let decoded = value.replace("%3A", ":").replace("%3a", ":");
    Digest::parse(&decoded).ok()
}

/// The `Content-Range` of a 206 that sends a blob of `size` bytes from
/// byte `offset` to its end; `None` when there is nothing from there.
pub fn rest_range(offset: u64, size: u64) -> Option<String> {
    let last = size.checked_sub(1).filter(|last| offset <= *last)?;
    Some(format!("bytes {offset}-{last}/{size}"))
}

/// `/v2/<repo>/tags/list`, with the page asked for: `n` tags at most,
/// those after `last`.
pub fn tags_path(repository: &str, n: Option<u32>, last: Option<&str>) -> String {
    use crate::percent::encode_query_component;
    let mut query = Vec::new();
    if let Some(n) = n {
        query.push(format!("n={n}"));
    }
    if let Some(last) = last {
        query.push(format!("last={}", encode_query_component(last)));
    }
    let path = format!("/v2/{repository}/tags/list");
    match query.is_empty() {
        true => path,
        false => format!("{path}?{}", query.join("&")),
    }
}

/// `/v2/<repo>/referrers/<digest>`, only those of `artifact_type` when given.
pub fn referrers_path(repository: &str, digest: &Digest, artifact_type: Option<&str>) -> String {
    let path = format!("/v2/{repository}/referrers/{digest}");
    match artifact_type {
        None => path,
        Some(t) => format!(
            "{path}?artifactType={}",
            crate::percent::encode_query_component(t)
        ),
    }
}

/// The target of the `Link` with `rel="next"` among `values` (RFC 8288:
/// `<target>; rel="next"`, several links in a value separated by commas,
/// `rel` quoted or not and possibly listing several relations).
pub fn next_link<'a>(values: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    values.into_iter().find_map(|value| {
        let mut rest = value;
        loop {
            let start = rest.find('<')?;
            let (target, after) = rest[start + 1..].split_once('>')?;
            // This link's parameters run up to the next link.
            let params = &after[..after.find('<').unwrap_or(after.len())];
            let is_next = params.split(';').any(|param| {
                let Some((name, value)) = param.split_once('=') else {
                    return false;
                };
                name.trim().eq_ignore_ascii_case("rel")
                    && value
                        .trim()
                        .trim_end_matches(',')
                        .trim()
                        .trim_matches('"')
                        .split_ascii_whitespace()
                        .any(|rel| rel.eq_ignore_ascii_case("next"))
            });
            if is_next {
                return Some(target);
            }
            rest = after;
        }
    })
}

/// `/v2/<repo>/blobs/uploads/`: starts an upload session.
pub fn upload_path(repository: &str) -> String {
    format!("/v2/{repository}/blobs/uploads/")
}

/// `/v2/<repo>/blobs/uploads/?mount=<digest>&from=<source repo>`: a cross-repository mount.
pub fn mount_path(repository: &str, digest: &Digest, from: &str) -> String {
    format!("/v2/{repository}/blobs/uploads/?mount={digest}&from={from}")
}

/// The upload URL with `digest=` added, for the PUT that completes it.
pub fn with_digest_query(url: &crate::http::Url, digest: &Digest) -> crate::http::Url {
    let mut url = url.clone();
    let sep = if url.path_and_query.contains('?') {
        '&'
    } else {
        '?'
    };
    url.path_and_query = format!("{}{sep}digest={digest}", url.path_and_query);
    url
}

/// Whether a read's answer means that nothing is there (as the original
/// tool reads it): a 404, a 401 or 403 after authentication (a repository
/// these credentials may not see), or an error whose code says so.
pub fn absent(response: &crate::http::Response) -> bool {
    matches!(response.status, 401 | 403 | 404)
        || (!response.is_success() && RegistryError::parse(response.bytes()).is_not_found())
}

/// Error codes that mean "no such object" when a registry answers a read.
pub const NOT_FOUND_CODES: &[&str] = &["BLOB_UNKNOWN", "MANIFEST_UNKNOWN", "NAME_UNKNOWN"];

/// The first error of a registry error body (`{"errors":[{"code","message"}]}`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegistryError {
    /// e.g. `MANIFEST_UNKNOWN`.
    pub code: Option<String>,
    /// Human-readable message.
    pub message: Option<String>,
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    errors: Vec<ErrorEntry>,
}

#[derive(Deserialize)]
struct ErrorEntry {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

impl RegistryError {
    /// Reads the first error of an error body; an unreadable body gives an empty value.
    pub fn parse(body: &[u8]) -> Self {
        serde_json::from_slice::<ErrorBody>(body)
            .ok()
            .and_then(|b| b.errors.into_iter().next())
            .map(|e| RegistryError {
                code: e.code,
                message: e.message,
            })
            .unwrap_or_default()
    }

    /// The code of every error of an error body, in order; none when the
    /// body is not one.
    pub fn codes(body: &[u8]) -> Vec<String> {
        serde_json::from_slice::<ErrorBody>(body)
            .map(|b| b.errors.into_iter().filter_map(|e| e.code).collect())
            .unwrap_or_default()
    }

    /// Whether the code is one of [`NOT_FOUND_CODES`].
    pub fn is_not_found(&self) -> bool {
        self.code
            .as_deref()
            .is_some_and(|c| NOT_FOUND_CODES.contains(&c))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_body() {
        let e = RegistryError::parse(
            br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{}}]}"#,
        );
        assert_eq!(e.code.as_deref(), Some("MANIFEST_UNKNOWN"));
        assert!(e.is_not_found());
        assert_eq!(RegistryError::parse(b"garbage"), RegistryError::default());
        assert!(!RegistryError::parse(br#"{"errors":[{"code":"DENIED"}]}"#).is_not_found());
        let two = br#"{"errors":[{"code":"DIGEST_INVALID"},{"message":"no code"},{"code":"MANIFEST_BLOB_UNKNOWN"}]}"#;
        assert_eq!(
            RegistryError::codes(two),
            ["DIGEST_INVALID", "MANIFEST_BLOB_UNKNOWN"]
        );
        assert!(RegistryError::codes(b"garbage").is_empty());
    }

    #[test]
    fn what_is_absent_to_a_read() {
        let answer = |status, body: &[u8]| crate::http::Response {
            status,
            headers: crate::http::Headers::new(),
            body: crate::http::ResponseBody::Bytes(bytes::Bytes::copy_from_slice(body)),
        };
        for status in [401, 403, 404] {
            assert!(absent(&answer(status, b"")), "{status}");
        }
        let unknown = br#"{"errors":[{"code":"NAME_UNKNOWN"}]}"#;
        assert!(absent(&answer(400, unknown)));
        assert!(
            !absent(&answer(200, unknown)),
            "a found answer whatever its body"
        );
        assert!(!absent(&answer(500, b"")));
        assert!(!absent(&answer(
            416,
            br#"{"errors":[{"code":"RANGE_INVALID"}]}"#
        )));
    }

    #[test]
    fn paths() {
        let d = Digest::sha256(b"");
        assert_eq!(manifest_path("a/b", "latest"), "/v2/a/b/manifests/latest");
        assert_eq!(blob_path("a", &d), format!("/v2/a/blobs/{d}"));
    }

    #[test]
    fn the_rest_of_a_blob_is_a_content_range() {
        assert_eq!(rest_range(4, 10).as_deref(), Some("bytes 4-9/10"));
        assert_eq!(rest_range(9, 10).as_deref(), Some("bytes 9-9/10"));
        assert_eq!(rest_range(10, 10), None);
        assert_eq!(rest_range(0, 0), None);
    }

    #[test]
    fn tag_lists_ask_for_their_page() {
        assert_eq!(tags_path("a/b", None, None), "/v2/a/b/tags/list");
        assert_eq!(tags_path("a", Some(50), None), "/v2/a/tags/list?n=50");
        assert_eq!(
            tags_path("a", Some(2), Some("v1+b:x")),
            "/v2/a/tags/list?n=2&last=v1%2Bb%3Ax"
        );
        assert_eq!(tags_path("a", None, Some("v1")), "/v2/a/tags/list?last=v1");
    }

    #[test]
    fn the_next_link_is_found_among_others() {
        let next = |v: &[&'static str]| next_link(v.iter().copied());
        assert_eq!(
            next(&[r#"</v2/a/tags/list?last=b&n=2>; rel="next""#]),
            Some("/v2/a/tags/list?last=b&n=2")
        );
        assert_eq!(
            next(&[r#"<https://r/p1>; rel="prev", <https://r/p3>; rel=next"#]),
            Some("https://r/p3")
        );
        assert_eq!(
            next(&[
                r#"<https://r/x>; rel="prev""#,
                r#"<https://r/y>; title="a"; REL="last next""#
            ]),
            Some("https://r/y")
        );
        assert_eq!(next(&[r#"<https://r/x>; rel="prev""#]), None);
        assert_eq!(next(&[r#"<https://r/x; rel="next""#]), None);
        assert_eq!(next(&["garbage"]), None);
        assert_eq!(next(&[]), None);
        // `rel="nextpage"` is another relation.
        assert_eq!(next(&[r#"</a>; rel="nextpage""#]), None);
    }

    #[test]
    fn a_blob_read_names_its_digest() {
        let d = Digest::sha256(b"");
        assert_eq!(blob_digest(&blob_path("a/b", &d)), Some(d.clone()));
        // Not a blob read: an upload, a manifest, a query, another prefix.
        assert_eq!(blob_digest(&upload_path("a")), None);
        assert_eq!(blob_digest(&manifest_path("a", &d.to_string())), None);
        assert_eq!(blob_digest(&format!("{}?x=1", blob_path("a", &d))), None);
        assert_eq!(blob_digest(&format!("/cdn/a/blobs/{d}")), None);
    }
}
