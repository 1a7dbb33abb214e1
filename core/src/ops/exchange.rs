//! One logical registry request: sends it, answers authentication
//! challenges (Bearer token or Basic), follows redirects, and yields the
//! final response. Every other operation is built from exchanges.

use crate::auth::{parse_token_response, AuthScheme, Challenge, Credential};
use crate::client::Client;
use crate::error::Error;
use crate::http::{
    BodyMode, Headers, Method, Request, RequestBody, RequestId, Response, TransportError, Url,
    SMALL_BODY_LIMIT,
};
use crate::ops::{Operation, Output};
use crate::reference::is_docker_hub;
use crate::retry::Attempt;

use std::time::Duration;

/// Redirects followed before giving up.
const MAX_REDIRECTS: u8 = 5;

/// The final answer of an exchange and the id of the request it answers
/// (a driver holding a streamed body keeps it under that id).
#[derive(Debug)]
pub struct Exchanged {
    /// The request whose answer this is.
    pub id: RequestId,
    /// The answer.
    pub response: Response,
}

/// What to send.
#[derive(Debug, Clone)]
pub struct ExchangeSpec {
    /// Registry host as in the reference (`docker.io`, `localhost:5000`).
    pub registry: String,
    /// Token scopes, e.g. `repository:foo:pull` (a mount also needs `pull`
    /// on its source repository).
    pub scopes: Vec<String>,
    /// Method.
    pub method: Method,
    /// Where: a path on the registry, or an absolute URL it handed out
    /// (an upload's `Location`).
    pub target: Target,
    /// `Accept`, when the endpoint needs one.
    pub accept: Option<&'static str>,
    /// `Content-Type` of the body, when there is one.
    pub content_type: Option<String>,
    /// The request body.
    pub body: RequestBody,
    /// What to do with the response body.
    pub body_mode: BodyMode,
}

/// Where an exchange sends its request.
#[derive(Debug, Clone)]
pub enum Target {
    /// Path and query on the registry.
    Path(String),
    /// An absolute URL (resolved already).
    Url(Url),
}

impl ExchangeSpec {
    /// A GET or HEAD of `path` on `registry` with `scopes`, no body.
    pub fn read(registry: &str, scopes: Vec<String>, method: Method, path: String) -> Self {
        ExchangeSpec {
            registry: registry.to_string(),
            scopes,
            method,
            target: Target::Path(path),
            accept: None,
            content_type: None,
            body: RequestBody::Empty,
            body_mode: BodyMode::Buffer(SMALL_BODY_LIMIT),
        }
    }
}

#[derive(Debug)]
enum State {
    Ready,
    AwaitingMain(RequestId, SentAuth),
    TokenNeeded {
        url: Url,
        challenged: Exchanged,
    },
    AwaitingToken {
        id: RequestId,
        realm: String,
        challenged: Exchanged,
        with_credentials: bool,
    },
    Finished,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SentAuth {
    None,
    Basic,
    Bearer,
}

/// The exchange state machine.
#[derive(Debug)]
pub struct Exchange {
    spec: ExchangeSpec,
    /// The registry's API authority: credentials go there and nowhere else.
    registry_authority: String,
    /// The scopes as one token-cache key.
    scope_key: String,
    url: Url,
    state: State,
    redirects: u8,
    fresh_token: bool,
    /// Tries of the main request so far, the waits asked for between
    /// them, and the wait before the next one.
    tries: u32,
    waited: Duration,
    next_delay: Option<Duration>,
    outcome: Option<crate::error::Result<Exchanged>>,
}

impl Exchange {
    /// An exchange for `spec` (nothing is sent until polled).
    pub fn new(client: &Client, spec: ExchangeSpec) -> Self {
        let registry_authority = client.registry_url(&spec.registry, "/").authority;
        let url = match (&spec.target, client.config().docker_hub_proxy.as_ref()) {
            // Docker Hub reads go to its mirror; credentials stay with
            // Docker Hub (the mirror is another host).
            (Target::Path(path), Some(mirror))
                if is_docker_hub(&spec.registry)
                    && matches!(spec.method, Method::Get | Method::Head) =>
            {
                Url {
                    path_and_query: path.clone(),
                    ..mirror.clone()
                }
            }
            (Target::Path(path), _) => client.registry_url(&spec.registry, path),
            (Target::Url(url), _) => url.clone(),
        };
        Exchange {
            scope_key: spec.scopes.join(" "),
            registry_authority,
            url,
            spec,
            state: State::Ready,
            redirects: 0,
            fresh_token: false,
            tries: 0,
            waited: Duration::ZERO,
            next_delay: None,
            outcome: None,
        }
    }

