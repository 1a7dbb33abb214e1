//! Blob readers: a found object's content handed out by `read`, or
//! written to a `wasi:io` output-stream by `write-to`, checked against its
//! digest and size as it goes (by the host where it vouches for a body),
//! and read again from where it broke. Part of a blob (a ranged read) is
//! checked for its length only.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use ocirelay_core::digest::Verifier;
use ocirelay_core::http::TransportError;
use ocirelay_core::http::{RequestId, TransportErrorKind};
use ocirelay_core::json;
use ocirelay_core::ops::lookup::{Body, Found};
use ocirelay_core::ops::read_range::Part;
use ocirelay_core::ops::resume_blob::{self, ResumeBlob};
use ocirelay_core::{Client as CoreClient, Descriptor, Digest, Error, Reference};
use wasi::io::streams::{OutputStream, StreamError};

use crate::driver;
use crate::transport::{BodyStream, SendOptions};

enum Content {
    /// Verified bytes and the read position.
    Bytes(bytes::Bytes, usize),
    /// Part of a blob read straight from the registry: the bytes left of
    /// it. Checked for its length only (a part cannot be checked against
    /// the whole's digest), and not resumed when it breaks.
    Part { stream: BodyStream, left: u64 },
    /// A body read straight from the registry, checked as it is read.
    Stream {
        stream: BodyStream,
        check: Check,
        resume: Resume,
    },
}

/// How a streamed body is checked against its digest and size.
enum Check {
    /// Hashed here, chunk by chunk.
    Here(Box<Verifier>),
    /// Hashed by the host, which fails the last read on a mismatch; only
    /// counted here.
    Host { seen: u64 },
    /// Read to its end and found good.
    Done,
    /// Read to its end and found bad.
    Failed(Error),
}

impl Check {
    /// Bytes handed out so far.
    fn seen(&self) -> u64 {
        match self {
            Check::Here(v) => v.seen(),
            Check::Host { seen } => *seen,
            Check::Done | Check::Failed(_) => 0,
        }
    }

    /// Takes in `chunk`, handed out next, of content `digest` of `size` bytes.
    fn update(&mut self, chunk: &[u8], digest: &Digest, size: u64) -> Result<(), Error> {
        match self {
            Check::Here(v) => v.update(chunk),
            Check::Host { .. } => self.count(chunk.len() as u64, digest, size),
            Check::Done | Check::Failed(_) => Ok(()),
        }
    }

    /// Counts `n` more bytes the host checks.
    fn count(&mut self, n: u64, digest: &Digest, size: u64) -> Result<(), Error> {
        if let Check::Host { seen } = self {
            *seen += n;
            if *seen > size {
                let detail = format!("more than its {size} bytes");
                return Err(Error::integrity(digest.to_string(), detail));
            }
        }
        Ok(())
    }

    /// The end: the whole must match before it is said to. A failure is
    /// kept, said again to a caller that reads on.
    fn end(&mut self, digest: &Digest, size: u64) -> Result<(), Error> {
        let outcome = match std::mem::replace(self, Check::Done) {
            Check::Here(v) => v.finish().map(drop),
            Check::Host { seen } if seen != size => {
                let detail = format!("{seen} of its {size} bytes");
                Err(Error::integrity(digest.to_string(), detail))
            }
            Check::Failed(e) => Err(e),
            Check::Host { .. } | Check::Done => Ok(()),
        };
        if let Err(e) = &outcome {
            *self = Check::Failed(e.clone());
        }
        outcome
    }
}

/// What it takes to read a blob again from where its stream broke.
struct Resume {
    client: Rc<RefCell<CoreClient>>,
    send: SendOptions,
    /// The blob, by digest.
    reference: Reference,
    size: u64,
    tries: u32,
}

impl Resume {
    /// A stream of the blob from where `check` is (after `broken` broke),
    /// its checking carried on.
    ///
    /// From that byte on (asked for by `Range`; when the registry sends the
    /// whole blob instead, the bytes before it are read and dropped). A body
    /// the host was checking it asks to check on from there; if the host
    /// cannot (it kept no check, or the registry sent something else), the
    /// blob is read again from its start, and what the host does not vouch
    /// for then is hashed here, the bytes already handed out too.
    fn reopen(&mut self, check: &mut Check, broken: &BodyStream) -> Result<BodyStream, Error> {
        let seen = check.seen();
        let Check::Host { .. } = check else {
            let (stream, skip) = self.open_at(seen, None)?;
            return self.skip(stream, skip, None);
        };
        let (stream, skip) = self.open_at(seen, broken.host_check)?;
        if stream.host_check.is_some() {
            return self.skip(stream, skip, None);
        }
        drop(stream);
        let (stream, _) = self.open_at(0, None)?;
        if stream.host_check.is_some() {
            return self.skip(stream, seen, None);
        }
        let digest = self
            .reference
            .digest
            .clone()
            .ok_or_else(|| Error::Internal("a resumed blob read without its digest".into()))?;
        let subject = self.reference.to_string();
        let mut verifier = Box::new(Verifier::new(subject, digest, Some(self.size)));
        let stream = self.skip(stream, seen, Some(&mut verifier))?;
        *check = Check::Here(verifier);
        Ok(stream)
    }

