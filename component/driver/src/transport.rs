//! Sends the core's requests over `wasi:http/outgoing-handler` and reads
//! their answers as the core asked (buffered, or held for streaming).

use bytes::Bytes;
use ocirelay_core::digest::Verifier;
use ocirelay_core::distribution::blob_digest;
use ocirelay_core::http::{
    BodyMode, Headers, Method, Request, RequestBody, Response, ResponseBody, Scheme,
    TransportError, BODY_CHECK, BODY_VERIFIED, CHUNK_OF, DOWNLOAD_MISMATCH, RESUME_CHECK,
    SMALL_BODY_LIMIT, UPLOAD_MISMATCH, VERIFY_BODY,
};
use ocirelay_core::Digest;
use wasi::http::outgoing_handler;
use wasi::http::types::{
    ErrorCode, Fields, FutureIncomingResponse, IncomingBody, IncomingResponse,
    Method as WasiMethod, OutgoingBody, OutgoingRequest, RequestOptions, Scheme as WasiScheme,
};
use wasi::io::poll::Pollable;
use wasi::io::streams::{InputStream, OutputStream, StreamError};

use crate::session_check::{self, Checks, Guard};
use crate::upload::{Chunking, Source, Upload};

/// How requests are sent, as the client's configuration says.
#[derive(Debug, Clone, Copy, Default)]
pub struct SendOptions {
    /// Whether streamed uploads are checked against their digest here (the
    /// host does not).
    pub hash_uploads: bool,
    /// Whether the host checks a blob read when asked (its config's
    /// `downloads-verified-by-host`).
    pub host_checks_downloads: bool,
    /// The host's check of a blob read that broke, for the read that
    /// resumes it to be checked on from there.
    pub resume_check: Option<u64>,
    /// How long a request may wait to connect, for its answer's head, or
    /// between two chunks of a body; `None`: the host's own limits.
    pub timeout: Option<std::time::Duration>,
}

impl SendOptions {
    /// The timeouts asked of the host; a host that cannot apply one applies its own.
    fn request_options(&self) -> Option<RequestOptions> {
        let nanos = u64::try_from(self.timeout?.as_nanos()).unwrap_or(u64::MAX);
        let options = RequestOptions::new();
        let _ = options.set_connect_timeout(Some(nanos));
        let _ = options.set_first_byte_timeout(Some(nanos));
        let _ = options.set_between_bytes_timeout(Some(nanos));
        Some(options)
    }
}

/// A response body kept unread so that the caller can stream it.
///
/// Fields drop in declaration order: the stream must go before the body,
/// and the body before the response that owns it.
pub struct BodyStream {
    pub(crate) stream: InputStream,
    _body: IncomingBody,
    _response: IncomingResponse,
    /// The host's check of these bytes against the blob's digest, by id,
    /// when it checks them (and fails the last read on a mismatch): then
    /// they need not be hashed here.
    pub host_check: Option<u64>,
}

impl BodyStream {
    fn open(response: IncomingResponse) -> Result<Self, TransportError> {
        let body = response
            .consume()
            .map_err(|()| err("response body already consumed"))?;
        let stream = body
            .stream()
            .map_err(|()| err("response body stream already taken"))?;
        Ok(BodyStream {
            stream,
            _body: body,
            _response: response,
            host_check: None,
        })
    }

    /// Up to `max` bytes, blocking until some arrive; `None` at the end.
    pub fn read(&mut self, max: u64) -> Result<Option<Vec<u8>>, TransportError> {
        loop {
            match self.stream.blocking_read(max) {
                Ok(chunk) if chunk.is_empty() => continue,
                Ok(chunk) => return Ok(Some(chunk)),
                Err(StreamError::Closed) => return Ok(None),
                Err(StreamError::LastOperationFailed(e)) => return Err(read_failed(&e)),
            }
        }
    }

