//! How a blob goes up to a registry: in one `PUT` (monolithic), or in
//! `PATCH` chunks that a broken connection does not start over. What each
//! registry takes, as configured, as known of hosted registries, and as
//! its answers reveal (its stated minimum chunk, a 413's maximum), and the
//! upload headers read on the way (`OCI-Chunk-Min-Length`, a session's
//! `Range`).

use std::collections::BTreeMap;

use crate::error::{Error, Result};
use crate::http::Headers;

/// Blobs up to this size go in one `PUT` unless a registry's rule says
/// otherwise: one round trip, nothing to gain by resuming.
pub const DEFAULT_MONOLITHIC_UP_TO: u64 = 128 << 20;

/// Bytes per `PATCH` unless a registry's rule says otherwise: what a broken
/// connection costs at most, under any proxy's body limit (Cloudflare's is
/// 100 MB), over S3's 5 MiB part minimum.
pub const DEFAULT_CHUNK_SIZE: u64 = 32 << 20;

/// The smallest chunk a 413 lowers the size to.
pub const SMALLEST_CHUNK: u64 = 1 << 20;

/// How blobs go up to one registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadRule {
    /// Bytes per `PATCH`.
    pub chunk_size: u64,
    /// Blobs up to this size go in one `PUT` (`u64::MAX`: all of them).
    pub monolithic_up_to: u64,
}

impl Default for UploadRule {
    fn default() -> Self {
        UploadRule {
            chunk_size: DEFAULT_CHUNK_SIZE,
            monolithic_up_to: DEFAULT_MONOLITHIC_UP_TO,
        }
    }
}

impl UploadRule {
    /// Every blob in one `PUT`.
    pub const MONOLITHIC: UploadRule = UploadRule {
        chunk_size: DEFAULT_CHUNK_SIZE,
        monolithic_up_to: u64::MAX,
    };

    /// What is known of hosted registries' chunked uploads (see the
    /// README's table): where chunks are reported broken, blobs go whole.
    pub fn known(host: &str) -> Option<UploadRule> {
        let host = host.to_ascii_lowercase();
        // ECR: later PATCHes' bodies reported dropped (aws/containers-roadmap#2831).
        let ecr = host.contains(".dkr.ecr.") && host.ends_with(".amazonaws.com");
        // GHCR: PATCH chunks over 4 MiB refused (oras-project/rust-oci-client#35).
        let ghcr = host == "ghcr.io";
        (ecr || ghcr).then_some(UploadRule::MONOLITHIC)
    }
}

/// The rules by registry, with one for the rest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UploadRules {
    /// By registry host, as in references (`registry.example:5000`).
    pub by_registry: BTreeMap<String, UploadRule>,
    /// For registries without a rule of their own or a known one.
    pub default: UploadRule,
}

impl UploadRules {
    /// Sets `registry`'s rule (`*`: every registry without its own) from
    /// sizes where 0 means the default.
    pub fn set(&mut self, registry: &str, chunk_size: u64, monolithic_up_to: u64) -> Result<()> {
        if registry.trim().is_empty() {
            return Err(Error::InvalidInput(
                "an upload rule names no registry".to_string(),
            ));
        }
        let defaults = UploadRule::default();
        let rule = UploadRule {
            chunk_size: if chunk_size == 0 {
                defaults.chunk_size
            } else {
                chunk_size
            },
            monolithic_up_to: if monolithic_up_to == 0 {
                defaults.monolithic_up_to
            } else {
                monolithic_up_to
            },
        };
        if registry == "*" {
            self.default = rule;
        } else {
            self.by_registry.insert(registry.to_ascii_lowercase(), rule);
        }
        Ok(())
    }

    /// The rule for `host`: its own, else what is known of it, else the default.
    pub fn for_registry(&self, host: &str) -> UploadRule {
        self.by_registry
            .iter()
            .find(|(h, _)| h.eq_ignore_ascii_case(host))
            .map(|(_, r)| *r)
            .or_else(|| UploadRule::known(host))
            .unwrap_or(self.default)
    }
}

