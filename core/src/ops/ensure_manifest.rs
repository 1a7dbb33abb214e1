//! Ensure-manifest: makes a manifest (image or index) available at a
//! reference, copying its children from where they can be found when the
//! registry says they are missing.

use std::collections::{HashMap, VecDeque};

use crate::auth::repository_scope;
use crate::client::Client;
use crate::descriptor::Descriptor;
use crate::digest::Digest;
use crate::distribution::{manifest_path, RegistryError};
use crate::error::{Error, Result};
use crate::http::{
    BodyMode, Method, RequestBody, RequestId, Response, TransportError, SMALL_BODY_LIMIT,
};
use crate::manifest::ManifestChildren;
use crate::ops::copy_blob::CopyBlob;
use crate::ops::copy_manifest::CopyManifest;
use crate::ops::exchange::{Exchange, ExchangeSpec, Exchanged, Target};
use crate::ops::group::{Group, GroupOutput};
use crate::ops::lookup::Lookup;
use crate::ops::{pass, Operation, Output};
use crate::reference::Reference;

/// Where a manifest's children can be found: by digest, and a fallback for
/// any child not listed.
#[derive(Debug, Clone, Default)]
pub struct ChildRefs {
    /// Specific children's sources.
    pub by_digest: HashMap<Digest, Reference>,
    /// Where any other child is (defaults to the manifest's own reference,
    /// or a copy's source).
    pub fallback: Option<Reference>,
}

impl ChildRefs {
    /// The source of `digest` (its repository, with that digest and no tag).
    fn source_of(&self, digest: &Digest, default: &Reference) -> Reference {
        let base = self
            .by_digest
            .get(digest)
            .or(self.fallback.as_ref())
            .unwrap_or(default);
        let mut r = base.clone();
        r.tag = None;
        r.digest = Some(digest.clone());
        r
    }
}

/// A child being copied.
#[derive(Debug)]
enum Child {
    Manifest(Box<CopyManifest>),
    Blob(Box<CopyBlob>),
}

impl Operation for Child {
    type Outcome = Descriptor;

    fn poll_output(&mut self, client: &mut Client) -> Output<Descriptor> {
        match self {
            Child::Manifest(op) => op.poll_output(client),
            Child::Blob(op) => op.poll_output(client),
        }
    }

    fn handle_response(
        &mut self,
        client: &mut Client,
        id: RequestId,
        response: std::result::Result<Response, TransportError>,
    ) {
        match self {
            Child::Manifest(op) => op.handle_response(client, id, response),
            Child::Blob(op) => op.handle_response(client, id, response),
        }
    }
}

#[derive(Debug)]
enum Stage {
    Head(Box<Lookup>),
    Put {
        exchange: Box<Exchange>,
        retried: bool,
    },
    Children {
        waiting: VecDeque<Child>,
        running: Group<(), Child>,
    },
    Finished,
}

/// The ensure-manifest state machine.
#[derive(Debug)]
pub struct EnsureManifest {
    reference: Reference,
    bytes: Vec<u8>,
    descriptor: Descriptor,
    children: ChildRefs,
    stage: Stage,
    outcome: Option<Result<Descriptor>>,
}

impl EnsureManifest {
    /// Ensures `bytes` (of `media_type`) at `reference`: by its tag when it
    /// has one, else by digest. A digest in `reference` must be the bytes'.
    pub fn new(
        reference: Reference,
        bytes: Vec<u8>,
        media_type: &str,
        children: ChildRefs,
    ) -> Result<Self> {
        let descriptor = Descriptor::new(media_type, Digest::sha256(&bytes), bytes.len() as u64);
        let mut reference = reference;
        match &reference.digest {
            Some(d) if *d != descriptor.digest => {
                return Err(Error::Integrity {
                    subject: reference.to_string(),
                    detail: format!("digest mismatch: the manifest is {}", descriptor.digest),
                })
            }
            Some(_) => {}
            None if reference.tag.is_none() => reference.digest = Some(descriptor.digest.clone()),
            None => {}
        }
        // A HEAD by tag when there is one: by digest it would find the
        // content present and skip setting the tag.
        let mut head = reference.clone();
        if head.tag.is_some() {
            head.digest = None;
        }
        let stage = Stage::Head(Box::new(Lookup::manifest(head, true).for_push()));
        Ok(EnsureManifest {
            reference,
            bytes,
            descriptor,
            children,
            stage,
            outcome: None,
        })
    }

    fn put(&self, client: &Client) -> Exchange {
        let object = match (&self.reference.tag, &self.reference.digest) {
            (Some(t), _) => t.clone(),
            (None, Some(d)) => d.to_string(),
            (None, None) => self.descriptor.digest.to_string(),
        };
        let spec = ExchangeSpec {
            registry: self.reference.host.clone(),
            scopes: vec![repository_scope(&self.reference.repository, "pull,push")],
            method: Method::Put,
            target: Target::Path(manifest_path(&self.reference.repository, &object)),
            accept: None,
            content_type: Some(self.descriptor.media_type.clone()),
            body: RequestBody::Bytes(self.bytes.clone()),
            body_mode: BodyMode::Buffer(SMALL_BODY_LIMIT),
            range_from: None,
        };
        Exchange::new(client, spec)
    }

    fn finish(&mut self, client: &mut Client, outcome: Result<Descriptor>) {
        if let Ok(d) = &outcome {
            client
                .cache
                .record(&self.reference, d, Some(self.bytes.clone()));
        }
        self.stage = Stage::Finished;
        self.outcome = Some(outcome);
    }

