//! What the hook checks of an upload as it goes out: a `PUT` that completes
//! a session goes only if the session's chunks are its digest; a `PUT`
//! carrying a whole blob is hashed as it passes ([`crate::verify`]); a
//! chunk the component marked (`ocirelay-chunk-of`) is hashed into its
//! session's check ([`crate::chunk_check`]). All of it only when the hook
//! verifies uploads, the component's config then saying so.

use std::sync::Arc;

use bytes::Bytes;
use http_body::Body;
use http_body_util::BodyExt;
use ocirelay_core::http::{CHUNK_OF, UPLOAD_MISMATCH};
use ocirelay_core::upload_check::SessionChecks;
use ocirelay_core::Digest;
use wasmtime_wasi_http::{Error, WasiBody};

use crate::chunk_check::{ChunkBody, ChunkChecks};
use crate::verify::{upload_digest, VerifyingBody};

/// What one request is, as an upload.
pub struct UploadChecks {
    verify: bool,
    put: bool,
    /// The digest a `PUT` completes its session as (`digest=`).
    completes: Option<Digest>,
    /// The digest the whole must have, when the request is a marked chunk.
    chunk_of: Option<Digest>,
    /// The session, as its checks know it.
    session: String,
    /// Where a chunk starts in the blob (`Content-Range`).
    start: u64,
    /// The body's length (`Content-Length`).
    length: Option<u64>,
}

impl UploadChecks {
    /// Reads what `parts` is as an upload to `authority`, taking the
    /// component's mark off (it is never sent on); `verify`: whether the
    /// hook checks uploads at all.
    pub fn read(parts: &mut http::request::Parts, authority: &str, verify: bool) -> Self {
        let header = |parts: &http::request::Parts, name| {
            parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let chunk_of = parts
            .headers
            .remove(CHUNK_OF)
            .and_then(|v| Digest::parse(v.to_str().ok()?).ok());
        let put = parts.method == http::Method::PUT;
        let completes = upload_digest(&parts.uri);
        // Only an upload's requests are looked at further (reads go as they are).
        if !verify || (chunk_of.is_none() && !(put && completes.is_some())) {
            return UploadChecks {
                verify: false,
                put,
                completes: None,
                chunk_of: None,
                session: String::new(),
                start: 0,
                length: None,
            };
        }
        let start = header(parts, http::header::CONTENT_RANGE)
            .and_then(|r| r.split_once('-')?.0.parse().ok())
            .unwrap_or(0);
        let length = header(parts, http::header::CONTENT_LENGTH).and_then(|v| v.parse().ok());
        let session = parts
            .uri
            .path_and_query()
            .map(|p| SessionChecks::key(authority, p.as_str()))
            .unwrap_or_default();
        UploadChecks {
            verify,
            put,
            completes,
            chunk_of,
            session,
            start,
            length,
        }
    }

    /// Refuses a `PUT` completing a session whose chunks are not its digest.
    pub fn completion(&self, chunks: &ChunkChecks) -> Result<(), Error> {
        match (&self.completes, self.verify && self.put) {
            (Some(digest), true) => chunks
                .complete(&self.session, digest)
                .map(|_| ())
                .map_err(|detail| refused(&detail, "not completed")),
            _ => Ok(()),
        }
    }

    /// The body that goes out: `body`, checked as what it is.
    pub fn body<B>(&self, chunks: &Arc<ChunkChecks>, body: B) -> Result<WasiBody, Error>
    where
        B: Body<Data = Bytes, Error = Error> + Send + Unpin + 'static,
    {
        if !self.verify {
            return Ok(body.boxed_unsync());
        }
        // A PUT with the whole blob: its bytes must be what its digest says.
        if let (true, Some(digest), Some(size)) = (self.put, &self.completes, self.length) {
            let mismatch = |detail: String| refused(&detail, "abandoned");
            return Ok(VerifyingBody::new(body, digest.clone(), size, mismatch).boxed_unsync());
        }
        let Some(digest) = &self.chunk_of else {
            return Ok(body.boxed_unsync());
        };
        let taken = chunks
            .chunk(self.session.clone(), self.start, digest)
            .map_err(|detail| refused(&detail, "not completed"))?;
        Ok(match taken {
            Some(taken) => ChunkBody::new(body, taken).boxed_unsync(),
            None => body.boxed_unsync(),
        })
    }
}

/// The error that stops an upload whose bytes are not its digest: the
/// component reads it as an integrity error.
fn refused(detail: &str, outcome: &str) -> Error {
    Error::InternalError(Some(format!(
        "{UPLOAD_MISMATCH}: {detail}; the upload was {outcome}"
    )))
}
