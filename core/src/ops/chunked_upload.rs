//! Chunked-upload: a copied blob streamed into an open upload session in
//! `PATCH` chunks, then completed with an empty `PUT ?digest=`. A chunk is
//! the next bytes of the held source body ([`RequestBody::Chunk`]); what it
//! leaves stays held for the next one, so the source is read once.
//!
//! When a chunk breaks, the session is asked how much it holds (`GET`, its
//! `Range`), and the source is read again from there ([`ResumeBlob`]): what
//! a break costs is the chunk, not the blob. The session may hold what it
//! held before the chunk or all of it; anything else (a range that goes
//! back, stops inside the chunk, or passes what was sent) cannot be checked
//! as one hash with what came before ([`crate::upload_check`]), and the
//! upload starts over in a new session, once; so does a session the
//! registry forgot (404). A 413 lowers the chunk size for the registry
//! ([`Client::learn_body_limit`]); the registry's `OCI-Chunk-Min-Length`
//! raises it.

use crate::client::Client;
use crate::digest::Digest;
use crate::distribution::with_digest_query;
use crate::error::{Error, Result};
use crate::http::{Method, RequestBody, RequestId, Url};
use crate::ops::ensure_blob::{open_session, refused, session, upload_request};
use crate::ops::exchange::{Exchange, ExchangeSpec, Exchanged, Target};
use crate::ops::resume_blob::{ResumeBlob, Resumed, MAX_RESUMES};
use crate::ops::{Operation, Output, Step};
use crate::reference::Reference;
use crate::upload::{chunk_min_length, session_holds};
use crate::{advance, ready};

#[derive(Debug)]
enum Stage {
    /// Not started: the source's body held at byte 0, if read already.
    Start(Option<RequestId>),
    /// Reading the source (again) from where the session stands.
    Source(Box<ResumeBlob>),
    /// Sending the next `len` bytes.
    Patch { exchange: Box<Exchange>, len: u64 },
    /// A chunk of `len` bytes did not go through: how much is there?
    Status { exchange: Box<Exchange>, len: u64 },
    /// The session is gone: a new one, from byte 0.
    Reopen(Box<Exchange>),
    /// Completing the upload.
    Put(Box<Exchange>),
}

/// The chunked-upload state machine; its outcome is the completing `PUT`'s
/// answer, for the caller to confirm.
#[derive(Debug)]
pub struct ChunkedUpload {
    /// The blob as pushed (by digest).
    reference: Reference,
    /// The blob read (by digest).
    from: Reference,
    digest: Digest,
    size: u64,
    /// The registry's smallest chunk, when it says.
    min: Option<u64>,
    /// The session, as its last answer named it.
    session: Url,
    /// Bytes the session holds.
    held: u64,
    /// Recoveries in a row that moved nothing on.
    stalled: u32,
    /// Whether the upload started over already.
    restarted: bool,
    stage: Stage,
}

/// Where a chunked upload begins.
#[derive(Debug)]
pub struct ChunkedStart {
    /// The open session.
    pub session: Url,
    /// Its `OCI-Chunk-Min-Length`, if it stated one.
    pub min: Option<u64>,
    /// The source's body, held at byte 0, if it was read already.
    pub source: Option<RequestId>,
}

impl ChunkedUpload {
    /// Streams blob `from` (of `size` bytes, `digest`) into `reference`'s
    /// open session as `start` says.
    pub fn new(
        reference: Reference,
        from: Reference,
        digest: Digest,
        size: u64,
        start: ChunkedStart,
    ) -> Self {
        ChunkedUpload {
            reference,
            from,
            digest,
            size,
            min: start.min,
            session: start.session,
            held: 0,
            stalled: 0,
            restarted: false,
            stage: Stage::Start(start.source),
        }
    }

    /// The next chunk's length: the registry's rule, at least its minimum,
    /// at most what is left.
    fn next_len(&self, client: &Client) -> u64 {
        let rule = client.upload_rule(&self.reference.host);
        let len = rule.chunk_size.max(self.min.unwrap_or(0)).max(1);
        len.min(self.size - self.held)
    }

