//! A request body on its way out: bytes the request carries, or a held
//! response body streamed through (all of it, or a chunk of it, whose rest
//! stays held), pumped without blocking and hashed here when the host does
//! not check uploads.

use bytes::Bytes;
use ocirelay_core::digest::Verifier;
use ocirelay_core::http::{TransportError, UPLOAD_MISMATCH};
use wasi::http::types::OutgoingBody;
use wasi::io::poll::Pollable;
use wasi::io::streams::{OutputStream, StreamError};

use crate::session_check::Guard;
use crate::transport::{err, error_code, BodyStream};

/// Where a request body's bytes come from.
pub(crate) enum Source {
    /// A held response body: moved by `splice` inside the host when the
    /// host checks uploads itself (the bytes never pass through guest
    /// memory); else read, hashed and written here, the last chunk held
    /// back until the whole checks.
    Held(BodyStream),
    /// Bytes the request carries.
    Bytes(Bytes),
}

/// A request body being sent, as fast as the stream takes it: never a
/// blocking write, so one large body does not stall the other requests.
///
/// Each pump moves bytes until one side cannot go on, and the driver then
/// waits on that side only: waiting on both would wake it at once whenever
/// the other side is ready (a sink with room while the source has nothing
/// yet), and spin.
pub(crate) struct Upload {
    // Drop order: pollables (children of the streams) first, then the sink
    // (a child of the body), then the body.
    /// Ready when the sink has room; made once.
    sink_ready: Pollable,
    /// Ready when a held source has bytes (or ended); made once.
    source_ready: Option<Pollable>,
    /// The side the last pump stopped at.
    blocked: Blocked,
    sink: OutputStream,
    body: OutgoingBody,
    source: Source,
    /// Bytes moved so far, and how many the body has (`Content-Length`):
    /// wasi-http closes the sink once that many were written.
    sent: u64,
    size: u64,
    /// Checks the bytes, when this component must (boxed: hash state is large).
    verifier: Option<Box<Verifier>>,
    /// A chunk's session check, when this component must.
    session: Option<Guard>,
    /// Bytes of the held source to drop before sending.
    skip: u64,
    /// Whether what is left of the held source is kept (a chunk not the last).
    keep_source: bool,
}

/// The side of an upload that has to move before it can go on.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Blocked {
    /// The sink is full.
    Sink,
    /// The source has no bytes yet.
    Source,
}

/// The most bytes read into guest memory at once when hashing an upload.
const HASHED_CHUNK: u64 = 1 << 20;

/// What an upload's sink can take now.
enum Room {
    /// Nothing: every byte of the body was sent.
    Sent,
    /// Nothing yet: the stream is full.
    Full,
    /// This many bytes (never more than the body has left).
    Take(u64),
}

impl Upload {
    /// Sends `size` bytes from `source` into `body` (checked by `verifier`
    /// when this component must), as a chunk when `chunking` says.
    pub(crate) fn new(
        body: OutgoingBody,
        source: Source,
        size: u64,
        verifier: Option<Box<Verifier>>,
        chunking: Chunking,
    ) -> Result<Self, TransportError> {
        let sink = body
            .write()
            .map_err(|()| err("request body stream already taken"))?;
        let source_ready = match &source {
            Source::Held(held) => Some(held.stream.subscribe()),
            Source::Bytes(_) => None,
        };
        Ok(Upload {
            sink_ready: sink.subscribe(),
            source_ready,
            blocked: Blocked::Sink,
            sink,
            body,
            source,
            sent: 0,
            size,
            verifier,
            session: chunking.session,
            skip: chunking.skip,
            keep_source: chunking.keep_source,
        })
    }

    /// What the sink can take now; `what` names the step in an error.
    fn room(&self, what: &str) -> Result<Room, TransportError> {
        if self.sent >= self.size {
            return Ok(Room::Sent);
        }
        match self.sink.check_write() {
            Ok(0) => Ok(Room::Full),
            Ok(n) => Ok(Room::Take(n.min(self.size - self.sent))),
            Err(e) => Err(stream_error(what, e)),
        }
    }

    /// Moves what can be moved now; `true` once the source is exhausted,
    /// else [`Upload::blocked`] says which side stopped it.
    pub(crate) fn pump(&mut self) -> Result<bool, TransportError> {
        if self.skip > 0 && !self.drop_skipped()? {
            return Ok(self.stop(Blocked::Source));
        }
        let stream = match &self.source {
            Source::Bytes(bytes) => return self.pump_bytes(&bytes.clone()),
            Source::Held(_) if self.verifier.is_some() || self.session.is_some() => {
                return self.pump_hashed()
            }
            Source::Held(held) => &held.stream,
        };
        loop {
            let room = match self.room("sending the body")? {
                Room::Take(n) => n,
                Room::Sent => return Ok(true),
                Room::Full => return Ok(self.stop(Blocked::Sink)),
            };
            match self.sink.splice(stream, room) {
                // The sink had room, so the source had nothing.
                Ok(0) => return Ok(self.stop(Blocked::Source)),
                Ok(n) => self.sent += n,
                // The source ended early: `finish` reports the shortfall.
                Err(StreamError::Closed) => return Ok(true),
                Err(e) => return Err(stream_error("streaming the body", e)),
            }
        }
    }

