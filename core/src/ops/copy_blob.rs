//! Copy-blob: a blob from one repository to another. Within one registry a
//! cross-repository mount (streaming into the session when the registry
//! answers 202 instead, uploading when it refuses); across registries a
//! streamed GET -> PUT that never holds the whole blob.

use crate::auth::repository_scope;
use crate::client::Client;
use crate::descriptor::Descriptor;
use crate::digest::Digest;
use crate::distribution::{mount_path, RegistryError};
use crate::error::{Error, Result};
use crate::http::{Method, RequestId, Response, TransportError, Url};
use crate::media_type::OCTET_STREAM;
use crate::ops::ensure_blob::{BlobSource, EnsureBlob, BLOB_SIZE_WORTH_HEAD};
use crate::ops::exchange::{Exchange, ExchangeSpec, Exchanged};
use crate::ops::lookup::{Body, Found, Lookup};
use crate::ops::{pass, Operation, Output};
use crate::reference::Reference;

#[derive(Debug)]
enum Stage {
    /// Same registry: asking for a mount.
    Mount(Box<Exchange>),
    /// A mount that succeeded without telling the size: HEAD for it.
    MountedHead(Box<Lookup>),
    /// Across registries with a known size: does the destination have it?
    HeadDestination(Box<Lookup>),
    /// Reading the source (into the mount's session, when there is one).
    GetSource {
        lookup: Box<Lookup>,
        session: Option<Url>,
    },
    /// The size was learned from the GET: does the destination have it?
    HeadAfterGet {
        lookup: Box<Lookup>,
        found: Box<Found>,
    },
    /// Uploading.
    Upload(Box<EnsureBlob>),
    Finished,
}

/// The copy-blob state machine.
#[derive(Debug)]
pub struct CopyBlob {
    source: Reference,
    destination: Reference,
    digest: Digest,
    known: Option<Descriptor>,
    stage: Stage,
    /// Streamed copies restarted after the connection broke mid-way.
    restarts: u32,
    outcome: Option<Result<Descriptor>>,
}

/// Streamed copies restart at most this often (a broken stream cannot be
/// resent: the copy starts over with a new GET and a new upload session).
const MAX_RESTARTS: u32 = 2;

impl CopyBlob {
    /// Copies blob `source` (with digest, no tag) to `destination` (no tag;
    /// its digest empty or the same). `known` is the blob's descriptor when
    /// the caller has it (a manifest's layer): its size spares a request and
    /// its media type is reported.
    pub fn new(
        client: &Client,
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
        // Already made present at the destination by this client: done.
        let dst_repo = destination.cache_namespace();
        if let Some(cached) = client.cache.object(&dst_repo, &digest) {
            let media_type = known
                .as_ref()
                .map_or(OCTET_STREAM, |k| k.media_type.as_str());
            let d = Descriptor::new(media_type, digest.clone(), cached.descriptor.size);
            let (stage, outcome) = (Stage::Finished, Some(Ok(d)));
            return Ok(CopyBlob {
                source,
                destination,
                digest,
                known,
                stage,
                restarts: 0,
                outcome,
            });
        }
        let stage = if source.host == destination.host {
            let scopes = vec![
                repository_scope(&destination.repository, "pull,push"),
                repository_scope(&source.repository, "pull"),
            ];
            let path = mount_path(&destination.repository, &digest, &source.repository);
            Stage::Mount(Box::new(Exchange::new(
                client,
                ExchangeSpec::read(&destination.host, scopes, Method::Post, path),
            )))
        } else if known
            .as_ref()
            .is_some_and(|k| k.size > BLOB_SIZE_WORTH_HEAD)
        {
            Stage::HeadDestination(Box::new(
                Lookup::blob(&destination, digest.clone(), true).for_push(),
            ))
        } else {
            Stage::GetSource {
                lookup: Box::new(Lookup::blob(&source, digest.clone(), false).streamed()),
                session: None,
            }
        };
        Ok(CopyBlob {
            source,
            destination,
            digest,
            known,
            stage,
            restarts: 0,
            outcome: None,
        })
    }

