//! The settings file's format, for what a pipeline sets once rather than on
//! every command line. For example:
//!
//! ```json
//! {"rates": {"registry.example": "100/1m"}, "insecure": ["10.0.0.5:5000"],
//!  "ca-files": ["/etc/ssl/private-ca.pem"],
//!  "uploads": {"registry.example": {"chunk-size": "16MiB", "monolithic-up-to": "64MiB"},
//!              "*": {"monolithic-up-to": "any"}}}
//! ```
//!
//! Parsing only: where the file is and what a flag overrides are a host's.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::rate_limit::RateSpec;
use crate::upload::parse_size;

/// The file as written (all optional; an unknown field is a mistake).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct File {
    /// Rate limits: host -> `N/PERIOD`, as `--rate HOST=N/PERIOD`.
    #[serde(default)]
    rates: BTreeMap<String, String>,
    #[serde(default)]
    insecure: Vec<String>,
    #[serde(default)]
    ca_files: Vec<PathBuf>,
    /// Upload rules: registry (or `*`) -> sizes.
    #[serde(default)]
    uploads: BTreeMap<String, UploadFields>,
}

/// One registry's upload rule as written; a size is bytes, or text with a
/// unit (`16MiB`), or `any`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct UploadFields {
    chunk_size: Option<Size>,
    monolithic_up_to: Option<Size>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Size {
    Bytes(u64),
    Text(String),
}

/// One registry's upload rule from the settings file (0: the default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadSetting {
    /// The registry host, or `*`.
    pub registry: String,
    /// Bytes per PATCH chunk.
    pub chunk_size: u64,
    /// Blobs up to this size go in one PUT.
    pub monolithic_up_to: u64,
}

/// The settings, parsed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Rate limits, as `--rate`.
    pub rates: Vec<RateSpec>,
    /// Registries spoken to over plain HTTP, as `--insecure`.
    pub insecure: Vec<String>,
    /// CA certificate files, as `--ca-file`.
    pub ca_files: Vec<PathBuf>,
    /// How blobs go up to registries.
    pub uploads: Vec<UploadSetting>,
}

impl Settings {
    /// Parses a settings file's text; an error names the field at fault.
    pub fn parse(text: &str) -> Result<Self> {
        let file: File = crate::json::from_str_naming_field(text)
            .map_err(|e| Error::InvalidInput(format!("not ocirelay settings: {e}")))?;
        let rates = file
            .rates
            .iter()
            .map(|(host, rate)| RateSpec::parse(&format!("{host}={rate}")))
            .collect::<Result<_>>()?;
        let uploads = file
            .uploads
            .iter()
            .map(|(registry, f)| {
                let size = |field: &str, v: &Option<Size>| match v {
                    None => Ok(0),
                    Some(Size::Bytes(0)) => Err(bad_size(registry, field, "0")),
                    Some(Size::Bytes(n)) => Ok(*n),
                    Some(Size::Text(t)) => parse_size(t)
                        .filter(|n| *n > 0)
                        .ok_or_else(|| bad_size(registry, field, t)),
                };
                Ok(UploadSetting {
                    registry: registry.clone(),
                    chunk_size: size("chunk-size", &f.chunk_size)?,
                    monolithic_up_to: size("monolithic-up-to", &f.monolithic_up_to)?,
                })
            })
            .collect::<Result<_>>()?;
        Ok(Settings {
            rates,
            insecure: file.insecure,
            ca_files: file.ca_files,
            uploads,
        })
    }
}

fn bad_size(registry: &str, field: &str, value: &str) -> Error {
    Error::InvalidInput(format!(
        "settings: uploads.{registry}.{field}: {value:?} is not a size (bytes, or as 16MiB, 1GiB, any)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_refuses_unknown_fields() {
        let s = Settings::parse(
            r#"{"rates": {"r.example:5000": "10/s"}, "insecure": ["h:1"], "ca-files": ["/x.pem"]}"#,
        )
        .unwrap();
        let rates = &s.rates;
        assert_eq!(
            (rates[0].host.as_str(), rates[0].count),
            ("r.example:5000", 10)
        );
        assert_eq!(s.insecure, ["h:1"]);
        assert_eq!(s.ca_files, [PathBuf::from("/x.pem")]);
        let e = Settings::parse(r#"{"rate": {}}"#).unwrap_err().to_string();
        assert!(e.contains("unknown field `rate`"), "{e}");
        let e = Settings::parse(r#"{"insecure": "h:1"}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("insecure: invalid type: string"), "{e}");
        let e = Settings::parse(r#"{"rates": {"h": 10}}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("rates.h: invalid type: integer"), "{e}");
        let e = Settings::parse(r#"{"rates": {"h": "ten/s"}}"#).unwrap_err();
        assert!(e.to_string().contains("\"h=ten/s\""), "{e}");
        assert_eq!(Settings::parse("{}").unwrap(), Settings::default());
    }

    #[test]
    fn upload_rules_take_sizes_with_units_and_name_a_bad_one() {
        let s = Settings::parse(
            r#"{"uploads": {"r:5000": {"chunk-size": "16MiB", "monolithic-up-to": 1000},
                            "*": {"monolithic-up-to": "any"}}}"#,
        )
        .unwrap();
        let by = |r: &str| s.uploads.iter().find(|u| u.registry == r).cloned().unwrap();
        assert_eq!(
            (by("r:5000").chunk_size, by("r:5000").monolithic_up_to),
            (16 << 20, 1000)
        );
        assert_eq!(
            (by("*").chunk_size, by("*").monolithic_up_to),
            (0, u64::MAX)
        );
        for (bad, named) in [
            (
                r#"{"uploads": {"r": {"chunk-size": "lots"}}}"#,
                "uploads.r.chunk-size: \"lots\"",
            ),
            (
                r#"{"uploads": {"r": {"chunk-size": 0}}}"#,
                "uploads.r.chunk-size: \"0\"",
            ),
            (
                r#"{"uploads": {"r": {"chunk": "1MiB"}}}"#,
                "unknown field `chunk`",
            ),
        ] {
            let e = Settings::parse(bad).unwrap_err().to_string();
            assert!(e.contains(named), "{e}");
        }
    }
}
