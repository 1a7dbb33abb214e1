//! Digest parsing and the streaming verifier: never a panic; what parses
//! prints as itself; the verifier accepts content exactly when it hashes to
//! the digest with the size expected, however it is cut into chunks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ocirelay_fuzz::targets::digest(data));
