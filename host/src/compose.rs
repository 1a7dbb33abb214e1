//! Composition of components, shared by `build.rs` (the registry component
//! with the inert answers std needs) and by `ocirelay build-service` /
//! `ocirelay serve` (the service with its configuration and the same inert
//! answers). Composition is wac's (`wac-graph`): what one component exports
//! is plugged into what another imports.

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

/// A component of one core module that answers, inertly, what Rust's std
/// on wasm32-wasip2 imports beyond the `wasi:http/proxy` world
/// (environment variables and arguments: none; exit: a trap; terminals:
/// none; the hash-map seed: two words of `wasi:random/random`), so that a
/// component plugged with it imports only the proxy world. With `config`
/// (the service's JSON, and whether the host verifies downloads: true only
/// for ocirelay's own host), it also exports [`CONFIG_INTERFACE`]: the
/// configuration compiled in, for hosts that give a component no files or
/// environment. One module, not a Rust component's three: a host that
/// instantiates per request counts core modules against its pool.
pub fn extras_component(config: Option<(&str, bool)>) -> Result<Vec<u8>, String> {
    // Memory: the config's return area at 16, the seed's at 32, zeroes (an
    // empty list, an absent option) at 48, the config's text from 64.
    const AT: usize = 64;
    let (json, host_verifies) = config.unwrap_or(("", false));
    let pages = (AT + json.len()).div_ceil(65536).max(1);
    let escaped: String = json.bytes().map(|b| format!("\\{b:02x}")).collect();
    let config_exports = match config {
        None => String::new(),
        Some(_) => format!(
            r#"
  (func $config (result string) (canon lift (core func $i "config") (memory $mem)))
  (func $verifies (result bool) (canon lift (core func $i "host-verifies")))
  (instance $config_i
    (export "config" (func $config))
    (export "host-verifies-downloads" (func $verifies)))
  (export "{CONFIG_INTERFACE}" (instance $config_i))"#
        ),
    };
    let wat = format!(
        r#"(component
  (import "wasi:random/random@0.2.12" (instance $random
    (export "get-random-u64" (func (result u64)))))
  (core func $u64 (canon lower (func $random "get-random-u64")))
  (core module $m
    (import "random" "u64" (func $u64 (result i64)))
    (memory (export "memory") {pages})
    (data (i32.const {AT}) "{escaped}")
    (func (export "config") (result i32)
      (i32.store (i32.const 16) (i32.const {AT}))
      (i32.store (i32.const 20) (i32.const {len}))
      (i32.const 16))
    (func (export "host-verifies") (result i32) (i32.const {verifies}))
    (func (export "zeroes") (result i32) (i32.const 48))
    (func (export "trap") (param i32) unreachable)
    (func (export "seed") (result i32)
      (i64.store (i32.const 32) (call $u64))
      (i64.store (i32.const 40) (call $u64))
      (i32.const 32)))
  (core instance $r (export "u64" (func $u64)))
  (core instance $i (instantiate $m (with "random" (instance $r))))
  (alias core export $i "memory" (core memory $mem)){config_exports}

  (func $env (result (list (tuple string string)))
    (canon lift (core func $i "zeroes") (memory $mem)))
  (func $args (result (list string)) (canon lift (core func $i "zeroes") (memory $mem)))
  (func $cwd (result (option string)) (canon lift (core func $i "zeroes") (memory $mem)))
  (instance $environment
    (export "get-environment" (func $env))
    (export "get-arguments" (func $args))
    (export "initial-cwd" (func $cwd)))
  (export "wasi:cli/environment@0.2.12" (instance $environment))

  (func $exit (param "status" (result)) (canon lift (core func $i "trap")))
  (func $exit_code (param "status-code" u8) (canon lift (core func $i "trap")))
  (instance $exit_i (export "exit" (func $exit)) (export "exit-with-code" (func $exit_code)))
  (export "wasi:cli/exit@0.2.12" (instance $exit_i))

  (type $input (resource (rep i32)))
  (type $output (resource (rep i32)))
  (instance $ti (export "terminal-input" (type $input)))
  (export $ti_e "wasi:cli/terminal-input@0.2.12" (instance $ti))
  (alias export $ti_e "terminal-input" (type $input_e))
  (instance $to (export "terminal-output" (type $output)))
  (export $to_e "wasi:cli/terminal-output@0.2.12" (instance $to))
  (alias export $to_e "terminal-output" (type $output_e))
  (func $stdin (result (option (own $input_e)))
    (canon lift (core func $i "zeroes") (memory $mem)))
  (instance $tstdin
    (export "terminal-input" (type $input_e))
    (export "get-terminal-stdin" (func $stdin)))
  (export "wasi:cli/terminal-stdin@0.2.12" (instance $tstdin))
  (func $stdout (result (option (own $output_e)))
    (canon lift (core func $i "zeroes") (memory $mem)))
  (instance $tstdout
    (export "terminal-output" (type $output_e))
    (export "get-terminal-stdout" (func $stdout)))
  (export "wasi:cli/terminal-stdout@0.2.12" (instance $tstdout))
  (func $stderr (result (option (own $output_e)))
    (canon lift (core func $i "zeroes") (memory $mem)))
  (instance $tstderr
    (export "terminal-output" (type $output_e))
    (export "get-terminal-stderr" (func $stderr)))
  (export "wasi:cli/terminal-stderr@0.2.12" (instance $tstderr))

  (func $seed (result (tuple u64 u64)) (canon lift (core func $i "seed") (memory $mem)))
  (instance $seed_i (export "insecure-seed" (func $seed)))
  (export "wasi:random/insecure-seed@0.2.12" (instance $seed_i)))"#,
        len = json.len(),
        verifies = i32::from(host_verifies),
    );
    wat::parse_str(&wat).map_err(|e| format!("making the extras component: {e}"))
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