/// A session's `OCI-Chunk-Min-Length`: chunks (but the last) must be at
/// least this long. 0 or what is not a number states nothing (`None`).
pub fn chunk_min_length(headers: &Headers) -> Option<u64> {
    let value = headers.get("oci-chunk-min-length")?;
    value.trim().parse::<u64>().ok().filter(|n| *n > 0)
}

/// How many bytes an upload session holds, from its `Range: 0-LAST`
/// (inclusive; some registries write `bytes=0-LAST`). Distribution says
/// `0-0` of an empty session, so that reads as nothing. `None`: no range,
/// or one that does not start at 0 or does not parse.
pub fn session_holds(headers: &Headers) -> Option<u64> {
    let value = headers.get("range")?.trim();
    let value = value.strip_prefix("bytes=").unwrap_or(value);
    let last = value.strip_prefix("0-")?.parse::<u64>().ok()?;
    match last {
        0 => Some(0),
        n => n.checked_add(1),
    }
}

/// A size as the settings file writes one: bytes (`1048576`), with a unit
/// (`32MiB`, `1GiB`, `100MB`, `512KiB`), or `any` (no limit).
pub fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("any") {
        return Some(u64::MAX);
    }
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().ok()?;
    let scale: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        _ => return None,
    };
    number.checked_mul(scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(name: &str, value: &str) -> Headers {
        let mut h = Headers::new();
        h.set(name, value);
        h
    }

    #[test]
    fn the_minimum_chunk_is_a_positive_number_or_nothing() {
        let min = |v| chunk_min_length(&headers("OCI-Chunk-Min-Length", v));
        assert_eq!(min("5242880"), Some(5 << 20));
        assert_eq!(min(" 18446744073709551615 "), Some(u64::MAX));
        for bad in ["0", "-1", "5MiB", "", "18446744073709551616", "1e6"] {
            assert_eq!(min(bad), None, "{bad:?}");
        }
        assert_eq!(chunk_min_length(&Headers::new()), None);
    }

    #[test]
    fn a_session_range_says_how_much_it_holds() {
        let holds = |v| session_holds(&headers("Range", v));
        assert_eq!(holds("0-1048575"), Some(1 << 20));
        assert_eq!(holds("bytes=0-9"), Some(10));
        assert_eq!(holds("0-0"), Some(0));
        for bad in [
            "5-10",
            "0-",
            "0--3",
            "bytes=1-2",
            "0-x",
            "0-18446744073709551615",
            "",
        ] {
            assert_eq!(holds(bad), None, "{bad:?}");
        }
        assert_eq!(session_holds(&Headers::new()), None);
    }

    #[test]
    fn sizes_parse_with_units_and_refuse_the_rest() {
        assert_eq!(parse_size("32MiB"), Some(32 << 20));
        assert_eq!(parse_size("1048576"), Some(1 << 20));
        assert_eq!(parse_size("100MB"), Some(100_000_000));
        assert_eq!(parse_size("any"), Some(u64::MAX));
        for bad in ["", "MiB", "-1", "1.5GiB", "3 parsecs", "99999999999999GiB"] {
            assert_eq!(parse_size(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_registry_gets_its_own_rule_then_the_known_one_then_the_default() {
        let own = UploadRule {
            chunk_size: 8 << 20,
            monolithic_up_to: 16 << 20,
        };
        let rules = UploadRules {
            by_registry: [("Registry.example:5000".to_string(), own)].into(),
            default: UploadRule::default(),
        };
        assert_eq!(rules.for_registry("registry.example:5000"), own);
        assert_eq!(rules.for_registry("ghcr.io"), UploadRule::MONOLITHIC);
        let ecr = "123456789012.dkr.ecr.eu-west-1.amazonaws.com";
        assert_eq!(rules.for_registry(ecr), UploadRule::MONOLITHIC);
        assert_eq!(rules.for_registry("quay.io"), UploadRule::default());
    }
}
