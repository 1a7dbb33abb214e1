//! Registry credentials from the docker client's config
//! (`$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`): `auths`
//! entries, and for the hosts a command names `credHelpers` / `credsStore`
//! (`docker-credential-<name> get`): passwords, registry tokens and identity
//! (OAuth2 refresh) tokens. Secrets are handed to the component and never
//! printed.

use std::collections::BTreeMap;
use std::path::PathBuf;

use base64::Engine as _;
use serde::Deserialize;

use ocirelay_core::reference::is_docker_hub;

use crate::error::HostError;
use crate::runtime::wit::Credential;

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct DockerConfig {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
    #[serde(default)]
    creds_store: Option<String>,
    #[serde(default)]
    cred_helpers: BTreeMap<String, String>,
}

/// What `docker-credential-<name> get` prints.
#[derive(Deserialize)]
struct HelperAnswer {
    #[serde(rename = "Username", default)]
    username: String,
    #[serde(rename = "Secret", default)]
    secret: String,
}

/// The user name with which a helper says its secret is an identity token.
const IDENTITY_TOKEN_USER: &str = "<token>";

/// Docker Hub's key in credential stores.
const DOCKER_HUB_SERVER: &str = "https://index.docker.io/v1/";

/// Asks helper `name` for `server`'s credentials; `None` when it has none.
fn from_helper(name: &str, server: &str) -> Result<Option<Credential>, HostError> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let program = format!("docker-credential-{name}");
    let mut child = match Command::new(&program)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => return Err(HostError::Setup(format!("running {program}: {e}"))),
    };
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(server.as_bytes());
    }
    let out = child
        .wait_with_output()
        .map_err(|e| HostError::Setup(format!("running {program}: {e}")))?;
    if !out.status.success() {
        // "credentials not found" and the like: anonymous, not an error.
        tracing::debug!(helper = %program, server, "no credentials from the helper");
        return Ok(None);
    }
    let answer: HelperAnswer = serde_json::from_slice(&out.stdout).map_err(|e| {
        HostError::Setup(format!(
            "{program} answered something that is not credentials JSON: {e}"
        ))
    })?;
    // Docker's convention: the secret is an identity (refresh) token.
    if answer.username == IDENTITY_TOKEN_USER {
        return Ok(Some(Credential::IdentityToken(answer.secret)));
    }
    Ok(Some(Credential::Basic((answer.username, answer.secret))))
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
    #[serde(default)]
    identitytoken: Option<String>,
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

/// Credentials by registry host: every `auths` entry, then helpers for the
/// `hosts` a command names that no entry covers. No config file means none.
pub fn load(hosts: &[String]) -> Result<Vec<(String, Credential)>, HostError> {
    let Some(path) = config_path() else {
        return Ok(Vec::new());
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        // A file the user points at and we cannot read, or that is not a
        // docker config, is theirs to fix: bad input.
        Err(e) => return Err(HostError::Usage(format!("reading {}: {e}", path.display()))),
    };
    let config: DockerConfig = serde_json::from_str(&text)
        .map_err(|e| HostError::Usage(format!("{} is not a docker config: {e}", path.display())))?;
    let mut out = Vec::new();
    for (key, entry) in &config.auths {
        let host = registry_host(key);
        if let Some(token) = entry.registrytoken.clone().filter(|t| !t.is_empty()) {
            out.push((host, Credential::Bearer(token)));
            continue;
        }
        // As docker does: an identity token wins over the `auth` beside it
        // (which then holds only the user name).
        if let Some(token) = entry.identitytoken.clone().filter(|t| !t.is_empty()) {
            out.push((host, Credential::IdentityToken(token)));
            continue;
        }
        let pair = match (&entry.username, &entry.password, &entry.auth) {
            (Some(u), Some(p), _) if !u.is_empty() => Some((u.clone(), p.clone())),
            (_, _, Some(auth)) if !auth.is_empty() => {
                let decoded = base64::engine::general_purpose::STANDARD
                    .decode(auth.trim())
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .ok_or_else(|| {
                        HostError::Usage(format!(
                            "{}: the auth of {key:?} is not base64 user:password",
                            path.display()
                        ))
                    })?;
                let (u, p) = decoded.split_once(':').ok_or_else(|| {
                    HostError::Usage(format!(
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
    for host in hosts {
        let hub = is_docker_hub(host);
        if out
            .iter()
            .any(|(h, _)| h == host || (hub && is_docker_hub(h)))
        {
            continue;
        }
        let helper = config
            .cred_helpers
            .iter()
            .find(|(k, _)| {
                let k = registry_host(k);
                k == *host || (hub && is_docker_hub(&k))
            })
            .map(|(_, v)| v.clone())
            .or_else(|| config.creds_store.clone())
            .filter(|h| !h.is_empty());
        if let Some(helper) = helper {
            let server = if hub {
                DOCKER_HUB_SERVER
            } else {
                host.as_str()
            };
            if let Some(c) = from_helper(&helper, server)? {
                out.push((host.clone(), c));
            }
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
