//! Benchmarks the edge service (`bench/service`): `wrk` against its routes
//! (a manifest by digest, a tag list) under stock `wasmtime serve` and
//! under `ocirelay serve`, and on the JavaScript engines workerd and Deno
//! (edge/workers), beside the upstream registry itself; and a
//! 256 MiB blob, and a 64 MiB range of it, pulled through the mirror beside
//! pulling them from the registry directly, with the server's peak RSS.
//! A benchmark, not a test: it prints figures, it asserts nothing.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ocirelay_core::Digest;
use ocirelay_tests::edge::{self, Engine};
use ocirelay_tests::http1::exchange;
use ocirelay_tests::measure::median;
use ocirelay_tests::registry::free_port;
use ocirelay_tests::service::wasmtime_cli;
use ocirelay_tests::{bytes, platform, Auth, Flavour, Layout, Registry};

const MIB: usize = 1024 * 1024;

/// A server under test, killed when dropped.
struct Server {
    name: &'static str,
    child: Child,
    addr: String,
}

impl Server {
    fn start(name: &'static str, mut cmd: Command, addr: String) -> Server {
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        let deadline = Instant::now() + Duration::from_secs(120);
        while std::net::TcpStream::connect(&addr).is_err() {
            assert!(Instant::now() < deadline, "{name} never listened");
            std::thread::sleep(Duration::from_millis(50));
        }
        Server { name, child, addr }
    }

