//! Every core operation, driven by a hostile registry: no panic, an end
//! within bounds, no credential or upload sent where it does not belong,
//! and nothing reported pushed that the answers did not confirm.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ocirelay_fuzz::targets::operations(data));
