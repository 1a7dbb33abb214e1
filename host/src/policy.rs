//! The outgoing-request policy every request of the component passes, in
//! the hook: per-host rate limits (shared by everything this process runs)
//! and an allow-list of hosts.
//!
//! The allow-list starts from the registries a command names and learns the
//! hosts those registries send the component to: token realms (in 401
//! challenges) and redirect targets (blob storage). Anything else is refused.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ocirelay_core::auth::Challenge;
use ocirelay_core::http::Url;
use ocirelay_core::rate_limit::{RateSpec, TokenBucket};
use ocirelay_core::reference::{is_docker_hub, DOCKER_HUB_API_HOST};

/// Rate limits and allowed hosts.
#[derive(Debug)]
pub struct Policy {
    started: Instant,
    rates: HashMap<String, RateSpec>,
    buckets: Mutex<HashMap<String, TokenBucket>>,
    allowed: Mutex<HashSet<String>>,
}

impl Policy {
    /// A policy with these rates (Docker Hub's unless overridden) and no host allowed yet.
    pub fn new(rates: Vec<RateSpec>) -> Self {
        let mut by_host: HashMap<String, RateSpec> = HashMap::new();
        let hub = RateSpec::docker_hub();
        by_host.insert(hub.host.clone(), hub);
        for r in rates {
            let host = api_host(&r.host);
            by_host.insert(host, r);
        }
        Policy {
            started: Instant::now(),
            rates: by_host,
            buckets: Mutex::new(HashMap::new()),
            allowed: Mutex::new(HashSet::new()),
        }
    }

    /// Lets the component reach registry `host` (Docker Hub aliases map to its API host).
    pub fn allow(&self, host: &str) {
        if let Ok(mut a) = self.allowed.lock() {
            a.insert(api_host(host));
        }
    }

    /// Whether `authority` may be reached.
    pub fn allows(&self, authority: &str) -> bool {
        self.allowed
            .lock()
            .map(|a| a.contains(authority))
            .unwrap_or(false)
    }

    /// Waits until `authority`'s bucket has a token (no bucket: no wait).
    pub async fn wait_turn(&self, authority: &str) {
        loop {
            let wait = {
                let Ok(mut buckets) = self.buckets.lock() else {
                    return;
                };
                let Some(rate) = self.rates.get(authority) else {
                    return;
                };
                let bucket = buckets
                    .entry(authority.to_string())
                    .or_insert_with(|| rate.bucket());
                match bucket.take(self.started.elapsed()) {
                    Ok(()) => return,
                    Err(wait) => wait,
                }
            };
            tracing::debug!(host = authority, ?wait, "rate limited");
            tokio::time::sleep(wait.max(Duration::from_millis(1))).await;
        }
    }

    /// What an answer from `authority` teaches: a 429 empties its bucket;
    /// its token realm and redirect targets become reachable.
    pub fn learn(&self, authority: &str, status: u16, headers: &http::HeaderMap) {
        if status == 429 {
            if let Ok(mut buckets) = self.buckets.lock() {
                if let Some(b) = buckets.get_mut(authority) {
                    b.empty(self.started.elapsed());
                }
            }
        }
        let mut learned = Vec::new();
        if status == 401 {
            for v in headers.get_all(http::header::WWW_AUTHENTICATE) {
                let realm = v
                    .to_str()
                    .ok()
                    .and_then(Challenge::parse)
                    .and_then(|c| c.params.get("realm").cloned());
                if let Some(url) = realm.and_then(|r| Url::parse(&r).ok()) {
                    learned.push(url.authority);
                }
            }
        }
        if (300..400).contains(&status) {
            if let Some(location) = headers
                .get(http::header::LOCATION)
                .and_then(|v| v.to_str().ok())
            {
                if let Ok(url) = Url::parse(location) {
                    learned.push(url.authority);
                }
            }
        }
        if !learned.is_empty() {
            if let Ok(mut a) = self.allowed.lock() {
                a.extend(learned);
            }
        }
    }
}

fn api_host(host: &str) -> String {
    if is_docker_hub(host) {
        DOCKER_HUB_API_HOST.to_string()
    } else {
        host.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learns_realms_and_redirects_of_allowed_hosts() {
        let p = Policy::new(Vec::new());
        p.allow("docker.io");
        assert!(p.allows("registry-1.docker.io"));
        assert!(!p.allows("auth.example"));
        let mut h = http::HeaderMap::new();
        h.insert(
            http::header::WWW_AUTHENTICATE,
            r#"Bearer realm="https://auth.example/token",service="s""#
                .parse()
                .unwrap(),
        );
        p.learn("registry-1.docker.io", 401, &h);
        assert!(p.allows("auth.example"));
        let mut h = http::HeaderMap::new();
        h.insert(
            http::header::LOCATION,
            "https://cdn.example:8443/blob?sig=x".parse().unwrap(),
        );
        p.learn("registry-1.docker.io", 307, &h);
        assert!(p.allows("cdn.example:8443"));
    }
}
