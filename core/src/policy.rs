//! The outgoing-request policy: per-host rate limits and an allow-list of
//! hosts, as pure state (time is an argument). Whoever performs requests
//! applies it: our host in its wasi-http hook (shared by the whole process),
//! or the component itself for embedders that configure one.
//!
//! The allow-list starts from the registries named and learns the hosts
//! they send a client to: token realms (in 401 challenges) and redirect
//! targets (blob storage). Anything else is refused.

use std::collections::{HashMap, HashSet};

use crate::auth::Challenge;
use crate::http::Url;
use crate::rate_limit::{RateSpec, TokenBucket};
use crate::reference::{is_docker_hub, DOCKER_HUB_API_HOST};
use crate::time::Instant;

/// Rate limits by host and the hosts that may be reached.
#[derive(Debug, Clone)]
pub struct HostPolicy {
    rates: HashMap<String, RateSpec>,
    buckets: HashMap<String, TokenBucket>,
    /// `None`: every host may be reached.
    allowed: Option<HashSet<String>>,
}

/// What the policy says of a request about to be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Send it now.
    Go,
    /// Its host's rate is used up: ask again at this instant.
    Wait(Instant),
    /// Its host is not on the allow-list.
    Refused,
}

impl HostPolicy {
    /// Docker Hub's published rate plus `rates` (which may override it), and
    /// every host reachable until [`HostPolicy::restrict_to`].
    pub fn new(rates: Vec<RateSpec>) -> Self {
        let mut by_host = HashMap::new();
        let hub = RateSpec::docker_hub();
        by_host.insert(hub.host.clone(), hub);
        for r in rates {
            by_host.insert(api_host(&r.host), r);
        }
        HostPolicy {
            rates: by_host,
            buckets: HashMap::new(),
            allowed: None,
        }
    }

    /// Allows `hosts` (registries; Docker Hub aliases mean its API host)
    /// and, from now on, nothing else but what they send us to.
    pub fn restrict_to<'a>(&mut self, hosts: impl IntoIterator<Item = &'a str>) {
        let allowed = self.allowed.get_or_insert_with(HashSet::new);
        allowed.extend(hosts.into_iter().map(api_host));
    }

    /// Whether `authority` may be reached.
    pub fn allows(&self, authority: &str) -> bool {
        self.allowed.as_ref().is_none_or(|a| a.contains(authority))
    }

    /// Asks to send a request to `authority` at `now`; a `Go` spends one of
    /// its rate's tokens.
    pub fn admit(&mut self, authority: &str, now: Instant) -> Admission {
        if !self.allows(authority) {
            return Admission::Refused;
        }
        let Some(rate) = self.rates.get(authority) else {
            return Admission::Go;
        };
        let bucket = self
            .buckets
            .entry(authority.to_string())
            .or_insert_with(|| rate.bucket());
        match bucket.take(now) {
            Ok(()) => Admission::Go,
            Err(wait) => Admission::Wait(now + wait),
        }
    }

    /// What an answer from `authority` teaches: a 429 empties its bucket;
    /// the token realms of its challenges (`www_authenticate`) and the
    /// target of its redirect (`location`) become reachable.
    pub fn learn<'a>(
        &mut self,
        authority: &str,
        status: u16,
        www_authenticate: impl IntoIterator<Item = &'a str>,
        location: Option<&str>,
        now: Instant,
    ) {
        if status == 429 {
            if let Some(b) = self.buckets.get_mut(authority) {
                b.empty(now);
            }
        }
        let Some(allowed) = self.allowed.as_mut() else {
            return;
        };
        if !allowed.contains(authority) {
            return;
        }
        if status == 401 {
            let realms = www_authenticate
                .into_iter()
                .filter_map(Challenge::parse)
                .filter_map(|c| Url::parse(c.params.get("realm")?).ok());
            allowed.extend(realms.map(|url| url.authority));
        }
        if (300..400).contains(&status) {
            // A relative Location stays on this host, allowed already.
            if let Some(url) = location.and_then(|l| Url::parse(l).ok()) {
                allowed.insert(url.authority);
            }
        }
    }
}

/// Docker Hub's API host for any of its aliases; other hosts as they are.
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

    use std::time::Duration;

    const T0: Instant = Instant::ZERO;

    #[test]
    fn learns_realms_and_redirects_of_allowed_hosts_only() {
        let mut p = HostPolicy::new(Vec::new());
        assert!(p.allows("anything.example"), "unrestricted until told");
        p.restrict_to(["docker.io"]);
        assert!(p.allows("registry-1.docker.io"));
        assert_eq!(p.admit("auth.example", T0), Admission::Refused);
        let challenge = r#"Bearer realm="https://auth.example/token",service="s""#;
        p.learn("registry-1.docker.io", 401, [challenge], None, T0);
        assert_eq!(p.admit("auth.example", T0), Admission::Go);
        let cdn = Some("https://cdn.example:8443/blob?sig=x");
        p.learn("registry-1.docker.io", 307, [], cdn, T0);
        assert!(p.allows("cdn.example:8443"));
        // What a stranger says teaches nothing, nor does a relative Location.
        let other = r#"Bearer realm="https://evil.example/token""#;
        p.learn("stranger.example", 401, [other], None, T0);
        p.learn("auth.example", 302, [], Some("/elsewhere"), T0);
        assert!(!p.allows("evil.example"));
    }

    #[test]
    fn rates_wait_and_a_429_empties_the_bucket() {
        let rate = RateSpec::parse("r.example=2/s").unwrap();
        let mut p = HostPolicy::new(vec![rate]);
        assert_eq!(p.admit("r.example", T0), Admission::Go);
        assert_eq!(p.admit("r.example", T0), Admission::Go);
        assert_eq!(
            p.admit("r.example", T0),
            Admission::Wait(T0 + Duration::from_millis(500))
        );
        assert_eq!(
            p.admit("other.example", T0),
            Admission::Go,
            "no rate: no limit"
        );
        let later = Instant::from_origin(Duration::from_secs(10));
        p.learn("r.example", 429, [], None, later);
        assert!(matches!(p.admit("r.example", later), Admission::Wait(_)));
        // Docker Hub's own rate is there unless overridden.
        let mut hub = HostPolicy::new(Vec::new());
        for _ in 0..300 {
            assert_eq!(hub.admit(DOCKER_HUB_API_HOST, T0), Admission::Go);
        }
        assert!(matches!(
            hub.admit(DOCKER_HUB_API_HOST, T0),
            Admission::Wait(_)
        ));
    }
}
