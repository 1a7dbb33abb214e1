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
