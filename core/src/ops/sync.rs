//! `sync`: the repositories a [`SyncConfig`] names, their tags selected
//! (listing the tags of those it selects by pattern, range or all), each
//! image synced to the destination ([`SyncImage`]: HEADs, then a copy of
//! what changed). Everything runs: a repository or image that fails is
//! reported and the rest go on. Side by side up to the client's
//! concurrency: the tag lists first, then the images.

use std::collections::VecDeque;

use crate::client::Client;
use crate::error::{Error, Result};
use crate::http::RequestBody;
use crate::ops::group::Group;
use crate::ops::list_tags::{ListTags, TagsOptions};
use crate::ops::sync_image::{Outcome, SyncImage};
use crate::ops::{earliest, Operation, Output};
use crate::reference::Reference;
use crate::sync::config::{Repository, SyncConfig, Tags};
use crate::sync::select::{select, shard_of};

/// Tags asked for per page of a repository's list.
pub const TAGS_PAGE: u32 = 1000;

/// How a sync runs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncOptions {
    /// Where to (`host[/prefix]`); else the config's `destination`.
    pub destination: Option<String>,
    /// Only the repositories of shard `K` of `N` (`(K, N)`, K from 0).
    pub shard: Option<(u32, u32)>,
    /// Only look (HEADs): which images would be copied.
    pub dry_run: bool,
}

/// One image (or, for a repository whose tags could not be listed, the
/// repository) and how it ended.
#[derive(Debug)]
pub struct SyncResult {
    /// The source (with its tag; none for a repository's failure).
    pub source: Reference,
    /// The destination (none for a repository's failure).
    pub destination: Option<Reference>,
    /// How it ended.
    pub outcome: Result<Outcome>,
    /// What it cost: requests sent (retries and token requests included)
    /// and the bytes they carried.
    pub traffic: Traffic,
}

/// Requests sent for an image, and the bytes they carried (uploads:
/// manifests, blobs, streamed layers).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Traffic {
    /// Requests sent.
    pub requests: u64,
    /// Request body bytes.
    pub bytes_sent: u64,
}

impl Traffic {
    /// Counts `request`.
    fn add(&mut self, request: &crate::http::Request) {
        self.requests += 1;
        self.bytes_sent += match &request.body {
            RequestBody::Empty => 0,
            RequestBody::Bytes(b) => b.len() as u64,
            RequestBody::Transfer { size, .. } => *size,
            RequestBody::Chunk { len, .. } => *len,
        };
    }
}

/// What happened, for progress reports: the index of a result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// An image started.
    Started(usize),
    /// An image (or a repository's listing) ended: its result is in.
    Finished(usize),
}

/// The sync operation.
#[derive(Debug)]
pub struct Sync {
    config: SyncConfig,
    destination: String,
    dry_run: bool,
    limit: usize,
    /// Repositories whose tags are to be listed.
    to_list: VecDeque<Repository>,
    listing: Group<usize, ListTags>,
    /// Images planned and not started: indexes into `results`.
    queue: VecDeque<usize>,
    running: Group<usize, SyncImage>,
    results: Vec<SyncResult>,
    /// The repositories being listed, by their key in `listing`.
    listed: Vec<Repository>,
    events: VecDeque<Event>,
}

impl Sync {
    /// Plans a sync of `config` as `options` say; a destination missing
    /// from both is an error.
    pub fn new(client: &Client, config: SyncConfig, options: SyncOptions) -> Result<Self> {
        let destination = options
            .destination
            .clone()
            .or_else(|| config.destination.clone())
            .ok_or_else(|| {
                Error::InvalidInput(
                    "sync: no destination: give one (DEST) or the config's ocirelay.destination"
                        .into(),
                )
            })?;
        crate::sync::config::check_destination(&destination)
            .map_err(|why| Error::InvalidInput(format!("sync: destination: {why}")))?;
        if let Some((k, n)) = options.shard {
            if n == 0 || k >= n {
                return Err(Error::InvalidInput(format!(
                    "sync: shard {k}/{n}: K must be from 0 to N-1"
                )));
            }
        }
        let mut sync = Sync {
            destination,
            dry_run: options.dry_run,
            limit: client.concurrency().max(1),
            to_list: VecDeque::new(),
            listing: Group::new(),
            queue: VecDeque::new(),
            running: Group::new(),
            results: Vec::new(),
            listed: Vec::new(),
            events: VecDeque::new(),
            config: config.clone(),
        };
        for repository in config.repositories {
            let mine = options
                .shard
                .is_none_or(|(k, n)| shard_of(&repository.source, n) == k);
            if !mine {
                continue;
            }
            match &repository.tags {
                Tags::Listed(tags) => {
                    for tag in tags.clone() {
                        sync.plan(&repository.source, &tag);
                    }
                }
                _ => sync.to_list.push_back(repository),
            }
        }
        Ok(sync)
    }

