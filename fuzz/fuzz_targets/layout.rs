//! An OCI layout's `index.json` and the requests a host answering a
//! layout reads: never a panic, nothing climbs out of the layout.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ocirelay_fuzz::targets::layout(data));
