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
    #[serde(default)]
    pub schema_version: u32,
    /// OCI index or Docker manifest list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// An artifact's type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// The entries.
    #[serde(default)]
    pub manifests: Vec<Descriptor>,
    /// What this index refers to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    /// Annotations, sorted by key.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
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
