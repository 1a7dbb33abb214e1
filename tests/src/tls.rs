//! The tests' own certificate authority, so that test registries speak
//! HTTPS as real ones do. Its key is fixed and public (it is trusted by
//! nothing but these tests' own runs of ocirelay), so every test process
//! trusts one CA file, written once beside the binaries; the certificates
//! of registries and token servers are made from it at run time.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

/// The CA's key (P-256, PKCS#8). Test-only: never trust this CA elsewhere.
const CA_KEY: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgh+amIkQhCMGH8B2q
ukMcZwIcOqXZjsz0U3xsmK5idL2hRANCAAS0aaeKCEzjMi7SSY0uVaS/8vSt6Rsk
n2t8oC5EvbXJ0ZWuhE7xBZx8vlKtNONu+NifGkD9UaZy12St8S/zvM0E
-----END PRIVATE KEY-----
";

/// The address HTTPS test servers listen on: loopback, but not one
/// ocirelay speaks plain HTTP to by default (only `localhost` and
/// `127.0.0.1` are).
pub const TLS_HOST: &str = "127.0.0.2";

fn ca() -> (rcgen::CertificateParams, rcgen::KeyPair) {
    let key = rcgen::KeyPair::from_pem(CA_KEY).expect("the test CA key");
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "ocirelay test CA");
    (params, key)
}

/// The CA certificate as a PEM file (what `--ca-file` is given).
pub fn ca_file() -> &'static Path {
    static FILE: OnceLock<PathBuf> = OnceLock::new();
    FILE.get_or_init(|| {
        let path = crate::cli::cache_dir().join("test-ca.pem");
        if !path.exists() {
            let (params, key) = ca();
            let cert = params.self_signed(&key).expect("self-signing the CA");
            // Write then rename: test processes start side by side.
            let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
            std::fs::write(&tmp, cert.pem()).expect("writing the test CA");
            std::fs::rename(&tmp, &path).expect("placing the test CA");
        }
        path
    })
}

/// A server certificate for `TLS_HOST` signed by the CA, and its key, as PEM.
fn server_pem() -> (String, String) {
    let (ca_params, ca_key) = ca();
    let issuer = rcgen::Issuer::from_params(&ca_params, &ca_key);
    let key = rcgen::KeyPair::generate().expect("a server key");
    let params =
        rcgen::CertificateParams::new(vec![TLS_HOST.to_string()]).expect("server parameters");
    let cert = params
        .signed_by(&key, &issuer)
        .expect("signing the server certificate");
    (cert.pem(), key.serialize_pem())
}

/// A server certificate and key as PEM files in `dir` (for docker-registry).
pub fn server_files(dir: &Path) -> (PathBuf, PathBuf) {
    let (cert, key) = server_pem();
    let paths = (dir.join("server.pem"), dir.join("server.key"));
    std::fs::write(&paths.0, cert).expect("writing the certificate");
    std::fs::write(&paths.1, key).expect("writing the key");
    paths
}

/// A TLS server configuration with a fresh certificate for `TLS_HOST`.
pub fn server_config() -> Arc<rustls::ServerConfig> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let (cert, key) = server_pem();
    let cert = CertificateDer::from_pem_slice(cert.as_bytes()).expect("the certificate");
    let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).expect("the key");
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .expect("a TLS server configuration");
    Arc::new(config)
}

/// A connection to a test server: plain, or TLS trusting the test CA.
pub trait Stream: Read + Write + Send {}
impl<T: Read + Write + Send> Stream for T {}

/// Connects to `host` (`ip:port`), over TLS when `tls`.
pub fn connect(host: &str, tls: bool) -> Box<dyn Stream> {
    let tcp = TcpStream::connect(host).unwrap_or_else(|e| panic!("connecting to {host}: {e}"));
    wrap(tcp, host, tls).unwrap_or_else(|| panic!("{host} is no IP address"))
}

/// `tcp`, a connection to `host`, as is or (when `tls`) in a TLS client
/// that trusts the test CA; `None` when `host` names no server.
pub fn wrap(tcp: TcpStream, host: &str, tls: bool) -> Option<Box<dyn Stream>> {
    if !tls {
        return Some(Box::new(tcp));
    }
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, ServerName};
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca_file()).expect("the test CA") {
        roots
            .add(cert.expect("the test CA"))
            .expect("a CA certificate");
    }
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let ip = host.rsplit_once(':').map_or(host, |(ip, _)| ip).to_string();
    let name = ServerName::try_from(ip).ok()?;
    let conn = rustls::ClientConnection::new(Arc::new(config), name).expect("a TLS client");
    Some(Box::new(rustls::StreamOwned::new(conn, tcp)))
}
