//! Composition of components, shared by `build.rs` (the registry component
//! with the inert one; the edge service with the registry component) and by
//! `ocirelay build-service` / `ocirelay serve` (the service with its
//! configuration). Composition is wac's (`wac-graph`): what one component
//! exports is plugged into what another imports.

/// The interface the service reads its configuration from (`wit/registry.wit`).
pub const CONFIG_INTERFACE: &str = "ocirelay:registry/service-config@0.1.0";

/// `socket` with each of `plugs` (name, bytes) plugged into the imports it
/// exports; an error says which component could not be read or plugged.
pub fn plug(socket: (&str, &[u8]), plugs: &[(&str, &[u8])]) -> Result<Vec<u8>, String> {
    use wac_graph::{types::Package, CompositionGraph, EncodeOptions};
    let mut graph = CompositionGraph::new();
    let mut register = |name: &str, bytes: &[u8]| {
        let package = Package::from_bytes(name, None, bytes.to_vec(), graph.types_mut())
            .map_err(|e| format!("reading the {name} component: {e:#}"))?;
        graph
            .register_package(package)
            .map_err(|e| format!("registering the {name} component: {e:#}"))
    };
    let socket_id = register(socket.0, socket.1)?;
    let plug_ids = plugs
        .iter()
        .map(|(name, bytes)| register(name, bytes))
        .collect::<Result<Vec<_>, _>>()?;
    wac_graph::plug(&mut graph, plug_ids, socket_id)
        .map_err(|e| format!("plugging into the {} component: {e:#}", socket.0))?;
    graph
        .encode(EncodeOptions::default())
        .map_err(|e| format!("encoding the composed component: {e:#}"))
}

/// A component exporting [`CONFIG_INTERFACE`] whose `config` returns
/// `json`: the service's configuration compiled in, for hosts (the
/// `wasi:http/proxy` world) that give a component no files or environment;
/// its `host-verifies-downloads` returns `host_verifies` (true only for
/// ocirelay's own host).
pub fn config_component(json: &str, host_verifies: bool) -> Result<Vec<u8>, String> {
    // The string's bytes sit after an 8-byte return area (pointer, length).
    const AT: usize = 8;
    let pages = (AT + json.len()).div_ceil(65536).max(1);
    let escaped: String = json.bytes().map(|b| format!("\\{b:02x}")).collect();
    let wat = format!(
        r#"(component
  (core module $m
    (memory (export "memory") {pages})
    (data (i32.const {AT}) "{escaped}")
    (func (export "config") (result i32)
      (i32.store (i32.const 0) (i32.const {AT}))
      (i32.store (i32.const 4) (i32.const {len}))
      (i32.const 0))
    (func (export "host-verifies") (result i32) (i32.const {verifies})))
  (core instance $i (instantiate $m))
  (func $config (result string)
    (canon lift (core func $i "config") (memory (core memory $i "memory"))))
  (func $verifies (result bool) (canon lift (core func $i "host-verifies")))
  (instance $config
    (export "config" (func $config))
    (export "host-verifies-downloads" (func $verifies)))
  (export "{CONFIG_INTERFACE}" (instance $config)))"#,
        len = json.len(),
        verifies = i32::from(host_verifies),
    );
    wat::parse_str(&wat).map_err(|e| format!("making the configuration component: {e}"))
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
