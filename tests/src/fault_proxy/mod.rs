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

mod serve;

use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use crate::upload_faults::UploadFaults;
use serve::{serve, Active};

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
    /// What happens to uploads as a whole.
    uploads: UploadFaults,
    /// Whether the registry is told that clients spoke HTTPS.
    forwarded_https: bool,
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

    /// An HTTPS front on 127.0.0.2 as a careful TLS-terminating proxy is
    /// (nginx before Harbor's registry): it tells the registry behind it
    /// (`X-Forwarded-Proto: https`), whose upload locations then say https.
    pub fn start_tls_front(upstream: &str) -> FaultProxy {
        let proxy = Self::launch(upstream, Some(crate::tls::server_config()));
        if let Ok(mut s) = proxy.script.lock() {
            s.forwarded_https = true;
        }
        proxy
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

    /// Changes what happens to uploads as a whole (see [`UploadFaults`]).
    pub fn uploads(&self, change: impl FnOnce(&mut UploadFaults)) {
        if let Ok(mut s) = self.script.lock() {
            change(&mut s.uploads);
        }
    }

    /// Reads what is known of uploads.
    pub fn uploaded<T>(&self, read: impl FnOnce(&UploadFaults) -> T) -> T {
        let s = self.script.lock().expect("proxy script");
        read(&s.uploads)
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
