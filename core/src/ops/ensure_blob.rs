//! Ensure-blob: makes a blob present in a repository, uploading it only when
//! it is not already there (a HEAD first when that is worth a round trip).
//! The content is given bytes, or another repository's blob, read only once
//! the upload session is open and streamed straight into it: in one `PUT`
//! up to the registry's `monolithic-up-to`, in chunks above it (and after a
//! 413: [`ChunkedUpload`], which resumes where a break left it). A one-`PUT`
//! stream that breaks starts over with a new upload session; the abandoned
//! one is never completed, so nothing half-written lands.

use bytes::Bytes;

use crate::auth::repository_scope;
use crate::client::Client;
use crate::descriptor::Descriptor;
use crate::digest::Digest;
use crate::distribution::{upload_path, with_digest_query};
use crate::error::{Error, Result};
use crate::http::{
    refuse_downgrade, BodyMode, Method, RequestBody, RequestId, Response, Url, SMALL_BODY_LIMIT,
};
use crate::media_type::OCTET_STREAM;
use crate::ops::chunked_upload::{ChunkedStart, ChunkedUpload};
use crate::ops::confirm_push::ConfirmPush;
use crate::ops::exchange::{Exchange, ExchangeSpec, Exchanged, Target};
use crate::ops::lookup::{Body, Found, Lookup};
use crate::ops::{Operation, Output, Step};
use crate::reference::Reference;
use crate::upload::chunk_min_length;
use crate::{advance, ready};

/// Blobs larger than this get a HEAD before an upload (a round trip that
/// may save sending them); smaller ones are cheaper to just send.
pub const BLOB_SIZE_WORTH_HEAD: u64 = 65535;

/// A streamed upload starts over at most this often (a broken stream cannot
/// be resent: a new GET of the source goes into a new upload session).
pub const MAX_RESTARTS: u32 = 2;

/// Where a blob's bytes come from.
#[derive(Debug, Clone)]
pub enum BlobSource {
    /// These bytes (checked against the digest before anything is sent).
    Bytes(Bytes),
    /// The blob at this reference (by digest), of this size when known:
    /// read once the upload session is open, and streamed into it by the
    /// driver. The destination verifies the digest when the upload completes.
    Copy {
        /// The source blob.
        from: Reference,
        /// Its size, when the caller knows it (a manifest's layer).
        size: Option<u64>,
    },
}

#[derive(Debug)]
enum Stage {
    /// Is it there already?
    Head(Box<Lookup>),
    /// Opening an upload session.
    Open(Box<Exchange>),
    /// Reading the source blob, to stream into `session`.
    Fetch { source: Box<Lookup>, session: Url },
    /// Completing the upload; `streamed`: its body is the source's stream.
    Put {
        exchange: Box<Exchange>,
        streamed: bool,
    },
    /// Streaming the source in chunks (a large blob, or one refused whole).
    Chunked(Box<ChunkedUpload>),
    /// The PUT's 201 confirmed nothing: is ours there?
    Confirm(Box<ConfirmPush>),
}

/// The ensure-blob state machine.
#[derive(Debug)]
pub struct EnsureBlob {
    reference: Reference,
    digest: Digest,
    /// The size, once known (a copy may learn it from the source).
    size: Option<u64>,
    media_type: String,
    /// The bytes to send, until sent.
    bytes: Option<Bytes>,
    /// The source blob of a copy.
    from: Option<Reference>,
    stage: Stage,
    /// Streamed uploads started over after their stream broke.
    restarts: u32,
    /// The open session's `OCI-Chunk-Min-Length`, if it stated one.
    chunk_min: Option<u64>,
    /// The session the last `PUT` went to.
    session: Option<Url>,
}

