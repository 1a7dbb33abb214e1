//! Percent-encoding as RFC 3986 has it: query components encoded for the
//! requests we send, and request targets (paths, query strings) decoded
//! once, for the edge service and for the `Link`s registries send.
//!
//! `+` is a plain character here, not a space: that is HTML forms'
//! convention (`application/x-www-form-urlencoded`), which registries and
//! their clients do not use.

use std::fmt;

/// Percent-encodes a query component (RFC 3986 unreserved characters pass).
pub fn encode_query_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A `%` not followed by two hex digits, or escapes that decode to bytes
/// that are not UTF-8.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadEscape {
    /// The text as it came, for the error message.
    pub raw: String,
}

impl fmt::Display for BadEscape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bad percent-encoding in {:?}", self.raw)
    }
}

/// `text` with its `%XX` escapes decoded.
pub fn decode(text: &str) -> Result<String, BadEscape> {
    if !text.contains('%') {
        return Ok(text.to_string());
    }
    let bad = || BadEscape {
        raw: text.to_string(),
    };
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).ok_or_else(bad)?;
            let digit = |b: u8| (b as char).to_digit(16).ok_or_else(bad);
            out.push((digit(hex[0])? * 16 + digit(hex[1])?) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| bad())
}

/// The pairs of a query string (`a=1&b&c=x%3Ay`), decoded, in order; a
/// name without `=` has an empty value. A bad escape names its parameter.
pub fn query_pairs(query: &str) -> Result<Vec<(String, String)>, QueryError> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let name = decode(name).map_err(|e| QueryError {
                parameter: e.raw.clone(),
                escape: e,
            })?;
            let value = decode(value).map_err(|escape| QueryError {
                parameter: name.clone(),
                escape,
            })?;
            Ok((name, value))
        })
        .collect()
}

/// A query parameter whose name or value is badly escaped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryError {
    /// The parameter's name (as it came, when the name is what is broken).
    pub parameter: String,
    /// What is wrong.
    pub escape: BadEscape,
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "query parameter {:?}: {}", self.parameter, self.escape)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_components_escape_all_but_unreserved() {
        assert_eq!(
            encode_query_component("repository:a/b:pull,push"),
            "repository%3Aa%2Fb%3Apull%2Cpush"
        );
        assert_eq!(encode_query_component("A-z.0_9~"), "A-z.0_9~");
        assert_eq!(encode_query_component("a b+é"), "a%20b%2B%C3%A9");
    }

    #[test]
    fn escapes_decode_once_and_plus_is_no_space() {
        assert_eq!(decode("127.0.0.1%3A5700").unwrap(), "127.0.0.1:5700");
        assert_eq!(decode("127.0.0.1:5700").unwrap(), "127.0.0.1:5700");
        assert_eq!(decode("%3a%3A").unwrap(), "::");
        // Once: an escaped `%` stays a `%`.
        assert_eq!(decode("%253A").unwrap(), "%3A");
        assert_eq!(decode("v1+build").unwrap(), "v1+build");
        assert_eq!(decode("%C3%A9").unwrap(), "é");
        for bad in ["%", "%3", "%zz", "a%3", "%G1", "%FF"] {
            assert_eq!(decode(bad).unwrap_err().raw, bad, "{bad}");
        }
    }

    #[test]
    fn query_pairs_decode_and_name_a_broken_parameter() {
        let pairs = query_pairs("ns=127.0.0.1%3A5700&n=10&last=v1%2B1&flag&&x=").unwrap();
        let pairs: Vec<(&str, &str)> = pairs
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            pairs,
            [
                ("ns", "127.0.0.1:5700"),
                ("n", "10"),
                ("last", "v1+1"),
                ("flag", ""),
                ("x", "")
            ]
        );
        assert_eq!(query_pairs("").unwrap(), []);
        let e = query_pairs("n=1&last=%zz").unwrap_err();
        assert_eq!(e.parameter, "last");
        assert_eq!(
            e.to_string(),
            "query parameter \"last\": bad percent-encoding in \"%zz\""
        );
        assert_eq!(query_pairs("%x=1").unwrap_err().parameter, "%x");
    }
}
