//! JSON output: one document per reference, pretty-printed with tabs.

use std::io::Write;

use serde::Serialize;

/// Writes `value` as tab-indented JSON and a newline (the core's
/// [`ocirelay_core::json`], which the component's `*-json` functions use
/// too). A failed write keeps its I/O error kind (a closed pipe stays a
/// closed pipe).
pub fn write_json<W: Write, T: Serialize>(out: &mut W, value: &T) -> std::io::Result<()> {
    ocirelay_core::json::write(out, value).map_err(|e| match e.io_error_kind() {
        Some(kind) => std::io::Error::new(kind, e),
        None => std::io::Error::other(e),
    })
}
