//! Resume-blob: reads a blob again from a byte offset after its stream
//! broke (`Range: bytes=N-`). A registry that answers 206 sends the rest; one
//! that ignores the range sends it all again, and the reader skips what it
//! already has. Either way the reader's verifier carries on, so the digest
//! check still covers every byte handed out.

use crate::auth::repository_scope;
use crate::client::Client;
use crate::distribution::{blob_path, rest_range};
use crate::error::{Error, Result};
use crate::http::{BodyMode, Method, RequestId, ResponseBody, TransportError};
use crate::ops::exchange::{Exchange, ExchangeSpec, Exchanged};
use crate::ops::{Operation, Output};
use crate::range::ByteRange;
use crate::ready;
use crate::reference::Reference;

/// A broken read is resumed at most this often.
pub const MAX_RESUMES: u32 = 3;

/// Whether a read that failed with `error`, after `resumed` resumes so far,
/// is worth resuming: a broken connection is, a refusal by policy or an
/// untrusted certificate is not.
pub fn resumable(error: &TransportError, resumed: u32) -> bool {
    !error.is_permanent() && resumed < MAX_RESUMES
}

/// Where the resumed body starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resumed {
    /// The request whose body the driver holds, unread.
    pub request: RequestId,
    /// Bytes at the start of that body that the reader already has
    /// (0 when the registry honoured the range).
    pub skip: u64,
}

/// The resume-blob state machine.
#[derive(Debug)]
pub struct ResumeBlob {
    subject: String,
    offset: u64,
    size: u64,
    exchange: Exchange,
}

impl ResumeBlob {
    /// Reads blob `reference` (with digest) of `size` bytes from `offset` on.
    pub fn new(client: &Client, reference: &Reference, offset: u64, size: u64) -> Result<Self> {
        // Held whatever its size: the reader streams it.
        let held = BodyMode::Stream { buffer_up_to: 0 };
        Self::reading(client, reference, offset, size, held)
    }

    /// The same read, its body held for the next request to send on (a
    /// chunked upload's source, read again from where the session stands).
    pub fn relayed(client: &Client, reference: &Reference, offset: u64, size: u64) -> Result<Self> {
        Self::reading(client, reference, offset, size, BodyMode::Relay)
    }

    fn reading(
        client: &Client,
        reference: &Reference,
        offset: u64,
        size: u64,
        body_mode: BodyMode,
    ) -> Result<Self> {
        let Some(digest) = &reference.digest else {
            return Err(Error::InvalidInput(format!(
                "{reference}: resuming a blob read needs its digest"
            )));
        };
        if offset >= size {
            return Err(Error::InvalidInput(format!(
                "{reference}: cannot resume at byte {offset} of {size}"
            )));
        }
        let spec = ExchangeSpec {
            // From the start: a plain GET, whose whole body a host can verify.
            range: (offset > 0).then_some(ByteRange::From(offset)),
            body_mode,
            ..ExchangeSpec::read(
                &reference.host,
                vec![repository_scope(&reference.repository, "pull")],
                Method::Get,
                blob_path(&reference.repository, digest),
            )
        };
        Ok(ResumeBlob {
            subject: reference.to_string(),
            offset,
            size,
            exchange: Exchange::new(client, spec),
        })
    }

    fn classify(&self, done: Exchanged) -> Result<Resumed> {
        let Exchanged { id, response } = done;
        if !matches!(response.body, ResponseBody::Held) && response.is_success() {
            return Err(Error::Internal(format!(
                "{}: resumed blob body was not held",
                self.subject
            )));
        }
        match response.status {
            206 => {
                let range = response.headers.get("content-range").unwrap_or("");
                let expected = rest_range(self.offset, self.size);
                if Some(range.trim()) != expected.as_deref() {
                    return Err(Error::protocol(
                        &self.subject,
                        format!(
                            "asked for bytes {}- of {}, registry sent Content-Range {range:?}",
                            self.offset, self.size
                        ),
                    ));
                }
                Ok(Resumed {
                    request: id,
                    skip: 0,
                })
            }
            200 => match response.headers.content_length() {
                Some(len) if len == self.size => Ok(Resumed {
                    request: id,
                    skip: self.offset,
                }),
                other => Err(Error::integrity(
                    &self.subject,
                    format!(
                        "read again, the blob is {} bytes, not {}",
                        other.map_or("an unknown number of".to_string(), |n| n.to_string()),
                        self.size
                    ),
                )),
            },
            _ => Err(Error::registry(&self.subject, &response)),
        }
    }
}

impl Operation for ResumeBlob {
    type Outcome = Result<Resumed>;

    fn poll_output(&mut self, client: &mut Client) -> Output<Result<Resumed>> {
        let answer = ready!(self.exchange.poll_output(client));
        Output::Done(answer.and_then(|a| {
            let held = matches!(a.response.body, ResponseBody::Held).then_some(a.id);
            let resumed = self.classify(a);
            // A body held for a read that will not happen is given up.
            if let (Err(_), Some(id)) = (&resumed, held) {
                client.release(id);
            }
            resumed
        }))
    }
}
