//! URLs and `Location`s: never a panic; a parsed or joined URL has no dot
//! segments left and prints as a URL that parses back to itself; following
//! a redirect never goes from HTTPS down to plain HTTP.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ocirelay_fuzz::targets::location(data));
