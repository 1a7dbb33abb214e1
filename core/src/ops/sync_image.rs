//! One image of a sync: the source's tag and the destination's asked with
//! HEADs (one request each side); the same digest at both is unchanged,
//! else the image is copied by digest (only what the destination lacks is
//! sent) and tagged. What refers to it follows when asked, changed or not
//! (a signature may be new).

use crate::client::Client;
use crate::descriptor::Descriptor;
use crate::error::{Error, Result};
use crate::ops::copy_manifest::CopyManifest;
use crate::ops::copy_platforms::CopyPlatforms;
use crate::ops::copy_referrers::{CopiedReferrers, CopyReferrers};
use crate::ops::ensure_manifest::ChildRefs;
use crate::ops::lookup::{Found, Lookup};
use crate::ops::{Operation, Output, Step};
use crate::platform::Platform;
use crate::reference::Reference;
use crate::{advance, ready};

/// How an image of a sync ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Synced {
    /// Copied (it was missing or different at the destination).
    Copied(Descriptor),
    /// The destination had it already.
    Unchanged(Descriptor),
    /// Dry run: it would be copied.
    WouldCopy(Descriptor),
}

impl Synced {
    /// The image's descriptor.
    pub fn descriptor(&self) -> &Descriptor {
        match self {
            Synced::Copied(d) | Synced::Unchanged(d) | Synced::WouldCopy(d) => d,
        }
    }
}

#[derive(Debug)]
enum Stage {
    /// Cut down to the chosen platforms and copied (no referrers: a cut
    /// index is another image, which its source's signatures do not name).
    Platforms(Box<CopyPlatforms>),
    /// The source's tag.
    Source(Box<Lookup>),
    /// The destination's, against the source's descriptor.
    There(Box<Lookup>, Box<Descriptor>),
    /// Copying it.
    Copy(Box<CopyManifest>),
    /// Its referrers, after it.
    Referrers(Box<CopyReferrers>, Box<Synced>),
}

/// The sync-image state machine: `Synced`, and the referrers copied when
/// asked for.
#[derive(Debug)]
pub struct SyncImage {
    source: Reference,
    destination: Reference,
    referrers: bool,
    dry_run: bool,
    stage: Stage,
}

impl SyncImage {
    /// Syncs `source` (by tag or digest) to `destination`.
    pub fn new(source: Reference, destination: Reference, referrers: bool, dry_run: bool) -> Self {
        let head = Lookup::manifest(source.clone(), true);
        SyncImage {
            source,
            destination,
            referrers,
            dry_run,
            stage: Stage::Source(Box::new(head)),
        }
    }

    /// Only `platforms` of it (none: everything): an index is cut down to
    /// them (see [`CopyPlatforms`]), read whole rather than HEADed.
    pub fn platforms(mut self, platforms: &[Platform]) -> Self {
        if !platforms.is_empty() {
            let copy = CopyPlatforms::new(
                self.source.clone(),
                self.destination.clone(),
                platforms.to_vec(),
                self.dry_run,
            );
            self.stage = Stage::Platforms(Box::new(copy));
        }
        self
    }

    fn source_found(&mut self, found: Option<Found>) -> Result<Step<Stage, Outcome>> {
        let found = found.ok_or_else(|| Error::not_found(self.source.to_string()))?;
        let head = head_there(&self.destination, self.dry_run);
        Ok(Step::Next(Stage::There(
            Box::new(head),
            Box::new(found.descriptor),
        )))
    }

    fn compared(&mut self, source: Descriptor, there: Option<Found>) -> Step<Stage, Outcome> {
        let same = there.is_some_and(|t| t.descriptor.digest == source.digest);
        if same {
            return self.then_referrers(Synced::Unchanged(source));
        }
        if self.dry_run {
            return Step::Done((Synced::WouldCopy(source), None));
        }
        self.source.digest = Some(source.digest.clone());
        let copy = CopyManifest::new(
            self.source.clone(),
            self.destination.clone(),
            ChildRefs::default(),
        )
        .with_media_type(&source.media_type);
        Step::Next(Stage::Copy(Box::new(copy)))
    }

    fn then_referrers(&mut self, synced: Synced) -> Step<Stage, Outcome> {
        if !self.referrers || self.dry_run {
            return Step::Done((synced, None));
        }
        let mut source = self.source.clone();
        source.digest = Some(synced.descriptor().digest.clone());
        let copy = CopyReferrers::new(source, self.destination.clone());
        Step::Next(Stage::Referrers(Box::new(copy), Box::new(synced)))
    }
}

/// The HEAD of what `destination` holds (by its tag when it has one), its
/// token good for the push that may follow (unless only looking).
pub(crate) fn head_there(destination: &Reference, dry_run: bool) -> Lookup {
    let mut there = destination.clone();
    if there.tag.is_some() {
        there.digest = None;
    }
    let head = Lookup::manifest(there, true);
    match dry_run {
        true => head,
        false => head.for_push(),
    }
}

/// How the image ended, and its referrers copied (when asked).
pub type Outcome = (Synced, Option<CopiedReferrers>);

impl Operation for SyncImage {
    type Outcome = Result<Outcome>;

    fn poll_output(&mut self, client: &mut Client) -> Output<Self::Outcome> {
        loop {
            match &mut self.stage {
                Stage::Platforms(copy) => {
                    let copied = ready!(copy.poll_output(client));
                    return Output::Done(copied.map(|synced| (synced, None)));
                }
                Stage::Source(head) => {
                    let found = ready!(head.poll_output(client));
                    advance!(self.stage, found.and_then(|f| self.source_found(f)));
                }
                Stage::There(head, source) => {
                    let source = (**source).clone();
                    let there = ready!(head.poll_output(client));
                    advance!(self.stage, there.map(|t| self.compared(source, t)));
                }
                Stage::Copy(copy) => {
                    let copied = ready!(copy.poll_output(client));
                    advance!(
                        self.stage,
                        copied.map(|d| self.then_referrers(Synced::Copied(d)))
                    );
                }
                Stage::Referrers(copy, synced) => {
                    let synced = (**synced).clone();
                    let copied = ready!(copy.poll_output(client));
                    advance!(self.stage, copied.map(|c| Step::Done((synced, Some(c)))));
                }
            }
        }
    }
}
