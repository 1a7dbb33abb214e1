//! The edge service on JavaScript engines (edge/workers): built by its
//! build script from a composed service component, and the engines that
//! run it, Cloudflare's workerd and Deno, from the npm packages that
//! scripts/setup installs into edge/workers/node_modules.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The JavaScript engines the service runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// Cloudflare's runtime (`workerd serve`), as Workers run it.
    Workerd,
    /// Deno, under `Deno.serve`.
    Deno,
}

/// edge/workers in this checkout.
pub fn workers_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../edge/workers")
}

/// `node`: the one scripts/setup puts into target/node where the system's
/// is older than 20, else the PATH's.
pub fn node() -> PathBuf {
    let ours = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/node/bin/node");
    if ours.exists() {
        ours
    } else {
        PathBuf::from("node")
    }
}

/// An engine's binary, from edge/workers' npm packages.
pub fn binary(engine: Engine) -> PathBuf {
    let name = match engine {
        Engine::Workerd => "workerd",
        Engine::Deno => "deno",
    };
    let path = workers_dir().join("node_modules/.bin").join(name);
    assert!(
        path.exists(),
        "no {} (scripts/setup installs edge/workers' npm packages)",
        path.display()
    );
    path
}

/// Builds the service for the engines from `component` into `out`, its
/// upstreams' HTTPS trusting `ca` besides the public CAs.
pub fn build(component: &Path, out: &Path, ca: &Path) {
    let status = Command::new(node())
        .arg(workers_dir().join("scripts/build.js"))
        .arg(component)
        .arg(out)
        .arg("--ca-file")
        .arg(ca)
        .status()
        .expect("running node (scripts/setup installs it)");
    assert!(status.success(), "edge/workers/scripts/build.js failed");
}

/// The arguments that serve the built service in `dir` on `addr`.
pub fn serve_args(engine: Engine, dir: &Path, addr: &str, ca: &Path) -> Vec<String> {
    let path = |p: &Path| p.display().to_string();
    match engine {
        Engine::Workerd => vec![
            "serve".into(),
            path(&dir.join("workerd.capnp")),
            "--socket-addr".into(),
            format!("http={addr}"),
        ],
        Engine::Deno => vec![
            "run".into(),
            // As the README says to run it: a blob's chunks collected sooner.
            "--v8-flags=--max-semi-space-size=1".into(),
            "--allow-net".into(),
            "--allow-read".into(),
            "--allow-env".into(),
            format!("--cert={}", path(ca)),
            path(&dir.join("deno.js")),
            "--addr".into(),
            addr.into(),
        ],
    }
}
