//! Manifests, indexes and image configs as registries serve them: never a
//! panic; an index that parses serializes to JSON that parses back to the
//! same index.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ocirelay_fuzz::targets::manifest(data));
