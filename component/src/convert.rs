//! Conversions between the WIT types and the core's.

use std::collections::BTreeMap;

use ocirelay_core::auth::Credential;
use ocirelay_core::index::Index;
use ocirelay_core::ops::ensure_manifest::ChildRefs;
use ocirelay_core::ops::lookup::{LookupKind, LookupOptions};
use ocirelay_core::policy::HostPolicy;
use ocirelay_core::rate_limit::RateSpec;
use ocirelay_core::retry::RetryPolicy;
use ocirelay_core::{ClientConfig, Descriptor, Digest, Error, Platform, Reference};

use crate::bindings::exports::ocirelay::registry::registry as wit;
use crate::bindings::exports::ocirelay::registry::registry as wt;

pub fn error(e: Error) -> wt::Error {
    let message = e.to_string();
    match e {
        Error::InvalidReference { .. } | Error::InvalidDigest { .. } => {
            wt::Error::InvalidReference(message)
        }
        Error::InvalidInput(_) => wt::Error::InvalidInput(message),
        Error::Authentication { .. } => wt::Error::Authentication(message),
        Error::Registry { .. } => wt::Error::Registry(message),
        Error::Integrity { .. } => wt::Error::Integrity(message),
        Error::Protocol { .. } => wt::Error::Protocol(message),
        Error::Transport { .. } => wt::Error::Transport(message),
    }
}

pub fn reference_to_wit(r: &Reference) -> wt::Reference {
    wt::Reference {
        host: r.host.clone(),
        repository: r.repository.clone(),
        tag: r.tag.clone(),
        digest: r.digest.as_ref().map(ToString::to_string),
    }
}

/// Validates a WIT reference by the same grammar as a parsed string.
pub fn reference_from_wit(r: &wt::Reference) -> Result<Reference, Error> {
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

fn platform_to_wit(p: &Platform) -> wt::Platform {
    wt::Platform {
        architecture: p.architecture.clone(),
        os: p.os.clone(),
        os_version: p.os_version.clone(),
        os_features: p.os_features.clone(),
        variant: p.variant.clone(),
    }
}

pub fn descriptor_to_wit(d: &Descriptor) -> wt::Descriptor {
    wt::Descriptor {
        media_type: d.media_type.clone(),
        digest: d.digest.to_string(),
        size: d.size,
        urls: d.urls.clone(),
        annotations: d
            .annotations
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        platform: d.platform.as_ref().map(platform_to_wit),
        artifact_type: d.artifact_type.clone(),
    }
}

/// The core's configuration from the WIT one; a bad Docker Hub proxy or
/// rate limit is an error naming it.
pub fn config_from_wit(c: wit::Config) -> Result<ClientConfig, Error> {
    let credentials: BTreeMap<String, Credential> = c
        .credentials
        .into_iter()
        .map(|(host, cred)| {
            let cred = match cred {
                wit::Credential::Basic((username, password)) => {
                    Credential::Basic { username, password }
                }
                wit::Credential::Bearer(token) => Credential::Bearer(token),
                wit::Credential::IdentityToken(token) => Credential::IdentityToken(token),
            };
            (host, cred)
        })
        .collect();
    let defaults = ClientConfig::default();
    let docker_hub_proxy = c
        .docker_hub_proxy
        .as_deref()
        .map(ocirelay_core::client::parse_docker_hub_proxy)
        .transpose()?;
    let policy = c.policy.map(policy_from_wit).transpose()?;
    Ok(ClientConfig {
        user_agent: c.user_agent,
        credentials,
        insecure_registries: c.insecure_registries,
        cache: c.cache,
        concurrency: match c.concurrency {
            0 => defaults.concurrency,
            n => n as usize,
        },
        retry: RetryPolicy {
            too_many_requests_deadline: match c.retry_deadline_secs {
                0 => defaults.retry.too_many_requests_deadline,
                n => std::time::Duration::from_secs(n.into()),
            },
            ..defaults.retry
        },
        docker_hub_proxy,
        policy,
    })
}

fn policy_from_wit(p: wit::Policy) -> Result<HostPolicy, Error> {
    let rates = p
        .rate_limits
        .iter()
        .map(|r| {
            let period = std::time::Duration::from_millis(r.period_ms);
            RateSpec::new(&r.host, r.requests, period)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut policy = HostPolicy::new(rates);
    if !p.allowed_hosts.is_empty() {
        policy.restrict_to(p.allowed_hosts.iter().map(String::as_str));
    }
    Ok(policy)
}

pub fn lookup_options(o: wit::LookupOptions) -> LookupOptions {
    LookupOptions {
        kind: match o.kind {
            wit::LookupKind::Manifest => LookupKind::Manifest,
            wit::LookupKind::Blob => LookupKind::Blob,
        },
        head: o.head,
    }
}

pub fn index_to_wit(i: &Index) -> wt::Index {
    wt::Index {
        schema_version: i.schema_version,
        media_type: i.media_type.clone().unwrap_or_default(),
        artifact_type: i.artifact_type.clone(),
        manifests: i.manifests.iter().map(descriptor_to_wit).collect(),
        subject: i.subject.as_ref().map(descriptor_to_wit),
        annotations: i
            .annotations
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    }
}

pub fn child_refs(c: wit::ChildRefs) -> Result<ChildRefs, Error> {
    let mut by_digest = std::collections::HashMap::new();
    for (digest, r) in &c.by_digest {
        by_digest.insert(Digest::parse(digest)?, reference_from_wit(r)?);
    }
    let fallback = c.fallback.as_ref().map(reference_from_wit).transpose()?;
    Ok(ChildRefs {
        by_digest,
        fallback,
    })
}
