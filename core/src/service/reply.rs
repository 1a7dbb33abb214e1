//! How the edge service heads its answers: statuses and JSON bodies for
//! failures (the service's own `{"error": …}` or the distribution API's
//! `{"errors": […]}`), cache headers for the edge's HTTP cache, and
//! conditional requests (`If-None-Match`).

use crate::error::Error;
use crate::http::TransportErrorKind;
use crate::service::config::ServiceConfig;
use crate::Digest;

/// Why a request failed, as the service answers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// A reference or digest the grammar rejects (400).
    InvalidReference,
    /// An argument that makes no sense (400).
    InvalidInput,
    /// A tag list's `n` that is no count of tags (400).
    InvalidPagination,
    /// A byte range of which nothing is in the blob (416).
    RangeNotSatisfiable,
    /// Nothing at the reference (404).
    NotFound,
    /// No such repository, for a tag list (404).
    RepositoryNotFound,
    /// A path the service does not serve, such as the distribution API's
    /// tag list or catalog on the mirror (404).
    NoSuchRoute,
    /// A registry or repository the configuration does not serve (403).
    Forbidden,
    /// A method the route does not serve (405).
    MethodNotAllowed,
    /// The upstream refused the service's credentials (502).
    Authentication,
    /// The upstream answered with an error status (502).
    Registry,
    /// The upstream's content does not match its digest or size (502).
    Integrity,
    /// The upstream broke the protocol (502).
    Protocol,
    /// No answer from the upstream (502).
    Transport,
    /// The upstream did not answer in time (504).
    Timeout,
    /// The upstream kept answering 429 (429, its `Retry-After` passed on).
    RateLimited,
    /// The service is at capacity: every instance stayed busy (503, with
    /// a `Retry-After`).
    Overloaded,
    /// A bug in ocirelay (500).
    Internal,
}

impl FailureKind {
    /// The HTTP status the service answers with.
    pub fn status(self) -> u16 {
        match self {
            FailureKind::InvalidReference
            | FailureKind::InvalidInput
            | FailureKind::InvalidPagination => 400,
            FailureKind::RangeNotSatisfiable => 416,
            FailureKind::NotFound | FailureKind::RepositoryNotFound | FailureKind::NoSuchRoute => {
                404
            }
            FailureKind::Forbidden => 403,
            FailureKind::MethodNotAllowed => 405,
            FailureKind::Authentication
            | FailureKind::Registry
            | FailureKind::Integrity
            | FailureKind::Protocol
            | FailureKind::Transport => 502,
            FailureKind::Timeout => 504,
            FailureKind::RateLimited => 429,
            FailureKind::Overloaded => 503,
            FailureKind::Internal => 500,
        }
    }

    /// The name in the service's JSON errors (the WIT error's case names).
    pub fn name(self) -> &'static str {
        match self {
            FailureKind::InvalidReference => "invalid-reference",
            FailureKind::InvalidInput
            | FailureKind::InvalidPagination
            | FailureKind::RangeNotSatisfiable => "invalid-input",
            // The WIT has no case of its own for it: nothing is there.
            FailureKind::NotFound | FailureKind::RepositoryNotFound | FailureKind::NoSuchRoute => {
                "not-found"
            }
            FailureKind::Forbidden => "forbidden",
            FailureKind::MethodNotAllowed => "method-not-allowed",
            FailureKind::Authentication => "authentication",
            FailureKind::Registry => "registry",
            FailureKind::Integrity => "integrity",
            FailureKind::Protocol => "protocol",
            FailureKind::Transport => "transport",
            FailureKind::Timeout => "timeout",
            FailureKind::RateLimited => "rate-limited",
            FailureKind::Overloaded => "unavailable",
            FailureKind::Internal => "internal",
        }
    }
}

/// A failed request: what kind, the message naming what is at fault, and
/// for a 429 how long the upstream asked to wait.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// What kind.
    pub kind: FailureKind,
    /// What is at fault.
    pub message: String,
    /// Seconds to wait before trying again (passed on as `Retry-After`).
    pub retry_after_secs: Option<u64>,
    /// For a 416: the blob's size (`Content-Range: bytes */SIZE`).
    pub blob_size: Option<u64>,
}

