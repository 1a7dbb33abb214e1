//! Idle timeouts: a request whose upload, answer or answer body makes no
//! progress for a while fails as a timeout, which the component retries
//! like a broken connection. A stalled registry must not hang a pipeline,
//! yet a large upload that keeps moving must never time out, so the clock
//! restarts on every frame sent or received.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Buf as _;
use http_body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

/// When a request last made progress.
#[derive(Debug)]
pub struct Activity(Mutex<Instant>);

impl Activity {
    /// Progress now.
    pub fn new() -> Arc<Self> {
        Arc::new(Activity(Mutex::new(Instant::now())))
    }

    /// Records progress.
    pub fn touch(&self) {
        if let Ok(mut last) = self.0.lock() {
            *last = Instant::now();
        }
    }

    fn last(&self) -> Instant {
        self.0.lock().map(|l| *l).unwrap_or_else(|_| Instant::now())
    }
}

/// `future`'s output, or `None` once `activity` has been idle for `idle`.
pub async fn within<F: Future>(
    activity: &Activity,
    idle: Duration,
    future: F,
) -> Option<F::Output> {
    tokio::pin!(future);
    loop {
        let deadline = activity.last() + idle;
        tokio::select! {
            out = &mut future => return Some(out),
            () = tokio::time::sleep_until(deadline) => {
                if activity.last() + idle <= Instant::now() {
                    return None;
                }
            }
        }
    }
}

/// Progress, for a body: this many bytes within `idle` of waiting. A body
/// trickled a few bytes at a time just under the idle timeout makes none.
pub const MIN_PROGRESS: u64 = 8 * 1024;

/// A response body that fails with `timeout` when it has been waited on for
/// `idle` without [`MIN_PROGRESS`] bytes arriving. Only waiting counts: a
/// body held unread (a copy's source waiting for its upload to start) does
/// not time out.
pub struct IdleBody<B, E> {
    inner: B,
    idle: Duration,
    sleep: Pin<Box<Sleep>>,
    /// Since when the body has been waited on (the clock is running).
    waiting_since: Option<Instant>,
    /// Waiting time and bytes since the last progress.
    waited: Duration,
    bytes: u64,
    timeout: Option<E>,
}

impl<B, E> IdleBody<B, E> {
    /// Wraps `inner`; `timeout` is the error it ends with when idle.
    pub fn new(inner: B, idle: Duration, timeout: E) -> Self {
        IdleBody {
            inner,
            idle,
            sleep: Box::pin(tokio::time::sleep(idle)),
            waiting_since: None,
            waited: Duration::ZERO,
            bytes: 0,
            timeout: Some(timeout),
        }
    }
}

