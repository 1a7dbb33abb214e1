//! A small token server for the registry's token auth: issues ES256 JWTs
//! (raw r||s signatures, `x5c` naming a self-signed certificate that the
//! registry trusts through its `rootcertbundle`).
//!
//! Users with the right password get what they ask for; wrong credentials
//! get 401; anonymous callers get `pull` on the public repositories only
//! (and an empty grant elsewhere, as Docker Hub does). A refresh token
//! issued by [`TokenServer::issue_refresh_token`] is traded for access
//! tokens by OAuth2 POST (`grant_type=refresh_token`); an unknown one gets
//! 400 `invalid_grant`. It speaks HTTPS (the tests' CA) beside an HTTPS
//! registry, plain HTTP beside a plain one.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use ring::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};

/// The `service` the registry is configured with.
pub const SERVICE: &str = "test-service";
/// The `issuer` the registry is configured with.
pub const ISSUER: &str = "test-issuer";

/// One token request as the server saw it.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    /// The user that authenticated, if any.
    pub user: Option<String>,
    /// The scopes asked for.
    pub scopes: Vec<String>,
    /// Whether credentials were sent and refused.
    pub refused: bool,
    /// Whether it was an OAuth2 POST trading a refresh token.
    pub refresh: bool,
}

struct Shared {
    key: EcdsaKeyPair,
    cert_der: Vec<u8>,
    users: Vec<(String, String)>,
    public: Vec<String>,
    requests: Mutex<Vec<TokenRequest>>,
    /// Refresh tokens issued, with their user.
    refresh_tokens: Mutex<Vec<(String, String)>>,
    counter: AtomicUsize,
}

/// A running token server; stops accepting when dropped.
pub struct TokenServer {
    /// `ip:port`.
    host: String,
    tls: bool,
    bundle: PathBuf,
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
}

impl TokenServer {
    /// Starts the server on a free loopback port (over TLS when `tls`),
    /// writing the bundle of its token-signing certificate into `dir`.
    pub fn start(
        dir: &Path,
        users: Vec<(String, String)>,
        public: Vec<String>,
        tls: bool,
    ) -> TokenServer {
        let key =
            rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("generating a key");
        let params = rcgen::CertificateParams::new(vec!["ocirelay-token-issuer".to_string()])
            .expect("certificate parameters");
        let cert = params.self_signed(&key).expect("self-signing");
        let bundle = dir.join("token-bundle.pem");
        std::fs::write(&bundle, cert.pem()).expect("writing the bundle");
        let signing = EcdsaKeyPair::from_pkcs8(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            &key.serialize_der(),
            &ring::rand::SystemRandom::new(),
        )
        .expect("loading the signing key");
        let shared = Arc::new(Shared {
            key: signing,
            cert_der: cert.der().to_vec(),
            users,
            public,
            requests: Mutex::new(Vec::new()),
            refresh_tokens: Mutex::new(Vec::new()),
            counter: AtomicUsize::new(0),
        });
        let ip = if tls {
            crate::tls::TLS_HOST
        } else {
            "127.0.0.1"
        };
        let listener = TcpListener::bind((ip, 0)).expect("binding the token server");
        let port = listener.local_addr().expect("local address").port();
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st) = (shared.clone(), stop.clone());
        let tls_config = tls.then(crate::tls::server_config);
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if st.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let s = s.clone();
                let tls_config = tls_config.clone();
                std::thread::spawn(move || match tls_config {
                    Some(config) => {
                        if let Ok(tls) = rustls::ServerConnection::new(config) {
                            serve(&s, rustls::StreamOwned::new(tls, conn));
                        }
                    }
                    None => serve(&s, conn),
                });
            }
        });
        TokenServer {
            host: format!("{ip}:{port}"),
            tls,
            bundle,
            shared,
            stop,
        }
    }

    /// The realm URL the registry sends clients to.
    pub fn realm(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}/token", self.host)
    }

    /// The certificate bundle the registry verifies tokens with.
    pub fn bundle_path(&self) -> &Path {
        &self.bundle
    }

    /// A new refresh token for `user` (what docker keeps as `identitytoken`).
    pub fn issue_refresh_token(&self, user: &str) -> String {
        let n = self.shared.counter.fetch_add(1, Ordering::SeqCst);
        let token = format!("refresh-{n}-{user}");
        if let Ok(mut r) = self.shared.refresh_tokens.lock() {
            r.push((token.clone(), user.to_string()));
        }
        token
    }

    /// Every token request so far.
    pub fn requests(&self) -> Vec<TokenRequest> {
        self.shared
            .requests
            .lock()
            .map(|r| r.clone())
            .unwrap_or_default()
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(&self.host);
    }
}