impl Failure {
    /// A failure without a `Retry-After`.
    pub fn new(kind: FailureKind, message: impl Into<String>) -> Self {
        Failure {
            kind,
            message: message.into(),
            retry_after_secs: None,
            blob_size: None,
        }
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        let message = crate::error::printable(&e.to_string()).into_owned();
        let mut retry_after_secs = None;
        let kind = match e {
            Error::InvalidReference { .. } | Error::InvalidDigest { .. } => {
                FailureKind::InvalidReference
            }
            Error::InvalidInput(_) => FailureKind::InvalidInput,
            Error::NotFound { .. } => FailureKind::NotFound,
            Error::Authentication { .. } => FailureKind::Authentication,
            Error::Registry {
                status: 429,
                retry_after_secs: after,
                ..
            } => {
                retry_after_secs = after;
                FailureKind::RateLimited
            }
            Error::Registry { .. } => FailureKind::Registry,
            Error::Integrity { .. } => FailureKind::Integrity,
            Error::Protocol { .. } => FailureKind::Protocol,
            Error::Transport { cause, .. } if cause.kind == TransportErrorKind::TimedOut => {
                FailureKind::Timeout
            }
            Error::Transport { .. } => FailureKind::Transport,
            Error::Internal(_) => FailureKind::Internal,
        };
        Failure {
            kind,
            message,
            retry_after_secs,
            blob_size: None,
        }
    }
}

/// The header every answer of the registry API carries.
pub const API_VERSION: (&str, &str) = ("Docker-Distribution-API-Version", "registry/2.0");

/// What a request addresses, which decides how long its answer may be cached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Addressed {
    /// By digest: the answer never changes.
    ByDigest,
    /// By tag: the answer changes when the tag moves.
    ByTag,
}

/// An answer's head: status and headers, in order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Head {
    /// HTTP status.
    pub status: u16,
    /// Header names and values.
    pub headers: Vec<(String, String)>,
}

impl Head {
    /// A head with `status` and no headers yet.
    pub fn new(status: u16) -> Self {
        Head {
            status,
            headers: Vec::new(),
        }
    }