    /// Moves up to `max` bytes into `out` inside the host, blocking until
    /// both can go on; `None` at the end.
    pub fn splice_into(
        &mut self,
        out: &OutputStream,
        max: u64,
    ) -> Result<Option<u64>, TransportError> {
        // A failure of `out` (its reader went away) is not this body's, and
        // no read again mends it.
        let gone = |e: String| TransportError::permanent(format!("writing the content: {e}"));
        loop {
            match out.blocking_splice(&self.stream, max) {
                Ok(0) => continue,
                Ok(n) => return Ok(Some(n)),
                Err(_) if out.check_write().is_err() => {
                    return Err(gone("the stream closed".into()));
                }
                Err(StreamError::Closed) => return Ok(None),
                Err(StreamError::LastOperationFailed(e)) => return Err(read_failed(&e)),
            }
        }
    }

    /// Reads to the end, failing (without reading further) past `limit` bytes.
    fn read_to_end(&mut self, limit: u64) -> Result<Option<Vec<u8>>, TransportError> {
        let mut out = Vec::new();
        while let Some(chunk) = self.read(64 * 1024)? {
            out.extend_from_slice(&chunk);
            if out.len() as u64 > limit {
                return Ok(None);
            }
        }
        Ok(Some(out))
    }
}

pub(crate) fn err(message: &str) -> TransportError {
    TransportError::transient(message)
}

/// Why reading a body failed: the host's check of a blob read (see
/// `host_check`) said the bytes do not match, or the transfer broke.
fn read_failed(e: &wasi::io::error::Error) -> TransportError {
    let cause = e.to_debug_string();
    // Only the host's words: its error's debug text may go on (quoted,
    // with a backtrace), and they hold no quote, bracket or backslash.
    if let Some(at) = cause.find(DOWNLOAD_MISMATCH) {
        let said = cause[at + DOWNLOAD_MISMATCH.len()..].trim_start_matches(": ");
        let end = said.find(['"', ')', '\\', '\n']).unwrap_or(said.len());
        return TransportError::integrity(&said[..end]);
    }
    err(&format!("reading the body failed: {}", first_line(&cause)))
}

/// The first line of a host's error text, bounded: what follows (a
/// backtrace, in a debug build) is for the host's log, not for messages
/// that reach clients.
fn first_line(text: &str) -> &str {
    let line = text.lines().next().unwrap_or_default();
    match line.char_indices().nth(300) {
        Some((end, _)) => &line[..end],
        None => line,
    }
}

pub(crate) fn error_code(code: &ErrorCode) -> TransportError {
    let message = match code {
        // The host's own check of an upload (see `uploads-verified-by-host`).
        ErrorCode::InternalError(Some(m)) if m.starts_with(UPLOAD_MISMATCH) => {
            return TransportError::integrity(m.clone())
        }
        ErrorCode::DnsError(e) => {
            let rcode = e.rcode.as_deref().unwrap_or("no answer");
            return TransportError::unresolved(rcode);
        }
        ErrorCode::HttpRequestDenied => "request denied by the host",
        ErrorCode::TlsCertificateError => "TLS certificate not trusted",
        // Most often a registry that speaks plain HTTP, which no retry mends.
        ErrorCode::TlsProtocolError => {
            "TLS handshake failed (a registry that speaks plain HTTP must be named insecure)"
        }
        ErrorCode::TlsAlertReceived(alert) => {
            let said = alert.alert_message.as_deref().unwrap_or("no message");
            return TransportError::permanent(format!("the server ended TLS: {said}"));
        }
        ErrorCode::HttpRequestUriInvalid => "invalid request URL",
        ErrorCode::ConnectionRefused => return err("connection refused"),
        ErrorCode::ConnectionTimeout => return TransportError::timed_out("connection timed out"),
        ErrorCode::ConnectionReadTimeout => {
            return TransportError::timed_out("no progress within the idle timeout")
        }
        ErrorCode::InternalError(Some(m)) => return err(first_line(m)),
        other => return err(&in_words(other)),
    };
    TransportError::permanent(message)
}

