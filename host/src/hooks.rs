//! The outgoing-request hook every request of the component passes: it
//! sends through one pooled HTTP client (keep-alive, TLS sessions reused,
//! system roots plus `--ca-file`), under the process-wide rate limits and
//! allow-list, and checks every upload's bytes against its digest as they
//! pass ([`crate::verify`]).

use std::error::Error as _;
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

use ocirelay_core::http::UPLOAD_MISMATCH;

use crate::error::HostError;
use crate::idle::{self, Activity, IdleBody};
use crate::policy::Policy;
use crate::verify::{upload_digest, VerifyingBody};

/// The pooled HTTP(S) client the hook sends through.
pub type Pooled = Client<hyper_rustls::HttpsConnector<HttpConnector>, WasiBody>;

/// Builds the shared client: one per process, cloned into every store. It
/// trusts the system's CA certificates and those in `ca_files` (PEM).
pub fn pooled_client(ca_files: &[PathBuf]) -> Result<Pooled, HostError> {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(Duration::from_secs(30)));
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(trust_roots(ca_files)?)
        .with_no_client_auth();
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Ok(Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(32)
        .build(https))
}

/// The system's CA certificates plus those of `ca_files`. A machine without
/// any still reaches plain-HTTP registries, so that is a warning; a
/// `--ca-file` that cannot be used is an error naming it.
fn trust_roots(ca_files: &[PathBuf]) -> Result<rustls::RootCertStore, HostError> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::CertificateDer;
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for e in &native.errors {
        tracing::debug!("system TLS roots: {e}");
    }
    let (added, _) = roots.add_parsable_certificates(native.certs);
    if added == 0 && ca_files.is_empty() {
        tracing::warn!("no system TLS roots; HTTPS registries will not be trusted");
    }
    for path in ca_files {
        let bad = |why: String| HostError::Usage(format!("--ca-file {}: {why}", path.display()));
        let certs = CertificateDer::pem_file_iter(path)
            .map_err(|e| bad(e.to_string()))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| bad(e.to_string()))?;
        if certs.is_empty() {
            return Err(bad("no PEM certificate in it".into()));
        }
        for cert in certs {
            roots
                .add(cert)
                .map_err(|e| bad(format!("not a usable CA certificate: {e}")))?;
        }
    }
    Ok(roots)
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
    /// Calls from the component into the host (WASI and wasi-http
    /// functions), counted only at `RUST_LOG=debug`: what a streamed copy's
    /// CPU goes to.
    pub host_calls: AtomicU64,
}

/// Hooks stored per component instance.
pub struct Hooks {
    client: Pooled,
    traffic: Arc<Traffic>,
    policy: Arc<Policy>,
    /// How long a request may go without progress.
    idle_timeout: Duration,
    /// Whether upload bodies are checked against their digest here.
    pub verify_uploads: bool,
}

impl Hooks {
    /// Hooks sending through `client` under `policy`, counting into
    /// `traffic`, failing requests idle for `idle_timeout`.
    pub fn new(
        client: Pooled,
        traffic: Arc<Traffic>,
        policy: Arc<Policy>,
        idle_timeout: Duration,
    ) -> Self {
        Hooks {
            client,
            traffic,
            policy,
            idle_timeout,
            verify_uploads: true,
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
        let idle = self.idle_timeout;
        let verify = self.verify_uploads;
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
            // Every frame of the upload is progress.
            let activity = Activity::new();
            let body = if empty {
                Empty::new().map_err(|never| match never {}).boxed_unsync()
            } else {
                let (counter, activity) = (traffic.clone(), activity.clone());
                let counted = body.map_frame(move |frame| {
                    if let Some(data) = frame.data_ref() {
                        counter
                            .bytes_sent
                            .fetch_add(data.len() as u64, Ordering::Relaxed);
                    }
                    activity.touch();
                    frame
                });
                // An upload's PUT: its bytes must be what its digest says.
                let length = parts
                    .headers
                    .get(http::header::CONTENT_LENGTH)
                    .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
                match (upload_digest(&parts.uri), length) {
                    (Some(digest), Some(size)) if verify && parts.method == http::Method::PUT => {
                        let mismatch = |m: String| Error::InternalError(Some(m));
                        VerifyingBody::new(counted, digest, size, mismatch).boxed_unsync()
                    }
                    _ => counted.boxed_unsync(),
                }
            };
            traffic.requests.fetch_add(1, Ordering::Relaxed);
            // Queries of signed CDN URLs and upload states carry secrets.
            let shown = shown_uri(&parts.uri);
            tracing::debug!(method = %parts.method, uri = %shown, "sending");
            let request = http::Request::from_parts(parts, body);
            let Some(response) = idle::within(&activity, idle, client.request(request)).await
            else {
                tracing::warn!(host = %authority, ?idle, "no progress; giving up on this try");
                return Err(Error::ConnectionReadTimeout);
            };
            let response = response.map_err(client_error)?;
            tracing::debug!(status = %response.status(), "answered");
            policy.learn(&authority, response.status().as_u16(), response.headers());
            if response.status() == http::StatusCode::CREATED {
                traffic.objects_written.fetch_add(1, Ordering::Relaxed);
            }
            let response = response.map(|b| {
                let body = b.map_err(Error::from);
                IdleBody::new(body, idle, Error::ConnectionReadTimeout).boxed_unsync()
            });
            let done: Box<dyn Future<Output = Result<(), Error>> + Send> =
                Box::new(async { Ok(()) });
            Ok((response, done))
        })
    }
}

/// `uri` as logs show it: its query, if any, as `?…`.
fn shown_uri(uri: &http::Uri) -> String {
    let path = uri.path();
    let base = match (uri.scheme_str(), uri.authority()) {
        (Some(scheme), Some(authority)) => format!("{scheme}://{authority}{path}"),
        _ => path.to_string(),
    };
    match uri.query() {
        Some(_) => format!("{base}?…"),
        None => base,
    }
}

/// Maps the pooled client's error onto wasi-http's (connect errors keep
/// their I/O kind, so "connection refused" and DNS failures stay distinct;
/// TLS failures say so, and why, in a warning).
fn client_error(e: hyper_util::client::legacy::Error) -> Error {
    // An upload our own check stopped: said as is, for the component to
    // report as content that does not match, not as a broken connection.
    let mut source = e.source();
    while let Some(s) = source {
        if let Some(Error::InternalError(Some(m))) = s.downcast_ref::<Error>() {
            if m.starts_with(UPLOAD_MISMATCH) {
                return Error::InternalError(Some(m.clone()));
            }
        }
        source = s.source();
    }
    if let Some(tls) = tls_error(&e) {
        tracing::warn!("TLS: {tls}");
        return match tls {
            rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented => {
                Error::TlsCertificateError
            }
            _ => Error::TlsProtocolError,
        };
    }
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

/// The TLS failure behind `e`, if that is what it is: looked for through
/// error sources and through I/O errors wrapped in I/O errors (hyper-rustls
/// wraps tokio-rustls's).
fn tls_error<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut current = Some(e);
    while let Some(e) = current {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        current = match e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => e.source(),
        };
    }
    None
}