    /// Reads and drops what of the source is to be skipped (a source read
    /// again whole though asked for a range); `false` while some is left.
    fn drop_skipped(&mut self) -> Result<bool, TransportError> {
        let Source::Held(held) = &self.source else {
            return Ok(true);
        };
        while self.skip > 0 {
            match held.stream.read(self.skip.min(HASHED_CHUNK)) {
                Ok(chunk) if chunk.is_empty() => return Ok(false),
                Ok(chunk) => self.skip = self.skip.saturating_sub(chunk.len() as u64),
                Err(e) => return Err(stream_error("skipping what the session holds", e)),
            }
        }
        Ok(true)
    }

    /// Notes that the pump stopped at `side`; not done.
    fn stop(&mut self, side: Blocked) -> bool {
        self.blocked = side;
        false
    }

    /// What is ready when this upload can go on.
    pub(crate) fn ready(&self) -> &Pollable {
        match (self.blocked, &self.source_ready) {
            (Blocked::Source, Some(source)) => source,
            _ => &self.sink_ready,
        }
    }

    /// Writes what the stream takes now of `bytes`.
    fn pump_bytes(&mut self, bytes: &Bytes) -> Result<bool, TransportError> {
        loop {
            let room = match self.room("writing the body")? {
                Room::Take(n) => n,
                Room::Sent => return Ok(true),
                Room::Full => return Ok(self.stop(Blocked::Sink)),
            };
            let start = usize::try_from(self.sent).unwrap_or(usize::MAX);
            let n = usize::try_from(room)
                .unwrap_or(usize::MAX)
                .min(bytes.len() - start);
            self.sink
                .write(&bytes[start..start + n])
                .map_err(|e| stream_error("writing the body", e))?;
            self.sent += n as u64;
        }
    }

    /// Like [`Upload::pump`], through guest memory: every chunk is hashed,
    /// and the one that would complete the body is written only once the
    /// whole matches its digest (else the upload is abandoned before it).
    fn pump_hashed(&mut self) -> Result<bool, TransportError> {
        loop {
            let room = match self.room("sending the body")? {
                Room::Take(n) => n,
                Room::Sent => return Ok(true),
                Room::Full => return Ok(self.stop(Blocked::Sink)),
            };
            let want = room.min(HASHED_CHUNK);
            let Source::Held(held) = &self.source else {
                return Ok(true);
            };
            let chunk = match held.stream.read(want) {
                Ok(chunk) if chunk.is_empty() => return Ok(self.stop(Blocked::Source)),
                Ok(chunk) => chunk,
                // The source ended early: `finish` reports the shortfall.
                Err(StreamError::Closed) => return Ok(true),
                Err(e) => return Err(stream_error("streaming the body", e)),
            };
            let mismatch = |e: ocirelay_core::Error| {
                let detail = match e {
                    ocirelay_core::Error::Integrity { detail, .. } => detail,
                    other => other.to_string(),
                };
                let message = format!("{UPLOAD_MISMATCH}: {detail}; the upload was abandoned");
                TransportError::integrity(message)
            };
            if let Some(v) = self.verifier.as_mut() {
                v.update(&chunk).map_err(mismatch)?;
            }
            if let Some(s) = self.session.as_mut() {
                s.update(&chunk);
            }
            if self.sent + chunk.len() as u64 == self.size {
                if let Some(v) = self.verifier.take() {
                    v.finish().map_err(mismatch)?;
                }
            }
            self.sink
                .write(&chunk)
                .map_err(|e| stream_error("sending the body", e))?;
            self.sent += chunk.len() as u64;
        }
    }

    /// Ends the body (wasi-http checks it against `Content-Length`); what
    /// is left of a held source it keeps, when a chunk, not the last.
    pub(crate) fn finish(self) -> Result<Option<BodyStream>, TransportError> {
        let Upload {
            sink_ready,
            source_ready,
            blocked: _,
            sink,
            body,
            source,
            sent,
            size,
            verifier: _,
            session: _,
            skip: _,
            keep_source,
        } = self;
        drop(source_ready);
        drop(sink_ready);
        let source = match source {
            Source::Held(held) if keep_source => Some(held),
            _ => None,
        };
        let flushed = if sent < size {
            Err(err(&format!(
                "the source ended after {sent} of {size} bytes"
            )))
        } else {
            match sink.blocking_flush() {
                // Closed: wasi-http ended the body itself, every byte written.
                Ok(()) | Err(StreamError::Closed) => Ok(()),
                Err(e) => Err(stream_error("flushing the body", e)),
            }
        };
        // Explicit drops on every path: locals would otherwise go in reverse
        // order, the body before its stream, which traps ("resource has children").
        drop(sink);
        if let Err(e) = flushed {
            drop(body);
            return Err(e);
        }
        OutgoingBody::finish(body, None).map_err(|e| error_code(&e))?;
        Ok(source)
    }
}

pub(crate) fn stream_error(what: &str, e: StreamError) -> TransportError {
    match e {
        StreamError::Closed => err(&format!("{what}: stream closed")),
        StreamError::LastOperationFailed(e) => err(&format!("{what}: {}", e.to_debug_string())),
    }
}

/// How an upload is a chunk of a held body, if it is one.
#[derive(Default)]
pub(crate) struct Chunking {
    /// The session's check, when this component hashes uploads.
    pub(crate) session: Option<Guard>,
    /// Bytes of the held source to drop first.
    pub(crate) skip: u64,
    /// Whether what is left of the source is kept (not the last chunk).
    pub(crate) keep_source: bool,
}
