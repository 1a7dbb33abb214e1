//! A module with a world of its own made a component, run on wasmtime.

use super::*;
use wasmtime::component::{Component, Linker};
use wasmtime::{Engine, Store};

/// The world: a seed std would ask for, the random words it comes from,
/// and a function that returns their sum.
const WIT: [(&str, &str); 2] = [
    (
        "random.wit",
        "package wasi:random@0.2.4;
         interface random { get-random-u64: func() -> u64; }
         interface insecure-seed { insecure-seed: func() -> tuple<u64, u64>; }",
    ),
    (
        "app.wit",
        "package test:app;
         world app {
           import wasi:random/random@0.2.4;
           import wasi:random/insecure-seed@0.2.4;
           export run: func() -> u64;
         }",
    ),
];

const MODULE: &str = r#"(module
  (import "wasi:random/insecure-seed@0.2.4" "insecure-seed" (func $seed (param i32)))
  (memory (export "memory") 1)
  (func (export "run") (result i64)
    (call $seed (i32.const 16))
    (i64.add (i64.load (i32.const 16)) (i64.load (i32.const 24)))))"#;

/// `MODULE` with `WIT`'s world embedded, as wit-bindgen embeds it.
fn module_with_world() -> Vec<u8> {
    let mut resolve = wit_parser::Resolve::default();
    let mut app = None;
    for (name, text) in WIT {
        app = Some(resolve.push_str(name, text).expect("valid WIT"));
    }
    let app = app.expect("pushed");
    let world = resolve
        .select_world(&[app], Some("app"))
        .expect("the world");
    let mut module = wat::parse_str(MODULE).expect("valid text");
    wit_component::embed_component_metadata(
        &mut module,
        &resolve,
        world,
        wit_component::StringEncoding::UTF8,
    )
    .expect("embedded");
    module
}

#[test]
fn a_module_becomes_a_component_that_imports_the_proxy_world_only() {
    let wasm = component(&module_with_world(), None).expect("made");
    assert_eq!(
        core_modules(&wasm),
        Ok(1),
        "no imports return lists: no shim"
    );
    let engine = Engine::default();
    let component = Component::new(&engine, &wasm).expect("compiles");
    let imports: Vec<String> = component
        .component_type()
        .imports(&engine)
        .map(|(name, _)| name.to_string())
        .collect();
    assert_eq!(imports, ["wasi:random/random@0.2.4"]);
    let mut linker = Linker::new(&engine);
    linker
        .instance("wasi:random/random@0.2.4")
        .and_then(|mut random| random.func_wrap("get-random-u64", |_, ()| Ok((21u64,))))
        .expect("a stand-in for wasi:random");
    let mut store = Store::new(&engine, ());
    let instance = linker
        .instantiate(&mut store, &component)
        .expect("instantiates");
    let run = instance
        .get_typed_func::<(), (u64,)>(&mut store, "run")
        .expect("exported");
    assert_eq!(run.call(&mut store, ()).expect("runs"), (42,));
}

#[test]
fn what_cannot_be_made_says_which_step_failed() {
    let bare = wat::parse_str(MODULE).expect("valid text");
    let err = component(&bare, None).unwrap_err();
    assert!(err.starts_with("making the component: "), "{err}");
    let err = component(b"not wasm", None).unwrap_err();
    assert!(err.starts_with("settling the module: "), "{err}");
}

#[test]
fn core_modules_are_counted_in_nested_components_too() {
    let nested = wat::parse_str(
        "(component (core module) (component (core module) (core module)) (component))",
    )
    .expect("valid text");
    assert_eq!(core_modules(&nested), Ok(3));
    assert_eq!(core_modules(b"\0asm\x0d\0\x01\0"), Ok(0));
    assert!(core_modules(b"not wasm").is_err());
    assert!(core_modules(b"\0asm\x0d\0\x01\0\x01\xff").is_err());
}
