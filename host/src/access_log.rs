//! `ocirelay serve`'s request log: one line per request, written once its
//! answer's last byte is sent (or the answer is cut short), with what the
//! request cost upstream (every request the instance's hook sent while it
//! answered) and what the service warned of on its stderr. What a line
//! holds and how it is written is the core's
//! (`ocirelay_core::service::log`); this module gathers the facts.

use std::io::Write;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Buf;
use http_body::{Body, Frame, SizeHint};
use ocirelay_core::service::log::{Format, Line, UpstreamCall};

/// Where lines go: stdout, a line at a time.
pub struct Sink {
    format: Format,
}

impl Sink {
    /// Lines in `format` on stdout.
    pub fn new(format: Format) -> Arc<Self> {
        Arc::new(Sink { format })
    }

    fn write(&self, line: &Line) {
        let mut out = std::io::stdout().lock();
        // A log nobody reads (stdout closed) is no reason to stop serving.
        let _ = writeln!(out, "{}", line.render(self.format)).and_then(|()| out.flush());
    }
}

/// The requests an instance's hook sends, in order: those of the request
/// it is answering.
#[derive(Debug, Default)]
pub struct Calls(Mutex<Vec<UpstreamCall>>);

impl Calls {
    /// A request to `host` by `method` is sent: its index, for its status.
    pub fn sent(&self, method: &str, host: &str) -> usize {
        let mut calls = self.0.lock().unwrap_or_else(|e| e.into_inner());
        calls.push(UpstreamCall {
            method: method.to_string(),
            host: host.to_string(),
            status: None,
        });
        calls.len() - 1
    }

    /// Call `index` was answered with `status`.
    pub fn answered(&self, index: usize, status: u16) {
        let mut calls = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(call) = calls.get_mut(index) {
            call.status = Some(status);
        }
    }

    /// The calls so far, leaving none.
    pub fn take(&self) -> Vec<UpstreamCall> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// A request's line while it is answered: written when the last holder
/// (the instance's task, the answer's body) lets go of it.
pub struct Pending {
    line: Mutex<Line>,
    start: Instant,
    sink: Arc<Sink>,
    /// The body's length, when its head said it: hyper stops reading a
    /// body once that much is sent, without asking it for its end.
    length: Mutex<Option<u64>>,
}

impl Pending {
    /// The line of `method` on `path_and_query`, arrived at `start`.
    pub fn new(sink: Arc<Sink>, method: &str, path_and_query: &str, start: Instant) -> Arc<Self> {
        let mut line = Line::new(method, path_and_query, 0);
        // Until its body says it ended.
        line.complete = false;
        Arc::new(Pending {
            line: Mutex::new(line),
            start,
            sink,
            length: Mutex::new(None),
        })
    }

    /// The answer's status, and the length of the body it sends (none for
    /// a HEAD request or a 304, else its `Content-Length`, when it says).
    pub fn answered(&self, status: u16, content_length: Option<u64>) {
        let no_body = status == 304 || self.line.lock().is_ok_and(|l| l.method == "HEAD");
        *self.length.lock().unwrap_or_else(|e| e.into_inner()) = match no_body {
            true => Some(0),
            false => content_length,
        };
        self.update(|line| line.status = status);
    }

    /// Changes the line.
    pub fn update(&self, f: impl FnOnce(&mut Line)) {
        f(&mut self.line.lock().unwrap_or_else(|e| e.into_inner()));
    }
}

impl Pending {
    /// The line as it is to be written: how long it took, and complete
    /// when the body's whole length went out.
    fn finish(&mut self) -> &Line {
        let length = *self.length.get_mut().unwrap_or_else(|e| e.into_inner());
        let line = self.line.get_mut().unwrap_or_else(|e| e.into_inner());
        if length.is_some_and(|n| n == line.bytes) {
            line.complete = true;
        }
        line.took(self.start.elapsed());
        line
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        let sink = self.sink.clone();
        sink.write(self.finish());
    }
}

/// An answer's body, counted as it is sent; its end (or its error) is
/// written into the request's line.
pub struct CountedBody<B> {
    inner: B,
    pending: Arc<Pending>,
}

impl<B> CountedBody<B> {
    /// `inner`, counted into `pending`.
    pub fn new(inner: B, pending: Arc<Pending>) -> Self {
        CountedBody { inner, pending }
    }
}

impl<B: Body + Unpin> Body for CountedBody<B>
where
    B::Data: Buf,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        let frame = Pin::new(&mut this.inner).poll_frame(cx);
        match &frame {
            Poll::Ready(Some(Ok(f))) => {
                let n = f.data_ref().map_or(0, |d| d.remaining() as u64);
                this.pending.update(|line| line.bytes += n);
            }
            Poll::Ready(None) => this.pending.update(|line| line.complete = true),
            Poll::Ready(Some(Err(_))) | Poll::Pending => {}
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        let end = self.inner.is_end_stream();
        if end {
            // hyper sends a body that says it has ended without polling it.
            self.pending.update(|line| line.complete = true);
        }
        end
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Empty, Full, StreamBody};

