//! Benchmarks ocirelay beside skopeo on the same fixtures, on loopback
//! registries with tmpfs storage. Run through `bench/run`, which builds the
//! release binary and installs the tools this needs.
//!
//! Each command runs under GNU time (`/usr/bin/time -f "%M"`) for its peak
//! RSS and is timed from here for wall time; the tables show medians, and
//! the registries' access logs give request counts.
//!
//! Like is compared with like: a manifest GET beside `skopeo inspect --raw`
//! (a GET too); every copy goes to a fresh registry, and skopeo's blob-info
//! cache is emptied before each of its runs as ocirelay starts each run
//! with an empty cache; ocirelay's first run, which compiles the component
//! (later runs load it compiled), is a row of its own.
//!
//! [`growth`] adds tables of the same copies at growing sizes.

mod growth;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use ocirelay_tests::{push_index, two_platforms, Auth, Flavour, Registry};

struct Run {
    seconds: f64,
    peak_kib: u64,
    /// User plus system CPU time of the command itself.
    cpu: f64,
}

/// Runs `argv` once under GNU time.
fn run(argv: &[&str], env: &[(&str, &str)]) -> Run {
    run_in(argv, env, None)
}

/// Runs `argv` once under GNU time, its standard input read from `stdin`.
fn run_in(argv: &[&str], env: &[(&str, &str)], stdin: Option<&Path>) -> Run {
    let input = match stdin {
        Some(path) => Stdio::from(std::fs::File::open(path).expect("the command's input")),
        None => Stdio::null(),
    };
    let started = Instant::now();
    let out = Command::new("/usr/bin/time")
        .args(["-f", "BENCH %M %U %S"])
        .args(argv)
        .envs(env.iter().copied())
        .stdin(input)
        .output()
        .expect("running /usr/bin/time (bench/run installs it)");
    let seconds = started.elapsed().as_secs_f64();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{argv:?} failed:\n{stderr}");
    let figures: Vec<f64> = stderr
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("BENCH "))
        .map(|v| {
            v.split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    let (peak_kib, cpu) = match figures.as_slice() {
        [peak, user, system] => (*peak as u64, user + system),
        _ => (0, 0.0),
    };
    Run {
        seconds,
        peak_kib,
        cpu,
    }
}

struct Row {
    scenario: String,
    tool: &'static str,
    seconds: f64,
    cpu: f64,
    peak_mib: f64,
    requests: usize,
}

/// The medians of a command's runs: what the tables show of them.
#[derive(Debug, Clone, Copy)]
struct Medians {
    seconds: f64,
    cpu: f64,
    peak_mib: f64,
}

impl Medians {
    fn of(runs: &[Run]) -> Medians {
        let median = |f: fn(&Run) -> f64| {
            let mut v: Vec<f64> = runs.iter().map(f).collect();
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        Medians {
            seconds: median(|r| r.seconds),
            cpu: median(|r| r.cpu),
            peak_mib: median(|r| r.peak_kib as f64 / 1024.0),
        }
    }
}

impl Row {
    /// The row of `runs` of `tool`, with the requests its first run made.
    fn of(scenario: &str, tool: &'static str, runs: &[Run], requests: usize) -> Row {
        let Medians {
            seconds,
            cpu,
            peak_mib,
        } = Medians::of(runs);
        Row {
            scenario: scenario.into(),
            tool,
            seconds,
            cpu,
            peak_mib,
            requests,
        }
    }
}

fn print(rows: &[Row]) {
    println!("| scenario                         | tool     |    wall    |    CPU     | peak RSS  | requests |");
    println!("|----------------------------------|----------|------------|------------|-----------|----------|");
    for r in rows {
        println!(
            "| {:<32} | {:<8} | {:>7.1} ms | {:>7.1} ms | {:>5.1} MiB | {:>8} |",
            r.scenario,
            r.tool,
            r.seconds * 1000.0,
            r.cpu * 1000.0,
            r.peak_mib,
            r.requests
        );
    }
}

/// The user every token-auth registry of the benchmark accepts.
const USER: (&str, &str) = ("bench", "bench-password");

fn token_auth() -> Auth {
    Auth::Token {
        users: vec![(USER.0.into(), USER.1.into())],
        public_repositories: Vec::new(),
    }
}

/// A docker config with [`USER`]'s credentials for `hosts`.
fn docker_config(hosts: &[&str]) -> tempfile::TempDir {
    use base64::Engine as _;
    let dir = tempfile::tempdir().expect("a temporary docker config");
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", USER.0, USER.1));
    let auths: serde_json::Map<String, serde_json::Value> = hosts
        .iter()
        .map(|h| (h.to_string(), serde_json::json!({ "auth": auth })))
        .collect();
    let config = serde_json::json!({ "auths": auths });
    std::fs::write(dir.path().join("config.json"), config.to_string()).expect("config.json");
    dir
}

/// Requests a registry served so far, its token server's included.
fn requests_served(registry: &Registry) -> usize {
    let tokens = registry.token_server().map_or(0, |t| t.requests().len());
    registry.access_log().len() + tokens
}

/// Empties skopeo's blob-info cache (where it remembers which registries
/// hold which blobs): `/var/lib/containers/cache` when run as root, else
/// under `home`.
fn reset_skopeo_cache(home: &std::path::Path) {
    for dir in [
        std::path::PathBuf::from("/var/lib/containers/cache"),
        home.join(".local/share/containers/cache"),
    ] {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            if entry
                .file_name()
                .to_string_lossy()
                .starts_with("blob-info-cache")
            {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
}

/// How to run the copies.
struct Bench<'a> {
    ocirelay: &'a str,
    env: &'a [(&'a str, &'a str)],
    skopeo_env: &'a [(&'a str, &'a str)],
    skopeo_home: &'a std::path::Path,
    runs: usize,
}

impl Bench<'_> {
    /// Copies `source` (on `src`) into a fresh registry per run, with each
    /// tool; `auth` makes the destinations token-auth ones (credentials
    /// for both sides are then given to each tool), `https` HTTPS ones
    /// (ocirelay trusts the tests' CA; skopeo verifies no certificate).
    /// Returns a row per tool and one per tool for a re-run.
    fn copy(
        &self,
        scenario: &str,
        src: &Registry,
        source: &str,
        auth: Option<fn() -> Auth>,
        https: bool,
    ) -> Vec<Row> {
        let ca_file = ocirelay_tests::tls::ca_file().to_str().expect("utf-8 path");
        let mut rows = Vec::new();
        for tool in ["ocirelay", "skopeo"] {
            let mut firsts = Vec::new();
            let mut reruns = Vec::new();
            let mut requests = 0;
            let mut rerun_requests = 0;
            for i in 0..self.runs {
                // A fresh destination each time: nothing to mount or skip.
                let dst_auth = auth.map_or(Auth::None, |a| a());
                let dst = if https {
                    Registry::start(dst_auth)
                } else {
                    Registry::start_plain(dst_auth)
                };
                let target = dst.reference(
                    &format!("copy/{scenario}")
                        .replace([' ', ','], "-")
                        .to_lowercase(),
                );
                let target = format!("{target}:v1");
                let (docker_src, docker_dst) =
                    (format!("docker://{source}"), format!("docker://{target}"));
                let config = docker_config(&[src.host(), dst.host()]);
                let creds = format!("{}:{}", USER.0, USER.1);
                let mut argv: Vec<&str>;
                let mut env: Vec<(&str, &str)>;
                if tool == "ocirelay" {
                    argv = vec![self.ocirelay, "--ca-file", ca_file, "copy", source, &target];
                    env = self.env.to_vec();
                    env.push(("DOCKER_CONFIG", config.path().to_str().expect("utf-8 path")));
                } else {
                    argv = vec!["skopeo", "copy", "--all", "-q"];
                    if auth.is_some() {
                        argv.extend(["--src-creds", &creds, "--dest-creds", &creds]);
                    }
                    argv.extend([
                        "--src-tls-verify=false",
                        "--dest-tls-verify=false",
                        &docker_src,
                        &docker_dst,
                    ]);
                    env = self.skopeo_env.to_vec();
                }
                let served = || requests_served(src) + requests_served(&dst);
                let before = served();
                if tool == "skopeo" {
                    reset_skopeo_cache(self.skopeo_home);
                }
                firsts.push(run(&argv, &env));
                let between = served();
                // Again, over what is there now (skopeo keeps what it learnt).
                reruns.push(run(&argv, &env));
                if i == 0 {
                    requests = between - before;
                    rerun_requests = served() - between;
                }
            }
            rows.push(Row::of(scenario, tool, &firsts, requests));
            let again = format!("{scenario}, re-run");
            rows.push(Row::of(&again, tool, &reruns, rerun_requests));
        }
        rows
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let ocirelay = args
        .next()
        .expect("usage: bench OCIRELAY_BINARY [RUNS [SCENARIO]]");
    let runs: usize = args.next().and_then(|r| r.parse().ok()).unwrap_or(7);
    // Only the scenarios and growth series whose name contains this (e.g. "single", "growth").
    let only = args.next().unwrap_or_default();
    let cache = ocirelay_tests::registry::temp_dir("ocirelay-bench-cache-");
    let env = [(
        "OCIRELAY_CACHE_DIR",
        cache.path().to_str().expect("utf-8 path"),
    )];
    // skopeo keeps a blob-location cache across runs: give it a fresh home.
    let skopeo_home = ocirelay_tests::registry::temp_dir("ocirelay-bench-skopeo-");
    let skopeo_env = [("HOME", skopeo_home.path().to_str().expect("utf-8 path"))];

    let src = Registry::start_plain(Auth::None);
    println!("pushing fixtures…");
    // The copy fixtures (312 MiB) only when a copy scenario is asked for.
    let copies = [
        "copy single",
        "copy single, HTTPS",
        "copy three",
        "copy eight",
        "copy three, token auth",
    ];
    let fixtures = if copies.iter().any(|c| c.contains(&only)) {
        ocirelay_tests::fixtures::bench_fixtures(&src)
    } else {
        Vec::new()
    };
    push_index(&src, "bench/app", "bench", Flavour::Oci, &two_platforms());
    let app = src.reference("bench/app:bench");
    let docker_app = format!("docker://{app}");

    // The first run compiles the component into the (empty) cache; every
    // later run of the process loads it compiled.
    let mut rows = Vec::new();
    let before = src.access_log().len();
    let first = run(&[&ocirelay, "lookup", "--type", "manifest", &app], &env);
    let requests = src.access_log().len() - before;
    let scenario = "first run (compiles component)";
    rows.push(Row::of(scenario, "ocirelay", &[first], requests));

    let measure_lookup = |rows: &mut Vec<Row>,
                          scenario: &str,
                          tool: &'static str,
                          argv: &[&str],
                          env: &[(&str, &str)]| {
        let before = src.access_log().len();
        let mut all = vec![run(argv, env)];
        let requests = src.access_log().len() - before;
        all.extend((1..runs.max(15)).map(|_| run(argv, env)));
        rows.push(Row::of(scenario, tool, &all, requests));
    };
    measure_lookup(
        &mut rows,
        "manifest GET",
        "ocirelay",
        &[&ocirelay, "lookup", "--type", "manifest", &app],
        &env,
    );
    measure_lookup(
        &mut rows,
        "manifest GET",
        "skopeo",
        &[
            "skopeo",
            "inspect",
            "--raw",
            "--tls-verify=false",
            &docker_app,
        ],
        &skopeo_env,
    );
    measure_lookup(
        &mut rows,
        "index / inspect (configs too)",
        "ocirelay",
        &[&ocirelay, "lookup", &app],
        &env,
    );
    measure_lookup(
        &mut rows,
        "index / inspect (configs too)",
        "skopeo",
        &["skopeo", "inspect", "--tls-verify=false", &docker_app],
        &skopeo_env,
    );

    let bench = Bench {
        ocirelay: &ocirelay,
        env: &env,
        skopeo_env: &skopeo_env,
        skopeo_home: skopeo_home.path(),
        runs,
    };
    for tag in fixtures
        .iter()
        .filter(|t| format!("copy {t}").contains(&only))
    {
        let source = src.reference(&format!("bench/{tag}:{tag}"));
        rows.extend(bench.copy(&format!("copy {tag}"), &src, &source, None, false));
    }

    // The large image between HTTPS registries, as real ones speak: what
    // TLS adds on both sides (seeded from the plain one by ocirelay).
    let https_scenario = "copy single, HTTPS";
    if https_scenario.contains(&only) {
        let tls_src = Registry::start(Auth::None);
        let seeded = tls_src.reference("bench/single:single");
        let ca_file = ocirelay_tests::tls::ca_file().to_str().expect("utf-8 path");
        let from = src.reference("bench/single:single");
        run(
            &[&ocirelay, "--ca-file", ca_file, "copy", &from, &seeded],
            &env,
        );
        rows.extend(bench.copy(https_scenario, &tls_src, &seeded, None, true));
    }

    // Token auth on both sides, as on Docker Hub and most clouds: the
    // three-platform image between two token-auth registries (seeded from
    // the plain one by ocirelay itself). Token requests count too.
    let token_scenario = "copy three, token auth";
    let tok_src = Registry::start_plain(token_auth());
    let three = "bench/three:three";
    let seeded = tok_src.reference(three);
    let config = docker_config(&[tok_src.host()]);
    let mut seed_env = env.to_vec();
    seed_env.push(("DOCKER_CONFIG", config.path().to_str().expect("utf-8 path")));
    if token_scenario.contains(&only) {
        run(
            &[&ocirelay, "copy", &src.reference(three), &seeded],
            &seed_env,
        );
        rows.extend(bench.copy(token_scenario, &tok_src, &seeded, Some(token_auth), false));
    }

    println!("\n{runs} runs per copy (15 per lookup), medians; requests from the registries' access logs\n");
    print(&rows);
    let ratio = |scenario: &str| {
        let t = |tool: &str| {
            rows.iter()
                .find(|r| r.scenario == scenario && r.tool == tool)
                .map(|r| r.seconds)
        };
        if let (Some(a), Some(b)) = (t("ocirelay"), t("skopeo")) {
            println!("{scenario}: ocirelay / skopeo = {:.2}x", a / b);
        }
    };
    println!();
    for s in [
        "manifest GET",
        "index / inspect (configs too)",
        "copy single",
        "copy single, HTTPS",
        "copy three",
        "copy eight",
        "copy three, token auth",
    ] {
        ratio(s);
    }

    // Cost as work grows (see `growth`), each series when `only` names it.
    let tools = growth::Tools {
        ocirelay: &ocirelay,
        env: &env,
        skopeo_env: &skopeo_env,
        skopeo_home: skopeo_home.path(),
        runs,
    };
    let series: [(&str, growth::Series); 3] = [
        ("growth layers", growth::layers),
        ("growth platforms", growth::platforms),
        ("growth images", growth::images),
    ];
    for (name, measure) in series {
        if name.contains(&only) {
            println!("\n{name} ({runs} runs, medians; client CPU = user + system)\n");
            println!("{}", measure(&tools));
        }
    }
}
