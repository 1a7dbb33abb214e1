//! Builds the wasm components this host embeds, so one `cargo build` from a
//! clean checkout makes a working binary: the registry component composed
//! with the inert answers std needs beyond the `wasi:http/proxy` world
//! (`compose::extras_component`), so that it imports only that world, here
//! as in any other host; and the edge service (`service/`), still to be
//! given its configuration and the same answers (`ocirelay build-service`,
//! `ocirelay serve`). Beside them, in `target/component/`, the same for
//! other hosts: `ocirelay.wasm`, and `ocirelay-service.wasm` with the
//! default configuration, ready for `wasmtime serve`.
//!
//! The nested cargo gets its own target directory (the outer build holds the
//! lock of ours) and a clean environment (outer RUSTFLAGS and jobserver
//! settings are for the native target, not wasm32-wasip2).

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

// Its module counting is the host's (build-service prints it).
#[allow(dead_code)]
#[path = "src/compose.rs"]
mod compose;

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let root = manifest_dir
        .parent()
        .expect("host/ sits in the workspace")
        .to_path_buf();
    for dir in ["component", "core", "service", "wit"] {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }
    // What composes them, the inert answers' component among it.
    println!("cargo:rerun-if-changed=src/compose.rs");
    // The workspace manifest holds the component's profile.
    for file in ["Cargo.lock", "Cargo.toml"] {
        println!("cargo:rerun-if-changed={}", root.join(file).display());
    }

    let target_dir = root.join("target").join("component");
    let built = build(
        &root,
        &target_dir,
        &["ocirelay-component", "ocirelay-service"],
    );
    let [registry, service] = built.as_slice() else {
        unreachable!("two packages built")
    };
    let inert = compose::extras_component(None).unwrap_or_else(|e| panic!("{e}"));
    let relay = compose::plug(
        ("ocirelay:registry", registry),
        &[("ocirelay:extras", &inert)],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let extras = compose::extras_component(Some((compose::DEFAULT_CONFIG, false)))
        .unwrap_or_else(|e| panic!("{e}"));
    let deployable = compose::plug(
        ("ocirelay:service", service),
        &[("ocirelay:extras", &extras)],
    )
    .unwrap_or_else(|e| panic!("{e}"));

    let out = PathBuf::from(env::var("OUT_DIR").expect("set by cargo"));
    for (path, bytes) in [
        (out.join("ocirelay_component.wasm"), &relay),
        (out.join("ocirelay_service.wasm"), service),
        // At stable paths, for other hosts.
        (target_dir.join("ocirelay.wasm"), &relay),
        (target_dir.join("ocirelay-service.wasm"), &deployable),
    ] {
        std::fs::write(&path, bytes).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    }
}

/// Builds `packages` for wasm32-wasip2 with the `component` profile, in one
/// cargo run; their `.wasm`s, in order.
fn build(root: &Path, target_dir: &Path, packages: &[&str]) -> Vec<Vec<u8>> {
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root)
        .args(["build", "--locked", "--profile", "component"])
        .args(packages.iter().flat_map(|p| ["-p", p]))
        .args(["--target", "wasm32-wasip2", "--target-dir"])
        .arg(target_dir);
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_MAKEFLAGS",
        "MAKEFLAGS",
        "MFLAGS",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_BUILD_RUSTC_WRAPPER",
        "CARGO_PRIMARY_PACKAGE",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd.status().expect("running cargo for the component");
    if !status.success() {
        panic!(
            "building {packages:?} for wasm32-wasip2 failed; is the target installed? \
             (rustup target add wasm32-wasip2)"
        );
    }
    packages
        .iter()
        .map(|package| {
            let file = format!("{}.wasm", package.replace('-', "_"));
            let wasm = target_dir.join("wasm32-wasip2/component").join(file);
            std::fs::read(&wasm).unwrap_or_else(|e| panic!("reading {}: {e}", wasm.display()))
        })
        .collect()
}
