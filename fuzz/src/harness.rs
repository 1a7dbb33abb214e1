//! A driver of any operation against the world, its answers twisted by the
//! fuzzer, that checks on every step what must hold whatever a registry
//! says:
//! - every request goes over HTTPS (no registry is configured insecure);
//! - a credential goes only to its registry's origin or a realm that
//!   registry named; tokens go only to registries; nothing is written
//!   anywhere but the destination registry and token realms;
//! - bytes sent as a blob or manifest match the digest they are sent under,
//!   and a streamed body is one the driver holds;
//! - no wait goes past the retry deadline; the operation ends within a
//!   bounded number of requests and polls, and never waits with nothing
//!   that could wake it;
//! - with a policy, each request is admitted as a driver admits it (rates,
//!   a registry's stated budget, a place among its requests at once), and
//!   no place is ever lost (a request waiting for one always gets it).
//!
//! What the destination's answers confirmed is recorded
//! ([`Harness::confirmed`]), for the caller to hold an operation's claims
//! of having pushed something against.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use arbitrary::Unstructured;
use bytes::Bytes;
use ocirelay_core::auth::{Challenge, Credential};
use ocirelay_core::http::{
    BodyMode, Headers, Method, Origin, Request, RequestBody, RequestId, Response, ResponseBody,
    Scheme, TransportError, Url, SMALL_BODY_LIMIT,
};
use ocirelay_core::upload_check::SessionChecks;
use ocirelay_core::{Client, Digest, Operation, Output};

use crate::hostile::{Twist, Twisted};
use crate::world::{cdn, token_service, Incoming, Raw, Registry, AUTH, CDN, DST, SRC};

/// Requests one operation may send before it counts as endless (429s are
/// retried until the deadline, one fuzzer choice each).
pub const MAX_REQUESTS: usize = 4000;
/// Polls one operation may take.
pub const MAX_POLLS: usize = 100_000;
/// Twists of one answer, at most.
const MAX_TWISTS: u8 = 3;

