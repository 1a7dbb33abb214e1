//! The edge service's decisions, as pure functions: how a request is routed
//! and decoded ([`route`]), which upstreams and repositories it may reach
//! ([`config`]), how each answer is headed ([`answer`], on [`reply`]'s
//! statuses, JSON errors, cache headers and `If-None-Match`), the tag
//! list's pages ([`tags`]), and the line each request leaves in the log
//! ([`log`]). The `service/` component performs them with `wasi:http` and
//! the registry component; `ocirelay serve` writes the log.

pub mod answer;
pub mod config;
pub mod log;
pub mod mirror;
pub mod reply;
pub mod route;
pub mod tags;

pub use config::ServiceConfig;
pub use reply::{Addressed, Failure, FailureKind, Head};
pub use route::{Request, Route};
pub use tags::TagsPage;

/// What the routing tests share: a configuration with two upstreams, and
/// requests routed under it.
#[cfg(test)]
pub(crate) mod testing {
    use crate::http::Headers;
    use crate::reference::Reference;
    use crate::service::reply::{Failure, FailureKind};
    use crate::service::route::Request;
    use crate::service::ServiceConfig;

    /// A digest to name blobs by.
    pub const DIGEST: &str =
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    /// Docker Hub (`library/*`, `team/app`) first, and `127.0.0.1:5000` (all).
    pub fn config() -> ServiceConfig {
        ServiceConfig::parse(
            r#"{"upstreams": [{"registry": "docker.io", "repositories": ["library/*", "team/app"]},
                              {"registry": "127.0.0.1:5000", "repositories": ["*"], "insecure": true}]}"#,
        )
        .expect("a valid config")
    }

    /// `method path` routed under [`config`], without headers.
    pub fn route(method: &str, path: &str) -> Result<Request, Failure> {
        Request::parse(method, path, &Headers::new(), &config())
    }

    /// `GET path` with `headers`, routed under [`config`].
    pub fn with_headers(path: &str, headers: &[(&str, &str)]) -> Request {
        let headers: Headers = headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        Request::parse("GET", path, &headers, &config()).expect("a request served")
    }

    /// How `method path` fails.
    pub fn failure(method: &str, path: &str) -> FailureKind {
        route(method, path).expect_err("a failure").kind
    }

    /// `text` parsed.
    pub fn reference(text: &str) -> Reference {
        Reference::parse(text).expect("a valid reference")
    }
}
