//! The state one client shares across its operations (as quinn-proto's
//! `Endpoint` holds what its connections share): configuration, credentials,
//! tokens obtained, the cache, the clock as last told, and the answers that
//! arrived for requests in flight.
//!
//! The client is where a driver hands its inputs: the time
//! ([`Client::set_now`]) and every answer ([`Client::handle_response`]).
//! Operations take the answers to their own requests when polled, so an
//! operation composing others never routes a response.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use crate::adaptive::{AdaptiveLimits, Place};
use crate::auth::{AuthScheme, Challenge, Credential};
use crate::budget::Budget;
use crate::cache::Cache;
use crate::http::{Request, RequestId, Response, Scheme, TransportError, Url};
use crate::policy::{Admission, HostPolicy};
use crate::reference::{is_docker_hub, DOCKER_HUB, DOCKER_HUB_API_HOST};
use crate::retry::RetryPolicy;
use crate::time::Instant;
use crate::upload::{UploadRule, UploadRules, SMALLEST_CHUNK};

/// How a client is set up.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Sent as `User-Agent` on every request.
    pub user_agent: String,
    /// Credentials by registry host (Docker Hub under any of its aliases).
    pub credentials: BTreeMap<String, Credential>,
    /// Registries reached over plain HTTP, besides `localhost` and `127.0.0.1`, which always are.
    pub insecure_registries: Vec<String>,
    /// Whether to keep the registry cache (on by default).
    pub cache: bool,
    /// How many requests one operation keeps in flight at most (a driver
    /// bounds the whole of nested operations by it too).
    pub concurrency: usize,
    /// When and how long to retry.
    pub retry: RetryPolicy,
    /// A Docker Hub read-through mirror: reads of Docker Hub go there (its
    /// 404 is final), writes still go to Docker Hub.
    pub docker_hub_proxy: Option<Url>,
    /// Rate limits and allowed hosts for the driver to apply before each
    /// request ([`Client::admit`]), when the host applies none of its own.
    pub policy: Option<HostPolicy>,
    /// How blobs go up to each registry: whole, or in chunks.
    pub uploads: UploadRules,
}

/// An answer as a driver hands it over: a response, or why there is none.
pub type Answer = std::result::Result<Response, TransportError>;

/// Requests in flight per operation when not configured.
pub const DEFAULT_CONCURRENCY: usize = 8;

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            user_agent: format!("ocirelay-core/{}", env!("CARGO_PKG_VERSION")),
            credentials: BTreeMap::new(),
            insecure_registries: Vec::new(),
            cache: true,
            concurrency: DEFAULT_CONCURRENCY,
            retry: RetryPolicy::default(),
            docker_hub_proxy: None,
            policy: None,
            uploads: UploadRules::default(),
        }
    }
}

