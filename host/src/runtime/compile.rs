//! The component compiled: for the proxy world only (as edge runtimes run
//! it), pooled when a server asks, and cached on disk between runs.

use std::hash::{Hash, Hasher};
use std::path::PathBuf;

use sha2::{Digest as _, Sha256};
use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine};

use super::State;
use crate::error::HostError;

/// An engine and `wasm` compiled and pre-instantiated against only the
/// `wasi:http/proxy` world, as an edge runtime offers it: what runs here
/// runs in any wasi-http host. With `pool`, instances come from a pool of
/// that many, their memories reserved once and reused: a server making an
/// instance per request then spends no mmap/munmap on each.
pub fn proxy_world_pre(
    wasm: &[u8],
    pool: Option<u32>,
) -> Result<(Engine, wasmtime::component::InstancePre<State>), HostError> {
    let mut config = Config::new();
    config.wasm_component_model(true);
    if let Some(instances) = pool {
        // The service is three core instances (its code, wit-component's
        // shim and fixups) and one memory; the margin is for a component
        // of another shape given to the same pool.
        let mut pooling = wasmtime::PoolingAllocationConfig::default();
        pooling
            .total_component_instances(instances)
            .total_core_instances(instances * 32)
            .total_memories(instances * 8)
            .total_tables(instances * 8)
            .total_stacks(instances);
        config.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pooling));
    }
    let engine = Engine::new(&config).map_err(HostError::runtime("creating the wasm engine"))?;
    let component = load_component(&engine, wasm)?;
    let mut linker = Linker::<State>::new(&engine);
    wasmtime_wasi_http::p2::add_to_linker_async(&mut linker)
        .map_err(HostError::runtime("linking the wasi:http/proxy world"))?;
    let pre = linker
        .instantiate_pre(&component)
        .map_err(HostError::runtime("pre-instantiating the component"))?;
    Ok((engine, pre))
}

/// Compiles `wasm`, or loads the copy compiled by an earlier run. The cache
/// key covers the component's bytes and everything about the engine that
/// makes compiled code incompatible.
fn load_component(engine: &Engine, wasm: &[u8]) -> Result<Component, HostError> {
    let Some(dir) = cache_dir() else {
        return Component::new(engine, wasm).map_err(HostError::runtime("compiling the component"));
    };
    let mut engine_hash = std::collections::hash_map::DefaultHasher::new();
    engine
        .precompile_compatibility_hash()
        .hash(&mut engine_hash);
    let wasm_hash = Sha256::digest(wasm);
    let name = format!(
        "component-{}-{:016x}.cwasm",
        wasm_hash
            .iter()
            .take(12)
            .map(|b| format!("{b:02x}"))
            .collect::<String>(),
        engine_hash.finish()
    );
    let path = dir.join(name);
    if path.exists() {
        // SAFETY: the file was written by `Component::serialize` of this very
        // component for an engine of the same compatibility hash, into a
        // directory only we write; a stale or foreign file fails wasmtime's
        // own header check and is replaced below.
        match unsafe { Component::deserialize_file(engine, &path) } {
            Ok(c) => return Ok(c),
            Err(e) => tracing::debug!("compiled component cache unusable ({e:#}); recompiling"),
        }
    }
    let component =
        Component::new(engine, wasm).map_err(HostError::runtime("compiling the component"))?;
    if let Ok(bytes) = component.serialize() {
        // Write then rename, so a concurrent run never maps a half-written file.
        let tmp = dir.join(format!(".tmp-{}", std::process::id()));
        let written = std::fs::create_dir_all(&dir)
            .and_then(|()| std::fs::write(&tmp, &bytes))
            .and_then(|()| std::fs::rename(&tmp, &path));
        if let Err(e) = written {
            tracing::debug!(
                "not caching the compiled component in {}: {e}",
                dir.display()
            );
            let _ = std::fs::remove_file(&tmp);
        }
    }
    Ok(component)
}

/// `$OCIRELAY_CACHE_DIR`, else `$XDG_CACHE_HOME/ocirelay`, else `~/.cache/ocirelay`.
fn cache_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("OCIRELAY_CACHE_DIR") {
        return Some(PathBuf::from(d));
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME") {
        return Some(PathBuf::from(d).join("ocirelay"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache").join("ocirelay"))
}
