//! Reference parsing (Docker Hub rules): never a panic; what parses prints
//! as a string that parses back to the same reference, in Rust and in JSON.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ocirelay_fuzz::targets::reference(data));
