//! Read-range: part of a blob, by digest (`Range: bytes=…`), for a reader
//! that asks for part of one (an edge mirror serving a resumed pull).
//!
//! A registry that answers 206 sends the part; one that ignores the range
//! sends the whole, and the reader skips to the part. A range that covers
//! the whole blob is read as a lookup reads a blob: checked against its
//! digest. A part cannot be checked on its own (the digest covers the
//! whole), so only its length is: whoever assembles the parts checks the
//! whole, as every pull client does.

use crate::auth::repository_scope;
use crate::client::Client;
use crate::descriptor::Descriptor;
use crate::digest::{Digest, Verifier};
use crate::distribution::{absent, blob_path};
use crate::error::{Error, Result};
use crate::http::{BodyMode, Method, RequestId, Response, ResponseBody};
use crate::media_type::OCTET_STREAM;
use crate::ops::exchange::{Exchange, ExchangeSpec, Exchanged};
use crate::ops::lookup::{Body, Found};
use crate::ops::{Operation, Output};
use crate::range::{ByteRange, ContentRange};
use crate::ready;
use crate::reference::Reference;

/// Part of a blob, held unread by the driver.
#[derive(Debug)]
pub struct Part {
    /// The request whose body it is.
    pub request: RequestId,
    /// Bytes at the start of that body before the part (the registry sent
    /// the whole blob).
    pub skip: u64,
    /// The part's first byte in the blob.
    pub first: u64,
    /// Its last byte (included).
    pub last: u64,
    /// The whole blob (its size is the whole's).
    pub descriptor: Descriptor,
}

impl Part {
    /// The part's length in bytes (at least one).
    pub fn length(&self) -> u64 {
        self.last - self.first + 1
    }
}

/// What a ranged read found.
#[derive(Debug)]
pub enum RangeRead {
    /// The range covers the whole blob: read as a lookup reads it, checked.
    Whole(Found),
    /// Part of it.
    Part(Part),
    /// None of the range is in the blob (of this size, when the registry
    /// said): a 416.
    Unsatisfiable {
        /// The blob's size.
        size: Option<u64>,
    },
}

/// The read-range state machine.
#[derive(Debug)]
pub struct ReadRange {
    reference: Reference,
    digest: Digest,
    range: ByteRange,
    subject: String,
    exchange: Exchange,
}

impl ReadRange {
    /// Reads `range` of blob `reference` (by digest).
    pub fn new(client: &Client, reference: Reference, range: ByteRange) -> Result<Self> {
        let Some(digest) = reference.digest.clone() else {
            return Err(Error::InvalidInput(format!(
                "{reference}: a ranged blob read needs the blob's digest"
            )));
        };
        let spec = ExchangeSpec {
            range: Some(range),
            // Held whatever its size: the reader streams it.
            body_mode: BodyMode::Stream { buffer_up_to: 0 },
            ..ExchangeSpec::read(
                &reference.host,
                vec![repository_scope(&reference.repository, "pull")],
                Method::Get,
                blob_path(&reference.repository, &digest),
            )
        };
        Ok(ReadRange {
            subject: reference.to_string(),
            exchange: Exchange::new(client, spec),
            reference,
            digest,
            range,
        })
    }

    fn classify(&self, done: Exchanged) -> Result<Option<RangeRead>> {
        let Exchanged { id, response } = done;
        match response.status {
            _ if absent(&response) => return Ok(None),
            416 => {
                let size = match response
                    .headers
                    .get("content-range")
                    .and_then(ContentRange::parse)
                {
                    Some(ContentRange::Unsatisfied { size }) => Some(size),
                    _ => None,
                };
                return Ok(Some(RangeRead::Unsatisfiable { size }));
            }
            200 | 206 => {}
            _ => return Err(Error::registry(&self.subject, &response)),
        }
        if !matches!(response.body, ResponseBody::Held) {
            return Err(Error::Internal(format!(
                "{}: a ranged blob body was not held",
                self.subject
            )));
        }
        self.claimed_digest(&response)?;
        let length = response.headers.content_length();
        let (skip, first, last, size) = match response.status {
            206 => {
                let said = response.headers.get("content-range").unwrap_or_default();
                let Some(ContentRange::Bytes {
                    first,
                    last,
                    size: Some(size),
                }) = ContentRange::parse(said)
                else {
                    return Err(self.unasked(format!("Content-Range {said:?}")));
                };
                let asked = self.range.resolve(size);
                if asked.is_none_or(|(f, l)| first != f || last > l) {
                    return Err(self.unasked(format!("Content-Range {said:?}")));
                }
                if length.is_some_and(|n| n != last - first + 1) {
                    return Err(self.unasked(format!(
                        "Content-Range {said:?} with Content-Length {}",
                        length.unwrap_or_default()
                    )));
                }
                (0, first, last, size)
            }
            _ => {
                let size = length.ok_or_else(|| {
                    Error::protocol(&self.subject, "blob answer without Content-Length")
                })?;
                match self.range.resolve(size) {
                    Some((first, last)) => (first, first, last, size),
                    None => return Ok(Some(RangeRead::Unsatisfiable { size: Some(size) })),
                }
            }
        };
        let descriptor = Descriptor::new(OCTET_STREAM, self.digest.clone(), size);
        if first == 0 && last + 1 == size {
            let verifier = Verifier::new(self.subject.clone(), self.digest.clone(), Some(size));
            return Ok(Some(RangeRead::Whole(Found {
                reference: self.reference.clone(),
                descriptor,
                body: Body::Stream {
                    request: id,
                    verifier: Box::new(verifier),
                },
            })));
        }
        Ok(Some(RangeRead::Part(Part {
            request: id,
            skip,
            first,
            last,
            descriptor,
        })))
    }

    /// An answer that claims another blob is the registry's error.
    fn claimed_digest(&self, response: &Response) -> Result<()> {
        let Some(claimed) = response.headers.get("docker-content-digest") else {
            return Ok(());
        };
        match Digest::parse(claimed.trim()) {
            Ok(d) if d.algorithm() == self.digest.algorithm() && d != self.digest => {
                Err(Error::integrity(
                    &self.subject,
                    format!("asked for {}, registry answered {d}", self.digest),
                ))
            }
            Ok(_) => Ok(()),
            Err(e) => Err(Error::protocol(
                &self.subject,
                format!("bad Docker-Content-Digest: {e}"),
            )),
        }
    }

    fn unasked(&self, what: String) -> Error {
        Error::protocol(
            &self.subject,
            format!(
                "asked for {}, registry sent {what}",
                self.range.header_value()
            ),
        )
    }
}

impl Operation for ReadRange {
    type Outcome = Result<Option<RangeRead>>;

    fn poll_output(&mut self, client: &mut Client) -> Output<Self::Outcome> {
        let answer = ready!(self.exchange.poll_output(client));
        Output::Done(answer.and_then(|a| self.classify(a)))
    }
}
