//! Token answers kept for the instances that come after. `ocirelay serve`
//! makes an instance per request, and each would ask the token server again
//! for the token the one before it got: a round trip to another host (often
//! the slowest of the three a request to a token-auth registry takes) and
//! load on that server. The hook keeps the answer to a token request (a GET
//! to a realm a registry's `Bearer` challenge named) and gives it to the
//! same request (same URL, same `Authorization`) while at least half the
//! token's life is left, its `expires_in` saying what is left, so no client
//! holds a token longer than the token server allowed.

use std::collections::{HashMap, VecDeque};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use ocirelay_core::auth::{parse_token_response, AuthScheme, Challenge};
use ocirelay_core::Digest;

/// Realms remembered at most; older ones go first.
const REALMS: usize = 64;
/// Answers kept at most; older ones go first.
const ANSWERS: usize = 256;
/// A longer answer is not a token worth keeping.
const ANSWER_LIMIT: usize = 64 * 1024;
/// However long a token lives, it is given out again for this long at most.
const LONGEST_KEPT: Duration = Duration::from_secs(30 * 60);

/// Which token request an answer answers: the URL (realm, service and
/// scopes) and the `Authorization` sent, hashed (who asked).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TokenKey {
    url: String,
    authorization: Option<Digest>,
}

/// A token server's answer, and when it came.
#[derive(Debug)]
struct Kept {
    answer: serde_json::Map<String, serde_json::Value>,
    lifetime: Duration,
    received: Instant,
}

#[derive(Debug, Default)]
struct Inner {
    /// `scheme://authority/path` of realms named in challenges.
    realms: VecDeque<String>,
    answers: HashMap<TokenKey, Kept>,
    /// Keys in the order their answers came, to drop the oldest.
    order: VecDeque<TokenKey>,
}

/// Token answers shared by the hooks of a process; see the module's docs.
#[derive(Debug, Default)]
pub struct Tokens {
    inner: Mutex<Inner>,
}

impl Tokens {
    /// Learns the token realms a 401's `WWW-Authenticate` values name.
    pub fn learn_realms(&self, headers: &http::HeaderMap) {
        let realms = headers
            .get_all(http::header::WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| Challenge::parse(v.to_str().ok()?))
            .filter(|c| c.scheme == AuthScheme::Bearer)
            .filter_map(|c| realm_of(&c.params.get("realm")?.parse().ok()?));
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        for realm in realms {
            if !inner.realms.contains(&realm) {
                inner.realms.push_back(realm);
                if inner.realms.len() > REALMS {
                    inner.realms.pop_front();
                }
            }
        }
    }

    /// The key of `request` if it is a token request: a GET to a known realm.
    pub fn key(&self, request: &http::request::Parts) -> Option<TokenKey> {
        if request.method != http::Method::GET {
            return None;
        }
        let realm = realm_of(&request.uri)?;
        if !self.inner.lock().ok()?.realms.contains(&realm) {
            return None;
        }
        let authorization = request
            .headers
            .get(http::header::AUTHORIZATION)
            .map(|v| Digest::sha256(v.as_bytes()));
        Some(TokenKey {
            url: request.uri.to_string(),
            authorization,
        })
    }

    /// The kept answer to `key` as of `now`, with what is left of the
    /// token's life as its `expires_in`; none once half of it is gone.
    pub fn answer(&self, key: &TokenKey, now: Instant) -> Option<Bytes> {
        let inner = self.inner.lock().ok()?;
        let kept = inner.answers.get(key)?;
        let age = now.checked_duration_since(kept.received)?;
        if age >= (kept.lifetime / 2).min(LONGEST_KEPT) {
            return None;
        }
        let mut answer = kept.answer.clone();
        let left = kept.lifetime.saturating_sub(age).as_secs();
        answer.insert("expires_in".into(), left.into());
        serde_json::to_vec(&answer).ok().map(Bytes::from)
    }

    /// Keeps `body`, the 200 answer to `key` received at `received`, if it
    /// is a token answer.
    fn keep(&self, key: TokenKey, body: &[u8], received: Instant) {
        let Ok(token) = parse_token_response(&key.url, body) else {
            return;
        };
        let Ok(serde_json::Value::Object(answer)) = serde_json::from_slice(body) else {
            return;
        };
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        let kept = Kept {
            answer,
            lifetime: token.lifetime,
            received,
        };
        // A renewed answer is the newest: it goes last.
        if inner.answers.insert(key.clone(), kept).is_some() {
            inner.order.retain(|k| *k != key);
        }
        inner.order.push_back(key);
        while inner.answers.len() > ANSWERS {
            match inner.order.pop_front() {
                Some(oldest) => inner.answers.remove(&oldest),
                None => break,
            };
        }
    }
}