/// A value never shown: `Debug` prints `<redacted>`.
#[derive(Clone, PartialEq, Eq)]
struct Secret(String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Shared state of one client. Its `Debug` shows no token.
#[derive(Debug)]
pub struct Client {
    config: ClientConfig,
    /// `Authorization` values by (registry host, scope), with when they
    /// stop being used (`None`: never, for tokens configured by the user).
    tokens: HashMap<(String, String), (Secret, Option<Instant>)>,
    /// The driver's clock, as last told (time is an input here).
    now: Instant,
    /// Registries that asked for Basic authentication.
    basic_hosts: HashSet<String>,
    /// The last Bearer challenge of each registry, without its scope: a
    /// token for a new scope is asked for before the request, sparing the
    /// 401 round trip.
    challenges: HashMap<String, Challenge>,
    next_id: u64,
    /// Requests sent and not yet answered, with the authority each went to.
    in_flight: HashMap<RequestId, String>,
    /// Answers that arrived, until the operation that asked takes them.
    answers: HashMap<RequestId, Answer>,
    /// The configured policy's state (buckets, hosts learned).
    policy: Option<HostPolicy>,
    /// With a policy: how many requests each registry gets at once.
    adaptive: Option<AdaptiveLimits>,
    /// The places requests in flight hold among their registry's.
    places: HashMap<RequestId, Place>,
    /// The largest request body each registry took, learnt from a 413.
    body_limits: HashMap<String, u64>,
    /// Held bodies an operation gave up on, for the driver to drop.
    released: Vec<RequestId>,
    /// What this client has already seen.
    pub(crate) cache: Cache,
}

impl Client {
    /// A client with the given configuration.
    pub fn new(mut config: ClientConfig) -> Self {
        let mut policy = config.policy.take();
        // A Docker Hub mirror spends Docker Hub's rate.
        if let (Some(p), Some(mirror)) = (policy.as_mut(), &config.docker_hub_proxy) {
            p.charge_to(&mirror.authority, DOCKER_HUB);
        }
        // A spent budget is waited for as long as a retry may wait.
        if let Some(p) = policy.as_mut() {
            p.set_budget_wait(config.retry.deadline);
        }
        let adaptive = policy
            .as_ref()
            .map(|_| AdaptiveLimits::new(config.concurrency.max(1)));
        Client {
            policy,
            adaptive,
            places: HashMap::new(),
            cache: Cache::new(config.cache),
            config,
            tokens: HashMap::new(),
            now: Instant::ZERO,
            basic_hosts: HashSet::new(),
            challenges: HashMap::new(),
            next_id: 0,
            in_flight: HashMap::new(),
            answers: HashMap::new(),
            body_limits: HashMap::new(),
            released: Vec::new(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// Requests one operation, and a driver in all, may keep in flight (at least 1).
    pub fn concurrency(&self) -> usize {
        self.config.concurrency.max(1)
    }

    /// How blobs go up to registry `host`: its rule, with what its 413s
    /// taught (a chunk no larger than the largest body it takes).
    pub fn upload_rule(&self, host: &str) -> UploadRule {
        let mut rule = self.config.uploads.for_registry(host);
        if let Some(&limit) = self.body_limits.get(host) {
            rule.chunk_size = rule.chunk_size.min(limit);
            rule.monolithic_up_to = rule.monolithic_up_to.min(limit);
        }
        rule
    }

    /// Registry `host` refused a request body of `len` bytes as too large
    /// (413): its bodies are kept to half that from now on (whole MiB, at
    /// least [`SMALLEST_CHUNK`]). `false`: nothing smaller is tried (the
    /// refused body was of that size already).
    pub fn learn_body_limit(&mut self, host: &str, len: u64) -> bool {
        if len <= SMALLEST_CHUNK {
            return false;
        }
        let half = (len / 2) & !(SMALLEST_CHUNK - 1);
        let limit = half.max(SMALLEST_CHUNK);
        let known = self.body_limits.entry(host.to_string()).or_insert(u64::MAX);
        *known = (*known).min(limit);
        true
    }

    /// Tells the client what time it is (the driver's monotonic clock; it
    /// never goes back): tokens expire and waits end by it. A driver calls
    /// it before polling.
    pub fn set_now(&mut self, now: Instant) {
        self.now = self.now.max(now);
    }

    /// The time as last told.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Hands over the answer to request `id` (or why there is none); the
    /// operation that sent it takes it when next polled. Answers to requests
    /// not in flight (forgotten ones) are dropped.
    pub fn handle_response(&mut self, id: RequestId, answer: Answer) {
        let Some(authority) = self.in_flight.remove(&id) else {
            return;
        };
        if let (Some(adaptive), Some(place)) = (self.adaptive.as_mut(), self.places.remove(&id)) {
            if let Ok(response) = &answer {
                adaptive.answered(&authority, place, response.status);
            }
            adaptive.release(&authority);
        }
        if let (Some(policy), Ok(response)) = (self.policy.as_mut(), &answer) {
            let challenges = response.headers.get_all("www-authenticate");
            let location = response.headers.get("location");
            policy.learn(&authority, response.status, challenges, location, self.now);
            let stated = Budget::from_headers(|name| response.headers.get(name));
            if let Some(stated) = stated {
                policy.learn_budget(&authority, stated, self.now);
            }
        }
        self.answers.insert(id, answer);
    }

    /// The held bodies operations gave up on since last asked (a copy that
    /// failed between reading its source and sending it): the driver drops
    /// them, and the connections and places they hold.
    pub fn take_released(&mut self) -> Vec<RequestId> {
        std::mem::take(&mut self.released)
    }

    /// Gives up the body held for request `id` (see [`Client::take_released`]).
    pub(crate) fn release(&mut self, id: RequestId) {
        self.released.push(id);
    }

    /// Forgets every request in flight and every answer not taken: a driver
    /// that stops running an operation (finished, or given up) calls it, so
    /// nothing is kept for operations that are gone.
    pub fn forget_requests(&mut self) {
        if let Some(adaptive) = self.adaptive.as_mut() {
            for (id, _) in self.places.drain() {
                if let Some(authority) = self.in_flight.get(&id) {
                    adaptive.release(authority);
                }
            }
        }
        self.in_flight.clear();
        self.answers.clear();
    }

    /// Numbers `request` and records it as in flight; the caller sends it
    /// as `Output::Send(id, request)`.
    pub(crate) fn track(&mut self, request: &Request) -> RequestId {
        self.next_id += 1;
        let id = RequestId(self.next_id);
        self.in_flight.insert(id, request.url.authority.clone());
        id
    }

    /// The answer to request `id`, once it arrived.
    pub(crate) fn take_answer(&mut self, id: RequestId) -> Option<Answer> {
        self.answers.remove(&id)
    }

    /// The URL of `path` on registry `host` (Docker Hub's API host for
    /// `docker.io`; plain HTTP for loopback and insecure registries).
    pub fn registry_url(&self, host: &str, path: &str) -> Url {
        let authority = if is_docker_hub(host) {
            DOCKER_HUB_API_HOST
        } else {
            host
        };
        Url {
            scheme: self.scheme_for(authority),
            authority: authority.to_string(),
            path_and_query: path.to_string(),
        }
    }

    fn scheme_for(&self, authority: &str) -> Scheme {
        let host = host_without_port(authority);
        // Host names are case-insensitive: `LOCALHOST:5000` is local too.
        let insecure = host.eq_ignore_ascii_case("localhost")
            || host == "127.0.0.1"
            || host == "[::1]"
            || self
                .config
                .insecure_registries
                .iter()
                .any(|r| r.eq_ignore_ascii_case(authority) || r.eq_ignore_ascii_case(host));
        if insecure {
            Scheme::Http
        } else {
            Scheme::Https
        }
    }

    /// The credential configured for a registry (Docker Hub aliases share one).
    pub fn credential(&self, host: &str) -> Option<&Credential> {
        if let Some(c) = self.config.credentials.get(host) {
            return Some(c);
        }
        if is_docker_hub(host) {
            return self
                .config
                .credentials
                .iter()
                .find(|(h, _)| is_docker_hub(h))
                .map(|(_, c)| c);
        }
        None
    }

    /// The `Authorization` value to send to `host` for `scope`, if one is known.
    pub(crate) fn authorization(&self, host: &str, scope: &str) -> Option<String> {
        let live = |(_, until): &&(Secret, Option<Instant>)| until.is_none_or(|u| u > self.now);
        if let Some((t, _)) = self
            .tokens
            .get(&(host.to_string(), scope.to_string()))
            .filter(live)
        {
            return Some(t.0.clone());
        }
        // A token for more (pull,push) serves less (pull).
        let wider = self
            .tokens
            .iter()
            .find(|((h, s), t)| h == host && scopes_cover(s, scope) && live(t));
        if let Some((_, (t, _))) = wider {
            return Some(t.0.clone());
        }
        if self.basic_hosts.contains(host) {
            if let Some(Credential::Basic { username, password }) = self.credential(host) {
                return Some(Credential::basic_header(username, password));
            }
        }
        None
    }

    /// Takes a place for request `id` among its registry's requests at
    /// once (with a policy, the limit learnt from the registry's 429s and
    /// 503s; see [`AdaptiveLimits`]): `false` when it has none free now, so
    /// the driver starts it once another answer is in.
    pub fn take_place(&mut self, id: RequestId, request: &Request) -> bool {
        let Some(adaptive) = self.adaptive.as_mut() else {
            return true;
        };
        match adaptive.try_acquire(&request.url.authority) {
            Some(place) => {
                self.places.insert(id, place);
                true
            }
            None => false,
        }
    }

    /// What the configured policy says of sending `request` now (no
    /// policy: go). A driver asks before every request it starts.
    pub fn admit(&mut self, request: &Request) -> Admission {
        let Some(p) = self.policy.as_mut() else {
            return Admission::Go;
        };
        let (method, url) = (request.method.as_str(), &request.url);
        let path = url.path_and_query.split('?').next().unwrap_or_default();
        p.admit_request(&url.authority, method, path, self.now)
    }

    /// Keeps a token for `lifetime` (renewed a little early: a tenth of its
    /// life, at most 10 s); `None` keeps it for good.
    pub(crate) fn store_token(
        &mut self,
        host: &str,
        scope: &str,
        authorization: String,
        lifetime: Option<Duration>,
    ) {
        let until = lifetime.map(|l| self.now + (l - (l / 10).min(Duration::from_secs(10))));
        self.tokens.insert(
            (host.to_string(), scope.to_string()),
            (Secret(authorization), until),
        );
    }

    pub(crate) fn mark_basic(&mut self, host: &str) {
        self.basic_hosts.insert(host.to_string());
    }

    /// Remembers `host`'s Bearer challenge (its realm and service; the
    /// scope and error are the request's own and are dropped).
    pub(crate) fn remember_challenge(&mut self, host: &str, challenge: &Challenge) {
        if challenge.scheme != AuthScheme::Bearer {
            return;
        }
        let mut remembered = challenge.clone();
        remembered
            .params
            .retain(|name, _| name != "scope" && name != "error");
        self.challenges.insert(host.to_string(), remembered);
    }

    /// The Bearer challenge `host` answered with last, if any.
    pub(crate) fn remembered_challenge(&self, host: &str) -> Option<&Challenge> {
        self.challenges.get(host)
    }
}

/// Validates a Docker Hub mirror URL (`DOCKERHUB_PUBLIC_PROXY`): `http` or
/// `https`, a host, and no path, query or user info.
pub fn parse_docker_hub_proxy(input: &str) -> crate::error::Result<Url> {
    let bad =
        |why: &str| crate::error::Error::InvalidInput(format!("Docker Hub proxy {input:?}: {why}"));
    let url = Url::parse(input.trim_end_matches('/'))
        .map_err(|_| bad("must be an http:// or https:// URL"))?;
    if url.path_and_query != "/" {
        return Err(bad("must have no path or query"));
    }
    Ok(url)
}

/// Whether the scopes of `granted` (space-separated `type:name:actions`)
/// include every action of `wanted`.
pub(crate) fn scopes_cover(granted: &str, wanted: &str) -> bool {
    let split = |s: &str| -> Vec<(String, String)> {
        s.split(' ')
            .filter_map(|scope| {
                let (kind_name, actions) = scope.rsplit_once(':')?;
                Some(
                    actions
                        .split(',')
                        .map(|a| (kind_name.to_string(), a.to_string()))
                        .collect::<Vec<_>>(),
                )
            })
            .flatten()
            .collect()
    };
    let have = split(granted);
    let want = split(wanted);
    !want.is_empty() && want.iter().all(|w| have.contains(w))
}

/// `host` of `host:port` (and `[v6]` of `[v6]:port`).
pub fn host_without_port(authority: &str) -> &str {
    if authority.starts_with('[') {
        return authority.split_inclusive(']').next().unwrap_or(authority);
    }
    authority.split(':').next().unwrap_or(authority)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn with_a_policy_a_registry_that_says_429_gets_fewer_requests_at_once() {
        let mut c = Client::new(ClientConfig {
            policy: Some(HostPolicy::new(Vec::new())),
            concurrency: 4,
            ..Default::default()
        });
        let url = c.registry_url("r.example", "/v2/a/blobs/sha256:x");
        let request = Request {
            method: crate::http::Method::Get,
            url,
            headers: crate::http::Headers::new(),
            body: crate::http::RequestBody::Empty,
            body_mode: crate::http::BodyMode::Buffer(0),
        };
        let ids: Vec<RequestId> = (0..5).map(|_| c.track(&request)).collect();
        for id in &ids[..4] {
            assert!(c.take_place(*id, &request));
        }
        assert!(!c.take_place(ids[4], &request), "4 at once, as configured");
        let busy = Response {
            status: 429,
            headers: crate::http::Headers::new(),
            body: crate::http::ResponseBody::Bytes(Default::default()),
        };
        c.handle_response(ids[0], Ok(busy));
        // Half of the 4 in flight: 2, of which 3 are still out.
        c.handle_response(ids[1], Err(TransportError::transient("gone")));
        assert!(!c.take_place(ids[4], &request));
        c.handle_response(ids[2], Err(TransportError::transient("gone")));
        assert!(c.take_place(ids[4], &request), "1 out, room for a second");
        // Without a policy (our host limits in its hook): no limit here.
        let mut free = Client::new(ClientConfig::default());
        let id = free.track(&request);
        assert!((0..100).all(|_| free.take_place(id, &request)));
    }

    #[test]
    fn schemes_and_docker_hub_host() {
        let c = Client::new(ClientConfig {
            insecure_registries: vec!["plain.example:5000".into()],
            ..Default::default()
        });
        assert_eq!(
            c.registry_url("localhost:5000", "/v2/").to_string(),
            "http://localhost:5000/v2/"
        );
        assert_eq!(c.registry_url("127.0.0.1:1", "/v2/").scheme, Scheme::Http);
        assert_eq!(
            c.registry_url("plain.example:5000", "/").scheme,
            Scheme::Http
        );
        assert_eq!(c.registry_url("plain.example", "/").scheme, Scheme::Https);
        // Host names in any case.
        assert_eq!(c.registry_url("LocalHost:5000", "/").scheme, Scheme::Http);
        assert_eq!(
            c.registry_url("Plain.Example:5000", "/").scheme,
            Scheme::Http
        );
        assert_eq!(
            c.registry_url("docker.io", "/v2/").to_string(),
            "https://registry-1.docker.io/v2/"
        );
    }

    #[test]
    fn tokens_expire_with_the_clock_the_driver_gives() {
        let at = |secs| Instant::from_origin(Duration::from_secs(secs));
        let mut c = Client::new(ClientConfig::default());
        c.set_now(at(100));
        c.store_token(
            "h",
            "repository:a:pull",
            "Bearer t".into(),
            Some(Duration::from_secs(300)),
        );
        c.store_token("h", "repository:b:pull", "Bearer forever".into(), None);
        assert_eq!(
            c.authorization("h", "repository:a:pull").as_deref(),
            Some("Bearer t")
        );
        c.set_now(at(100 + 289));
        assert!(c.authorization("h", "repository:a:pull").is_some());
        c.set_now(at(100 + 290));
        assert_eq!(
            c.authorization("h", "repository:a:pull"),
            None,
            "renewed 10 s before it expires"
        );
        assert!(
            c.authorization("h", "repository:b:pull").is_some(),
            "configured tokens do not expire"
        );
        c.set_now(at(5));
        assert_eq!(
            c.authorization("h", "repository:a:pull"),
            None,
            "the clock never goes back"
        );

        // A short-lived token is renewed a tenth of its life early.
        let mut c = Client::new(ClientConfig::default());
        c.set_now(at(100));
        let short = Some(Duration::from_secs(60));
        c.store_token("h", "repository:a:pull", "Bearer s".into(), short);
        c.set_now(at(153));
        assert!(c.authorization("h", "repository:a:pull").is_some());
        c.set_now(at(154));
        assert!(c.authorization("h", "repository:a:pull").is_none());
    }

    #[test]
    fn a_token_for_ever_is_kept_without_overflow() {
        let mut c = Client::new(ClientConfig::default());
        c.set_now(Instant::from_origin(Duration::from_secs(1000)));
        let forever = crate::auth::parse_token_response(
            "realm",
            br#"{"token":"t","expires_in":18446744073709551615}"#,
        )
        .unwrap();
        c.store_token("h", "s", "Bearer t".into(), Some(forever.lifetime));
        // A century later, still kept.
        c.set_now(Instant::from_origin(Duration::from_secs(
            1000 + 3_200_000_000,
        )));
        assert!(c.authorization("h", "s").is_some());
    }

    #[test]
    fn a_clients_debug_shows_no_token() {
        let mut c = Client::new(ClientConfig::default());
        c.store_token("h", "s", "Bearer s3cret".into(), None);
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("s3cret") && shown.contains("<redacted>"),
            "{shown}"
        );
    }

    #[test]
    fn a_token_serves_only_its_own_registry() {
        let mut c = Client::new(ClientConfig::default());
        let wide = "repository:a:pull,push";
        c.store_token("h", wide, "Bearer t".into(), None);
        assert!(
            c.authorization("h", "repository:a:pull").is_some(),
            "wider serves narrower"
        );
        assert_eq!(c.authorization("other", "repository:a:pull"), None);
        assert_eq!(c.authorization("other", wide), None);
    }

    #[test]
    fn answers_wait_for_their_request_and_strays_are_dropped() {
        let mut c = Client::new(ClientConfig::default());
        let request = Request {
            method: crate::http::Method::Get,
            url: Url::parse("http://localhost:5000/v2/").unwrap(),
            headers: crate::http::Headers::new(),
            body: crate::http::RequestBody::Empty,
            body_mode: crate::http::BodyMode::Buffer(0),
        };
        let (a, b) = (c.track(&request), c.track(&request));
        assert_ne!(a, b, "ids are unique per client");
        c.handle_response(RequestId(999), Err(TransportError::transient("stray")));
        assert!(
            c.take_answer(RequestId(999)).is_none(),
            "not in flight: dropped"
        );
        c.handle_response(b, Err(TransportError::transient("reset")));
        assert!(c.take_answer(a).is_none(), "not answered yet");
        assert!(c.take_answer(b).is_some());
        assert!(c.take_answer(b).is_none(), "taken once");
        c.forget_requests();
        c.handle_response(a, Err(TransportError::transient("late")));
        assert!(c.take_answer(a).is_none(), "forgotten");
    }

    #[test]
    fn wider_scopes_cover_narrower_ones() {
        assert!(scopes_cover("repository:a:pull,push", "repository:a:pull"));
        assert!(scopes_cover(
            "repository:a:pull,push repository:b:pull",
            "repository:b:pull"
        ));
        assert!(!scopes_cover("repository:a:pull", "repository:a:pull,push"));
        assert!(!scopes_cover("repository:a:pull", "repository:ab:pull"));
        assert!(!scopes_cover("repository:a:pull", ""));
    }

    #[test]
    fn docker_hub_proxy_urls() {
        let u = parse_docker_hub_proxy("https://mirror.example:5000/").unwrap();
        assert_eq!(
            (u.scheme, u.authority.as_str()),
            (Scheme::Https, "mirror.example:5000")
        );
        assert_eq!(
            parse_docker_hub_proxy("http://127.0.0.1:1").unwrap().scheme,
            Scheme::Http
        );
        for bad in [
            "mirror.example",
            "ftp://m",
            "https://m/v2",
            "https://m/?x=1",
            "https://user@m",
            "",
        ] {
            let e = parse_docker_hub_proxy(bad).unwrap_err();
            assert!(e.to_string().contains(&format!("{bad:?}")), "{bad}: {e}");
        }
    }

    #[test]
    fn docker_hub_credentials_under_any_alias() {
        let mut creds = BTreeMap::new();
        creds.insert(
            "index.docker.io".to_string(),
            Credential::Bearer("t".into()),
        );
        let c = Client::new(ClientConfig {
            credentials: creds,
            ..Default::default()
        });
        assert!(c.credential("docker.io").is_some());
        assert!(c.credential("registry-1.docker.io").is_some());
        assert!(c.credential("quay.io").is_none());
    }
}
