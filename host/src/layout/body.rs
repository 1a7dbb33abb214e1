//! Bodies of a layout's answers: a blob read from its file in bounded
//! chunks, or a small document.

use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame};
use http_body_util::BodyExt as _;
use tokio::io::{AsyncRead, ReadBuf};
use wasmtime_wasi_http::{Error, WasiBody};

/// How much of a file one frame carries.
const CHUNK: usize = 256 * 1024;

/// `length` bytes of a file, from where it was opened at, in chunks.
pub struct FileBody {
    file: tokio::fs::File,
    left: u64,
    buf: BytesMut,
}

impl FileBody {
    /// The next `length` bytes of `file`.
    pub fn new(file: tokio::fs::File, length: u64) -> Self {
        FileBody {
            file,
            left: length,
            buf: BytesMut::new(),
        }
    }
}

impl Body for FileBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let this = &mut *self;
        if this.left == 0 {
            return Poll::Ready(None);
        }
        let want = CHUNK.min(usize::try_from(this.left).unwrap_or(CHUNK));
        this.buf.resize(want, 0);
        let mut read = ReadBuf::new(&mut this.buf[..want]);
        let polled = ready!(Pin::new(&mut this.file).poll_read(cx, &mut read));
        let n = read.filled().len();
        Poll::Ready(Some(match polled {
            Err(e) => Err(Error::InternalError(Some(format!("reading a blob: {e}")))),
            // Shorter than its size said: someone cut the file.
            Ok(()) if n == 0 => Err(Error::InternalError(Some(
                "reading a blob: it ended before its size".into(),
            ))),
            Ok(()) => {
                this.left -= n as u64;
                Ok(Frame::data(this.buf.split_to(n).freeze()))
            }
        }))
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.left)
    }

    fn is_end_stream(&self) -> bool {
        self.left == 0
    }
}

/// A whole body of `bytes`.
pub fn full(bytes: impl Into<Bytes>) -> WasiBody {
    http_body_util::Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// Reads all of `body`, refusing more than `limit` bytes.
pub async fn read_all(mut body: WasiBody, limit: u64) -> Result<Option<Bytes>, Error> {
    let mut all = BytesMut::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            if all.len() as u64 + data.len() as u64 > limit {
                return Ok(None);
            }
            all.extend_from_slice(&data);
        }
    }
    Ok(Some(all.freeze()))
}
