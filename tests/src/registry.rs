//! A real CNCF distribution registry (`/usr/bin/docker-registry`) on a free
//! loopback port with temporary storage, in one of three auth modes. It
//! speaks HTTPS, as real registries do, with a certificate from the tests'
//! own CA ([`crate::tls`]), on an address ocirelay does not treat as
//! plain-HTTP loopback; or plain HTTP on 127.0.0.1 ([`Registry::start_plain`]).
//! It is stopped when dropped.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::token_server::TokenServer;

/// The registry binary of Debian's `docker-registry` package.
pub const REGISTRY_BIN: &str = "/usr/bin/docker-registry";

/// How the registry authenticates.
pub enum Auth {
    /// No authentication.
    None,
    /// htpasswd Basic auth with one user.
    Basic {
        /// User name.
        user: String,
        /// Password.
        password: String,
    },
    /// Bearer tokens from a [`TokenServer`] (started with the registry).
    Token {
        /// Users the token server accepts.
        users: Vec<(String, String)>,
        /// Repositories anonymous callers may pull.
        public_repositories: Vec<String>,
    },
}

/// The header every answer of a test registry carries, naming it.
const ID_HEADER: &str = "X-Ocirelay-Test-Registry";

/// The `User-Agent` of the harness's own readiness probes, which
/// [`Registry::access_log`] leaves out: tests count what ocirelay sent.
const PROBE_AGENT: &str = "ocirelay-test-harness";