impl EnsureBlob {
    /// Ensures blob `reference` (which must name a digest and no tag) from
    /// `source`.
    pub fn new(client: &Client, reference: Reference, source: BlobSource) -> Result<Self> {
        let digest = blob_digest(&reference)?;
        let (size, bytes, from) = match source {
            BlobSource::Bytes(bytes) => {
                // Content we were handed is checked before anything is sent.
                let actual = Digest::of(digest.algorithm(), &bytes);
                if actual != digest {
                    return Err(Error::integrity(
                        reference.to_string(),
                        format!("content is {actual}, expected {digest}"),
                    ));
                }
                (Some(bytes.len() as u64), Some(bytes), None)
            }
            BlobSource::Copy { from, size } => (size, None, Some(from)),
        };
        let stage = if size.is_none_or(|s| s > BLOB_SIZE_WORTH_HEAD) {
            Stage::Head(Box::new(
                Lookup::blob(&reference, digest.clone(), true).for_push(),
            ))
        } else {
            Stage::Open(Box::new(open_session(client, &reference)))
        };
        Ok(EnsureBlob {
            reference,
            digest,
            size,
            media_type: OCTET_STREAM.to_string(),
            bytes,
            from,
            stage,
            restarts: 0,
            chunk_min: None,
            session: None,
        })
    }

    /// Skips the HEAD (the caller knows the blob is missing, or already asked).
    pub fn without_head(mut self, client: &Client) -> Self {
        if matches!(self.stage, Stage::Head(_)) {
            self.stage = Stage::Open(Box::new(open_session(client, &self.reference)));
        }
        self
    }

    /// Asks whether the blob is there first whatever its size: where re-runs
    /// are the rule (deploy), one HEAD beats sending a small blob again.
    pub fn with_head(mut self) -> Self {
        if matches!(self.stage, Stage::Open(_)) {
            let lookup = Lookup::blob(&self.reference, self.digest.clone(), true).for_push();
            self.stage = Stage::Head(Box::new(lookup));
        }
        self
    }

    /// Uploads into a session the registry already opened (a mount's 202,
    /// with these headers).
    pub fn into_session(
        mut self,
        client: &Client,
        session: Url,
        headers: &crate::http::Headers,
    ) -> Result<Self> {
        self.chunk_min = chunk_min_length(headers);
        self.stage = self.send_into(client, session)?;
        Ok(self)
    }

    /// The media type reported in the resulting descriptor.
    pub fn with_media_type(mut self, media_type: &str) -> Self {
        self.media_type = media_type.to_string();
        self
    }

    /// What comes once `session` is open: the PUT of the bytes, or the read
    /// of the source to stream into it.
    fn send_into(&mut self, client: &Client, session: Url) -> Result<Stage> {
        if let Some(bytes) = self.bytes.take() {
            return Ok(self.put(client, &session, RequestBody::Bytes(bytes)));
        }
        let Some(from) = &self.from else {
            return Err(Error::Internal(format!(
                "{}: an upload without content",
                self.reference
            )));
        };
        let source = Lookup::blob(from, self.digest.clone(), false).relayed();
        Ok(Stage::Fetch {
            source: Box::new(source),
            session,
        })
    }

    /// The PUT that completes the upload of `body` into `session`.
    fn put(&mut self, client: &Client, session: &Url, body: RequestBody) -> Stage {
        self.session = Some(session.clone());
        let streamed = matches!(body, RequestBody::Transfer { .. });
        let url = with_digest_query(session, &self.digest);
        let spec = upload_request(&self.reference, Method::Put, Target::Url(url), body);
        Stage::Put {
            exchange: Box::new(Exchange::new(client, spec)),
            streamed,
        }
    }

    fn descriptor(&self, size: u64) -> Descriptor {
        Descriptor::new(self.media_type.clone(), self.digest.clone(), size)
    }

    /// The blob is present with `size` bytes: recorded, and the outcome.
    fn present(&self, client: &mut Client, size: u64) -> Step<Stage, Descriptor> {
        let d = self.descriptor(size);
        client.cache.record(&self.reference, &d, None);
        Step::Done(d)
    }

    /// The registry's error answer; a refused digest is an integrity error.
    fn refused(&self, answer: &Exchanged, what: &str) -> Error {
        refused(&self.reference, &self.digest, answer, what)
    }

    fn headed(&self, client: &mut Client, found: Option<Found>) -> Step<Stage, Descriptor> {
        match found {
            Some(found) if self.size.is_none_or(|s| s == found.descriptor.size) => {
                self.present(client, found.descriptor.size)
            }
            _ => Step::Next(Stage::Open(Box::new(open_session(client, &self.reference)))),
        }
    }

