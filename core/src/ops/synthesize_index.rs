//! Synthesize-index: whatever a reference points at, as an OCI index a deploy
//! pipeline can trust. Platforms missing from entries are read from the
//! images' configs (fetched concurrently, each object once), bashbrew
//! architectures are computed fresh, and dangling attestations are dropped.

use base64::Engine as _;

use crate::client::Client;
use crate::descriptor::{Descriptor, ANNOTATION_BASHBREW_ARCH, ANNOTATION_REF_NAME};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::index::{config_platform, Index};
use crate::manifest::ManifestChildren;
use crate::media_type::{
    is_image_config, is_image_manifest, DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX,
};
use crate::ops::group::Group;
use crate::ops::lookup::{Body, Found, Lookup};
use crate::ops::{Operation, Output, Step};
use crate::reference::Reference;
use crate::{advance, ready};

/// BuildKit's annotation naming what kind of entry this is.
pub const ANNOTATION_REFERENCE_TYPE: &str = "vnd.docker.reference.type";
/// BuildKit's value of [`ANNOTATION_REFERENCE_TYPE`] for attestations.
pub const REFERENCE_TYPE_ATTESTATION: &str = "attestation-manifest";
/// BuildKit's annotation naming an attestation's subject.
pub const ANNOTATION_REFERENCE_DIGEST: &str = "vnd.docker.reference.digest";

/// Which object a platform read is reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Read {
    Manifest,
    Config,
}

#[derive(Debug)]
enum Stage {
    /// Looking the reference itself up.
    Top(Box<Lookup>),
    /// Filling in entries' platforms.
    Platforms(Box<Platforms>),
}

/// Platform reads in progress: each member reads one entry's manifest or
/// config.
#[derive(Debug)]
struct Platforms {
    /// The index, and what its entries are named after.
    index: Index,
    reference: Reference,
    /// Entries not yet planned.
    next: usize,
    reads: Group<(usize, Read), Lookup>,
}

/// The synthesize-index state machine.
#[derive(Debug)]
pub struct SynthesizeIndex {
    reference: Reference,
    stage: Stage,
}

impl SynthesizeIndex {
    /// Synthesizes the index of `reference` (tag defaults to `latest`).
    pub fn new(reference: Reference) -> Self {
        let top = Box::new(Lookup::manifest(reference.clone(), false));
        SynthesizeIndex {
            reference,
            stage: Stage::Top(top),
        }
    }

    /// The looked-up object: nothing, or the index whose platforms to complete.
    fn found(&self, found: Option<Found>) -> Result<Step<Stage, Option<Index>>> {
        let Some(found) = found else {
            return Ok(Step::Done(None));
        };
        let platforms = Platforms {
            index: self.index_of(found)?,
            reference: self.reference.clone(),
            next: 0,
            reads: Group::new(),
        };
        Ok(Step::Next(Stage::Platforms(Box::new(platforms))))
    }

    /// Turns the looked-up object into the index to complete.
    fn index_of(&self, found: Found) -> Result<Index> {
        let Body::Bytes(bytes) = found.body else {
            return Err(Error::Internal(format!(
                "{}: manifest content missing",
                self.reference
            )));
        };
        let descriptor = found.descriptor;
        let mut index = if is_image_manifest(&descriptor.media_type) {
            // One entry: the manifest itself, its bytes embedded so the
            // platform step reads them without asking again.
            let mut entry = Descriptor::new(
                descriptor.media_type.clone(),
                descriptor.digest.clone(),
                descriptor.size,
            );
            entry.data = Some(base64::engine::general_purpose::STANDARD.encode(&bytes));
            Index {
                manifests: vec![entry],
                ..Index::default()
            }
        } else if descriptor.media_type == OCI_INDEX || descriptor.media_type == DOCKER_LIST {
            serde_json::from_slice(&bytes).map_err(|e| {
                Error::protocol(
                    self.reference.to_string(),
                    format!("index is not valid JSON: {e}"),
                )
            })?
        } else {
            return Err(Error::InvalidInput(format!(
                "{}: unsupported mediaType {:?}",
                self.reference, descriptor.media_type
            )));
        };

        match index.schema_version {
            0 => index.schema_version = 2,
            2 => {}
            other => {
                return Err(Error::InvalidInput(format!(
                    "{}: unsupported index schemaVersion {other}",
                    self.reference
                )))
            }
        }
        match index.media_type.as_deref() {
            None | Some("") => {
                let docker = index
                    .manifests
                    .first()
                    .is_some_and(|m| m.media_type == DOCKER_MANIFEST);
                index.media_type = Some(if docker { DOCKER_LIST } else { OCI_INDEX }.to_string());
            }
            Some(OCI_INDEX) | Some(DOCKER_LIST) => {}
            Some(other) => {
                return Err(Error::InvalidInput(format!(
                    "{}: unsupported index mediaType {other:?}",
                    self.reference
                )))
            }
        }
        index.annotations.insert(
            ANNOTATION_REF_NAME.to_string(),
            ref_name(&self.reference, &descriptor.digest),
        );

        for m in &mut index.manifests {
            m.annotations.insert(
                ANNOTATION_REF_NAME.to_string(),
                ref_name(&self.reference, &m.digest),
            );
        }
        Ok(index)
    }
}

