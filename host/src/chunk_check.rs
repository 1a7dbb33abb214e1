//! Chunked uploads checked in the host, at native speed: the chunks the
//! component sends into a session (each marked with the digest the whole
//! must have) are hashed as one as they pass, and the `PUT` that completes
//! the session is refused, never sent, unless they are that digest. What
//! the check allows is the core's ([`ocirelay_core::upload_check`]).

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use ocirelay_core::upload_check::{Completion, SessionCheck, SessionChecks};
use ocirelay_core::Digest;

/// The checks of the sessions in progress, shared by every instance.
#[derive(Debug, Default)]
pub struct ChunkChecks(Mutex<SessionChecks>);

impl ChunkChecks {
    /// The check for a chunk of `session` starting at byte `start` of a
    /// blob that must be `digest`: `None` for a session not followed from
    /// its start; an error when the chunk starts where what passed cannot
    /// continue from.
    pub fn chunk(
        self: &Arc<Self>,
        session: String,
        start: u64,
        digest: &Digest,
    ) -> Result<Option<Taken>, String> {
        let mut checks = self.0.lock().map_err(|_| "chunk checks poisoned")?;
        let check = checks.chunk(&session, start, digest.algorithm())?;
        Ok(check.map(|check| Taken {
            checks: self.clone(),
            session,
            check: Some(check),
        }))
    }

    /// Whether `session` may be completed as `digest` (see [`SessionChecks::complete`]).
    pub fn complete(&self, session: &str, digest: &Digest) -> Result<Completion, String> {
        let mut checks = self.0.lock().map_err(|_| "chunk checks poisoned")?;
        checks.complete(session, digest, &[])
    }
}

/// A session's check while a chunk passes; back when it is dropped.
#[derive(Debug)]
pub struct Taken {
    checks: Arc<ChunkChecks>,
    session: String,
    check: Option<SessionCheck>,
}

impl Drop for Taken {
    fn drop(&mut self) {
        if let (Some(check), Ok(mut checks)) = (self.check.take(), self.checks.0.lock()) {
            checks.put_back(&self.session, check);
        }
    }
}

/// A chunk's body, hashed into its session's check as it passes.
pub struct ChunkBody<B> {
    inner: B,
    taken: Taken,
}

impl<B> ChunkBody<B> {
    /// `inner`, checked as part of the session `taken` is of.
    pub fn new(inner: B, taken: Taken) -> Self {
        ChunkBody { inner, taken }
    }
}

impl<B> Body for ChunkBody<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if let (Some(data), Some(check)) = (frame.data_ref(), this.taken.check.as_mut()) {
                check.update(data);
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Full};

    async fn pass(checks: &Arc<ChunkChecks>, start: u64, bytes: &'static [u8], d: &Digest) {
        let taken = checks.chunk("s".into(), start, d).unwrap().unwrap();
        let body = ChunkBody::new(Full::new(Bytes::from_static(bytes)), taken);
        body.collect().await.unwrap();
    }

    #[tokio::test]
    async fn chunks_passing_make_the_session_checked_at_its_completion() {
        let good = Digest::sha256(b"hello world");
        let checks = Arc::new(ChunkChecks::default());
        pass(&checks, 0, b"hello ", &good).await;
        pass(&checks, 6, b"world", &good).await;
        assert_eq!(checks.complete("s", &good), Ok(Completion::Checked));

        // Other bytes: the completion is refused, naming what they are.
        pass(&checks, 0, b"hello ", &good).await;
        pass(&checks, 6, b"worle", &good).await;
        let err = checks.complete("s", &good).unwrap_err();
        assert!(err.contains(&good.to_string()), "{err}");

        // A chunk dropped unsent still hands its check back.
        pass(&checks, 0, b"hello ", &good).await;
        drop(checks.chunk("s".into(), 6, &good).unwrap());
        pass(&checks, 6, b"world", &good).await;
        assert_eq!(checks.complete("s", &good), Ok(Completion::Checked));
    }
}