    /// The results so far, in the order planned.
    pub fn results(&self) -> &[SyncResult] {
        &self.results
    }

    /// Takes the results, once done.
    pub fn into_results(self) -> Vec<SyncResult> {
        self.results
    }

    /// What happened since the last call, in order.
    pub fn take_events(&mut self) -> impl Iterator<Item = Event> + '_ {
        self.events.drain(..)
    }

    /// `source:tag` planned, or its failure recorded when its destination
    /// cannot be named.
    fn plan(&mut self, source: &Reference, tag: &str) {
        let mut from = source.clone();
        match crate::Digest::parse(tag) {
            Ok(d) => from.digest = Some(d),
            Err(_) => from.tag = Some(tag.to_string()),
        }
        let to = self.config.destination_of(&self.destination, source, tag);
        let index = self.results.len();
        match to {
            Ok(to) => {
                self.results.push(SyncResult {
                    source: from,
                    destination: Some(to),
                    outcome: Err(Error::Internal("not run".into())),
                    traffic: Traffic::default(),
                });
                self.queue.push_back(index);
            }
            Err(e) => self.results.push(SyncResult {
                source: from,
                destination: None,
                outcome: Err(e),
                traffic: Traffic::default(),
            }),
        }
    }

    /// A repository's tags listed: its images planned, or its failure.
    fn listed(&mut self, key: usize, tags: Result<Option<crate::ops::list_tags::TagList>>) {
        let repository = self.listed[key].clone();
        match tags {
            Ok(Some(list)) => {
                for tag in select(&repository.tags, &list.tags, &self.config) {
                    self.plan(&repository.source, &tag);
                }
            }
            Ok(None) => {
                self.fail_repository(&repository, Error::not_found(repository.source.to_string()))
            }
            Err(e) => self.fail_repository(&repository, e),
        }
    }

    fn fail_repository(&mut self, repository: &Repository, error: Error) {
        let index = self.results.len();
        self.results.push(SyncResult {
            source: repository.source.clone(),
            destination: None,
            outcome: Err(error),
            traffic: Traffic::default(),
        });
        self.events.push_back(Event::Finished(index));
    }
}

impl Operation for Sync {
    type Outcome = Result<()>;

    fn poll_output(&mut self, client: &mut Client) -> Output<Self::Outcome> {
        loop {
            let mut deadline = None;
            // Tag lists first, up to the limit at once.
            while self.listing.len() < self.limit {
                let Some(repository) = self.to_list.pop_front() else {
                    break;
                };
                // Pages of a bounded size, however many tags there are.
                let options = TagsOptions {
                    all_pages: true,
                    page_size: Some(TAGS_PAGE),
                    ..TagsOptions::default()
                };
                let list = ListTags::new(client, repository.source.clone(), options);
                self.listing.push(self.listed.len(), list);
                self.listed.push(repository);
            }
            if !self.listing.is_empty() {
                match self.listing.poll(client) {
                    Output::Done((key, tags)) => {
                        self.listed(key, tags);
                        continue;
                    }
                    Output::Send(id, request) => return Output::Send(id, request),
                    Output::Wait(until) if self.running.is_empty() && self.queue.is_empty() => {
                        return Output::Wait(until)
                    }
                    Output::Wait(until) => deadline = until,
                }
            }
            // Images, up to the limit at once, in the order planned.
            while self.running.len() < self.limit {
                let Some(index) = self.queue.pop_front() else {
                    break;
                };
                let result = &self.results[index];
                let Some(destination) = result.destination.clone() else {
                    continue;
                };
                let op = SyncImage::new(
                    result.source.clone(),
                    destination,
                    self.config.referrers,
                    self.dry_run,
                )
                .platforms(&self.config.platforms);
                self.running.push(index, op);
                self.events.push_back(Event::Started(index));
            }
            if self.running.is_empty() {
                if self.listing.is_empty() && self.to_list.is_empty() {
                    return Output::Done(Ok(()));
                }
                continue;
            }
            let results = &mut self.results;
            let polled = self.running.poll_seeing(client, |&index, request| {
                results[index].traffic.add(request)
            });
            match polled {
                Output::Done((index, outcome)) => {
                    self.results[index].outcome = outcome;
                    self.events.push_back(Event::Finished(index));
                }
                Output::Send(id, request) => return Output::Send(id, request),
                Output::Wait(until) => return Output::Wait(earliest(deadline, until)),
            }
        }
    }
}