/// `reference` with another digest (its tag kept), as displayed.
fn ref_name(reference: &Reference, digest: &Digest) -> String {
    let mut r = reference.clone();
    r.digest = Some(digest.clone());
    r.to_string()
}

impl Platforms {
    /// What an entry still needs: `None` when its platform is settled, else
    /// the lookup to run (its manifest, or directly its config when the
    /// manifest is embedded).
    fn plan(reference: &Reference, entry: &mut Descriptor) -> Result<Option<(Read, Lookup)>> {
        let complete = entry
            .platform
            .as_ref()
            .is_some_and(|p| !p.os.is_empty() && !p.architecture.is_empty());
        if complete || !is_image_manifest(&entry.media_type) {
            if !complete {
                entry.platform = None;
            }
            return Ok(None);
        }
        entry.platform = None;
        match embedded(entry)? {
            Some(manifest) => Self::after_manifest(reference, entry, &manifest),
            None => {
                let lookup = Lookup::manifest(reference.with_digest(entry.digest.clone()), false);
                Ok(Some((Read::Manifest, lookup)))
            }
        }
    }

    /// Given an entry's manifest, the config lookup (if any) still needed.
    fn after_manifest(
        reference: &Reference,
        entry: &mut Descriptor,
        manifest: &[u8],
    ) -> Result<Option<(Read, Lookup)>> {
        let children = ManifestChildren::parse(manifest).map_err(|e| Error::Protocol {
            subject: ref_name(reference, &entry.digest),
            detail: e.to_string(),
        })?;
        let Some(config) = children.config.filter(|c| is_image_config(&c.media_type)) else {
            return Ok(None);
        };
        match embedded(&config)? {
            Some(bytes) => {
                Self::set_platform(reference, entry, &bytes)?;
                Ok(None)
            }
            None => Ok(Some((
                Read::Config,
                Lookup::blob(reference, config.digest, false),
            ))),
        }
    }

    fn set_platform(reference: &Reference, entry: &mut Descriptor, config: &[u8]) -> Result<()> {
        let platform = config_platform(config).map_err(|e| Error::Protocol {
            subject: ref_name(reference, &entry.digest),
            detail: format!("image config is not valid JSON: {e}"),
        })?;
        if !platform.os.is_empty() && !platform.architecture.is_empty() {
            entry.platform = Some(platform);
        }
        Ok(())
    }

    /// The final pass, in entry order: duplicates dropped, normalized
    /// platforms, fresh bashbrew architectures, attestations tied to
    /// earlier subjects, no `data`.
    fn finish(mut index: Index) -> Index {
        let mut kept: Vec<Descriptor> = Vec::with_capacity(index.manifests.len());
        for mut m in std::mem::take(&mut index.manifests) {
            // The first kept entry of a digest wins (the image spec's "first
            // match SHOULD be used"); a dropped attestation is not "seen", so
            // a later copy of it is judged again, as the original does.
            if kept.iter().any(|k| k.digest == m.digest) {
                continue;
            }
            if let Some(p) = m.platform.as_mut() {
                p.normalize();
            }
            // Never trusted from the registry: cheap to compute, only a hint.
            m.annotations.remove(ANNOTATION_BASHBREW_ARCH);
            let attestation = m
                .annotations
                .get(ANNOTATION_REFERENCE_TYPE)
                .map(String::as_str)
                == Some(REFERENCE_TYPE_ATTESTATION);
            if attestation {
                let subject_arch = m
                    .annotations
                    .get(ANNOTATION_REFERENCE_DIGEST)
                    .and_then(|d| kept.iter().find(|k| k.digest.to_string() == *d))
                    .and_then(|k| k.annotations.get(ANNOTATION_BASHBREW_ARCH))
                    .filter(|a| !a.is_empty())
                    .cloned();
                match subject_arch {
                    Some(arch) => {
                        m.annotations
                            .insert(ANNOTATION_BASHBREW_ARCH.to_string(), arch);
                    }
                    // No subject before it: a dangling attestation is dropped.
                    None => continue,
                }
            } else if let Some(arch) = m.platform.as_ref().and_then(|p| p.bashbrew_arch()) {
                m.annotations
                    .insert(ANNOTATION_BASHBREW_ARCH.to_string(), arch.to_string());
            }
            m.data = None;
            kept.push(m);
        }
        index.manifests = kept;
        index
    }