/// A wasi-http error code in words: `ConnectionTerminated` as "connection
/// terminated" (a payload, if any, as the code's debug form shows it).
fn in_words(code: &ErrorCode) -> String {
    let debug = format!("{code:?}");
    let name = debug.strip_prefix("ErrorCode::").unwrap_or(&debug);
    let mut words = String::with_capacity(name.len() + 4);
    for (i, c) in name.char_indices() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                words.push(' ');
            }
            words.push(c.to_ascii_lowercase());
        } else {
            words.push(c);
        }
    }
    words
}

/// A request that was sent and awaits its response head (and, for a
/// streamed upload, is still sending its body).
///
/// Fields drop in declaration order: pollables before the future and
/// streams they are children of, an upload's streams before the future.
pub struct InFlight {
    /// Ready once the response head is here: made once, polled every wait.
    head: Pollable,
    upload: Option<Upload>,
    /// Why an upload was abandoned, for when the answer says no more.
    failed: Option<TransportError>,
    future: FutureIncomingResponse,
    request: Request,
    /// The digest the host was asked to check the body against.
    host_checks: Option<Digest>,
    /// What a chunk left of the held body it was sent from, for the next.
    leftover: Option<BodyStream>,
}

impl InFlight {
    /// Sends `request`; a [`RequestBody::Transfer`] body streams from `source`
    /// (checked against its digest here when `send` says so).
    pub fn start(
        request: Request,
        source: Option<BodyStream>,
        send: SendOptions,
        checks: &Checks,
    ) -> Result<InFlight, TransportError> {
        if send.hash_uploads {
            session_check::completion(checks, &request)?;
        }
        let mut fields: Vec<(String, Vec<u8>)> = request
            .headers
            .iter()
            .map(|(n, v)| (n.to_ascii_lowercase(), v.as_bytes().to_vec()))
            .collect();
        // A blob read to stream: the host checks it, when it says it can.
        let host_checks = match request.body_mode {
            BodyMode::Stream { .. } if send.host_checks_downloads => {
                blob_digest(&request.url.path_and_query).filter(|_| request.method == Method::Get)
            }
            _ => None,
        };
        // A chunk through a host that checks uploads: what the session must make.
        if let (RequestBody::Chunk { digest, .. }, false) = (&request.body, send.hash_uploads) {
            fields.push((CHUNK_OF.into(), digest.to_string().into_bytes()));
        }
        if let Some(digest) = &host_checks {
            fields.push((VERIFY_BODY.into(), digest.to_string().into_bytes()));
            if let Some(id) = send.resume_check {
                fields.push((RESUME_CHECK.into(), id.to_string().into_bytes()));
            }
        }
        let headers = Fields::from_list(&fields).map_err(|e| err(&format!("bad header: {e:?}")))?;
        let out = OutgoingRequest::new(headers);
        let method = match request.method {
            Method::Get => WasiMethod::Get,
            Method::Head => WasiMethod::Head,
            Method::Post => WasiMethod::Post,
            Method::Put => WasiMethod::Put,
            Method::Patch => WasiMethod::Patch,
            Method::Delete => WasiMethod::Delete,
        };
        let scheme = match request.url.scheme {
            Scheme::Http => WasiScheme::Http,
            Scheme::Https => WasiScheme::Https,
        };
        let bad = |what: &str| err(&format!("invalid {what} in {}", request.url));
        out.set_method(&method).map_err(|()| bad("method"))?;
        out.set_scheme(Some(&scheme)).map_err(|()| bad("scheme"))?;
        out.set_authority(Some(&request.url.authority))
            .map_err(|()| bad("authority"))?;
        out.set_path_with_query(Some(&request.url.path_and_query))
            .map_err(|()| bad("path"))?;
        let body = out.body().map_err(|()| err("request body already taken"))?;

        match &request.body {
            RequestBody::Empty => {
                // An empty body is finished before the request starts: a host
                // that sees a GET with its body still open may drop the body
                // when the answer comes and reset the connection.
                OutgoingBody::finish(body, None).map_err(|e| error_code(&e))?;
                let future = outgoing_handler::handle(out, send.request_options())
                    .map_err(|e| error_code(&e))?;
                Ok(InFlight {
                    head: future.subscribe(),
                    upload: None,
                    failed: None,
                    future,
                    request,
                    host_checks,
                    leftover: None,
                })
            }
            RequestBody::Bytes(bytes) => {
                // Shared, not copied: the request keeps its own handle.
                let source = Source::Bytes(bytes.clone());
                let size = bytes.len() as u64;
                let plain = Chunking::default();
                Self::upload(out, body, request, source, size, None, plain, send)
            }
            RequestBody::Transfer { size, digest, .. } => {
                let size = *size;
                let source = source.ok_or_else(|| err("the body to stream is not held"))?;
                let verifier = send
                    .hash_uploads
                    .then(|| Box::new(Verifier::new("", digest.clone(), Some(size))));
                let plain = Chunking::default();
                let source = Source::Held(source);
                Self::upload(out, body, request, source, size, verifier, plain, send)
            }
            RequestBody::Chunk {
                skip, len, last, ..
            } => {
                let (skip, len, last) = (*skip, *len, *last);
                let source =
                    source.ok_or_else(|| err("the body to send a chunk of is not held"))?;
                let session = match send.hash_uploads {
                    true => Guard::for_chunk(checks, &request)?,
                    false => None,
                };
                let chunking = Chunking {
                    session,
                    skip,
                    keep_source: !last,
                };
                let source = Source::Held(source);
                Self::upload(out, body, request, source, len, None, chunking, send)
            }
        }
    }