/// The driver and what it has seen.
pub struct Harness<'u, 'd> {
    u: &'u mut Unstructured<'d>,
    /// The client the operation runs in.
    pub client: Client,
    /// The source registry.
    pub src: Registry,
    /// The destination registry (unused when a copy stays within `src`).
    pub dst: Registry,
    /// The registry written to, and the repository there.
    target: (&'static str, &'static str),
    tokens_issued: u32,
    in_flight: Vec<(RequestId, Request)>,
    /// With a policy: requests asked to wait until an instant, and those
    /// waiting for a place among their registry's requests at once.
    scheduled: Vec<(ocirelay_core::Instant, RequestId, Request)>,
    unplaced: Vec<(RequestId, Request)>,
    /// Bodies held unread, by the request they answer.
    held: HashMap<RequestId, Bytes>,
    requests: usize,
    polls: usize,
    /// URLs (without query) the destination pointed at: upload sessions,
    /// redirects.
    lineage: HashSet<String>,
    /// Redirect targets (without query), by the digest the redirected
    /// request asked for.
    about: HashMap<String, String>,
    /// Digests the destination's answers said it has.
    confirmed: HashSet<String>,
    /// Realm origins each registry named in a challenge.
    realms: HashMap<String, HashSet<Origin>>,
    /// Secrets configured, by the registry they belong to: what may never
    /// travel anywhere else.
    secrets: Vec<(String, &'static str)>,
    /// Chunks PATCHed into uploads, by the byte they start at.
    patched: std::collections::BTreeMap<u64, Bytes>,
    /// Chunked uploads' sessions hashed as a host's hook hashes them.
    checks: SessionChecks,
    /// What each chunk in flight left of its source, held once it is answered 2xx.
    leftover: HashMap<RequestId, Bytes>,
}

impl<'u, 'd> Harness<'u, 'd> {
    /// A driver over `client` and the registries, writing to `target`
    /// (host, repository); `credentials` are those configured in `client`.
    pub fn new(
        u: &'u mut Unstructured<'d>,
        client: Client,
        src: Registry,
        dst: Registry,
        target: (&'static str, &'static str),
        credentials: &[(&'static str, Credential)],
    ) -> Self {
        let secrets = credentials
            .iter()
            .map(|(host, c)| {
                let secret = match c {
                    Credential::Basic { username, password } => {
                        Credential::basic_header(username, password)
                    }
                    Credential::Bearer(t) | Credential::IdentityToken(t) => t.clone(),
                };
                (secret, *host)
            })
            .collect();
        Harness {
            u,
            client,
            src,
            dst,
            target,
            tokens_issued: 0,
            in_flight: Vec::new(),
            scheduled: Vec::new(),
            unplaced: Vec::new(),
            held: HashMap::new(),
            requests: 0,
            polls: 0,
            lineage: HashSet::new(),
            about: HashMap::new(),
            confirmed: HashSet::new(),
            realms: HashMap::new(),
            patched: std::collections::BTreeMap::new(),
            checks: SessionChecks::default(),
            leftover: HashMap::new(),
            secrets,
        }
    }

    /// Whether the destination's answers said it has `digest`.
    pub fn confirmed(&self, digest: &Digest) -> bool {
        self.confirmed.contains(&digest.to_string())
    }

    /// Takes the body held for `request` (an outcome's stream).
    pub fn take_held(&mut self, request: RequestId) -> Bytes {
        match self.held.remove(&request) {
            Some(b) => b,
            None => panic!("a body never held (or already taken) for {request:?}"),
        }
    }

    /// Runs `op` to its end.
    pub fn drive<O: Operation>(&mut self, op: &mut O) -> O::Outcome {
        loop {
            self.polls += 1;
            assert!(self.polls <= MAX_POLLS, "no end after {MAX_POLLS} polls");
            match op.poll_output(&mut self.client) {
                Output::Send(id, request) => {
                    self.requests += 1;
                    assert!(
                        self.requests <= MAX_REQUESTS,
                        "no end after {MAX_REQUESTS} requests"
                    );
                    self.check_request(&request);
                    self.admit(id, request);
                }
                Output::Wait(deadline) => self.wait(deadline),
                Output::Done(outcome) => return outcome,
            }
            // Bodies given up are dropped, as a driver drops them: each
            // was held, and not sent on already.
            for id in self.client.take_released() {
                assert!(
                    self.held.remove(&id).is_some(),
                    "released a body never held, or sent on: {id:?}"
                );
            }
        }
    }

    /// Starts `request` as a driver does: at once without a policy; with
    /// one, when its rate, its registry's budget and a place allow.
    fn admit(&mut self, id: RequestId, request: Request) {
        use ocirelay_core::policy::Admission;
        match self.client.admit(&request) {
            Admission::Go if self.client.take_place(id, &request) => {
                self.in_flight.push((id, request))
            }
            Admission::Go => self.unplaced.push((id, request)),
            Admission::Wait(at) => self.scheduled.push((at, id, request)),
            Admission::Refused | Admission::Exhausted(_) => {
                let refused = TransportError::permanent("refused by the policy");
                self.client.handle_response(id, Err(refused));
            }
        }
    }

    /// Admits again what waited: those due by now, and those without a
    /// place (an answer may have freed one).
    fn admit_waiting(&mut self) {
        let now = self.client.now();
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.scheduled)
            .into_iter()
            .partition(|(at, _, _)| *at <= now);
        self.scheduled = later;
        let unplaced = std::mem::take(&mut self.unplaced);
        for (_, id, request) in due {
            self.admit(id, request);
        }
        for (id, request) in unplaced {
            self.admit(id, request);
        }
    }

    /// Lets time pass or an answer come, as the fuzzer chooses.
    fn wait(&mut self, deadline: Option<ocirelay_core::Instant>) {
        self.admit_waiting();
        // What waits for an instant wakes the driver then.
        let scheduled = self.scheduled.iter().map(|(at, _, _)| *at).min();
        let deadline = match (deadline, scheduled) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let now = self.client.now();
        if let Some(at) = deadline {
            let wait = at.saturating_since(now);
            let limit = self.client.config().retry.deadline;
            assert!(
                wait <= limit,
                "a wait of {wait:?}, past the {limit:?} deadline"
            );
        }
        let pick: u8 = self.u.arbitrary().unwrap_or(0);
        match (self.in_flight.is_empty(), deadline) {
            (true, None) if !self.unplaced.is_empty() => {
                panic!("a place lost: requests wait for one with none in flight")
            }
            (true, None) => panic!("waiting for nothing: no request in flight, no deadline"),
            (true, Some(at)) => self.client.set_now(at),
            (false, Some(at)) if pick == u8::MAX => self.client.set_now(at),
            (false, _) => {
                // Answers come in any order; a little time passes.
                let (id, request) = self
                    .in_flight
                    .swap_remove(usize::from(pick) % self.in_flight.len());
                self.client.set_now(now + Duration::from_millis(10));
                let answer = self.answer(id, &request);
                self.client.handle_response(id, answer);
            }
        }
    }

    fn check_request(&mut self, request: &Request) {
        let url = &request.url;
        assert_eq!(url.scheme, Scheme::Https, "plain HTTP: {url}");
        let origin = url.origin();
        let registry = |host: &str| https_origin(host);
        let body: &[u8] = match &request.body {
            RequestBody::Bytes(b) => b,
            _ => &[],
        };
        let auth = request.headers.get("authorization").unwrap_or("");
        for (secret, owner) in &self.secrets {
            let carried = auth.contains(secret.as_str()) || contains(body, secret.as_bytes());
            if carried {
                let named = self.realms.get(*owner);
                assert!(
                    origin == registry(owner) || named.is_some_and(|r| r.contains(&origin)),
                    "{owner}'s credential sent to {url}"
                );
            }
        }
        let issued = ["Bearer token-", "Bearer access-", "Bearer t", "Bearer a"];
        if issued.iter().any(|t| auth.starts_with(t)) {
            assert!(
                origin == registry(SRC) || origin == registry(DST),
                "a token sent to {url}"
            );
        }
        if !matches!(request.method, Method::Get | Method::Head) {
            let realm = self.realms.values().any(|r| r.contains(&origin));
            assert!(
                origin == registry(self.target.0) || realm,
                "{} to {url}, not the destination",
                request.method.as_str()
            );
        }
        match &request.body {
            RequestBody::Bytes(b) if request.method == Method::Patch => {
                let range = request.headers.get("content-range");
                let first = range.and_then(|r| r.split('-').next()?.parse::<u64>().ok());
                let Some(first) = first else {
                    panic!("{url}: a PATCH without its Content-Range");
                };
                self.patched.insert(first, b.clone());
            }
            RequestBody::Bytes(b) if request.method == Method::Put => {
                if let Some(d) = sent_digest(url) {
                    assert_eq!(
                        Digest::sha256(b).to_string(),
                        d,
                        "{url}: bytes of another digest"
                    );
                }
            }
            // Completing chunked uploads: what was PATCHed, from byte 0 on,
            // is the digest's content.
            RequestBody::Empty if request.method == Method::Put && !self.patched.is_empty() => {
                if let Some(d) = sent_digest(url) {
                    let mut whole = Vec::new();
                    for (first, chunk) in &self.patched {
                        if *first == whole.len() as u64 {
                            whole.extend_from_slice(chunk);
                        }
                    }
                    assert_eq!(
                        Digest::sha256(&whole).to_string(),
                        d,
                        "{url}: completes chunks of another digest"
                    );
                }
            }
            RequestBody::Transfer { from, .. } | RequestBody::Chunk { from, .. } => {
                assert!(
                    self.held.contains_key(from),
                    "{url}: streams a body never held"
                );
            }
            _ => {}
        }
    }

    /// The bytes of a chunk of the body held for `from`, hashed into its
    /// session as a host's hook does; what is left waits for the answer.
    fn chunk(&mut self, id: RequestId, request: &Request) -> Result<Bytes, TransportError> {
        let RequestBody::Chunk {
            from,
            skip,
            len,
            digest,
            last,
        } = &request.body
        else {
            return Ok(Bytes::new());
        };
        let held = self.take_held(*from);
        let skip = usize::try_from(*skip).unwrap_or(usize::MAX).min(held.len());
        let rest = held.slice(skip..);
        let len = usize::try_from(*len).unwrap_or(usize::MAX);
        if rest.len() < len {
            return Err(TransportError::transient("the source ended early"));
        }
        let (chunk, after) = (rest.slice(..len), rest.slice(len..));
        let url = &request.url;
        let key = SessionChecks::key(&url.authority, &url.path_and_query);
        let start = request
            .headers
            .get("content-range")
            .and_then(|r| r.split('-').next()?.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("{url}: a chunk without its Content-Range"));
        match self.checks.chunk(&key, start, digest.algorithm()) {
            Err(e) => return Err(TransportError::integrity(e)),
            Ok(Some(mut check)) => {
                check.update(&chunk);
                self.checks.put_back(&key, check);
            }
            Ok(None) => {}
        }
        if !*last {
            self.leftover.insert(id, after);
        }
        Ok(chunk)
    }

    /// The answer to `request`, after the fuzzer's twists, as a driver
    /// hands it to the core.
    fn answer(&mut self, id: RequestId, request: &Request) -> Result<Response, TransportError> {
        let body = match &request.body {
            RequestBody::Empty => Bytes::new(),
            RequestBody::Bytes(b) => b.clone(),
            RequestBody::Transfer { from, size, digest } => {
                let held = self.take_held(*from);
                // The host's hook checks what it streams; a mismatch never
                // reaches the registry.
                if held.len() as u64 != *size || Digest::sha256(&held) != *digest {
                    return Err(TransportError::integrity(format!(
                        "{}: upload does not match its digest",
                        request.url
                    )));
                }
                held
            }
            RequestBody::Chunk { .. } => self.chunk(id, request)?,
        };
        // A session's completing PUT goes only if its chunks are its digest.
        if let (Method::Put, Some(d)) = (request.method, sent_digest(&request.url)) {
            let url = &request.url;
            let key = SessionChecks::key(&url.authority, &url.path_and_query);
            if let Ok(d) = Digest::parse(&d) {
                self.checks
                    .complete(&key, &d, &body)
                    .map_err(TransportError::integrity)?;
            }
        }
        let incoming = Incoming {
            method: request.method.as_str(),
            path_and_query: &request.url.path_and_query,
            authorization: request.headers.get("authorization"),
            content_type: request.headers.get("content-type"),
            range: request.headers.get("range"),
            content_range: request.headers.get("content-range"),
            body,
        };
        let path = incoming.path_and_query.split('?').next().unwrap_or("");
        let honest = match request.url.authority.as_str() {
            SRC => Twisted::Answer(self.src.serve(&incoming)),
            DST => Twisted::Answer(self.dst.serve(&incoming)),
            AUTH => {
                self.tokens_issued += 1;
                Twisted::Answer(token_service(incoming.method, self.tokens_issued))
            }
            CDN => Twisted::Answer(cdn(path, request.method == Method::Head)),
            _ => Twisted::Failed(TransportError::unresolved("no such host")),
        };
        let asked = path
            .rsplit('/')
            .next()
            .filter(|d| Digest::parse(d).is_ok())
            .map(str::to_string);
        let twists = self.u.int_in_range(0..=MAX_TWISTS).unwrap_or(0);
        let mut twisted = honest;
        for _ in 0..twists {
            let Ok(twist) = self.u.arbitrary::<Twist>() else {
                break;
            };
            twisted = twist.apply(twisted, asked.as_deref());
        }
        match twisted {
            Twisted::Failed(e) => {
                self.leftover.remove(&id);
                Err(e)
            }
            Twisted::Answer(mut raw) => {
                // What a chunk left of its source is held for the next one.
                let rest = self.leftover.remove(&id);
                if let Some(rest) = rest.filter(|_| (200..300).contains(&raw.status)) {
                    self.held.insert(id, rest);
                }
                raw.body = delivered(request, &raw);
                self.observe(request, &raw, asked.as_deref());
                Ok(self.frame(id, request, raw))
            }
        }
    }

    /// Records what an answer says: realms named, and what the destination
    /// confirmed or pointed at.
    fn observe(&mut self, request: &Request, raw: &Raw, asked: Option<&str>) {
        let url = &request.url;
        if let Some(challenge) = raw.get("www-authenticate").and_then(Challenge::parse) {
            if let Some(realm) = challenge
                .params
                .get("realm")
                .and_then(|r| Url::parse(r).ok())
            {
                self.realms
                    .entry(url.authority.clone())
                    .or_default()
                    .insert(realm.origin());
            }
        }
        let key = without_query(url);
        let (host, repo) = self.target;
        let ours = url.origin() == https_origin(host)
            && url.path_and_query.starts_with(&format!("/v2/{repo}/"));
        if !ours && !self.lineage.contains(&key) {
            return;
        }
        // What a request is about: the digest its own path names on the
        // destination; past a redirect, the digest the chain began with
        // (a storage URL's path may name anything).
        let from_path = || asked.map(str::to_string);
        let about = match ours {
            true => from_path().or_else(|| self.about.get(&key).cloned()),
            false => self.about.get(&key).cloned().or_else(from_path),
        };
        if let Some(next) = raw.get("location").and_then(|l| url.join(l).ok()) {
            let next = without_query(&next);
            if let Some(d) = &about {
                self.about.insert(next.clone(), d.clone());
            }
            self.lineage.insert(next);
        }
        if !(200..300).contains(&raw.status) {
            return;
        }
        if let Some(d) = raw.get("docker-content-digest") {
            self.confirmed.insert(d.trim().to_string());
        }
        match request.method {
            Method::Head | Method::Get => {
                if let Some(d) = about {
                    self.confirmed.insert(d);
                }
                if request.method == Method::Get && !raw.body.is_empty() {
                    self.confirmed.insert(Digest::sha256(&raw.body).to_string());
                }
            }
            Method::Post => {
                let query = url.path_and_query.split_once('?').map_or("", |(_, q)| q);
                if let Some(d) = query.split('&').find_map(|kv| kv.strip_prefix("mount=")) {
                    self.confirmed.insert(d.to_string());
                }
            }
            _ => {}
        }
    }

    /// The answer as a driver frames it per the request's body mode: read
    /// whole, too large, or held unread for the operation to stream on.
    fn frame(&mut self, id: RequestId, request: &Request, raw: Raw) -> Response {
        let success = (200..300).contains(&raw.status);
        let length = content_length(&raw);
        let body = raw.body.clone();
        let hold = match request.body_mode {
            BodyMode::Relay => success,
            BodyMode::Stream { buffer_up_to } => success && length.is_none_or(|n| n > buffer_up_to),
            BodyMode::Buffer(_) => false,
        };
        let limit = match request.body_mode {
            BodyMode::Buffer(limit) => limit,
            _ => SMALL_BODY_LIMIT.max(ocirelay_core::cache::CACHE_DATA_LIMIT),
        };
        let body = if hold && request.method != Method::Head {
            self.held.insert(id, body);
            ResponseBody::Held
        } else if body.len() as u64 > limit {
            ResponseBody::TooLarge
        } else {
            ResponseBody::Bytes(body)
        };
        let headers: Headers = raw.headers.into_iter().collect();
        Response {
            status: raw.status,
            headers,
            body,
        }
    }
}

fn content_length(raw: &Raw) -> Option<u64> {
    raw.get("content-length")
        .and_then(|l| l.trim().parse::<u64>().ok())
}

/// The body as a transport delivers it: none for a HEAD, no more than
/// `Content-Length` says.
fn delivered(request: &Request, raw: &Raw) -> Bytes {
    if request.method == Method::Head {
        return Bytes::new();
    }
    let mut body = raw.body.clone();
    if let Some(n) = content_length(raw) {
        if (body.len() as u64) > n {
            body.truncate(n as usize);
        }
    }
    body
}

/// `https://host:443`.
fn https_origin(host: &str) -> Origin {
    match Url::parse(&format!("https://{host}/")) {
        Ok(url) => url.origin(),
        Err(e) => panic!("fixture host {host}: {e}"),
    }
}

fn without_query(url: &Url) -> String {
    let path = url.path_and_query.split('?').next().unwrap_or("");
    format!("{}{path}", url.origin())
}

/// The digest a PUT stores its body under: `digest=` of an upload, or a
/// manifest's path.
fn sent_digest(url: &Url) -> Option<String> {
    let (path, query) = url
        .path_and_query
        .split_once('?')
        .unwrap_or((&url.path_and_query, ""));
    query
        .split('&')
        .find_map(|kv| kv.strip_prefix("digest="))
        .map(str::to_string)
        .or_else(|| {
            let last = path.rsplit('/').next()?;
            (path.contains("/manifests/") && Digest::parse(last).is_ok()).then(|| last.to_string())
        })
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}