    fn pending() -> Arc<Pending> {
        Pending::new(
            Sink::new(Format::Text),
            "GET",
            "/v2/a/blobs/x?token=s",
            Instant::now(),
        )
    }

    fn line(p: &Pending) -> Line {
        p.line.lock().unwrap().clone()
    }

    #[tokio::test]
    async fn a_body_sent_to_its_end_is_counted_and_complete() {
        let p = pending();
        let body = Full::new(bytes::Bytes::from_static(b"hello")).map_err(|never| match never {});
        let mut counted = CountedBody::new(body, p.clone());
        assert_eq!(counted.size_hint().exact(), Some(5));
        while counted.frame().await.is_some() {}
        let l = line(&p);
        assert_eq!((l.bytes, l.complete), (5, true));
        assert_eq!(l.path, "/v2/a/blobs/x?token=…");

        let p = pending();
        let empty = Empty::<bytes::Bytes>::new().map_err(|never| match never {});
        assert!(CountedBody::new(empty, p.clone()).is_end_stream());
        assert!(line(&p).complete);
    }

    #[tokio::test]
    async fn a_body_that_breaks_is_cut_short() {
        let p = pending();
        let frames: Vec<Result<Frame<bytes::Bytes>, &str>> = vec![
            Ok(Frame::data(bytes::Bytes::from_static(b"abc"))),
            Err("the blob does not match"),
        ];
        let mut counted = CountedBody::new(
            StreamBody::new(futures_util::stream::iter(frames)),
            p.clone(),
        );
        assert!(counted.frame().await.is_some_and(|f| f.is_ok()));
        assert!(counted.frame().await.is_some_and(|f| f.is_err()));
        let l = line(&p);
        assert_eq!((l.bytes, l.complete), (3, false));
        assert_eq!(l.level(), "warn");
    }

    #[tokio::test]
    async fn a_body_sent_to_its_length_is_complete_though_not_polled_to_its_end() {
        let sent = |status, length, method: &str| {
            let p = Pending::new(Sink::new(Format::Json), method, "/v2/", Instant::now());
            p.answered(status, length);
            let frames: Vec<Result<Frame<bytes::Bytes>, &str>> =
                vec![Ok(Frame::data(bytes::Bytes::from_static(b"abc")))];
            let mut counted = CountedBody::new(
                StreamBody::new(futures_util::stream::iter(frames)),
                p.clone(),
            );
            (p, async move { counted.frame().await.map(|f| f.is_ok()) })
        };
        let (p, read) = sent(200, Some(3), "GET");
        assert_eq!(read.await, Some(true));
        // What the line says once the body goes, as hyper drops it.
        let complete = |p: Arc<Pending>| {
            let mut p = Arc::into_inner(p).expect("the body is gone");
            p.finish().complete
        };
        assert!(complete(p));
        let (p, read) = sent(200, Some(4), "GET");
        assert_eq!(read.await, Some(true));
        assert!(!complete(p), "a byte short");
        let (p, _) = sent(200, Some(4), "HEAD");
        assert!(complete(p));
        let (p, _) = sent(304, None, "GET");
        assert!(complete(p));
        let (p, _) = sent(200, None, "GET");
        assert!(!complete(p), "neither its length nor its end known");
    }

    #[test]
    fn calls_are_taken_with_their_statuses() {
        let calls = Calls::default();
        let a = calls.sent("HEAD", "r:5000");
        let b = calls.sent("GET", "r:5000");
        calls.answered(b, 200);
        calls.answered(a, 401);
        let taken = calls.take();
        assert_eq!(
            taken.iter().map(|c| c.status).collect::<Vec<_>>(),
            [Some(401), Some(200)]
        );
        assert!(calls.take().is_empty());
    }
}
