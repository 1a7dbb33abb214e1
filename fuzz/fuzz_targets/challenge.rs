//! `WWW-Authenticate` challenges, the token requests made from them and
//! token answers: never a panic; a token request goes only to an
//! http(s) realm, and carries the refresh token only in its form body.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ocirelay_fuzz::targets::challenge(data));