    /// `stream` past its first `skip` bytes, hashed into `verifier` if given.
    fn skip(
        &self,
        mut stream: BodyStream,
        mut skip: u64,
        mut verifier: Option<&mut Verifier>,
    ) -> Result<BodyStream, Error> {
        let broken = |cause: TransportError| Error::transport(self.reference.to_string(), cause);
        while skip > 0 {
            match stream.read(skip.min(1 << 20)).map_err(broken)? {
                Some(chunk) => {
                    skip = skip.saturating_sub(chunk.len() as u64);
                    if let Some(v) = verifier.as_deref_mut() {
                        v.update(&chunk)?;
                    }
                }
                None => {
                    let early = TransportError::transient("the blob ended early when read again");
                    return Err(broken(early));
                }
            }
        }
        Ok(stream)
    }

    /// The blob's body from byte `offset` on, and how many bytes at its
    /// start to skip (the registry ignored the range).
    /// `resume_check`: the host's check of the read that broke, to carry on.
    fn open_at(
        &mut self,
        offset: u64,
        resume_check: Option<u64>,
    ) -> Result<(BodyStream, u64), Error> {
        self.tries += 1;
        let mut client = self.client.borrow_mut();
        let mut op = ResumeBlob::new(&client, &self.reference, offset, self.size)?;
        let send = SendOptions {
            resume_check,
            ..self.send
        };
        let (outcome, mut held) = driver::run(&mut client, &mut op, send);
        let resumed = outcome??;
        let stream = held.remove(&resumed.request).ok_or_else(|| {
            Error::Internal("resumed blob body went missing in the driver".into())
        })?;
        Ok((stream, resumed.skip))
    }
}

/// A found object's descriptor and content, checked as it is read.
pub struct BlobReader {
    descriptor: Descriptor,
    content: RefCell<Content>,
}

impl BlobReader {
    /// A reader over a found object's content (a held body is taken from
    /// `held`, the bodies the driver holds); `core` and `send` read it
    /// again from where it breaks.
    pub fn found(
        found: Found,
        held: &mut HashMap<RequestId, BodyStream>,
        core: &Rc<RefCell<CoreClient>>,
        send: SendOptions,
    ) -> Result<Self, Error> {
        let content = match found.body {
            Body::Empty => Content::Bytes(bytes::Bytes::new(), 0),
            Body::Redirect(to) => {
                return Err(Error::Internal(format!(
                    "{}: a redirect ({}) where content was expected",
                    found.reference,
                    to.redacted()
                )))
            }
            Body::Bytes(bytes) => Content::Bytes(bytes, 0),
            Body::Stream { request, verifier } => {
                let stream = held.remove(&request).ok_or_else(|| {
                    Error::Internal("blob body went missing in the driver".into())
                })?;
                let check = if stream.host_check.is_some() {
                    Check::Host { seen: 0 }
                } else {
                    Check::Here(verifier)
                };
                Content::Stream {
                    stream,
                    check,
                    resume: Resume {
                        client: core.clone(),
                        send,
                        reference: found.reference,
                        size: found.descriptor.size,
                        tries: 0,
                    },
                }
            }
        };
        Ok(BlobReader {
            descriptor: found.descriptor,
            content: RefCell::new(content),
        })
    }

    /// A reader over `part` of a blob, its body taken from `held`.
    pub fn part(part: Part, held: &mut HashMap<RequestId, BodyStream>) -> Result<Self, Error> {
        let mut stream = held.remove(&part.request).ok_or_else(|| {
            Error::Internal("a blob part's body went missing in the driver".into())
        })?;
        let digest = &part.descriptor.digest;
        // A registry that sent the whole blob: its bytes before the part.
        let mut skip = part.skip;
        while skip > 0 {
            match stream.read(skip.min(1 << 20)) {
                Ok(Some(chunk)) => skip = skip.saturating_sub(chunk.len() as u64),
                Ok(None) => {
                    let early = format!("the blob ended before byte {}", part.skip);
                    return Err(broken(digest, TransportError::transient(early)));
                }
                Err(e) => return Err(broken(digest, e)),
            }
        }
        let left = part.length();
        Ok(BlobReader {
            descriptor: part.descriptor,
            content: RefCell::new(Content::Part { stream, left }),
        })
    }
}

impl BlobReader {
    /// What was found.
    pub fn descriptor(&self) -> &Descriptor {
        &self.descriptor
    }

    /// What was found as JSON, as `ocirelay lookup --head` prints it.
    pub fn descriptor_json(&self) -> String {
        // A descriptor always serializes (string keys, plain values).
        json::to_string(&self.descriptor).unwrap_or_default()
    }

