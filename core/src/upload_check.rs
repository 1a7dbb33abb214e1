//! The check of a chunked upload: every byte sent into an upload session,
//! over all its `PATCH`es, hashed in order as one, so that the `PUT` that
//! completes the session goes out only when what the registry was sent is
//! the digest it names. Whoever moves the bytes keeps these (the host, at
//! native speed, or the component's driver when the host does not): the
//! core decides what the check allows, they feed it.
//!
//! A chunk that broke may have reached the registry whole, in part, or not
//! at all; the registry says which, and the next chunk starts there. The
//! check follows when that is where a chunk began (the state at each
//! chunk's start is kept) or where the bytes that passed ended. Anything
//! else it cannot vouch for, and refuses.
//!
//! Sessions are known by where they are (`authority` and path, without the
//! query, which distribution rewrites on every answer). A registry that
//! moves a session to a new path between chunks leaves it unchecked here
//! (the registry's own digest check still applies).

use std::collections::{HashMap, VecDeque};

use crate::digest::{Algorithm, Digest, Hasher};

/// Sessions followed at most; the oldest is dropped first (an abandoned
/// session is never completed, so its check is never taken).
const KEPT: usize = 256;

/// The checks of the upload sessions in progress.
#[derive(Debug, Default)]
pub struct SessionChecks {
    by_session: HashMap<String, SessionCheck>,
    /// Keys, oldest first, for the bound.
    order: VecDeque<String>,
}

/// One session's check, taken out while a chunk's bytes pass.
#[derive(Debug, Clone)]
pub struct SessionCheck {
    /// Bytes hashed: all that passed into the session.
    passed: u64,
    hasher: Hasher,
    /// Where the last chunk began, and the hash state there.
    chunk_start: (u64, Hasher),
}

/// What the completing `PUT` of a session may do.
#[derive(Debug, PartialEq, Eq)]
pub enum Completion {
    /// Every byte sent into it was seen, and they are the digest named.
    Checked,
    /// No chunk of it was seen here (a monolithic upload, or a session that
    /// moved): nothing to say.
    Unknown,
}

impl SessionChecks {
    /// The session a request goes to: its authority and path, without query.
    pub fn key(authority: &str, path_and_query: &str) -> String {
        let path = path_and_query.split('?').next().unwrap_or_default();
        format!("{authority}{path}")
    }

    /// The check for a chunk of `session` that starts at byte `start`,
    /// taken out until [`SessionChecks::put_back`]. `None`: a session not
    /// followed from its first byte (left unchecked, see the module's
    /// docs). An error: the chunk starts where the bytes seen cannot
    /// continue from.
    pub fn chunk(
        &mut self,
        session: &str,
        start: u64,
        algorithm: Algorithm,
    ) -> Result<Option<SessionCheck>, String> {
        let known = self.by_session.remove(session);
        self.order.retain(|k| k != session);
        let mut check = match known {
            _ if start == 0 => {
                let fresh = Hasher::new(algorithm);
                return Ok(Some(SessionCheck {
                    passed: 0,
                    chunk_start: (0, fresh.clone()),
                    hasher: fresh,
                }));
            }
            None => return Ok(None),
            Some(check) => check,
        };
        if start == check.passed {
            check.chunk_start = (start, check.hasher.clone());
        } else if start == check.chunk_start.0 {
            check.hasher = check.chunk_start.1.clone();
            check.passed = start;
        } else {
            return Err(format!(
                "the upload goes on at byte {start}, but {} bytes were sent into it and the \
                 last chunk began at byte {}: what the registry holds cannot be checked",
                check.passed, check.chunk_start.0
            ));
        }
        Ok(Some(check))
    }

    /// Keeps `check` for `session`'s next chunk or its completion.
    pub fn put_back(&mut self, session: &str, check: SessionCheck) {
        self.by_session.insert(session.to_string(), check);
        self.order.push_back(session.to_string());
        while self.order.len() > KEPT {
            if let Some(oldest) = self.order.pop_front() {
                self.by_session.remove(&oldest);
            }
        }
    }

    /// Whether `session`, whose completing `PUT` also carries `tail` bytes
    /// (usually none), may be completed as `digest`: an error names what
    /// the bytes are instead. The check is used up either way.
    pub fn complete(
        &mut self,
        session: &str,
        digest: &Digest,
        tail: &[u8],
    ) -> Result<Completion, String> {
        let Some(mut check) = self.by_session.remove(session) else {
            return Ok(Completion::Unknown);
        };
        self.order.retain(|k| k != session);
        check.update(tail);
        let passed = check.passed;
        let actual = check.hasher.finish();
        if actual == *digest {
            Ok(Completion::Checked)
        } else {
            Err(format!(
                "the {passed} bytes sent into the upload are {actual}, not {digest}"
            ))
        }
    }
}

