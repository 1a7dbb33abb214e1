//! Benchmarks `ocirelay deploy` (`bench/deploy`): 500 refs, 100 tags each of
//! 5 small images, to one loopback registry, with `--parallel`; then the
//! same input again (HEADs only). Requests from the registry's access log,
//! wall time, peak RSS. A benchmark, not a test: it prints figures.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Instant;

use base64::Engine as _;
use ocirelay_core::deploy::jq;
use ocirelay_core::Digest;
use ocirelay_tests::{Auth, Registry};
use serde_json::json;

fn stream(host: &str) -> String {
    let mut inputs = Vec::new();
    for i in 0..5 {
        let layer = format!("layer of image {i}").into_bytes();
        let config = json!({"architecture": "amd64", "os": "linux", "image": i});
        let config_bytes = jq::data_bytes(&config);
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": Digest::sha256(&config_bytes).to_string(), "size": config_bytes.len()},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                        "digest": Digest::sha256(&layer).to_string(), "size": layer.len()}],
        });
        let b64 = base64::engine::general_purpose::STANDARD.encode(&layer);
        inputs.push(json!({"type": "blob", "refs": [format!("{host}/bench{i}")], "data": b64}));
        inputs.push(json!({"type": "blob", "refs": [format!("{host}/bench{i}")], "data": config}));
        let tags: Vec<String> = (0..100)
            .map(|t| format!("{host}/bench{i}:tag{t}"))
            .collect();
        inputs.push(json!({"type": "manifest", "refs": tags, "data": manifest}));
    }
    inputs.iter().map(|v| format!("{v:#}\n")).collect()
}

/// Wall seconds, peak RSS (MiB) of `ocirelay deploy --parallel` on `input`.
fn deploy(ocirelay: &str, input: &str) -> (f64, f64) {
    let started = Instant::now();
    let mut child = Command::new("/usr/bin/time")
        .args(["-f", "BENCH %M", ocirelay, "deploy", "--parallel"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running /usr/bin/time ocirelay deploy");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let seconds = started.elapsed().as_secs_f64();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let peak = stderr
        .lines()
        .find_map(|l| l.strip_prefix("BENCH "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or(0.0);
    (seconds, peak / 1024.0)
}

fn main() {
    let ocirelay = std::env::args()
        .nth(1)
        .expect("usage: bench_deploy OCIRELAY");
    let registry = Registry::start_plain(Auth::None);
    let input = stream(registry.host());
    println!(
        "| deploy of 500 refs (5 images x 100 tags), --parallel | wall | requests | peak RSS |"
    );
    println!("|---|---|---|---|");
    for run in ["first", "again (nothing to do)"] {
        let before = registry.access_log().len();
        let (seconds, peak) = deploy(&ocirelay, &input);
        let served = registry.served(before);
        let heads = served
            .iter()
            .filter(|(l, _)| l.starts_with("HEAD "))
            .count();
        println!(
            "| {run} | {:.0} ms | {} ({heads} HEAD) | {peak:.1} MiB |",
            seconds * 1000.0,
            served.len()
        );
    }
}
