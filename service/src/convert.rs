//! The one conversion layer between the registry component's WIT types and
//! the core's.

use ocirelay_core::auth::Credential;
use ocirelay_core::service::{Failure, FailureKind, ServiceConfig};
use ocirelay_core::{Digest, Reference};

use crate::bindings::ocirelay::registry::registry as wit;

impl From<&Reference> for wit::Reference {
    fn from(r: &Reference) -> Self {
        wit::Reference {
            host: r.host.clone(),
            repository: r.repository.clone(),
            tag: r.tag.clone(),
            digest: r.digest.as_ref().map(ToString::to_string),
        }
    }
}

/// The registry client the service's configuration calls for: upstreams only
/// (their token realms and redirects aside), the configuration's
/// credentials (never a request's), and 429s waited out only briefly;
/// downloads left to the host to verify when it says it does.
pub fn client_config(config: &ServiceConfig, host_verifies_downloads: bool) -> wit::Config {
    wit::Config {
        user_agent: config.user_agent.clone(),
        credentials: config
            .credentials
            .iter()
            .map(|(host, c)| (host.clone(), c.into()))
            .collect(),
        insecure_registries: config.insecure_registries(),
        // Off: the client may serve many requests (see `answer::CLIENT`),
        // and a tag must be asked upstream each time (an edge cache keeps
        // answers for as long as their `Cache-Control` says).
        cache: false,
        concurrency: 0,
        // 0 means the component's default; the service's least is a second.
        retry_deadline_secs: config.retry_deadline_secs.max(1),
        docker_hub_proxy: config.docker_hub_proxy.as_ref().map(ToString::to_string),
        policy: Some(wit::Policy {
            allowed_hosts: config.reachable(),
            rate_limits: Vec::new(),
        }),
        uploads_verified_by_host: false,
        downloads_verified_by_host: host_verifies_downloads,
        request_timeout_secs: config.timeout_secs,
    }
}

impl From<&Credential> for wit::Credential {
    fn from(c: &Credential) -> Self {
        match c {
            Credential::Basic { username, password } => {
                wit::Credential::Basic((username.clone(), password.clone()))
            }
            Credential::Bearer(token) => wit::Credential::Bearer(token.clone()),
            Credential::IdentityToken(token) => wit::Credential::IdentityToken(token.clone()),
        }
    }
}

/// The registry component's error as the service answers it.
pub fn failure(e: wit::Error) -> Failure {
    let (kind, message) = match e {
        wit::Error::InvalidReference(m) => (FailureKind::InvalidReference, m),
        wit::Error::InvalidInput(m) => (FailureKind::InvalidInput, m),
        wit::Error::NotFound(m) => (FailureKind::NotFound, m),
        wit::Error::Authentication(m) => (FailureKind::Authentication, m),
        wit::Error::Registry(m) => (FailureKind::Registry, m),
        wit::Error::Integrity(m) => (FailureKind::Integrity, m),
        wit::Error::Protocol(m) => (FailureKind::Protocol, m),
        wit::Error::Transport(m) => (FailureKind::Transport, m),
        wit::Error::Timeout(m) => (FailureKind::Timeout, m),
        wit::Error::Internal(m) => (FailureKind::Internal, m),
        wit::Error::RateLimited(r) => {
            return Failure {
                retry_after_secs: r.retry_after_secs,
                ..Failure::new(FailureKind::RateLimited, r.message)
            }
        }
    };
    Failure::new(kind, message)
}

/// The digest of what the registry component found; one it should never
/// have produced is our own bug.
pub fn digest(d: &wit::Descriptor) -> Result<Digest, Failure> {
    Digest::parse(&d.digest).map_err(|e| {
        Failure::new(
            FailureKind::Internal,
            format!("the registry component gave a bad digest: {e}"),
        )
    })
}
