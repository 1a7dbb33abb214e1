//! The docker client's config (`config.json`): the credentials its `auths`
//! give each registry host, and which credential helper (`credHelpers`,
//! `credsStore`) to ask for the others. Parsing only: reading the file and
//! running `docker-credential-<name>` are a host's.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde::Deserialize;

use crate::auth::Credential;
use crate::error::{Error, Result};
use crate::reference::is_docker_hub;

/// Docker Hub's key in credential stores and helpers.
pub const DOCKER_HUB_SERVER: &str = "https://index.docker.io/v1/";

/// The user name with which a helper says its secret is an identity token.
const IDENTITY_TOKEN_USER: &str = "<token>";

/// A parsed `config.json` (the fields ocirelay reads; others are ignored,
/// as docker ignores them).
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct DockerConfig {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
    #[serde(default)]
    creds_store: Option<String>,
    #[serde(default)]
    cred_helpers: BTreeMap<String, String>,
}

// Entries hold secrets: Debug names the hosts only.
impl std::fmt::Debug for DockerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DockerConfig")
            .field("auths", &self.auths.keys().collect::<Vec<_>>())
            .field("creds_store", &self.creds_store)
            .field("cred_helpers", &self.cred_helpers)
            .finish()
    }
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

/// What `docker-credential-<name> get` prints.
#[derive(Deserialize)]
struct HelperAnswer {
    #[serde(rename = "Username", default)]
    username: String,
    #[serde(rename = "Secret", default)]
    secret: String,
}

/// The registry host a config key names: `https://index.docker.io/v1/` ->
/// `index.docker.io`; plain hosts (with port) stay as they are.
pub fn registry_host(key: &str) -> &str {
    let k = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    k.split('/').next().unwrap_or(k)
}

impl DockerConfig {
    /// Parses a config's text; an error says why it is not a docker config.
    pub fn parse(text: &str) -> Result<Self> {
        crate::json::from_str_naming_field(text)
            .map_err(|e| Error::InvalidInput(format!("not a docker config: {e}")))
    }

    /// The credentials of every `auths` entry that holds one, by registry
    /// host, as docker reads them: a registry token first, then an identity
    /// token (the `auth` beside it then holds only the user name), then
    /// `username` and `password`, then `auth` (base64 `user:password`). A
    /// malformed `auth` is an error naming its key.
    pub fn credentials(&self) -> Result<Vec<(String, Credential)>> {
        let mut out = Vec::new();
        for (key, entry) in &self.auths {
            let host = registry_host(key).to_string();
            let nonempty = |s: &Option<String>| s.clone().filter(|s| !s.is_empty());
            if let Some(token) = nonempty(&entry.registrytoken) {
                out.push((host, Credential::Bearer(token)));
            } else if let Some(token) = nonempty(&entry.identitytoken) {
                out.push((host, Credential::IdentityToken(token)));
            } else if let (Some(username), Some(password)) =
                (nonempty(&entry.username), entry.password.clone())
            {
                out.push((host, Credential::Basic { username, password }));
            } else if let Some(auth) = nonempty(&entry.auth) {
                out.push((host, decode_auth(key, &auth)?));
            }
        }
        Ok(out)
    }

    /// The credential helper to ask for `host`'s credentials: its
    /// `credHelpers` entry (Docker Hub's aliases are one registry), else
    /// `credsStore`; `None` when neither names one.
    pub fn helper_for(&self, host: &str) -> Option<&str> {
        let hub = is_docker_hub(host);
        self.cred_helpers
            .iter()
            .find(|(k, _)| {
                let k = registry_host(k);
                k == host || (hub && is_docker_hub(k))
            })
            .map(|(_, v)| v.as_str())
            .or(self.creds_store.as_deref())
            .filter(|h| !h.is_empty())
    }
}

/// The server name under which helpers know `host`'s credentials.
pub fn helper_server(host: &str) -> &str {
    if is_docker_hub(host) {
        DOCKER_HUB_SERVER
    } else {
        host
    }
}

/// The credential in what a helper printed (`{"Username": ..., "Secret":
/// ...}`); the user `<token>` marks the secret as an identity token.
pub fn parse_helper_answer(helper: &str, stdout: &[u8]) -> Result<Credential> {
    let answer: HelperAnswer = serde_json::from_slice(stdout).map_err(|e| {
        Error::protocol(
            format!("docker-credential-{helper}"),
            format!("answered something that is not credentials JSON: {e}"),
        )
    })?;
    if answer.username == IDENTITY_TOKEN_USER {
        return Ok(Credential::IdentityToken(answer.secret));
    }
    Ok(Credential::Basic {
        username: answer.username,
        password: answer.secret,
    })
}

