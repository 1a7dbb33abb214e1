//! Benchmarks ocirelay beside skopeo on the same fixtures, on loopback
//! registries with tmpfs storage. Run through `bench/run`, which builds the
//! release binary and installs the tools this needs.
//!
//! Each command runs under GNU time (`/usr/bin/time -f "%e %M"`) for its
//! peak RSS, timed from here for wall time; the table shows medians of the runs, and the
//! registry's access log gives request counts.

use std::process::Command;

use ocirelay_tests::{platform, Auth, Flavour, Layout, Registry};

struct Measured {
    seconds: Vec<f64>,
    peak_kib: Vec<u64>,
    requests: usize,
}

fn median_f(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn median_u(v: &mut [u64]) -> u64 {
    v.sort_unstable();
    v[v.len() / 2]
}

/// Runs `argv` `runs` times; returns timings and the registry requests of one run.
fn measure(registry: &Registry, runs: usize, argv: &[&str], env: &[(&str, &str)]) -> Measured {
    let mut seconds = Vec::new();
    let mut peak_kib = Vec::new();
    let mut requests = 0;
    for i in 0..runs {
        let before = registry.access_log().len();
        let started = std::time::Instant::now();
        let out = Command::new("/usr/bin/time")
            .args(["-f", "BENCH %e %M"])
            .args(argv)
            .envs(env.iter().copied())
            .output()
            .expect("running /usr/bin/time (bench/run installs it)");
        let elapsed = started.elapsed().as_secs_f64();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{argv:?} failed:\n{stderr}");
        let line = stderr
            .lines()
            .rev()
            .find(|l| l.starts_with("BENCH "))
            .expect("time's output");
        let mut fields = line.split_whitespace().skip(1);
        // GNU time's wall clock has 10 ms steps: ours is finer.
        let _coarse = fields.next();
        seconds.push(elapsed);
        peak_kib.push(fields.next().and_then(|s| s.parse().ok()).unwrap_or(0));
        if i == 0 {
            requests = registry.access_log().len() - before;
        }
    }
    Measured {
        seconds,
        peak_kib,
        requests,
    }
}

fn report(name: &str, tool: &str, mut m: Measured) -> f64 {
    let s = median_f(&mut m.seconds);
    println!(
        "| {name:<22} | {tool:<8} | {:>9.1} ms | {:>8.1} MiB | {:>8} |",
        s * 1000.0,
        median_u(&mut m.peak_kib) as f64 / 1024.0,
        m.requests
    );
    s
}

fn main() {
    let mut args = std::env::args().skip(1);
    let ocirelay = args.next().expect("usage: bench OCIRELAY_BINARY [RUNS]");
    let runs: usize = args.next().and_then(|r| r.parse().ok()).unwrap_or(15);
    let cache = ocirelay_tests::registry::temp_dir("ocirelay-bench-cache-");
    let cache_env = [(
        "OCIRELAY_CACHE_DIR",
        cache.path().to_str().expect("utf-8 path"),
    )];

    let registry = Registry::start(Auth::None);
    let mut layout = Layout::new();
    let amd64 = layout.image(
        Flavour::Oci,
        &platform("linux", "amd64", None),
        &[b"bench amd64"],
    );
    let arm64 = layout.image(
        Flavour::Oci,
        &platform("linux", "arm64", Some("v8")),
        &[b"bench arm64"],
    );
    let index = layout.index(Flavour::Oci, &[amd64, arm64]);
    layout.tag("bench", &index);
    layout.push(&registry, "bench/app", "bench");
    let reference = registry.reference("bench/app:bench");
    let docker_ref = format!("docker://{reference}");

    // Warm-up: the first run compiles the component into the cache.
    measure(
        &registry,
        1,
        &[&ocirelay, "lookup", "--head", &reference],
        &cache_env,
    );

    println!("{runs} runs each, medians; requests counted in the registry's access log\n");
    println!("| scenario               | tool     |      wall     |  peak RSS    | requests |");
    println!("|------------------------|----------|---------------|--------------|----------|");
    let ours = report(
        "lookup --head (HEAD)",
        "ocirelay",
        measure(
            &registry,
            runs,
            &[&ocirelay, "lookup", "--head", &reference],
            &cache_env,
        ),
    );
    let theirs = report(
        "inspect --raw (GET)",
        "skopeo",
        measure(
            &registry,
            runs,
            &[
                "skopeo",
                "inspect",
                "--raw",
                "--tls-verify=false",
                &docker_ref,
            ],
            &[],
        ),
    );
    report(
        "lookup (synth. index)",
        "ocirelay",
        measure(
            &registry,
            runs,
            &[&ocirelay, "lookup", &reference],
            &cache_env,
        ),
    );
    report(
        "inspect (config)",
        "skopeo",
        measure(
            &registry,
            runs,
            &["skopeo", "inspect", "--tls-verify=false", &docker_ref],
            &[],
        ),
    );
    println!(
        "\nlookup --head / skopeo inspect --raw: {:.2}x",
        ours / theirs
    );
}
