//! Settling modules written as text, run on wasmtime.

use super::*;
use wasmtime::{Engine, Instance, Linker, Module, Store};

/// What std imports beyond the proxy world, one kept proxy import, and
/// functions of its own that reach each other directly and through the
/// table (so that remapped indices are exercised).
const STD_LIKE: &str = r#"(module
  (import "wasi:cli/environment@0.2.0" "get-environment" (func $env (param i32)))
  (import "wasi:http/types@0.2.12" "[resource-drop]fields" (func $drop (param i32)))
  (import "wasi:cli/exit@0.2.0" "exit" (func $exit (param i32)))
  (import "wasi:cli/terminal-stdout@0.2.0" "get-terminal-stdout" (func $tty (param i32)))
  (import "wasi:cli/terminal-output@0.2.0" "[resource-drop]terminal-output" (func $tdrop (param i32)))
  (import "wasi:random/insecure-seed@0.2.4" "insecure-seed" (func $seed (param i32)))
  (memory (export "memory") 1)
  (table 2 funcref)
  (elem (i32.const 0) $twice $env_at)
  (type $unary (func (param i32) (result i32)))
  (func $twice (param i32) (result i32) (i32.mul (local.get 0) (i32.const 2)))
  (func $env_at (param i32) (result i32) (call $env (local.get 0)) (local.get 0))
  (func (export "sum") (param i32) (result i32)
    (call $drop (i32.const 0))
    (call $tdrop (i32.const 0))
    (i32.add (call $twice (local.get 0))
             (call_indirect (type $unary) (local.get 0) (i32.const 0))))
  (func (export "env") (result i32 i32)
    (drop (call_indirect (type $unary) (i32.const 64) (i32.const 1)))
    (i32.load (i32.const 64)) (i32.load (i32.const 68)))
  (func (export "tty") (result i32)
    (i32.store8 (i32.const 80) (i32.const 9))
    (call $tty (i32.const 80)) (i32.load8_u (i32.const 80)))
  (func (export "seed") (result i64 i64)
    (call $seed (i32.const 96)) (i64.load (i32.const 96)) (i64.load (i32.const 104)))
  (func (export "exit") (call $exit (i32.const 0))))"#;

/// The service's configuration imports, and an allocator.
const CONFIGURED: &str = r#"(module
  (import "ocirelay:registry/service-config@0.1.0" "config" (func $config (param i32)))
  (import "ocirelay:registry/service-config@0.1.0" "host-verifies-downloads"
    (func $verifies (result i32)))
  (memory (export "memory") 1)
  (global $next (mut i32) (i32.const 1024))
  (data (i32.const 200) "already here")
  ;; A passive segment of its own: a data count the settling must keep right.
  (data $own "own passive")
  (func (export "own") (memory.init $own (i32.const 300) (i32.const 0) (i32.const 11)))
  (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32)
    (local $at i32)
    (local.set $at (global.get $next))
    (global.set $next (i32.add (local.get $at) (local.get 3)))
    (drop (memory.grow (i32.add (i32.shr_u (local.get 3) (i32.const 16)) (i32.const 1))))
    (local.get $at))
  (func (export "config") (result i32 i32)
    (call $config (i32.const 8)) (i32.load (i32.const 8)) (i32.load (i32.const 12)))
  (func (export "verifies") (result i32) (call $verifies)))"#;

fn module(wat: &str) -> Vec<u8> {
    wat::parse_str(wat).expect("the fixture is valid text")
}

/// `wasm` instantiated with the proxy imports it keeps (random: 7).
fn instantiate(wasm: &[u8]) -> (Store<()>, Instance) {
    let engine = Engine::default();
    let module = Module::new(&engine, wasm).expect("a valid module");
    let mut linker = Linker::new(&engine);
    linker
        .func_wrap("wasi:random/random@0.2.4", "get-random-u64", || 7u64)
        .and_then(|l| {
            l.func_wrap(
                "wasi:http/types@0.2.12",
                "[resource-drop]fields",
                |_: i32| {},
            )
        })
        .expect("stand-ins");
    let mut store = Store::new(&engine, ());
    let instance = linker
        .instantiate(&mut store, &module)
        .expect("instantiates");
    (store, instance)
}

fn imports(wasm: &[u8]) -> Vec<String> {
    let engine = Engine::default();
    let module = Module::new(&engine, wasm).expect("a valid module");
    module
        .imports()
        .map(|i| format!("{}#{}", i.module(), i.name()))
        .collect()
}

