//! JSON as ocirelay prints it: tab-indented, keys in their order, one
//! document and a newline. The CLI prints with it and the component hands
//! embedders the same bytes, so neither re-renders OCI JSON its own way.

use serde::Serialize;

use crate::error::{Error, Result};

/// Writes `value` as printed JSON (newline included) to `out`.
pub fn write<W: std::io::Write, T: Serialize + ?Sized>(
    mut out: W,
    value: &T,
) -> serde_json::Result<()> {
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"\t");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, formatter);
    value.serialize(&mut ser)?;
    out.write_all(b"\n").map_err(serde_json::Error::io)
}

/// `value` as printed JSON (newline included).
pub fn to_string<T: Serialize + ?Sized>(value: &T) -> Result<String> {
    let mut out = Vec::new();
    write(&mut out, value).map_err(|e| Error::Internal(format!("printing JSON: {e}")))?;
    String::from_utf8(out).map_err(|e| Error::Internal(format!("printing JSON: {e}")))
}

/// A manifest or index (its bytes as the registry serves them) as printed
/// JSON: the same keys and values in the same order, re-indented.
pub fn manifest(subject: &str, bytes: &[u8]) -> Result<String> {
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| {
        Error::protocol(
            subject.to_string(),
            format!("the manifest is not JSON: {e}"),
        )
    })?;
    to_string(&value)
}

/// Reads `null` as the type's default (an empty list, map or string), as Go
/// reads `null` into a slice, map or string: for optional fields of the
/// JSON registries serve (`"layers": null`, `"annotations": null`), which
/// the original accepts.
pub fn nullable<'de, D, T>(d: D) -> std::result::Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + serde::Deserialize<'de>,
{
    use serde::Deserialize as _;
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// `text` read as a `T`, for files people write (settings, service
/// config, docker config): an error names the field at fault by its path
/// (`rates.HOST`, `upstreams[0].insecure`) before serde's reason and place.
pub fn from_str_naming_field<T: serde::de::DeserializeOwned>(
    text: &str,
) -> std::result::Result<T, String> {
    let mut de = serde_json::Deserializer::from_str(text);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        match path.as_str() {
            "." => e.into_inner().to_string(),
            _ => format!("{path}: {}", e.into_inner()),
        }
    })?;
    // As `serde_json::from_str`: nothing but whitespace after the value.
    de.end().map_err(|e| e.to_string())?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_field_of_the_wrong_type_is_named_by_its_path() {
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct File {
            #[serde(default)]
            items: Vec<Item>,
        }
        #[derive(Debug, serde::Deserialize)]
        struct Item {
            #[allow(dead_code)]
            count: u32,
        }
        let e = from_str_naming_field::<File>(r#"{"items": [{"count": 1}, {"count": -1}]}"#)
            .unwrap_err();
        assert!(
            e.starts_with("items[1].count: invalid value: integer `-1`"),
            "{e}"
        );
        let e = from_str_naming_field::<File>(r#"{"other": 1}"#).unwrap_err();
        assert!(e.starts_with("other: unknown field `other`"), "{e}");
        let e = from_str_naming_field::<File>(r#"{} {}"#).unwrap_err();
        assert!(e.starts_with("trailing characters"), "{e}");
        assert_eq!(
            from_str_naming_field::<File>(" {} ").unwrap().items.len(),
            0
        );
    }

    #[test]
    fn tabs_key_order_and_a_newline() {
        let bytes = br#"{"schemaVersion":2,"mediaType":"m","manifests":[{"size":1,"digest":"d"}],"annotations":{}}"#;
        assert_eq!(
            manifest("r", bytes).unwrap(),
            "{\n\t\"schemaVersion\": 2,\n\t\"mediaType\": \"m\",\n\t\"manifests\": [\n\t\t{\n\t\t\t\"size\": 1,\n\t\t\t\"digest\": \"d\"\n\t\t}\n\t],\n\t\"annotations\": {}\n}\n"
        );
        assert_eq!(to_string(&serde_json::Value::Null).unwrap(), "null\n");
        let e = manifest("registry.example/app:v1", b"{").unwrap_err();
        assert!(e.to_string().contains("registry.example/app:v1"), "{e}");
    }
}
