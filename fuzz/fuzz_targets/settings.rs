//! What a host reads from files and flags: the settings file, `--rate`
//! specs, docker's `config.json` and credential helpers' answers. Never a
//! panic; a rate that parses is usable (a host, a count, a period of at
//! most a day).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ocirelay_fuzz::targets::settings(data));