#[test]
fn std_imports_are_answered_inside_and_the_rest_still_works() {
    let settled = settle(&module(STD_LIKE), None).expect("settles");
    assert_eq!(
        imports(&settled),
        [
            "wasi:http/types@0.2.12#[resource-drop]fields",
            "wasi:random/random@0.2.4#get-random-u64"
        ]
    );
    let (mut store, instance) = instantiate(&settled);
    let call = |store: &mut Store<()>, name| instance.get_func(&mut *store, name).expect(name);
    let sum = call(&mut store, "sum")
        .typed::<i32, i32>(&store)
        .expect("typed");
    assert_eq!(sum.call(&mut store, 5).expect("runs"), 20);
    let env = call(&mut store, "env")
        .typed::<(), (i32, i32)>(&store)
        .expect("typed");
    assert_eq!(
        env.call(&mut store, ()).expect("runs"),
        (4, 0),
        "an empty list"
    );
    let tty = call(&mut store, "tty")
        .typed::<(), i32>(&store)
        .expect("typed");
    assert_eq!(tty.call(&mut store, ()).expect("runs"), 0, "no terminal");
    let seed = call(&mut store, "seed")
        .typed::<(), (i64, i64)>(&store)
        .expect("typed");
    assert_eq!(
        seed.call(&mut store, ()).expect("runs"),
        (7, 7),
        "from wasi:random"
    );
    let exit = call(&mut store, "exit")
        .typed::<(), ()>(&store)
        .expect("typed");
    assert!(exit.call(&mut store, ()).is_err(), "exit traps");
}

#[test]
fn a_seed_uses_the_random_import_the_module_has() {
    let wat = STD_LIKE.replacen(
        "(import \"wasi:cli/exit",
        "(import \"wasi:random/random@0.2.4\" \"get-random-u64\" (func (result i64)))
         (import \"wasi:cli/exit",
        1,
    );
    let settled = settle(&module(&wat), None).expect("settles");
    assert_eq!(imports(&settled).len(), 2, "{:?}", imports(&settled));
    let (mut store, instance) = instantiate(&settled);
    let seed = instance
        .get_typed_func::<(), (i64, i64)>(&mut store, "seed")
        .expect("typed");
    assert_eq!(seed.call(&mut store, ()).expect("runs"), (7, 7));
}

#[test]
fn a_config_of_any_size_is_carried_unchanged() {
    let entries: Vec<String> = (0..9000).map(|i| format!("\"team{i}/*\"")).collect();
    let text = format!(
        "{{\"repositories\": [{}], \"ua\": \"é\\\" ✓\"}}",
        entries.join(", ")
    );
    assert!(text.len() > 65536, "more than one page of memory");
    for host_verifies in [false, true] {
        let config = Config {
            json: &text,
            host_verifies,
        };
        let settled = settle(&module(CONFIGURED), Some(config)).expect("settles");
        assert!(imports(&settled).is_empty());
        let (mut store, instance) = instantiate(&settled);
        let read = instance
            .get_typed_func::<(), (i32, i32)>(&mut store, "config")
            .expect("typed");
        let (ptr, len) = read.call(&mut store, ()).expect("runs");
        let memory = instance.get_memory(&mut store, "memory").expect("memory");
        let data = memory.data(&store);
        assert_eq!(ptr, 1024, "placed by the module's allocator");
        let got = &data[ptr as usize..(ptr + len) as usize];
        assert_eq!(std::str::from_utf8(got), Ok(text.as_str()));
        assert_eq!(&data[200..212], b"already here", "its own data kept");
        let own = instance
            .get_typed_func::<(), ()>(&mut store, "own")
            .expect("typed");
        own.call(&mut store, ()).expect("runs");
        let data = memory.data(&store);
        assert_eq!(&data[300..311], b"own passive", "its own segments kept");
        let verifies = instance
            .get_typed_func::<(), i32>(&mut store, "verifies")
            .expect("typed");
        assert_eq!(
            verifies.call(&mut store, ()).expect("runs"),
            i32::from(host_verifies)
        );
    }
}

#[test]
fn what_cannot_be_settled_is_named() {
    let unknown = r#"(module (import "wasi:filesystem/preopens@0.2.0" "get-directories" (func (param i32))))"#;
    assert_eq!(
        settle(&module(unknown), None),
        Err(SettleError::Unsettled(
            "wasi:filesystem/preopens@0.2.0#get-directories".into()
        ))
    );
    let unconfigured = settle(&module(CONFIGURED), None).unwrap_err();
    assert!(
        matches!(&unconfigured, SettleError::Unsettled(i) if i.ends_with("#config")),
        "{unconfigured}"
    );
    let shape = r#"(module (import "wasi:cli/exit@0.2.0" "exit" (func)) (func))"#;
    let err = settle(&module(shape), None).unwrap_err();
    assert!(
        matches!(&err, SettleError::Signature { import, .. } if import == "wasi:cli/exit@0.2.0#exit"),
        "{err}"
    );
    let no_alloc = r#"(module
      (import "ocirelay:registry/service-config@0.1.0" "config" (func (param i32)))
      (memory 1) (func))"#;
    let config = Config {
        json: "{}",
        host_verifies: false,
    };
    assert_eq!(
        settle(&module(no_alloc), Some(config)),
        Err(SettleError::NoAllocator)
    );
    let no_code = r#"(module (import "wasi:cli/exit@0.2.0" "exit" (func (param i32))))"#;
    assert_eq!(
        settle(&module(no_code), None),
        Err(SettleError::NoFunctions)
    );
    assert!(matches!(
        settle(b"not wasm", None),
        Err(SettleError::Malformed(_))
    ));
    let component = wat::parse_str("(component)").expect("valid");
    assert!(matches!(
        settle(&component, None),
        Err(SettleError::Malformed(_))
    ));
}