    /// Starts `out`, whose `body` carries `size` bytes from `source` (checked
    /// by `verifier` when this component must), as a chunk when `chunking` says.
    #[allow(clippy::too_many_arguments)]
    fn upload(
        out: OutgoingRequest,
        body: OutgoingBody,
        request: Request,
        source: Source,
        size: u64,
        verifier: Option<Box<Verifier>>,
        chunking: Chunking,
        send: SendOptions,
    ) -> Result<InFlight, TransportError> {
        let future =
            outgoing_handler::handle(out, send.request_options()).map_err(|e| error_code(&e))?;
        let upload = Upload::new(body, source, size, verifier, chunking)?;
        let mut flight = InFlight {
            head: future.subscribe(),
            upload: Some(upload),
            failed: None,
            future,
            request,
            host_checks: None,
            leftover: None,
        };
        // What can go at once goes (a small body whole), without a round of
        // the driver; and the upload then knows what it waits on.
        flight.pump()?;
        Ok(flight)
    }

    /// What the request asked to be done with its response body.
    pub fn body_mode(&self) -> BodyMode {
        self.request.body_mode
    }

    /// What is ready when there is something to do: the response head
    /// arrived, or the side an upload stopped at can move.
    pub fn ready(&self) -> impl Iterator<Item = &Pollable> {
        std::iter::once(&self.head).chain(self.upload.as_ref().map(Upload::ready))
    }

    /// Moves an upload's bytes along, and ends its body when the source is done.
    pub fn pump(&mut self) -> Result<(), TransportError> {
        if let Some(upload) = self.upload.as_mut() {
            let done = match upload.pump() {
                Ok(done) => done,
                // Abandon the body: the host then fails the request, and its
                // answer (refused, reset) says more than "stream closed".
                Err(e) => {
                    self.upload = None;
                    self.failed = Some(e);
                    return Ok(());
                }
            };
            if done {
                if let Some(done) = self.upload.take() {
                    self.leftover = done.finish()?;
                }
            }
        }
        Ok(())
    }

