//! The edge service's configuration: which registries it mirrors, which of
//! their repositories it serves, and how long a tag's answer may be cached.
//! For example:
//!
//! ```json
//! {"upstreams": [{"registry": "docker.io", "repositories": ["library/*"]},
//!                {"registry": "registry.example:5000", "repositories": ["team/*"]}],
//!  "tag-max-age": 60}
//! ```
//!
//! The first upstream is the default (requests without `?ns=`). Parsing and
//! the allow-list decision only: the service component is handed the text.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use crate::auth::Credential;
use crate::client::{parse_docker_hub_proxy, ClientConfig};
use crate::error::{Error, Result};
use crate::http::{reachable_authority, Url, PORT_RANGE};
use crate::policy::HostPolicy;
use crate::reference::{is_docker_hub, Reference, DOCKER_HUB};
use crate::retry::RetryPolicy;

/// How long a by-tag answer is fresh by default, in seconds.
pub const DEFAULT_TAG_MAX_AGE: u32 = 60;
/// How long a cache may serve a stale by-tag answer while the upstream fails, by default.
pub const DEFAULT_STALE_IF_ERROR: u32 = 86_400;
/// How long an upstream request may wait to connect, for its answer, or
/// between two chunks of a body, by default, in seconds.
pub const DEFAULT_TIMEOUT_SECS: u32 = 30;
/// How long the service waits out an upstream's 429s and 5xx, by default:
/// an edge answers now (passing a 429 on) rather than after minutes.
pub const DEFAULT_RETRY_DEADLINE_SECS: u32 = 2;

/// The file as written (all fields but `upstreams` optional; an unknown
/// field is a mistake). Not `Debug`: it holds secrets.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct File {
    upstreams: Vec<UpstreamFile>,
    #[serde(default)]
    docker_hub_proxy: Option<String>,
    #[serde(default)]
    tag_max_age: Option<u32>,
    #[serde(default)]
    stale_if_error: Option<u32>,
    #[serde(default)]
    retry_deadline_secs: Option<u32>,
    #[serde(default)]
    timeout_secs: Option<u32>,
    #[serde(default)]
    user_agent: Option<String>,
    #[serde(default)]
    credentials: BTreeMap<String, CredentialFile>,
}

/// One registry's credentials: a username and password, a bearer token,
/// or an identity token.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct CredentialFile {
    username: Option<String>,
    password: Option<String>,
    token: Option<String>,
    identity_token: Option<String>,
}

impl CredentialFile {
    fn credential(self) -> std::result::Result<Credential, &'static str> {
        match (
            self.username,
            self.password,
            self.token,
            self.identity_token,
        ) {
            (Some(username), Some(password), None, None) => {
                Ok(Credential::Basic { username, password })
            }
            (None, None, Some(token), None) => Ok(Credential::Bearer(token)),
            (None, None, None, Some(token)) => Ok(Credential::IdentityToken(token)),
            _ => Err("give a username and password, a token, or an identity-token"),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct UpstreamFile {
    registry: String,
    repositories: Vec<String>,
    #[serde(default)]
    insecure: bool,
    #[serde(default)]
    redirect_blobs: bool,
}

/// One mirrored registry and the repositories of it the service serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    /// Its host (with port); `docker.io` for any Docker Hub alias.
    pub registry: String,
    /// Repository patterns: `*` (all), `team/*` (all under `team/`), or a name.
    pub repositories: Vec<String>,
    /// Reached over plain HTTP.
    pub insecure: bool,
    /// A blob read it redirects to storage is redirected there for the
    /// client too (`redirect-blobs`), not read through the service.
    pub redirect_blobs: bool,
}

impl Upstream {
    /// Whether `repository` (normalized: `library/alpine`) may be served.
    pub fn allows(&self, repository: &str) -> bool {
        self.repositories.iter().any(|p| match p.strip_suffix('*') {
            Some("") => true,
            Some(prefix) => repository.starts_with(prefix) && repository.len() > prefix.len(),
            None => p == repository,
        })
    }
}

/// The service's configuration, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceConfig {
    /// The mirrored registries; the first is the default.
    pub upstreams: Vec<Upstream>,
    /// Where Docker Hub reads go instead (`http(s)://host[:port]`).
    pub docker_hub_proxy: Option<Url>,
    /// Seconds a by-tag answer is fresh.
    pub tag_max_age: u32,
    /// Seconds a cache may serve a stale by-tag answer while the upstream fails.
    pub stale_if_error: u32,
    /// Seconds an upstream's 429s and 5xx are waited out before the
    /// service answers with them.
    pub retry_deadline_secs: u32,
    /// Seconds an upstream request may wait to connect, for its answer's
    /// head, or between two chunks of a body (then: 504).
    pub timeout_secs: u32,
    /// `User-Agent` of the service's upstream requests.
    pub user_agent: String,
    /// The service's own credentials for its upstreams (never a request's).
    pub credentials: Vec<(String, Credential)>,
}

