//! A fault-injecting proxy on loopback, placed between ocirelay and a real
//! registry. Requests pass through unchanged (their `Host` too, so upload
//! locations point back at the proxy) unless a scripted rule matches: then
//! it answers a status instead, or cuts the connection after some bytes of
//! the response body or of the request body.
//!
//! It speaks plain HTTP on 127.0.0.1, or terminates TLS on 127.0.0.2
//! ([`FaultProxy::start_tls`]) without telling the registry behind it
//! (no `X-Forwarded-Proto`), as a careless TLS-terminating proxy does: the
//! registry then names `http://` upload locations on the proxy's own host
//! and port.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

/// What a rule does to a matching request.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer this status (with these headers) instead of forwarding.
    Status(u16, Vec<(String, String)>),
    /// Answer this status, headers and body instead of forwarding (content
    /// a registry should not have, or will not store).
    Serve(u16, Vec<(String, String)>, Vec<u8>),
    /// Forward, but cut the connection after this many response body bytes.
    CutResponseAfter(usize),
    /// Forward, but cut the connection after this many request body bytes.
    CutRequestAfter(usize),
    /// Forward after waiting this long (so that requests overlap, or a
    /// client sees no answer).
    Delay(std::time::Duration),
    /// Forward, but go silent for a while after this many response body
    /// bytes (a stalled download).
    StallResponseAfter(usize, std::time::Duration),
    /// Forward, but after this many response body bytes send the rest one
    /// byte at a time, this far apart (a download trickled to keep a
    /// connection alive without moving).
    TrickleResponseAfter(usize, std::time::Duration),
    /// Forward, adding these headers to the answer (a registry stating
    /// its rate limit).
    AddHeaders(Vec<(String, String)>),
}

/// A rule: requests whose method is `method` and whose path contains
/// `needle` get `fault`, `times` times.
#[derive(Debug, Clone)]
pub struct Rule {
    /// `GET`, `PUT`, ...
    pub method: String,
    /// Part of the path.
    pub needle: String,
    /// What happens.
    pub fault: Fault,
    /// How many more matching requests it applies to.
    pub times: usize,
}

#[derive(Default)]
struct Script {
    rules: Vec<Rule>,
    log: Vec<String>,
    /// Requests being served now, and the most there ever were.
    active: usize,
    most_active: usize,
    /// Connections to a TLS proxy that were not TLS.
    cleartext_connections: usize,
    /// Requests at once above which the proxy answers 429 itself.
    cap: Option<usize>,
    /// When the first 429 of the cap went out.
    first_refusal: Option<std::time::Instant>,
    /// The most requests at once seen a settling time after that.
    most_active_settled: usize,
}

/// How long after the first 429 of the cap a client is given to adapt.
const SETTLE: std::time::Duration = std::time::Duration::from_secs(2);

/// A running proxy.
pub struct FaultProxy {
    host: String,
    script: Arc<Mutex<Script>>,
}

impl FaultProxy {
    /// A plain-HTTP proxy on 127.0.0.1 in front of `upstream` (`host:port`).
    pub fn start(upstream: &str) -> FaultProxy {
        Self::launch(upstream, None)
    }

    /// An HTTPS proxy on 127.0.0.2 (the tests' CA) in front of `upstream`,
    /// which it reaches over plain HTTP without saying it terminated TLS.
    pub fn start_tls(upstream: &str) -> FaultProxy {
        Self::launch(upstream, Some(crate::tls::server_config()))
    }