    fn media_type(&self) -> String {
        self.known
            .as_ref()
            .map_or_else(|| OCTET_STREAM.to_string(), |k| k.media_type.clone())
    }

    fn finish(&mut self, client: &mut Client, outcome: Result<Descriptor>) {
        if let Ok(d) = &outcome {
            client.cache.record(&self.destination, d, None);
        }
        self.stage = Stage::Finished;
        self.outcome = Some(outcome);
    }

    fn get_source(&self, session: Option<Url>) -> Stage {
        Stage::GetSource {
            lookup: Box::new(Lookup::blob(&self.source, self.digest.clone(), false).streamed()),
            session,
        }
    }

    fn mounted(&mut self, client: &mut Client, Exchanged { response, .. }: Exchanged) {
        match response.status {
            201 => match &self.known {
                Some(k) => {
                    let d = Descriptor::new(k.media_type.clone(), self.digest.clone(), k.size);
                    self.finish(client, Ok(d));
                }
                None => {
                    let lookup =
                        Lookup::blob(&self.destination, self.digest.clone(), true).for_push();
                    self.stage = Stage::MountedHead(Box::new(lookup));
                }
            },
            // The registry opened an upload session instead: stream into it.
            202 => {
                let base = client.registry_url(&self.destination.host, "/");
                let session = response
                    .headers
                    .get("location")
                    .and_then(|l| base.join(l).ok());
                self.stage = self.get_source(session);
            }
            // Refused outright (some registries cannot see the source, or the
            // token lacks pull on it): not an error, just a plain copy.
            401 | 403 | 404 => self.stage = self.get_source(None),
            status => {
                let e = RegistryError::parse(response.bytes());
                let err = Error::Registry {
                    subject: format!("{} (mount from {})", self.destination, self.source),
                    status,
                    code: e.code,
                    message: e.message,
                };
                self.finish(client, Err(err));
            }
        }
    }

    fn upload(&mut self, client: &mut Client, found: Found, session: Option<Url>) {
        let size = found.descriptor.size;
        let source = match found.body {
            Body::Bytes(b) => BlobSource::Bytes(b),
            // The held GET body goes straight into the PUT; the destination
            // verifies the digest when the upload completes.
            Body::Stream { request, .. } => BlobSource::Held(request),
            Body::Empty => {
                let e = Error::Protocol {
                    subject: self.source.to_string(),
                    detail: "blob body missing".into(),
                };
                return self.finish(client, Err(e));
            }
        };
        match EnsureBlob::new(client, self.destination.clone(), size, source) {
            Ok(op) => {
                let op = op.with_media_type(&self.media_type()).without_head(client);
                let op = match session {
                    Some(url) => op.into_session(client, url),
                    None => op,
                };
                self.stage = Stage::Upload(Box::new(op));
            }
            Err(e) => self.finish(client, Err(e)),
        }
    }

    fn not_found(&self) -> Error {
        Error::InvalidInput(format!("{}: blob not found", self.source))
    }
}

impl Operation for CopyBlob {
    type Outcome = Descriptor;