/// `scheme://authority/path` of `uri`, the authority lower-cased: how a
/// realm and a request to it are compared.
fn realm_of(uri: &http::Uri) -> Option<String> {
    let scheme = uri.scheme_str()?;
    let authority = uri.authority()?.as_str().to_ascii_lowercase();
    Some(format!("{scheme}://{authority}{}", uri.path()))
}

/// A token server's answer on its way to the component, kept as it passes
/// when it ends whole (and is small enough to be a token).
pub struct KeptBody<B> {
    inner: B,
    tokens: Arc<Tokens>,
    key: Option<TokenKey>,
    seen: Vec<u8>,
    received: Instant,
}

impl<B> KeptBody<B> {
    /// Passes `inner` on, keeping it in `tokens` as the answer to `key`.
    pub fn new(inner: B, tokens: Arc<Tokens>, key: TokenKey) -> Self {
        KeptBody {
            inner,
            tokens,
            key: Some(key),
            seen: Vec::new(),
            received: Instant::now(),
        }
    }

    fn ended(&mut self) {
        if let Some(key) = self.key.take() {
            self.tokens.keep(key, &self.seen, self.received);
        }
    }
}

impl<B> Body for KeptBody<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    if this.seen.len() + data.len() > ANSWER_LIMIT {
                        this.key = None;
                    } else if this.key.is_some() {
                        this.seen.extend_from_slice(data);
                    }
                }
            }
            // A body that failed is no answer.
            Poll::Ready(Some(Err(_))) => this.key = None,
            Poll::Ready(None) => this.ended(),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Full};

    const REALM: &str = "https://auth.example/token";

    fn request(method: &str, uri: &str, authorization: Option<&str>) -> http::request::Parts {
        let mut builder = http::Request::builder().method(method).uri(uri);
        if let Some(a) = authorization {
            builder = builder.header("authorization", a);
        }
        builder.body(()).expect("a request").into_parts().0
    }

    fn challenged(tokens: &Tokens) {
        let mut headers = http::HeaderMap::new();
        let challenge =
            format!(r#"Bearer realm="{REALM}",service="registry",scope="repository:a:pull""#);
        headers.insert("www-authenticate", challenge.parse().expect("a header"));
        tokens.learn_realms(&headers);
    }

    /// Passes `answer` through a kept body to its end.
    fn answered(tokens: &Arc<Tokens>, key: &TokenKey, answer: &[u8]) {
        let body = Full::new(Bytes::copy_from_slice(answer));
        let mut kept = KeptBody::new(body, tokens.clone(), key.clone());
        // Its length and end as the body's own, for whoever frames it.
        assert_eq!(kept.size_hint().exact(), Some(answer.len() as u64));
        assert!(!kept.is_end_stream());
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime");
        let passed = rt.block_on(async { kept.frame().await });
        let passed = passed.expect("a frame").expect("no error").into_data();
        assert_eq!(passed.expect("data"), answer, "passed on unchanged");
        assert!(kept.is_end_stream());
        rt.block_on(async { assert!(kept.frame().await.is_none()) });
    }

    /// A token answer of `len` bytes.
    fn token_of_length(len: usize) -> Vec<u8> {
        let frame = br#"{"token":""}"#.len();
        format!(r#"{{"token":"{}"}}"#, "t".repeat(len - frame)).into_bytes()
    }

    fn expires_in(answer: &Bytes) -> u64 {
        let json: serde_json::Value = serde_json::from_slice(answer).expect("JSON");
        json["expires_in"].as_u64().expect("a number")
    }

    #[test]
    fn a_token_answer_is_given_again_with_what_is_left_of_its_life_until_half_is_gone() {
        let tokens = Arc::new(Tokens::default());
        let url = format!("{REALM}?service=registry&scope=repository:a:pull");
        // Before a registry names the realm, a GET there is not a token request.
        assert_eq!(tokens.key(&request("GET", &url, None)), None);
        challenged(&tokens);
        let key = tokens
            .key(&request("GET", &url, None))
            .expect("a token request");
        assert_eq!(
            tokens.answer(&key, Instant::now()),
            None,
            "nothing kept yet"
        );

        answered(
            &tokens,
            &key,
            br#"{"token":"t","expires_in":300,"issued_at":"x"}"#,
        );
        let start = Instant::now();
        let again = tokens.answer(&key, start).expect("kept");
        let json: serde_json::Value = serde_json::from_slice(&again).expect("JSON");
        assert_eq!(json["token"], "t");
        assert_eq!(json["issued_at"], "x", "the rest as it came");
        assert!(expires_in(&again) >= 299, "{again:?}");
        let later = start + Duration::from_secs(100);
        assert!((199..=200).contains(&expires_in(&tokens.answer(&key, later).expect("kept"))));
        assert_eq!(tokens.answer(&key, start + Duration::from_secs(150)), None);
    }

    #[test]
    fn only_the_same_request_gets_a_kept_answer() {
        let tokens = Arc::new(Tokens::default());
        challenged(&tokens);
        let url = format!("{REALM}?service=registry&scope=repository:a:pull");
        let anonymous = tokens.key(&request("GET", &url, None)).expect("a key");
        answered(&tokens, &anonymous, br#"{"token":"anonymous"}"#);
        let now = Instant::now();
        // No default lifetime is longer than the spec's 60 s.
        assert!(expires_in(&tokens.answer(&anonymous, now).expect("kept")) <= 60);

        let user = tokens.key(&request("GET", &url, Some("Basic dTpw")));
        let other_scope = tokens.key(&request(
            "GET",
            &format!("{REALM}?scope=repository:b:pull"),
            None,
        ));
        for key in [user, other_scope] {
            let key = key.expect("a token request");
            assert_eq!(tokens.answer(&key, now), None, "{key:?}");
        }
        // An OAuth2 POST carries its secret in the body: never answered from here.
        assert_eq!(tokens.key(&request("POST", &url, None)), None);
        // Another host's path of the same name is not the realm.
        assert_eq!(
            tokens.key(&request("GET", "https://elsewhere.example/token", None)),
            None
        );
    }

    #[test]
    fn what_is_not_a_whole_token_answer_is_not_kept() {
        let tokens = Arc::new(Tokens::default());
        challenged(&tokens);
        for (i, answer) in [&br#"{"error":"denied"}"#[..], b"not json", br#"["token"]"#]
            .into_iter()
            .enumerate()
        {
            let key = tokens
                .key(&request("GET", &format!("{REALM}?n={i}"), None))
                .expect("a key");
            let body = Full::new(Bytes::from_static(answer));
            let mut kept = KeptBody::new(body, tokens.clone(), key.clone());
            let rt = tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("a runtime");
            rt.block_on(async { while let Some(Ok(_)) = kept.frame().await {} });
            assert_eq!(tokens.answer(&key, Instant::now()), None, "{answer:?}");
        }
        // Tokens are kilobytes (a JWT with its certificate chain); past
        // 64 KiB an answer is not kept.
        for (len, kept) in [
            (4096, true),
            (ANSWER_LIMIT, true),
            (ANSWER_LIMIT + 1, false),
        ] {
            let key = tokens.key(&request("GET", &format!("{REALM}?len={len}"), None));
            let key = key.expect("a key");
            answered(&tokens, &key, &token_of_length(len));
            let again = tokens.answer(&key, Instant::now());
            assert_eq!(again.is_some(), kept, "{len} bytes");
        }
        // A body dropped before its end is no answer either.
        let key = tokens
            .key(&request("GET", &format!("{REALM}?cut"), None))
            .expect("a key");
        let body = Full::new(Bytes::from_static(br#"{"token":"t"}"#));
        drop(KeptBody::new(body, tokens.clone(), key.clone()));
        assert_eq!(tokens.answer(&key, Instant::now()), None);
    }

    #[test]
    fn the_oldest_answers_and_realms_go_first() {
        let tokens = Arc::new(Tokens::default());
        challenged(&tokens);
        let key = |i: usize| {
            let url = format!("{REALM}?scope=repository:{i}:pull");
            tokens.key(&request("GET", &url, None)).expect("a key")
        };
        for i in 0..ANSWERS {
            answered(&tokens, &key(i), br#"{"token":"t"}"#);
        }
        // The first answer renewed: the second is the oldest now.
        answered(&tokens, &key(0), br#"{"token":"renewed"}"#);
        answered(&tokens, &key(ANSWERS), br#"{"token":"t"}"#);
        let now = Instant::now();
        assert_eq!(tokens.answer(&key(1), now), None, "the oldest went");
        for kept in [0, 2, ANSWERS] {
            assert!(tokens.answer(&key(kept), now).is_some(), "{kept}");
        }

        for i in 0..REALMS {
            let mut headers = http::HeaderMap::new();
            let challenge = format!(r#"Bearer realm="https://auth{i}.example/token""#);
            headers.insert("www-authenticate", challenge.parse().expect("a header"));
            tokens.learn_realms(&headers);
        }
        assert_eq!(tokens.key(&request("GET", REALM, None)), None, "forgotten");
        for kept in [0, REALMS - 1] {
            let realm = format!("https://auth{kept}.example/token");
            assert!(
                tokens.key(&request("GET", &realm, None)).is_some(),
                "{realm}"
            );
        }
    }
}
