//! Benchmarks copying an image with what refers to it (`bench/referrers`):
//! a two-platform index with 0, 3 and 30 signatures, copied across two
//! loopback registries (distribution: no referrers API, so each referrer
//! is also listed under the fallback tag at the destination) by `ocirelay
//! copy`, with and without `--referrers`, and by `skopeo copy --all`,
//! which drops them; and the copy with referrers run again onto a
//! destination that has it all. Requests from both registries' access logs, wall time
//! (median of RUNS). A benchmark, not a test: it prints figures.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Instant;

use base64::Engine as _;
use ocirelay_core::media_type::OCI_MANIFEST;
use ocirelay_core::{Descriptor, Digest};
use ocirelay_tests::fixtures::{push_index, two_platforms, Pushed};
use ocirelay_tests::measure::median;
use ocirelay_tests::{Auth, Flavour, Registry};
use serde_json::json;

/// Deploy input for `n` signatures of `subject` in `repo`.
fn signatures(repo: &str, subject: &Descriptor, n: usize) -> String {
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let empty = Digest::sha256(b"{}");
    let mut lines =
        vec![json!({"type": "blob", "refs": [format!("{repo}@{empty}")], "data": b64(b"{}")})];
    for i in 0..n {
        let layer = format!("signature {i}").into_bytes();
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": "application/vnd.dev.cosign.artifact.sig.v1+json",
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty, "size": 2},
            "layers": [{"mediaType": "application/octet-stream", "digest": Digest::sha256(&layer), "size": layer.len()}],
            "subject": subject,
        }))
        .unwrap();
        lines.push(json!({"type": "blob", "refs": [format!("{repo}@{}", Digest::sha256(&layer))], "data": b64(&layer)}));
        lines.push(json!({"type": "manifest", "refs": [format!("{repo}@{}", Digest::sha256(&manifest))], "data": b64(&manifest)}));
    }
    lines.iter().map(|l| format!("{l}\n")).collect()
}

fn deploy(ocirelay: &str, input: &str) {
    let mut child = Command::new(ocirelay)
        .args(["deploy", "--parallel"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running ocirelay deploy");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Wall seconds of `command`, which must succeed.
fn timed(mut command: Command) -> f64 {
    let started = Instant::now();
    let out = command.output().expect("running the copy");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    started.elapsed().as_secs_f64()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let ocirelay = args.get(1).expect("usage: bench_referrers OCIRELAY [RUNS]");
    let runs: usize = args.get(2).and_then(|r| r.parse().ok()).unwrap_or(3);
    println!("| copy of a 2-platform index | referrers | wall (median of {runs}) | requests (source + destination) | referrers listed at the destination |");
    println!("|---|---|---|---|---|");
    for n in [0usize, 3, 30] {
        let source = Registry::start_plain(Auth::None);
        let Pushed { index, .. } = push_index(&source, "app", "v1", Flavour::Oci, &two_platforms());
        deploy(ocirelay, &signatures(&source.reference("app"), &index, n));
        let src = source.reference("app:v1");
        for tool in [
            "ocirelay copy",
            "ocirelay copy --referrers",
            "ocirelay copy --referrers, again",
            "skopeo copy --all",
        ] {
            let mut walls = Vec::new();
            let mut requests = 0;
            let mut listed = 0;
            for _ in 0..runs {
                let destination = Registry::start_plain(Auth::None);
                let dst = destination.reference("app:v1");
                let copy = |again: bool| {
                    let mut c = Command::new(ocirelay);
                    c.arg("copy");
                    if again || tool.ends_with("--referrers") {
                        c.arg("--referrers");
                    }
                    c.args([&src, &dst]).env("HOME", std::env::temp_dir());
                    c
                };
                let again = tool.ends_with("again");
                if again {
                    // The destination filled by a first run, untimed.
                    timed(copy(true));
                }
                let before = (source.access_log().len(), destination.access_log().len());
                let (before_src, before_dst) = before;
                let mut command = match tool {
                    "skopeo copy --all" => {
                        let mut c = Command::new("skopeo");
                        c.args([
                            "copy",
                            "--all",
                            "--src-tls-verify=false",
                            "--dest-tls-verify=false",
                        ])
                        .arg(format!("docker://{src}"))
                        .arg(format!("docker://{dst}"));
                        c
                    }
                    _ => copy(again),
                };
                command.env("HOME", std::env::temp_dir());
                walls.push(timed(command));
                requests = source.served(before_src).len() + destination.served(before_dst).len();
                let out = Command::new(ocirelay)
                    .args(["lookup", "--type", "referrers", &dst])
                    .output()
                    .unwrap();
                let index: serde_json::Value =
                    serde_json::from_slice(&out.stdout).unwrap_or_default();
                listed = index["manifests"].as_array().map_or(0, Vec::len);
            }
            println!(
                "| {tool} | {n} | {:.0} ms | {requests} | {listed} |",
                median(walls) * 1000.0
            );
        }
    }
}
