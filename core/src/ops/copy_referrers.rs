//! Copy-referrers: what refers to an image (signatures, SBOMs,
//! attestations), copied from its source repository to its destination,
//! digests unchanged, after the image itself (a registry may refuse a
//! `subject` it does not have): for the manifest and, when it is an index,
//! each of its children; then, recursively, what refers to each referrer
//! (a signature of an SBOM). Each referrer is pushed with
//! [`EnsureManifest`]; where the destination keeps no list itself (no
//! `OCI-Subject`), a subject's referrers are then listed under its fallback
//! tag in one write ([`AttachReferrer::all`]). cosign's older tags
//! (`sha256-<hex>.sig`, `.att`, `.sbom`) are copied as tags.
//!
//! A re-run reads each subject's list at both ends and nothing else of
//! what is there already: a referrer the destination lists is not read
//! again (what refers to it is still looked at). Once a repository has
//! answered that it has no referrers API, its later lists come from the
//! fallback tag directly. A referrer found at the destination but not
//! listed there (a run cut between its push and its listing) is listed.
//!
//! A listed referrer whose own `subject` names another manifest is not
//! copied: it is reported as skipped. A cycle (A refers to B, B to A) ends
//! at the manifests already visited. A referrer that fails its digest fails
//! the copy naming it, before anything of it is pushed.

use std::collections::{HashSet, VecDeque};

use crate::client::Client;
use crate::descriptor::Descriptor;
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::manifest::ManifestChildren;
use crate::ops::attach_referrer::AttachReferrer;
use crate::ops::copy_manifest::CopyManifest;
use crate::ops::ensure_manifest::{ChildRefs, EnsureManifest};
use crate::ops::lookup::{Body, Found, Lookup};
use crate::ops::referrers::{fallback_tag, ListReferrers, Source, MAX_REFERRERS};
use crate::ops::{Operation, Output, Step};
use crate::reference::Reference;
use crate::{advance, ready};

/// cosign's tags for what it attaches to `<alg>-<hex>`.
pub const COSIGN_SUFFIXES: [&str; 3] = ["sig", "att", "sbom"];

/// What a copy of referrers did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CopiedReferrers {
    /// The referrers copied (or found there already), in the order copied.
    pub copied: Vec<Descriptor>,
    /// cosign's tags copied (`sha256-<hex>.sig`, ...).
    pub tags: Vec<String>,
    /// Listed referrers not copied, each with why.
    pub skipped: Vec<String>,
}

#[derive(Debug)]
enum Stage {
    /// The source manifest read, for its digest and children.
    Subject(Box<Lookup>),
    /// The current subject's referrers listed at the source.
    List(Box<ListReferrers>),
    /// ... and at the destination, for what is there already.
    ListThere(Box<ListReferrers>),
    /// A listed referrer of the current subject read from the source.
    Read(Box<Lookup>),
    /// A referrer pushed to the destination.
    Push {
        pushed: Digest,
        ensure: Box<EnsureManifest>,
    },
    /// Is cosign's tag there?
    CosignHead { tag: String, head: Box<Lookup> },
    /// ... and at the destination already?
    CosignThere(Box<CosignThere>),
    /// cosign's tag copied.
    CosignCopy {
        tag: String,
        copy: Box<CopyManifest>,
    },
    /// The current subject's referrers, pushed, listed at the destination
    /// in one write.
    Attach(Box<AttachReferrer>),
}

/// A cosign tag found at the source, asked for at the destination.
#[derive(Debug)]
struct CosignThere {
    tag: String,
    /// Where the source has it, and what it is.
    from: Reference,
    descriptor: Descriptor,
    head: Lookup,
}

