//! Synthesize-index: whatever a reference points at, as an OCI index a deploy
//! pipeline can trust. Platforms missing from entries are read from the
//! images' configs (fetched concurrently, each object once), bashbrew
//! architectures are computed fresh, and dangling attestations are dropped.

use base64::Engine as _;

use crate::client::Client;
use crate::descriptor::{Descriptor, ANNOTATION_BASHBREW_ARCH, ANNOTATION_REF_NAME};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::http::{RequestId, Response, TransportError};
use crate::index::{config_platform, Index};
use crate::manifest::ManifestChildren;
use crate::media_type::{
    is_image_config, is_image_manifest, DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX,
};
use crate::ops::group::{Group, GroupOutput};
use crate::ops::lookup::{Body, Found, Lookup};
use crate::ops::{Operation, Output};
use crate::reference::Reference;

/// BuildKit's annotation naming what kind of entry this is.
pub const ANNOTATION_REFERENCE_TYPE: &str = "vnd.docker.reference.type";
/// BuildKit's value of [`ANNOTATION_REFERENCE_TYPE`] for attestations.
pub const REFERENCE_TYPE_ATTESTATION: &str = "attestation-manifest";
/// BuildKit's annotation naming an attestation's subject.
pub const ANNOTATION_REFERENCE_DIGEST: &str = "vnd.docker.reference.digest";

/// Which object a platform task is reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Manifest,
    Config,
}

#[derive(Debug)]
enum Stage {
    /// Looking the reference itself up.
    Top(Box<Lookup>),
    /// Filling in entries' platforms.
    Platforms(Box<Platforms>),
    Finished,
}

/// Platform reads in progress: each member reads one entry's manifest or
/// config.
#[derive(Debug)]
struct Platforms {
    index: Index,
    /// Entries not yet planned.
    next: usize,
    reads: Group<(usize, Step), Lookup>,
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

    /// `reference` with another digest (its tag kept), as displayed.
    fn ref_name(&self, digest: &Digest) -> String {
        let mut r = self.reference.clone();
        r.digest = Some(digest.clone());
        r.to_string()
    }

    /// Turns the looked-up object into the index to complete.
    fn start(&self, found: Found) -> Result<Index> {
        let Body::Bytes(bytes) = found.body else {
            return Err(self.protocol("manifest content missing"));
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
            serde_json::from_slice(&bytes)
                .map_err(|e| self.protocol(format!("index is not valid JSON: {e}")))?
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
            self.ref_name(&descriptor.digest),
        );

        // First entry of a digest wins (the image spec's "first match SHOULD be used").
        let mut seen = std::collections::HashSet::new();
        index.manifests.retain(|m| seen.insert(m.digest.clone()));
        for m in &mut index.manifests {
            m.annotations
                .insert(ANNOTATION_REF_NAME.to_string(), self.ref_name(&m.digest));
        }
        Ok(index)
    }

    fn protocol(&self, detail: impl Into<String>) -> Error {
        Error::Protocol {
            subject: self.reference.to_string(),
            detail: detail.into(),
        }
    }

