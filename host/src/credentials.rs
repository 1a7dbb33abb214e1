//! Registry credentials from the docker client's config
//! (`$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`): the `auths`
//! entries. Secrets are handed to the component and never printed.

use std::collections::BTreeMap;
use std::path::PathBuf;

use base64::Engine as _;
use serde::Deserialize;

use crate::error::HostError;
use crate::runtime::wit::Credential;

#[derive(Deserialize, Default)]
struct DockerConfig {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
}

#[derive(Deserialize, Default)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    registrytoken: Option<String>,
}

fn config_path() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG") {
        return Some(PathBuf::from(dir).join("config.json"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker").join("config.json"))
}

/// `https://index.docker.io/v1/` -> `index.docker.io`; plain hosts stay.
fn registry_host(key: &str) -> String {
    let k = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    k.split('/').next().unwrap_or(k).to_string()
}

/// Credentials by registry host; no config file means none.
pub fn load() -> Result<Vec<(String, Credential)>, HostError> {
    let Some(path) = config_path() else {
        return Ok(Vec::new());
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(HostError::Setup(format!("reading {}: {e}", path.display()))),
    };
    let config: DockerConfig = serde_json::from_str(&text)
        .map_err(|e| HostError::Setup(format!("{} is not a docker config: {e}", path.display())))?;
    let mut out = Vec::new();
    for (key, entry) in config.auths {
        let host = registry_host(&key);
        if let Some(token) = entry.registrytoken.filter(|t| !t.is_empty()) {
            out.push((host, Credential::Bearer(token)));
            continue;
        }
        let pair = match (entry.username, entry.password, entry.auth) {
            (Some(u), Some(p), _) if !u.is_empty() => Some((u, p)),
            (_, _, Some(auth)) if !auth.is_empty() => {
                let decoded = base64::engine::general_purpose::STANDARD
                    .decode(auth.trim())
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .ok_or_else(|| {
                        HostError::Setup(format!(
                            "{}: the auth of {key:?} is not base64 user:password",
                            path.display()
                        ))
                    })?;
                let (u, p) = decoded.split_once(':').ok_or_else(|| {
                    HostError::Setup(format!(
                        "{}: the auth of {key:?} has no ':'",
                        path.display()
                    ))
                })?;
                Some((u.to_string(), p.to_string()))
            }
            _ => None,
        };
        if let Some(pair) = pair {
            out.push((host, Credential::Basic(pair)));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_keys() {
        assert_eq!(
            registry_host("https://index.docker.io/v1/"),
            "index.docker.io"
        );
        assert_eq!(registry_host("localhost:5000"), "localhost:5000");
        assert_eq!(registry_host("http://127.0.0.1:1/x"), "127.0.0.1:1");
    }
}
