//! Builds the wasm component this host embeds, so one `cargo build` from a
//! clean checkout makes a working binary: the registry component composed
//! with the inert one (`component/inert`), so that it imports only the
//! `wasi:http/proxy` world, here as in any other host.
//!
//! The nested cargo gets its own target directory (the outer build holds the
//! lock of ours) and a clean environment (outer RUSTFLAGS and jobserver
//! settings are for the native target, not wasm32-wasip2).

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let root = manifest_dir
        .parent()
        .expect("host/ sits in the workspace")
        .to_path_buf();
    for dir in ["component", "core", "wit"] {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }
    // The workspace manifest holds the component's profile.
    for file in ["Cargo.lock", "Cargo.toml"] {
        println!("cargo:rerun-if-changed={}", root.join(file).display());
    }

    let target_dir = root.join("target").join("component");
    // Two cargo runs: the inert component is no_std, and one run would
    // unify its wit-bindgen features with the registry component's (std).
    let registry = build(&root, &target_dir, "ocirelay-component");
    let inert = build(&root, &target_dir, "ocirelay-inert");
    let composed = compose(&registry, &inert);
    let out =
        PathBuf::from(env::var("OUT_DIR").expect("set by cargo")).join("ocirelay_component.wasm");
    // Beside the embedded copy, one at a stable path for other hosts.
    for path in [out, target_dir.join("ocirelay.wasm")] {
        std::fs::write(&path, &composed)
            .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    }
}

/// Builds `package` for wasm32-wasip2 with the `component` profile; its
/// `.wasm`.
fn build(root: &Path, target_dir: &Path, package: &str) -> Vec<u8> {
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root)
        .args(["build", "--locked", "--profile", "component", "-p", package])
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
            "building {package} for wasm32-wasip2 failed; is the target installed? \
             (rustup target add wasm32-wasip2)"
        );
    }
    let file = format!("{}.wasm", package.replace('-', "_"));
    let wasm = target_dir.join("wasm32-wasip2/component").join(file);
    std::fs::read(&wasm).unwrap_or_else(|e| panic!("reading {}: {e}", wasm.display()))
}

/// The registry component with the inert one plugged into the imports it
/// exports (what std needs beyond the `wasi:http/proxy` world): what is left
/// to import is the proxy world's.
fn compose(registry: &[u8], inert: &[u8]) -> Vec<u8> {
    use wac_graph::{types::Package, CompositionGraph, EncodeOptions};
    let mut graph = CompositionGraph::new();
    let mut register = |name: &str, bytes: &[u8]| {
        let package = Package::from_bytes(name, None, bytes.to_vec(), graph.types_mut())
            .unwrap_or_else(|e| panic!("reading the {name} component: {e:?}"));
        graph
            .register_package(package)
            .unwrap_or_else(|e| panic!("registering the {name} component: {e:?}"))
    };
    let socket = register("ocirelay:registry", registry);
    let plug = register("ocirelay:inert", inert);
    wac_graph::plug(&mut graph, vec![plug], socket)
        .unwrap_or_else(|e| panic!("plugging the inert component in: {e:?}"));
    graph
        .encode(EncodeOptions::default())
        .unwrap_or_else(|e| panic!("encoding the composed component: {e:?}"))
}
