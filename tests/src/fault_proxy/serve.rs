//! Serving one proxied connection: the request read, a rule or an upload
//! fault applied, the rest passed to the registry and its answer back.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::Mutex;

use super::{Fault, Script, SETTLE};
use crate::upload_faults::BodyPlan;

/// A request being served, counted from its arrival until the client can
/// have its whole answer: ended just before the last byte is written, so a
/// client that sends its next request on getting this answer is never seen
/// overlapping it.
pub(super) struct Active<'a> {
    script: &'a Mutex<Script>,
    ended: bool,
}

impl<'a> Active<'a> {
    pub(super) fn begin(script: &'a Mutex<Script>) -> Self {
        if let Ok(mut s) = script.lock() {
            s.active += 1;
            s.most_active = s.most_active.max(s.active);
            if s.first_refusal.is_some_and(|at| at.elapsed() >= SETTLE) {
                s.most_active_settled = s.most_active_settled.max(s.active);
            }
        }
        Active {
            script,
            ended: false,
        }
    }

    fn end(&mut self) {
        if !std::mem::replace(&mut self.ended, true) {
            if let Ok(mut s) = self.script.lock() {
                s.active -= 1;
            }
        }
    }
}

impl Drop for Active<'_> {
    fn drop(&mut self) {
        self.end();
    }
}

/// A client connection: plain or TLS.
pub(super) trait Conn: Read + Write {
    /// Drops the connection at once (a cut).
    fn cut(&mut self);
}

impl Conn for TcpStream {
    fn cut(&mut self) {
        let _ = self.shutdown(Shutdown::Both);
    }
}

impl Conn for rustls::StreamOwned<rustls::ServerConnection, TcpStream> {
    fn cut(&mut self) {
        let _ = self.sock.shutdown(Shutdown::Both);
    }
}

/// Writes `bytes`, ending `active` just before the last one goes out.
fn write_last(out: &mut impl Write, bytes: &[u8], active: &mut Active) -> std::io::Result<()> {
    let (init, last) = bytes.split_at(bytes.len().saturating_sub(1));
    out.write_all(init)?;
    out.flush()?;
    active.end();
    out.write_all(last)?;
    out.flush()
}

/// A connection to `upstream` with the request's head sent.
fn connect(
    upstream: &str,
    request_line: &str,
    head: &[u8],
    https: bool,
) -> std::io::Result<TcpStream> {
    let mut up = TcpStream::connect(upstream)?;
    up.write_all(request_line.as_bytes())?;
    up.write_all(head)?;
    if https {
        up.write_all(b"X-Forwarded-Proto: https\r\n")?;
    }
    up.write_all(b"Connection: close\r\n\r\n")?;
    Ok(up)
}