    /// What an entry still needs: `None` when its platform is settled, else
    /// the lookup to run (its manifest, or directly its config when the
    /// manifest is embedded).
    fn plan(&self, entry: &mut Descriptor) -> Result<Option<(Step, Lookup)>> {
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
            Some(manifest) => self.after_manifest(entry, &manifest),
            None => {
                let lookup =
                    Lookup::manifest(self.reference.with_digest(entry.digest.clone()), false);
                Ok(Some((Step::Manifest, lookup)))
            }
        }
    }

    /// Given an entry's manifest, the config lookup (if any) still needed.
    fn after_manifest(
        &self,
        entry: &mut Descriptor,
        manifest: &[u8],
    ) -> Result<Option<(Step, Lookup)>> {
        let children = ManifestChildren::parse(manifest).map_err(|e| Error::Protocol {
            subject: self.ref_name(&entry.digest),
            detail: e.to_string(),
        })?;
        let Some(config) = children.config.filter(|c| is_image_config(&c.media_type)) else {
            return Ok(None);
        };
        match embedded(&config)? {
            Some(bytes) => {
                self.set_platform(entry, &bytes)?;
                Ok(None)
            }
            None => Ok(Some((
                Step::Config,
                Lookup::blob(&self.reference, config.digest, false),
            ))),
        }
    }

    fn set_platform(&self, entry: &mut Descriptor, config: &[u8]) -> Result<()> {
        let platform = config_platform(config).map_err(|e| Error::Protocol {
            subject: self.ref_name(&entry.digest),
            detail: format!("image config is not valid JSON: {e}"),
        })?;
        if !platform.os.is_empty() && !platform.architecture.is_empty() {
            entry.platform = Some(platform);
        }
        Ok(())
    }

    /// The final pass, in entry order: normalized platforms, fresh bashbrew
    /// architectures, attestations tied to earlier subjects, no `data`.
    fn finish(mut index: Index) -> Index {
        let mut kept: Vec<Descriptor> = Vec::with_capacity(index.manifests.len());
        for mut m in std::mem::take(&mut index.manifests) {
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

impl SynthesizeIndex {
    /// Advances the platform reads: plans entries up to the concurrency
    /// bound and polls the reads until one sends or all wait.
    fn poll_platforms(&self, p: &mut Platforms, client: &mut Client) -> Output<Option<Index>> {
        loop {
            while p.reads.len() < client.concurrency() && p.next < p.index.manifests.len() {
                let entry = p.next;
                p.next += 1;
                match self.plan(&mut p.index.manifests[entry]) {
                    Ok(Some((step, lookup))) => p.reads.push((entry, step), lookup),
                    Ok(None) => {}
                    Err(e) => return Output::Done(Err(e)),
                }
            }
            if p.reads.is_empty() && p.next >= p.index.manifests.len() {
                return Output::Done(Ok(Some(Self::finish(std::mem::take(&mut p.index)))));
            }
            match p.reads.poll(client) {
                GroupOutput::Send(id, request) => return Output::Send(id, request),
                GroupOutput::Wait => return Output::Wait,
                GroupOutput::Finished((entry, step), result) => {
                    match self.advance(&mut p.index.manifests[entry], step, result) {
                        Ok(Some((step, lookup))) => p.reads.push((entry, step), lookup),
                        Ok(None) => {}
                        Err(e) => return Output::Done(Err(e)),
                    }
                }
            }
        }
    }

    /// An entry's manifest or config arrived: the next lookup it needs, if any.
    fn advance(
        &self,
        entry: &mut Descriptor,
        step: Step,
        result: Result<Option<Found>>,
    ) -> Result<Option<(Step, Lookup)>> {
        let what = match step {
            Step::Manifest => "manifest",
            Step::Config => "config",
        };
        let found = result?.ok_or_else(|| Error::Protocol {
            subject: self.ref_name(&entry.digest),
            detail: format!("its {what} is missing from the registry"),
        })?;
        let Body::Bytes(bytes) = found.body else {
            return Err(Error::Protocol {
                subject: self.ref_name(&entry.digest),
                detail: format!("its {what} is larger than 4 MiB"),
            });
        };
        match step {
            Step::Manifest => self.after_manifest(entry, &bytes),
            Step::Config => self.set_platform(entry, &bytes).map(|()| None),
        }
    }
}

impl Operation for SynthesizeIndex {
    type Outcome = Option<Index>;

    fn poll_output(&mut self, client: &mut Client) -> Output<Option<Index>> {
        loop {
            match std::mem::replace(&mut self.stage, Stage::Finished) {
                Stage::Top(mut top) => match top.poll_output(client) {
                    Output::Done(Ok(None)) => return Output::Done(Ok(None)),
                    Output::Done(Ok(Some(found))) => match self.start(found) {
                        Ok(index) => {
                            self.stage = Stage::Platforms(Box::new(Platforms {
                                index,
                                next: 0,
                                reads: Group::new(),
                            }))
                        }
                        Err(e) => return Output::Done(Err(e)),
                    },
                    Output::Done(Err(e)) => return Output::Done(Err(e)),
                    Output::Send(id, request) => {
                        self.stage = Stage::Top(top);
                        return Output::Send(id, request);
                    }
                    Output::Wait => {
                        self.stage = Stage::Top(top);
                        return Output::Wait;
                    }
                },
                Stage::Platforms(mut p) => {
                    let out = self.poll_platforms(&mut p, client);
                    if !matches!(out, Output::Done(_)) {
                        self.stage = Stage::Platforms(p);
                    }
                    return out;
                }
                Stage::Finished => return Output::Wait,
            }
        }
    }

    fn handle_response(
        &mut self,
        client: &mut Client,
        id: RequestId,
        response: std::result::Result<Response, TransportError>,
    ) {
        match &mut self.stage {
            Stage::Top(top) => top.handle_response(client, id, response),
            Stage::Platforms(p) => p.reads.handle_response(client, id, response),
            Stage::Finished => {}
        }
    }
}
