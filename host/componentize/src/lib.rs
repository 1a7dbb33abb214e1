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
    const CORE_MODULE: u8 = 1;
    const COMPONENT: u8 = 4;
    /// An unsigned LEB128 at `at`: its value, and where what follows starts.
    fn leb(bytes: &[u8], mut at: usize) -> Option<(usize, usize)> {
        let mut value = 0usize;
        for shift in (0..35).step_by(7) {
            let byte = *bytes.get(at)?;
            at += 1;
            value |= usize::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                return Some((value, at));
            }
        }
        None
    }
    let broken = || "not a well-formed component".to_string();
    if wasm.get(..4) != Some(b"\0asm") || wasm.len() < 8 {
        return Err(broken());
    }
    let mut at = 8;
    let mut count = 0;
    while at < wasm.len() {
        let id = wasm[at];
        let (size, body) = leb(wasm, at + 1).ok_or_else(broken)?;
        let end = body
            .checked_add(size)
            .filter(|e| *e <= wasm.len())
            .ok_or_else(broken)?;
        match id {
            CORE_MODULE => count += 1,
            COMPONENT => count += core_modules(&wasm[body..end])?,
            _ => {}
        }
        at = end;
    }
    Ok(count)
}
