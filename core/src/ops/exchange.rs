//! One logical registry request: sends it, answers authentication
//! challenges (a Bearer token from [`FetchToken`], or Basic credentials),
//! follows redirects, retries what the client's policy retries, and yields
//! the final response. Every other operation is built from exchanges.

use crate::auth::{AuthScheme, Challenge, Credential};
use crate::client::{scopes_cover, Answer, Client};
use crate::error::{Error, Result};
use crate::http::{
    is_private_host, BodyMode, Headers, Method, Origin, Redirects, Request, RequestBody, RequestId,
    Response, TransportErrorKind, Url, SMALL_BODY_LIMIT,
};
use crate::ops::token::{FetchToken, Grant};
use crate::ops::{Operation, Output, Step};
use crate::range::ByteRange;
use crate::reference::is_docker_hub;
use crate::retry::{Attempt, Retries};
use crate::{advance, ready};

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
    /// Asks for part of the body (`Range`): a resumed read from byte N on,
    /// or a ranged read.
    pub range: Option<ByteRange>,
    /// Which bytes of the upload the body is (`Content-Range: first-last`,
    /// inclusive): a chunk of an upload sent in several PATCHes.
    pub content_range: Option<(u64, u64)>,
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
            range: None,
            content_range: None,
            body: RequestBody::Empty,
            body_mode: BodyMode::Buffer(SMALL_BODY_LIMIT),
        }
    }

    /// A GET of `path` in `reference`'s repository (with `actions`, e.g.
    /// `pull`), asking for `accept`, its body read whole up to `limit`: a
    /// page of a list, or an index read to be changed.
    pub fn get_whole(
        reference: &crate::reference::Reference,
        actions: &str,
        path: String,
        accept: &'static str,
        limit: u64,
    ) -> Self {
        let scopes = vec![crate::auth::repository_scope(
            &reference.repository,
            actions,
        )];
        ExchangeSpec {
            accept: Some(accept),
            body_mode: BodyMode::Buffer(limit),
            ..ExchangeSpec::read(&reference.host, scopes, Method::Get, path)
        }
    }
}

/// What this exchange did about tokens so far; each step happens once.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Tokens {
    /// Nothing yet.
    NotAsked,
    /// One was asked for ahead of the request, from the registry's last
    /// challenge (granted or not), which it holds.
    AskedAhead(Challenge),
    /// One was asked for in answer to this exchange's 401: another 401 is final.
    Fresh,
}

/// What was sent as `Authorization`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SentAuth {
    None,
    Basic,
    Bearer,
}

#[derive(Debug)]
enum Stage {
    /// The request is to be sent (once a retry's wait is over).
    Ready,
    /// Getting a token, then ready again. `challenged`: the 401 that asked
    /// for it, which stands if the token is refused.
    Token {
        fetch: Box<FetchToken>,
        challenged: Option<Exchanged>,
    },
    /// Sent; waiting for the answer.
    Sent { id: RequestId, auth: SentAuth },
}

/// The exchange state machine.
#[derive(Debug)]
pub struct Exchange {
    spec: ExchangeSpec,
    /// Whose credentials apply: the registry, or the Docker Hub mirror a
    /// read goes to (its own host, as the original authenticates to it).
    auth_host: String,
    /// The registry's API authority: tokens are kept under it.
    registry_authority: String,
    /// The registry's origin: credentials go there and nowhere else.
    registry_origin: Origin,
    /// The scopes as one token-cache key.
    scope_key: String,
    url: Url,
    stage: Stage,
    tokens: Tokens,
    redirects: Redirects,
    retries: Retries,
    /// Leave redirects elsewhere to the caller ([`Exchange::passing_redirects`]).
    pass_redirects: bool,
    /// The redirect left to the caller, once answered with one.
    passed: Option<Url>,
}

impl Exchange {
    /// An exchange for `spec` (nothing is sent until polled).
    pub fn new(client: &Client, spec: ExchangeSpec) -> Self {
        let registry_url = client.registry_url(&spec.registry, "/");
        let mut registry_origin = registry_url.origin();
        let mut registry_authority = registry_url.authority;
        let mut auth_host = spec.registry.clone();
        let url = match (&spec.target, client.config().docker_hub_proxy.as_ref()) {
            // Docker Hub reads go to its mirror, which is then the registry
            // as far as authentication goes: its challenges are answered
            // with its own host's credentials; Docker Hub's never go there.
            (Target::Path(path), Some(mirror))
                if is_docker_hub(&spec.registry)
                    && matches!(spec.method, Method::Get | Method::Head) =>
            {
                registry_origin = mirror.origin();
                registry_authority = mirror.authority.clone();
                auth_host = mirror.authority.clone();
                Url {
                    path_and_query: path.clone(),
                    ..mirror.clone()
                }
            }
            (Target::Path(path), _) => client.registry_url(&spec.registry, path),
            (Target::Url(url), _) => url.clone(),
        };
        Exchange {
            auth_host,
            scope_key: spec.scopes.join(" "),
            registry_authority,
            registry_origin,
            url,
            spec,
            stage: Stage::Ready,
            tokens: Tokens::NotAsked,
            redirects: Redirects::default(),
            retries: Retries::default(),
            pass_redirects: false,
            passed: None,
        }
    }