/// An `auth` field: base64 of `user:password`.
fn decode_auth(key: &str, auth: &str) -> Result<Credential> {
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(auth.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| {
            Error::InvalidInput(format!(
                "the auth of {key:?} is not base64 of user:password"
            ))
        })?;
    let (username, password) = decoded
        .split_once(':')
        .ok_or_else(|| Error::InvalidInput(format!("the auth of {key:?} has no ':'")))?;
    Ok(Credential::Basic {
        username: username.to_string(),
        password: password.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(u: &str, p: &str) -> Credential {
        Credential::Basic {
            username: u.into(),
            password: p.into(),
        }
    }

    #[test]
    fn registry_keys() {
        assert_eq!(
            registry_host("https://index.docker.io/v1/"),
            "index.docker.io"
        );
        assert_eq!(registry_host("localhost:5000"), "localhost:5000");
        assert_eq!(registry_host("http://127.0.0.1:1/x"), "127.0.0.1:1");
    }

    #[test]
    fn credentials_in_docker_order() {
        let config = DockerConfig::parse(
            r#"{"auths": {
                "a:1": {"registrytoken": "rt", "identitytoken": "it", "auth": "dTpw"},
                "https://b:2/v1/": {"identitytoken": "it", "auth": "dTo="},
                "c:3": {"username": "u", "password": "p", "auth": "eDp5"},
                "d:4": {"auth": "dTpwOnE="},
                "e:5": {"username": "", "auth": "eDp5"},
                "f:6": {}
            }, "unknown": true}"#,
        )
        .unwrap();
        assert_eq!(
            config.credentials().unwrap(),
            [
                // By key: "https://b:2/v1/" sorts last.
                ("a:1".to_string(), Credential::Bearer("rt".into())),
                ("c:3".to_string(), basic("u", "p")),
                ("d:4".to_string(), basic("u", "p:q")),
                ("e:5".to_string(), basic("x", "y")),
                ("b:2".to_string(), Credential::IdentityToken("it".into())),
            ]
        );
    }

    #[test]
    fn debug_names_the_registries_and_no_secret() {
        let config =
            DockerConfig::parse(r#"{"auths": {"r.example": {"auth": "dTpTRUNSRVQ="}}}"#).unwrap();
        let shown = format!("{config:?}");
        assert!(shown.contains("r.example"), "{shown}");
        assert!(
            !shown.contains("dTpTRUNSRVQ=") && !shown.contains("SECRET"),
            "{shown}"
        );
    }

    #[test]
    fn a_malformed_auth_is_an_error_naming_its_key() {
        for (auth, why) in [("!!", "not base64"), ("dXNlcg==", "no ':'")] {
            let text = format!(r#"{{"auths": {{"r.example": {{"auth": "{auth}"}}}}}}"#);
            let e = DockerConfig::parse(&text)
                .unwrap()
                .credentials()
                .unwrap_err();
            let e = e.to_string();
            assert!(e.contains("\"r.example\"") && e.contains(why), "{e}");
        }
        let e = DockerConfig::parse(r#"{"auths": []}"#).unwrap_err();
        assert!(e.to_string().contains("not a docker config"), "{e}");
        let e = DockerConfig::parse(r#"{"auths": {"r.example": {"auth": 5}}}"#).unwrap_err();
        assert!(
            e.to_string().contains("auths.r.example.auth: invalid type"),
            "{e}"
        );
    }

    #[test]
    fn helpers_by_host_then_store() {
        let config = DockerConfig::parse(
            r#"{"credsStore": "store", "credHelpers": {
                "https://index.docker.io/v1/": "hub", "r.example": "mine"}}"#,
        )
        .unwrap();
        assert_eq!(config.helper_for("r.example"), Some("mine"));
        assert_eq!(config.helper_for("docker.io"), Some("hub"));
        assert_eq!(config.helper_for("registry-1.docker.io"), Some("hub"));
        assert_eq!(config.helper_for("other:5000"), Some("store"));
        let empty = DockerConfig::parse(r#"{"credsStore": ""}"#).unwrap();
        assert_eq!(empty.helper_for("other:5000"), None);
        assert_eq!(helper_server("docker.io"), DOCKER_HUB_SERVER);
        assert_eq!(helper_server("r.example:1"), "r.example:1");
    }

    #[test]
    fn helper_answers() {
        assert_eq!(
            parse_helper_answer("x", br#"{"Username": "u", "Secret": "s"}"#).unwrap(),
            basic("u", "s")
        );
        assert_eq!(
            parse_helper_answer("x", br#"{"Username": "<token>", "Secret": "s"}"#).unwrap(),
            Credential::IdentityToken("s".into())
        );
        let e = parse_helper_answer("pass", b"oops").unwrap_err();
        assert!(e.to_string().contains("docker-credential-pass"), "{e}");
    }
}
