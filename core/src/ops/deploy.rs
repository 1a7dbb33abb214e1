//! `deploy`: every ref of every normalized input made so (ensure-manifest,
//! copy-manifest, ensure-blob, copy-blob, the lookup as child refs), or with
//! `dry_run` only looked at (HEADs), in the order [`Schedule`] allows, up to
//! a limit at once. Everything is looked for before it is sent, so a
//! deploy run again sends HEADs only. After a failure no new ref starts; those under way
//! finish. Progress is a queue of [`Event`]s the driver may drain.

use std::collections::VecDeque;

use crate::client::Client;
use crate::deploy::{child_refs, jobs, Job, Kind, Normalized, Schedule};
use crate::error::{Error, Result};
use crate::ops::copy_blob::CopyBlob;
use crate::ops::copy_manifest::CopyManifest;
use crate::ops::copy_referrers::CopyReferrers;
use crate::ops::ensure_blob::{BlobSource, EnsureBlob};
use crate::ops::ensure_manifest::{ChildRefs, EnsureManifest};
use crate::ops::group::Group;
use crate::ops::lookup::{Found, Lookup};
use crate::ops::{Operation, Output, Step};
use crate::{advance, ready, Descriptor, Digest, Reference};

/// How one ref ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    /// It is there now (pushed, copied, or found already there).
    Pushed(Box<Descriptor>),
    /// Dry run: it is there already.
    UpToDate,
    /// Dry run: deploying would change it.
    WouldChange,
}

/// What happened to a job, for progress reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// The job started.
    Started(usize),
    /// The job ended (its outcome is in [`Deploy::outcome`]).
    Finished(usize),
}

/// How a deploy runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeployOptions {
    /// Only look (HEADs): which refs would change.
    pub dry_run: bool,
    /// Refs side by side, up to the client's concurrency (else one at a time).
    pub parallel: bool,
    /// Every copied manifest brings what refers to it (as each input's
    /// `referrers` field asks for its own).
    pub referrers: bool,
}

type Running = Box<dyn Operation<Outcome = Result<Report>>>;

/// The deploy operation.
#[derive(Debug)]
pub struct Deploy {
    inputs: Vec<Normalized>,
    jobs: Vec<Job>,
    schedule: Schedule,
    running: Group<usize, Running>,
    limit: usize,
    dry_run: bool,
    referrers: bool,
    failed: bool,
    events: VecDeque<Event>,
    outcomes: Vec<Option<Result<Report>>>,
}

impl Deploy {
    /// Deploys `inputs` (in order: children first) as `options` say.
    pub fn new(client: &Client, inputs: Vec<Normalized>, options: DeployOptions) -> Self {
        let jobs = jobs(&inputs);
        let locks: Vec<_> = jobs.iter().map(|j| j.locks.clone()).collect();
        Deploy {
            schedule: Schedule::new(&locks),
            outcomes: vec![None; jobs.len()],
            inputs,
            jobs,
            running: Group::new(),
            limit: if options.parallel {
                client.concurrency()
            } else {
                1
            },
            dry_run: options.dry_run,
            referrers: options.referrers,
            failed: false,
            events: VecDeque::new(),
        }
    }

    /// The inputs, normalized.
    pub fn inputs(&self) -> &[Normalized] {
        &self.inputs
    }

    /// The jobs: one per ref of each input, in input order.
    pub fn jobs(&self) -> &[Job] {
        &self.jobs
    }

    /// How job `job` ended; `None` while it runs, or when it never started
    /// (an earlier one failed).
    pub fn outcome(&self, job: usize) -> Option<&Result<Report>> {
        self.outcomes.get(job)?.as_ref()
    }

