//! The optional settings file, for what a pipeline sets once rather than on
//! every command line: `$OCIRELAY_CONFIG`, else
//! `$XDG_CONFIG_HOME/ocirelay/config.json`, else
//! `~/.config/ocirelay/config.json`. For example:
//!
//! ```json
//! {"rates": {"registry.example": "100/1m"}, "insecure": ["10.0.0.5:5000"],
//!  "ca-files": ["/etc/ssl/private-ca.pem"]}
//! ```
//!
//! Flags add to it; a `--rate` for a host the file names wins.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use ocirelay_core::rate_limit::RateSpec;

use crate::error::HostError;

/// The file as written (all optional).
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
#[derive(Debug, Default)]
pub struct Settings {
    /// Rate limits, as `--rate`.
    pub rates: Vec<RateSpec>,
    /// Registries spoken to over plain HTTP, as `--insecure`.
    pub insecure: Vec<String>,
    /// CA certificate files, as `--ca-file`.
    pub ca_files: Vec<PathBuf>,
}

impl TryFrom<File> for Settings {
    type Error = ocirelay_core::Error;

    fn try_from(file: File) -> Result<Self, Self::Error> {
        let rates = file
            .rates
            .iter()
            .map(|(host, rate)| RateSpec::parse(&format!("{host}={rate}")))
            .collect::<Result<_, _>>()?;
        Ok(Settings {
            rates,
            insecure: file.insecure,
            ca_files: file.ca_files,
        })
    }
}

fn path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("OCIRELAY_CONFIG") {
        return Some(PathBuf::from(p));
    }
    let base = match std::env::var_os("XDG_CONFIG_HOME") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(std::env::var_os("HOME")?).join(".config"),
    };
    Some(base.join("ocirelay").join("config.json"))
}

/// The settings file, or defaults when there is none. A file that is not
/// valid settings is an error naming it (and, for `$OCIRELAY_CONFIG`, so is
/// a missing one: it was asked for).
pub fn load() -> Result<Settings, HostError> {
    let Some(path) = path() else {
        return Ok(Settings::default());
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e)
            if e.kind() == std::io::ErrorKind::NotFound
                && std::env::var_os("OCIRELAY_CONFIG").is_none() =>
        {
            return Ok(Settings::default())
        }
        Err(e) => {
            return Err(HostError::Usage(format!(
                "settings file {}: {e}",
                path.display()
            )))
        }
    };
    let bad = |e: &dyn std::fmt::Display| {
        HostError::Usage(format!("settings file {}: {e}", path.display()))
    };
    let file: File = serde_json::from_str(&text).map_err(|e| bad(&e))?;
    Settings::try_from(file).map_err(|e| bad(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_refuses_unknown_fields() {
        let file: File = serde_json::from_str(
            r#"{"rates": {"r.example:5000": "10/s"}, "insecure": ["h:1"], "ca-files": ["/x.pem"]}"#,
        )
        .unwrap();
        let s = Settings::try_from(file).unwrap();
        let rates = &s.rates;
        assert_eq!(
            (rates[0].host.as_str(), rates[0].count),
            ("r.example:5000", 10)
        );
        assert_eq!(s.insecure, ["h:1"]);
        assert!(serde_json::from_str::<File>(r#"{"rate": {}}"#).is_err());
        let bad: File = serde_json::from_str(r#"{"rates": {"h": "ten/s"}}"#).unwrap();
        assert!(Settings::try_from(bad).is_err());
    }
}