impl SessionCheck {
    /// Takes in bytes passing into the session.
    pub fn update(&mut self, bytes: &[u8]) {
        self.passed += bytes.len() as u64;
        self.hasher.update(bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: &str = "r:5000/v2/a/blobs/uploads/1";

    fn sent(checks: &mut SessionChecks, start: u64, bytes: &[u8]) {
        let mut c = checks.chunk(S, start, Algorithm::Sha256).unwrap().unwrap();
        c.update(bytes);
        checks.put_back(S, c);
    }

    #[test]
    fn chunks_in_order_complete_as_one_digest() {
        let mut checks = SessionChecks::default();
        sent(&mut checks, 0, b"hello ");
        sent(&mut checks, 6, b"world");
        let good = Digest::sha256(b"hello world");
        assert_eq!(checks.complete(S, &good, b""), Ok(Completion::Checked));
        // Used up: a second completion knows nothing.
        assert_eq!(checks.complete(S, &good, b""), Ok(Completion::Unknown));

        sent(&mut checks, 0, b"hello ");
        let err = checks.complete(S, &good, b"worle").unwrap_err();
        assert!(
            err.contains("11 bytes") && err.contains(&good.to_string()),
            "{err}"
        );
    }

    #[test]
    fn a_broken_chunk_resumes_at_its_start_or_its_end_only() {
        let good = Digest::sha256(b"hello world");
        let mut checks = SessionChecks::default();
        sent(&mut checks, 0, b"hello ");
        // Broke after "wo"; the registry kept nothing of it: again from 6.
        sent(&mut checks, 6, b"wo");
        sent(&mut checks, 6, b"world");
        assert_eq!(checks.complete(S, &good, b""), Ok(Completion::Checked));

        // The registry took the whole chunk, its answer was lost: on from 8.
        sent(&mut checks, 0, b"hello ");
        sent(&mut checks, 6, b"wo");
        sent(&mut checks, 8, b"rld");
        assert_eq!(checks.complete(S, &good, b""), Ok(Completion::Checked));

        // It kept part of the chunk: not checkable.
        sent(&mut checks, 0, b"hello ");
        sent(&mut checks, 6, b"wor");
        let err = checks.chunk(S, 7, Algorithm::Sha256).unwrap_err();
        assert!(
            err.contains("byte 7") && err.contains("began at byte 6"),
            "{err}"
        );
        // Backwards past the chunk, or beyond what passed: the same.
        sent(&mut checks, 0, b"hello ");
        sent(&mut checks, 6, b"wor");
        assert!(checks.chunk(S, 3, Algorithm::Sha256).is_err());
        sent(&mut checks, 0, b"hello ");
        assert!(checks.chunk(S, 7, Algorithm::Sha256).is_err());
    }

    #[test]
    fn sessions_not_seen_from_their_start_are_not_vouched_for() {
        let mut checks = SessionChecks::default();
        assert!(checks
            .chunk(S, 5, Algorithm::Sha256)
            .is_ok_and(|c| c.is_none()));
        let d = Digest::sha256(b"x");
        assert_eq!(checks.complete(S, &d, b"x"), Ok(Completion::Unknown));
        // Bounded: the oldest session goes first.
        for i in 0..=KEPT {
            let key = format!("r/v2/a/blobs/uploads/{i}");
            let c = checks.chunk(&key, 0, Algorithm::Sha256).unwrap().unwrap();
            checks.put_back(&key, c);
        }
        assert_eq!(
            checks.complete("r/v2/a/blobs/uploads/0", &d, b""),
            Ok(Completion::Unknown)
        );
        assert!(checks.complete("r/v2/a/blobs/uploads/1", &d, b"").is_err());
        // What was completed leaves the order; the rest keep their places.
        for key in ["a", "b"] {
            let c = checks.chunk(key, 0, Algorithm::Sha256).unwrap().unwrap();
            checks.put_back(key, c);
        }
        assert_eq!(
            checks.complete("r/v2/a/blobs/uploads/2", &d, b""),
            Ok(Completion::Unknown),
            "the oldest left then went"
        );
        assert!(checks.complete("r/v2/a/blobs/uploads/3", &d, b"").is_err());
        assert_eq!(
            SessionChecks::key("r:1", "/v2/a/blobs/uploads/u?_state=x&digest=y"),
            "r:1/v2/a/blobs/uploads/u"
        );
    }
}
