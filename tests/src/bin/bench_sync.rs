//! Benchmarks `ocirelay sync` beside `skopeo sync` (`bench/sync`): the same
//! skopeo YAML over the same fixtures on loopback registries, 100
//! repositories of 10 tags and 10 of 100 (small one-layer images): the
//! first sync, a sync with nothing changed, and one with a tag changed in
//! every repository. Wall time, requests served (both registries' access
//! logs) and the tool's peak RSS. A benchmark, not a test: it prints
//! figures.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use ocirelay_tests::{push_image, Auth, Registry};

/// What one run cost.
struct Run {
    wall_ms: f64,
    requests: usize,
    peak_mib: f64,
}

/// Runs `command` under `/usr/bin/time -f %M` for its peak RSS, counting
/// the requests `registries` served meanwhile.
fn measured(mut command: Command, registries: &[&Registry]) -> Run {
    let before: Vec<usize> = registries.iter().map(|r| r.access_log().len()).collect();
    let rss = tempfile::NamedTempFile::new().expect("a temporary file");
    let started = Instant::now();
    let mut timed = Command::new("/usr/bin/time");
    timed.arg("-o").arg(rss.path()).arg("-f").arg("%M");
    timed.arg(command.get_program()).args(command.get_args());
    for (k, v) in command.get_envs() {
        if let Some(v) = v {
            timed.env(k, v);
        }
    }
    let out = timed.output().expect("running the sync");
    let wall_ms = started.elapsed().as_secs_f64() * 1000.0;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = &mut command;
    let requests = registries
        .iter()
        .zip(before)
        .map(|(r, b)| r.access_log().len() - b)
        .sum();
    let kib: f64 = std::fs::read_to_string(rss.path())
        .unwrap_or_default()
        .trim()
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or(0.0);
    Run {
        wall_ms,
        requests,
        peak_mib: kib / 1024.0,
    }
}

fn ocirelay_sync(ocirelay: &str, config: &Path, dest: &str) -> Command {
    let mut c = Command::new(ocirelay);
    c.arg("sync")
        .arg(config)
        .arg(dest)
        .env("HOME", std::env::temp_dir());
    c
}

fn skopeo_sync(config: &Path, dest: &str) -> Command {
    let mut c = Command::new("skopeo");
    c.args([
        "sync",
        "--src",
        "yaml",
        "--dest",
        "docker",
        "--dest-tls-verify=false",
    ])
    .arg(config)
    .arg(dest);
    c
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let ocirelay = args.get(1).expect("usage: bench_sync OCIRELAY");
    println!("| set | run | tool | wall | requests | requests per tag | peak RSS |");
    println!("|---|---|---|---|---|---|---|");
    for (repos, tags) in [(100usize, 10usize), (10, 100)] {
        let source = Registry::start_plain(Auth::None);
        let mut images = serde_json::Map::new();
        for r in 0..repos {
            let repo = format!("bench/app{r}");
            let list: Vec<String> = (0..tags).map(|t| format!("1.0.{t}")).collect();
            for tag in &list {
                push_image(&source, &repo, tag, &[format!("{repo}:{tag}").as_bytes()]);
            }
            images.insert(repo, serde_json::json!(list));
        }
        let dir = tempfile::tempdir().expect("a temporary directory");
        let config = dir.path().join("sync.yaml");
        // skopeo's YAML, as both read it (JSON is YAML).
        let yaml = serde_json::json!({source.host(): {"images": images, "tls-verify": false}});
        std::fs::write(&config, yaml.to_string()).expect("writing the config");
        let set = format!("{repos} repos × {tags} tags");
        let total = repos * tags;
        for tool in ["ocirelay sync", "skopeo sync"] {
            let dest = Registry::start_plain(Auth::None);
            let target = dest.reference("mirror");
            let run = |label: &str| {
                let command = match tool {
                    "skopeo sync" => skopeo_sync(&config, &target),
                    _ => ocirelay_sync(ocirelay, &config, &target),
                };
                let r = measured(command, &[&source, &dest]);
                println!(
                    "| {set} | {label} | {tool} | {:.0} ms | {} | {:.1} | {:.0} MiB |",
                    r.wall_ms,
                    r.requests,
                    r.requests as f64 / total as f64,
                    r.peak_mib
                );
            };
            run("first");
            run("nothing changed");
            for r in 0..repos {
                let repo = format!("bench/app{r}");
                push_image(
                    &source,
                    &repo,
                    "1.0.0",
                    &[format!("{repo} changed").as_bytes()],
                );
            }
            run("one tag changed per repository");
        }
    }
}