    fn pushed(
        &mut self,
        client: &mut Client,
        Exchanged { response, .. }: Exchanged,
        retried: bool,
    ) {
        if response.is_success() {
            if let Some(claimed) = response.headers.get("docker-content-digest") {
                if claimed.trim() != self.descriptor.digest.to_string() {
                    let e = Error::Integrity {
                        subject: self.reference.to_string(),
                        detail: format!(
                            "pushed digest from registry ({}) does not match expected digest ({})",
                            claimed.trim(),
                            self.descriptor.digest
                        ),
                    };
                    return self.finish(client, Err(e));
                }
            }
            let d = self.descriptor.clone();
            return self.finish(client, Ok(d));
        }
        // Any 4xx (MANIFEST_BLOB_UNKNOWN, BLOB_UNKNOWN, ...) most likely
        // means missing children: copy them, then push again, once.
        if (400..500).contains(&response.status) && !retried {
            return match self.plan_children(client) {
                Ok(waiting) => {
                    self.stage = Stage::Children {
                        waiting,
                        running: Group::new(),
                    };
                }
                Err(e) => self.finish(client, Err(e)),
            };
        }
        let e = RegistryError::parse(response.bytes());
        let err = Error::Registry {
            subject: self.reference.to_string(),
            status: response.status,
            code: e.code,
            message: e.message,
        };
        self.finish(client, Err(err));
    }

    /// Every child to copy: manifests (ensured recursively, with their own
    /// source as their children's fallback) and blobs (foreign layers, with
    /// `urls`, are not copied).
    fn plan_children(&self, client: &Client) -> Result<VecDeque<Child>> {
        let parsed = ManifestChildren::parse(&self.bytes).map_err(|e| Error::Protocol {
            subject: self.reference.to_string(),
            detail: e.to_string(),
        })?;
        let target = |digest: &Digest| Reference {
            host: self.reference.host.clone(),
            repository: self.reference.repository.clone(),
            tag: None,
            digest: Some(digest.clone()),
        };
        let mut out = VecDeque::new();
        let mut seen = std::collections::HashSet::new();
        for m in &parsed.manifests {
            if !seen.insert(m.digest.clone()) {
                continue;
            }
            let source = self.children.source_of(&m.digest, &self.reference);
            let mut grandchildren = self.children.clone();
            grandchildren.fallback = Some(source.clone());
            let op = CopyManifest::new(source, target(&m.digest), grandchildren)
                .with_media_type(&m.media_type);
            out.push_back(Child::Manifest(Box::new(op)));
        }
        for b in parsed.config.iter().chain(parsed.layers.iter()) {
            if !b.urls.is_empty() || !seen.insert(b.digest.clone()) {
                continue;
            }
            let source = self.children.source_of(&b.digest, &self.reference);
            let op = CopyBlob::new(client, source, target(&b.digest), Some(b.clone()))?;
            out.push_back(Child::Blob(Box::new(op)));
        }
        Ok(out)
    }
}

impl Operation for EnsureManifest {
    type Outcome = Descriptor;

    fn poll_output(&mut self, client: &mut Client) -> Output<Descriptor> {
        loop {
            if let Some(outcome) = self.outcome.take() {
                return Output::Done(outcome);
            }
            match std::mem::replace(&mut self.stage, Stage::Finished) {
                Stage::Head(mut lookup) => match lookup.poll_output(client) {
                    Output::Done(Ok(Some(found)))
                        if found.descriptor.digest == self.descriptor.digest
                            && found.descriptor.size == self.descriptor.size =>
                    {
                        // Present: its children are too.
                        self.stage = Stage::Finished;
                        return Output::Done(Ok(found.descriptor));
                    }
                    Output::Done(Ok(_)) => {
                        self.stage = Stage::Put {
                            exchange: Box::new(self.put(client)),
                            retried: false,
                        }
                    }
                    Output::Done(Err(e)) => self.finish(client, Err(e)),
                    other => {
                        self.stage = Stage::Head(lookup);
                        return pass(other);
                    }
                },
                Stage::Put {
                    mut exchange,
                    retried,
                } => match exchange.poll_output(client) {
                    Output::Done(Ok(x)) => self.pushed(client, x, retried),
                    Output::Done(Err(e)) => self.finish(client, Err(e)),
                    other => {
                        self.stage = Stage::Put { exchange, retried };
                        return pass(other);
                    }
                },
                Stage::Children {
                    mut waiting,
                    mut running,
                } => {
                    while running.len() < client.concurrency() {
                        match waiting.pop_front() {
                            Some(child) => running.push((), child),
                            None => break,
                        }
                    }
                    if running.is_empty() {
                        self.stage = Stage::Put {
                            exchange: Box::new(self.put(client)),
                            retried: true,
                        };
                        continue;
                    }
                    match running.poll(client) {
                        GroupOutput::Send(id, request) => {
                            self.stage = Stage::Children { waiting, running };
                            return Output::Send(id, request);
                        }
                        GroupOutput::Wait => {
                            self.stage = Stage::Children { waiting, running };
                            return Output::Wait;
                        }
                        GroupOutput::Finished((), Ok(_)) => {
                            self.stage = Stage::Children { waiting, running }
                        }
                        GroupOutput::Finished((), Err(e)) => self.finish(client, Err(e)),
                    }
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
            Stage::Head(lookup) => lookup.handle_response(client, id, response),
            Stage::Put { exchange, .. } => exchange.handle_response(client, id, response),
            Stage::Children { running, .. } => running.handle_response(client, id, response),
            Stage::Finished => {}
        }
    }
}