    fn poll_output(&mut self, client: &mut Client) -> Output<Descriptor> {
        loop {
            if let Some(outcome) = self.outcome.take() {
                return Output::Done(outcome);
            }
            match std::mem::replace(&mut self.stage, Stage::Finished) {
                Stage::Mount(mut ex) => match ex.poll_output(client) {
                    Output::Done(Ok(x)) => self.mounted(client, x),
                    Output::Done(Err(e)) => self.finish(client, Err(e)),
                    other => {
                        self.stage = Stage::Mount(ex);
                        return pass(other);
                    }
                },
                Stage::MountedHead(mut lookup) => match lookup.poll_output(client) {
                    Output::Done(Ok(Some(found))) => {
                        let d = Descriptor::new(
                            self.media_type(),
                            self.digest.clone(),
                            found.descriptor.size,
                        );
                        self.finish(client, Ok(d));
                    }
                    Output::Done(Ok(None)) => {
                        let e = Error::Protocol {
                            subject: self.destination.to_string(),
                            detail: "mounted, yet the registry does not show it".into(),
                        };
                        self.finish(client, Err(e));
                    }
                    Output::Done(Err(e)) => self.finish(client, Err(e)),
                    other => {
                        self.stage = Stage::MountedHead(lookup);
                        return pass(other);
                    }
                },
                Stage::HeadDestination(mut lookup) => match lookup.poll_output(client) {
                    Output::Done(Ok(Some(found)))
                        if Some(found.descriptor.size) == self.known.as_ref().map(|k| k.size) =>
                    {
                        let d = Descriptor::new(
                            self.media_type(),
                            self.digest.clone(),
                            found.descriptor.size,
                        );
                        self.finish(client, Ok(d));
                    }
                    Output::Done(Ok(_)) => self.stage = self.get_source(None),
                    Output::Done(Err(e)) => self.finish(client, Err(e)),
                    other => {
                        self.stage = Stage::HeadDestination(lookup);
                        return pass(other);
                    }
                },
                Stage::GetSource {
                    mut lookup,
                    session,
                } => match lookup.poll_output(client) {
                    Output::Done(Ok(Some(found))) => {
                        let headed = self.known.is_some()
                            || session.is_some()
                            || self.source.host == self.destination.host;
                        if !headed && found.descriptor.size > BLOB_SIZE_WORTH_HEAD {
                            let head = Lookup::blob(&self.destination, self.digest.clone(), true)
                                .for_push();
                            self.stage = Stage::HeadAfterGet {
                                lookup: Box::new(head),
                                found: Box::new(found),
                            };
                        } else {
                            self.upload(client, found, session);
                        }
                    }
                    Output::Done(Ok(None)) => {
                        let e = self.not_found();
                        self.finish(client, Err(e));
                    }
                    Output::Done(Err(e)) => self.finish(client, Err(e)),
                    other => {
                        self.stage = Stage::GetSource { lookup, session };
                        return pass(other);
                    }
                },
                Stage::HeadAfterGet { mut lookup, found } => match lookup.poll_output(client) {
                    Output::Done(Ok(Some(head)))
                        if head.descriptor.size == found.descriptor.size =>
                    {
                        // Present already; the source body is dropped unread.
                        let d = Descriptor::new(
                            self.media_type(),
                            self.digest.clone(),
                            head.descriptor.size,
                        );
                        self.finish(client, Ok(d));
                    }
                    Output::Done(Ok(_)) => self.upload(client, *found, None),
                    Output::Done(Err(e)) => self.finish(client, Err(e)),
                    other => {
                        self.stage = Stage::HeadAfterGet { lookup, found };
                        return pass(other);
                    }
                },
                Stage::Upload(mut op) => match op.poll_output(client) {
                    // The stream broke (either side): the abandoned session is
                    // never completed, so nothing half-written lands; start over.
                    Output::Done(Err(Error::Transport {
                        permanent: false, ..
                    })) if self.restarts < MAX_RESTARTS => {
                        self.restarts += 1;
                        self.stage = self.get_source(None);
                    }
                    Output::Done(outcome) => self.finish(client, outcome),
                    other => {
                        self.stage = Stage::Upload(op);
                        return pass(other);
                    }
                },
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
            Stage::Mount(ex) => ex.handle_response(client, id, response),
            Stage::MountedHead(l) | Stage::HeadDestination(l) => {
                l.handle_response(client, id, response)
            }
            Stage::GetSource { lookup, .. } | Stage::HeadAfterGet { lookup, .. } => {
                lookup.handle_response(client, id, response)
            }
            Stage::Upload(op) => op.handle_response(client, id, response),
            Stage::Finished => {}
        }
    }
}