    fn opened(&mut self, client: &Client, answer: Exchanged) -> Result<Step<Stage, Descriptor>> {
        if answer.response.status != 202 {
            return Err(self.refused(&answer, "starting an upload"));
        }
        let session = session(client, &self.reference, &answer.response)?;
        self.chunk_min = chunk_min_length(&answer.response.headers);
        self.send_into(client, session).map(Step::Next)
    }

    /// The source streamed into `session` in chunks (its body held at byte
    /// 0 for `source`, or read again).
    fn chunked(&self, session: &Url, size: u64, source: Option<RequestId>) -> Result<Stage> {
        let Some(from) = self.from.clone() else {
            return Err(Error::Internal(format!(
                "{}: a chunked upload without a source",
                self.reference
            )));
        };
        let start = ChunkedStart {
            session: session.clone(),
            min: self.chunk_min,
            source,
        };
        let (to, digest) = (self.reference.clone(), self.digest.clone());
        let op = ChunkedUpload::new(to, from, digest, size, start);
        Ok(Stage::Chunked(Box::new(op)))
    }

    /// The source was read: its held body goes straight into the PUT.
    fn fetched(
        &mut self,
        client: &mut Client,
        found: Option<Found>,
        session: &Url,
    ) -> Result<Step<Stage, Descriptor>> {
        let from = self
            .from
            .as_ref()
            .map_or_else(String::new, ToString::to_string);
        let found = found.ok_or_else(|| Error::not_found(&from))?;
        let size = found.descriptor.size;
        if let Some(expected) = self.size.filter(|s| *s != size) {
            // Its body, held to be sent on, is not.
            if let Body::Stream { request, .. } = found.body {
                client.release(request);
            }
            return Err(Error::integrity(
                from,
                format!("the registry has {size} bytes, its descriptor says {expected}"),
            ));
        }
        self.size = Some(size);
        let body = match found.body {
            Body::Stream { request, .. }
                if size > client.upload_rule(&self.reference.host).monolithic_up_to =>
            {
                return self.chunked(session, size, Some(request)).map(Step::Next);
            }
            Body::Stream { request, .. } => RequestBody::Transfer {
                from: request,
                size,
                digest: self.digest.clone(),
            },
            Body::Bytes(bytes) => RequestBody::Bytes(bytes),
            Body::Empty | Body::Redirect(_) => {
                return Err(Error::Internal(format!("{from}: blob body missing")))
            }
        };
        Ok(Step::Next(self.put(client, session, body)))
    }

    fn completed(
        &mut self,
        client: &mut Client,
        answer: Result<Exchanged>,
        streamed: bool,
    ) -> Result<Step<Stage, Descriptor>> {
        let answer = match answer {
            // The stream broke (either side): start over, in a new session.
            Err(e) if streamed && e.is_transient() && self.restarts < MAX_RESTARTS => {
                self.restarts += 1;
                let open = open_session(client, &self.reference);
                return Ok(Step::Next(Stage::Open(Box::new(open))));
            }
            answer => answer?,
        };
        // Too large to go whole: in chunks, into the same session.
        if let (true, 413, Some(size)) = (streamed, answer.response.status, self.size) {
            let session = self.session.clone();
            if let Some(session) =
                session.filter(|_| client.learn_body_limit(&self.reference.host, size))
            {
                return self.chunked(&session, size, None).map(Step::Next);
            }
        }
        if !answer.response.is_success() {
            return Err(self.refused(&answer, "completing an upload"));
        }
        let head = || Lookup::blob(&self.reference, self.digest.clone(), true).for_push();
        let subject = &self.reference;
        match ConfirmPush::after(&answer.response, head, &self.digest, self.size, subject) {
            Some(confirm) => Ok(Step::Next(Stage::Confirm(Box::new(confirm)))),
            None => Ok(self.present(client, self.size.unwrap_or_default())),
        }
    }
}

/// The digest of blob `reference`, which must name one and no tag.
pub(crate) fn blob_digest(reference: &Reference) -> Result<Digest> {
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
    Ok(digest)
}