    /// What happened since the last call, in order.
    pub fn take_events(&mut self) -> impl Iterator<Item = Event> + '_ {
        self.events.drain(..)
    }

    /// The operation job `job` runs.
    fn job_op(&self, client: &Client, job: usize) -> Result<Running> {
        let Job {
            input, reference, ..
        } = &self.jobs[job];
        let input = &self.inputs[*input];
        let reference = reference.clone();
        if self.dry_run {
            let check = Check::new(input, reference)?;
            return Ok(Box::new(check.map(|checked| {
                checked.map(|c| match c.present {
                    Some(_) => Report::UpToDate,
                    None => Report::WouldChange,
                })
            })));
        }
        let pushed = |o: Result<Descriptor>| o.map(|d| Report::Pushed(Box::new(d)));
        Ok(match (input.kind, &input.data, &input.copy_from) {
            (Kind::Manifest, Some(data), _) => {
                let media_type = input.media_type.as_deref().unwrap_or_default();
                let op =
                    EnsureManifest::new(reference, data.clone(), media_type, child_refs(input))?;
                Box::new(op.map(pushed))
            }
            (Kind::Manifest, None, Some(from)) => Box::new(CopyIfChanged {
                source: from.clone(),
                target: reference.clone(),
                children: Some(child_refs(input)),
                referrers: input.referrers || self.referrers,
                stage: CopyStage::Check(Box::new(Check::new(input, reference)?)),
            }),
            (Kind::Blob, Some(data), _) => {
                let source = BlobSource::Bytes(data.clone().into());
                // A deploy is re-run as a rule: a HEAD is all a re-run costs.
                let op = EnsureBlob::new(client, reference, source)?.with_head();
                Box::new(op.map(pushed))
            }
            (Kind::Blob, None, Some(from)) => {
                let mut destination = reference;
                destination.tag = None;
                Box::new(CopyBlob::new(from.clone(), destination, None)?.map(pushed))
            }
            (_, None, None) => {
                return Err(Error::Internal(format!(
                    "{reference}: a normalized input with neither data nor a source"
                )))
            }
        })
    }
}

impl Operation for Deploy {
    /// One outcome per job, in order: `None` for those that never started.
    type Outcome = Vec<Option<Result<Report>>>;

    fn poll_output(&mut self, client: &mut Client) -> Output<Self::Outcome> {
        loop {
            while !self.failed && self.running.len() < self.limit {
                let Some(job) = self.schedule.start_next() else {
                    break;
                };
                self.events.push_back(Event::Started(job));
                match self.job_op(client, job) {
                    Ok(op) => self.running.push(job, op),
                    Err(e) => self.finished(job, Err(e)),
                }
            }
            if self.running.is_empty() {
                // Kept too: progress lines read them after the end.
                return Output::Done(self.outcomes.clone());
            }
            let (job, outcome) = ready!(self.running.poll(client));
            self.finished(job, outcome);
        }
    }
}

impl Deploy {
    fn finished(&mut self, job: usize, outcome: Result<Report>) {
        self.failed |= outcome.is_err();
        self.outcomes[job] = Some(outcome);
        self.schedule.finish(job);
        self.events.push_back(Event::Finished(job));
    }
}

/// A look at one ref: the digest it should have (a copied tag's, asked of
/// the source by HEAD), then a HEAD of where it goes (by tag when it has
/// one: unlike the original, which looks by digest, a tag that points
/// elsewhere is a change). Its outcome: whether the target holds it.
#[derive(Debug)]
struct Check {
    kind: Kind,
    target: Reference,
    stage: CheckStage,
}

#[derive(Debug)]
enum CheckStage {
    /// The source's digest, for a copy from a tag.
    Source(Lookup, Reference),
    /// What the target holds, against the digest it should.
    Target(Lookup, Digest),
}

/// What a [`Check`] found: the digest the target should hold, and what it
/// holds when that is it.
#[derive(Debug)]
struct Checked {
    digest: Digest,
    present: Option<Descriptor>,
}

impl Check {
    fn new(input: &Normalized, target: Reference) -> Result<Self> {
        let stage = match (&target.digest, &input.copy_from) {
            (Some(d), _) => CheckStage::Target(Self::look(input.kind, &target, d), d.clone()),
            (None, Some(from)) if input.kind == Kind::Manifest => {
                CheckStage::Source(Lookup::manifest(from.clone(), true), from.clone())
            }
            _ => {
                return Err(Error::Internal(format!(
                    "{target}: a normalized input without digest or manifest source"
                )))
            }
        };
        Ok(Check {
            kind: input.kind,
            target,
            stage,
        })
    }

