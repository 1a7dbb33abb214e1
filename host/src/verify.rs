//! Streamed bodies checked in the host, at native speed: the body of a PUT
//! that completes an upload (`…?digest=…`), and a blob read the component
//! asks the host to check, are hashed as they are forwarded, and the frame
//! that would complete one goes on only once its bytes match the digest and
//! the length. On a mismatch the body fails instead: a registry never
//! receives an upload's last byte, so it cannot complete the upload even if
//! it verifies nothing itself; the component never reads a bad blob's end.
//!
//! The component is told it need not hash (its config's
//! `uploads-verified-by-host`, `downloads-verified-by-host`), so the bytes
//! of a copy never enter the guest, and those it reads are not hashed there.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use ocirelay_core::digest::Hasher;
use ocirelay_core::Digest;

/// The digest an upload's PUT must complete with: the `digest=` of its
/// query, when there is one.
pub fn upload_digest(uri: &http::Uri) -> Option<Digest> {
    let path_and_query = uri.path_and_query()?.as_str();
    ocirelay_core::distribution::upload_digest(path_and_query)
}

/// Checks of bodies that broke off before their end, kept (the latest
/// [`Unfinished::KEPT`]) so that a read resumed where one broke (`Range`)
/// is checked on from there rather than read again from the start.
#[derive(Debug, Default)]
pub struct Unfinished {
    next: AtomicU64,
    kept: Mutex<BTreeMap<u64, Partial>>,
}

impl Unfinished {
    /// Checks kept at most; older ones go first.
    const KEPT: usize = 64;

    /// A new check's id: what the component names to resume it. Never 0,
    /// which names no kept check (the tests' forged vouches give it).
    pub fn id(&self) -> u64 {
        self.next.fetch_add(1, Ordering::Relaxed) + 1
    }

    fn keep(&self, id: u64, partial: Partial) {
        if let Ok(mut kept) = self.kept.lock() {
            kept.insert(id, partial);
            while kept.len() > Self::KEPT {
                kept.pop_first();
            }
        }
    }

    /// Check `id`, where it stopped, if it was kept (once).
    pub fn take(&self, id: u64) -> Option<Partial> {
        self.kept.lock().ok()?.remove(&id)
    }
}

/// A check that stopped: what it expects, and how far it got.
#[derive(Debug)]
pub struct Partial {
    /// The digest the whole must have.
    pub expected: Digest,
    /// The whole's length.
    pub size: u64,
    /// Bytes hashed (and passed on) before it stopped.
    pub seen: u64,
    hasher: Hasher,
}

/// A body hashed as it passes; see the module's docs.
pub struct VerifyingBody<B, E> {
    inner: B,
    expected: Digest,
    size: u64,
    seen: u64,
    hasher: Option<Hasher>,
    /// Makes the error a mismatch ends the body with, from what is wrong.
    mismatch: fn(String) -> E,
    /// Where this check is kept, by id, if the body stops before its end.
    keep: Option<(Arc<Unfinished>, u64)>,
}

impl<B, E> VerifyingBody<B, E> {
    /// Checks that `inner` is `size` bytes hashing to `expected`.
    pub fn new(inner: B, expected: Digest, size: u64, mismatch: fn(String) -> E) -> Self {
        VerifyingBody {
            hasher: Some(Hasher::new(expected.algorithm())),
            inner,
            expected,
            size,
            seen: 0,
            mismatch,
            keep: None,
        }
    }

    /// Checks that `inner` is the rest of what `partial` checked so far.
    pub fn resumed(inner: B, partial: Partial, mismatch: fn(String) -> E) -> Self {
        VerifyingBody {
            hasher: Some(partial.hasher),
            inner,
            expected: partial.expected,
            size: partial.size,
            seen: partial.seen,
            mismatch,
            keep: None,
        }
    }

    /// Keeps this check in `store` as `id` if the body stops before its end.
    pub fn kept_in(mut self, store: Arc<Unfinished>, id: u64) -> Self {
        self.keep = Some((store, id));
        self
    }

    fn fail(&self, detail: String) -> E {
        (self.mismatch)(detail)
    }