    /// The PATCH of the next chunk from the source held for `from`.
    fn patch(&self, client: &Client, from: RequestId, skip: u64) -> Stage {
        let len = self.next_len(client);
        let last = last_chunk(self.held, len, self.size);
        let body = RequestBody::Chunk {
            from,
            skip,
            len,
            digest: self.digest.clone(),
            last,
        };
        let spec = ExchangeSpec {
            content_range: Some((self.held, self.held + len - 1)),
            ..self.request(Method::Patch, Target::Url(self.session.clone()), body)
        };
        Stage::Patch {
            exchange: Box::new(Exchange::new(client, spec)),
            len,
        }
    }

    /// A request into the session.
    fn request(&self, method: Method, target: Target, body: RequestBody) -> ExchangeSpec {
        upload_request(&self.reference, method, target, body)
    }

    /// The source read from where the session stands; or, when it holds
    /// everything, the completing PUT.
    fn read_source(&self, client: &Client) -> Result<Stage> {
        if self.held == self.size {
            let url = with_digest_query(&self.session, &self.digest);
            let spec = self.request(Method::Put, Target::Url(url), RequestBody::Empty);
            return Ok(Stage::Put(Box::new(Exchange::new(client, spec))));
        }
        let read = ResumeBlob::relayed(client, &self.from, self.held, self.size)?;
        Ok(Stage::Source(Box::new(read)))
    }

    /// The next session, from an answer's `Location`, when it names one.
    fn follow(&mut self, client: &Client, answer: &Exchanged) -> Result<()> {
        if answer.response.headers.get("location").is_some() {
            self.session = session(client, &self.reference, &answer.response)?;
        }
        Ok(())
    }

    fn sourced(&self, client: &Client, resumed: Resumed) -> Step<Stage, Exchanged> {
        Step::Next(self.patch(client, resumed.request, resumed.skip))
    }

    fn patched(
        &mut self,
        client: &mut Client,
        answer: Result<Exchanged>,
        len: u64,
    ) -> Result<Step<Stage, Exchanged>> {
        let answer = match answer {
            // Broken on the way: the session says how far it got.
            Err(e) if e.is_transient() => return Ok(self.ask_status(client, len)),
            answer => answer?,
        };
        match answer.response.status {
            202 => {}
            // Too large for the registry (or a proxy before it): smaller
            // chunks, from where the session stands.
            413 if client.learn_body_limit(&self.reference.host, len) => {
                return Ok(self.ask_status(client, 0));
            }
            413 => {
                return Err(Error::protocol(
                    self.reference.to_string(),
                    format!(
                        "the registry refuses a chunk of {len} bytes as too large (413), and \
                         smaller ones would be under {} MiB",
                        crate::upload::SMALLEST_CHUNK >> 20
                    ),
                ))
            }
            404 => return self.restart(client, "the registry forgot the upload session"),
            _ => {
                return Err(refused(
                    &self.reference,
                    &self.digest,
                    &answer,
                    "sending a chunk",
                ))
            }
        }
        let taken = self.held + len;
        // A 202 that says it holds something else is asked again (the
        // source read again from where it stands: what this chunk left is
        // given up).
        let said = session_holds(&answer.response.headers);
        let followed = self.follow(client, &answer);
        if followed.is_err() || said.is_some_and(|n| n != taken) {
            if !last_chunk(self.held, len, self.size) {
                client.release(answer.id);
            }
            followed?;
            return Ok(self.ask_status(client, len));
        }
        self.held = taken;
        self.stalled = 0;
        if self.held == self.size {
            return self.read_source(client).map(Step::Next);
        }
        // The rest of the source is held under this chunk's request.
        Ok(Step::Next(self.patch(client, answer.id, 0)))
    }

    /// Asks the session how much it holds, after a chunk of `len` bytes
    /// that may or may not have reached it.
    fn ask_status(&self, client: &Client, len: u64) -> Step<Stage, Exchanged> {
        let spec = self.request(
            Method::Get,
            Target::Url(self.session.clone()),
            RequestBody::Empty,
        );
        Step::Next(Stage::Status {
            exchange: Box::new(Exchange::new(client, spec)),
            len,
        })
    }

