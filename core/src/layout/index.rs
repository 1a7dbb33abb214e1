//! An OCI image layout's `oci-layout` and `index.json`, as the image spec
//! has them: which manifests the layout holds, and under which names
//! (`org.opencontainers.image.ref.name`). Entries are kept as read, fields
//! we do not know included, so that what skopeo or oras wrote survives our
//! writes.

use serde_json::{Map, Value};

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::media_type::OCI_INDEX;
use crate::reference::is_valid_tag;

/// The file that marks a directory as a layout.
pub const LAYOUT_FILE: &str = "oci-layout";
/// What a new layout's `oci-layout` says.
pub const LAYOUT_FILE_TEXT: &str = "{\"imageLayoutVersion\":\"1.0.0\"}";
/// The layout's list of manifests.
pub const INDEX_FILE: &str = "index.json";
/// The annotation that names an entry (skopeo's and oras's tag).
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// Checks an `oci-layout` file's content: version 1.x.
pub fn check_layout_file(bytes: &[u8]) -> Result<()> {
    let bad = |why: &str| Error::InvalidInput(format!("{LAYOUT_FILE}: {why}"));
    let value: Value = serde_json::from_slice(bytes).map_err(|e| bad(&e.to_string()))?;
    match value.get("imageLayoutVersion").and_then(Value::as_str) {
        Some(v) if v.starts_with("1.") => Ok(()),
        Some(v) => Err(bad(&format!("imageLayoutVersion {v:?} is not 1.x"))),
        None => Err(bad("no imageLayoutVersion")),
    }
}

/// One manifest the layout lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Its media type, as listed.
    pub media_type: String,
    /// Its digest.
    pub digest: Digest,
    /// Its size in bytes.
    pub size: u64,
    /// Its name (`org.opencontainers.image.ref.name`), if any.
    pub name: Option<String>,
}

/// A layout's `index.json`: its entries, in order, and every other field.
#[derive(Debug, Clone, PartialEq)]
pub struct LayoutIndex {
    /// The document's fields other than `manifests`.
    fields: Map<String, Value>,
    /// Each entry as read (unknown fields kept) with what we use of it.
    manifests: Vec<(Map<String, Value>, Entry)>,
}

impl Default for LayoutIndex {
    fn default() -> Self {
        let mut fields = Map::new();
        fields.insert("schemaVersion".into(), Value::from(2));
        fields.insert("mediaType".into(), Value::from(OCI_INDEX));
        LayoutIndex {
            fields,
            manifests: Vec::new(),
        }
    }
}

