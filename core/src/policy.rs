//! The outgoing-request policy: per-host rate limits and an allow-list of
//! hosts, as pure state (time is an argument). Whoever performs requests
//! applies it: our host in its wasi-http hook (shared by the whole process),
//! or the component itself for embedders that configure one.
//!
//! The allow-list starts from the registries named and learns the hosts
//! they send a client to: token realms (in 401 challenges) and redirect
//! targets (blob storage). Anything else is refused. Those hosts spend the
//! rate of the registry that sent the client there, as the original's
//! limiter counts everything sent on a registry's behalf.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use crate::auth::Challenge;
use crate::budget::{counts_against, Budget};
use crate::http::Url;
use crate::rate_limit::{RateSpec, TokenBucket};
use crate::reference::{is_docker_hub, DOCKER_HUB_API_HOST};
use crate::time::Instant;

/// Rate limits by host and the hosts that may be reached.
#[derive(Debug, Clone)]
pub struct HostPolicy {
    rates: HashMap<String, RateSpec>,
    buckets: HashMap<String, TokenBucket>,
    /// Hosts whose requests spend another host's rate: a registry's token
    /// realm and redirect targets (learned), its mirror (configured).
    budget_of: HashMap<String, String>,
    /// `None`: every host may be reached.
    allowed: Option<HashSet<String>>,
    /// What registries said of their budgets, by budget host.
    stated: HashMap<String, Stated>,
    /// How long a spent budget is waited for (the retry deadline); one
    /// back later is [`Admission::Exhausted`].
    budget_wait: Duration,
}