    /// Up to `max` bytes of the content; empty at the end, where the whole
    /// is checked (a part: its length).
    pub fn read(&self, max: u64) -> Result<Vec<u8>, Error> {
        let max = max.clamp(1, 16 * 1024 * 1024);
        match &mut *self.content.borrow_mut() {
            Content::Bytes(bytes, pos) => {
                let end = (*pos + max as usize).min(bytes.len());
                let chunk = bytes[*pos..end].to_vec();
                *pos = end;
                Ok(chunk)
            }
            Content::Part { stream, left } => {
                if *left == 0 {
                    return Ok(Vec::new());
                }
                let digest = &self.descriptor.digest;
                match stream.read(max.min(*left)) {
                    Ok(Some(chunk)) => {
                        *left = left.saturating_sub(chunk.len() as u64);
                        Ok(chunk)
                    }
                    Ok(None) => {
                        let short = format!("the part ended {left} bytes short");
                        Err(broken(digest, TransportError::transient(short)))
                    }
                    Err(e) => Err(broken(digest, e)),
                }
            }
            Content::Stream {
                stream,
                check,
                resume,
            } => {
                match check {
                    Check::Done => return Ok(Vec::new()),
                    Check::Failed(e) => return Err(e.clone()),
                    Check::Here(_) | Check::Host { .. } => {}
                }
                let digest = &self.descriptor.digest;
                let chunk = loop {
                    match stream.read(max) {
                        Ok(chunk) => break chunk,
                        // The host found the bytes do not match.
                        Err(e) if e.kind == TransportErrorKind::Integrity => {
                            return Err(Error::integrity(digest.to_string(), e.message));
                        }
                        // The connection broke: read on from where it did.
                        Err(e) if resume_blob::resumable(&e, resume.tries) => {
                            *stream = resume.reopen(check, stream)?;
                        }
                        Err(e) => {
                            return Err(broken(digest, e));
                        }
                    }
                };
                let size = self.descriptor.size;
                match chunk {
                    Some(chunk) => {
                        check.update(&chunk, digest, size)?;
                        Ok(chunk)
                    }
                    None => {
                        check.end(digest, size)?;
                        Ok(Vec::new())
                    }
                }
            }
        }
    }

    /// Writes the rest of the content to `out`; the bytes written. Checked
    /// as `read` checks it: the bytes that would complete it go out only
    /// once the whole matched.
    pub fn write_to(&self, out: &OutputStream) -> Result<u64, Error> {
        let mut written = 0;
        // While the host checks the bytes: moved inside the host.
        while let Some(n) = self.splice(out)? {
            written += n;
        }
        // Else, or from where it stopped: read and checked here, each chunk
        // held until the next read succeeds (the one that finds the end is
        // the one that checks the whole).
        let mut held: Vec<u8> = Vec::new();
        loop {
            let chunk = self.read(SPLICE_MAX)?;
            write_all(out, &held)?;
            written += held.len() as u64;
            if chunk.is_empty() {
                return Ok(written);
            }
            held = chunk;
        }
    }
}

/// The most bytes one read or splice of `write-to` asks for.
const SPLICE_MAX: u64 = 16 << 20;

impl BlobReader {
    /// Moves the next bytes into `out` inside the host, while the host
    /// checks them: how many (0 after a resume); `None` once it does not
    /// (the rest is read here) or at the end, checked.
    fn splice(&self, out: &OutputStream) -> Result<Option<u64>, Error> {
        let mut content = self.content.borrow_mut();
        let Content::Stream {
            stream,
            check,
            resume,
        } = &mut *content
        else {
            return Ok(None);
        };
        if !matches!(check, Check::Host { .. }) {
            return Ok(None);
        }
        let (digest, size) = (&self.descriptor.digest, self.descriptor.size);
        match stream.splice_into(out, SPLICE_MAX) {
            Ok(Some(n)) => {
                check.count(n, digest, size)?;
                Ok(Some(n))
            }
            Ok(None) => {
                check.end(digest, size)?;
                Ok(None)
            }
            Err(e) if e.kind == TransportErrorKind::Integrity => {
                Err(Error::integrity(digest.to_string(), e.message))
            }
            Err(e) if resume_blob::resumable(&e, resume.tries) => {
                *stream = resume.reopen(check, stream)?;
                Ok(Some(0))
            }
            Err(e) => Err(broken(digest, e)),
        }
    }
}

/// Writes all of `bytes` to `out`, as fast as it takes them.
fn write_all(out: &OutputStream, mut bytes: &[u8]) -> Result<(), Error> {
    let broken = |e: StreamError| {
        let cause = TransportError::permanent(format!("writing the content: {e:?}"));
        Error::transport("the answer", cause)
    };
    let ready = out.subscribe();
    while !bytes.is_empty() {
        let room = out.check_write().map_err(broken)?;
        if room == 0 {
            ready.block();
            continue;
        }
        let n = usize::try_from(room).unwrap_or(usize::MAX).min(bytes.len());
        out.write(&bytes[..n]).map_err(broken)?;
        bytes = &bytes[n..];
    }
    Ok(())
}

/// A body that broke off while read for blob `digest`.
fn broken(digest: &Digest, cause: TransportError) -> Error {
    Error::transport(digest.to_string(), cause)
}
