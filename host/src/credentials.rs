//! Registry credentials from the docker client's config
//! (`$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`): `auths`
//! entries, and for the hosts a command names `credHelpers` / `credsStore`
//! (`docker-credential-<name> get`): passwords, registry tokens and identity
//! (OAuth2 refresh) tokens. The core parses ([`DockerConfig`]); this module
//! reads the file and runs the helpers. Secrets are handed to the component
//! and never printed.

use std::path::PathBuf;

use ocirelay_core::docker_config::{helper_server, parse_helper_answer, DockerConfig};
use ocirelay_core::reference::is_docker_hub;

use crate::error::HostError;
use crate::runtime::wit::Credential;

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
    let credential =
        parse_helper_answer(name, &out.stdout).map_err(|e| HostError::Setup(e.to_string()))?;
    Ok(Some(credential.into()))
}

fn config_path() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG") {
        return Some(PathBuf::from(dir).join("config.json"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker").join("config.json"))
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
        // A file the user points at that we cannot read, or that is not a
        // docker config, is theirs to fix: bad input.
        Err(e) => return Err(HostError::Usage(format!("reading {}: {e}", path.display()))),
    };
    let config = DockerConfig::parse(&text).map_err(|e| HostError::bad_file(path.display(), e))?;
    let mut out: Vec<(String, Credential)> = config
        .credentials()
        .map_err(|e| HostError::bad_file(path.display(), e))?
        .into_iter()
        .map(|(host, c)| (host, c.into()))
        .collect();
    for host in hosts {
        let hub = is_docker_hub(host);
        if out
            .iter()
            .any(|(h, _)| h == host || (hub && is_docker_hub(h)))
        {
            continue;
        }
        if let Some(helper) = config.helper_for(host) {
            if let Some(c) = from_helper(helper, helper_server(host))? {
                out.push((host.clone(), c));
            }
        }
    }
    Ok(out)
}