impl LayoutIndex {
    /// Reads `index.json`; an error names the field that is wrong
    /// (`index.json: manifests[2].digest: …`).
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        let bad = |at: &str, why: &str| Error::InvalidInput(format!("{INDEX_FILE}: {at}{why}"));
        let value: Value = serde_json::from_slice(bytes).map_err(|e| bad("", &e.to_string()))?;
        let Value::Object(mut fields) = value else {
            return Err(bad("", "not a JSON object"));
        };
        if fields.get("schemaVersion").and_then(Value::as_u64) != Some(2) {
            return Err(bad("schemaVersion: ", "not 2"));
        }
        let listed = match fields.remove("manifests") {
            Some(Value::Array(list)) => list,
            Some(Value::Null) | None => Vec::new(),
            Some(_) => return Err(bad("manifests: ", "not a list")),
        };
        let mut manifests = Vec::with_capacity(listed.len());
        for (i, item) in listed.into_iter().enumerate() {
            let at = format!("manifests[{i}]");
            let Value::Object(map) = item else {
                return Err(bad(&at, ": not an object"));
            };
            let text = |key: &str| map.get(key).and_then(Value::as_str);
            let media_type = text("mediaType")
                .ok_or_else(|| bad(&format!("{at}.mediaType"), ": missing"))?
                .to_string();
            let digest = text("digest")
                .ok_or_else(|| bad(&format!("{at}.digest"), ": missing"))
                .and_then(|d| {
                    Digest::parse(d).map_err(|e| bad(&format!("{at}.digest: "), &e.to_string()))
                })?;
            let size = map
                .get("size")
                .and_then(Value::as_u64)
                .ok_or_else(|| bad(&format!("{at}.size"), ": not a size"))?;
            let name = map
                .get("annotations")
                .and_then(|a| a.get(REF_NAME))
                .and_then(Value::as_str)
                .map(str::to_string);
            let entry = Entry {
                media_type,
                digest,
                size,
                name,
            };
            manifests.push((map, entry));
        }
        Ok(LayoutIndex { fields, manifests })
    }

    /// The document as JSON, entries in their order.
    pub fn to_json(&self) -> Vec<u8> {
        let mut doc = self.fields.clone();
        let list = self
            .manifests
            .iter()
            .map(|(map, _)| Value::Object(map.clone()));
        doc.insert("manifests".into(), Value::Array(list.collect()));
        // A map of JSON values always serializes.
        serde_json::to_vec_pretty(&Value::Object(doc)).unwrap_or_default()
    }

    /// Every entry, in order.
    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.manifests.iter().map(|(_, e)| e)
    }

    /// The entry named `tag` (the last one, should several be).
    pub fn find(&self, tag: &str) -> Option<&Entry> {
        self.entries()
            .filter(|e| e.name.as_deref() == Some(tag))
            .last()
    }

    /// The entry of `digest`, if listed.
    pub fn find_digest(&self, digest: &Digest) -> Option<&Entry> {
        self.entries().find(|e| &e.digest == digest)
    }

    /// The names that are tags as the distribution API has them, sorted,
    /// each once (other names, such as `docker.io/library/a:1`, are left
    /// out: no registry client could ask for them).
    pub fn tags(&self) -> Vec<String> {
        let mut tags: Vec<String> = self
            .entries()
            .filter_map(|e| e.name.clone())
            .filter(|n| is_valid_tag(n))
            .collect();
        tags.sort();
        tags.dedup();
        tags
    }

    /// Lists the manifest (`media_type`, `digest`, `size`) under `tag`,
    /// which no other entry keeps; or, with no tag, lists it unnamed unless
    /// it is listed already. Returns whether anything changed.
    pub fn put(&mut self, tag: Option<&str>, media_type: &str, digest: &Digest, size: u64) -> bool {
        let entry = Entry {
            media_type: media_type.to_string(),
            digest: digest.clone(),
            size,
            name: tag.map(str::to_string),
        };
        match tag {
            Some(tag) => {
                if self.find(tag) == Some(&entry) {
                    return false;
                }
                self.manifests
                    .retain(|(_, e)| e.name.as_deref() != Some(tag));
            }
            None if self.find_digest(digest).is_some() => return false,
            None => {}
        }
        let mut map = Map::new();
        map.insert("mediaType".into(), Value::from(media_type));
        map.insert("digest".into(), Value::from(digest.to_string()));
        map.insert("size".into(), Value::from(size));
        if let Some(tag) = tag {
            let mut annotations = Map::new();
            annotations.insert(REF_NAME.into(), Value::from(tag));
            map.insert("annotations".into(), Value::Object(annotations));
        }
        self.manifests.push((map, entry));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SKOPEO: &str = r#"{"schemaVersion":2,"manifests":[
        {"mediaType":"application/vnd.oci.image.manifest.v1+json",
         "digest":"sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
         "size":7,"annotations":{"org.opencontainers.image.ref.name":"v1","x":"kept"},
         "platform":{"os":"linux","architecture":"amd64"}},
        {"mediaType":"application/vnd.oci.image.index.v1+json",
         "digest":"sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb","size":9},
        {"mediaType":"application/vnd.oci.image.manifest.v1+json",
         "digest":"sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc",
         "size":3,"annotations":{"org.opencontainers.image.ref.name":"docker.io/x:1"}}],
        "annotations":{"made-by":"skopeo"}}"#;

    fn digest(c: char) -> Digest {
        Digest::parse(&format!("sha256:{}", c.to_string().repeat(64))).unwrap()
    }

    #[test]
    fn reads_names_and_keeps_what_it_does_not_know() {
        let mut index = LayoutIndex::parse(SKOPEO.as_bytes()).unwrap();
        assert_eq!(index.find("v1").map(|e| e.size), Some(7));
        assert_eq!(
            index.tags(),
            vec!["v1"],
            "a name no client can ask for is no tag"
        );
        assert!(index.find_digest(&digest('b')).is_some());
        assert!(index.put(Some("v2"), OCI_INDEX, &digest('d'), 4));
        let again = LayoutIndex::parse(&index.to_json()).unwrap();
        assert_eq!(again, index);
        let text = String::from_utf8(index.to_json()).unwrap();
        assert!(text.contains("\"made-by\"") && text.contains("\"kept\""));
        assert!(text.contains("\"platform\""), "{text}");
        assert_eq!(again.tags(), vec!["v1", "v2"]);
    }

    #[test]
    fn a_tag_names_one_entry_and_an_unnamed_put_lists_once() {
        let mut index = LayoutIndex::default();
        assert!(index.put(Some("v1"), OCI_INDEX, &digest('a'), 1));
        assert!(
            !index.put(Some("v1"), OCI_INDEX, &digest('a'), 1),
            "same again"
        );
        assert!(index.put(Some("v1"), OCI_INDEX, &digest('b'), 2), "moved");
        assert_eq!(index.entries().count(), 1);
        assert_eq!(index.find("v1").unwrap().digest, digest('b'));
        assert!(
            !index.put(None, OCI_INDEX, &digest('b'), 2),
            "listed already"
        );
        assert!(index.put(None, OCI_INDEX, &digest('c'), 3));
        assert_eq!(index.entries().count(), 2);
        assert_eq!(index.tags(), vec!["v1"]);
    }

    #[test]
    fn a_bad_index_names_the_field() {
        for (text, names) in [
            ("[]", "not a JSON object"),
            ("{\"schemaVersion\":1}", "schemaVersion"),
            ("{\"schemaVersion\":2,\"manifests\":{}}", "manifests: not a list"),
            (
                "{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"t\",\"size\":1,\"digest\":\"sha256:12\"}]}",
                "manifests[0].digest",
            ),
            (
                "{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"t\",\"digest\":\"sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}]}",
                "manifests[0].size",
            ),
            ("{\"schemaVersion\":2,\"manifests\":[{}]}", "manifests[0].mediaType"),
            ("{\"schemaVersion\":2,", "index.json: "),
        ] {
            let e = LayoutIndex::parse(text.as_bytes()).unwrap_err().to_string();
            assert!(e.contains(names) && e.contains(INDEX_FILE), "{text}: {e}");
        }
        assert!(LayoutIndex::parse(b"{\"schemaVersion\":2}").is_ok());
    }

    #[test]
    fn the_layout_file_is_version_1() {
        assert!(check_layout_file(LAYOUT_FILE_TEXT.as_bytes()).is_ok());
        assert!(check_layout_file(b"{\"imageLayoutVersion\":\"2.0.0\"}").is_err());
        assert!(check_layout_file(b"{}").is_err());
        assert!(check_layout_file(b"x").is_err());
    }
}