    /// Whether the body can be sent again (a streamed one cannot).
    fn replayable(&self) -> bool {
        !matches!(self.spec.body, RequestBody::Transfer { .. })
    }

    /// Schedules another try when the policy allows one.
    fn retry(&mut self, client: &Client, attempt: Attempt<'_>) -> bool {
        if !self.replayable() {
            return false;
        }
        match client
            .config()
            .retry
            .decide(attempt, self.tries, self.waited)
        {
            Some(delay) => {
                self.waited += delay;
                self.next_delay = Some(delay);
                self.state = State::Ready;
                true
            }
            None => false,
        }
    }

    fn finish(&mut self, outcome: crate::error::Result<Exchanged>) {
        self.state = State::Finished;
        self.outcome = Some(outcome);
    }

    fn on_registry(&self) -> bool {
        self.url.authority == self.registry_authority
    }

    fn main_response(
        &mut self,
        client: &mut Client,
        id: RequestId,
        sent: SentAuth,
        response: Response,
    ) {
        let status = response.status;
        let attempt = Attempt::Status {
            status,
            retry_after: response.headers.get("retry-after"),
            date: response.headers.get("date"),
        };
        if matches!(status, 429 | 500 | 502 | 503 | 504) && self.retry(client, attempt) {
            return;
        }
        // A streamed body cannot be sent twice: its 401 is final (the
        // operation gets its token on an earlier request of the same scopes).
        let replayable = self.replayable();
        if status == 401 && self.on_registry() && replayable {
            let challenge = response
                .headers
                .get_all("www-authenticate")
                .find_map(Challenge::parse);
            let exchanged = Exchanged { id, response };
            let Some(challenge) = challenge else {
                return self.finish(Ok(exchanged));
            };
            let credential = client.credential(&self.spec.registry).cloned();
            match challenge.scheme {
                AuthScheme::Bearer if !self.fresh_token => {
                    if let Some(Credential::Bearer(token)) = credential {
                        client.store_token(
                            &self.registry_authority,
                            &self.scope_key,
                            format!("Bearer {token}"),
                            None,
                        );
                        self.fresh_token = true;
                        self.state = State::Ready;
                        return;
                    }
                    match challenge.token_url(&self.spec.scopes) {
                        Ok(url) => {
                            self.state = State::TokenNeeded {
                                url,
                                challenged: exchanged,
                            }
                        }
                        Err(e) => self.finish(Err(Error::Protocol {
                            subject: self.registry_authority.clone(),
                            detail: format!("unusable authentication challenge: {e}"),
                        })),
                    }
                }
                AuthScheme::Basic => match credential {
                    Some(Credential::Basic { .. }) if sent != SentAuth::Basic => {
                        client.mark_basic(&self.registry_authority);
                        self.state = State::Ready;
                    }
                    Some(Credential::Basic { username, .. }) => {
                        self.finish(Err(Error::Authentication {
                            host: self.spec.registry.clone(),
                            reason: format!(
                                "the registry refused the credentials of user {username:?} (401)"
                            ),
                        }))
                    }
                    _ => self.finish(Ok(exchanged)),
                },
                // A fresh token that still gets 401 means this identity may
                // not see the repository: the caller decides what that means.
                _ => self.finish(Ok(exchanged)),
            }
            return;
        }
        let redirect = matches!(status, 301 | 302 | 303 | 307 | 308)
            && matches!(self.spec.method, Method::Get | Method::Head);
        if redirect {
            if let Some(location) = response.headers.get("location") {
                self.redirects += 1;
                if self.redirects > MAX_REDIRECTS {
                    return self.finish(Err(Error::Protocol {
                        subject: self.url.to_string(),
                        detail: format!("more than {MAX_REDIRECTS} redirects"),
                    }));
                }
                match self.url.join(location) {
                    Ok(next) => {
                        self.url = next;
                        self.state = State::Ready;
                    }
                    Err(e) => self.finish(Err(Error::Protocol {
                        subject: self.url.to_string(),
                        detail: format!("bad redirect: {e}"),
                    })),
                }
                return;
            }
        }
        self.finish(Ok(Exchanged { id, response }));
    }

