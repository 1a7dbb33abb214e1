//! JSON output: one document per reference, pretty-printed with tabs.

use std::io::Write;

use serde::Serialize;

/// Writes `value` as tab-indented JSON and a newline.
pub fn write_json<W: Write, T: Serialize>(out: &mut W, value: &T) -> std::io::Result<()> {
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"\t");
    let mut ser = serde_json::Serializer::with_formatter(&mut *out, formatter);
    value.serialize(&mut ser).map_err(std::io::Error::other)?;
    out.write_all(b"\n")
}