impl<B, E> Body for IdleBody<B, E>
where
    B: Body<Error = E> + Unpin,
    E: Unpin,
{
    type Data = B::Data;
    type Error = E;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                if let Some(since) = this.waiting_since.take() {
                    this.waited += since.elapsed();
                }
                if let Some(Ok(f)) = &frame {
                    this.bytes += f.data_ref().map_or(0, |d| d.remaining() as u64);
                }
                let done = frame.is_none();
                if this.bytes >= MIN_PROGRESS || done {
                    (this.waited, this.bytes) = (Duration::ZERO, 0);
                } else if this.waited >= this.idle {
                    // A trickle: waited on for the whole idle time, too little came.
                    return Poll::Ready(this.timeout.take().map(Err));
                }
                Poll::Ready(frame)
            }
            Poll::Pending => {
                if this.waiting_since.is_none() {
                    let now = Instant::now();
                    this.waiting_since = Some(now);
                    let left = this.idle.saturating_sub(this.waited);
                    this.sleep.as_mut().reset(now + left);
                }
                match this.sleep.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(this.timeout.take().map(Err)),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
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

    #[tokio::test(start_paused = true)]
    async fn progress_restarts_the_clock_and_silence_ends_it() {
        let activity = Activity::new();
        let idle = Duration::from_secs(10);
        // Busy for 25 s, touching every 5 s: never idle for 10.
        let busy = async {
            for _ in 0..5 {
                tokio::time::sleep(Duration::from_secs(5)).await;
                activity.touch();
            }
            "done"
        };
        assert_eq!(within(&activity, idle, busy).await, Some("done"));
        // Silent for longer than the idle time.
        let silent = tokio::time::sleep(Duration::from_secs(11));
        assert_eq!(within(&activity, idle, silent).await, None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_times_out_only_while_waited_on() {
        use http_body_util::{BodyExt, StreamBody};
        let idle = Duration::from_secs(10);
        let full = MIN_PROGRESS as usize;
        // A frame now, the next one 30 s later.
        let frames = futures_stream(vec![(0, full), (30, full)]);
        let mut body = IdleBody::new(StreamBody::new(frames), idle, "timed out");
        assert!(body.frame().await.is_some_and(|f| f.is_ok()));
        assert_eq!(body.frame().await.and_then(|f| f.err()), Some("timed out"));

        // Held unread for 30 s, then read: frames 5 s apart are no timeout,
        // however long the body sat unread before.
        let frames = futures_stream(vec![(5, full), (5, full), (5, full)]);
        let mut body = IdleBody::new(StreamBody::new(frames), idle, "timed out");
        tokio::time::sleep(Duration::from_secs(30)).await;
        for _ in 0..3 {
            assert!(body.frame().await.is_some_and(|f| f.is_ok()));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_trickle_is_no_progress() {
        use http_body_util::{BodyExt, StreamBody};
        let idle = Duration::from_secs(10);
        // A byte every 9 s: never 10 s without a frame, yet nothing moves.
        let frames = futures_stream(vec![(9, 1); 5]);
        let mut body = IdleBody::new(StreamBody::new(frames), idle, "timed out");
        assert!(body.frame().await.is_some_and(|f| f.is_ok()));
        assert_eq!(body.frame().await.and_then(|f| f.err()), Some("timed out"));
        // Nor is a page now and then: 4 KiB every 9 s.
        let frames = futures_stream(vec![(9, 4096); 5]);
        let mut body = IdleBody::new(StreamBody::new(frames), idle, "timed out");
        assert!(body.frame().await.is_some_and(|f| f.is_ok()));
        assert_eq!(body.frame().await.and_then(|f| f.err()), Some("timed out"));
        // Slow, but enough in each idle time: fine to its end.
        let frames = futures_stream(vec![(5, MIN_PROGRESS as usize * 3 / 4); 6]);
        let mut body = IdleBody::new(StreamBody::new(frames), idle, "timed out");
        for _ in 0..6 {
            assert!(body.frame().await.is_some_and(|f| f.is_ok()));
        }
        assert!(body.frame().await.is_none());
    }

    #[tokio::test]
    async fn a_watched_body_ends_and_sizes_as_what_it_wraps() {
        use http_body_util::{BodyExt, Empty, Full};
        let idle = Duration::from_secs(10);
        let empty = Empty::<bytes::Bytes>::new().map_err(|never| match never {});
        assert!(IdleBody::new(empty, idle, "timed out").is_end_stream());
        let full = Full::new(bytes::Bytes::from_static(b"hello")).map_err(|never| match never {});
        let body = IdleBody::new(full, idle, "timed out");
        assert!(!body.is_end_stream());
        assert_eq!(body.size_hint().exact(), Some(5));
    }

    /// Frames of `len` bytes that each arrive `delay` seconds after the one before.
    fn futures_stream(
        frames: Vec<(u64, usize)>,
    ) -> impl futures_util::Stream<Item = Result<Frame<bytes::Bytes>, &'static str>> + Unpin {
        use futures_util::StreamExt as _;
        Box::pin(
            futures_util::stream::iter(frames).then(|(delay, len)| async move {
                tokio::time::sleep(Duration::from_secs(delay)).await;
                Ok(Frame::data(bytes::Bytes::from(vec![b'x'; len])))
            }),
        )
    }
}
