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
pub struct Refused;

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

    /// Waits until a request to `authority` may go: refused at once when the
    /// host is not allowed, else after its rate allows.
    pub async fn admit(&self, authority: &str) -> Result<(), Refused> {
        loop {
            let now = self.now();
            let admission = match self.inner.lock() {
                Ok(mut p) => p.admit(authority, now),
                Err(_) => Admission::Refused,
            };
            match admission {
                Admission::Go => return Ok(()),
                Admission::Refused => return Err(Refused),
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
        if let Ok(mut p) = self.inner.lock() {
            p.learn(authority, status, challenges, location, now);
        }
    }

    /// The policy's clock: time since it was made.
    fn now(&self) -> ocirelay_core::Instant {
        ocirelay_core::Instant::from_origin(self.started.elapsed())
    }
}
