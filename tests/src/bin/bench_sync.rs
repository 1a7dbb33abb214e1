//! Benchmarks `ocirelay sync` beside `skopeo sync` (`bench/sync`): the same
//! skopeo YAML over the same fixtures on loopback registries, 100
//! repositories of 10 tags and 10 of 100 (small one-layer images): the
//! first sync, a sync with nothing changed, and one with a tag changed in
//! every repository. Wall time, requests served (both registries' access
//! logs) and the tool's peak RSS. A benchmark, not a test: it prints
//! figures.

use ocirelay_tests::measure::measured;
use ocirelay_tests::{push_image, Auth, Registry};
use std::path::Path;
use std::process::Command;

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
