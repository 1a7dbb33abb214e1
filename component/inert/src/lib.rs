//! The interfaces Rust's std on wasm32-wasip2 imports beyond the
//! `wasi:http/proxy` world, answered inertly (`wit/inert.wit`). Composed
//! into the registry component (host/build.rs), it leaves that component
//! importing only what every wasi-http host offers, edge runtimes included.
//!
//! `no_std` and allocation-free, so it imports none of what it stands in
//! for: every answer is empty, `None`, a trap, or two words of randomness.

#![no_std]

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;

wit_bindgen::generate!({
    world: "inert",
    path: "wit",
    generate_all,
});

use exports::wasi::cli::{
    environment, exit, terminal_input, terminal_output, terminal_stderr, terminal_stdin,
    terminal_stdout,
};
use exports::wasi::random::insecure_seed;

struct Inert;

/// No terminal is ever handed out, so none is ever made.
struct NoTerminal;

impl terminal_input::GuestTerminalInput for NoTerminal {}
impl terminal_output::GuestTerminalOutput for NoTerminal {}

impl terminal_input::Guest for Inert {
    type TerminalInput = NoTerminal;
}

impl terminal_output::Guest for Inert {
    type TerminalOutput = NoTerminal;
}

impl terminal_stdin::Guest for Inert {
    fn get_terminal_stdin() -> Option<terminal_stdin::TerminalInput> {
        None
    }
}

impl terminal_stdout::Guest for Inert {
    fn get_terminal_stdout() -> Option<terminal_stdout::TerminalOutput> {
        None
    }
}

impl terminal_stderr::Guest for Inert {
    fn get_terminal_stderr() -> Option<terminal_stderr::TerminalOutput> {
        None
    }
}

impl environment::Guest for Inert {
    fn get_environment() -> Vec<(String, String)> {
        Vec::new()
    }

    fn get_arguments() -> Vec<String> {
        Vec::new()
    }

    fn initial_cwd() -> Option<String> {
        None
    }
}

impl exit::Guest for Inert {
    // A library never exits; were std to try, the call ends as a trap.
    fn exit(_status: Result<(), ()>) {
        core::arch::wasm32::unreachable()
    }

    fn exit_with_code(_status_code: u8) {
        core::arch::wasm32::unreachable()
    }
}

impl insecure_seed::Guest for Inert {
    fn insecure_seed() -> (u64, u64) {
        use wasi::random::random::get_random_u64;
        (get_random_u64(), get_random_u64())
    }
}

export!(Inert);

/// Nothing here allocates (empty lists need no memory); were anything to,
/// the null this returns makes it fail loudly rather than import an
/// allocator's needs.
struct NoAlloc;

unsafe impl core::alloc::GlobalAlloc for NoAlloc {
    unsafe fn alloc(&self, _layout: core::alloc::Layout) -> *mut u8 {
        core::ptr::null_mut()
    }

    unsafe fn dealloc(&self, _ptr: *mut u8, _layout: core::alloc::Layout) {}
}

#[global_allocator]
static ALLOCATOR: NoAlloc = NoAlloc;

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    core::arch::wasm32::unreachable()
}