/// A request into an upload session of `reference`'s repository (a chunk,
/// the completing PUT, a status GET): what it sends is a blob's bytes.
pub(crate) fn upload_request(
    reference: &Reference,
    method: Method,
    target: Target,
    body: RequestBody,
) -> ExchangeSpec {
    let sends = matches!(method, Method::Patch | Method::Put);
    ExchangeSpec {
        registry: reference.host.clone(),
        scopes: vec![repository_scope(&reference.repository, "pull,push")],
        method,
        target,
        accept: None,
        content_type: sends.then(|| OCTET_STREAM.to_string()),
        range: None,
        content_range: None,
        body,
        body_mode: BodyMode::Buffer(SMALL_BODY_LIMIT),
    }
}

/// The POST that opens an upload session in `reference`'s repository.
pub(crate) fn open_session(client: &Client, reference: &Reference) -> Exchange {
    let scope = repository_scope(&reference.repository, "pull,push");
    let spec = ExchangeSpec::read(
        &reference.host,
        vec![scope],
        Method::Post,
        upload_path(&reference.repository),
    );
    Exchange::new(client, spec)
}

/// The registry's refusal of an upload of `digest` to `reference` while
/// doing `what`; a refused digest is an integrity error.
pub(crate) fn refused(
    reference: &Reference,
    digest: &Digest,
    answer: &Exchanged,
    what: &str,
) -> Error {
    let e = Error::registry(format!("{reference} ({what})"), &answer.response);
    match e {
        Error::Registry {
            code: Some(code), ..
        } if code == "DIGEST_INVALID" => Error::integrity(
            reference.to_string(),
            format!(
                "the registry refused the upload: its content is not {digest} (DIGEST_INVALID)"
            ),
        ),
        other => other,
    }
}

/// The upload session a 202 answer opened in `reference`'s repository. It
/// must be on the registry's own origin: an upload (and the credentials
/// sent with it) goes nowhere else, never down to plain HTTP.
pub(crate) fn session(client: &Client, reference: &Reference, response: &Response) -> Result<Url> {
    let base = client.registry_url(&reference.host, &upload_path(&reference.repository));
    let session = response
        .headers
        .get("location")
        .and_then(|l| base.join(l).ok())
        .ok_or_else(|| {
            Error::protocol(
                reference.to_string(),
                "upload session without a usable Location",
            )
        })?;
    refuse_downgrade(&base, &session, "an upload session")?;
    if session.origin() != base.origin() {
        return Err(Error::protocol(
            base.to_string(),
            format!(
                "refused an upload session at {}: not the registry's own origin {}",
                session.redacted(),
                base.origin()
            ),
        ));
    }
    Ok(session)
}

impl Operation for EnsureBlob {
    type Outcome = Result<Descriptor>;

    fn poll_output(&mut self, client: &mut Client) -> Output<Result<Descriptor>> {
        loop {
            match &mut self.stage {
                Stage::Head(lookup) => {
                    let found = ready!(lookup.poll_output(client));
                    advance!(self.stage, found.map(|f| self.headed(client, f)));
                }
                Stage::Open(exchange) => {
                    let answer = ready!(exchange.poll_output(client));
                    advance!(self.stage, answer.and_then(|a| self.opened(client, a)));
                }
                Stage::Fetch { source, session } => {
                    let found = ready!(source.poll_output(client));
                    let session = session.clone();
                    advance!(
                        self.stage,
                        found.and_then(|f| self.fetched(client, f, &session))
                    );
                }
                Stage::Put { exchange, streamed } => {
                    let streamed = *streamed;
                    let answer = ready!(exchange.poll_output(client));
                    advance!(self.stage, self.completed(client, answer, streamed));
                }
                Stage::Chunked(op) => {
                    let answer = ready!(op.poll_output(client));
                    advance!(self.stage, self.completed(client, answer, false));
                }
                Stage::Confirm(confirm) => {
                    let held = ready!(confirm.poll_output(client));
                    advance!(self.stage, held.map(|d| self.present(client, d.size)));
                }
            }
        }
    }
}