/// A registry's budget as it last stated it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stated {
    /// Counted requests left (less those sent since it said so).
    remaining: u64,
    /// When what it said stops holding: the budget is back by then.
    until: Instant,
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
    /// Its registry said its budget is spent, and it is back only at this
    /// instant, past the time a budget is waited for.
    Exhausted(Instant),
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
            budget_of: HashMap::new(),
            allowed: None,
            stated: HashMap::new(),
            budget_wait: Duration::from_secs(300),
        }
    }

    /// A spent budget back within `deadline` (the retry deadline) is
    /// waited for (`Wait`); one back later is `Exhausted`.
    pub fn set_budget_wait(&mut self, deadline: Duration) {
        self.budget_wait = deadline;
    }

    /// Requests to `authority` spend `registry`'s rate (a Docker Hub mirror
    /// spends Docker Hub's, as the original's limiter counts it).
    pub fn charge_to(&mut self, authority: &str, registry: &str) {
        let budget = self.budget(&api_host(registry));
        self.budget_of.insert(authority.to_string(), budget);
    }

    /// Whose rate a request to `authority` spends.
    fn budget(&self, authority: &str) -> String {
        self.budget_of
            .get(authority)
            .cloned()
            .unwrap_or_else(|| authority.to_string())
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
        let budget = self.budget(authority);
        let Some(rate) = self.rates.get(&budget) else {
            return Admission::Go;
        };
        let bucket = self.buckets.entry(budget).or_insert_with(|| rate.bucket());
        match bucket.take(now) {
            Ok(()) => Admission::Go,
            Err(wait) => Admission::Wait(now + wait),
        }
    }

    /// [`HostPolicy::admit`] for a request of `method` on `path`, which
    /// also spends what its registry said it has left, when the registry
    /// counts such requests ([`counts_against`]): none left is a `Wait`
    /// until the registry said it is back, or `Exhausted` when that is
    /// past the time a budget is waited for.
    pub fn admit_request(
        &mut self,
        authority: &str,
        method: &str,
        path: &str,
        now: Instant,
    ) -> Admission {
        if !self.allows(authority) {
            return Admission::Refused;
        }
        let budget = self.budget(authority);
        let counted = counts_against(&budget, method, path);
        match self.stated.get(&budget) {
            Some(s) if now >= s.until => {
                self.stated.remove(&budget);
            }
            Some(s) if counted && s.remaining == 0 => {
                return match s.until.saturating_since(now) <= self.budget_wait {
                    true => Admission::Wait(s.until),
                    false => Admission::Exhausted(s.until),
                };
            }
            _ => {}
        }
        let admitted = self.admit(authority, now);
        // Spent once it goes, not each time it is asked to wait.
        if let (Admission::Go, true, Some(s)) = (admitted, counted, self.stated.get_mut(&budget)) {
            s.remaining -= 1;
        }
        admitted
    }

    /// What an answer from `authority` says of its registry's budget
    /// (`stated`, read by [`Budget::from_headers`]): from now on it is
    /// followed until it says otherwise or its window ends.
    pub fn learn_budget(&mut self, authority: &str, stated: Budget, now: Instant) {
        let budget = self.budget(authority);
        let until = now + stated.resets_in;
        self.stated.insert(
            budget,
            Stated {
                remaining: stated.remaining,
                until,
            },
        );
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
        let budget = self.budget(authority);
        if status == 429 {
            if let Some(b) = self.buckets.get_mut(&budget) {
                b.empty(now);
            }
        }
        if self
            .allowed
            .as_ref()
            .is_some_and(|a| !a.contains(authority))
        {
            return;
        }
        let mut sent_to: Vec<String> = Vec::new();
        if status == 401 {
            let realms = www_authenticate
                .into_iter()
                .filter_map(Challenge::parse)
                .filter_map(|c| Url::parse(c.params.get("realm")?).ok());
            sent_to.extend(realms.map(|url| url.authority));
        }
        if (300..400).contains(&status) {
            // A relative Location stays on this host, allowed already.
            if let Some(url) = location.and_then(|l| Url::parse(l).ok()) {
                sent_to.push(url.authority);
            }
        }
        for target in sent_to {
            // Requests a registry sends us to spend its rate, unless the
            // target is a registry with a rate of its own.
            if target != budget && !self.rates.contains_key(&target) {
                self.budget_of
                    .entry(target.clone())
                    .or_insert(budget.clone());
            }
            if let Some(allowed) = self.allowed.as_mut() {
                allowed.insert(target);
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

    /// As the original's limiter counts it: Docker Hub's rate covers its
    /// token realm, its blob storage and its mirror, not only its API host.
    #[test]
    fn what_a_registry_sends_us_to_spends_its_rate() {
        let rate = RateSpec::parse("docker.io=3/m").unwrap();
        let mut p = HostPolicy::new(vec![rate]);
        let challenge = r#"Bearer realm="https://auth.docker.io/token""#;
        assert_eq!(p.admit(DOCKER_HUB_API_HOST, T0), Admission::Go);
        p.learn(DOCKER_HUB_API_HOST, 401, [challenge], None, T0);
        assert_eq!(p.admit("auth.docker.io", T0), Admission::Go);
        let cdn = Some("https://production.cloudflare.docker.com/blob");
        p.learn(DOCKER_HUB_API_HOST, 307, [], cdn, T0);
        assert_eq!(
            p.admit("production.cloudflare.docker.com", T0),
            Admission::Go
        );
        assert!(
            matches!(p.admit(DOCKER_HUB_API_HOST, T0), Admission::Wait(_)),
            "3 spent"
        );
        assert!(matches!(p.admit("auth.docker.io", T0), Admission::Wait(_)));

        // A mirror is charged to Docker Hub; a 429 from it empties Hub's bucket.
        let mut p = HostPolicy::new(vec![RateSpec::parse("docker.io=2/m").unwrap()]);
        p.charge_to("mirror.example:5000", "docker.io");
        assert_eq!(p.admit("mirror.example:5000", T0), Admission::Go);
        assert_eq!(p.admit(DOCKER_HUB_API_HOST, T0), Admission::Go);
        assert!(matches!(
            p.admit("mirror.example:5000", T0),
            Admission::Wait(_)
        ));
        let later = Instant::from_origin(Duration::from_secs(60));
        p.learn("mirror.example:5000", 429, [], None, later);
        assert!(matches!(
            p.admit(DOCKER_HUB_API_HOST, later),
            Admission::Wait(_)
        ));

        // A registry sending us to another registry with its own rate does not
        // make it spend ours.
        let rates = vec![
            RateSpec::parse("a.example=1/m").unwrap(),
            RateSpec::parse("b.example=5/m").unwrap(),
        ];
        let mut p = HostPolicy::new(rates);
        p.learn("a.example", 307, [], Some("https://b.example/x"), T0);
        assert_eq!(p.admit("a.example", T0), Admission::Go);
        assert_eq!(p.admit("b.example", T0), Admission::Go);
    }

    #[test]
    fn a_stated_budget_is_followed_and_heads_are_free_on_docker_hub() {
        let mut p = HostPolicy::new(Vec::new());
        let hub = DOCKER_HUB_API_HOST;
        let manifest = "/v2/library/a/manifests/1";
        let six_hours = Duration::from_secs(21600);
        let said = |remaining| Budget {
            remaining,
            limit: Some(100),
            resets_in: six_hours,
        };
        p.learn_budget(hub, said(2), T0);
        assert_eq!(p.admit_request(hub, "GET", manifest, T0), Admission::Go);
        // A HEAD, and a blob, are not what Docker Hub counts.
        for _ in 0..5 {
            assert_eq!(p.admit_request(hub, "HEAD", manifest, T0), Admission::Go);
            assert_eq!(
                p.admit_request(hub, "GET", "/v2/library/a/blobs/sha256:x", T0),
                Admission::Go
            );
        }
        assert_eq!(p.admit_request(hub, "GET", manifest, T0), Admission::Go);
        let back = T0 + six_hours;
        assert_eq!(
            p.admit_request(hub, "GET", manifest, T0),
            Admission::Exhausted(back)
        );
        assert_eq!(p.admit_request(hub, "HEAD", manifest, T0), Admission::Go);
        // What it says next replaces what it said; its window's end frees it.
        p.learn_budget(hub, said(1), T0);
        assert_eq!(p.admit_request(hub, "GET", manifest, T0), Admission::Go);
        assert!(matches!(
            p.admit_request(hub, "GET", manifest, T0),
            Admission::Exhausted(_)
        ));
        assert_eq!(p.admit_request(hub, "GET", manifest, back), Admission::Go);
        // One back within the time a budget is waited for: waited for.
        let soon = Budget {
            remaining: 0,
            limit: None,
            resets_in: Duration::from_secs(2),
        };
        p.learn_budget("soon.example", soon, T0);
        let in_two = T0 + Duration::from_secs(2);
        assert_eq!(
            p.admit_request("soon.example", "HEAD", manifest, T0),
            Admission::Wait(in_two)
        );
        p.set_budget_wait(Duration::from_secs(1));
        assert_eq!(
            p.admit_request("soon.example", "HEAD", manifest, T0),
            Admission::Exhausted(in_two)
        );
        // Another registry's every request counts.
        p.learn_budget("r.example", said(0), T0);
        assert!(matches!(
            p.admit_request("r.example", "HEAD", manifest, T0),
            Admission::Exhausted(_)
        ));
    }
}
