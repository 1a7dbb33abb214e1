//! Push-blob: a blob whose bytes a caller hands over a chunk at a time (an
//! embedder's writer), so that no more than a chunk is ever held. Opened
//! with ensure-blob's HEAD rule (a blob the registry has is not sent
//! again); each chunk is one `PATCH` into the upload session, checked
//! against the digest and size as it goes; the `PUT` that completes the
//! upload goes only once every byte matched, and its 201 is confirmed as
//! ensure-blob's is ([`ConfirmPush`]).
//!
//! Unlike the other operations it runs in steps: each step ends in
//! `Done(Ok(None))` (ready for the next chunk, or for [`PushBlob::finish`])
//! or `Done(Ok(Some(descriptor)))` (the blob is there: pushed, or found
//! there, and nothing more is to be sent); [`PushBlob::write`] and
//! [`PushBlob::finish`] start the next step.

use bytes::Bytes;

use crate::client::Client;
use crate::descriptor::Descriptor;
use crate::digest::{Digest, Verifier};
use crate::distribution::with_digest_query;
use crate::error::{Error, Result};
use crate::http::{Method, RequestBody, Url};
use crate::media_type::OCTET_STREAM;
use crate::ops::confirm_push::ConfirmPush;
use crate::ops::ensure_blob::{
    blob_digest, open_session, refused, session, upload_request, BLOB_SIZE_WORTH_HEAD,
};
use crate::ops::exchange::{Exchange, ExchangeSpec, Exchanged, Target};
use crate::ops::lookup::{Found, Lookup};
use crate::ops::{Operation, Output, Step};
use crate::reference::Reference;
use crate::{advance, ready};

#[derive(Debug)]
enum Stage {
    /// Is it there already?
    Head(Box<Lookup>),
    /// Opening the upload session.
    Open(Box<Exchange>),
    /// Between steps: waiting for the caller's next chunk or `finish`.
    Idle,
    /// Sending a chunk of `len` bytes.
    Patch { exchange: Box<Exchange>, len: u64 },
    /// Completing the upload.
    Put(Box<Exchange>),
    /// The PUT's 201 confirmed nothing: is ours there?
    Confirm(Box<ConfirmPush>),
}

/// A blob pushed a chunk at a time (see the module's docs).
#[derive(Debug)]
pub struct PushBlob {
    reference: Reference,
    digest: Digest,
    size: u64,
    /// Checks every byte handed over; taken when the push completes.
    verifier: Option<Box<Verifier>>,
    /// The upload session, once open (each answer names the next one).
    session: Option<Url>,
    /// Bytes the registry has taken.
    sent: u64,
    /// The blob, once it is there: nothing more goes out.
    present: Option<Descriptor>,
    stage: Stage,
}

impl PushBlob {
    /// A push of blob `reference` (which must name a digest and no tag) of
    /// `size` bytes; its first step looks for it (when worth a HEAD) and
    /// opens an upload session.
    pub fn new(client: &Client, reference: Reference, size: u64) -> Result<Self> {
        let digest = blob_digest(&reference)?;
        let stage = if size > BLOB_SIZE_WORTH_HEAD {
            Stage::Head(Box::new(
                Lookup::blob(&reference, digest.clone(), true).for_push(),
            ))
        } else {
            Stage::Open(Box::new(open_session(client, &reference)))
        };
        let verifier = Verifier::new(reference.to_string(), digest.clone(), Some(size));
        Ok(PushBlob {
            reference,
            digest,
            size,
            verifier: Some(Box::new(verifier)),
            session: None,
            sent: 0,
            present: None,
            stage,
        })
    }

    /// The blob, when it is there and nothing more is to be sent.
    pub fn present(&self) -> Option<&Descriptor> {
        self.present.as_ref()
    }

    /// Starts the step that sends `chunk`, the next bytes of the blob;
    /// nothing is sent when the blob is there already. More bytes than the
    /// size given are an error, and nothing of them is sent.
    pub fn write(&mut self, client: &Client, chunk: Bytes) -> Result<()> {
        if self.present.is_some() || chunk.is_empty() {
            return Ok(());
        }
        let session = self.ready_session()?;
        let Some(verifier) = self.verifier.as_mut() else {
            return Err(self.finished());
        };
        verifier.update(&chunk)?;
        let len = chunk.len() as u64;
        let first = self.sent;
        let spec = ExchangeSpec {
            content_range: Some((first, first + len - 1)),
            ..self.upload(
                Method::Patch,
                Target::Url(session),
                RequestBody::Bytes(chunk),
            )
        };
        self.stage = Stage::Patch {
            exchange: Box::new(Exchange::new(client, spec)),
            len,
        };
        Ok(())
    }

