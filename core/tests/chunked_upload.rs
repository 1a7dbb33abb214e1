//! Chunked uploads of a copied blob, against a scripted source and a
//! scripted destination whose sessions count what they hold: chunks in
//! order, breaks resumed where the session stands, sessions forgotten,
//! ranges that cannot be trusted, 413s and minimum chunk lengths.

mod common;

use common::response;
use ocirelay_core::client::Answer;
use ocirelay_core::http::{Method, Request, RequestBody, RequestId, ResponseBody, TransportError};
use ocirelay_core::ops::copy_blob::CopyBlob;
use ocirelay_core::upload::{UploadRule, UploadRules};
use ocirelay_core::{
    Client, ClientConfig, Descriptor, Digest, Error, Operation, Output, Reference,
};

const SRC: &str = "src.example";
const DST: &str = "dst.example";
const MIB: u64 = 1 << 20;
/// The blob: only its size matters (scripted bodies carry no bytes).
const SIZE: u64 = 100 * MIB;

fn digest() -> Digest {
    Digest::sha256(b"a large layer")
}

fn client(rule: UploadRule) -> Client {
    Client::new(ClientConfig {
        user_agent: "test".into(),
        uploads: UploadRules {
            default: rule,
            ..UploadRules::default()
        },
        ..ClientConfig::default()
    })
}

fn chunks_of(chunk_size: u64) -> UploadRule {
    UploadRule {
        chunk_size,
        monolithic_up_to: 50 * MIB,
    }
}

/// What the destination does to the `n`th PATCH (from 1).
#[derive(Clone, Copy, Debug)]
enum Fault {
    /// The connection breaks; the session keeps `kept` bytes of the chunk.
    Break { kept: u64 },
    /// Answered with this status, nothing kept.
    Status(u16),
    /// The driver (or its host) found the bytes are not the digest.
    Mismatch,
    /// Taken, but the 202 says the session holds this `Range`.
    TakenSaying(&'static str),
}

/// The scripted pair: the source's blob, the destination's sessions.
struct Registries {
    /// Sessions opened, and the bytes the current one holds.
    sessions: u32,
    holds: u64,
    /// A session that forgets: PATCHes and GETs on it answer 404.
    forgotten: bool,
    patches: u32,
    faults: Vec<(u32, Fault)>,
    /// What a session's status GET says instead of the truth, once.
    lie: Option<&'static str>,
    /// The source ignores `Range` (a 200 with everything).
    ignores_range: bool,
    /// Headers on the POST's 202.
    open_headers: Vec<(&'static str, &'static str)>,
    /// Monolithic PUTs above this are refused with 413.
    body_limit: Option<u64>,
}

impl Registries {
    fn new() -> Self {
        Registries {
            sessions: 0,
            holds: 0,
            forgotten: false,
            patches: 0,
            faults: Vec::new(),
            lie: None,
            ignores_range: false,
            open_headers: Vec::new(),
            body_limit: None,
        }
    }

    fn serve(&mut self, q: &Request) -> Answer {
        let path = q.url.path_and_query.as_str();
        let on_session = path.starts_with("/session/");
        match (q.url.authority.as_str(), q.method) {
            (SRC, Method::Get) => Ok(self.source(q)),
            (DST, Method::Head) => Ok(response(404, &[], b"")),
            (DST, Method::Post) => {
                self.sessions += 1;
                self.holds = 0;
                self.forgotten = false;
                let location = format!("/session/{}?n=0", self.sessions);
                let mut headers = vec![("Location", location.as_str())];
                headers.extend(self.open_headers.iter().copied());
                Ok(response(202, &headers, b""))
            }
            (DST, _) if on_session && self.forgotten => Ok(response(404, &[], b"")),
            // As distribution: a session's state is in its latest Location.
            (DST, Method::Patch | Method::Put) if !self.current(path) => {
                Ok(response(404, &[], b""))
            }
            (DST, Method::Get) if on_session => {
                let truth = format!("0-{}", self.holds.saturating_sub(1));
                let range = self.lie.take().map_or(truth, str::to_string);
                let location = format!("/session/{}?n={}", self.sessions, self.holds);
                Ok(response(
                    204,
                    &[("Range", &range), ("Location", &location)],
                    b"",
                ))
            }
            (DST, Method::Patch) => self.patch(q),
            (DST, Method::Put) => {
                let len = q.body.len().unwrap_or(0);
                if self.body_limit.is_some_and(|l| len > l) {
                    return Ok(response(413, &[], b""));
                }
                let complete = self.holds + len == SIZE;
                assert!(
                    complete,
                    "completed with {} of {SIZE} bytes",
                    self.holds + len
                );
                assert!(path.contains(&format!("digest={}", digest())), "{path}");
                let d = digest().to_string();
                Ok(response(201, &[("Docker-Content-Digest", &d)], b""))
            }
            other => panic!("unexpected {other:?} {path}"),
        }
    }

