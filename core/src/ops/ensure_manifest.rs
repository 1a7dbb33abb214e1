//! Ensure-manifest: makes a manifest (image or index) available at a
//! reference, copying its children from where they can be found when the
//! registry says they are missing. A manifest with a `subject` pushed to a
//! registry that keeps no referrers list itself is then listed under its
//! subject's fallback tag ([`AttachReferrer`]).

use std::collections::{HashMap, HashSet, VecDeque};

use bytes::Bytes;

use crate::auth::repository_scope;
use crate::client::Client;
use crate::descriptor::Descriptor;
use crate::digest::Digest;
use crate::distribution::manifest_path;
use crate::error::{Error, Result};
use crate::http::{BodyMode, Method, RequestBody, SMALL_BODY_LIMIT};
use crate::manifest::ManifestChildren;
use crate::ops::attach_referrer::{AttachReferrer, Referrer};
use crate::ops::confirm_push::ConfirmPush;
use crate::ops::copy_blob::CopyBlob;
use crate::ops::copy_manifest::CopyManifest;
use crate::ops::exchange::{Exchange, ExchangeSpec, Exchanged, Target};
use crate::ops::group::Group;
use crate::ops::lookup::{Found, Lookup};
use crate::ops::{Operation, Output, Step};
use crate::reference::Reference;
use crate::{advance, ready};

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

/// A child being copied: a manifest or a blob.
type Child = Box<dyn Operation<Outcome = Result<Descriptor>>>;

/// Children copied side by side, at most the client's concurrency at once;
/// the first failure is the outcome.
#[derive(Debug)]
struct CopyChildren {
    waiting: VecDeque<Child>,
    running: Group<(), Child>,
}

impl Operation for CopyChildren {
    type Outcome = Result<()>;

    fn poll_output(&mut self, client: &mut Client) -> Output<Result<()>> {
        loop {
            while self.running.len() < client.concurrency() {
                match self.waiting.pop_front() {
                    Some(child) => self.running.push((), child),
                    None => break,
                }
            }
            if self.running.is_empty() {
                return Output::Done(Ok(()));
            }
            let ((), copied) = ready!(self.running.poll(client));
            if let Err(e) = copied {
                return Output::Done(Err(e));
            }
        }
    }
}

#[derive(Debug)]
enum Stage {
    /// Is it there already (by tag when there is one)?
    Head(Box<Lookup>),
    /// Pushing; `round` counts the pushes before this one (each followed
    /// by copying the children).
    Put { exchange: Box<Exchange>, round: u8 },
    /// Copying the children the registry said were missing after push
    /// number `round` (from 0).
    Children {
        children: Box<CopyChildren>,
        round: u8,
    },
    /// The PUT's 201 confirmed nothing: is ours there? (`attach`: then list
    /// it among its subject's referrers.)
    Confirm {
        confirm: Box<ConfirmPush>,
        attach: bool,
    },
    /// Listing it among its subject's referrers, under the fallback tag.
    Attach(Box<AttachReferrer>),
}

/// How deep indexes may nest (an index of indexes of ...) in one push: a
/// registry serving a deeper chain gets an error, not our stack.
pub const MAX_NESTING: u8 = 16;

/// Pushes of a manifest at most, each after the first preceded by copying
/// its children. More than two: a child another push is writing at that
/// moment (a concurrent copy of the same image to another tag) can make a
/// registry answer missing children once more, its child in flux.
const PUSHES: u8 = 3;

/// Error codes with which registries say a manifest's children are missing
/// (distribution's own is `MANIFEST_BLOB_UNKNOWN`).
const MISSING_CHILDREN: &[&str] = &[
    "MANIFEST_BLOB_UNKNOWN",
    "BLOB_UNKNOWN",
    "MANIFEST_UNKNOWN",
    "MANIFEST_INVALID",
];

/// The ensure-manifest state machine.
#[derive(Debug)]
pub struct EnsureManifest {
    reference: Reference,
    bytes: Bytes,
    descriptor: Descriptor,
    children: ChildRefs,
    /// What it says of its subject, when it has one.
    referrer: Option<Referrer>,
    /// Leave listing it to the caller (who lists several at once).
    defer_attach: bool,
    /// Deferred: the registry did not list it itself.
    unlisted: bool,
    /// How many manifests up it is a child of (0: the one asked for).
    depth: u8,
    stage: Stage,
}