impl ServiceConfig {
    /// Parses a configuration's text; an error names the field at fault.
    pub fn parse(text: &str) -> Result<Self> {
        let file: File = crate::json::from_str_naming_field(text)
            .map_err(|e| Error::InvalidInput(format!("not an ocirelay service config: {e}")))?;
        if file.upstreams.is_empty() {
            return Err(invalid("upstreams", "at least one upstream is needed"));
        }
        let mut upstreams: Vec<Upstream> = Vec::with_capacity(file.upstreams.len());
        for (i, u) in file.upstreams.into_iter().enumerate() {
            let field = |name: &str| format!("upstreams[{i}].{name}");
            let registry =
                registry_host(&u.registry).map_err(|why| invalid(&field("registry"), &why))?;
            if upstreams.iter().any(|seen| seen.registry == registry) {
                return Err(invalid(
                    &field("registry"),
                    &format!("{registry} is listed twice"),
                ));
            }
            if u.repositories.is_empty() {
                return Err(invalid(
                    &field("repositories"),
                    "empty: list the repositories to serve (\"*\" for all)",
                ));
            }
            for (j, pattern) in u.repositories.iter().enumerate() {
                check_pattern(pattern)
                    .map_err(|why| invalid(&format!("upstreams[{i}].repositories[{j}]"), &why))?;
            }
            upstreams.push(Upstream {
                registry,
                repositories: u.repositories,
                insecure: u.insecure,
                redirect_blobs: u.redirect_blobs,
            });
        }
        let mut credentials = Vec::with_capacity(file.credentials.len());
        for (host, given) in file.credentials {
            let field = format!("credentials.{host}");
            let registry = registry_host(&host).map_err(|why| invalid(&field, &why))?;
            if !upstreams.iter().any(|u| u.registry == registry) {
                return Err(invalid(
                    &field,
                    "not an upstream: credentials go to upstreams only",
                ));
            }
            let credential = given.credential().map_err(|why| invalid(&field, why))?;
            credentials.push((registry, credential));
        }
        let docker_hub_proxy = match &file.docker_hub_proxy {
            Some(proxy) => Some(
                parse_docker_hub_proxy(proxy)
                    .map_err(|e| invalid("docker-hub-proxy", &e.to_string()))?,
            ),
            None => None,
        };
        Ok(ServiceConfig {
            upstreams,
            docker_hub_proxy,
            tag_max_age: file.tag_max_age.unwrap_or(DEFAULT_TAG_MAX_AGE),
            stale_if_error: file.stale_if_error.unwrap_or(DEFAULT_STALE_IF_ERROR),
            retry_deadline_secs: file
                .retry_deadline_secs
                .unwrap_or(DEFAULT_RETRY_DEADLINE_SECS),
            timeout_secs: match file.timeout_secs {
                Some(0) => return Err(invalid("timeout-secs", "must be at least 1")),
                Some(secs) => secs,
                None => DEFAULT_TIMEOUT_SECS,
            },
            user_agent: file
                .user_agent
                .unwrap_or_else(|| concat!("ocirelay-service/", env!("CARGO_PKG_VERSION")).into()),
            credentials,
        })
    }

    /// The upstream a request is for: the one named by `ns` (containerd's
    /// mirror parameter, any Docker Hub alias meaning Docker Hub), else the
    /// default. `None` when `ns` names a registry not mirrored here.
    pub fn upstream(&self, ns: Option<&str>) -> Option<&Upstream> {
        match ns {
            None => self.upstreams.first(),
            Some(ns) => {
                let ns = registry_host(ns).ok()?;
                self.upstreams.iter().find(|u| u.registry == ns)
            }
        }
    }

