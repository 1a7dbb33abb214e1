//! What a registry says of its request budget in its answers' headers:
//! Docker Hub's `ratelimit-limit: 100;w=21600` / `ratelimit-remaining:
//! 76;w=21600` (it counts manifest GETs only), and the IETF draft's fields
//! in their forms so far (`RateLimit-Limit` / `-Remaining` / `-Reset`;
//! `RateLimit: limit=…, remaining=…, reset=…`; `RateLimit-Policy:
//! "p";q=…;w=…` with `RateLimit: "p";r=…;t=…`). Every number is checked
//! and clamped: a value that is not a plain count, or absurd, says nothing.

use std::time::Duration;

use crate::reference::DOCKER_HUB_API_HOST;

/// The longest a budget is believed to take to come back.
pub const MAX_RESET: Duration = Duration::from_secs(24 * 3600);

/// The largest count believed.
const MAX_COUNT: u64 = 1_000_000_000;

/// A registry's budget, as an answer states it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Requests left in the window.
    pub remaining: u64,
    /// The window's size, if stated.
    pub limit: Option<u64>,
    /// When the budget comes back, at the latest (the time to reset when
    /// stated, else the window's length).
    pub resets_in: Duration,
}

impl Budget {
    /// The budget an answer's headers state (`header` reads one by its
    /// lower-case name), or `None` when they state none or nothing usable.
    pub fn from_headers<'a>(header: impl Fn(&str) -> Option<&'a str>) -> Option<Budget> {
        let combined = header("ratelimit").map(parameters);
        let policy = header("ratelimit-policy").map(parameters);
        let param = |list: &Option<Vec<(String, String)>>, keys: &[&str]| {
            list.as_ref().and_then(|l| {
                l.iter()
                    .find(|(k, _)| keys.contains(&k.as_str()))
                    .and_then(|(_, v)| count(v))
            })
        };
        // `ratelimit-remaining: 76;w=21600` or `RateLimit-Remaining: 76`.
        let separate = |name: &str| {
            let value = header(name)?;
            let (first, rest) = value.split_once(';').unwrap_or((value, ""));
            let window = parameters(rest)
                .into_iter()
                .find(|(k, _)| k == "w")
                .and_then(|(_, v)| count(&v));
            Some((count(first)?, window))
        };
        let remaining_field = separate("ratelimit-remaining");
        let limit_field = separate("ratelimit-limit");
        let remaining = remaining_field
            .map(|(n, _)| n)
            .or_else(|| param(&combined, &["remaining", "r"]))?;
        let limit = limit_field
            .map(|(n, _)| n)
            .or_else(|| param(&combined, &["limit"]))
            .or_else(|| param(&policy, &["q"]));
        let reset = header("ratelimit-reset")
            .and_then(count)
            .or_else(|| param(&combined, &["reset", "t"]))
            .or_else(|| remaining_field.and_then(|(_, w)| w))
            .or_else(|| limit_field.and_then(|(_, w)| w))
            .or_else(|| param(&policy, &["w"]))?;
        Some(Budget {
            remaining,
            limit,
            resets_in: Duration::from_secs(reset).min(MAX_RESET),
        })
    }
}

/// Whether a request (`method` on `path`) to `budget_host` spends what
/// that registry counts: Docker Hub counts manifest GETs only (a HEAD is
/// free); any other registry stating a budget, every request.
pub fn counts_against(budget_host: &str, method: &str, path: &str) -> bool {
    match budget_host == DOCKER_HUB_API_HOST {
        true => method == "GET" && path.contains("/manifests/"),
        false => true,
    }
}

/// A plain count: ASCII digits, at most [`MAX_COUNT`].
fn count(text: &str) -> Option<u64> {
    let text = text.trim();
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) || text.len() > 10 {
        return None;
    }
    text.parse().ok().filter(|n| *n <= MAX_COUNT)
}

/// `key=value` parameters separated by `,` or `;` (a structured field's
/// item names, quoted strings, are skipped).
fn parameters(text: &str) -> Vec<(String, String)> {
    text.split([',', ';'])
        .filter_map(|part| {
            let (k, v) = part.split_once('=')?;
            Some((k.trim().to_ascii_lowercase(), v.trim().to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(headers: &[(&str, &str)]) -> Option<Budget> {
        Budget::from_headers(|name| {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| *v)
        })
    }

    #[test]
    fn reads_docker_hubs_fields() {
        let b = budget(&[
            ("ratelimit-limit", "100;w=21600"),
            ("ratelimit-remaining", "76;w=21600"),
            ("docker-ratelimit-source", "192.0.2.1"),
        ]);
        assert_eq!(
            b,
            Some(Budget {
                remaining: 76,
                limit: Some(100),
                resets_in: Duration::from_secs(21600)
            })
        );
    }

    #[test]
    fn reads_the_ietf_drafts_forms() {
        let separate = budget(&[
            ("RateLimit-Limit", "10"),
            ("RateLimit-Remaining", "0"),
            ("RateLimit-Reset", "30"),
        ]);
        assert_eq!(
            separate.map(|b| (b.remaining, b.resets_in.as_secs())),
            Some((0, 30))
        );
        let combined = budget(&[("RateLimit", "limit=10, remaining=4, reset=7")]);
        assert_eq!(
            combined.map(|b| (b.remaining, b.limit, b.resets_in.as_secs())),
            Some((4, Some(10), 7))
        );
        let structured = budget(&[
            ("RateLimit-Policy", "\"default\";q=100;w=60"),
            ("RateLimit", "\"default\";r=50;t=12"),
        ]);
        assert_eq!(
            structured.map(|b| (b.remaining, b.limit, b.resets_in.as_secs())),
            Some((50, Some(100), 12))
        );
    }

    #[test]
    fn what_is_malformed_or_absurd_says_nothing() {
        for headers in [
            vec![],
            vec![("ratelimit-remaining", "-1;w=60")],
            vec![("ratelimit-remaining", "x;w=60")],
            vec![("ratelimit-remaining", "5")], // no window, no reset
            vec![("ratelimit-remaining", "99999999999;w=60")],
            vec![("ratelimit-remaining", "5;w=-3")],
            vec![("ratelimit-remaining", "1.5;w=60")],
            vec![("RateLimit", "remaining=, reset=")],
        ] {
            assert_eq!(budget(&headers), None, "{headers:?}");
        }
        // A reset past a day is believed as a day.
        let far = budget(&[("ratelimit-remaining", "0;w=999999999")]).unwrap();
        assert_eq!(far.resets_in, MAX_RESET);
    }

    #[test]
    fn docker_hub_counts_manifest_gets_only() {
        let hub = DOCKER_HUB_API_HOST;
        assert!(counts_against(hub, "GET", "/v2/library/a/manifests/1"));
        assert!(!counts_against(hub, "HEAD", "/v2/library/a/manifests/1"));
        assert!(!counts_against(hub, "GET", "/v2/library/a/blobs/sha256:x"));
        assert!(counts_against("r.example", "HEAD", "/v2/a/manifests/1"));
    }
}