    /// What the target holds: a tag by its tag (where it points may be
    /// what changes), else by digest.
    fn look(kind: Kind, target: &Reference, digest: &Digest) -> Lookup {
        match kind {
            Kind::Manifest if target.tag.is_some() => {
                let mut by_tag = target.clone();
                by_tag.digest = None;
                Lookup::manifest(by_tag, true)
            }
            Kind::Manifest => Lookup::manifest(target.clone(), true),
            Kind::Blob => Lookup::blob(target, digest.clone(), true),
        }
    }

    fn source_found(
        &mut self,
        source: &Reference,
        found: Option<Found>,
    ) -> Result<Step<CheckStage, Checked>> {
        let Some(found) = found else {
            return Err(Error::not_found(format!(
                "{}: manifest-to-copy ({source})",
                self.target
            )));
        };
        let digest = found.descriptor.digest;
        if self.target.tag.is_none() {
            self.target.digest = Some(digest.clone());
        }
        let lookup = Self::look(self.kind, &self.target, &digest);
        Ok(Step::Next(CheckStage::Target(lookup, digest)))
    }
}

impl Operation for Check {
    type Outcome = Result<Checked>;

    fn poll_output(&mut self, client: &mut Client) -> Output<Self::Outcome> {
        loop {
            match &mut self.stage {
                CheckStage::Source(lookup, source) => {
                    let found = ready!(lookup.poll_output(client));
                    let source = source.clone();
                    let step = found.and_then(|f| self.source_found(&source, f));
                    advance!(self.stage, step);
                }
                CheckStage::Target(lookup, digest) => {
                    let found = ready!(lookup.poll_output(client));
                    let digest = digest.clone();
                    let step = found.map(|f| {
                        let present = f.map(|f| f.descriptor).filter(|d| d.digest == digest);
                        Step::Done(Checked { digest, present })
                    });
                    advance!(self.stage, step);
                }
            }
        }
    }
}

/// A manifest copy that looks first (HEADs) and copies only what is not
/// there: a re-run of a deploy sends HEADs only, where a copy reads its
/// source (a GET, which Docker Hub counts) before it looks. With
/// `referrers`, what refers to it follows (then a re-run also reads the
/// lists of referrers).
#[derive(Debug)]
struct CopyIfChanged {
    source: Reference,
    target: Reference,
    children: Option<ChildRefs>,
    referrers: bool,
    stage: CopyStage,
}

#[derive(Debug)]
enum CopyStage {
    Check(Box<Check>),
    Copy(Box<CopyManifest>),
    /// What refers to it, copied after it; then the outcome.
    Referrers(Box<CopyReferrers>, Box<Descriptor>),
}

impl CopyIfChanged {
    fn checked(&mut self, checked: Checked) -> Result<Step<CopyStage, Report>> {
        self.source.digest = Some(checked.digest);
        if let Some(present) = checked.present {
            return Ok(self.then_referrers(present));
        }
        let children = self.children.take().unwrap_or_default();
        let copy = CopyManifest::new(self.source.clone(), self.target.clone(), children);
        Ok(Step::Next(CopyStage::Copy(Box::new(copy))))
    }

    /// The manifest is there: done, or its referrers next.
    fn then_referrers(&self, there: Descriptor) -> Step<CopyStage, Report> {
        match self.referrers {
            false => Step::Done(Report::Pushed(Box::new(there))),
            true => {
                let copy = CopyReferrers::new(self.source.clone(), self.target.clone());
                Step::Next(CopyStage::Referrers(Box::new(copy), Box::new(there)))
            }
        }
    }
}

impl Operation for CopyIfChanged {
    type Outcome = Result<Report>;

    fn poll_output(&mut self, client: &mut Client) -> Output<Self::Outcome> {
        loop {
            match &mut self.stage {
                CopyStage::Check(check) => {
                    let checked = ready!(check.poll_output(client));
                    advance!(self.stage, checked.and_then(|c| self.checked(c)));
                }
                CopyStage::Copy(copy) => {
                    let copied = ready!(copy.poll_output(client));
                    advance!(self.stage, copied.map(|d| self.then_referrers(d)));
                }
                CopyStage::Referrers(copy, there) => {
                    let there = there.clone();
                    let copied = ready!(copy.poll_output(client));
                    let step = copied.map(|_| Step::Done(Report::Pushed(there)));
                    advance!(self.stage, step);
                }
            }
        }
    }
}