    /// Whether a blob read of `reference` that its upstream redirects is
    /// redirected for the client too (its upstream's `redirect-blobs`).
    pub fn redirects_blobs(&self, reference: &Reference) -> bool {
        self.upstreams
            .iter()
            .any(|u| u.registry == reference.host && u.redirect_blobs)
    }

    /// Whether `reference` may be served: its registry is an upstream and
    /// its repository one that upstream allows.
    pub fn allows(&self, reference: &Reference) -> bool {
        self.upstreams
            .iter()
            .any(|u| u.registry == reference.host && u.allows(&reference.repository))
    }

    /// The hosts the service may reach (besides the token realms and
    /// redirect targets they send it to): its upstreams and its Docker Hub
    /// mirror.
    pub fn reachable(&self) -> Vec<String> {
        let upstreams = self.upstreams.iter().map(|u| u.registry.clone());
        let mirror = self.docker_hub_proxy.iter().map(|m| m.authority.clone());
        upstreams.chain(mirror).collect()
    }

    /// Registries reached over plain HTTP.
    pub fn insecure_registries(&self) -> Vec<String> {
        self.upstreams
            .iter()
            .filter(|u| u.insecure)
            .map(|u| u.registry.clone())
            .collect()
    }

    /// The registry client the service needs: its upstreams only (their
    /// token realms and redirects aside), its own credentials (never a
    /// request's), no cache (a tag is asked upstream each time; an edge
    /// cache keeps answers as their `Cache-Control` says), and 429s and
    /// 5xx waited out for `retry-deadline-secs` (a second at least).
    pub fn client_config(&self) -> ClientConfig {
        let defaults = ClientConfig::default();
        let mut policy = HostPolicy::new(Vec::new());
        policy.restrict_to(self.reachable().iter().map(String::as_str));
        ClientConfig {
            user_agent: self.user_agent.clone(),
            credentials: self.credentials.iter().cloned().collect(),
            insecure_registries: self.insecure_registries(),
            cache: false,
            concurrency: defaults.concurrency,
            retry: RetryPolicy {
                deadline: Duration::from_secs(self.retry_deadline_secs.max(1).into()),
                ..defaults.retry
            },
            docker_hub_proxy: self.docker_hub_proxy.clone(),
            policy: Some(policy),
            uploads: defaults.uploads,
        }
    }
}

fn invalid(field: &str, why: &str) -> Error {
    Error::InvalidInput(format!("service config: {field}: {why}"))
}

/// A registry as a reference names it: lower-case host with optional port,
/// Docker Hub's aliases made `docker.io`.
fn registry_host(text: &str) -> std::result::Result<String, String> {
    let host = text.trim().to_ascii_lowercase();
    if is_docker_hub(&host) {
        return Ok(DOCKER_HUB.to_string());
    }
    // The reference grammar decides what a host is: `HOST/x` must parse
    // with HOST kept as the host.
    match Reference::parse(&format!("{host}/x")) {
        Ok(r) if r.host == host && reachable_authority(&host) => Ok(host),
        Ok(r) if r.host == host => Err(format!("{text:?}: {PORT_RANGE}")),
        _ => Err(format!("{text:?} is not a registry host (host[:port])")),
    }
}

