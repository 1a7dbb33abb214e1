//! Benchmarks an air-gapped round trip through an OCI image layout
//! (`bench/layout`): each copy fixture from a registry into a layout
//! directory, and from the layout into a fresh registry, with
//! `ocirelay copy` and with `skopeo copy --all`, on loopback registries
//! and tmpfs. Medians of wall time and peak RSS per leg. A benchmark,
//! not a test: it prints figures (and checks that both tools' round
//! trips keep the digest).

use std::path::Path;
use std::process::Command;

use ocirelay_tests::fixtures::bench_fixtures;
use ocirelay_tests::measure::{measured, median, Run};
use ocirelay_tests::registry::temp_dir;
use ocirelay_tests::{Auth, Registry};

/// The command that copies `from` to `to` with `tool`.
fn copy(tool: &str, ocirelay: &str, from: &str, to: &str) -> Command {
    match tool {
        "skopeo" => {
            let mut c = Command::new("skopeo");
            c.args(["copy", "--all", "--preserve-digests", "-q"])
                .args(["--src-tls-verify=false", "--dest-tls-verify=false"]);
            let docker = |r: &str| match r.starts_with("oci:") {
                true => r.to_string(),
                false => format!("docker://{r}"),
            };
            c.arg(docker(from)).arg(docker(to));
            c
        }
        _ => {
            let mut c = Command::new(ocirelay);
            c.args(["copy", from, to]).env("HOME", std::env::temp_dir());
            c
        }
    }
}

/// The digest `reference` names, as ocirelay sees it.
fn digest_at(ocirelay: &str, reference: &str) -> String {
    let out = Command::new(ocirelay)
        .args(["lookup", "--head", reference])
        .output()
        .expect("ocirelay lookup");
    let found: serde_json::Value = serde_json::from_slice(&out.stdout).expect("lookup's JSON");
    found["digest"].as_str().unwrap_or_default().to_string()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let ocirelay = args.get(1).expect("usage: bench_layout OCIRELAY [RUNS]");
    let runs: usize = args.get(2).and_then(|r| r.parse().ok()).unwrap_or(5);
    let source = Registry::start_plain(Auth::None);
    let fixtures = bench_fixtures(&source);
    println!("| fixture | leg | tool | wall (median of {runs}) | peak RSS |");
    println!("|---|---|---|---|---|");
    for fixture in fixtures {
        let from = source.reference(&format!("bench/{fixture}:{fixture}"));
        let digest = digest_at(ocirelay, &from);
        for tool in ["ocirelay", "skopeo"] {
            let (mut out, mut back): (Vec<Run>, Vec<Run>) = (Vec::new(), Vec::new());
            for _ in 0..runs {
                let dir = temp_dir("bench-layout-");
                let layout = format!(
                    "oci:{}:{fixture}",
                    Path::new(dir.path()).join("l").display()
                );
                out.push(measured(copy(tool, ocirelay, &from, &layout), &[&source]));
                let dest = Registry::start_plain(Auth::None);
                let to = dest.reference(&format!("back/{fixture}:{fixture}"));
                back.push(measured(copy(tool, ocirelay, &layout, &to), &[&dest]));
                assert_eq!(digest_at(ocirelay, &to), digest, "{tool}: {fixture}");
            }
            for (leg, runs) in [("registry → layout", &out), ("layout → registry", &back)] {
                let wall = median(runs.iter().map(|r| r.wall_ms).collect());
                let rss = median(runs.iter().map(|r| r.peak_mib).collect());
                println!("| {fixture} | {leg} | {tool} | {wall:.0} ms | {rss:.0} MiB |");
            }
        }
    }
}
