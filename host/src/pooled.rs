//! The pooled HTTP(S) client every hook sends through (one per process,
//! trusting the system's CA certificates and `--ca-file`s), and its errors
//! said in wasi-http's terms.

use std::error::Error as _;
use std::path::PathBuf;
use std::time::Duration;

use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use ocirelay_core::http::UPLOAD_MISMATCH;
use wasmtime_wasi_http::{Error, WasiBody};

use crate::error::HostError;

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

/// Maps the pooled client's error onto wasi-http's (connect errors keep
/// their I/O kind, so "connection refused" and DNS failures stay distinct;
/// TLS failures say so, and why, in a warning).
pub fn client_error(e: hyper_util::client::legacy::Error) -> Error {
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