    /// Whether `path` is the session's latest Location (its `n=` the bytes held).
    fn current(&self, path: &str) -> bool {
        let latest = format!("/session/{}?n={}", self.sessions, self.holds);
        path.split("&digest=").next() == Some(latest.as_str())
    }

    /// The source blob, held; from where `Range` says, unless it ignores it.
    fn source(&self, q: &Request) -> ocirelay_core::http::Response {
        let from = q.headers.get("range").and_then(|r| {
            r.strip_prefix("bytes=")?
                .strip_suffix('-')?
                .parse::<u64>()
                .ok()
        });
        let mut r = match from {
            Some(from) if !self.ignores_range => {
                let range = format!("bytes {from}-{}/{SIZE}", SIZE - 1);
                let len = (SIZE - from).to_string();
                response(
                    206,
                    &[("Content-Range", &range), ("Content-Length", &len)],
                    b"",
                )
            }
            _ => {
                let d = digest().to_string();
                let len = SIZE.to_string();
                response(
                    200,
                    &[("Content-Length", &len), ("Docker-Content-Digest", &d)],
                    b"",
                )
            }
        };
        r.body = ResponseBody::Held;
        r
    }

    fn patch(&mut self, q: &Request) -> Answer {
        self.patches += 1;
        let RequestBody::Chunk { len, .. } = q.body else {
            panic!("a PATCH of a copy is a chunk of its source: {:?}", q.body)
        };
        let range = q.headers.get("content-range").expect("Content-Range");
        let expected = format!("{}-{}", self.holds, self.holds + len - 1);
        if range != expected {
            return Ok(response(416, &[], b""));
        }
        let fault = self
            .faults
            .iter()
            .find(|(n, _)| *n == self.patches)
            .map(|(_, f)| *f);
        match fault {
            Some(Fault::Break { kept }) => {
                self.holds += kept;
                Err(TransportError::transient("connection reset"))
            }
            Some(Fault::Status(status)) => Ok(response(status, &[], b"")),
            Some(Fault::Mismatch) => Err(TransportError::integrity("upload does not match")),
            Some(Fault::TakenSaying(range)) => {
                self.holds += len;
                let location = format!("/session/{}?n={}", self.sessions, self.holds);
                Ok(response(
                    202,
                    &[("Location", &location), ("Range", range)],
                    b"",
                ))
            }
            None => {
                self.holds += len;
                let location = format!("/session/{}?n={}", self.sessions, self.holds);
                let range = format!("0-{}", self.holds - 1);
                Ok(response(
                    202,
                    &[("Location", &location), ("Range", &range)],
                    b"",
                ))
            }
        }
    }
}

fn copy() -> CopyBlob {
    let d = digest();
    let src: Reference = format!("{SRC}/app@{d}").parse().unwrap();
    let dst: Reference = format!("{DST}/app").parse().unwrap();
    let known = Descriptor::new("application/octet-stream", d, SIZE);
    CopyBlob::new(src, dst, Some(known)).unwrap()
}

/// Runs the copy, returning its outcome and each request with its id.
fn run(
    c: &mut Client,
    regs: &mut Registries,
) -> (Result<Descriptor, Error>, Vec<(RequestId, Request)>) {
    let mut op = copy();
    let mut sent = Vec::new();
    for _ in 0..500 {
        match op.poll_output(c) {
            Output::Send(id, q) => {
                let answer = regs.serve(&q);
                sent.push((id, q));
                c.handle_response(id, answer);
            }
            Output::Wait(Some(at)) => c.set_now(at),
            Output::Wait(None) => panic!("waiting with nothing in flight"),
            Output::Done(out) => return (out, sent),
        }
    }
    panic!("no outcome: {sent:#?}");
}

/// Each request as `METHOD host what`, chunks with their range and source.
fn listed(sent: &[(RequestId, Request)]) -> Vec<String> {
    sent.iter()
        .map(|(_, q)| {
            let what = match &q.body {
                RequestBody::Chunk {
                    from, skip, last, ..
                } => {
                    let range = q.headers.get("content-range").unwrap_or_default();
                    let mib = |s: &str| s.parse::<u64>().map_or(0, |n| n / MIB);
                    let (a, b) = range.split_once('-').unwrap_or_default();
                    let b = b.parse::<u64>().map_or(0, |n| (n + 1) / MIB);
                    let skip = if *skip > 0 {
                        format!(" skip {}", skip / MIB)
                    } else {
                        String::new()
                    };
                    let last = if *last { " last" } else { "" };
                    format!(" {}..{b} from #{}{skip}{last}", mib(a), from.0)
                }
                _ => q
                    .headers
                    .get("range")
                    .map_or(String::new(), |r| format!(" {r}")),
            };
            let method = format!("{:?}", q.method).to_uppercase();
            format!("{method} {}{what}", q.url.authority)
        })
        .collect()
}

fn id_of(sent: &[(RequestId, Request)], at: usize) -> u64 {
    sent[at].0 .0
}

#[test]
fn a_large_copy_goes_in_chunks_each_from_what_the_last_left() {
    let mut regs = Registries::new();
    let mut c = client(chunks_of(30 * MIB));
    let (out, sent) = run(&mut c, &mut regs);
    assert_eq!(out.unwrap().size, SIZE);
    let get = id_of(&sent, 2);
    let p = |i| id_of(&sent, i);
    assert_eq!(
        listed(&sent),
        [
            format!("HEAD {DST}"),
            format!("POST {DST}"),
            format!("GET {SRC}"),
            format!("PATCH {DST} 0..30 from #{get}"),
            format!("PATCH {DST} 30..60 from #{}", p(3)),
            format!("PATCH {DST} 60..90 from #{}", p(4)),
            format!("PATCH {DST} 90..100 from #{} last", p(5)),
            format!("PUT {DST}"),
        ]
    );
    assert_eq!(
        sent[7].1.body,
        RequestBody::Empty,
        "completed by an empty PUT"
    );
    assert_eq!(sent[3].1.headers.get("content-length"), Some("31457280"));

    // At the threshold, one PUT carries it all.
    let mut regs = Registries::new();
    let mut c = client(UploadRule {
        chunk_size: 30 * MIB,
        monolithic_up_to: SIZE,
    });
    let (out, sent) = run(&mut c, &mut regs);
    out.unwrap();
    assert!(matches!(
        sent[3].1.body,
        RequestBody::Transfer { size: SIZE, .. }
    ));
    assert_eq!(regs.patches, 0);
}

#[test]
fn a_broken_chunk_resumes_where_the_session_stands() {
    // Nothing of the second chunk arrived: the source is read again from 30.
    let mut regs = Registries::new();
    regs.faults = vec![(2, Fault::Break { kept: 0 })];
    let mut c = client(chunks_of(30 * MIB));
    let (out, sent) = run(&mut c, &mut regs);
    assert_eq!(out.unwrap().size, SIZE);
    let shown = listed(&sent);
    let resumed = id_of(&sent, 6);
    assert_eq!(
        shown[4..9],
        [
            format!("PATCH {DST} 30..60 from #{}", id_of(&sent, 3)),
            format!("GET {DST}"),
            format!("GET {SRC} bytes=31457280-"),
            format!("PATCH {DST} 30..60 from #{resumed}"),
            format!("PATCH {DST} 60..90 from #{}", id_of(&sent, 7)),
        ]
    );
    assert_eq!(regs.sessions, 1, "the same session throughout");

    // All of it arrived (the answer was lost): on from 60.
    let mut regs = Registries::new();
    regs.faults = vec![(2, Fault::Break { kept: 30 * MIB })];
    let mut c = client(chunks_of(30 * MIB));
    let (out, sent) = run(&mut c, &mut regs);
    out.unwrap();
    assert_eq!(listed(&sent)[6], format!("GET {SRC} bytes=62914560-"));
    assert_eq!(
        listed(&sent)[7],
        format!("PATCH {DST} 60..90 from #{}", id_of(&sent, 6))
    );

    // A source that ignores the range sends it all: the chunk skips what is there.
    let mut regs = Registries::new();
    regs.faults = vec![(2, Fault::Break { kept: 0 })];
    regs.ignores_range = true;
    let mut c = client(chunks_of(30 * MIB));
    let (out, sent) = run(&mut c, &mut regs);
    out.unwrap();
    assert_eq!(
        listed(&sent)[7],
        format!("PATCH {DST} 30..60 from #{} skip 30", id_of(&sent, 6))
    );
}

#[test]
fn a_forgotten_session_starts_over_from_byte_zero_once() {
    let mut regs = Registries::new();
    regs.faults = vec![(3, Fault::Break { kept: 0 })];
    let mut c = client(chunks_of(30 * MIB));
    let mut op = copy();
    // Forgotten as the third chunk breaks.
    let mut sent = Vec::new();
    let out = loop {
        match op.poll_output(&mut c) {
            Output::Send(id, q) => {
                let answer = regs.serve(&q);
                if q.method == Method::Patch && regs.patches == 3 {
                    regs.forgotten = true;
                }
                sent.push((id, q));
                c.handle_response(id, answer);
            }
            Output::Done(out) => break out,
            Output::Wait(_) => panic!("waits"),
        }
    };
    assert_eq!(out.unwrap().size, SIZE);
    let shown = listed(&sent);
    let restart = shown
        .iter()
        .position(|s| s == &format!("POST {DST}"))
        .map(|_| ());
    assert!(restart.is_some());
    assert_eq!(regs.sessions, 2, "{shown:#?}");
    let after = shown
        .iter()
        .rposition(|s| s == &format!("POST {DST}"))
        .unwrap();
    assert_eq!(
        shown[after + 1],
        format!("GET {SRC}"),
        "from byte 0: no range"
    );
    assert!(shown[after + 2].starts_with(&format!("PATCH {DST} 0..30")));

    // Forgotten twice: the second time is an error that says so.
    let mut regs = Registries::new();
    regs.faults = vec![(2, Fault::Status(404)), (4, Fault::Status(404))];
    let mut c = client(chunks_of(30 * MIB));
    let (out, _) = run(&mut c, &mut regs);
    let err = out.unwrap_err().to_string();
    assert!(
        err.contains("forgot the upload session") && err.contains("once already"),
        "{err}"
    );
}

#[test]
fn a_range_that_cannot_be_trusted_starts_over_once() {
    for lie in ["0-5", "0-52428799", "0-94371839", "5-10", "junk"] {
        let mut regs = Registries::new();
        regs.faults = vec![(2, Fault::Break { kept: 0 })];
        regs.lie = Some(lie);
        let mut c = client(chunks_of(30 * MIB));
        let (out, sent) = run(&mut c, &mut regs);
        assert_eq!(out.unwrap().size, SIZE, "{lie}");
        assert_eq!(regs.sessions, 2, "{lie}: {:#?}", listed(&sent));
    }
    // Inside the chunk (the registry kept part of it): the same.
    let mut regs = Registries::new();
    regs.faults = vec![(2, Fault::Break { kept: 10 * MIB })];
    let mut c = client(chunks_of(30 * MIB));
    let (out, _) = run(&mut c, &mut regs);
    out.unwrap();
    assert_eq!(regs.sessions, 2);
}

#[test]
fn chunks_that_never_go_through_fail_after_a_few_tries() {
    let mut regs = Registries::new();
    regs.faults = (2..10).map(|n| (n, Fault::Break { kept: 0 })).collect();
    let mut c = client(chunks_of(30 * MIB));
    let (out, sent) = run(&mut c, &mut regs);
    let err = out.unwrap_err().to_string();
    assert!(
        err.contains("no chunk went through") && err.contains("byte 31457280"),
        "{err}"
    );
    assert_eq!(regs.patches, 5, "{:#?}", listed(&sent));
}

#[test]
fn a_413_halves_the_chunks_from_then_on() {
    let mut regs = Registries::new();
    regs.faults = vec![(2, Fault::Status(413))];
    let mut c = client(chunks_of(40 * MIB));
    let (out, sent) = run(&mut c, &mut regs);
    out.unwrap();
    let shown = listed(&sent);
    assert_eq!(
        shown[4..8],
        [
            format!("PATCH {DST} 40..80 from #{}", id_of(&sent, 3)),
            format!("GET {DST}"),
            format!("GET {SRC} bytes=41943040-"),
            format!("PATCH {DST} 40..60 from #{}", id_of(&sent, 6)),
        ]
    );
    assert_eq!(
        c.upload_rule(DST).chunk_size,
        20 * MIB,
        "learnt for the registry"
    );

    // A monolithic PUT refused as too large goes on in chunks, in its session.
    let mut regs = Registries::new();
    regs.body_limit = Some(64 * MIB);
    let mut c = client(UploadRule {
        chunk_size: 30 * MIB,
        monolithic_up_to: u64::MAX,
    });
    let (out, sent) = run(&mut c, &mut regs);
    out.unwrap();
    assert_eq!(
        listed(&sent)[3..6],
        [
            format!("PUT {DST}"),
            format!("GET {SRC}"),
            format!("PATCH {DST} 0..30 from #{}", id_of(&sent, 4)),
        ]
    );
    assert_eq!(regs.sessions, 1);
    assert_eq!(c.upload_rule(DST).monolithic_up_to, 50 * MIB);
}

#[test]
fn the_registry_minimum_chunk_is_honoured_and_nonsense_ignored() {
    let mut regs = Registries::new();
    regs.open_headers = vec![("OCI-Chunk-Min-Length", "41943040")];
    let mut c = client(chunks_of(30 * MIB));
    let (out, sent) = run(&mut c, &mut regs);
    out.unwrap();
    assert!(listed(&sent)[3].contains("0..40"), "{:#?}", listed(&sent));
    assert_eq!(regs.patches, 3);

    // Larger than the blob: one chunk of all of it.
    let mut regs = Registries::new();
    regs.open_headers = vec![("OCI-Chunk-Min-Length", "18446744073709551615")];
    let mut c = client(chunks_of(30 * MIB));
    let (out, sent) = run(&mut c, &mut regs);
    out.unwrap();
    assert!(listed(&sent)[3].contains("0..100 from") && listed(&sent)[3].ends_with("last"));

    for nonsense in ["0", "-5", "five", ""] {
        let mut regs = Registries::new();
        regs.open_headers = vec![("OCI-Chunk-Min-Length", nonsense)];
        let mut c = client(chunks_of(30 * MIB));
        let (out, sent) = run(&mut c, &mut regs);
        out.unwrap();
        assert!(listed(&sent)[3].contains("0..30"), "{nonsense:?}");
    }
}

#[test]
fn a_chunk_found_not_to_match_ends_the_copy_unasked() {
    let mut regs = Registries::new();
    regs.faults = vec![(2, Fault::Mismatch)];
    let mut c = client(chunks_of(30 * MIB));
    let (out, sent) = run(&mut c, &mut regs);
    assert!(matches!(out, Err(Error::Integrity { .. })), "{out:?}");
    let last = listed(&sent).pop().unwrap_or_default();
    assert!(last.starts_with(&format!("PATCH {DST} 30..60")), "{last}");
}

#[test]
fn what_a_chunk_left_is_given_up_when_the_session_is_asked_again() {
    // The 202 says another range: the session is asked, the source read
    // again, and what the chunk left of the first read is released.
    let mut regs = Registries::new();
    regs.faults = vec![(2, Fault::TakenSaying("0-5"))];
    let mut c = client(chunks_of(30 * MIB));
    let (out, sent) = run(&mut c, &mut regs);
    out.unwrap();
    let patch = id_of(&sent, 4);
    assert_eq!(
        listed(&sent)[5],
        format!("GET {DST}"),
        "{:#?}",
        listed(&sent)
    );
    assert_eq!(c.take_released(), [RequestId(patch)]);
}

#[test]
fn a_source_of_another_size_than_its_descriptor_is_given_up() {
    let mut regs = Registries::new();
    let d = digest();
    let src: Reference = format!("{SRC}/app@{d}").parse().unwrap();
    let dst: Reference = format!("{DST}/app").parse().unwrap();
    let known = Descriptor::new("application/octet-stream", d, SIZE - 1);
    let mut op = CopyBlob::new(src, dst, Some(known)).unwrap();
    let mut c = client(chunks_of(30 * MIB));
    let mut get = None;
    let out = loop {
        match op.poll_output(&mut c) {
            Output::Send(id, q) => {
                if q.method == Method::Get {
                    get = Some(id);
                }
                let answer = regs.serve(&q);
                c.handle_response(id, answer);
            }
            Output::Done(out) => break out,
            Output::Wait(_) => panic!("waits"),
        }
    };
    assert!(matches!(out, Err(Error::Integrity { .. })), "{out:?}");
    assert_eq!(c.take_released(), [get.expect("the source was read")]);
    assert!(c.take_released().is_empty(), "said once");
}

#[test]
fn a_413_of_the_smallest_chunk_is_an_error_that_says_so() {
    let mut regs = Registries::new();
    regs.faults = vec![(1, Fault::Status(413))];
    let mut c = client(chunks_of(MIB));
    let (out, _) = run(&mut c, &mut regs);
    let err = out.unwrap_err().to_string();
    assert!(
        err.contains("413") && err.contains("1048576 bytes"),
        "{err}"
    );
}
