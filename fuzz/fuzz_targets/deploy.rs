//! The deploy tool's input stream: never a panic; normalized input is valid
//! input that normalizes to itself, and data objects print (as `jq --tab`)
//! to JSON that parses back to the same value.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ocirelay_fuzz::targets::deploy(data));
