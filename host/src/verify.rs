//! Streamed uploads checked in the host, at native speed: the body of a PUT
//! that completes an upload (`…?digest=…`) is hashed as it is forwarded, and
//! the frame that would complete it goes out only once its bytes match the
//! digest and the length. On a mismatch the body fails instead: the
//! registry never receives the last byte, so it cannot complete the upload,
//! even if it verifies nothing itself.
//!
//! The component is told it need not hash (its config's
//! `uploads-verified-by-host`), so the bytes never enter the guest.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use ocirelay_core::digest::Hasher;
use ocirelay_core::http::UPLOAD_MISMATCH;
use ocirelay_core::Digest;

/// The digest an upload's PUT must complete with: the `digest=` of its
/// query, when there is one.
pub fn upload_digest(uri: &http::Uri) -> Option<Digest> {
    let query = uri.query()?;
    let value = query
        .split('&')
        .find_map(|pair| pair.strip_prefix("digest="))?;
    let decoded = value.replace("%3A", ":").replace("%3a", ":");
    Digest::parse(&decoded).ok()
}

/// A request body hashed as it passes; see the module's docs.
pub struct VerifyingBody<B, E> {
    inner: B,
    expected: Digest,
    size: u64,
    seen: u64,
    hasher: Option<Hasher>,
    /// Makes the error a mismatch ends the body with.
    mismatch: fn(String) -> E,
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
        }
    }

    fn fail(&self, detail: String) -> E {
        (self.mismatch)(format!(
            "{UPLOAD_MISMATCH}: {detail}; the upload was abandoned"
        ))
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
        let body = VerifyingBody::new(frames(&[b"hello ", b"world"]), good.clone(), 11, |e| e);
        assert_eq!(forwarded(body).await, (b"hello world".to_vec(), None));

        // Other bytes of the same length: the first frame went, the last did not.
        let body = VerifyingBody::new(frames(&[b"hello ", b"worle"]), good.clone(), 11, |e| e);
        let (sent, error) = forwarded(body).await;
        assert_eq!(sent, b"hello ");
        let error = error.expect("a mismatch");
        assert!(
            error.starts_with(UPLOAD_MISMATCH) && error.contains(&good.to_string()),
            "{error}"
        );

        // Too long, too short.
        let body = VerifyingBody::new(frames(&[b"hello world", b"!"]), good.clone(), 11, |e| e);
        assert!(forwarded(body)
            .await
            .1
            .expect("too long")
            .contains("more than the 11 bytes"));
        let body = VerifyingBody::new(frames(&[b"hello"]), good, 11, |e| e);
        assert!(forwarded(body)
            .await
            .1
            .expect("too short")
            .contains("5 of the 11 bytes"));
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