    fn statused(
        &mut self,
        client: &mut Client,
        answer: Result<Exchanged>,
        len: u64,
    ) -> Result<Step<Stage, Exchanged>> {
        let answer = answer?;
        let status = answer.response.status;
        if status == 404 {
            return self.restart(client, "the registry forgot the upload session");
        }
        if !answer.response.is_success() {
            return Err(refused(
                &self.reference,
                &self.digest,
                &answer,
                "asking how much of an upload arrived",
            ));
        }
        let holds = session_holds(&answer.response.headers);
        // All of the chunk arrived (after a 413, `len` 0: it moves on by
        // itself, its chunks get smaller), or none of it.
        if holds == Some(self.held + len) {
            self.held += len;
            self.stalled = 0;
        } else if holds == Some(self.held) {
            self.stalled += 1;
            if self.stalled > MAX_RESUMES {
                return Err(Error::protocol(
                    self.reference.to_string(),
                    format!(
                        "no chunk went through after {MAX_RESUMES} tries at byte {} of {}",
                        self.held, self.size
                    ),
                ));
            }
        } else {
            let said = answer.response.headers.get("range").unwrap_or("no Range");
            let detail = format!(
                "the upload session holds {said:?} after a chunk of bytes {}..{}",
                self.held,
                self.held + len
            );
            return self.restart(client, &detail);
        }
        self.follow(client, &answer)?;
        self.read_source(client).map(Step::Next)
    }

    /// Starts over in a new session, from byte 0, once; `why` says what
    /// went wrong when that was done already.
    fn restart(&mut self, client: &Client, why: &str) -> Result<Step<Stage, Exchanged>> {
        if std::mem::replace(&mut self.restarted, true) {
            return Err(Error::protocol(
                self.reference.to_string(),
                format!("{why}, and the upload had started over once already"),
            ));
        }
        self.held = 0;
        self.stalled = 0;
        let open = open_session(client, &self.reference);
        Ok(Step::Next(Stage::Reopen(Box::new(open))))
    }

    fn reopened(&mut self, client: &Client, answer: Exchanged) -> Result<Step<Stage, Exchanged>> {
        if answer.response.status != 202 {
            return Err(refused(
                &self.reference,
                &self.digest,
                &answer,
                "starting an upload again",
            ));
        }
        self.session = session(client, &self.reference, &answer.response)?;
        self.min = chunk_min_length(&answer.response.headers);
        self.read_source(client).map(Step::Next)
    }
}

/// Whether a chunk of `len` bytes from byte `held` ends a blob of `size`
/// (nothing of its source is left held after it).
fn last_chunk(held: u64, len: u64, size: u64) -> bool {
    held + len == size
}

impl Operation for ChunkedUpload {
    type Outcome = Result<Exchanged>;

    fn poll_output(&mut self, client: &mut Client) -> Output<Result<Exchanged>> {
        loop {
            match &mut self.stage {
                Stage::Start(source) => {
                    let next = match *source {
                        Some(id) => Ok(self.patch(client, id, 0)),
                        None => self.read_source(client),
                    };
                    advance!(self.stage, next.map(Step::Next));
                }
                Stage::Source(read) => {
                    let resumed = ready!(read.poll_output(client));
                    advance!(self.stage, resumed.map(|r| self.sourced(client, r)));
                }
                Stage::Patch { exchange, len } => {
                    let len = *len;
                    let answer = ready!(exchange.poll_output(client));
                    advance!(self.stage, self.patched(client, answer, len));
                }
                Stage::Status { exchange, len } => {
                    let len = *len;
                    let answer = ready!(exchange.poll_output(client));
                    advance!(self.stage, self.statused(client, answer, len));
                }
                Stage::Reopen(exchange) => {
                    let answer = ready!(exchange.poll_output(client));
                    advance!(self.stage, answer.and_then(|a| self.reopened(client, a)));
                }
                Stage::Put(exchange) => {
                    let answer = ready!(exchange.poll_output(client));
                    return Output::Done(answer);
                }
            }
        }
    }
}