    /// Takes in one chunk; `Err` when it makes the body too long or, being
    /// the last, the digest is not the one expected.
    fn check(&mut self, chunk: &[u8]) -> Result<(), E> {
        self.seen += chunk.len() as u64;
        if self.seen > self.size {
            let detail = format!("more than the {} bytes of {}", self.size, self.expected);
            return Err(self.fail(detail));
        }
        if let Some(h) = self.hasher.as_mut() {
            h.update(chunk);
        }
        if self.seen == self.size {
            let actual = self.hasher.take().map(Hasher::finish);
            if actual.as_ref() != Some(&self.expected) {
                let actual = actual.map_or_else(String::new, |d| d.to_string());
                let detail = format!("expected {}, the bytes are {actual}", self.expected);
                return Err(self.fail(detail));
            }
        }
        Ok(())
    }
}

impl<B, E> Drop for VerifyingBody<B, E> {
    fn drop(&mut self) {
        if let (Some((store, id)), Some(hasher)) = (self.keep.take(), self.hasher.take()) {
            if self.seen < self.size {
                let partial = Partial {
                    expected: self.expected.clone(),
                    size: self.size,
                    seen: self.seen,
                    hasher,
                };
                store.keep(id, partial);
            }
        }
    }
}

impl<B, E> Body for VerifyingBody<B, E>
where
    B: Body<Data = Bytes, Error = E> + Unpin,
    E: Unpin,
{
    type Data = Bytes;
    type Error = E;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, E>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    // The frame that completes the body goes out only if it checks.
                    if let Err(e) = this.check(data) {
                        return Poll::Ready(Some(Err(e)));
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(None) if this.seen < this.size => {
                let detail = format!(
                    "{} of the {} bytes of {}",
                    this.seen, this.size, this.expected
                );
                Poll::Ready(Some(Err(this.fail(detail))))
            }
            other => other,
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
    use http_body_util::{BodyExt, StreamBody};
    use ocirelay_core::http::UPLOAD_MISMATCH;

    /// The error a mismatch makes here: the detail, after a prefix.
    fn mismatch(detail: String) -> String {
        format!("{UPLOAD_MISMATCH}: {detail}")
    }

    /// A body of these chunks, each a frame.
    fn frames(chunks: &[&'static [u8]]) -> impl Body<Data = Bytes, Error = String> + Unpin {
        let items: Vec<Result<Frame<Bytes>, String>> = chunks
            .iter()
            .map(|c| Ok(Frame::data(Bytes::from_static(c))))
            .collect();
        StreamBody::new(futures_util::stream::iter(items))
    }

    async fn forwarded(
        body: VerifyingBody<impl Body<Data = Bytes, Error = String> + Unpin, String>,
    ) -> (Vec<u8>, Option<String>) {
        let mut body = body;
        let mut out = Vec::new();
        while let Some(frame) = body.frame().await {
            match frame {
                Ok(f) => out.extend_from_slice(f.data_ref().map_or(&[][..], |d| &d[..])),
                Err(e) => return (out, Some(e)),
            }
        }
        (out, None)
    }

    #[tokio::test]
    async fn the_last_frame_goes_out_only_if_the_bytes_match() {
        let good = Digest::sha256(b"hello world");
        let body = VerifyingBody::new(frames(&[b"hello ", b"world"]), good.clone(), 11, mismatch);
        assert_eq!(forwarded(body).await, (b"hello world".to_vec(), None));

        // Other bytes of the same length: the first frame went, the last did not.
        let body = VerifyingBody::new(frames(&[b"hello ", b"worle"]), good.clone(), 11, mismatch);
        let (sent, error) = forwarded(body).await;
        assert_eq!(sent, b"hello ");
        let error = error.expect("a mismatch");
        assert!(
            error.starts_with(UPLOAD_MISMATCH) && error.contains(&good.to_string()),
            "{error}"
        );

        // Too long, too short.
        let body = VerifyingBody::new(frames(&[b"hello world", b"!"]), good.clone(), 11, mismatch);
        assert!(forwarded(body)
            .await
            .1
            .expect("too long")
            .contains("more than the 11 bytes"));
        let body = VerifyingBody::new(frames(&[b"hello"]), good, 11, mismatch);
        assert!(forwarded(body)
            .await
            .1
            .expect("too short")
            .contains("5 of the 11 bytes"));
    }

    #[test]
    fn a_checked_body_ends_and_sizes_as_what_it_wraps() {
        use http_body_util::{Empty, Full};
        let empty = Empty::<Bytes>::new().map_err(|never| match never {});
        let body = VerifyingBody::new(empty, Digest::sha256(b""), 0, mismatch);
        assert!(body.is_end_stream(), "hyper sends no body");
        let full = Full::new(Bytes::from_static(b"hello")).map_err(|never| match never {});
        let body = VerifyingBody::new(full, Digest::sha256(b"hello"), 5, mismatch);
        assert!(!body.is_end_stream(), "hyper sends the body");
        assert_eq!(body.size_hint().exact(), Some(5));
    }

    #[tokio::test]
    async fn a_check_that_broke_off_goes_on_where_a_resumed_body_starts() {
        let good = Digest::sha256(b"hello world");
        let store = Arc::new(Unfinished::default());
        let broken = StreamBody::new(futures_util::stream::iter(vec![
            Ok(Frame::data(Bytes::from_static(b"hello "))),
            Err("connection reset".to_string()),
        ]));
        let id = store.id();
        let body =
            VerifyingBody::new(broken, good.clone(), 11, mismatch).kept_in(store.clone(), id);
        let (sent, error) = forwarded(body).await;
        assert_eq!(
            (sent.as_slice(), error.as_deref()),
            (&b"hello "[..], Some("connection reset"))
        );

        // Resumed: the rest checks against the whole; taken once.
        let partial = store.take(id).expect("kept");
        assert_eq!((partial.seen, partial.size), (6, 11));
        assert!(store.take(id).is_none());
        let rest = VerifyingBody::resumed(frames(&[b"world"]), partial, mismatch);
        assert_eq!(forwarded(rest).await, (b"world".to_vec(), None));

        // Bytes before the break that were wrong are found at the end.
        let bad = StreamBody::new(futures_util::stream::iter(vec![
            Ok(Frame::data(Bytes::from_static(b"jello "))),
            Err("connection reset".to_string()),
        ]));
        let id = store.id();
        let body = VerifyingBody::new(bad, good.clone(), 11, mismatch).kept_in(store.clone(), id);
        forwarded(body).await;
        let partial = store.take(id).expect("kept");
        let rest = VerifyingBody::resumed(frames(&[b"world"]), partial, mismatch);
        let (_, error) = forwarded(rest).await;
        assert!(error.expect("a mismatch").contains(&good.to_string()));

        // A body read to its end, or never kept, leaves nothing; only the latest few are kept.
        let id = store.id();
        let whole = VerifyingBody::new(frames(&[b"hello world"]), good.clone(), 11, mismatch);
        forwarded(whole.kept_in(store.clone(), id)).await;
        assert!(store.take(id).is_none());
        let ids: Vec<u64> = (0..=Unfinished::KEPT).map(|_| store.id()).collect();
        for &id in &ids {
            let body = VerifyingBody::new(frames(&[b"hello"]), good.clone(), 11, mismatch);
            drop(body.kept_in(store.clone(), id));
        }
        assert!(store.take(ids[0]).is_none(), "the oldest went");
        assert!(store.take(ids[1]).is_some(), "and only the oldest");
        assert!(store.take(ids[Unfinished::KEPT]).is_some());
        assert_ne!(Unfinished::default().id(), 0, "0 names no check");
    }

    #[test]
    fn the_digest_comes_from_the_query() {
        let d = Digest::sha256(b"x");
        let uri: http::Uri = format!("https://r/v2/a/blobs/uploads/1?_state=s&digest={d}")
            .parse()
            .unwrap();
        assert_eq!(upload_digest(&uri), Some(d.clone()));
        let encoded = d.to_string().replace(':', "%3A");
        let uri: http::Uri = format!("https://r/u?digest={encoded}").parse().unwrap();
        assert_eq!(upload_digest(&uri), Some(d));
        let uri: http::Uri = "https://r/v2/a/manifests/v1".parse().unwrap();
        assert_eq!(upload_digest(&uri), None);
    }
}
