//! The one conversion layer between the WIT types and the core's: `From`
//! where nothing can fail, `TryFrom` (with the core's error, naming the
//! bad value) where WIT input must be validated.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use ocirelay_core::auth::Credential;
use ocirelay_core::client::parse_docker_hub_proxy;
use ocirelay_core::http::TransportErrorKind;
use ocirelay_core::index::Index;
use ocirelay_core::ops::batch::Query;
use ocirelay_core::ops::ensure_manifest::ChildRefs;
use ocirelay_core::ops::lookup::{LookupKind, LookupOptions};
use ocirelay_core::policy::HostPolicy;
use ocirelay_core::rate_limit::RateSpec;
use ocirelay_core::retry::RetryPolicy;
use ocirelay_core::upload::UploadRules;
use ocirelay_core::{ClientConfig, Descriptor, Digest, Error, Platform, Reference};

use crate::bindings::exports::ocirelay::registry::registry as wit;

impl From<Error> for wit::Error {
    /// The message is printable: what a registry said is quoted inert.
    fn from(e: Error) -> Self {
        let message = ocirelay_core::error::printable(&e.to_string()).into_owned();
        match e {
            Error::InvalidReference { .. } | Error::InvalidDigest { .. } => {
                wit::Error::InvalidReference(message)
            }
            Error::InvalidInput(_) => wit::Error::InvalidInput(message),
            Error::NotFound { .. } => wit::Error::NotFound(message),
            Error::Authentication { .. } => wit::Error::Authentication(message),
            Error::Registry {
                status: 429,
                retry_after_secs,
                ..
            } => wit::Error::RateLimited(wit::RateLimited {
                message,
                retry_after_secs,
            }),
            Error::Registry { .. } => wit::Error::Registry(message),
            Error::Integrity { .. } => wit::Error::Integrity(message),
            Error::Protocol { .. } => wit::Error::Protocol(message),
            Error::Transport { ref cause, .. } if cause.kind == TransportErrorKind::TimedOut => {
                wit::Error::Timeout(message)
            }
            Error::Transport { .. } => wit::Error::Transport(message),
            Error::Internal(_) => wit::Error::Internal(message),
        }
    }
}

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

/// Validated by the same grammar as a parsed string.
impl TryFrom<&wit::Reference> for Reference {
    type Error = Error;

    fn try_from(r: &wit::Reference) -> Result<Self, Error> {
        let mut text = if r.host.is_empty() {
            r.repository.clone()
        } else {
            format!("{}/{}", r.host, r.repository)
        };
        if let Some(t) = &r.tag {
            text.push(':');
            text.push_str(t);
        }
        if let Some(d) = &r.digest {
            text.push('@');
            text.push_str(d);
        }
        Reference::parse(&text)
    }
}

impl From<&Platform> for wit::Platform {
    fn from(p: &Platform) -> Self {
        wit::Platform {
            architecture: p.architecture.clone(),
            os: p.os.clone(),
            os_version: p.os_version.clone(),
            os_features: p.os_features.clone(),
            variant: p.variant.clone(),
        }
    }
}

impl From<&Descriptor> for wit::Descriptor {
    fn from(d: &Descriptor) -> Self {
        wit::Descriptor {
            media_type: d.media_type.clone(),
            digest: d.digest.to_string(),
            size: d.size,
            urls: d.urls.clone(),
            annotations: pairs(&d.annotations),
            platform: d.platform.as_ref().map(Into::into),
            artifact_type: d.artifact_type.clone(),
        }
    }
}

impl From<&Index> for wit::Index {
    fn from(i: &Index) -> Self {
        wit::Index {
            schema_version: i.schema_version,
            media_type: i.media_type.clone().unwrap_or_default(),
            artifact_type: i.artifact_type.clone(),
            manifests: i.manifests.iter().map(Into::into).collect(),
            subject: i.subject.as_ref().map(Into::into),
            annotations: pairs(&i.annotations),
        }
    }
}

fn pairs(map: &BTreeMap<String, String>) -> Vec<(String, String)> {
    map.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

impl From<wit::LookupOptions> for LookupOptions {
    fn from(o: wit::LookupOptions) -> Self {
        LookupOptions {
            kind: match o.kind {
                wit::LookupKind::Manifest => LookupKind::Manifest,
                wit::LookupKind::Blob => LookupKind::Blob,
            },
            head: o.head,
        }
    }
}

impl TryFrom<&wit::Query> for Query {
    type Error = Error;

    fn try_from(q: &wit::Query) -> Result<Self, Error> {
        Ok(match q {
            wit::Query::Lookup((r, options)) => Query::Lookup(r.try_into()?, (*options).into()),
            wit::Query::SynthesizeIndex(r) => Query::SynthesizeIndex(r.try_into()?),
        })
    }
}

impl TryFrom<&wit::ChildRefs> for ChildRefs {
    type Error = Error;

    fn try_from(c: &wit::ChildRefs) -> Result<Self, Error> {
        let mut by_digest = HashMap::new();
        for (digest, r) in &c.by_digest {
            by_digest.insert(Digest::parse(digest)?, r.try_into()?);
        }
        let fallback = c.fallback.as_ref().map(TryInto::try_into).transpose()?;
        Ok(ChildRefs {
            by_digest,
            fallback,
        })
    }
}

impl From<wit::Credential> for Credential {
    fn from(c: wit::Credential) -> Self {
        match c {
            wit::Credential::Basic((username, password)) => {
                Credential::Basic { username, password }
            }
            wit::Credential::Bearer(token) => Credential::Bearer(token),
            wit::Credential::IdentityToken(token) => Credential::IdentityToken(token),
        }
    }
}

/// A bad Docker Hub proxy or rate limit is an error naming it.
impl TryFrom<wit::Config> for ClientConfig {
    type Error = Error;

    fn try_from(c: wit::Config) -> Result<Self, Error> {
        let defaults = ClientConfig::default();
        let docker_hub_proxy = c
            .docker_hub_proxy
            .as_deref()
            .map(parse_docker_hub_proxy)
            .transpose()?;
        let mut uploads = UploadRules::default();
        for r in &c.uploads {
            uploads.set(&r.registry, r.chunk_size, r.monolithic_up_to)?;
        }
        Ok(ClientConfig {
            user_agent: c.user_agent,
            credentials: c
                .credentials
                .into_iter()
                .map(|(host, cred)| (host, cred.into()))
                .collect(),
            insecure_registries: c.insecure_registries,
            cache: c.cache,
            concurrency: match c.concurrency {
                0 => defaults.concurrency,
                n => n as usize,
            },
            retry: RetryPolicy {
                deadline: match c.retry_deadline_secs {
                    0 => defaults.retry.deadline,
                    n => Duration::from_secs(n.into()),
                },
                ..defaults.retry
            },
            docker_hub_proxy,
            policy: c.policy.map(TryInto::try_into).transpose()?,
            uploads,
        })
    }
}

impl TryFrom<wit::Policy> for HostPolicy {
    type Error = Error;

    fn try_from(p: wit::Policy) -> Result<Self, Error> {
        let rates = p
            .rate_limits
            .iter()
            .map(|r| RateSpec::new(&r.host, r.requests, Duration::from_millis(r.period_ms)))
            .collect::<Result<Vec<_>, _>>()?;
        let mut policy = HostPolicy::new(rates);
        if !p.allowed_hosts.is_empty() {
            policy.restrict_to(p.allowed_hosts.iter().map(String::as_str));
        }
        Ok(policy)
    }
}
