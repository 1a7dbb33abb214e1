//! Registry authentication: `WWW-Authenticate` challenges, token requests
//! and token responses (the Docker token protocol), and Basic credentials.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::http::Url;
use crate::percent::encode_query_component;

/// Credentials for one registry.
#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    /// Username and password: sent as Basic, or to a token realm.
    Basic {
        /// User name.
        username: String,
        /// Password.
        password: String,
    },
    /// A bearer token issued elsewhere, sent as is.
    Bearer(String),
    /// An OAuth2 refresh token (Docker's `identitytoken`): traded at the
    /// token realm for access tokens (`grant_type=refresh_token`).
    IdentityToken(String),
}

// Secrets never reach logs through Debug.
impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credential::Basic { username, .. } => {
                write!(
                    f,
                    "Basic {{ username: {username:?}, password: <redacted> }}"
                )
            }
            Credential::Bearer(_) => f.write_str("Bearer(<redacted>)"),
            Credential::IdentityToken(_) => f.write_str("IdentityToken(<redacted>)"),
        }
    }
}

impl Credential {
    /// The `Authorization` value for Basic authentication.
    pub fn basic_header(username: &str, password: &str) -> String {
        let raw = format!("{username}:{password}");
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }
}

/// The authentication scheme of a challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthScheme {
    /// `Basic realm=…`
    Basic,
    /// `Bearer realm=…,service=…,scope=…`
    Bearer,
    /// Anything else.
    Other(String),
}

/// A parsed `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// The scheme.
    pub scheme: AuthScheme,
    /// Its parameters, names lower-cased.
    pub params: BTreeMap<String, String>,
}