fn serve(shared: &Shared, conn: impl Read + Write) {
    let mut reader = BufReader::new(conn);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let mut authorization = None;
    let mut content_length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).is_err() || line.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            let name = name.trim();
            if name.eq_ignore_ascii_case("authorization") {
                authorization = Some(value.trim().to_string());
            } else if name.eq_ignore_ascii_case("content-length") {
                content_length = value.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut form = vec![0u8; content_length.min(64 * 1024)];
    if std::io::Read::read_exact(&mut reader, &mut form).is_err() {
        return;
    }
    let post = request_line.starts_with("POST ");
    let target = request_line.split_whitespace().nth(1).unwrap_or("/");
    let query = target.split_once('?').map(|(_, q)| q).unwrap_or("");
    // GET parameters come in the query, OAuth2 POST ones in the body.
    let params: Vec<(String, String)> = if post {
        String::from_utf8_lossy(&form).into_owned()
    } else {
        query.to_string()
    }
    .split('&')
    .filter_map(|kv| kv.split_once('='))
    .map(|(k, v)| (k.to_string(), percent_decode(v)))
    .collect();
    let param = |name: &str| params.iter().find(|(k, _)| k == name).map(|(_, v)| v);
    let scopes: Vec<String> = params
        .iter()
        .filter(|(k, _)| k == "scope")
        .flat_map(|(_, v)| v.split(' ').map(str::to_string).collect::<Vec<_>>())
        .filter(|s| !s.is_empty())
        .collect();

    let user = if post {
        let known = shared.refresh_tokens.lock().ok().and_then(|r| {
            let presented = param("refresh_token")?;
            r.iter()
                .find(|(t, _)| t == presented)
                .map(|(_, u)| u.clone())
        });
        let grant = param("grant_type").map(String::as_str);
        match known {
            Some(user) if grant == Some("refresh_token") => {
                record(shared, Some(user.clone()), &scopes, false, true);
                Some(user)
            }
            _ => {
                record(shared, None, &scopes, true, true);
                return respond(reader.get_mut(), 400, r#"{"error":"invalid_grant"}"#);
            }
        }
    } else {
        let presented = authorization.as_deref().and_then(decode_basic);
        let user = match &presented {
            Some((u, p)) if shared.users.iter().any(|(uu, pp)| uu == u && pp == p) => {
                Some(u.clone())
            }
            Some(_) => {
                record(shared, None, &scopes, true, false);
                return respond(reader.get_mut(), 401, r#"{"details":"wrong credentials"}"#);
            }
            None => None,
        };
        record(shared, user.clone(), &scopes, false, false);
        user
    };

    let access: Vec<serde_json::Value> = scopes
        .iter()
        .filter_map(|scope| {
            let (kind, rest) = scope.split_once(':')?;
            let (name, actions) = rest.rsplit_once(':')?;
            let wanted: Vec<&str> = actions.split(',').collect();
            let granted: Vec<&str> = if user.is_some() {
                wanted
            } else if shared.public.iter().any(|p| p == name) {
                wanted.into_iter().filter(|a| *a == "pull").collect()
            } else {
                Vec::new()
            };
            Some(serde_json::json!({"type": kind, "name": name, "actions": granted}))
        })
        .collect();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let jti = shared.counter.fetch_add(1, Ordering::SeqCst);
    let claims = serde_json::json!({
        "iss": ISSUER, "sub": user.clone().unwrap_or_default(), "aud": SERVICE,
        "exp": now + 300, "nbf": now - 10, "iat": now, "jti": format!("t{jti}"),
        "access": access,
    });
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header = serde_json::json!({
        "typ": "JWT", "alg": "ES256",
        "x5c": [base64::engine::general_purpose::STANDARD.encode(&shared.cert_der)],
    });
    let signing_input = format!(
        "{}.{}",
        b64.encode(header.to_string()),
        b64.encode(claims.to_string())
    );
    let signature = shared
        .key
        .sign(&ring::rand::SystemRandom::new(), signing_input.as_bytes())
        .expect("signing a token");
    let token = format!("{signing_input}.{}", b64.encode(signature.as_ref()));
    let body = serde_json::json!({"token": token, "access_token": token, "expires_in": 300});
    respond(reader.get_mut(), 200, &body.to_string());
}

fn record(shared: &Shared, user: Option<String>, scopes: &[String], refused: bool, refresh: bool) {
    if let Ok(mut r) = shared.requests.lock() {
        r.push(TokenRequest {
            user,
            scopes: scopes.to_vec(),
            refused,
            refresh,
        });
    }
}

fn respond(conn: &mut impl Write, status: u16, body: &str) {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        _ => "Unauthorized",
    };
    let _ = write!(
        conn,
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = conn.flush();
}

fn decode_basic(value: &str) -> Option<(String, String)> {
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (u, p) = text.split_once(':')?;
    Some((u.to_string(), p.to_string()))
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                    }
                    None => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
