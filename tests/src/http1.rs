//! One HTTP/1.1 exchange per connection, for the harness's own requests (a
//! pusher for test registries, a client of the edge service): what the
//! server answered, byte for byte, with no client library deciding for us.

use std::io::{BufRead, BufReader, Read, Write};

/// What came back.
#[derive(Debug)]
pub struct Answer {
    /// Status.
    pub status: u16,
    /// Headers, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// The body as received (a chunked body's data).
    pub body: Vec<u8>,
    /// Whether the body ended as its framing said (a chunked body's last
    /// chunk came; the connection closed cleanly).
    pub complete: bool,
}

impl Answer {
    /// Header `name` (any case), if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    /// The body's length as its `Content-Length` says, when it does.
    pub fn content_length(&self) -> Option<usize> {
        self.header("content-length").and_then(|v| v.parse().ok())
    }
}

/// Sends `method path` with `headers` and `body` over `conn` (closed after
/// the answer) and reads the answer; a HEAD's answer has no body.
pub fn exchange(
    mut conn: impl Read + Write,
    host: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Answer {
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (n, v) in headers {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    head.push_str("\r\n");
    conn.write_all(head.as_bytes())
        .and_then(|()| conn.write_all(body))
        .and_then(|()| conn.flush())
        .expect("sending a request");
    let mut reader = BufReader::new(conn);
    let mut status_line = String::new();
    reader
        .read_line(&mut status_line)
        .expect("reading the status line");
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((n, v)) = line.split_once(':') {
            headers.push((n.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let mut raw = Vec::new();
    let closed = method == "HEAD" || reader.read_to_end(&mut raw).is_ok();
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"));
    let (body, complete) = match chunked && method != "HEAD" {
        true => dechunk(&raw),
        false => (raw, closed),
    };
    Answer {
        status,
        headers,
        body,
        complete,
    }
}

/// A chunked body's data, and whether its last (empty) chunk came.
fn dechunk(mut raw: &[u8]) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    loop {
        let Some(eol) = raw.windows(2).position(|w| w == b"\r\n") else {
            return (out, false);
        };
        let size = std::str::from_utf8(&raw[..eol])
            .ok()
            .and_then(|s| usize::from_str_radix(s.split(';').next()?.trim(), 16).ok());
        let Some(size) = size else {
            return (out, false);
        };
        raw = &raw[eol + 2..];
        if size == 0 {
            return (out, true);
        }
        if raw.len() < size + 2 {
            out.extend_from_slice(&raw[..raw.len().min(size)]);
            return (out, false);
        }
        out.extend_from_slice(&raw[..size]);
        raw = &raw[size + 2..];
    }
}