fn check_pattern(pattern: &str) -> std::result::Result<(), String> {
    if pattern == "*" {
        return Ok(());
    }
    let name = match pattern.strip_suffix("/*") {
        Some(prefix) => prefix,
        None if pattern.contains('*') => {
            return Err(format!(
                "{pattern:?}: `*` may only stand alone or end a pattern as `/*`"
            ))
        }
        None => pattern,
    };
    // A pattern names repositories as the grammar spells them.
    match Reference::parse(&format!("registry.invalid/{name}")) {
        Ok(r) if r.repository == name => Ok(()),
        _ => Err(format!("{pattern:?} is not a repository name or pattern")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> ServiceConfig {
        ServiceConfig::parse(text).unwrap()
    }

    fn error(text: &str) -> String {
        ServiceConfig::parse(text).unwrap_err().to_string()
    }

    #[test]
    fn the_client_reaches_the_upstreams_only_with_the_services_credentials() {
        let c = config(
            r#"{"upstreams": [{"registry": "r.example:5000", "repositories": ["*"], "insecure": true},
                              {"registry": "docker.io", "repositories": ["library/*"]}],
                "docker-hub-proxy": "https://hub-mirror.example", "retry-deadline-secs": 0,
                "user-agent": "edge/1", "credentials": {"r.example:5000": {"token": "t"}}}"#,
        )
        .client_config();
        let policy = c.policy.as_ref().expect("a policy");
        assert!(policy.allows("r.example:5000") && policy.allows("hub-mirror.example"));
        assert!(!policy.allows("elsewhere.example"));
        assert_eq!(c.insecure_registries, ["r.example:5000"]);
        assert_eq!(c.credentials.len(), 1);
        assert!(!c.cache, "every tag asked upstream");
        assert_eq!(
            c.retry.deadline,
            Duration::from_secs(1),
            "a second at least"
        );
        assert_eq!(c.user_agent, "edge/1");
        assert_eq!(
            c.docker_hub_proxy.map(|u| u.authority),
            Some("hub-mirror.example".into())
        );
    }

    #[test]
    fn defaults_fill_what_is_not_given() {
        let c =
            config(r#"{"upstreams": [{"registry": "index.docker.io", "repositories": ["*"]}]}"#);
        assert_eq!(c.upstreams[0].registry, "docker.io");
        assert_eq!(c.tag_max_age, DEFAULT_TAG_MAX_AGE);
        assert_eq!(c.stale_if_error, DEFAULT_STALE_IF_ERROR);
        assert_eq!(c.retry_deadline_secs, DEFAULT_RETRY_DEADLINE_SECS);
        assert_eq!(c.timeout_secs, DEFAULT_TIMEOUT_SECS);
        assert!(c.user_agent.starts_with("ocirelay-service/"));
    }

    #[test]
    fn credentials_go_to_upstreams_by_their_normalized_name() {
        let c = config(
            r#"{"upstreams": [{"registry": "docker.io", "repositories": ["*"]}],
                "credentials": {"registry-1.docker.io": {"username": "u", "password": "p"}}}"#,
        );
        assert_eq!(
            c.credentials,
            vec![(
                "docker.io".to_string(),
                Credential::Basic {
                    username: "u".into(),
                    password: "p".into()
                }
            )]
        );
    }

    #[test]
    fn ns_picks_among_upstreams_and_nothing_else() {
        let c = config(
            r#"{"upstreams": [{"registry": "docker.io", "repositories": ["*"]},
                              {"registry": "127.0.0.1:5000", "repositories": ["*"], "insecure": true}]}"#,
        );
        assert_eq!(c.upstream(None).unwrap().registry, "docker.io");
        assert_eq!(
            c.upstream(Some("registry-1.docker.io")).unwrap().registry,
            "docker.io"
        );
        assert_eq!(
            c.upstream(Some("127.0.0.1:5000")).unwrap().registry,
            "127.0.0.1:5000"
        );
        assert_eq!(c.upstream(Some("127.0.0.1:5001")), None);
        assert_eq!(c.upstream(Some("ghcr.io")), None);
        assert_eq!(c.insecure_registries(), vec!["127.0.0.1:5000".to_string()]);
        assert_eq!(c.reachable(), ["docker.io", "127.0.0.1:5000"]);
        let mirrored = config(
            r#"{"upstreams": [{"registry": "docker.io", "repositories": ["*"]}],
                "docker-hub-proxy": "http://127.0.0.1:7000"}"#,
        );
        assert_eq!(mirrored.reachable(), ["docker.io", "127.0.0.1:7000"]);
    }

    #[test]
    fn blob_redirects_are_passed_on_for_the_upstreams_that_say_so() {
        let c = config(
            r#"{"upstreams": [{"registry": "docker.io", "repositories": ["*"], "redirect-blobs": true},
                              {"registry": "r.example", "repositories": ["*"]}]}"#,
        );
        let at = |r: &str| Reference::parse(r).unwrap();
        assert!(c.redirects_blobs(&at("docker.io/library/alpine:3")));
        assert!(!c.redirects_blobs(&at("r.example/team/app:v1")));
        let bad = ServiceConfig::parse(
            r#"{"upstreams": [{"registry": "r.example", "repositories": ["*"], "redirect-blobs": "yes"}]}"#,
        );
        assert!(bad.unwrap_err().to_string().contains("redirect-blobs"));
    }

    #[test]
    fn patterns_allow_what_they_say() {
        let u = Upstream {
            registry: "docker.io".into(),
            repositories: vec!["library/*".into(), "team/app".into()],
            insecure: false,
            redirect_blobs: false,
        };
        assert!(u.allows("library/alpine"));
        assert!(u.allows("library/a/b"));
        assert!(!u.allows("library"));
        assert!(!u.allows("library2/alpine"));
        assert!(!u.allows("libraryx"));
        assert!(u.allows("team/app"));
        assert!(!u.allows("team/app2"));
        assert!(!u.allows("team/app/x"));
        let c =
            config(r#"{"upstreams": [{"registry": "docker.io", "repositories": ["library/*"]}]}"#);
        assert!(c.allows(&Reference::parse("alpine:3").unwrap()));
        assert!(!c.allows(&Reference::parse("someone/alpine:3").unwrap()));
        assert!(!c.allows(&Reference::parse("ghcr.io/library/alpine:3").unwrap()));
    }

    #[test]
    fn errors_name_the_field() {
        for (text, field) in [
            (r#"{"upstreams": []}"#, "upstreams:"),
            (
                r#"{"upstreams": [{"registry": "a b", "repositories": ["*"]}]}"#,
                "upstreams[0].registry",
            ),
            (
                r#"{"upstreams": [{"registry": "docker.io", "repositories": ["*"]},
                                  {"registry": "registry-1.docker.io", "repositories": ["*"]}]}"#,
                "upstreams[1].registry",
            ),
            (
                r#"{"upstreams": [{"registry": "docker.io", "repositories": []}]}"#,
                "upstreams[0].repositories",
            ),
            (
                r#"{"upstreams": [{"registry": "docker.io", "repositories": ["*", "lib*"]}]}"#,
                "upstreams[0].repositories[1]",
            ),
            (
                r#"{"upstreams": [{"registry": "docker.io", "repositories": ["Upper/*"]}]}"#,
                "upstreams[0].repositories[0]",
            ),
            (
                r#"{"upstreams": [{"registry": "docker.io", "repositories": ["*"]}], "docker-hub-proxy": "ftp://x"}"#,
                "docker-hub-proxy",
            ),
            (
                r#"{"upstreams": [{"registry": "docker.io", "repositories": ["*"]}], "timeout-secs": 0}"#,
                "timeout-secs",
            ),
            // A value of the wrong type, named by its path.
            (
                r#"{"upstreams": [{"registry": "docker.io", "repositories": ["*"]}], "tag-max-age": -1}"#,
                "tag-max-age: invalid value: integer `-1`",
            ),
            (
                r#"{"upstreams": [{"registry": "docker.io", "repositories": ["*"], "insecure": "yes"}]}"#,
                "upstreams[0].insecure: invalid type",
            ),
        ] {
            let e = error(text);
            assert!(e.contains(field), "{e:?} should name {field}");
        }
        assert!(error(r#"{"upstreams": [], "secrets": {}}"#).contains("secrets"));
        let creds = |c: &str| {
            format!(
                r#"{{"upstreams": [{{"registry": "docker.io", "repositories": ["*"]}}], "credentials": {c}}}"#
            )
        };
        assert!(error(&creds(r#"{"ghcr.io": {"token": "t"}}"#))
            .contains("credentials.ghcr.io: not an upstream"));
        assert!(
            error(&creds(r#"{"docker.io": {"username": "u"}}"#)).contains("credentials.docker.io")
        );
        assert!(error(&creds(
            r#"{"docker.io": {"token": "t", "identity-token": "i"}}"#
        ))
        .contains("credentials.docker.io"));
        assert!(error("[").contains("not an ocirelay service config"));
        // `localhost` alone starts a Docker Hub repository, as in a reference.
        let hub_name = r#"{"upstreams": [{"registry": "localhost", "repositories": ["*"]}]}"#;
        let said = r#"upstreams[0].registry: "localhost" is not a registry host (host[:port])"#;
        assert!(error(hub_name).ends_with(said), "{}", error(hub_name));
        let far =
            r#"{"upstreams": [{"registry": "registry.example:65536", "repositories": ["*"]}]}"#;
        assert_eq!(
            error(far),
            "invalid input: service config: upstreams[0].registry: \"registry.example:65536\": the port must be a number from 1 to 65535"
        );
    }
}