    /// Adds a header.
    pub fn with(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    /// The value of header `name` (case-insensitive), if set.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// `Cache-Control` for an answer: immutable by digest; by tag fresh for
/// the configured max-age, then servable stale while the upstream fails
/// (RFC 5861 `stale-if-error`), so an edge cache rides out 429s and 5xx.
pub fn cache_control(addressed: Addressed, config: &ServiceConfig) -> String {
    match addressed {
        Addressed::ByDigest => "public, max-age=31536000, immutable".to_string(),
        Addressed::ByTag => format!(
            "public, max-age={}, stale-if-error={}",
            config.tag_max_age, config.stale_if_error
        ),
    }
}

/// The strong entity tag of content with `digest`.
pub fn etag(digest: &Digest) -> String {
    format!("\"{digest}\"")
}

/// Whether an `If-None-Match` value matches content with `digest` (`*`,
/// or any listed tag, weak or strong, naming it): the answer is then 304.
pub fn not_modified(if_none_match: Option<&str>, digest: &Digest) -> bool {
    let Some(value) = if_none_match else {
        return false;
    };
    let digest = digest.to_string();
    value.split(',').map(str::trim).any(|tag| {
        let tag = tag.strip_prefix("W/").unwrap_or(tag);
        tag == "*" || tag.trim_matches('"') == digest
    })
}

/// The head every answer about found content carries: its digest, type,
/// length, entity tag and cache policy (what `docker pull` and an edge
/// cache read).
pub fn content_head(
    status: u16,
    digest: &Digest,
    media_type: &str,
    length: u64,
    addressed: Addressed,
    config: &ServiceConfig,
) -> Head {
    let head = Head::new(status)
        .with("Docker-Content-Digest", digest.to_string())
        .with("ETag", etag(digest))
        .with("Cache-Control", cache_control(addressed, config));
    match status {
        // A 304 repeats the validators and cache policy, never the body's type or length.
        304 => head,
        _ => head
            .with("Content-Type", media_type)
            .with("Content-Length", length.to_string()),
    }
}

/// The answer to a failed request: its head and JSON body. Mirror routes
/// answer as a registry does (`{"errors": [{"code", "message"}]}`), the
/// service's own routes with `{"error": {"kind", "message"}}`. A 429
/// passes the upstream's `Retry-After` on.
pub fn failure(failure: &Failure, mirror: bool, blob: bool) -> (Head, String) {
    let status = failure.kind.status();
    let body = if mirror {
        let code = match failure.kind {
            FailureKind::NotFound if blob => "BLOB_UNKNOWN",
            FailureKind::NotFound => "MANIFEST_UNKNOWN",
            FailureKind::RepositoryNotFound => "NAME_UNKNOWN",
            FailureKind::InvalidReference if blob => "DIGEST_INVALID",
            FailureKind::InvalidReference => "NAME_INVALID",
            FailureKind::InvalidPagination => "PAGINATION_NUMBER_INVALID",
            FailureKind::RangeNotSatisfiable => "RANGE_INVALID",
            FailureKind::Forbidden => "DENIED",
            FailureKind::MethodNotAllowed | FailureKind::NoSuchRoute => "UNSUPPORTED",
            FailureKind::RateLimited => "TOOMANYREQUESTS",
            FailureKind::Overloaded => "UNAVAILABLE",
            _ => "UNKNOWN",
        };
        serde_json::json!({"errors": [{"code": code, "message": failure.message}]})
    } else {
        serde_json::json!({"error": {"kind": failure.kind.name(), "message": failure.message}})
    };
    let body = format!("{body}\n");
    let mut head = Head::new(status)
        .with("Content-Type", "application/json")
        .with("Content-Length", body.len().to_string())
        // Failures are not cached: an edge keeps serving what it has (stale-if-error).
        .with("Cache-Control", "no-store");
    if let Some(secs) = failure.retry_after_secs {
        head = head.with("Retry-After", secs.to_string());
    }
    if failure.kind == FailureKind::MethodNotAllowed {
        head = head.with("Allow", "GET, HEAD");
    }
    if let Some(size) = failure.blob_size {
        head = head.with("Content-Range", format!("bytes */{size}"));
    }
    if mirror {
        head = head.with(API_VERSION.0, API_VERSION.1);
    }
    (head, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> ServiceConfig {
        ServiceConfig::parse(
            r#"{"upstreams": [{"registry": "docker.io", "repositories": ["*"]}], "tag-max-age": 30, "stale-if-error": 600}"#,
        )
        .unwrap()
    }

    fn digest() -> Digest {
        Digest::sha256(b"x")
    }

    #[test]
    fn digests_are_immutable_and_tags_short_lived_but_stale_if_error() {
        assert_eq!(
            cache_control(Addressed::ByDigest, &config()),
            "public, max-age=31536000, immutable"
        );
        assert_eq!(
            cache_control(Addressed::ByTag, &config()),
            "public, max-age=30, stale-if-error=600"
        );
    }

    #[test]
    fn if_none_match_matches_the_digest_in_any_form() {
        let d = digest();
        let tag = etag(&d);
        assert!(not_modified(Some(&tag), &d));
        assert!(not_modified(Some(&format!("W/{tag}")), &d));
        assert!(not_modified(Some(&format!("\"other\", {tag}")), &d));
        assert!(not_modified(Some("*"), &d));
        assert!(!not_modified(Some("\"sha256:00\""), &d));
        assert!(!not_modified(Some(""), &d));
        assert!(!not_modified(None, &d));
    }

    #[test]
    fn content_heads_carry_what_clients_and_caches_read() {
        let d = digest();
        let head = content_head(200, &d, "application/x", 7, Addressed::ByTag, &config());
        assert_eq!(
            head.get("docker-content-digest"),
            Some(d.to_string().as_str())
        );
        assert_eq!(head.get("etag"), Some(etag(&d).as_str()));
        assert_eq!(head.get("content-type"), Some("application/x"));
        assert_eq!(head.get("content-length"), Some("7"));
        assert!(head.get("cache-control").unwrap().contains("max-age=30"));
        let head = content_head(304, &d, "application/x", 7, Addressed::ByDigest, &config());
        assert_eq!(head.get("content-length"), None);
        assert_eq!(head.get("etag"), Some(etag(&d).as_str()));
    }

    #[test]
    fn failures_answer_in_the_routes_dialect() {
        let f = Failure::new(FailureKind::NotFound, "docker.io/library/x:1: not found");
        let (head, body) = failure(&f, false, false);
        assert_eq!(head.status, 404);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["error"]["kind"], "not-found");
        assert_eq!(v["error"]["message"], "docker.io/library/x:1: not found");
        assert_eq!(
            head.get("content-length"),
            Some(body.len().to_string().as_str())
        );
        let (_, body) = failure(&f, true, true);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["errors"][0]["code"], "BLOB_UNKNOWN");
        let (_, body) = failure(&f, true, false);
        assert!(body.contains("MANIFEST_UNKNOWN"));

        let mut limited = Failure::new(FailureKind::RateLimited, "slow down");
        limited.retry_after_secs = Some(42);
        let (head, body) = failure(&limited, true, false);
        assert_eq!(head.status, 429);
        assert_eq!(head.get("retry-after"), Some("42"));
        assert!(body.contains("TOOMANYREQUESTS"));
        let (head, _) = failure(
            &Failure::new(FailureKind::MethodNotAllowed, "no"),
            true,
            false,
        );
        assert_eq!((head.status, head.get("allow")), (405, Some("GET, HEAD")));
        let (head, body) = failure(&Failure::new(FailureKind::NoSuchRoute, "no"), false, false);
        assert_eq!((head.status, head.get("allow")), (404, None));
        assert_eq!(head.get("docker-distribution-api-version"), None);
        let mut past = Failure::new(FailureKind::RangeNotSatisfiable, "past the end");
        past.blob_size = Some(10);
        let (head, _) = failure(&past, true, true);
        assert_eq!(head.status, 416);
        assert_eq!(head.get("content-range"), Some("bytes */10"));
        assert_eq!(
            head.get("docker-distribution-api-version"),
            Some("registry/2.0")
        );
        assert!(body.contains(r#""kind":"not-found""#), "{body}");

        // The mirror's codes, as the distribution spec names them.
        let code = |kind, blob| {
            let (_, body) = failure(&Failure::new(kind, "m"), true, blob);
            let v: serde_json::Value = serde_json::from_str(&body).unwrap();
            v["errors"][0]["code"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        };
        use FailureKind::*;
        for (kind, blob, expected) in [
            (InvalidReference, true, "DIGEST_INVALID"),
            (InvalidReference, false, "NAME_INVALID"),
            (Forbidden, false, "DENIED"),
            (MethodNotAllowed, false, "UNSUPPORTED"),
            // A path the mirror does not serve is no missing manifest.
            (NoSuchRoute, false, "UNSUPPORTED"),
            (NoSuchRoute, true, "UNSUPPORTED"),
            (InvalidPagination, false, "PAGINATION_NUMBER_INVALID"),
            (RepositoryNotFound, false, "NAME_UNKNOWN"),
            (Overloaded, false, "UNAVAILABLE"),
            (RangeNotSatisfiable, true, "RANGE_INVALID"),
            (Registry, false, "UNKNOWN"),
        ] {
            assert_eq!(code(kind, blob), expected, "{kind:?}, blob: {blob}");
        }
    }

    #[test]
    fn every_kind_has_its_status() {
        use FailureKind::*;
        let statuses: Vec<u16> = [
            InvalidReference,
            InvalidInput,
            InvalidPagination,
            RangeNotSatisfiable,
            NotFound,
            RepositoryNotFound,
            NoSuchRoute,
            Forbidden,
            MethodNotAllowed,
            Authentication,
            Registry,
            Integrity,
            Protocol,
            Transport,
            Timeout,
            RateLimited,
            Overloaded,
            Internal,
        ]
        .iter()
        .map(|k| k.status())
        .collect();
        assert_eq!(
            statuses,
            [
                400, 400, 400, 416, 404, 404, 404, 403, 405, 502, 502, 502, 502, 502, 504, 429,
                503, 500
            ]
        );
    }

    #[test]
    fn a_429_from_the_core_is_rate_limited() {
        let e = Error::Registry {
            subject: "docker.io/library/x:1".into(),
            status: 429,
            code: Some("TOOMANYREQUESTS".into()),
            message: None,
            retry_after_secs: Some(30),
        };
        let f = Failure::from(e);
        assert_eq!(
            (f.kind, f.retry_after_secs),
            (FailureKind::RateLimited, Some(30))
        );
        let e = Error::transport("r.example", crate::http::TransportError::timed_out("slow"));
        assert_eq!(Failure::from(e).kind, FailureKind::Timeout);
        let e = Error::transport("r.example", crate::http::TransportError::transient("reset"));
        assert_eq!(Failure::from(e).kind, FailureKind::Transport);
    }
}