    /// Leaves a redirect to the caller instead of following it: the
    /// redirect is the exchange's answer, and [`Exchange::passed_redirect`]
    /// says where it leads. Only one the exchange would follow (never from
    /// HTTPS down to plain HTTP: that stays an error), and not one from a
    /// public host to a loopback, private or link-local address: that is
    /// followed here, as without this.
    pub fn passing_redirects(mut self) -> Self {
        self.pass_redirects = true;
        self
    }

    /// Where the answer's redirect leads, when [`Exchange::passing_redirects`]
    /// left it to the caller.
    pub fn passed_redirect(&self) -> Option<&Url> {
        self.passed.as_ref()
    }

    /// Whether the body can be sent again (a streamed one cannot).
    fn replayable(&self) -> bool {
        !matches!(
            self.spec.body,
            RequestBody::Transfer { .. } | RequestBody::Chunk { .. }
        )
    }

    /// Whether the request goes to the registry's own origin (scheme, host
    /// and port): where its credentials may go.
    fn on_registry(&self) -> bool {
        self.url.origin() == self.registry_origin
    }

    /// Schedules another try after `attempt`, when the body can be sent
    /// again and the policy allows one.
    fn retry(&mut self, client: &Client, attempt: Attempt<'_>) -> bool {
        self.replayable()
            && self
                .retries
                .schedule(&client.config().retry, attempt, client.now())
    }

    /// The challenge to get a token from before sending: the registry's
    /// last one, when it is known to want tokens and none covers our scopes.
    fn token_ahead(&mut self, client: &Client) -> Option<Challenge> {
        if self.tokens != Tokens::NotAsked
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
        self.tokens = Tokens::AskedAhead(challenge.clone());
        Some(challenge)
    }

    /// Whether a Bearer 401 is worth a token: none asked yet, or one asked
    /// ahead while the registry names scopes beyond ours or another token
    /// server (realm or service) than the one it was asked of.
    fn worth_a_token(&self, challenge: &Challenge) -> bool {
        match &self.tokens {
            Tokens::NotAsked => true,
            Tokens::AskedAhead(ahead) => {
                let elsewhere = ["realm", "service"]
                    .iter()
                    .any(|&name| challenge.params.get(name) != ahead.params.get(name));
                elsewhere
                    || challenge
                        .params
                        .get("scope")
                        .is_some_and(|wanted| !scopes_cover(&self.scope_key, wanted))
            }
            Tokens::Fresh => false,
        }
    }

    /// Sets out to get a token from `challenge`'s realm: the stage that
    /// does it, or straight back to `Ready` when a configured token is used.
    fn fetch_token(
        &self,
        client: &mut Client,
        challenge: &Challenge,
        challenged: Option<Exchanged>,
    ) -> Result<Stage> {
        let fetch = FetchToken::start(
            client,
            &self.auth_host,
            &self.registry_origin,
            &self.registry_authority,
            &self.spec.scopes,
            challenge,
        )?;
        Ok(match fetch {
            Some(fetch) => Stage::Token {
                fetch: Box::new(fetch),
                challenged,
            },
            None => Stage::Ready,
        })
    }

    /// The request to send now, and what it carries as `Authorization`.
    fn request(&self, client: &Client) -> (Request, SentAuth) {
        let mut headers = Headers::new();
        headers.set("User-Agent", client.config().user_agent.clone());
        if let Some(accept) = self.spec.accept {
            headers.set("Accept", accept);
        }
        if let Some(content_type) = &self.spec.content_type {
            headers.set("Content-Type", content_type.clone());
        }
        if let Some(range) = self.spec.range {
            headers.set("Range", range.header_value());
        }
        if let Some((first, last)) = self.spec.content_range {
            headers.set("Content-Range", format!("{first}-{last}"));
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
            if let Some(auth) = client.authorization(&self.registry_authority, &self.scope_key) {
                sent = if auth.starts_with("Basic ") {
                    SentAuth::Basic
                } else {
                    SentAuth::Bearer
                };
                headers.set("Authorization", auth);
            }
        }
        let request = Request {
            method: self.spec.method,
            url: self.url.clone(),
            headers,
            body: self.spec.body.clone(),
            body_mode: self.spec.body_mode,
        };
        (request, sent)
    }

