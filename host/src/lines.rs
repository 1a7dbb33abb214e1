//! The component's stderr taken line by line: each complete line handed
//! to a function of ours (to name layouts as the user did, or to turn a
//! sync's JSON progress into a terminal's progress bar).

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};

/// What is done with each line (its newline included, when it had one).
type OnLine = Arc<dyn Fn(&str) + Send + Sync>;

/// A stderr for the component whose lines go to `on_line`.
#[derive(Clone)]
pub struct LineStderr {
    on_line: OnLine,
}

impl LineStderr {
    /// Lines handed to `on_line`.
    pub fn new(on_line: impl Fn(&str) + Send + Sync + 'static) -> Self {
        LineStderr {
            on_line: Arc::new(on_line),
        }
    }
}

impl IsTerminal for LineStderr {
    fn is_terminal(&self) -> bool {
        std::io::IsTerminal::is_terminal(&std::io::stderr())
    }
}

impl StdoutStream for LineStderr {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(Lines {
            on_line: self.on_line.clone(),
            pending: Mutex::new(Vec::new()),
        })
    }
}

/// Bytes held until their line ends.
struct Lines {
    on_line: OnLine,
    pending: Mutex<Vec<u8>>,
}

impl Lines {
    /// Hands on the complete lines held (all that is held, if `all`).
    fn hand_on(&self, all: bool) {
        let Ok(mut pending) = self.pending.lock() else {
            return;
        };
        let end = match all {
            true => pending.len(),
            false => pending
                .iter()
                .rposition(|b| *b == b'\n')
                .map_or(0, |i| i + 1),
        };
        let text: Vec<u8> = pending.drain(..end).collect();
        drop(pending);
        let text = String::from_utf8_lossy(&text);
        for line in text.split_inclusive('\n') {
            (self.on_line)(line);
        }
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
        self.hand_on(false);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.hand_on(true);
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.hand_on(true);
        Poll::Ready(Ok(()))
    }
}

impl Drop for Lines {
    /// A last line without its newline is not lost.
    fn drop(&mut self) {
        self.hand_on(true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt as _;

    #[test]
    fn lines_are_handed_on_whole_however_they_were_written() {
        let seen = Arc::new(Mutex::new(Vec::<String>::new()));
        let kept = seen.clone();
        let stderr = LineStderr::new(move |line| kept.lock().unwrap().push(line.to_string()));
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut out = Pin::from(stderr.async_stream());
            out.write_all(b"one\ntw").await.unwrap();
            out.write_all(b"o\nthree\nfou").await.unwrap();
            out.write_all(b"r").await.unwrap();
        });
        assert_eq!(*seen.lock().unwrap(), ["one\n", "two\n", "three\n", "four"]);
    }
}