    fn token_response(
        &mut self,
        client: &mut Client,
        realm: String,
        challenged: Exchanged,
        with_credentials: bool,
        response: Response,
    ) {
        match response.status {
            200..=299 => match parse_token_response(&realm, response.bytes()) {
                Ok(token) => {
                    client.store_token(
                        &self.registry_authority,
                        &self.scope_key,
                        format!("Bearer {}", token.value),
                        Some(token.lifetime),
                    );
                    self.fresh_token = true;
                    self.state = State::Ready;
                }
                Err(e) => self.finish(Err(e)),
            },
            401 | 403 if with_credentials => self.finish(Err(Error::Authentication {
                host: self.spec.registry.clone(),
                reason: format!(
                    "token server {realm} refused the credentials ({})",
                    response.status
                ),
            })),
            // Anonymous and refused a token: the registry's 401 stands.
            401 | 403 => self.finish(Ok(challenged)),
            status => {
                let e = crate::distribution::RegistryError::parse(response.bytes());
                self.finish(Err(Error::Registry {
                    subject: format!("token server {realm}"),
                    status,
                    code: e.code,
                    message: e.message,
                }))
            }
        }
    }
}

impl Operation for Exchange {
    type Outcome = Exchanged;

    fn poll_output(&mut self, client: &mut Client) -> Output<Exchanged> {
        match std::mem::replace(&mut self.state, State::Finished) {
            State::Ready => {
                let id = client.next_request_id();
                let mut headers = Headers::new();
                headers.set("User-Agent", client.config().user_agent.clone());
                if let Some(accept) = self.spec.accept {
                    headers.set("Accept", accept);
                }
                if let Some(content_type) = &self.spec.content_type {
                    headers.set("Content-Type", content_type.clone());
                }
                match self.spec.body.len() {
                    Some(len) => headers.set("Content-Length", len.to_string()),
                    // A write without a body says so, rather than leaving the
                    // transport to frame an empty body as chunked.
                    None if !matches!(self.spec.method, Method::Get | Method::Head) => {
                        headers.set("Content-Length", "0")
                    }
                    None => {}
                }
                let mut sent = SentAuth::None;
                // Credentials and tokens never leave the registry's host (a
                // redirect to blob storage elsewhere goes without them).
                if self.on_registry() {
                    if let Some(auth) =
                        client.authorization(&self.registry_authority, &self.scope_key)
                    {
                        sent = if auth.starts_with("Basic ") {
                            SentAuth::Basic
                        } else {
                            SentAuth::Bearer
                        };
                        headers.set("Authorization", auth);
                    }
                }
                self.tries += 1;
                self.state = State::AwaitingMain(id, sent);
                Output::Send(
                    id,
                    Request {
                        method: self.spec.method,
                        url: self.url.clone(),
                        headers,
                        body: self.spec.body.clone(),
                        body_mode: self.spec.body_mode,
                        not_before: self.next_delay.take(),
                    },
                )
            }
            State::TokenNeeded { url, challenged } => {
                let id = client.next_request_id();
                let mut headers = Headers::new();
                headers.set("User-Agent", client.config().user_agent.clone());
                let mut with_credentials = false;
                if let Some(Credential::Basic { username, password }) =
                    client.credential(&self.spec.registry)
                {
                    headers.set(
                        "Authorization",
                        Credential::basic_header(username, password),
                    );
                    with_credentials = true;
                }
                // The realm without its query names the token server in errors.
                let full = url.to_string();
                let realm = full.split('?').next().unwrap_or(&full).to_string();
                self.state = State::AwaitingToken {
                    id,
                    realm,
                    challenged,
                    with_credentials,
                };
                Output::Send(
                    id,
                    Request {
                        method: Method::Get,
                        url,
                        headers,
                        body: RequestBody::Empty,
                        body_mode: BodyMode::Buffer(SMALL_BODY_LIMIT),
                        not_before: None,
                    },
                )
            }
            State::Finished => match self.outcome.take() {
                Some(outcome) => Output::Done(outcome),
                None => Output::Wait,
            },
            waiting => {
                self.state = waiting;
                Output::Wait
            }
        }
    }

    fn handle_response(
        &mut self,
        client: &mut Client,
        id: RequestId,
        response: Result<Response, TransportError>,
    ) {
        match std::mem::replace(&mut self.state, State::Finished) {
            State::AwaitingMain(expected, sent) if expected == id => match response {
                Ok(r) => self.main_response(client, id, sent, r),
                Err(e) => {
                    if e.permanent || !self.retry(client, Attempt::ConnectionFailed) {
                        self.finish(Err(Error::Transport {
                            host: self.url.authority.clone(),
                            message: e.message,
                        }))
                    }
                }
            },
            State::AwaitingToken {
                id: expected,
                realm,
                challenged,
                with_credentials,
            } if expected == id => match response {
                Ok(r) => self.token_response(client, realm, challenged, with_credentials, r),
                Err(e) => self.finish(Err(Error::Transport {
                    host: realm,
                    message: e.message,
                })),
            },
            // Not ours: put the state back untouched.
            other => self.state = other,
        }
    }
}
