//! Builds the wasm components this host embeds, so one `cargo build` from a
//! clean checkout makes a working binary. The nested cargo links core
//! modules only (`--skip-wit-component`); each becomes a component here
//! (`ocirelay-componentize`) with its imports beyond the `wasi:http/proxy` world
//! answered inside it, so that it runs on any host of that
//! world as three core modules. Embedded: the registry component, and the
//! edge service's module, still to be given its configuration
//! (`ocirelay build-service`, `ocirelay serve`). Beside them, in
//! `target/component/`, for other hosts: `ocirelay.wasm`, and
//! `ocirelay-service.wasm` with the default configuration, ready for
//! `wasmtime serve`.
//!
//! The nested cargo gets its own target directory (the outer build holds the
//! lock of ours) and a clean environment (outer RUSTFLAGS and jobserver
//! settings are for the native target, not wasm32-wasip2).

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

use ocirelay_componentize as componentize;

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let root = manifest_dir
        .parent()
        .expect("host/ sits in the workspace")
        .to_path_buf();
    for dir in ["component", "core", "service", "wit"] {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }
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
    let relay = componentize::component(registry, None).unwrap_or_else(|e| panic!("{e}"));
    let config = componentize::Config {
        json: componentize::DEFAULT_CONFIG,
        host_verifies: false,
    };
    let deployable =
        componentize::component(service, Some(config)).unwrap_or_else(|e| panic!("{e}"));

    let out = PathBuf::from(env::var("OUT_DIR").expect("set by cargo"));
    for (path, bytes) in [
        (out.join("ocirelay_component.wasm"), &relay),
        (out.join("ocirelay_service_module.wasm"), service),
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
    // Core modules, not components: componentize.rs makes those.
    cmd.env("CARGO_ENCODED_RUSTFLAGS", "-Clink-arg=--skip-wit-component");
    for var in [
        "RUSTFLAGS",
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