impl EnsureManifest {
    /// Ensures `bytes` (of `media_type`) at `reference`: by its tag when it
    /// has one, else by digest. A digest in `reference` must be the bytes'.
    pub fn new(
        reference: Reference,
        bytes: impl Into<Bytes>,
        media_type: &str,
        children: ChildRefs,
    ) -> Result<Self> {
        let bytes = bytes.into();
        let descriptor = Descriptor::new(media_type, Digest::sha256(&bytes), bytes.len() as u64);
        let mut reference = reference;
        match &reference.digest {
            Some(d) if *d != descriptor.digest => {
                return Err(Error::integrity(
                    reference.to_string(),
                    format!("digest mismatch: the manifest is {}", descriptor.digest),
                ))
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
        let referrer = Referrer::of(&bytes, &descriptor);
        Ok(EnsureManifest {
            reference,
            bytes,
            descriptor,
            children,
            referrer,
            defer_attach: false,
            unlisted: false,
            depth: 0,
            stage,
        })
    }

    /// Leaves listing it among its subject's referrers to the caller, who
    /// asks [`EnsureManifest::unlisted`] once it is pushed.
    pub fn deferring_attach(mut self) -> Self {
        self.defer_attach = true;
        self
    }

    /// Once ensured with [`EnsureManifest::deferring_attach`]: what it says
    /// of its subject, unless its registry said it lists it (`OCI-Subject`
    /// on the push): pushed without that, or found there already (listed
    /// or not: the caller, who reads the list, knows).
    pub fn unlisted(&self) -> Option<&Referrer> {
        self.referrer.as_ref().filter(|_| self.unlisted)
    }

    /// A child this deep in the push of another: past [`MAX_NESTING`], an error.
    pub(crate) fn at_depth(mut self, depth: u8) -> Result<Self> {
        if depth > MAX_NESTING {
            return Err(Error::protocol(
                self.reference.to_string(),
                format!("indexes nested more than {MAX_NESTING} deep; refused"),
            ));
        }
        self.depth = depth;
        Ok(self)
    }

    fn put(&self, client: &Client, round: u8) -> Stage {
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
            range: None,
            content_range: None,
        };
        Stage::Put {
            exchange: Box::new(Exchange::new(client, spec)),
            round,
        }
    }

    fn headed(&mut self, client: &Client, found: Option<Found>) -> Step<Stage, Descriptor> {
        match found {
            // Present: its children are too. Whether it is listed among its
            // subject's referrers is not known here: deferred, the caller,
            // who reads the list, decides.
            Some(found)
                if found.descriptor.digest == self.descriptor.digest
                    && found.descriptor.size == self.descriptor.size =>
            {
                self.unlisted = self.defer_attach && self.referrer.is_some();
                Step::Done(found.descriptor)
            }
            _ => Step::Next(self.put(client, 0)),
        }
    }

    fn pushed(
        &mut self,
        client: &mut Client,
        answer: Exchanged,
        round: u8,
    ) -> Result<Step<Stage, Descriptor>> {
        let response = &answer.response;
        if response.is_success() {
            // A registry with the referrers API says `OCI-Subject`: it
            // lists the manifest itself.
            let attach = self.referrer.is_some() && response.headers.get("oci-subject").is_none();
            let d = &self.descriptor;
            let head = || Lookup::manifest(self.reference.with_digest(d.digest.clone()), true);
            let head = || head().for_push();
            return Ok(
                match ConfirmPush::after(response, head, &d.digest, Some(d.size), &self.reference) {
                    Some(confirm) => Step::Next(Stage::Confirm {
                        confirm: Box::new(confirm),
                        attach,
                    }),
                    None => self.pushed_as_is(client, attach),
                },
            );
        }
        // Children the registry says are missing (in any of its errors:
        // distribution puts DIGEST_INVALID first for a child in flux): copy
        // them, then push again. Any other refusal (401, 403, ...) is the
        // manifest's.
        let codes = crate::distribution::RegistryError::codes(response.bytes());
        let missing_children = matches!(response.status, 400 | 404)
            && (codes.is_empty() || codes.iter().any(|c| MISSING_CHILDREN.contains(&c.as_str())));
        if missing_children && round + 1 < PUSHES {
            let children = CopyChildren {
                waiting: self.plan_children()?,
                running: Group::new(),
            };
            let children = Box::new(children);
            return Ok(Step::Next(Stage::Children { children, round }));
        }
        Err(Error::registry(self.reference.to_string(), response))
    }

    /// The manifest is at its reference as pushed: recorded, then listed
    /// among its subject's referrers when `attach`, or the outcome.
    fn pushed_as_is(&mut self, client: &mut Client, attach: bool) -> Step<Stage, Descriptor> {
        let d = self.descriptor.clone();
        client
            .cache
            .record(&self.reference, &d, Some(self.bytes.clone()));
        if self.defer_attach {
            self.unlisted = attach && self.referrer.is_some();
            return Step::Done(d);
        }
        match (&self.referrer, attach) {
            (Some(referrer), true) => {
                let attach = AttachReferrer::new(client, &self.reference, referrer.clone());
                Step::Next(Stage::Attach(Box::new(attach)))
            }
            _ => Step::Done(d),
        }
    }

    /// Every child to copy: manifests (ensured recursively, with their own
    /// source as their children's fallback) and blobs (foreign layers, with
    /// `urls`, are not copied).
    fn plan_children(&self) -> Result<VecDeque<Child>> {
        let parsed = ManifestChildren::parse(&self.bytes)
            .map_err(|e| Error::protocol(self.reference.to_string(), e.to_string()))?;
        let target = |digest: &Digest| self.reference.with_digest(digest.clone());
        let mut out: VecDeque<Child> = VecDeque::new();
        let mut seen = HashSet::new();
        for m in &parsed.manifests {
            if !seen.insert(m.digest.clone()) {
                continue;
            }
            let source = self.children.source_of(&m.digest, &self.reference);
            let mut grandchildren = self.children.clone();
            grandchildren.fallback = Some(source.clone());
            let op = CopyManifest::new(source, target(&m.digest), grandchildren)
                .with_media_type(&m.media_type)
                .at_depth(self.depth + 1);
            out.push_back(Box::new(op));
        }
        for b in parsed.config.iter().chain(parsed.layers.iter()) {
            if !b.urls.is_empty() || !seen.insert(b.digest.clone()) {
                continue;
            }
            let source = self.children.source_of(&b.digest, &self.reference);
            let op = CopyBlob::new(source, target(&b.digest), Some(b.clone()))?;
            out.push_back(Box::new(op));
        }
        Ok(out)
    }
}

impl Operation for EnsureManifest {
    type Outcome = Result<Descriptor>;

    fn poll_output(&mut self, client: &mut Client) -> Output<Result<Descriptor>> {
        loop {
            match &mut self.stage {
                Stage::Head(lookup) => {
                    let found = ready!(lookup.poll_output(client));
                    advance!(self.stage, found.map(|f| self.headed(client, f)));
                }
                Stage::Put { exchange, round } => {
                    let round = *round;
                    let answer = ready!(exchange.poll_output(client));
                    advance!(
                        self.stage,
                        answer.and_then(|a| self.pushed(client, a, round))
                    );
                }
                Stage::Children { children, round } => {
                    let round = *round + 1;
                    let copied = ready!(children.poll_output(client));
                    advance!(
                        self.stage,
                        copied.map(|()| Step::Next(self.put(client, round)))
                    );
                }
                Stage::Confirm { confirm, attach } => {
                    let attach = *attach;
                    let held = ready!(confirm.poll_output(client));
                    advance!(self.stage, held.map(|_| self.pushed_as_is(client, attach)));
                }
                Stage::Attach(attach) => {
                    let attached = ready!(attach.poll_output(client));
                    let d = self.descriptor.clone();
                    advance!(self.stage, attached.map(|()| Step::Done(d)));
                }
            }
        }
    }
}
