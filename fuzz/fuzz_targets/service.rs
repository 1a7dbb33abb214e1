//! The edge service's routing and heads: never a panic, and no control
//! character in a header value built from a request.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ocirelay_fuzz::targets::service(data));