/// The copy-referrers state machine.
#[derive(Debug)]
pub struct CopyReferrers {
    source: Reference,
    destination: Reference,
    /// Manifests whose referrers are still to be listed.
    subjects: VecDeque<Digest>,
    /// The subject being handled.
    current: Option<Digest>,
    /// Its referrers still to read.
    listed: VecDeque<Descriptor>,
    /// Its referrers the destination lists already.
    there: HashSet<Digest>,
    /// Whether the destination lists referrers itself (its API).
    there_by_api: bool,
    /// Whether each end has the referrers API (not known until asked).
    source_api: Option<bool>,
    destination_api: Option<bool>,
    /// Its referrers pushed that the destination did not list itself.
    pending: Vec<Descriptor>,
    /// cosign tags still to look for.
    cosign: VecDeque<String>,
    /// Manifests seen (subjects and referrers): a cycle ends here.
    seen: HashSet<Digest>,
    done: CopiedReferrers,
    stage: Stage,
}

impl CopyReferrers {
    /// Copies what refers to `source` (and to its children when it is an
    /// index) into `destination`'s repository; the manifest itself must be
    /// there already (copied first).
    pub fn new(source: Reference, destination: Reference) -> Self {
        let read = Lookup::manifest(source.clone(), false);
        CopyReferrers {
            source,
            destination,
            subjects: VecDeque::new(),
            current: None,
            listed: VecDeque::new(),
            there: HashSet::new(),
            there_by_api: false,
            source_api: None,
            destination_api: None,
            pending: Vec::new(),
            cosign: VecDeque::new(),
            seen: HashSet::new(),
            done: CopiedReferrers::default(),
            stage: Stage::Subject(Box::new(read)),
        }
    }

    fn at_source(&self, digest: &Digest) -> Reference {
        self.source.with_digest(digest.clone())
    }

    /// cosign's `tag` at the destination.
    fn cosign_there(&self, tag: &str) -> Reference {
        let mut at = self.destination.clone();
        at.tag = Some(tag.to_string());
        at.digest = None;
        at
    }

    /// The source manifest read: it and its children are the subjects.
    fn subject_read(
        &mut self,
        client: &Client,
        found: Option<Found>,
    ) -> Result<Step<Stage, CopiedReferrers>> {
        let found = found.ok_or_else(|| Error::not_found(self.source.to_string()))?;
        let digest = found.descriptor.digest.clone();
        self.enqueue(digest);
        if let Body::Bytes(bytes) = &found.body {
            let children = ManifestChildren::parse(bytes)
                .map_err(|e| Error::protocol(self.source.to_string(), e.to_string()))?;
            for child in children.manifests {
                self.enqueue(child.digest);
            }
        }
        self.next(client)
    }

    fn enqueue(&mut self, digest: Digest) {
        if self.seen.insert(digest.clone()) {
            self.subjects.push_back(digest);
        }
    }

    /// What to do next: the current subject's next listed referrer, else
    /// listing those pushed at the destination, else the next cosign tag,
    /// else the next subject's list, else the end.
    fn next(&mut self, client: &Client) -> Result<Step<Stage, CopiedReferrers>> {
        if let Some(subject) = self.current.clone() {
            while let Some(referrer) = self.listed.pop_front() {
                if !self.there.contains(&referrer.digest) {
                    let read = Lookup::manifest(self.at_source(&referrer.digest), false);
                    return Ok(Step::Next(Stage::Read(Box::new(read))));
                }
                // Listed at the destination: copied and checked by an
                // earlier run; what refers to it may be new.
                if self.seen.insert(referrer.digest.clone()) {
                    self.subjects.push_back(referrer.digest.clone());
                }
                self.done.copied.push(referrer);
            }
            if !self.pending.is_empty() {
                let entries = std::mem::take(&mut self.pending);
                let attach = AttachReferrer::all(client, &self.destination, &subject, entries);
                return Ok(Step::Next(Stage::Attach(Box::new(attach))));
            }
        }
        if let Some(tag) = self.cosign.pop_front() {
            let mut at = self.source.clone();
            at.tag = Some(tag.clone());
            at.digest = None;
            return Ok(Step::Next(Stage::CosignHead {
                tag,
                head: Box::new(Lookup::manifest(at, true)),
            }));
        }
        match self.subjects.pop_front() {
            Some(subject) => {
                let base = fallback_tag(&subject);
                self.cosign = COSIGN_SUFFIXES
                    .iter()
                    .map(|s| format!("{base}.{s}"))
                    .collect();
                self.current = Some(subject.clone());
                self.there.clear();
                self.there_by_api = false;
                let list = list_at(client, &self.source, &subject, self.source_api);
                Ok(Step::Next(Stage::List(Box::new(list))))
            }
            None => Ok(Step::Done(std::mem::take(&mut self.done))),
        }
    }
}

