//! The component's own check of chunked uploads, when its host does not
//! check uploads (`uploads-verified-by-host` false): the chunks of a
//! session are hashed here as they are sent, as one, and the `PUT` that
//! completes the session is not sent unless they are its digest. What the
//! check allows is the core's ([`ocirelay_core::upload_check`]).

use std::cell::RefCell;
use std::rc::Rc;

use ocirelay_core::distribution::upload_digest;
use ocirelay_core::http::{Method, Request, RequestBody, TransportError, UPLOAD_MISMATCH};
use ocirelay_core::upload_check::{SessionCheck, SessionChecks};

/// The checks of one driver's sessions, shared with the uploads under way.
pub type Checks = Rc<RefCell<SessionChecks>>;

/// A session's check, taken while a chunk's bytes pass; back on drop
/// (sent, broken or abandoned alike: the session says later which).
pub struct Guard {
    checks: Checks,
    key: String,
    check: Option<SessionCheck>,
}

impl Guard {
    /// The check for `request`'s bytes, when it is a chunk
    /// ([`RequestBody::Chunk`]) of a session followed from its start.
    pub fn for_chunk(checks: &Checks, request: &Request) -> Result<Option<Guard>, TransportError> {
        let RequestBody::Chunk { digest, .. } = &request.body else {
            return Ok(None);
        };
        let start = request
            .headers
            .get("content-range")
            .and_then(|r| r.split_once('-')?.0.parse::<u64>().ok())
            .ok_or_else(|| TransportError::permanent("a chunk without its Content-Range"))?;
        let key = SessionChecks::key(&request.url.authority, &request.url.path_and_query);
        let check = checks
            .borrow_mut()
            .chunk(&key, start, digest.algorithm())
            .map_err(|e| mismatch(&e))?;
        Ok(check.map(|check| Guard {
            checks: checks.clone(),
            key,
            check: Some(check),
        }))
    }

    /// Takes in bytes as they are sent.
    pub fn update(&mut self, bytes: &[u8]) {
        if let Some(c) = self.check.as_mut() {
            c.update(bytes);
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(check) = self.check.take() {
            self.checks.borrow_mut().put_back(&self.key, check);
        }
    }
}

/// Whether `request` may go: a `PUT` completing a session whose chunks
/// were hashed here goes only if they (and any bytes it carries) are the
/// digest it names.
pub fn completion(checks: &Checks, request: &Request) -> Result<(), TransportError> {
    if request.method != Method::Put {
        return Ok(());
    }
    let Some(digest) = upload_digest(&request.url.path_and_query) else {
        return Ok(());
    };
    let tail: &[u8] = match &request.body {
        RequestBody::Bytes(b) => b,
        RequestBody::Empty => &[],
        // A whole body is checked as it streams.
        RequestBody::Transfer { .. } | RequestBody::Chunk { .. } => return Ok(()),
    };
    let key = SessionChecks::key(&request.url.authority, &request.url.path_and_query);
    let completed = checks.borrow_mut().complete(&key, &digest, tail);
    completed.map(|_| ()).map_err(|e| mismatch(&e))
}

fn mismatch(detail: &str) -> TransportError {
    TransportError::integrity(format!(
        "{UPLOAD_MISMATCH}: {detail}; the upload was not completed"
    ))
}
