//! Platform normalization (containerd's, then bashbrew's arm64 rule):
//! never a panic, idempotent, and a bashbrew architecture found for a
//! platform names that same platform.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ocirelay_fuzz::targets::platform(data));