impl Operation for CopyReferrers {
    type Outcome = Result<CopiedReferrers>;

    fn poll_output(&mut self, client: &mut Client) -> Output<Self::Outcome> {
        loop {
            match &mut self.stage {
                Stage::Subject(read) => {
                    let found = ready!(read.poll_output(client));
                    advance!(self.stage, found.and_then(|f| self.subject_read(client, f)));
                }
                Stage::List(list) => {
                    let listed = ready!(list.poll_output(client));
                    let step = listed.and_then(|referrers| {
                        let total = self.done.copied.len() + referrers.manifests.len();
                        if total > MAX_REFERRERS {
                            return Err(Error::protocol(
                                self.source.to_string(),
                                format!("more than {MAX_REFERRERS} referrers to copy; refused"),
                            ));
                        }
                        self.source_api = Some(referrers.source == Source::Api);
                        let fresh = referrers
                            .manifests
                            .into_iter()
                            .filter(|d| !self.seen.contains(&d.digest));
                        self.listed = fresh.collect();
                        if self.listed.is_empty() {
                            return self.next(client);
                        }
                        let subject = self.current.clone().ok_or_else(no_subject)?;
                        let api = self.destination_api;
                        let there = list_at(client, &self.destination, &subject, api);
                        Ok(Step::Next(Stage::ListThere(Box::new(there))))
                    });
                    advance!(self.stage, step);
                }
                Stage::ListThere(list) => {
                    let listed = ready!(list.poll_output(client));
                    let step = listed.and_then(|there| {
                        let by_api = there.source == Source::Api;
                        self.destination_api = Some(by_api);
                        self.there_by_api = by_api;
                        self.there = there.manifests.into_iter().map(|d| d.digest).collect();
                        self.next(client)
                    });
                    advance!(self.stage, step);
                }
                Stage::Read(read) => {
                    let found = ready!(read.poll_output(client));
                    let step = found.and_then(|found| self.referrer_read(client, found));
                    advance!(self.stage, step);
                }
                Stage::Push { pushed, ensure } => {
                    let pushed = pushed.clone();
                    let ensured = ready!(ensure.poll_output(client));
                    // Unlisted: pushed with no `OCI-Subject`, or there already
                    // but missing from the destination's own list.
                    if let Some(unlisted) = ensure.unlisted().filter(|_| !self.there_by_api) {
                        self.pending.push(unlisted.entry.clone());
                    }
                    let step = ensured.and_then(|descriptor| {
                        self.done.copied.push(descriptor);
                        // What refers to this referrer comes after it.
                        self.subjects.push_back(pushed);
                        self.next(client)
                    });
                    advance!(self.stage, step);
                }
                Stage::CosignHead { tag, head } => {
                    let tag = tag.clone();
                    let found = ready!(head.poll_output(client));
                    let step = found.and_then(|found| match found {
                        None => self.next(client),
                        Some(found) => {
                            let head = Lookup::manifest(self.cosign_there(&tag), true);
                            Ok(Step::Next(Stage::CosignThere(Box::new(CosignThere {
                                tag,
                                from: found.reference,
                                descriptor: found.descriptor,
                                head,
                            }))))
                        }
                    });
                    advance!(self.stage, step);
                }
                Stage::CosignThere(cosign) => {
                    let there = ready!(cosign.head.poll_output(client));
                    let CosignThere {
                        tag,
                        from,
                        descriptor,
                        ..
                    } = cosign.as_ref();
                    let (tag, from, descriptor) = (tag.clone(), from.clone(), descriptor.clone());
                    let step = there.and_then(|there| match there {
                        Some(there) if there.descriptor.digest == descriptor.digest => {
                            self.done.tags.push(tag);
                            self.next(client)
                        }
                        _ => {
                            let to = self.cosign_there(&tag);
                            let copy = CopyManifest::new(from, to, ChildRefs::default())
                                .with_media_type(&descriptor.media_type);
                            Ok(Step::Next(Stage::CosignCopy {
                                tag,
                                copy: Box::new(copy),
                            }))
                        }
                    });
                    advance!(self.stage, step);
                }
                Stage::Attach(attach) => {
                    let attached = ready!(attach.poll_output(client));
                    advance!(self.stage, attached.and_then(|()| self.next(client)));
                }
                Stage::CosignCopy { tag, copy } => {
                    let tag = tag.clone();
                    let copied = ready!(copy.poll_output(client));
                    let step = copied.and_then(|_| {
                        self.done.tags.push(tag);
                        self.next(client)
                    });
                    advance!(self.stage, step);
                }
            }
        }
    }
}

