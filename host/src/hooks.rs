//! The outgoing-request hook every request of the component passes: it
//! sends through one pooled HTTP client (keep-alive, TLS sessions reused,
//! system roots). Rate limits and the allow-list hang here too (later).

use std::error::Error as _;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

use crate::policy::Policy;

/// The pooled HTTP(S) client the hook sends through.
pub type Pooled = Client<hyper_rustls::HttpsConnector<HttpConnector>, WasiBody>;

/// Builds the shared client: one per process, cloned into every store.
pub fn pooled_client() -> std::io::Result<Pooled> {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(Duration::from_secs(30)));
    let builder = match hyper_rustls::HttpsConnectorBuilder::new().with_native_roots() {
        Ok(b) => b,
        // No CA certificates on this machine: plain-HTTP registries still
        // work; HTTPS ones fail with an untrusted-certificate error.
        Err(e) => {
            tracing::warn!("no system TLS roots ({e}); HTTPS registries will not be trusted");
            let roots = rustls::RootCertStore::empty();
            let config = rustls::ClientConfig::builder()
                .with_root_certificates(roots)
                .with_no_client_auth();
            hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(config)
        }
    };
    let https = builder.https_or_http().enable_http1().wrap_connector(http);
    Ok(Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(32)
        .build(https))
}

/// What went over the wire, for progress reports: counted here, in the
/// hook every request passes, so the component needs no progress API.
#[derive(Debug, Default)]
pub struct Traffic {
    /// Request body bytes sent (uploads).
    pub bytes_sent: AtomicU64,
    /// Objects written: answers 201 Created (blob uploads, mounts, manifests).
    pub objects_written: AtomicU64,
    /// Requests sent.
    pub requests: AtomicU64,
}

/// Hooks stored per component instance.
pub struct Hooks {
    client: Pooled,
    traffic: Arc<Traffic>,
    policy: Arc<Policy>,
}

impl Hooks {
    /// Hooks sending through `client` under `policy`, counting into `traffic`.
    pub fn new(client: Pooled, traffic: Arc<Traffic>, policy: Arc<Policy>) -> Self {
        Hooks {
            client,
            traffic,
            policy,
        }
    }
}

type SendFuture = Box<
    dyn Future<
            Output = Result<
                (
                    http::Response<WasiBody>,
                    Box<dyn Future<Output = Result<(), Error>> + Send>,
                ),
                Error,
            >,
        > + Send,
>;

impl WasiHttpHooks for Hooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        _options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> SendFuture {
        let client = self.client.clone();
        let traffic = self.traffic.clone();
        let policy = self.policy.clone();
        let authority = request
            .uri()
            .authority()
            .map(|a| a.to_string())
            .unwrap_or_default();
        Box::new(async move {
            if policy.admit(&authority).await.is_err() {
                tracing::warn!(host = %authority, "refused: not a registry this command names, nor one it was sent to");
                return Err(Error::HttpRequestDenied);
            }
            let (parts, body) = request.into_parts();
            // GET, HEAD and zero-length writes carry no body: hand hyper a
            // finished one, so it neither frames it as chunked nor leaves a
            // pooled connection with a half-sent request.
            let empty = parts.method == http::Method::GET
                || parts.method == http::Method::HEAD
                || parts
                    .headers
                    .get(http::header::CONTENT_LENGTH)
                    .is_some_and(|v| v == "0");
            let body = if empty {
                Empty::new().map_err(|never| match never {}).boxed_unsync()
            } else {
                let counter = traffic.clone();
                body.map_frame(move |frame| {
                    if let Some(data) = frame.data_ref() {
                        counter
                            .bytes_sent
                            .fetch_add(data.len() as u64, Ordering::Relaxed);
                    }
                    frame
                })
                .boxed_unsync()
            };
            traffic.requests.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(method = %parts.method, uri = %parts.uri, "sending");
            let request = http::Request::from_parts(parts, body);
            let response = client.request(request).await.map_err(client_error)?;
            tracing::debug!(status = %response.status(), "answered");
            policy.learn(&authority, response.status().as_u16(), response.headers());
            if response.status() == http::StatusCode::CREATED {
                traffic.objects_written.fetch_add(1, Ordering::Relaxed);
            }
            let response = response.map(|b| b.map_err(Error::from).boxed_unsync());
            let done: Box<dyn Future<Output = Result<(), Error>> + Send> =
                Box::new(async { Ok(()) });
            Ok((response, done))
        })
    }
}

/// Maps the pooled client's error onto wasi-http's (connect errors keep
/// their I/O kind, so "connection refused" and DNS failures stay distinct).
fn client_error(e: hyper_util::client::legacy::Error) -> Error {
    let mut source = e.source();
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return Error::Connect(std::io::Error::new(io.kind(), io.to_string()));
        }
        source = s.source();
    }
    if e.is_connect() {
        return Error::Connect(std::io::Error::other(format!("{e:#}")));
    }
    Error::InternalError(Some(format!("{e:#}")))
}
