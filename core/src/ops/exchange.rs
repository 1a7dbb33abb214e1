//! One logical registry request: sends it, answers authentication
//! challenges (Bearer token or Basic), follows redirects, and yields the
//! final response. Every other operation is built from exchanges.

use crate::auth::{parse_token_response, AuthScheme, Challenge, Credential};
use crate::client::{scopes_cover, Client};
use crate::error::Error;
use crate::http::{
    BodyMode, Headers, Method, Request, RequestBody, RequestId, Response, TransportError, Url,
    SMALL_BODY_LIMIT,
};
use crate::ops::{Operation, Output};
use crate::reference::is_docker_hub;
use crate::retry::{Attempt, Retries};

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
    /// Asks for the body from this byte on (`Range: bytes=N-`): a resumed read.
    pub range_from: Option<u64>,
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
            range_from: None,
            body: RequestBody::Empty,
            body_mode: BodyMode::Buffer(SMALL_BODY_LIMIT),
        }
    }
}

/// A token to obtain: from `challenge`'s realm, in answer to the
/// registry's 401 (`challenged`), or ahead of the request (`None`) from the
/// challenge the registry sent last time.
#[derive(Debug)]
struct TokenWanted {
    challenge: Challenge,
    challenged: Option<Exchanged>,
}

#[derive(Debug)]
enum State {
    Ready,
    AwaitingMain(RequestId, SentAuth),
    TokenNeeded(Box<TokenWanted>),
    AwaitingToken {
        id: RequestId,
        wanted: Box<TokenWanted>,
        /// The realm without its query: names the token server in errors.
        realm: String,
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
    /// A token was obtained in answer to this exchange's 401: another 401 is final.
    fresh_token: bool,
    /// A token was asked for ahead of the request (granted or not).
    asked_ahead: bool,
    main_retries: Retries,
    token_retries: Retries,
    /// The wait before the next request (a retry).
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
            asked_ahead: false,
            main_retries: Retries::default(),
            token_retries: Retries::default(),
            next_delay: None,
            outcome: None,
        }
    }

    /// Whether the body can be sent again (a streamed one cannot).
    fn replayable(&self) -> bool {
        !matches!(self.spec.body, RequestBody::Transfer { .. })
    }

    /// Schedules another try of the main request when the policy allows one.
    fn retry(&mut self, client: &Client, attempt: Attempt<'_>) -> bool {
        if !self.replayable() {
            return false;
        }
        match self.main_retries.next(&client.config().retry, attempt) {
            Some(delay) => {
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

    /// The challenge to get a token from before sending: the registry's
    /// last one, when it is known to want tokens and none covers our scopes.
    fn token_ahead(&mut self, client: &Client) -> Option<Challenge> {
        if self.asked_ahead
            || self.fresh_token
            || self.spec.scopes.is_empty()
            || !self.on_registry()
            || client
                .authorization(&self.registry_authority, &self.scope_key)
                .is_some()
        {
            return None;
        }
        let challenge = client
            .remembered_challenge(&self.registry_authority)?
            .clone();
        self.asked_ahead = true;
        Some(challenge)
    }

    /// Whether a 401 after a token asked ahead names scopes beyond ours:
    /// the registry wants more than we asked for, so one more token is due.
    fn wants_more_than_asked(&self, challenge: &Challenge) -> bool {
        self.asked_ahead
            && challenge
                .params
                .get("scope")
                .is_some_and(|wanted| !scopes_cover(&self.scope_key, wanted))
    }

    /// Sets out to get a token for `wanted` (a configured bearer token is
    /// simply used).
    fn obtain_token(&mut self, client: &mut Client, wanted: TokenWanted) {
        if let Some(Credential::Bearer(token)) = client.credential(&self.spec.registry) {
            let authorization = format!("Bearer {token}");
            client.store_token(
                &self.registry_authority,
                &self.scope_key,
                authorization,
                None,
            );
            self.fresh_token |= wanted.challenged.is_some();
            self.state = State::Ready;
        } else {
            self.state = State::TokenNeeded(Box::new(wanted));
        }
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
        // A streamed body cannot be sent twice: its 401 is final (its token
        // is asked for ahead, from the challenge of an earlier request).
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
            client.remember_challenge(&self.registry_authority, &challenge);
            match challenge.scheme {
                AuthScheme::Bearer
                    if !self.fresh_token
                        && (!self.asked_ahead || self.wants_more_than_asked(&challenge)) =>
                {
                    self.obtain_token(
                        client,
                        TokenWanted {
                            challenge,
                            challenged: Some(exchanged),
                        },
                    );
                }
                AuthScheme::Basic => match client.credential(&self.spec.registry) {
                    Some(Credential::Basic { .. }) if sent != SentAuth::Basic => {
                        client.mark_basic(&self.registry_authority);
                        self.state = State::Ready;
                    }
                    Some(Credential::Basic { username, .. }) => {
                        let reason = format!(
                            "the registry refused the credentials of user {username:?} (401)"
                        );
                        self.finish(Err(Error::Authentication {
                            host: self.spec.registry.clone(),
                            reason,
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

    /// Schedules another try of the token request when the policy allows one.
    fn retry_token(
        &mut self,
        client: &Client,
        attempt: Attempt<'_>,
        wanted: Box<TokenWanted>,
    ) -> Option<Box<TokenWanted>> {
        match self.token_retries.next(&client.config().retry, attempt) {
            Some(delay) => {
                self.next_delay = Some(delay);
                self.state = State::TokenNeeded(wanted);
                None
            }
            None => Some(wanted),
        }
    }

    fn token_response(
        &mut self,
        client: &mut Client,
        wanted: Box<TokenWanted>,
        realm: String,
        with_credentials: bool,
        response: Response,
    ) {
        let status = response.status;
        let attempt = Attempt::Status {
            status,
            retry_after: response.headers.get("retry-after"),
            date: response.headers.get("date"),
        };
        let wanted = match status {
            200..=299 => {
                match parse_token_response(&realm, response.bytes()) {
                    Ok(token) => {
                        client.store_token(
                            &self.registry_authority,
                            &self.scope_key,
                            format!("Bearer {}", token.value),
                            Some(token.lifetime),
                        );
                        self.fresh_token |= wanted.challenged.is_some();
                        self.state = State::Ready;
                    }
                    Err(e) => self.finish(Err(e)),
                }
                return;
            }
            429 | 500 | 502 | 503 | 504 => match self.retry_token(client, attempt, wanted) {
                None => return,
                Some(wanted) => wanted,
            },
            _ => wanted,
        };
        match (status, wanted.challenged) {
            // OAuth2 answers a refused refresh token with 400.
            (400 | 401 | 403, _) if with_credentials => self.finish(Err(Error::Authentication {
                host: self.spec.registry.clone(),
                reason: format!("token server {realm} refused the credentials ({status})"),
            })),
            // Anonymous and refused a token: the registry's 401 stands.
            (401 | 403, Some(challenged)) => self.finish(Ok(challenged)),
            // Asked ahead and refused: the request goes without a token
            // and the registry decides.
            (401 | 403, None) => self.state = State::Ready,
            _ => {
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

    /// The request to the token realm for `wanted`.
    fn token_request(
        &mut self,
        client: &mut Client,
        wanted: Box<TokenWanted>,
    ) -> Output<Exchanged> {
        let token_request = wanted
            .challenge
            .token_request(&self.spec.scopes, client.credential(&self.spec.registry));
        let token_request = match token_request {
            Ok(r) => r,
            Err(e) => {
                self.finish(Err(Error::Protocol {
                    subject: self.registry_authority.clone(),
                    detail: format!("unusable authentication challenge: {e}"),
                }));
                return self.poll_output(client);
            }
        };
        let id = client.next_request_id();
        let mut headers = Headers::new();
        headers.set("User-Agent", client.config().user_agent.clone());
        if let Some(authorization) = &token_request.authorization {
            headers.set("Authorization", authorization.clone());
        }
        let (method, body) = match &token_request.form {
            Some(form) => {
                headers.set("Content-Type", FORM_URLENCODED);
                headers.set("Content-Length", form.len().to_string());
                (Method::Post, RequestBody::Bytes(form.clone().into_bytes()))
            }
            None => (Method::Get, RequestBody::Empty),
        };
        self.token_retries.sent();
        self.state = State::AwaitingToken {
            id,
            wanted,
            realm: token_request.realm(),
            with_credentials: token_request.with_credentials(),
        };
        Output::Send(
            id,
            Request {
                method,
                url: token_request.url,
                headers,
                body,
                body_mode: BodyMode::Buffer(SMALL_BODY_LIMIT),
                not_before: self.next_delay.take(),
            },
        )
    }
}

/// The media type of an OAuth2 token request body.
const FORM_URLENCODED: &str = "application/x-www-form-urlencoded";

impl Operation for Exchange {
    type Outcome = Exchanged;

    fn poll_output(&mut self, client: &mut Client) -> Output<Exchanged> {
        match std::mem::replace(&mut self.state, State::Finished) {
            State::Ready => {
                if let Some(challenge) = self.token_ahead(client) {
                    let wanted = TokenWanted {
                        challenge,
                        challenged: None,
                    };
                    self.obtain_token(client, wanted);
                    return self.poll_output(client);
                }
                let id = client.next_request_id();
                let mut headers = Headers::new();
                headers.set("User-Agent", client.config().user_agent.clone());
                if let Some(accept) = self.spec.accept {
                    headers.set("Accept", accept);
                }
                if let Some(content_type) = &self.spec.content_type {
                    headers.set("Content-Type", content_type.clone());
                }
                if let Some(offset) = self.spec.range_from {
                    headers.set("Range", format!("bytes={offset}-"));
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
                self.main_retries.sent();
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
            State::TokenNeeded(wanted) => self.token_request(client, wanted),
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
                            permanent: e.permanent,
                        }))
                    }
                }
            },
            State::AwaitingToken {
                id: expected,
                wanted,
                realm,
                with_credentials,
            } if expected == id => match response {
                Ok(r) => self.token_response(client, wanted, realm, with_credentials, r),
                Err(e) => {
                    if e.permanent
                        || self
                            .retry_token(client, Attempt::ConnectionFailed, wanted)
                            .is_some()
                    {
                        self.finish(Err(Error::Transport {
                            host: realm,
                            message: e.message,
                            permanent: e.permanent,
                        }))
                    }
                }
            },
            // Not ours: put the state back untouched.
            other => self.state = other,
        }
    }
}