    /// Starts the step that completes the push, once every byte was handed
    /// over and matched the digest; nothing is sent when the blob is there
    /// already. A mismatch is an integrity error: the upload is never
    /// completed.
    pub fn finish(&mut self, client: &Client) -> Result<()> {
        if self.present.is_some() {
            return Ok(());
        }
        let session = self.ready_session()?;
        let verifier = self.verifier.take().ok_or_else(|| self.finished())?;
        verifier.finish()?;
        let url = with_digest_query(&session, &self.digest);
        let spec = self.upload(Method::Put, Target::Url(url), RequestBody::Empty);
        self.stage = Stage::Put(Box::new(Exchange::new(client, spec)));
        Ok(())
    }

    /// The open session, when the push is between steps.
    fn ready_session(&self) -> Result<Url> {
        match (&self.stage, &self.session) {
            (Stage::Idle, Some(session)) => Ok(session.clone()),
            _ => Err(Error::InvalidInput(format!(
                "{}: the push cannot go on (its last step failed or has not ended)",
                self.reference
            ))),
        }
    }

    fn finished(&self) -> Error {
        Error::Internal(format!("{}: the push was finished already", self.reference))
    }

    /// A request into the upload session.
    fn upload(&self, method: Method, target: Target, body: RequestBody) -> ExchangeSpec {
        upload_request(&self.reference, method, target, body)
    }

    /// The blob is there with `size` bytes: recorded, and the outcome.
    fn there(&mut self, client: &mut Client, size: u64) -> Step<Stage, Option<Descriptor>> {
        let d = Descriptor::new(OCTET_STREAM.to_string(), self.digest.clone(), size);
        client.cache.record(&self.reference, &d, None);
        self.present = Some(d.clone());
        self.stage = Stage::Idle;
        Step::Done(Some(d))
    }

    fn headed(
        &mut self,
        client: &mut Client,
        found: Option<Found>,
    ) -> Step<Stage, Option<Descriptor>> {
        match found {
            Some(found) if found.descriptor.size == self.size => self.there(client, self.size),
            _ => Step::Next(Stage::Open(Box::new(open_session(client, &self.reference)))),
        }
    }

    /// A session opened or a chunk taken: the next session, and a pause
    /// for the caller.
    fn moved(
        &mut self,
        client: &Client,
        answer: Exchanged,
        taken: u64,
        what: &str,
    ) -> Result<Step<Stage, Option<Descriptor>>> {
        if answer.response.status != 202 {
            return Err(refused(&self.reference, &self.digest, &answer, what));
        }
        self.session = Some(session(client, &self.reference, &answer.response)?);
        self.sent += taken;
        self.stage = Stage::Idle;
        Ok(Step::Done(None))
    }

    fn completed(
        &mut self,
        client: &mut Client,
        answer: Exchanged,
    ) -> Result<Step<Stage, Option<Descriptor>>> {
        if !answer.response.is_success() {
            return Err(refused(
                &self.reference,
                &self.digest,
                &answer,
                "completing an upload",
            ));
        }
        let head = || Lookup::blob(&self.reference, self.digest.clone(), true).for_push();
        let (digest, size) = (&self.digest, Some(self.size));
        match ConfirmPush::after(&answer.response, head, digest, size, &self.reference) {
            Some(confirm) => Ok(Step::Next(Stage::Confirm(Box::new(confirm)))),
            None => Ok(self.there(client, self.size)),
        }
    }
}

impl Operation for PushBlob {
    /// `None`: ready for the next step; a descriptor: the blob is there.
    type Outcome = Result<Option<Descriptor>>;

    fn poll_output(&mut self, client: &mut Client) -> Output<Result<Option<Descriptor>>> {
        loop {
            match &mut self.stage {
                Stage::Head(lookup) => {
                    let found = ready!(lookup.poll_output(client));
                    advance!(self.stage, found.map(|f| self.headed(client, f)));
                }
                Stage::Open(exchange) => {
                    let answer = ready!(exchange.poll_output(client));
                    let moved = answer.and_then(|a| self.moved(client, a, 0, "starting an upload"));
                    advance!(self.stage, moved);
                }
                Stage::Idle => return Output::Done(Ok(self.present.clone())),
                Stage::Patch { exchange, len } => {
                    let len = *len;
                    let answer = ready!(exchange.poll_output(client));
                    let moved = answer.and_then(|a| self.moved(client, a, len, "sending a chunk"));
                    advance!(self.stage, moved);
                }
                Stage::Put(exchange) => {
                    let answer = ready!(exchange.poll_output(client));
                    advance!(self.stage, answer.and_then(|a| self.completed(client, a)));
                }
                Stage::Confirm(confirm) => {
                    let held = ready!(confirm.poll_output(client));
                    advance!(self.stage, held.map(|d| self.there(client, d.size)));
                }
            }
        }
    }
}