    /// The server's peak resident set so far (`VmHWM`), in MiB.
    fn peak_mib(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
            .map_or(0.0, |kib| kib / 1024.0)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What `wrk` measured.
struct Load {
    requests_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: bool,
    /// Requests answered in all.
    total: u64,
    /// Answers that were not 2xx (or 3xx).
    non_2xx: u64,
}

/// What registry clients accept: without it a registry will not serve an
/// OCI manifest (and the service ignores it).
const ACCEPT: &str = "Accept: application/vnd.oci.image.manifest.v1+json, \
    application/vnd.oci.image.index.v1+json, \
    application/vnd.docker.distribution.manifest.v2+json, \
    application/vnd.docker.distribution.manifest.list.v2+json";

fn wrk(url: &str, connections: usize, seconds: u64, header: Option<&str>) -> Load {
    let out = Command::new("wrk")
        .args(header.map(|h| ["-H", h]).into_iter().flatten())
        .args([
            "--latency",
            "-H",
            ACCEPT,
            "-t",
            &connections.min(2).to_string(),
        ])
        .args([
            "-c",
            &connections.to_string(),
            "-d",
            &format!("{seconds}s"),
            url,
        ])
        .output()
        .expect("running wrk (bench/service installs it)");
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |prefix: &str| {
        text.lines()
            .map(str::trim)
            .find_map(|l| l.strip_prefix(prefix))
            .map(|v| v.trim().to_string())
    };
    let ms = |v: Option<String>| {
        v.and_then(|v| {
            let (number, unit) = v.split_at(v.find(|c: char| c.is_alphabetic())?);
            let n: f64 = number.parse().ok()?;
            Some(match unit {
                "us" => n / 1000.0,
                "ms" => n,
                "s" => n * 1000.0,
                _ => n,
            })
        })
        .unwrap_or(f64::NAN)
    };
    Load {
        requests_per_sec: field("Requests/sec:")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0),
        p50_ms: ms(field("50%")),
        p99_ms: ms(field("99%")),
        errors: text.contains("Non-2xx") || text.contains("Socket errors"),
        total: text
            .lines()
            .find_map(|l| l.trim().split_once(" requests in "))
            .and_then(|(n, _)| n.trim().parse().ok())
            .unwrap_or(0),
        non_2xx: field("Non-2xx or 3xx responses:")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
    }
}

/// Seconds `curl` takes to GET `url` to nowhere, checking it got `size` bytes.
fn pull(url: &str, size: usize) -> f64 {
    pull_part(url, None, size)
}

/// [`pull`] of bytes `range` (`first-last`), a 206 of `size` bytes.
fn pull_part(url: &str, range: Option<&str>, size: usize) -> f64 {
    curl(url, range, size, false)
}

/// Seconds `curl` takes to GET `url` (following redirects when `follow`).
fn curl(url: &str, range: Option<&str>, size: usize, follow: bool) -> f64 {
    let started = Instant::now();
    let out = Command::new("curl")
        .args(follow.then_some("-L"))
        .args([
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{size_download} %{http_code}",
        ])
        .args(range.map(|r| ["-r", r]).into_iter().flatten())
        .arg(url)
        .output()
        .expect("running curl");
    let seconds = started.elapsed().as_secs_f64();
    let report = String::from_utf8_lossy(&out.stdout);
    let status = if range.is_some() { 206 } else { 200 };
    assert_eq!(report.trim(), format!("{size} {status}"), "{url}");
    seconds
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let ocirelay = args
        .get(1)
        .expect("usage: bench_service OCIRELAY [SECONDS [PULLS]]");
    let seconds: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(10);
    let pulls: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(5);

    let registry = Registry::start_plain(Auth::None);
    let mut layout = Layout::new();
    let image = layout.image(
        Flavour::Oci,
        &platform("linux", "amd64", None),
        &[b"a small layer"],
    );
    layout.tag("v1", &image);
    layout.push(&registry, "bench/app", "v1");
    // A tag list of 40 tags (most repositories have fewer; some thousands).
    for i in 0..39 {
        let tag = format!("1.{i}");
        layout.tag(&tag, &image);
        layout.push(&registry, "bench/app", &tag);
    }
    let big_layer = bytes(3, 256 * MIB);
    let mut big_layout = Layout::new();
    let big = big_layout.image(
        Flavour::Oci,
        &platform("linux", "amd64", None),
        &[&big_layer],
    );
    big_layout.tag("big", &big);
    big_layout.push(&registry, "bench/app", "big");
    let blob = ocirelay_core::Digest::sha256(&big_layer);
    // The same small image on a registry that wants a token (anonymous
    // pulls allowed), as Docker Hub does.
    let token_registry = Registry::start_plain(Auth::Token {
        users: vec![("bench".into(), "bench".into())],
        public_repositories: vec!["bench/app".into()],
    });
    layout.push(&token_registry, "bench/app", "v1");

    let dir = tempfile::tempdir().expect("a temporary directory");
    let config = dir.path().join("service.json");
    let config_json = serde_json::json!({"upstreams": [
        {"registry": registry.host(), "repositories": ["bench/*"]},
        {"registry": token_registry.host(), "repositories": ["bench/*"]}]});
    std::fs::write(&config, config_json.to_string()).expect("writing the config");
    let wasm = dir.path().join("service.wasm");
    let built = Command::new(ocirelay)
        .arg("build-service")
        .arg(&config)
        .arg("--output")
        .arg(&wasm)
        .status()
        .expect("running ocirelay build-service");
    assert!(built.success());
    println!(
        "service component: {} KB",
        std::fs::metadata(&wasm).map_or(0, |m| m.len() / 1000)
    );

    let servers = start_servers(ocirelay, &config, &wasm);
    let reference = format!("{}/bench/app:v1", registry.host());
    let manifest_path = format!("/v2/bench/app/manifests/{}", image.digest);

    println!();
    println!("| route | server | connections | requests/s | p50 | p99 |");
    println!("|---|---|---|---|---|---|");
    let mut rows: Vec<(String, &str, String)> = Vec::new();
    for server in &servers {
        rows.push((
            "GET /index/REF".into(),
            server.name,
            format!("/index/{reference}"),
        ));
    }
    for server in &servers {
        rows.push((
            "GET /v2/NAME/manifests/DIGEST".into(),
            server.name,
            manifest_path.clone(),
        ));
    }
    rows.push((
        "GET /v2/NAME/manifests/DIGEST".into(),
        "registry",
        manifest_path.clone(),
    ));
    let from_token_registry = format!("{manifest_path}?ns={}", token_registry.host());
    for server in &servers {
        rows.push((
            "the same, token-auth upstream".into(),
            server.name,
            from_token_registry.clone(),
        ));
    }
    rows.push((
        "the same, token-auth upstream".into(),
        "token registry",
        manifest_path.clone(),
    ));
    for server in &servers {
        rows.push((
            "GET /v2/NAME/tags/list (40 tags)".into(),
            server.name,
            "/v2/bench/app/tags/list".into(),
        ));
    }
    rows.push((
        "GET /v2/NAME/tags/list (40 tags)".into(),
        "registry",
        "/v2/bench/app/tags/list".into(),
    ));
    let bearer = format!("Authorization: Bearer {}", anonymous_token(&token_registry));
    for (route, name, path) in &rows {
        let (addr, header) = match *name {
            "registry" => (registry.host().to_string(), None),
            "token registry" => (token_registry.host().to_string(), Some(bearer.as_str())),
            _ => (
                servers
                    .iter()
                    .find(|s| s.name == *name)
                    .map(|s| s.addr.clone())
                    .unwrap_or_default(),
                None,
            ),
        };
        for connections in [1, 8] {
            let url = format!("http://{addr}{path}");
            let load = wrk(&url, connections, seconds, header);
            println!(
                "| {route} | {name} | {connections} | {:.0} | {:.2} ms | {:.2} ms |{}",
                load.requests_per_sec,
                load.p50_ms,
                load.p99_ms,
                if load.errors { " errors!" } else { "" }
            );
        }
    }

    println!();
    println!("| 256 MiB blob pull ({pulls} runs, median) | wall | MiB/s | server peak RSS |");
    println!("|---|---|---|---|");
    let direct = median(
        (0..pulls)
            .map(|_| {
                pull(
                    &format!("http://{}/v2/bench/app/blobs/{blob}", registry.host()),
                    big_layer.len(),
                )
            })
            .collect(),
    );
    println!(
        "| registry directly | {:.0} ms | {:.0} | - |",
        direct * 1000.0,
        256.0 / direct
    );
    for server in &servers {
        let url = format!("http://{}/v2/bench/app/blobs/{blob}", server.addr);
        let wall = median((0..pulls).map(|_| pull(&url, big_layer.len())).collect());
        println!(
            "| through {} | {:.0} ms | {:.0} ({:.0}% of direct) | {:.1} MiB |",
            server.name,
            wall * 1000.0,
            256.0 / wall,
            100.0 * direct / wall,
            server.peak_mib()
        );
    }

    // Under load: connections past what a pooling host instantiates at once.
    println!();
    println!("| load: manifest by digest | server | connections | requests/s | p50 | p99 | not 2xx | peak RSS |");
    println!("|---|---|---|---|---|---|---|---|");
    for connections in [64, 256, 1000] {
        let mut targets: Vec<(&str, String)> =
            servers.iter().map(|s| (s.name, s.addr.clone())).collect();
        targets.push(("registry", registry.host().to_string()));
        for (name, addr) in targets {
            let load = wrk(
                &format!("http://{addr}{manifest_path}"),
                connections,
                seconds,
                None,
            );
            let rss = servers
                .iter()
                .find(|s| s.name == name)
                .map_or("-".to_string(), |s| format!("{:.0} MiB", s.peak_mib()));
            println!(
                "| | {name} | {connections} | {:.0} | {:.2} ms | {:.2} ms | {} of {} | {rss} |",
                load.requests_per_sec, load.p50_ms, load.p99_ms, load.non_2xx, load.total
            );
        }
    }

    redirected(ocirelay, &registry, &blob, big_layer.len(), pulls);

    // A 64 MiB part (as a resumed or lazy pull reads it): passed on, not
    // hashed (see the README's rule for ranges).
    let range = format!("{}-{}", 64 * MIB, 128 * MIB - 1);
    println!();
    println!("| 64 MiB range of it ({pulls} runs, median) | wall | MiB/s | server peak RSS |");
    println!("|---|---|---|---|");
    let part = |addr: &str| {
        let url = format!("http://{addr}/v2/bench/app/blobs/{blob}");
        median(
            (0..pulls)
                .map(|_| pull_part(&url, Some(&range), 64 * MIB))
                .collect(),
        )
    };
    let direct = part(registry.host());
    println!(
        "| registry directly | {:.0} ms | {:.0} | - |",
        direct * 1000.0,
        64.0 / direct
    );
    for server in &servers {
        let wall = part(&server.addr);
        println!(
            "| through {} | {:.0} ms | {:.0} ({:.0}% of direct) | {:.1} MiB |",
            server.name,
            wall * 1000.0,
            64.0 / wall,
            100.0 * direct / wall,
            server.peak_mib()
        );
    }
}

/// The 256 MiB blob from an upstream that redirects blob reads to storage
/// (a fault proxy in front of the registry, redirecting to it), through
/// stock `wasmtime serve`: with `redirect-blobs` (the client follows the
/// 307 and reads storage itself) and without (the service follows and
/// checks), beside reading storage directly, the runs interleaved so that
/// each pair meets the same machine.
fn redirected(ocirelay: &str, registry: &Registry, blob: &Digest, size: usize, pulls: usize) {
    use ocirelay_tests::fault_proxy::{Fault, FaultProxy};
    let proxy = FaultProxy::start(registry.host());
    let storage = format!("http://{}/v2/bench/app/blobs/{blob}", registry.host());
    let redirect = Fault::Serve(307, vec![("Location".into(), storage.clone())], vec![]);
    proxy.add("GET", "/blobs/", redirect, usize::MAX);
    println!();
    println!(
        "| 256 MiB blob, upstream redirecting to storage ({pulls} runs, median) | wall | MiB/s |"
    );
    println!("|---|---|---|");
    let mut rows = Vec::new();
    for passed_on in [true, false] {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let config = dir.path().join("service.json");
        let json = serde_json::json!({"upstreams": [{"registry": proxy.host(),
            "repositories": ["bench/*"], "redirect-blobs": passed_on}]});
        std::fs::write(&config, json.to_string()).expect("writing the config");
        let wasm = dir.path().join("service.wasm");
        let built = Command::new(ocirelay)
            .args(["build-service", "--output"])
            .arg(&wasm)
            .arg(&config)
            .status()
            .expect("running ocirelay build-service");
        assert!(built.success());
        let addr = format!("127.0.0.1:{}", free_port());
        let mut wasmtime = Command::new(wasmtime_cli());
        wasmtime
            .arg("serve")
            .arg(format!("--addr={addr}"))
            .arg(&wasm);
        let server = Server::start("wasmtime serve", wasmtime, addr);
        let url = format!("http://{}/v2/bench/app/blobs/{blob}", server.addr);
        let (mut through, mut direct) = (Vec::new(), Vec::new());
        for _ in 0..pulls {
            direct.push(curl(&storage, None, size, false));
            through.push(curl(&url, None, size, true));
        }
        let (wall, direct) = (median(through), median(direct));
        let how = match passed_on {
            true => "redirect-blobs: the client sent to storage",
            false => "the service following and checking",
        };
        rows.push(format!(
            "| through wasmtime serve, {how} | {:.0} ms | {:.0} ({:.0}% of direct: {:.0} ms) |",
            wall * 1000.0,
            256.0 / wall,
            100.0 * direct / wall,
            direct * 1000.0
        ));
    }
    for row in rows {
        println!("{row}");
    }
}

/// A token for pulling `bench/app` from `registry`, as a client gets one
/// (the registry itself is then asked with it, a ceiling for the service).
fn anonymous_token(registry: &Registry) -> String {
    let realm = registry.token_server().expect("token auth").realm();
    let rest = realm.strip_prefix("http://").expect("a plain realm");
    let (addr, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let service = ocirelay_tests::token_server::SERVICE;
    let query = format!("service={service}&scope=repository:bench/app:pull");
    let conn = std::net::TcpStream::connect(addr).expect("reaching the token server");
    let answer = exchange(conn, addr, "GET", &format!("{path}?{query}"), &[], b"");
    answer.json()["token"]
        .as_str()
        .expect("a token")
        .to_string()
}

fn start_servers(ocirelay: &str, config: &Path, wasm: &Path) -> Vec<Server> {
    let port = free_port();
    let mut wasmtime = Command::new(wasmtime_cli());
    wasmtime
        .arg("serve")
        .arg(format!("--addr=127.0.0.1:{port}"))
        .arg(wasm);
    let a = Server::start("wasmtime serve", wasmtime, format!("127.0.0.1:{port}"));
    let port = free_port();
    let mut native = Command::new(ocirelay);
    native
        .arg("serve")
        .arg(format!("--addr=127.0.0.1:{port}"))
        .arg(config);
    let b = Server::start("ocirelay serve", native, format!("127.0.0.1:{port}"));
    // The same component on JavaScript engines (edge/workers).
    let built = wasm.with_file_name("edge");
    let ca = ocirelay_tests::tls::ca_file();
    edge::build(wasm, &built, ca);
    let mut servers = vec![a, b];
    for (name, engine) in [("workerd", Engine::Workerd), ("deno", Engine::Deno)] {
        let addr = format!("127.0.0.1:{}", free_port());
        let mut command = Command::new(edge::binary(engine));
        command
            .args(edge::serve_args(engine, &built, &addr, ca))
            .env("DENO_NO_UPDATE_CHECK", "1");
        servers.push(Server::start(name, command, addr));
    }
    servers
}