/// The name a registry whose files are in `dir` gives itself.
fn id_of(dir: &Path) -> String {
    dir.file_name().map_or_else(
        || "ocirelay-registry".into(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// Waits until the registry `child` answers on `host` as `id`: true then,
/// false if it exits first (it could not listen there). Panics after 20 s.
fn wait_ready(child: &mut Child, host: &str, id: &str, tls: bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        if answers_as(host, id, tls) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    panic!("the registry on {host} did not come up in 20 s");
}

/// Whether the server on `host` answers `GET /v2/` naming itself `id`.
fn answers_as(host: &str, id: &str, tls: bool) -> bool {
    let Ok(tcp) = TcpStream::connect(host) else {
        return false;
    };
    let _ = tcp.set_read_timeout(Some(Duration::from_secs(2)));
    let Some(mut conn) = crate::tls::wrap(tcp, host, tls) else {
        return false;
    };
    let request = format!("GET /v2/ HTTP/1.0\r\nHost: {host}\r\nUser-Agent: {PROBE_AGENT}\r\n\r\n");
    if conn.write_all(request.as_bytes()).is_err() {
        return false;
    }
    // The head is enough; a TLS server may close without a close_notify.
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match conn.read(&mut buf) {
            Ok(n) if n > 0 => head.extend_from_slice(&buf[..n]),
            _ => break,
        }
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    let line = format!(
        "{}: {}\r\n",
        ID_HEADER.to_ascii_lowercase(),
        id.to_ascii_lowercase()
    );
    head.starts_with("http/1.") && head.contains(&line)
}

/// A running registry.
pub struct Registry {
    child: Child,
    host: String,
    dir: tempfile::TempDir,
    token_server: Option<TokenServer>,
    credentials: Option<(String, String)>,
    ca_file: Option<PathBuf>,
}

/// A free loopback port (bound, then released for the caller to use).
pub fn free_port() -> u16 {
    free_port_on("127.0.0.1")
}

/// A free port on loopback address `ip`, never one handed out before in
/// this process: a port released is free for the kernel to give again, and
/// tests running side by side must not start two servers on one port.
pub fn free_port_on(ip: &str) -> u16 {
    static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    loop {
        let port = TcpListener::bind((ip, 0))
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("binding a loopback port");
        let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
        if handed_out.insert(port) {
            return port;
        }
    }
}

/// Temporary storage: tmpfs when there is one (disk timings here are erratic).
pub fn temp_dir(prefix: &str) -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    let builder = tempfile::Builder::new().prefix(prefix).to_owned();
    if shm.is_dir() {
        if let Ok(d) = builder.tempdir_in(shm) {
            return d;
        }
    }
    builder.tempdir().expect("creating a temporary directory")
}

impl Registry {
    /// Starts a registry that speaks HTTPS on 127.0.0.2, with a certificate
    /// from the tests' CA ([`Registry::ca_file`]), and waits until it answers.
    pub fn start(auth: Auth) -> Registry {
        Self::launch(auth, true, crate::tls::TLS_HOST, true)
    }

    /// Like [`Registry::start`], with token auth whose realm (the token
    /// server) speaks plain HTTP: a realm no HTTPS registry should name.
    pub fn start_with_plain_realm(auth: Auth) -> Registry {
        Self::launch(auth, true, crate::tls::TLS_HOST, false)
    }

    /// Starts a registry that speaks plain HTTP on 127.0.0.1 (as ocirelay
    /// does by default with loopback), and waits until it answers.
    pub fn start_plain(auth: Auth) -> Registry {
        Self::launch(auth, false, "127.0.0.1", false)
    }

    /// Starts a registry that speaks plain HTTP on 127.0.0.2, where ocirelay
    /// speaks HTTPS unless told the registry is insecure.
    pub fn start_insecure(auth: Auth) -> Registry {
        Self::launch(auth, false, crate::tls::TLS_HOST, false)
    }

    fn launch(auth: Auth, tls: bool, ip: &str, realm_tls: bool) -> Registry {
        assert!(
            Path::new(REGISTRY_BIN).exists(),
            "{REGISTRY_BIN} is missing: install Debian's docker-registry package (scripts/setup does)"
        );
        let dir = temp_dir("ocirelay-registry-");
        let storage = dir.path().join("storage");
        let mut auth_yaml = String::new();
        let mut token_server = None;
        let mut credentials = None;
        match auth {
            Auth::None => {}
            Auth::Basic { user, password } => {
                let hash = bcrypt::hash(&password, 4).expect("bcrypt");
                let file = dir.path().join("htpasswd");
                std::fs::write(&file, format!("{user}:{hash}\n")).expect("writing htpasswd");
                auth_yaml = format!(
                    "auth:\n  htpasswd:\n    realm: test-realm\n    path: {}\n",
                    file.display()
                );
                credentials = Some((user, password));
            }
            Auth::Token {
                users,
                public_repositories,
            } => {
                let server =
                    TokenServer::start(dir.path(), users.clone(), public_repositories, realm_tls);
                auth_yaml = format!(
                    "auth:\n  token:\n    realm: {}\n    service: {}\n    issuer: {}\n    rootcertbundle: {}\n",
                    server.realm(),
                    crate::token_server::SERVICE,
                    crate::token_server::ISSUER,
                    server.bundle_path().display()
                );
                credentials = users.into_iter().next();
                token_server = Some(server);
            }
        }
        let (tls_yaml, ca_file) = if tls {
            let ca = crate::tls::ca_file().to_path_buf();
            let (cert, key) = crate::tls::server_files(dir.path());
            let yaml = format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                cert.display(),
                key.display()
            );
            (yaml, Some(ca))
        } else {
            (String::new(), None)
        };
        // Every answer names the registry, so that the test knows it speaks
        // to its own and not to one that holds the port it was given.
        let id = id_of(dir.path());
        // A port free when chosen may be taken (by a client's connection)
        // before the registry binds it: then the registry exits, and it is
        // started again on another port.
        for _ in 0..3 {
            let host = format!("{ip}:{}", free_port_on(ip));
            let config = format!(
                "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: false\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {host}\n  secret: ocirelay-test-secret\n  headers:\n    {ID_HEADER}: [{id}]\n{tls_yaml}{auth_yaml}",
                storage.display()
            );
            let config_path = dir.path().join("config.yml");
            std::fs::write(&config_path, config).expect("writing registry config");
            let access_log =
                std::fs::File::create(dir.path().join("access.log")).expect("access log");
            let error_log =
                std::fs::File::create(dir.path().join("registry.log")).expect("registry log");
            let mut child = Command::new(REGISTRY_BIN)
                .arg("serve")
                .arg(&config_path)
                .stdin(Stdio::null())
                .stdout(access_log)
                .stderr(error_log)
                .spawn()
                .expect("starting docker-registry");
            if wait_ready(&mut child, &host, &id, tls) {
                return Registry {
                    child,
                    host,
                    dir,
                    token_server,
                    credentials,
                    ca_file,
                };
            }
        }
        panic!(
            "the registry did not come up; its log:\n{}",
            std::fs::read_to_string(dir.path().join("registry.log")).unwrap_or_default()
        );
    }

    /// `IP:PORT`.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Whether it speaks HTTPS.
    pub fn is_tls(&self) -> bool {
        self.ca_file.is_some()
    }

    /// `IP:PORT/<repository>` (plus whatever the caller appends).
    pub fn reference(&self, rest: &str) -> String {
        format!("{}/{rest}", self.host)
    }

    /// The user and password the registry (or its token server) accepts.
    pub fn credentials(&self) -> Option<&(String, String)> {
        self.credentials.as_ref()
    }

    /// The PEM file of the CA that signed an HTTPS registry's certificate
    /// (the tests' CA).
    pub fn ca_file(&self) -> Option<&Path> {
        self.ca_file.as_deref()
    }

    /// The token server, in token mode.
    pub fn token_server(&self) -> Option<&TokenServer> {
        self.token_server.as_ref()
    }

    /// Access-log lines so far (one per request the registry served, the
    /// harness's readiness probes left out).
    pub fn access_log(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.path().join("access.log"))
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("HTTP/1.") && !l.contains(PROBE_AGENT))
            .map(str::to_string)
            .collect()
    }

    /// The requests served since access-log line `from`: each request line
    /// (`GET /v2/… HTTP/1.1`) with the status answered.
    pub fn served(&self, from: usize) -> Vec<(String, u16)> {
        self.access_log()
            .get(from..)
            .unwrap_or_default()
            .iter()
            .filter_map(|l| {
                let mut quoted = l.split('"');
                let request = quoted.nth(1)?.to_string();
                let status = quoted.next()?.split_whitespace().next()?.parse().ok()?;
                Some((request, status))
            })
            .collect()
    }

    /// Access-log lines of requests with this method whose path contains `needle`.
    pub fn requests_matching(&self, method: &str, needle: &str) -> usize {
        let prefix = format!("\"{method} ");
        self.access_log()
            .iter()
            .filter(|l| l.contains(&prefix) && l.contains(needle))
            .count()
    }

    /// The storage root.
    pub fn storage(&self) -> PathBuf {
        self.dir.path().join("storage")
    }

    /// Where the registry keeps the bytes of blob `digest` (to corrupt them
    /// behind its back).
    pub fn blob_data(&self, digest: &ocirelay_core::Digest) -> PathBuf {
        self.storage()
            .join("docker/registry/v2/blobs")
            .join(digest.algorithm().name())
            .join(&digest.hex()[..2])
            .join(digest.hex())
            .join("data")
    }

    /// Flips one byte of blob `digest` as stored: same size, other content.
    pub fn corrupt_blob(&self, digest: &ocirelay_core::Digest, at: usize) {
        let path = self.blob_data(digest);
        let mut bytes = std::fs::read(&path).expect("the stored blob");
        bytes[at] ^= 0xff;
        std::fs::write(&path, bytes).expect("corrupting the blob");
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        // SIGTERM lets it exit cleanly; kill is the fallback.
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_port_is_handed_out_twice() {
        // Enough that the kernel, left alone, would give some port twice.
        let ports: BTreeSet<u16> = (0..2000).map(|_| free_port()).collect();
        assert_eq!(ports.len(), 2000);
    }

    #[test]
    fn a_registry_is_known_by_its_own_answers_only() {
        let registry = Registry::start_plain(Auth::None);
        let id = id_of(registry.dir.path());
        assert!(answers_as(registry.host(), &id, false));
        assert!(!answers_as(registry.host(), "another-registry", false));
        assert_eq!(
            registry.access_log(),
            Vec::<String>::new(),
            "probes are not counted"
        );

        // A server that holds a port and answers, but is not the registry.
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let host = listener.local_addr().unwrap().to_string();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten().take(1) {
                let mut conn = conn;
                let mut buf = [0u8; 1024];
                let _ = conn.read(&mut buf);
                let _ = conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}");
            }
        });
        assert!(!answers_as(&host, &id, false));
        let nobody = format!("127.0.0.1:{}", free_port());
        assert!(!answers_as(&nobody, &id, false));
    }

    #[test]
    fn a_registry_that_exits_is_not_waited_for() {
        let mut child = Command::new("true").spawn().unwrap();
        let host = format!("127.0.0.1:{}", free_port());
        assert!(!wait_ready(&mut child, &host, "x", false));
    }
}