    /// The response once its head arrived, with its body read as the
    /// request asked (the request is then done with); `None` while it has not.
    pub fn poll(&mut self) -> Option<Answered> {
        let result = self.future.get()?;
        // An answer before the body was all sent (an error, most likely):
        // the rest of the body is abandoned.
        drop(self.upload.take());
        Some(match result {
            Err(()) => Answered::Ready(Err(err("response already taken"))),
            Ok(Err(code)) => Answered::Ready(Err(match self.failed.take() {
                Some(e) if !matches!(code, ErrorCode::HttpRequestDenied) => e,
                _ => error_code(&code),
            })),
            Ok(Ok(response)) => {
                let read = read_response(response, &self.request, self.host_checks.as_ref());
                // What a chunk left of its source goes on only after a 2xx.
                match (read, self.leftover.take()) {
                    (Ok((r, None)), Some(rest)) if r.is_success() => Answered::Chunked(r, rest),
                    (read, _) => Answered::Ready(read),
                }
            }
        })
    }
}

/// What [`InFlight::poll`] found once the response head arrived.
pub enum Answered {
    /// The response (and a held body, for a streamed 2xx), or why there is none.
    Ready(Result<(Response, Option<BodyStream>), TransportError>),
    /// A chunk's 2xx, and what it left of the body it was sent from: held
    /// for the next chunk, under this request's id.
    Chunked(Response, BodyStream),
}

/// The response's head, and its body as `request` asked; a held body is
/// checked by the host when it was asked to (`host_checks`) and says it does.
fn read_response(
    response: IncomingResponse,
    request: &Request,
    host_checks: Option<&Digest>,
) -> Result<(Response, Option<BodyStream>), TransportError> {
    let status = response.status();
    let headers: Headers = response
        .headers()
        .entries()
        .into_iter()
        .map(|(n, v)| (n, String::from_utf8_lossy(&v).into_owned()))
        .collect();
    let success = (200..300).contains(&status);
    // A 2xx body to stream (a blob) is kept unread (`None`): for the
    // caller, or for the next request to send on. Others are read whole.
    let limit = match request.body_mode {
        BodyMode::Relay if success => None,
        BodyMode::Stream { buffer_up_to } if success && !small(&headers, buffer_up_to) => None,
        BodyMode::Stream { buffer_up_to } if success => Some(buffer_up_to),
        BodyMode::Stream { .. } | BodyMode::Relay => Some(SMALL_BODY_LIMIT),
        BodyMode::Buffer(limit) => Some(limit),
    };
    let (body, held) = match limit {
        _ if request.method == Method::Head => (ResponseBody::Bytes(Bytes::new()), None),
        None => {
            let mut held = BodyStream::open(response)?;
            let vouched =
                host_checks.is_some_and(|d| headers.get(BODY_VERIFIED) == Some(&d.to_string()));
            held.host_check = headers
                .get(BODY_CHECK)
                .and_then(|id| id.parse().ok())
                .filter(|_| vouched);
            (ResponseBody::Held, Some(held))
        }
        Some(limit) if headers.content_length().is_some_and(|len| len > limit) => {
            (ResponseBody::TooLarge, None)
        }
        Some(limit) => match BodyStream::open(response).and_then(|mut b| b.read_to_end(limit)) {
            Ok(Some(bytes)) => (ResponseBody::Bytes(bytes.into()), None),
            Ok(None) => (ResponseBody::TooLarge, None),
            // An error's body that breaks off says nothing its status does
            // not (distribution's 416 announces the blob's length and sends
            // no byte): the answer stands without it.
            Err(_) if !success => (ResponseBody::Bytes(Bytes::new()), None),
            Err(e) => return Err(e),
        },
    };
    let response = Response {
        status,
        headers,
        body,
    };
    Ok((response, held))
}

/// A 2xx body whose announced length lets it be read whole.
fn small(headers: &Headers, limit: u64) -> bool {
    headers.content_length().is_some_and(|len| len <= limit)
}
