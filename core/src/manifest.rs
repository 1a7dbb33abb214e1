//! The children of any manifest or index: what must exist before it can be
//! pushed, read tolerantly from whatever JSON a registry serves.

use serde::Deserialize;

use crate::descriptor::Descriptor;
use crate::error::{Error, Result};

/// The potential child objects of a manifest: entries of an index, or the
/// config and layers of an image manifest. Absent fields are empty.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct ManifestChildren {
    /// Index entries.
    #[serde(default, deserialize_with = "crate::json::nullable")]
    pub manifests: Vec<Descriptor>,
    /// The image config, when there is one.
    #[serde(default)]
    pub config: Option<Descriptor>,
    /// Image layers.
    #[serde(default, deserialize_with = "crate::json::nullable")]
    pub layers: Vec<Descriptor>,
}

impl ManifestChildren {
    /// Parses the children of `manifest`; non-JSON (or JSON that is not an
    /// object) is an error, unknown fields are ignored.
    pub fn parse(manifest: &[u8]) -> Result<Self> {
        serde_json::from_slice(manifest).map_err(|e| {
            Error::InvalidInput(format!(
                "manifest is not a JSON object of manifest shape: {e}"
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_index_and_image_manifest() {
        let d = crate::digest::Digest::sha256(b"x");
        let index = format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"a","digest":"{d}","size":1,"platform":{{"architecture":"amd64","os":"linux"}}}}]}}"#
        );
        let c = ManifestChildren::parse(index.as_bytes()).unwrap();
        assert_eq!(c.manifests.len(), 1);
        assert!(c.config.is_none());
        assert!(c.layers.is_empty());

        let image = format!(
            r#"{{"config":{{"mediaType":"c","digest":"{d}","size":1}},"layers":[{{"mediaType":"l","digest":"{d}","size":1}},{{"mediaType":"l","digest":"{d}","size":1,"urls":["http://x"]}}],"extra":true}}"#
        );
        let c = ManifestChildren::parse(image.as_bytes()).unwrap();
        assert_eq!(c.config.unwrap().media_type, "c");
        assert_eq!(c.layers.len(), 2);
        assert_eq!(c.layers[1].urls, vec!["http://x".to_string()]);
    }

    #[test]
    fn tolerant_of_anything_json_object_but_not_of_non_json() {
        assert_eq!(
            ManifestChildren::parse(b"{}").unwrap(),
            ManifestChildren::default()
        );
        assert!(ManifestChildren::parse(b"not json").is_err());
        assert!(ManifestChildren::parse(b"[1,2]").is_err());
    }
}
