//! Image indexes (OCI index, Docker manifest list) and the image-config
//! fields a platform is read from.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::descriptor::Descriptor;
use crate::platform::Platform;

/// An image index, in the OCI JSON shape (field order as the image spec's
/// Go types write it).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    /// 2 for every index we produce; 0 when absent in what we read.
    #[serde(default, deserialize_with = "crate::json::nullable")]
    pub schema_version: u32,
    /// OCI index or Docker manifest list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// An artifact's type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// The entries.
    #[serde(default, deserialize_with = "crate::json::nullable")]
    pub manifests: Vec<Descriptor>,
    /// What this index refers to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    /// Annotations, sorted by key.
    #[serde(
        default,
        deserialize_with = "crate::json::nullable",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub annotations: BTreeMap<String, String>,
}

/// The platform fields of an image config (OCI or Docker); they sit at its
/// top level with the same names as in a platform object.
pub fn config_platform(config: &[u8]) -> Result<Platform, serde_json::Error> {
    serde_json::from_slice(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platform_from_config() {
        let p = config_platform(
            br#"{"architecture":"arm","os":"linux","variant":"v7","os.version":"x","rootfs":{}}"#,
        )
        .unwrap();
        assert_eq!(
            p,
            Platform {
                os_version: Some("x".into()),
                ..Platform::new("linux", "arm", Some("v7"))
            }
        );
        assert_eq!(config_platform(b"{}").unwrap(), Platform::default());
        assert!(config_platform(b"nope").is_err());
    }

    /// Registries serve `null` for optional lists, maps and strings (Go
    /// writes empty ones so); the original reads them as empty, and so do we.
    #[test]
    fn nulls_read_as_empty_where_the_original_reads_them_so() {
        let i: Index = serde_json::from_str(
            r#"{"schemaVersion":null,"mediaType":null,"manifests":[{"mediaType":null,
                "digest":"sha256:9ef42f1d602fb423fad935aac1caa0cfdbce1ad7edce64d080a4eb7b13f7cd9d","size":1,
                "urls":null,"annotations":null,"platform":{"architecture":null,"os":"linux","os.features":null,
                "variant":null}}],"annotations":null}"#,
        )
        .unwrap();
        assert_eq!(i.manifests[0].platform.as_ref().unwrap().os, "linux");
        assert!(i.manifests[0].annotations.is_empty() && i.annotations.is_empty());
        let none: Index = serde_json::from_str(r#"{"manifests":null}"#).unwrap();
        assert!(none.manifests.is_empty());
        let children = crate::manifest::ManifestChildren::parse(
            br#"{"config":null,"layers":null,"manifests":null}"#,
        )
        .unwrap();
        assert_eq!(children, crate::manifest::ManifestChildren::default());
        assert_eq!(
            config_platform(br#"{"architecture":null,"os":null,"os.features":null}"#).unwrap(),
            Platform::default()
        );
    }

    #[test]
    fn index_round_trip_omits_empty_fields() {
        let i: Index = serde_json::from_str(r#"{"manifests":[]}"#).unwrap();
        assert_eq!(i.schema_version, 0);
        assert_eq!(
            serde_json::to_string(&i).unwrap(),
            r#"{"schemaVersion":0,"manifests":[]}"#
        );
    }
}