    /// An entry's manifest or config arrived: the next lookup it needs, if any.
    fn read(
        reference: &Reference,
        entry: &mut Descriptor,
        read: Read,
        result: Result<Option<Found>>,
    ) -> Result<Option<(Read, Lookup)>> {
        let what = match read {
            Read::Manifest => "manifest",
            Read::Config => "config",
        };
        let found = result?.ok_or_else(|| {
            Error::protocol(
                ref_name(reference, &entry.digest),
                format!("its {what} is missing from the registry"),
            )
        })?;
        let Body::Bytes(bytes) = found.body else {
            return Err(Error::protocol(
                ref_name(reference, &entry.digest),
                format!("its {what} is larger than 4 MiB"),
            ));
        };
        match read {
            Read::Manifest => Self::after_manifest(reference, entry, &bytes),
            Read::Config => Self::set_platform(reference, entry, &bytes).map(|()| None),
        }
    }

    /// Starts what the entry needs next, if anything.
    fn then(&mut self, entry: usize, next: Result<Option<(Read, Lookup)>>) -> Result<()> {
        if let Some((read, lookup)) = next? {
            self.reads.push((entry, read), lookup);
        }
        Ok(())
    }
}

impl Operation for Platforms {
    type Outcome = Result<Index>;

    /// Plans entries up to the concurrency bound and polls the reads until
    /// one sends or all wait.
    fn poll_output(&mut self, client: &mut Client) -> Output<Result<Index>> {
        loop {
            while self.reads.len() < client.concurrency() && self.next < self.index.manifests.len()
            {
                let entry = self.next;
                self.next += 1;
                let next = Self::plan(&self.reference, &mut self.index.manifests[entry]);
                if let Err(e) = self.then(entry, next) {
                    return Output::Done(Err(e));
                }
            }
            if self.reads.is_empty() {
                return Output::Done(Ok(Self::finish(std::mem::take(&mut self.index))));
            }
            let ((entry, read), found) = ready!(self.reads.poll(client));
            let next = Self::read(
                &self.reference,
                &mut self.index.manifests[entry],
                read,
                found,
            );
            if let Err(e) = self.then(entry, next) {
                return Output::Done(Err(e));
            }
        }
    }
}

impl Operation for SynthesizeIndex {
    type Outcome = Result<Option<Index>>;

    fn poll_output(&mut self, client: &mut Client) -> Output<Result<Option<Index>>> {
        loop {
            match &mut self.stage {
                Stage::Top(lookup) => {
                    let found = ready!(lookup.poll_output(client));
                    advance!(self.stage, found.and_then(|f| self.found(f)));
                }
                Stage::Platforms(platforms) => {
                    let index = ready!(platforms.poll_output(client));
                    advance!(self.stage, index.map(|i| Step::Done(Some(i))));
                }
            }
        }
    }
}

/// An object's embedded bytes, when present and of the right size; they
/// must then match the digest.
fn embedded(d: &Descriptor) -> Result<Option<Vec<u8>>> {
    let Some(data) = &d.data else { return Ok(None) };
    let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(data) else {
        return Ok(None);
    };
    if bytes.len() as u64 != d.size {
        return Ok(None);
    }
    let actual = Digest::of(d.digest.algorithm(), &bytes);
    if actual != d.digest {
        return Err(Error::Integrity {
            subject: d.digest.to_string(),
            detail: format!("embedded data is {actual}"),
        });
    }
    Ok(Some(bytes))
}
