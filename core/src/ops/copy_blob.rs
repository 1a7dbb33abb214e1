//! Copy-blob: a blob from one repository to another. Within one registry a
//! cross-repository mount (streaming into the session when the registry
//! answers 202 instead, uploading when it refuses); across registries a
//! streamed GET -> PUT that never holds the whole blob (see [`EnsureBlob`]).

use crate::auth::repository_scope;
use crate::cache::{CacheKey, Mark};
use crate::client::Client;
use crate::descriptor::Descriptor;
use crate::digest::Digest;
use crate::distribution::mount_path;
use crate::error::{Error, Result};
use crate::http::Method;
use crate::media_type::OCTET_STREAM;
use crate::ops::ensure_blob::{self, BlobSource, EnsureBlob};
use crate::ops::exchange::{Exchange, ExchangeSpec, Exchanged};
use crate::ops::lookup::{Found, Lookup};
use crate::ops::{Operation, Output, Step};
use crate::reference::Reference;
use crate::{advance, ready};

#[derive(Debug)]
enum Stage {
    /// Not started: the cache is to be consulted, the destination claimed.
    Start,
    /// Same registry: asking for a mount.
    Mount(Box<Exchange>),
    /// A mount that succeeded without telling the size: HEAD for it.
    MountedHead(Box<Lookup>),
    /// Uploading: a HEAD first when worth it, then the source streamed
    /// into an upload session.
    Upload(Box<EnsureBlob>),
}

/// The copy-blob state machine.
#[derive(Debug)]
pub struct CopyBlob {
    source: Reference,
    destination: Reference,
    digest: Digest,
    known: Option<Descriptor>,
    /// The claim on making the blob present at the destination: concurrent
    /// copies of one blob (a layer two images share) wait for the first.
    claim: Option<Mark>,
    stage: Stage,
}

impl CopyBlob {
    /// Copies blob `source` (with digest, no tag) to `destination` (no tag;
    /// its digest empty or the same). `known` is the blob's descriptor when
    /// the caller has it (a manifest's layer): its size spares a request and
    /// is checked against the source, and its media type is reported.
    pub fn new(
        source: Reference,
        mut destination: Reference,
        known: Option<Descriptor>,
    ) -> Result<Self> {
        let Some(digest) = source.digest.clone() else {
            return Err(Error::InvalidInput(format!(
                "{source}: missing digest (cannot copy a blob without one)"
            )));
        };
        match &destination.digest {
            Some(d) if *d != digest => {
                return Err(Error::InvalidInput(format!(
                    "{destination}: digest mismatch in copy from {source}"
                )))
            }
            _ => destination.digest = Some(digest.clone()),
        }
        for r in [&source, &destination] {
            if r.tag.is_some() {
                return Err(Error::InvalidInput(format!("{r}: blobs cannot have tags")));
            }
        }
        Ok(CopyBlob {
            source,
            destination,
            digest,
            known,
            claim: None,
            stage: Stage::Start,
        })
    }

    fn media_type(&self) -> &str {
        self.known
            .as_ref()
            .map_or(OCTET_STREAM, |k| k.media_type.as_str())
    }

    /// The blob is at the destination with `size` bytes: recorded, and the outcome.
    fn present(&self, client: &mut Client, size: u64) -> Step<Stage, Descriptor> {
        let d = Descriptor::new(self.media_type(), self.digest.clone(), size);
        client.cache.record(&self.destination, &d, None);
        Step::Done(d)
    }

    /// An upload of the source into the destination.
    fn upload(&self, client: &Client) -> Result<EnsureBlob> {
        let source = BlobSource::Copy {
            from: self.source.clone(),
            size: self.known.as_ref().map(|k| k.size),
        };
        Ok(EnsureBlob::new(client, self.destination.clone(), source)?
            .with_media_type(self.media_type()))
    }

    /// Begins, unless this client made the blob present already (`Done`),
    /// or another of its operations is doing so (`None`: wait for it).
    fn start(&mut self, client: &mut Client) -> Option<Result<Step<Stage, Descriptor>>> {
        let dst_repo = self.destination.cache_namespace();
        if let Some(cached) = client.cache.object(&dst_repo, &self.digest) {
            let size = cached.descriptor.size;
            return Some(Ok(self.present(client, size)));
        }
        self.claim = Some(
            client
                .cache
                .claim(CacheKey::Write(dst_repo, self.digest.clone()))?,
        );
        if self.source.host != self.destination.host {
            return Some(
                self.upload(client)
                    .map(|op| Step::Next(Stage::Upload(Box::new(op)))),
            );
        }
        let scopes = vec![
            repository_scope(&self.destination.repository, "pull,push"),
            repository_scope(&self.source.repository, "pull"),
        ];
        let path = mount_path(
            &self.destination.repository,
            &self.digest,
            &self.source.repository,
        );
        let spec = ExchangeSpec::read(&self.destination.host, scopes, Method::Post, path);
        Some(Ok(Step::Next(Stage::Mount(Box::new(Exchange::new(
            client, spec,
        ))))))
    }

    fn mounted(&self, client: &mut Client, answer: Exchanged) -> Result<Step<Stage, Descriptor>> {
        let response = &answer.response;
        match response.status {
            201 => match &self.known {
                Some(k) => Ok(self.present(client, k.size)),
                None => {
                    let head =
                        Lookup::blob(&self.destination, self.digest.clone(), true).for_push();
                    Ok(Step::Next(Stage::MountedHead(Box::new(head))))
                }
            },
            // The registry opened an upload session instead: stream into it.
            202 => {
                let session = ensure_blob::session(client, &self.destination, response)?;
                let op = self
                    .upload(client)?
                    .into_session(client, session, &response.headers)?;
                Ok(Step::Next(Stage::Upload(Box::new(op))))
            }
            // Refused outright (some registries cannot see the source, or the
            // token lacks pull on it): not an error, just a plain copy.
            401 | 403 | 404 => {
                let op = self.upload(client)?.without_head(client);
                Ok(Step::Next(Stage::Upload(Box::new(op))))
            }
            _ => Err(Error::registry(
                format!("{} (mount from {})", self.destination, self.source),
                response,
            )),
        }
    }

    fn mounted_head(
        &self,
        client: &mut Client,
        found: Option<Found>,
    ) -> Result<Step<Stage, Descriptor>> {
        match found {
            Some(found) => Ok(self.present(client, found.descriptor.size)),
            None => Err(Error::protocol(
                self.destination.to_string(),
                "mounted, yet the registry does not show it",
            )),
        }
    }
}

impl Operation for CopyBlob {
    type Outcome = Result<Descriptor>;

    fn poll_output(&mut self, client: &mut Client) -> Output<Result<Descriptor>> {
        loop {
            match &mut self.stage {
                Stage::Start => match self.start(client) {
                    Some(step) => advance!(self.stage, step),
                    // Another operation is making it present; it lands in the cache.
                    None => return Output::Wait(None),
                },
                Stage::Mount(exchange) => {
                    let answer = ready!(exchange.poll_output(client));
                    advance!(self.stage, answer.and_then(|a| self.mounted(client, a)));
                }
                Stage::MountedHead(lookup) => {
                    let found = ready!(lookup.poll_output(client));
                    advance!(self.stage, found.and_then(|f| self.mounted_head(client, f)));
                }
                Stage::Upload(op) => {
                    let outcome = ready!(op.poll_output(client));
                    advance!(self.stage, outcome.map(Step::Done));
                }
            }
        }
    }
}
