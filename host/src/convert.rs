//! The one conversion layer between the component's WIT types and the
//! core's: what the host hands the component, and what it prints of the
//! answers (the core's serde types give the OCI JSON shape).

use ocirelay_core::auth::Credential;
use ocirelay_core::index::Index;
use ocirelay_core::ops::batch::Query;
use ocirelay_core::ops::lookup::{LookupKind, LookupOptions};
use ocirelay_core::{Descriptor, Digest, Platform, Reference};

use crate::error::HostError;
use crate::runtime::wit;

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

impl From<Credential> for wit::Credential {
    fn from(c: Credential) -> Self {
        match c {
            Credential::Basic { username, password } => {
                wit::Credential::Basic((username, password))
            }
            Credential::Bearer(token) => wit::Credential::Bearer(token),
            Credential::IdentityToken(token) => wit::Credential::IdentityToken(token),
        }
    }
}

impl From<LookupOptions> for wit::LookupOptions {
    fn from(o: LookupOptions) -> Self {
        wit::LookupOptions {
            kind: match o.kind {
                LookupKind::Manifest => wit::LookupKind::Manifest,
                LookupKind::Blob => wit::LookupKind::Blob,
            },
            head: o.head,
        }
    }
}

impl From<&Query> for wit::Query {
    fn from(q: &Query) -> Self {
        match q {
            Query::Lookup(r, options) => wit::Query::Lookup((r.into(), (*options).into())),
            Query::SynthesizeIndex(r) => wit::Query::SynthesizeIndex(r.into()),
        }
    }
}

/// The component's descriptor; a digest it should never have produced is
/// our own bug.
impl TryFrom<&wit::Descriptor> for Descriptor {
    type Error = HostError;

    fn try_from(d: &wit::Descriptor) -> Result<Self, HostError> {
        let digest = Digest::parse(&d.digest).map_err(|e| {
            HostError::Internal(format!("the component returned a bad digest: {e}"))
        })?;
        let mut out = Descriptor::new(d.media_type.clone(), digest, d.size);
        out.urls = d.urls.clone();
        out.annotations = d.annotations.iter().cloned().collect();
        out.artifact_type = d.artifact_type.clone();
        out.platform = d.platform.as_ref().map(|p| Platform {
            architecture: p.architecture.clone(),
            os: p.os.clone(),
            os_version: p.os_version.clone(),
            os_features: p.os_features.clone(),
            variant: p.variant.clone(),
        });
        Ok(out)
    }
}

impl TryFrom<&wit::Index> for Index {
    type Error = HostError;

    fn try_from(i: &wit::Index) -> Result<Self, HostError> {
        Ok(Index {
            schema_version: i.schema_version,
            media_type: (!i.media_type.is_empty()).then(|| i.media_type.clone()),
            artifact_type: i.artifact_type.clone(),
            manifests: i
                .manifests
                .iter()
                .map(TryInto::try_into)
                .collect::<Result<_, _>>()?,
            subject: i.subject.as_ref().map(TryInto::try_into).transpose()?,
            annotations: i.annotations.iter().cloned().collect(),
        })
    }
}
