//! Fetch-token: a Bearer token for an exchange's scopes, from the realm a
//! registry's challenge names (the Docker token protocol; with an identity
//! token, the OAuth2 refresh grant), retried like any other request, and
//! kept in the client for every later request of those scopes.

use crate::auth::{parse_token_response, Challenge, Credential, TokenRequest};
use crate::client::{Answer, Client};
use crate::error::{Error, Result};
use crate::http::{
    BodyMode, Headers, Method, Origin, Request, RequestBody, RequestId, Scheme, SMALL_BODY_LIMIT,
};
use crate::ops::{Operation, Output};
use crate::retry::{Attempt, Retries};

/// The media type of an OAuth2 token request body.
const FORM_URLENCODED: &str = "application/x-www-form-urlencoded";

/// What the token server decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    /// A token is kept in the client for the scopes.
    Issued,
    /// An anonymous request was refused (401/403): the caller goes on
    /// without a token, and the registry decides.
    Refused,
}

#[derive(Debug)]
enum Stage {
    /// The request to send (again, after a retry's wait).
    Ready,
    /// Sent; waiting for the answer to this request.
    Sent(RequestId),
}

/// The fetch-token state machine.
#[derive(Debug)]
pub struct FetchToken {
    /// The registry as named in references: whose credentials are used,
    /// and what errors name.
    registry: String,
    /// The registry's API authority: the token is kept for it.
    authority: String,
    /// The scopes, space-joined: the token cache's key.
    scope_key: String,
    /// What to send.
    request: TokenRequest,
    /// The realm without its query: names the token server in errors.
    realm: String,
    /// Whether the request carries credentials (so a refusal is about them).
    with_credentials: bool,
    stage: Stage,
    retries: Retries,
}

impl FetchToken {
    /// A token for `scopes` on `registry` (at `origin`, API host
    /// `authority`), asked from the realm of `challenge` with the registry's
    /// credential; `None` when there is nothing to ask, because a bearer
    /// token configured by the user is kept for the scopes as is. An HTTPS
    /// registry's realm must be HTTPS too: tokens and the credentials sent
    /// for them never go over plain HTTP.
    pub fn start(
        client: &mut Client,
        registry: &str,
        origin: &Origin,
        authority: &str,
        scopes: &[String],
        challenge: &Challenge,
    ) -> Result<Option<Self>> {
        let scope_key = scopes.join(" ");
        let request = match client.credential(registry) {
            Some(Credential::Bearer(token)) => {
                let authorization = format!("Bearer {token}");
                client.store_token(authority, &scope_key, authorization, None);
                return Ok(None);
            }
            credential => challenge.token_request(scopes, credential).map_err(|e| {
                Error::protocol(authority, format!("unusable authentication challenge: {e}"))
            })?,
        };
        if origin.is_https() && request.url.scheme == Scheme::Http {
            return Err(Error::protocol(
                origin.to_string(),
                format!(
                    "refused the token realm {}: from HTTPS down to plain HTTP",
                    request.realm()
                ),
            ));
        }
        Ok(Some(FetchToken {
            registry: registry.to_string(),
            authority: authority.to_string(),
            scope_key,
            realm: request.realm(),
            with_credentials: request.with_credentials(),
            request,
            stage: Stage::Ready,
            retries: Retries::default(),
        }))
    }

    /// The HTTP request for `token_request`.
    fn http_request(client: &Client, token_request: &TokenRequest) -> Request {
        let mut headers = Headers::new();
        headers.set("User-Agent", client.config().user_agent.clone());
        if let Some(authorization) = &token_request.authorization {
            headers.set("Authorization", authorization.clone());
        }
        let (method, body) = match &token_request.form {
            Some(form) => {
                headers.set("Content-Type", FORM_URLENCODED);
                headers.set("Content-Length", form.len().to_string());
                (
                    Method::Post,
                    RequestBody::Bytes(form.clone().into_bytes().into()),
                )
            }
            None => (Method::Get, RequestBody::Empty),
        };
        Request {
            method,
            url: token_request.url.clone(),
            headers,
            body,
            body_mode: BodyMode::Buffer(SMALL_BODY_LIMIT),
        }
    }

    /// What an answer (or its absence) means: the grant, `None` for another
    /// try, or an error.
    fn judge(&mut self, client: &mut Client, answer: Answer) -> Option<Result<Grant>> {
        let realm = self.realm.clone();
        let policy = client.config().retry;
        let response = match answer {
            Ok(response) => response,
            Err(e) => {
                let again = !e.is_permanent()
                    && self
                        .retries
                        .schedule(&policy, Attempt::ConnectionFailed, client.now());
                return (!again).then(|| Err(Error::transport(realm, e)));
            }
        };
        let status = response.status;
        if (200..300).contains(&status) {
            let stored = parse_token_response(&realm, response.bytes()).map(|token| {
                let authorization = format!("Bearer {}", token.value);
                let lifetime = Some(token.lifetime);
                client.store_token(&self.authority, &self.scope_key, authorization, lifetime);
                Grant::Issued
            });
            return Some(stored);
        }
        if matches!(status, 429 | 500 | 502 | 503 | 504)
            && self
                .retries
                .schedule(&policy, Attempt::from(&response), client.now())
        {
            return None;
        }
        Some(match status {
            // OAuth2 answers a refused refresh token with 400.
            400 | 401 | 403 if self.with_credentials => Err(Error::Authentication {
                host: self.registry.clone(),
                reason: format!("token server {realm} refused the credentials ({status})"),
            }),
            401 | 403 => Ok(Grant::Refused),
            _ => Err(Error::registry(format!("token server {realm}"), &response)),
        })
    }
}

impl Operation for FetchToken {
    type Outcome = Result<Grant>;

    fn poll_output(&mut self, client: &mut Client) -> Output<Result<Grant>> {
        loop {
            match self.stage {
                Stage::Ready => {
                    if let Some(at) = self.retries.wait_until(client.now()) {
                        return Output::Wait(Some(at));
                    }
                    let request = Self::http_request(client, &self.request);
                    let id = client.track(&request);
                    self.retries.sent();
                    self.stage = Stage::Sent(id);
                    return Output::Send(id, request);
                }
                Stage::Sent(id) => {
                    let Some(answer) = client.take_answer(id) else {
                        return Output::Wait(None);
                    };
                    match self.judge(client, answer) {
                        Some(outcome) => return Output::Done(outcome),
                        None => self.stage = Stage::Ready,
                    }
                }
            }
        }
    }
}
