//! What ocirelay's fuzz targets share. The parsers' targets feed the core's
//! parsers arbitrary text; the operations target ([`scenario::run`]) plays
//! a hostile registry: the sans-IO core makes every answer an operation
//! gets (status, headers, body, or no answer) a fuzz input.
//!
//! - [`world`]: fixture images and honest registries;
//! - [`hostile`]: what the fuzzer does to their answers;
//! - [`harness`]: the driver, checking invariants on every step;
//! - [`scenario`]: one run, and the checks on its outcome;
//! - [`seeds`]: where fuzzing starts;
//! - [`targets`]: every target's body, by name.

pub mod harness;
pub mod hostile;
pub mod scenario;
pub mod seeds;
pub mod targets;
pub mod world;