impl CopyReferrers {
    /// A listed referrer read (checked against its digest by the lookup):
    /// pushed when its `subject` is the one it was listed for, else skipped.
    fn referrer_read(
        &mut self,
        client: &Client,
        found: Option<Found>,
    ) -> Result<Step<Stage, CopiedReferrers>> {
        let subject = self.current.clone().ok_or_else(no_subject)?;
        let Some(found) = found else {
            // Listed, but not there (deleted since): nothing to copy.
            self.done.skipped.push(format!(
                "{}: listed as a referrer of {subject}, but not there",
                self.source.repository
            ));
            return self.next(client);
        };
        let Body::Bytes(bytes) = found.body else {
            return Err(Error::Internal(format!(
                "{}: manifest content missing",
                found.reference
            )));
        };
        let digest = found.descriptor.digest.clone();
        let names = subject_of(&bytes);
        if names.as_ref() != Some(&subject) {
            let says = names.map_or_else(|| "no subject".to_string(), |d| format!("subject {d}"));
            self.done.skipped.push(format!(
                "{}@{digest}: listed as a referrer of {subject}, but its manifest names {says}; not copied",
                self.source.repository
            ));
            return self.next(client);
        }
        self.seen.insert(digest.clone());
        let children = ChildRefs {
            fallback: Some(self.at_source(&digest)),
            ..ChildRefs::default()
        };
        let ensure = EnsureManifest::new(
            self.destination.with_digest(digest.clone()),
            bytes,
            &found.descriptor.media_type,
            children,
        )?
        .deferring_attach();
        Ok(Step::Next(Stage::Push {
            pushed: digest,
            ensure: Box::new(ensure),
        }))
    }
}

fn no_subject() -> Error {
    Error::Internal("a referrer with no subject".into())
}

/// Lists `subject`'s referrers in `at`'s repository: from its fallback tag
/// directly when the repository said it has no API (`api`).
fn list_at(client: &Client, at: &Reference, subject: &Digest, api: Option<bool>) -> ListReferrers {
    let (at, subject) = (at.clone(), subject.clone());
    match api {
        Some(false) => ListReferrers::without_api(client, at, subject, None),
        _ => ListReferrers::new(client, at, subject, None),
    }
}

/// The digest a manifest's `subject` names, if any.
fn subject_of(bytes: &[u8]) -> Option<Digest> {
    #[derive(serde::Deserialize)]
    struct Subject {
        subject: Option<Descriptor>,
    }
    serde_json::from_slice::<Subject>(bytes)
        .ok()?
        .subject
        .map(|d| d.digest)
}
