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

/// What the settings file holds (all optional).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Settings {
    /// Rate limits: host -> `N/PERIOD`, as `--rate HOST=N/PERIOD`.
    #[serde(default)]
    rates: BTreeMap<String, String>,
    /// Registries spoken to over plain HTTP, as `--insecure`.
    #[serde(default)]
    pub insecure: Vec<String>,
    /// CA certificate files, as `--ca-file`.
    #[serde(default)]
    pub ca_files: Vec<PathBuf>,
}

impl Settings {
    /// The file's rate limits, parsed.
    pub fn rates(&self) -> Result<Vec<RateSpec>, HostError> {
        self.rates
            .iter()
            .map(|(host, rate)| Ok(RateSpec::parse(&format!("{host}={rate}"))?))
            .collect()
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
    let settings: Settings = serde_json::from_str(&text)
        .map_err(|e| HostError::Usage(format!("settings file {}: {e}", path.display())))?;
    // Bad rates are reported now, naming the file.
    settings
        .rates()
        .map_err(|e| HostError::Usage(format!("settings file {}: {e}", path.display())))?;
    Ok(settings)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_refuses_unknown_fields() {
        let s: Settings = serde_json::from_str(
            r#"{"rates": {"r.example:5000": "10/s"}, "insecure": ["h:1"], "ca-files": ["/x.pem"]}"#,
        )
        .unwrap();
        let rates = s.rates().unwrap();
        assert_eq!(
            (rates[0].host.as_str(), rates[0].count),
            ("r.example:5000", 10)
        );
        assert_eq!(s.insecure, ["h:1"]);
        assert!(serde_json::from_str::<Settings>(r#"{"rate": {}}"#).is_err());
        let bad: Settings = serde_json::from_str(r#"{"rates": {"h": "ten/s"}}"#).unwrap();
        assert!(bad.rates().is_err());
    }
}
