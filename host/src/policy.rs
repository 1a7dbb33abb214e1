//! The outgoing-request policy in the hook: the core's [`HostPolicy`]
//! (rate limits, allow-list), shared by everything this process runs, with
//! the waiting done here on tokio's clock.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use ocirelay_core::policy::{Admission, HostPolicy};
use ocirelay_core::rate_limit::RateSpec;

/// Rate limits and allowed hosts, shared across instances.
#[derive(Debug)]
pub struct Policy {
    started: Instant,
    inner: Mutex<HostPolicy>,
}

/// Why a request may not go.
#[derive(Debug)]
pub enum Refused {
    /// Its host is not one this command may reach.
    NotAllowed,
    /// Its registry said its budget is spent, and it is back only after
    /// this long, past the retry deadline.
    Exhausted(Duration),
}

impl Policy {
    /// A policy with these rates (Docker Hub's unless overridden) that lets
    /// the component reach `hosts` and where they send it, nothing else.
    pub fn new<'a>(rates: Vec<RateSpec>, hosts: impl IntoIterator<Item = &'a str>) -> Self {
        let mut inner = HostPolicy::new(rates);
        inner.restrict_to(hosts);
        Policy {
            started: Instant::now(),
            inner: Mutex::new(inner),
        }
    }

    /// A registry's spent budget is waited for up to `deadline`; beyond
    /// it, its requests fail at once.
    pub fn with_deadline(self, deadline: Duration) -> Self {
        if let Ok(mut p) = self.inner.lock() {
            p.set_budget_wait(deadline);
        }
        self
    }

    /// Waits until a request (`method` on `path`) to `authority` may go:
    /// refused at once when the host is not allowed, or when its registry
    /// said its budget is spent until past the deadline; else after its
    /// rate (and that budget) allow.
    pub async fn admit(&self, authority: &str, method: &str, path: &str) -> Result<(), Refused> {
        loop {
            let now = self.now();
            let admission = match self.inner.lock() {
                Ok(mut p) => p.admit_request(authority, method, path, now),
                Err(_) => Admission::Refused,
            };
            match admission {
                Admission::Go => return Ok(()),
                Admission::Refused => return Err(Refused::NotAllowed),
                Admission::Exhausted(at) => {
                    return Err(Refused::Exhausted(at.saturating_since(now)));
                }
                Admission::Wait(at) => {
                    let wait = at.saturating_since(now);
                    tracing::debug!(host = authority, ?wait, "rate limited");
                    tokio::time::sleep(wait.max(Duration::from_millis(1))).await;
                }
            }
        }
    }

    /// Requests to `authority` spend `registry`'s rate (a Docker Hub mirror
    /// spends Docker Hub's).
    pub fn charge_to(&self, authority: &str, registry: &str) {
        if let Ok(mut p) = self.inner.lock() {
            p.charge_to(authority, registry);
        }
    }

    /// What an answer from `authority` teaches (see [`HostPolicy::learn`]).
    pub fn learn(&self, authority: &str, status: u16, headers: &http::HeaderMap) {
        let challenges = headers
            .get_all(http::header::WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok());
        let location = headers
            .get(http::header::LOCATION)
            .and_then(|v| v.to_str().ok());
        let now = self.now();
        let stated = ocirelay_core::budget::Budget::from_headers(|name| {
            headers.get(name).and_then(|v| v.to_str().ok())
        });
        if stated.is_none() && headers.keys().any(|k| k.as_str().starts_with("ratelimit")) {
            tracing::debug!(
                host = authority,
                "rate-limit headers that say nothing usable; ignored"
            );
        }
        if let Ok(mut p) = self.inner.lock() {
            p.learn(authority, status, challenges, location, now);
            if let Some(stated) = stated {
                tracing::debug!(host = authority, ?stated, "the registry's budget");
                p.learn_budget(authority, stated, now);
            }
        }
    }

    /// The policy's clock: time since it was made.
    fn now(&self) -> ocirelay_core::Instant {
        ocirelay_core::Instant::from_origin(self.started.elapsed())
    }
}