pub(super) fn serve(
    client: impl Conn,
    upstream: &str,
    script: &Mutex<Script>,
    active: &mut Active,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(client);
    let mut head = Vec::new();
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut content_length = 0usize;
    let mut authorized = false;
    let mut range = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        if line == "\r\n" {
            break;
        }
        let lower = line.to_ascii_lowercase();
        authorized |= lower.starts_with("authorization:");
        if let Some(v) = lower.strip_prefix("range:") {
            range = Some(v.trim().to_string());
        }
        if let Some(v) = lower.strip_prefix("content-length:") {
            content_length = v.trim().parse().unwrap_or(0);
        }
        // One request per upstream connection: its end is the response's end.
        if lower.starts_with("connection:") {
            continue;
        }
        head.extend_from_slice(line.as_bytes());
    }
    let mut parts = request_line.split_whitespace();
    let (method, path) = (
        parts.next().unwrap_or("").to_string(),
        parts.next().unwrap_or("").to_string(),
    );

    let fault = {
        let mut s = script
            .lock()
            .map_err(|_| std::io::Error::other("poisoned"))?;
        let fault = s
            .rules
            .iter_mut()
            .find(|r| r.times > 0 && r.method == method && path.contains(&r.needle))
            .map(|r| {
                r.times -= 1;
                r.fault.clone()
            });
        let auth = if authorized {
            " (with Authorization)"
        } else {
            ""
        };
        let range = range.map(|r| format!(" (Range: {r})")).unwrap_or_default();
        s.log
            .push(format!("{method} {path}{auth}{range} -> {fault:?}"));
        let plan = s.uploads.plan(&method, &path, content_length as u64);
        (fault, plan)
    };
    let (fault, plan) = fault;
    if plan == BodyPlan::TooLarge {
        // Refused unread, as a front proxy refuses; the rest is drained so
        // the client reads the answer rather than a reset.
        let answer = "HTTP/1.1 413 Request Entity Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
        write_last(reader.get_mut(), answer.as_bytes(), active)?;
        let mut sink = vec![0u8; 64 * 1024];
        while matches!(reader.read(&mut sink), Ok(n) if n > 0) {}
        return Ok(());
    }
    if let Some(Fault::Delay(d)) = &fault {
        std::thread::sleep(*d);
    }
    // Over the cap: refused as a busy registry refuses.
    let over_cap = {
        let mut s = script
            .lock()
            .map_err(|_| std::io::Error::other("poisoned"))?;
        let over = s.cap.is_some_and(|cap| s.active > cap);
        if over {
            s.first_refusal.get_or_insert_with(std::time::Instant::now);
            s.log.push(format!("{method} {path} -> 429 (over the cap)"));
        }
        over
    };
    let busy = vec![("Retry-After".to_string(), "1".to_string())];
    let fault = match over_cap {
        true => Some(Fault::Status(429, busy)),
        false => fault,
    };
    let canned = match &fault {
        Some(Fault::Status(status, headers)) => Some((*status, headers, &[][..])),
        Some(Fault::Serve(status, headers, body)) => Some((*status, headers, &body[..])),
        _ => None,
    };
    if let Some((status, headers, body)) = canned {
        // Drain the request body so the client sees an answer, not a reset;
        // one that ends short is noted, and gets no answer.
        let mut received = 0;
        let mut chunk = vec![0u8; 64 * 1024];
        while received < content_length {
            let want = chunk.len().min(content_length - received);
            match reader.read(&mut chunk[..want]) {
                Ok(0) | Err(_) => break,
                Ok(n) => received += n,
            }
        }
        if received < content_length {
            if let Ok(mut s) = script.lock() {
                let note = format!(
                    "{method} {path}: body ended after {received} of {content_length} bytes"
                );
                s.log.push(note);
            }
            return Ok(());
        }
        let mut answer = format!(
            "HTTP/1.1 {status} Injected\r\nContent-Length: {}\r\nConnection: close\r\n",
            body.len()
        );
        for (n, v) in headers {
            answer.push_str(&format!("{n}: {v}\r\n"));
        }
        answer.push_str("\r\n");
        let mut bytes = answer.into_bytes();
        if method != "HEAD" {
            bytes.extend_from_slice(body);
        }
        return write_last(reader.get_mut(), &bytes, active);
    }

    // The request body, cut short when the script says so.
    let limit = match (fault.as_ref(), plan) {
        (Some(Fault::CutRequestAfter(n)), _) => (*n).min(content_length),
        (_, BodyPlan::CutAfter(n)) => usize::try_from(n).unwrap_or(usize::MAX).min(content_length),
        _ => content_length,
    };
    let (buffered, https) = match script.lock() {
        Ok(s) => (s.uploads.buffered && content_length > 0, s.forwarded_https),
        Err(_) => (false, false),
    };
    let mut up = None;
    let mut kept = Vec::new();
    if !buffered {
        up = Some(connect(upstream, &request_line, &head, https)?);
    }
    let mut remaining = limit;
    let mut buf = vec![0u8; 64 * 1024];
    while remaining > 0 {
        let cap = remaining.min(buf.len());
        let n = reader.read(&mut buf[..cap])?;
        if n == 0 {
            break;
        }
        if let Ok(mut s) = script.lock() {
            s.uploads.received += n as u64;
        }
        match up.as_mut() {
            Some(up) => up.write_all(&buf[..n])?,
            None => kept.extend_from_slice(&buf[..n]),
        }
        remaining -= n;
    }
    if limit < content_length {
        // Buffered, nothing of it reached the registry.
        if let Some(up) = up {
            let _ = up.shutdown(Shutdown::Both);
        }
        reader.get_mut().cut();
        return Ok(());
    }
    let up = match up {
        Some(up) => up,
        None => {
            let mut up = connect(upstream, &request_line, &head, https)?;
            up.write_all(&kept)?;
            up
        }
    };

    // The response: its head whole, then the body up to any cut.
    let mut up_reader = BufReader::new(up);
    let mut response_head = Vec::new();
    loop {
        let mut line = String::new();
        if up_reader.read_line(&mut line)? == 0 {
            break;
        }
        if line == "\r\n" {
            if let Some(Fault::AddHeaders(added)) = &fault {
                for (n, v) in added {
                    response_head.extend_from_slice(format!("{n}: {v}\r\n").as_bytes());
                }
            }
            response_head.extend_from_slice(line.as_bytes());
            break;
        }
        response_head.extend_from_slice(line.as_bytes());
    }
    // How much body follows: a HEAD's answer and these statuses have none.
    let status: u16 = String::from_utf8_lossy(&response_head)
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body_len = if method == "HEAD" || matches!(status, 204 | 304) {
        Some(0)
    } else {
        String::from_utf8_lossy(&response_head)
            .lines()
            .find_map(|l| {
                let (name, value) = l.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse::<usize>().ok())?
            })
    };
    if body_len == Some(0) {
        return write_last(reader.get_mut(), &response_head, active);
    }
    reader.get_mut().write_all(&response_head)?;
    if let Some(Fault::TrickleResponseAfter(n, every)) = fault {
        // All of the head, `n` bytes of the body, then a byte at a time,
        // until the client goes away.
        let mut body = Vec::new();
        up_reader.read_to_end(&mut body)?;
        let (first, rest) = body.split_at(n.min(body.len()));
        reader.get_mut().write_all(first)?;
        reader.get_mut().flush()?;
        for byte in rest {
            std::thread::sleep(every);
            reader.get_mut().write_all(std::slice::from_ref(byte))?;
            reader.get_mut().flush()?;
        }
        return Ok(());
    }
    let (mut budget, stall) = match fault {
        Some(Fault::CutResponseAfter(n)) => (n, None),
        Some(Fault::StallResponseAfter(n, d)) => (n, Some(d)),
        _ => (usize::MAX, None),
    };
    let mut relayed = 0;
    loop {
        let n = up_reader.read(&mut buf)?;
        if n == 0 {
            break;
        }
        let take = n.min(budget);
        relayed += take;
        if body_len == Some(relayed) {
            write_last(reader.get_mut(), &buf[..take], active)?;
        } else {
            reader.get_mut().write_all(&buf[..take])?;
        }
        budget -= take;
        if budget == 0 {
            if let Some(d) = stall {
                // Silent, then on with the rest (to a client long gone).
                std::thread::sleep(d);
                reader.get_mut().write_all(&buf[take..n])?;
                budget = usize::MAX;
                continue;
            }
            reader.get_mut().cut();
            return Ok(());
        }
    }
    reader.get_mut().flush()
}
