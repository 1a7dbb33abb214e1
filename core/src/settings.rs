//! The settings file's format, for what a pipeline sets once rather than on
//! every command line. For example:
//!
//! ```json
//! {"rates": {"registry.example": "100/1m"}, "insecure": ["10.0.0.5:5000"],
//!  "ca-files": ["/etc/ssl/private-ca.pem"]}
//! ```
//!
//! Parsing only: where the file is and what a flag overrides are a host's.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::rate_limit::RateSpec;

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
        Ok(Settings {
            rates,
            insecure: file.insecure,
            ca_files: file.ca_files,
        })
    }
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
}