    fn launch(upstream: &str, tls: Option<Arc<rustls::ServerConfig>>) -> FaultProxy {
        let ip = if tls.is_some() {
            crate::tls::TLS_HOST
        } else {
            "127.0.0.1"
        };
        let listener = TcpListener::bind((ip, 0)).expect("binding the proxy");
        let host = listener.local_addr().expect("proxy address").to_string();
        let script = Arc::new(Mutex::new(Script::default()));
        let (s, up) = (script.clone(), upstream.to_string());
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let (s, up, tls) = (s.clone(), up.clone(), tls.clone());
                std::thread::spawn(move || {
                    // One request per connection: a connection is a request.
                    let mut active = Active::begin(&s);
                    let _ = match tls {
                        None => serve(conn, &up, &s, &mut active),
                        Some(config) => {
                            // The first byte says whether the client spoke
                            // TLS (a handshake record is 0x16; plain HTTP
                            // starts with a method). A connection closed
                            // before any byte (a client giving up) is neither.
                            let mut first = [0u8; 1];
                            match conn.peek(&mut first) {
                                Ok(1) if first[0] != 0x16 => {
                                    if let Ok(mut s) = s.lock() {
                                        s.cleartext_connections += 1;
                                    }
                                    return;
                                }
                                Ok(1) => {}
                                _ => return,
                            }
                            let Ok(session) = rustls::ServerConnection::new(config) else {
                                return;
                            };
                            let mut stream = rustls::StreamOwned::new(session, conn);
                            if stream.conn.complete_io(&mut stream.sock).is_err() {
                                return;
                            }
                            serve(stream, &up, &s, &mut active)
                        }
                    };
                });
            }
        });
        FaultProxy { host, script }
    }

    /// `IP:PORT`.
    pub fn host(&self) -> String {
        self.host.clone()
    }

    /// Connections to a TLS proxy that were not TLS (plain HTTP sent to
    /// an HTTPS port, say).
    pub fn cleartext_connections(&self) -> usize {
        self.script
            .lock()
            .map(|s| s.cleartext_connections)
            .unwrap_or(0)
    }

    /// Adds a rule.
    pub fn add(&self, method: &str, needle: &str, fault: Fault, times: usize) {
        if let Ok(mut s) = self.script.lock() {
            s.rules.push(Rule {
                method: method.into(),
                needle: needle.into(),
                fault,
                times,
            });
        }
    }

    /// From now on, a request arriving while more than `cap` are served
    /// is answered 429 (`Retry-After: 1`), as a busy registry answers.
    pub fn cap_in_flight(&self, cap: usize) {
        if let Ok(mut s) = self.script.lock() {
            s.cap = Some(cap);
        }
    }

    /// The most requests at once, counted from a settling time (2 s) after
    /// the cap's first 429; 0 if it never refused.
    pub fn most_concurrent_settled(&self) -> usize {
        self.script
            .lock()
            .map(|s| s.most_active_settled)
            .unwrap_or(0)
    }

    /// The most requests it was serving at once.
    pub fn most_concurrent(&self) -> usize {
        self.script.lock().map(|s| s.most_active).unwrap_or(0)
    }

    /// The log once the proxy serves nothing more (10 s at most): after a
    /// client exits, the proxy's threads may still be reading what it sent
    /// last, so a test that asserts something did *not* arrive asks here.
    pub fn settled_log(&self) -> Vec<String> {
        use std::time::{Duration, Instant};
        // What the client sent last reaches an accepting thread first.
        std::thread::sleep(Duration::from_millis(100));
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.script.lock().map(|s| s.active == 0).unwrap_or(true) {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.log()
    }

    /// Every request seen (`METHOD path [(with Authorization)] [(Range: …)] -> what happened`).
    pub fn log(&self) -> Vec<String> {
        self.script
            .lock()
            .map(|s| s.log.clone())
            .unwrap_or_default()
    }

    /// The lines of [`FaultProxy::log`] of `method` requests that contain `needle`.
    pub fn requests(&self, method: &str, needle: &str) -> Vec<String> {
        let method = format!("{method} ");
        let mut log = self.log();
        log.retain(|l| l.starts_with(&method) && l.contains(needle));
        log
    }
}

/// A request being served, counted from its arrival until the client can
/// have its whole answer: ended just before the last byte is written, so a
/// client that sends its next request on getting this answer is never seen
/// overlapping it.
struct Active<'a> {
    script: &'a Mutex<Script>,
    ended: bool,
}

impl<'a> Active<'a> {
    fn begin(script: &'a Mutex<Script>) -> Self {
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
trait Conn: Read + Write {
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

fn serve(
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
        fault
    };
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

    let mut up = TcpStream::connect(upstream)?;
    up.write_all(request_line.as_bytes())?;
    up.write_all(&head)?;
    up.write_all(b"Connection: close\r\n\r\n")?;
    // The request body, cut short when the script says so.
    let limit = match fault {
        Some(Fault::CutRequestAfter(n)) => n.min(content_length),
        _ => content_length,
    };
    let mut remaining = limit;
    let mut buf = vec![0u8; 64 * 1024];
    while remaining > 0 {
        let cap = remaining.min(buf.len());
        let n = reader.read(&mut buf[..cap])?;
        if n == 0 {
            break;
        }
        up.write_all(&buf[..n])?;
        remaining -= n;
    }
    if limit < content_length {
        let _ = up.shutdown(Shutdown::Both);
        reader.get_mut().cut();
        return Ok(());
    }

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
