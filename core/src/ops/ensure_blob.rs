//! Ensure-blob: makes a blob present in a repository, uploading it only when
//! it is not already there (a HEAD first when it is worth a round trip).

use crate::auth::repository_scope;
use crate::client::Client;
use crate::descriptor::Descriptor;
use crate::digest::Digest;
use crate::distribution::{upload_path, with_digest_query, RegistryError};
use crate::error::{Error, Result};
use crate::http::{
    BodyMode, Method, RequestBody, RequestId, Response, TransportError, Url, SMALL_BODY_LIMIT,
};
use crate::media_type::OCTET_STREAM;
use crate::ops::exchange::{Exchange, ExchangeSpec, Exchanged, Target};
use crate::ops::lookup::Lookup;
use crate::ops::{Operation, Output};
use crate::reference::Reference;

/// Blobs larger than this get a HEAD before an upload (a round trip that
/// may save sending them); smaller ones are cheaper to just send.
pub const BLOB_SIZE_WORTH_HEAD: u64 = 65535;

/// Where a blob's bytes come from.
#[derive(Debug, Clone)]
pub enum BlobSource {
    /// These bytes (checked against digest and size before anything is sent).
    Bytes(Vec<u8>),
    /// The held body of an earlier GET, streamed by the driver; the
    /// destination registry verifies the digest when the upload completes.
    Held(RequestId),
}

#[derive(Debug)]
enum Stage {
    Head(Box<Lookup>),
    Start(Box<Exchange>),
    Put(Box<Exchange>),
    Finished,
}

/// The ensure-blob state machine.
#[derive(Debug)]
pub struct EnsureBlob {
    reference: Reference,
    digest: Digest,
    size: u64,
    media_type: String,
    source: Option<BlobSource>,
    stage: Stage,
    outcome: Option<Result<Descriptor>>,
}

impl EnsureBlob {
    /// Ensures blob `reference` (which must name a digest and no tag) of
    /// `size` bytes from `source`.
    pub fn new(
        client: &Client,
        reference: Reference,
        size: u64,
        source: BlobSource,
    ) -> Result<Self> {
        let Some(digest) = reference.digest.clone() else {
            return Err(Error::InvalidInput(format!(
                "{reference}: blobs must be pushed by digest"
            )));
        };
        if reference.tag.is_some() {
            return Err(Error::InvalidInput(format!(
                "{reference}: blobs cannot have tags"
            )));
        }
        if let BlobSource::Bytes(bytes) = &source {
            // Content we were handed is checked before anything is sent.
            let actual = Digest::of(digest.algorithm(), bytes);
            if bytes.len() as u64 != size || actual != digest {
                return Err(Error::Integrity {
                    subject: reference.to_string(),
                    detail: format!(
                        "content is {actual} of {} bytes, expected {digest} of {size}",
                        bytes.len()
                    ),
                });
            }
        }
        let stage = if size > BLOB_SIZE_WORTH_HEAD {
            Stage::Head(Box::new(
                Lookup::blob(&reference, digest.clone(), true).for_push(),
            ))
        } else {
            Stage::Start(Box::new(Self::start(client, &reference)))
        };
        Ok(EnsureBlob {
            reference,
            digest,
            size,
            media_type: OCTET_STREAM.to_string(),
            source: Some(source),
            stage,
            outcome: None,
        })
    }

    /// Skips the HEAD (the caller knows the blob is missing, or already asked).
    pub fn without_head(mut self, client: &Client) -> Self {
        if matches!(self.stage, Stage::Head(_)) {
            self.stage = Stage::Start(Box::new(Self::start(client, &self.reference)));
        }
        self
    }

    /// Uploads into a session the registry already opened (a mount's 202).
    pub fn into_session(mut self, client: &Client, location: Url) -> Self {
        self.stage = Stage::Put(Box::new(self.put(client, location)));
        self
    }

    /// The media type reported in the resulting descriptor.
    pub fn with_media_type(mut self, media_type: &str) -> Self {
        self.media_type = media_type.to_string();
        self
    }

    fn start(client: &Client, reference: &Reference) -> Exchange {
        let scope = repository_scope(&reference.repository, "pull,push");
        let spec = ExchangeSpec::read(
            &reference.host,
            vec![scope],
            Method::Post,
            upload_path(&reference.repository),
        );
        Exchange::new(client, spec)
    }

