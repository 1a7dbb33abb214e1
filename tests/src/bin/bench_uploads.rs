//! Benchmarks big-layer uploads (`bench/uploads`): a 1 GiB layer copied
//! between loopback registries through the fault proxy, in one PUT and in
//! chunks, whole and cut at 50% and 90% of its upload; with `skopeo copy`
//! beside the uncut ones. Medians of wall time, the bytes the proxy
//! received, and peak RSS. Cut chunked copies go through a front that
//! buffers bodies (as nginx does): straight into distribution, a cut chunk
//! makes it forget the session. A benchmark, not a test: it prints figures
//! (and checks that every copy arrived with its digest).

use std::process::Command;

use ocirelay_tests::fault_proxy::FaultProxy;
use ocirelay_tests::measure::{measured, median, Run};
use ocirelay_tests::registry::temp_dir;
use ocirelay_tests::{bytes, platform, Auth, Flavour, Layout, Registry};

const MIB: u64 = 1 << 20;
const SIZE: u64 = 1024 * MIB;

/// One way of copying.
struct Case {
    name: &'static str,
    tool: &'static str,
    /// The settings file's `uploads`.
    uploads: serde_json::Value,
    /// Where the upload is cut, as a fraction of the layer.
    cut: Option<f64>,
}

fn cases() -> Vec<Case> {
    let whole = serde_json::json!({"*": {"monolithic-up-to": "any"}});
    let chunked = serde_json::json!({});
    let case = |name, tool, uploads: &serde_json::Value, cut| Case {
        name,
        tool,
        uploads: uploads.clone(),
        cut,
    };
    vec![
        case("one PUT", "skopeo", &whole, None),
        case("one PUT", "ocirelay", &whole, None),
        case("32 MiB chunks", "ocirelay", &chunked, None),
        case("one PUT, cut at 50%", "ocirelay", &whole, Some(0.5)),
        case("one PUT, cut at 90%", "ocirelay", &whole, Some(0.9)),
        case("32 MiB chunks, cut at 50%", "ocirelay", &chunked, Some(0.5)),
        case("32 MiB chunks, cut at 90%", "ocirelay", &chunked, Some(0.9)),
    ]
}

/// The command that copies `from` to `to` as `case` says.
fn copy(case: &Case, ocirelay: &str, from: &str, to: &str, settings: &str) -> Command {
    match case.tool {
        "skopeo" => {
            let mut c = Command::new("skopeo");
            c.args(["copy", "--preserve-digests", "-q"])
                .args(["--src-tls-verify=false", "--dest-tls-verify=false"])
                .arg(format!("docker://{from}"))
                .arg(format!("docker://{to}"));
            c
        }
        _ => {
            let mut c = Command::new(ocirelay);
            c.args(["copy", from, to])
                .env("HOME", std::env::temp_dir())
                .env("OCIRELAY_CONFIG", settings);
            c
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let ocirelay = args.get(1).expect("usage: bench_uploads OCIRELAY [RUNS]");
    let runs: usize = args.get(2).and_then(|r| r.parse().ok()).unwrap_or(3);
    let source = Registry::start_plain(Auth::None);
    let mut layout = Layout::new();
    let big = bytes(41, SIZE as usize);
    let image = layout.image(Flavour::Oci, &platform("linux", "amd64", None), &[&big]);
    layout.tag("v1", &image);
    layout.push(&source, "bench", "v1");
    drop(big);
    let from = source.reference("bench:v1");
    let dir = temp_dir("bench-uploads-");
    println!("1 GiB layer, medians of {runs}.");
    println!();
    println!("| copy | tool | wall | sent (MiB) | peak RSS |");
    println!("|---|---|---|---|---|");
    for case in cases() {
        let settings = dir
            .path()
            .join(format!("{}.json", case.name.replace([' ', ',', '%'], "_")));
        let file = serde_json::json!({"uploads": case.uploads});
        std::fs::write(&settings, file.to_string()).expect("settings file");
        let settings = settings.to_str().expect("utf-8 path");
        let mut measured_runs: Vec<(Run, u64)> = Vec::new();
        for _ in 0..runs {
            let dest = Registry::start_plain(Auth::None);
            let buffered = case.cut.is_some() && case.name.contains("chunks");
            let front = FaultProxy::start(dest.host());
            front.uploads(|u| {
                u.buffered = buffered;
                if let Some(at) = case.cut {
                    u.cut_at((SIZE as f64 * at) as u64);
                }
            });
            let to = format!("{}/bench:v1", front.host());
            let run = measured(copy(&case, ocirelay, &from, &to, settings), &[&dest]);
            let sent = front.uploaded(|u| u.received);
            let check = Command::new(ocirelay)
                .args(["lookup", "--head", &dest.reference("bench:v1")])
                .output()
                .expect("ocirelay lookup");
            let found: serde_json::Value =
                serde_json::from_slice(&check.stdout).expect("lookup's JSON");
            assert_eq!(found["digest"], image.digest.to_string(), "{}", case.name);
            measured_runs.push((run, sent));
        }
        let wall = median(measured_runs.iter().map(|(r, _)| r.wall_ms).collect());
        let rss = median(measured_runs.iter().map(|(r, _)| r.peak_mib).collect());
        let sent = median(measured_runs.iter().map(|(_, s)| *s as f64).collect()) / MIB as f64;
        println!(
            "| {} | {} | {:.2} s | {sent:.0} | {rss:.0} MiB |",
            case.name,
            case.tool,
            wall / 1000.0
        );
    }
}
