//! JSON printed exactly as `jq --tab` (jq 1.6) prints it: the bytes the
//! original deploy tool pushes for a `data` object, which it pipes through
//! `jq --tab 'del(.data), .data'`. Keys stay in input order (a repeated key
//! keeps its first place and its last value), one tab per level, `": "`
//! after a key, empty objects and arrays as `{}` and `[]`, strings escaped
//! as jq escapes them, numbers as jq's shortest round-trip form.

use serde_json::Value;

/// `value` as `jq --tab .` prints it, without the newline jq ends with.
pub fn tab(value: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, value, 0);
    out
}

/// The bytes the original deploy tool pushes for `data`: jq's text, with a
/// newline at the end when it spans lines (Go's decoder drops jq's own, and
/// the tool puts it back only on multi-line text: `{}` stays `{}`).
pub fn data_bytes(data: &Value) -> Vec<u8> {
    let mut text = tab(data);
    if text.contains('\n') {
        text.push('\n');
    }
    text.into_bytes()
}

fn indent(out: &mut String, level: usize) {
    out.extend(std::iter::repeat_n('\t', level));
}

fn write_value(out: &mut String, value: &Value, level: usize) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&number(n)),
        Value::String(s) => write_string(out, s),
        Value::Array(items) if items.is_empty() => out.push_str("[]"),
        Value::Array(items) => {
            out.push_str("[\n");
            for (i, item) in items.iter().enumerate() {
                indent(out, level + 1);
                write_value(out, item, level + 1);
                out.push_str(if i + 1 < items.len() { ",\n" } else { "\n" });
            }
            indent(out, level);
            out.push(']');
        }
        Value::Object(map) if map.is_empty() => out.push_str("{}"),
        Value::Object(map) => {
            out.push_str("{\n");
            for (i, (key, item)) in map.iter().enumerate() {
                indent(out, level + 1);
                write_string(out, key);
                out.push_str(": ");
                write_value(out, item, level + 1);
                out.push_str(if i + 1 < map.len() { ",\n" } else { "\n" });
            }
            indent(out, level);
            out.push('}');
        }
    }
}

/// jq's escapes: the two-character ones for `"`, `\` and five controls,
/// `\u00XX` for the other controls and DEL, everything else as it is.
fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A number as jq 1.6 prints it: as a double, in its shortest round-trip
/// digits, in exponent form when the point falls far outside them
/// (`1e+16`, `1e-05`, `1.23e-18`), else in plain form (`1000000`,
/// `15000000000000000`, `123456789012345680`, `0.0001`).
fn number(n: &serde_json::Number) -> String {
    let x = match n.as_f64() {
        Some(x) => x,
        None => return n.to_string(),
    };
    if x == 0.0 {
        return if x.is_sign_negative() { "-0" } else { "0" }.to_string();
    }
    // Rust's `{:e}` gives the shortest round-trip digits: `d[.ddd]e±X`.
    let sci = format!("{:e}", x.abs());
    let (mantissa, exponent) = sci.split_once('e').unwrap_or((&sci, "0"));
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let exponent: i32 = exponent.parse().unwrap_or(0);
    // Where the decimal point falls, counted from the first digit.
    let point = exponent + 1;
    let count = digits.len() as i32;
    let sign = if x < 0.0 { "-" } else { "" };
    // jq's `jvp_dtoa_fmt`: exponent form when the point is 4 or more
    // places before the digits, or over 15 places past their end.
    if point <= -4 || point > count + 15 {
        let (first, rest) = digits.split_at(1);
        let fraction = if rest.is_empty() {
            String::new()
        } else {
            format!(".{rest}")
        };
        let e = point - 1;
        let e_sign = if e < 0 { '-' } else { '+' };
        format!("{sign}{first}{fraction}e{e_sign}{:02}", e.abs())
    } else if point <= 0 {
        let zeros = "0".repeat((-point) as usize);
        format!("{sign}0.{zeros}{digits}")
    } else if point >= count {
        let zeros = "0".repeat((point - count) as usize);
        format!("{sign}{digits}{zeros}")
    } else {
        let (whole, fraction) = digits.split_at(point as usize);
        format!("{sign}{whole}.{fraction}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn printed(json: &str) -> String {
        tab(&serde_json::from_str(json).unwrap())
    }

    #[test]
    fn numbers_print_as_jq_prints_them() {
        for (input, jq) in [
            ("0", "0"),
            ("1.0", "1"),
            ("1.5", "1.5"),
            ("100", "100"),
            ("1e2", "100"),
            ("100000", "100000"),
            ("1e6", "1000000"),
            ("1e16", "1e+16"),
            ("1.5e16", "15000000000000000"),
            ("1.5e17", "1.5e+17"),
            ("1.23e17", "123000000000000000"),
            ("1e20", "1e+20"),
            ("1.5e-5", "1.5e-05"),
            ("1e-5", "1e-05"),
            ("0.0001", "0.0001"),
            ("0.1", "0.1"),
            ("-2.5", "-2.5"),
            ("123456789012345678", "123456789012345680"),
            ("12345678901234567890", "12345678901234567000"),
            ("1.7976931348623157e308", "1.7976931348623157e+308"),
            ("3.14159265358979323846", "3.141592653589793"),
            ("123e-20", "1.23e-18"),
            ("5e-324", "5e-324"),
            ("-1234.5678", "-1234.5678"),
        ] {
            assert_eq!(printed(input), jq, "{input}");
        }
    }

    #[test]
    fn strings_escape_as_jq_escapes_them() {
        assert_eq!(
            printed(r#""a\u0000b\u001f\u007f\u0080é\ud83d\ude00\/\"\\\b\f\n\r\t""#),
            "\"a\\u0000b\\u001f\\u007f\u{80}é😀/\\\"\\\\\\b\\f\\n\\r\\t\""
        );
    }

    #[test]
    fn nesting_is_one_tab_per_level_and_empty_stays_inline() {
        let json = r#"{"a":1,"b":{},"c":[],"d":[1,[2,{}]],"e":{"f":null,"g":true},"a":3}"#;
        let expected = "{\n\t\"a\": 3,\n\t\"b\": {},\n\t\"c\": [],\n\t\"d\": [\n\t\t1,\n\t\t[\n\t\t\t2,\n\t\t\t{}\n\t\t]\n\t],\n\t\"e\": {\n\t\t\"f\": null,\n\t\t\"g\": true\n\t}\n}";
        assert_eq!(printed(json), expected);
        assert_eq!(data_bytes(&serde_json::json!({})), b"{}");
        assert_eq!(
            data_bytes(&serde_json::json!({"a": 1})),
            b"{\n\t\"a\": 1\n}\n"
        );
    }
}
