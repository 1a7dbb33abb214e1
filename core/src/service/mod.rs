//! The edge service's decisions, as pure functions: how a request is routed
//! ([`route`]), which upstreams and repositories it may reach ([`config`]),
//! and how its answer is headed ([`reply`]: statuses, JSON errors, cache
//! headers, `If-None-Match`). The `service/` component performs them with
//! `wasi:http` and the registry component.

pub mod config;
pub mod reply;
pub mod route;

pub use config::ServiceConfig;
pub use reply::{Addressed, Failure, FailureKind, Head};
pub use route::{Request, Route};
