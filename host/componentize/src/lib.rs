//! Components made from ocirelay's core modules, for the host's build
//! script (the registry component, and the edge service with its default
//! configuration) and for `ocirelay build-service` / `ocirelay serve` (the
//! service with a configuration of the operator's). The build links core
//! modules only (`--skip-wit-component`); here their imports beyond the
//! proxy world are settled inside them ([`settle`]), and wit-component
//! makes the component, as wasm-component-ld would have.

pub mod settle;

pub use settle::{settle, Config, SettleError, PROXY_WORLD};

/// The component of `module` (a core module carrying its WIT metadata, as
/// wit-bindgen embeds it), with its imports beyond the `wasi:http/proxy`
/// world answered inside it and `config` settled in when given; an error
/// says what could not be settled or encoded.
pub fn component(module: &[u8], config: Option<Config<'_>>) -> Result<Vec<u8>, String> {
    let settled = settle(module, config).map_err(|e| format!("settling the module: {e}"))?;
    wit_component::ComponentEncoder::default()
        .module(&settled)
        .and_then(|encoder| encoder.validate(true).encode())
        .map_err(|e| format!("making the component: {e:#}"))
}

/// The configuration `target/component/ocirelay-service.wasm` is built
/// with: a mirror of Docker Hub's official images.
pub const DEFAULT_CONFIG: &str =
    r#"{"upstreams": [{"registry": "docker.io", "repositories": ["library/*"]}]}"#;

/// How many core modules `wasm` (a component) holds, nested components'
/// included: what a host instantiates for each instance of it (a pooling
/// host counts them against its limit of core instances).
pub fn core_modules(wasm: &[u8]) -> Result<usize, String> {
    let mut count = 0;
    for payload in wasmparser::Parser::new(0).parse_all(wasm) {
        match payload {
            Ok(wasmparser::Payload::ModuleSection { .. }) => count += 1,
            Ok(_) => {}
            Err(e) => return Err(format!("not a well-formed component: {e}")),
        }
    }
    Ok(count)
}

#[cfg(test)]
mod tests;