    /// What the answer to request `id` means: another try, a redirect, a
    /// challenge to answer, or the final response.
    fn answered(
        &mut self,
        client: &mut Client,
        id: RequestId,
        sent: SentAuth,
        answer: Answer,
    ) -> Result<Step<Stage, Exchanged>> {
        let response = match answer {
            Ok(response) => response,
            Err(e) if !e.is_permanent() && self.retry(client, Attempt::ConnectionFailed) => {
                return Ok(Step::Next(Stage::Ready))
            }
            Err(e) if e.kind == TransportErrorKind::Integrity => {
                return Err(Error::integrity(self.url.redacted(), e.message))
            }
            Err(e) => return Err(Error::transport(self.url.authority.clone(), e)),
        };
        let status = response.status;
        if matches!(status, 429 | 500 | 502 | 503 | 504)
            && self.retry(client, Attempt::from(&response))
        {
            return Ok(Step::Next(Stage::Ready));
        }
        // A streamed body cannot be sent twice: its 401 is final (its token
        // is asked for ahead, from the challenge of an earlier request).
        if status == 401 && self.on_registry() && self.replayable() {
            return self.challenged(client, sent, Exchanged { id, response });
        }
        let redirect = matches!(status, 301 | 302 | 303 | 307 | 308)
            && matches!(self.spec.method, Method::Get | Method::Head);
        if let Some(location) = response.headers.get("location").filter(|_| redirect) {
            let next = self.redirects.follow(&self.url, location)?;
            if self.pass_redirects && (!is_private_host(&next) || is_private_host(&self.url)) {
                self.passed = Some(next);
                return Ok(Step::Done(Exchanged { id, response }));
            }
            self.url = next;
            return Ok(Step::Next(Stage::Ready));
        }
        Ok(Step::Done(Exchanged { id, response }))
    }

    /// A 401 from the registry: get a token or send Basic credentials and
    /// try again, or let the answer stand (the caller decides what it means).
    fn challenged(
        &mut self,
        client: &mut Client,
        sent: SentAuth,
        exchanged: Exchanged,
    ) -> Result<Step<Stage, Exchanged>> {
        let challenge = exchanged
            .response
            .headers
            .get_all("www-authenticate")
            .find_map(Challenge::parse);
        let Some(challenge) = challenge else {
            return Ok(Step::Done(exchanged));
        };
        client.remember_challenge(&self.registry_authority, &challenge);
        match (&challenge.scheme, client.credential(&self.auth_host)) {
            (AuthScheme::Bearer, _) if self.worth_a_token(&challenge) => {
                self.tokens = Tokens::Fresh;
                let stage = self.fetch_token(client, &challenge, Some(exchanged))?;
                Ok(Step::Next(stage))
            }
            (AuthScheme::Basic, Some(Credential::Basic { .. })) if sent != SentAuth::Basic => {
                client.mark_basic(&self.registry_authority);
                Ok(Step::Next(Stage::Ready))
            }
            (AuthScheme::Basic, Some(Credential::Basic { username, .. })) => {
                Err(Error::Authentication {
                    host: self.auth_host.clone(),
                    reason: format!(
                        "the registry refused the credentials of user {username:?} (401)"
                    ),
                })
            }
            // A fresh token that still gets 401 means this identity may
            // not see the repository: the caller decides what that means.
            _ => Ok(Step::Done(exchanged)),
        }
    }

    /// What the token server's decision means for this exchange.
    fn granted(
        grant: Result<Grant>,
        challenged: Option<Exchanged>,
    ) -> Result<Step<Stage, Exchanged>> {
        Ok(match (grant?, challenged) {
            (Grant::Issued, _) => Step::Next(Stage::Ready),
            // Anonymous and refused a token: the registry's 401 stands.
            (Grant::Refused, Some(challenged)) => Step::Done(challenged),
            // Asked ahead and refused: the request goes without a token
            // and the registry decides.
            (Grant::Refused, None) => Step::Next(Stage::Ready),
        })
    }
}

impl Operation for Exchange {
    type Outcome = Result<Exchanged>;

    fn poll_output(&mut self, client: &mut Client) -> Output<Result<Exchanged>> {
        loop {
            match &mut self.stage {
                Stage::Ready => {
                    if let Some(at) = self.retries.wait_until(client.now()) {
                        return Output::Wait(Some(at));
                    }
                    if let Some(challenge) = self.token_ahead(client) {
                        advance!(
                            self.stage,
                            self.fetch_token(client, &challenge, None).map(Step::Next)
                        );
                        continue;
                    }
                    if let Err(e) = self.url.reachable() {
                        return Output::Done(Err(e));
                    }
                    let (request, auth) = self.request(client);
                    let id = client.track(&request);
                    self.retries.sent();
                    self.stage = Stage::Sent { id, auth };
                    return Output::Send(id, request);
                }
                Stage::Token { fetch, challenged } => {
                    let grant = ready!(fetch.poll_output(client));
                    let challenged = challenged.take();
                    advance!(self.stage, Self::granted(grant, challenged));
                }
                Stage::Sent { id, auth } => {
                    let (id, auth) = (*id, *auth);
                    let Some(answer) = client.take_answer(id) else {
                        return Output::Wait(None);
                    };
                    advance!(self.stage, self.answered(client, id, auth, answer));
                }
            }
        }
    }
}
