//! The component's stderr when layouts are named: each line written as
//! the user would say it (`oci:DIR`, not the layout's registry name).

use std::io::Write as _;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};

use super::Layouts;

/// The process's stderr, layouts' names written back as `oci:DIR`.
pub struct ShownStderr {
    layouts: Arc<Layouts>,
}

impl ShownStderr {
    /// Lines naming `layouts` shown as the user named them.
    pub fn new(layouts: Arc<Layouts>) -> Self {
        ShownStderr { layouts }
    }
}

impl IsTerminal for ShownStderr {
    fn is_terminal(&self) -> bool {
        std::io::IsTerminal::is_terminal(&std::io::stderr())
    }
}

impl StdoutStream for ShownStderr {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(Lines {
            layouts: self.layouts.clone(),
            pending: Mutex::new(Vec::new()),
        })
    }
}

/// Bytes held until their line ends, then written shown.
struct Lines {
    layouts: Arc<Layouts>,
    pending: Mutex<Vec<u8>>,
}

impl Lines {
    /// Writes the complete lines held (all that is held, if `all`).
    fn write_out(&self, all: bool) -> std::io::Result<()> {
        let Ok(mut pending) = self.pending.lock() else {
            return Ok(());
        };
        let end = match all {
            true => pending.len(),
            false => pending
                .iter()
                .rposition(|b| *b == b'\n')
                .map_or(0, |i| i + 1),
        };
        if end == 0 {
            return Ok(());
        }
        let text: Vec<u8> = pending.drain(..end).collect();
        let shown = self.layouts.shown(&String::from_utf8_lossy(&text));
        std::io::stderr().write_all(shown.as_bytes())
    }
}

impl AsyncWrite for Lines {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        if let Ok(mut pending) = self.pending.lock() {
            pending.extend_from_slice(buf);
        }
        Poll::Ready(self.write_out(false).map(|()| buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(self.write_out(true))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(self.write_out(true))
    }
}