    fn put(&mut self, client: &Client, location: Url) -> Exchange {
        let body = match self.source.take() {
            Some(BlobSource::Bytes(b)) => RequestBody::Bytes(b),
            Some(BlobSource::Held(from)) => RequestBody::Transfer {
                from,
                size: self.size,
            },
            None => RequestBody::Empty,
        };
        let spec = ExchangeSpec {
            registry: self.reference.host.clone(),
            scopes: vec![repository_scope(&self.reference.repository, "pull,push")],
            method: Method::Put,
            target: Target::Url(with_digest_query(&location, &self.digest)),
            accept: None,
            content_type: Some(OCTET_STREAM.to_string()),
            body,
            body_mode: BodyMode::Buffer(SMALL_BODY_LIMIT),
            range_from: None,
        };
        Exchange::new(client, spec)
    }

    fn descriptor(&self) -> Descriptor {
        Descriptor::new(self.media_type.clone(), self.digest.clone(), self.size)
    }

    fn registry_error(&self, r: &Response, what: &str) -> Error {
        let e = RegistryError::parse(r.bytes());
        if e.code.as_deref() == Some("DIGEST_INVALID") {
            return Error::Integrity {
                subject: self.reference.to_string(),
                detail: format!(
                    "the registry refused the upload: its content is not {} (DIGEST_INVALID)",
                    self.digest
                ),
            };
        }
        Error::Registry {
            subject: format!("{} ({what})", self.reference),
            status: r.status,
            code: e.code,
            message: e.message,
        }
    }

    fn done(&mut self, client: &mut Client, outcome: Result<Descriptor>) {
        if let Ok(d) = &outcome {
            client.cache.record(&self.reference, d, None);
        }
        self.stage = Stage::Finished;
        self.outcome = Some(outcome);
    }

    fn started(&mut self, client: &mut Client, Exchanged { response, .. }: Exchanged) {
        if response.status != 202 {
            let e = self.registry_error(&response, "starting an upload");
            return self.done(client, Err(e));
        }
        let base = client.registry_url(
            &self.reference.host,
            &upload_path(&self.reference.repository),
        );
        match response.headers.get("location").map(|l| base.join(l)) {
            Some(Ok(location)) => self.stage = Stage::Put(Box::new(self.put(client, location))),
            _ => {
                let e = Error::Protocol {
                    subject: self.reference.to_string(),
                    detail: "upload session without a usable Location".into(),
                };
                self.done(client, Err(e))
            }
        }
    }

    fn put_done(&mut self, client: &mut Client, Exchanged { response, .. }: Exchanged) {
        if !response.is_success() {
            let e = self.registry_error(&response, "completing an upload");
            return self.done(client, Err(e));
        }
        if let Some(claimed) = response.headers.get("docker-content-digest") {
            if claimed.trim() != self.digest.to_string() {
                let e = Error::Integrity {
                    subject: self.reference.to_string(),
                    detail: format!("the registry stored {claimed}, not {}", self.digest),
                };
                return self.done(client, Err(e));
            }
        }
        let d = self.descriptor();
        self.done(client, Ok(d));
    }
}

impl Operation for EnsureBlob {
    type Outcome = Descriptor;

    fn poll_output(&mut self, client: &mut Client) -> Output<Descriptor> {
        loop {
            if let Some(outcome) = self.outcome.take() {
                return Output::Done(outcome);
            }
            let done = match &mut self.stage {
                Stage::Head(lookup) => match lookup.poll_output(client) {
                    Output::Done(Ok(Some(found))) if found.descriptor.size == self.size => {
                        let d = self.descriptor();
                        self.done(client, Ok(d));
                        continue;
                    }
                    Output::Done(Ok(_)) => {
                        self.stage = Stage::Start(Box::new(Self::start(client, &self.reference)));
                        continue;
                    }
                    Output::Done(Err(e)) => {
                        self.done(client, Err(e));
                        continue;
                    }
                    Output::Send(id, r) => return Output::Send(id, r),
                    Output::Wait => return Output::Wait,
                },
                Stage::Start(ex) | Stage::Put(ex) => match ex.poll_output(client) {
                    Output::Send(id, r) => return Output::Send(id, r),
                    Output::Wait => return Output::Wait,
                    Output::Done(done) => done,
                },
                Stage::Finished => return Output::Wait,
            };
            match (done, matches!(self.stage, Stage::Start(_))) {
                (Err(e), _) => self.done(client, Err(e)),
                (Ok(x), true) => self.started(client, x),
                (Ok(x), false) => self.put_done(client, x),
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
            Stage::Start(ex) | Stage::Put(ex) => ex.handle_response(client, id, response),
            Stage::Finished => {}
        }
    }
}