impl Challenge {
    /// Parses the first challenge of a `WWW-Authenticate` value.
    pub fn parse(value: &str) -> Option<Challenge> {
        let value = value.trim();
        let (scheme, mut rest) = match value.find(char::is_whitespace) {
            Some(i) => (&value[..i], value[i..].trim_start()),
            None => (value, ""),
        };
        if scheme.is_empty() {
            return None;
        }
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "basic" => AuthScheme::Basic,
            "bearer" => AuthScheme::Bearer,
            other => AuthScheme::Other(other.to_string()),
        };
        let mut params = BTreeMap::new();
        while !rest.is_empty() {
            let Some(eq) = rest.find('=') else { break };
            let name = rest[..eq]
                .trim()
                .trim_start_matches(',')
                .trim()
                .to_ascii_lowercase();
            rest = rest[eq + 1..].trim_start();
            let val;
            if let Some(quoted) = rest.strip_prefix('"') {
                let mut out = String::new();
                let mut chars = quoted.char_indices();
                let mut end = quoted.len();
                while let Some((i, c)) = chars.next() {
                    match c {
                        '\\' => {
                            if let Some((_, n)) = chars.next() {
                                out.push(n);
                            }
                        }
                        '"' => {
                            end = i + 1;
                            break;
                        }
                        c => out.push(c),
                    }
                }
                val = out;
                rest = &quoted[end.min(quoted.len())..];
            } else {
                let end = rest.find(',').unwrap_or(rest.len());
                val = rest[..end].trim().to_string();
                rest = &rest[end..];
            }
            rest = rest.trim_start().trim_start_matches(',').trim_start();
            if !name.is_empty() {
                params.insert(name, val);
            }
        }
        Some(Challenge { scheme, params })
    }

    /// The realm, and the `service` and `scope` parameters of a token
    /// request. `scopes` are used when the challenge names none; a
    /// challenge's own scope wins, because it is what the registry will check.
    fn token_params(&self, scopes: &[String]) -> Result<(Url, Vec<(&'static str, String)>)> {
        let realm = self
            .params
            .get("realm")
            .ok_or_else(|| Error::InvalidInput("Bearer challenge without a realm".to_string()))?;
        let url = Url::parse(realm)?;
        let mut params = Vec::new();
        if let Some(service) = self.params.get("service") {
            params.push(("service", service.clone()));
        }
        let challenge_scopes: Vec<String> = self
            .params
            .get("scope")
            .map(|s| {
                s.split(' ')
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        let scopes = if challenge_scopes.is_empty() {
            scopes
        } else {
            &challenge_scopes[..]
        };
        params.extend(scopes.iter().map(|s| ("scope", s.clone())));
        Ok((url, params))
    }

    /// The GET token request for this (Bearer) challenge (anonymous or with
    /// Basic credentials).
    pub fn token_url(&self, scopes: &[String]) -> Result<Url> {
        let (mut url, params) = self.token_params(scopes)?;
        if !params.is_empty() {
            let sep = if url.path_and_query.contains('?') {
                '&'
            } else {
                '?'
            };
            url.path_and_query.push(sep);
            url.path_and_query.push_str(&form_encode(&params));
        }
        Ok(url)
    }

    /// The token request for this (Bearer) challenge with `credential`: a
    /// GET (anonymous, or with Basic credentials), or for an identity token
    /// the OAuth2 POST that trades it for an access token.
    pub fn token_request(
        &self,
        scopes: &[String],
        credential: Option<&Credential>,
    ) -> Result<TokenRequest> {
        match credential {
            Some(Credential::IdentityToken(refresh_token)) => {
                let (url, mut params) = self.token_params(scopes)?;
                // OAuth2 joins scopes with spaces into one field.
                let scope: Vec<String> = params
                    .iter()
                    .filter(|(k, _)| *k == "scope")
                    .map(|(_, v)| v.clone())
                    .collect();
                params.retain(|(k, _)| *k != "scope");
                if !scope.is_empty() {
                    params.push(("scope", scope.join(" ")));
                }
                params.push(("grant_type", "refresh_token".to_string()));
                params.push(("client_id", OAUTH_CLIENT_ID.to_string()));
                params.push(("refresh_token", refresh_token.clone()));
                Ok(TokenRequest {
                    url,
                    form: Some(form_encode(&params)),
                    authorization: None,
                })
            }
            Some(Credential::Basic { username, password }) => Ok(TokenRequest {
                url: self.token_url(scopes)?,
                form: None,
                authorization: Some(Credential::basic_header(username, password)),
            }),
            Some(Credential::Bearer(_)) | None => Ok(TokenRequest {
                url: self.token_url(scopes)?,
                form: None,
                authorization: None,
            }),
        }
    }
}

/// The `client_id` sent with OAuth2 token requests.
pub const OAUTH_CLIENT_ID: &str = "ocirelay";

/// A request to a token realm, as [`Challenge::token_request`] builds it.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenRequest {
    /// Where to send it.
    pub url: Url,
    /// A `application/x-www-form-urlencoded` body: sent as a POST when
    /// present, else the request is a GET.
    pub form: Option<String>,
    /// The `Authorization` value (Basic credentials), when there is one.
    pub authorization: Option<String>,
}

// Secrets (the refresh token, a password) never reach logs through Debug.
impl std::fmt::Debug for TokenRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenRequest")
            .field("url", &self.url.to_string())
            .field("form", &self.form.as_ref().map(|_| "<redacted>"))
            .field(
                "authorization",
                &self.authorization.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

impl TokenRequest {
    /// The realm without its query: names the token server in errors.
    pub fn realm(&self) -> String {
        let full = self.url.to_string();
        full.split('?').next().unwrap_or(&full).to_string()
    }

    /// Whether the request carries credentials (so a refusal is about them).
    pub fn with_credentials(&self) -> bool {
        self.form.is_some() || self.authorization.is_some()
    }
}

fn form_encode(params: &[(&str, String)]) -> String {
    params
        .iter()
        .map(|(k, v)| format!("{k}={}", encode_query_component(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// A token endpoint's answer; either field may carry the token.
#[derive(Debug, Deserialize)]
struct TokenResponse {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
}

/// A bearer token and how long it lives.
#[derive(Clone, PartialEq, Eq)]
pub struct Token {
    /// The token itself.
    pub value: String,
    /// Its lifetime (60 s when the endpoint does not say, as the token spec has it).
    pub lifetime: std::time::Duration,
}

// Tokens never reach logs through Debug.
impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Token(<redacted>, {:?})", self.lifetime)
    }
}

/// The bearer token from a token endpoint's JSON body.
pub fn parse_token_response(realm: &str, body: &[u8]) -> Result<Token> {
    let bad = |detail: String| Error::Protocol {
        subject: format!("token endpoint {realm}"),
        detail,
    };
    let t: TokenResponse =
        serde_json::from_slice(body).map_err(|e| bad(format!("answer is not token JSON: {e}")))?;
    let lifetime = std::time::Duration::from_secs(t.expires_in.filter(|s| *s > 0).unwrap_or(60));
    let value = t
        .token
        .filter(|t| !t.is_empty())
        .or(t.access_token.filter(|t| !t.is_empty()))
        .ok_or_else(|| bad("answer has neither token nor access_token".to_string()))?;
    Ok(Token { value, lifetime })
}

/// The scope string for a repository and actions, e.g. `repository:foo:pull`.
pub fn repository_scope(repository: &str, actions: &str) -> String {
    format!("repository:{repository}:{actions}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bearer_challenge() {
        let c = Challenge::parse(
            r#"Bearer realm="http://127.0.0.1:1/token",service="test-service",scope="repository:foo:pull,push repository:src/repo:pull",error="insufficient_scope""#,
        )
        .unwrap();
        assert_eq!(c.scheme, AuthScheme::Bearer);
        assert_eq!(c.params["realm"], "http://127.0.0.1:1/token");
        assert_eq!(c.params["service"], "test-service");
        assert_eq!(c.params["error"], "insufficient_scope");
        let url = c.token_url(&[]).unwrap();
        assert_eq!(
            url.to_string(),
            "http://127.0.0.1:1/token?service=test-service&scope=repository%3Afoo%3Apull%2Cpush&scope=repository%3Asrc%2Frepo%3Apull"
        );
    }

    #[test]
    fn challenge_without_scope_uses_ours() {
        let c = Challenge::parse(r#"Bearer realm="https://auth.example/token?x=1", service="s""#)
            .unwrap();
        let url = c.token_url(&["repository:a:pull".into()]).unwrap();
        assert_eq!(
            url.path_and_query,
            "/token?x=1&service=s&scope=repository%3Aa%3Apull"
        );
    }

    #[test]
    fn parses_basic_and_escapes() {
        let c = Challenge::parse(r#"Basic realm="a \"quoted\" realm""#).unwrap();
        assert_eq!(c.scheme, AuthScheme::Basic);
        assert_eq!(c.params["realm"], r#"a "quoted" realm"#);
        assert!(Challenge::parse("").is_none());
        let c = Challenge::parse("Bearer realm=unquoted,service=s").unwrap();
        assert_eq!(c.params["realm"], "unquoted");
        assert_eq!(c.params["service"], "s");
    }

    #[test]
    fn token_response_either_field() {
        let a = parse_token_response("r", br#"{"token":"a"}"#).unwrap();
        assert_eq!(
            (a.value.as_str(), a.lifetime.as_secs()),
            ("a", 60),
            "60 s when unsaid"
        );
        let b = parse_token_response("r", br#"{"access_token":"b","expires_in":300}"#).unwrap();
        assert_eq!((b.value.as_str(), b.lifetime.as_secs()), ("b", 300));
        assert_eq!(
            parse_token_response("r", br#"{"token":"","access_token":"c"}"#)
                .unwrap()
                .value,
            "c"
        );
        let zero = parse_token_response("r", br#"{"token":"z","expires_in":0}"#).unwrap();
        assert_eq!(zero.lifetime.as_secs(), 60, "0 means unsaid");
        assert!(parse_token_response("r", b"{}").is_err());
        assert!(parse_token_response("r", b"<html>").is_err());
    }

    #[test]
    fn basic_header_and_redacted_debug() {
        assert_eq!(Credential::basic_header("u", "p"), "Basic dTpw");
        let c = Credential::Basic {
            username: "u".into(),
            password: "hunter2".into(),
        };
        assert_eq!(
            format!("{c:?}"),
            r#"Basic { username: "u", password: <redacted> }"#
        );
        assert_eq!(
            format!("{:?}", Credential::Bearer("tok".into())),
            "Bearer(<redacted>)"
        );
        assert_eq!(
            format!("{:?}", Credential::IdentityToken("refresh".into())),
            "IdentityToken(<redacted>)"
        );
        let token = parse_token_response("r", br#"{"token":"s3cret","expires_in":5}"#).unwrap();
        assert_eq!(format!("{token:?}"), "Token(<redacted>, 5s)");
        let challenge = Challenge::parse(r#"Bearer realm="https://auth.example/t""#).unwrap();
        let with_secret = Credential::IdentityToken("refresh-s3cret".into());
        let request = challenge.token_request(&[], Some(&with_secret)).unwrap();
        let shown = format!("{request:?}");
        assert!(
            shown.contains("https://auth.example/t") && shown.contains("<redacted>"),
            "{shown}"
        );
        assert!(!shown.contains("s3cret"), "{shown}");
    }
}
