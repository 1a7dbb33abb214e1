//! The rate and concurrency state kept per registry, driven by arbitrary
//! requests, answers and stated budgets: never a panic, limits in bounds.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ocirelay_fuzz::targets::limits(data));
