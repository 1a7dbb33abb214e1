//! JSON output: one document per reference, pretty-printed with tabs.

use std::io::Write;

use serde::Serialize;

/// Writes `value` as tab-indented JSON and a newline. A failed write keeps
/// its I/O error kind (a closed pipe stays a closed pipe).
pub fn write_json<W: Write, T: Serialize>(out: &mut W, value: &T) -> std::io::Result<()> {
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"\t");
    let mut ser = serde_json::Serializer::with_formatter(&mut *out, formatter);
    value
        .serialize(&mut ser)
        .map_err(|e| match e.io_error_kind() {
            Some(kind) => std::io::Error::new(kind, e),
            None => std::io::Error::other(e),
        })?;
    out.write_all(b"\n")
}
