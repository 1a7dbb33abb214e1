//! Rate limits: a token bucket per registry host. Time is an argument (the
//! caller's monotonic clock), so the bucket is pure and the waiting is the
//! caller's.

use std::time::Duration;

use crate::time::Instant;

use crate::error::{Error, Result};

/// A token bucket: `burst` tokens at most, refilled at `count` per `period`.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenBucket {
    capacity: f64,
    per_second: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket of `burst` tokens refilled at `count` per `period`.
    pub fn new(count: u32, period: Duration, burst: u32) -> Self {
        TokenBucket {
            capacity: f64::from(burst.max(1)),
            per_second: f64::from(count) / period.as_secs_f64().max(f64::MIN_POSITIVE),
            tokens: f64::from(burst.max(1)),
            last: Instant::ZERO,
        }
    }

    fn refill(&mut self, now: Instant) {
        if now > self.last {
            let elapsed = now.saturating_since(self.last).as_secs_f64();
            self.tokens = (self.tokens + elapsed * self.per_second).min(self.capacity);
            self.last = now;
        }
    }

    /// Takes a token at `now`; when there is none, how long until there is.
    pub fn take(&mut self, now: Instant) -> std::result::Result<(), Duration> {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Ok(());
        }
        if self.per_second <= 0.0 {
            return Err(Duration::from_secs(3600));
        }
        // Saturates: a wait past the end of time is the end of time.
        let wait = (1.0 - self.tokens) / self.per_second;
        Err(Duration::try_from_secs_f64(wait).unwrap_or(Duration::MAX))
    }

    /// The host said 429: whatever was left is spent.
    pub fn empty(&mut self, now: Instant) {
        self.refill(now);
        self.tokens = 0.0;
    }
}

/// The longest period a rate may have.
pub const MAX_PERIOD: Duration = Duration::from_secs(24 * 3600);

/// A rate for one host, as given on the command line: `HOST=N/PERIOD`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateSpec {
    /// The registry host (with port).
    pub host: String,
    /// Requests per period (also the burst).
    pub count: u32,
    /// The period.
    pub period: Duration,
}

impl RateSpec {
    /// Docker Hub's published limit: 300 requests per minute, burst 300.
    pub fn docker_hub() -> Self {
        RateSpec {
            host: crate::reference::DOCKER_HUB_API_HOST.to_string(),
            count: 300,
            period: Duration::from_secs(60),
        }
    }

    /// Parses `HOST=N/PERIOD`, PERIOD one of `s`, `m`, `h` with an optional
    /// number before it (`10/s`, `300/1m`, `5/30s`).
    pub fn parse(input: &str) -> Result<Self> {
        let bad = |why: &str| {
            Error::InvalidInput(format!(
                "rate {input:?}: {why} (expected HOST=N/PERIOD, e.g. example.com=300/1m)"
            ))
        };
        let (host, rate) = input.split_once('=').ok_or_else(|| bad("no '='"))?;
        let (count, period) = rate.split_once('/').ok_or_else(|| bad("no '/'"))?;
        let count: u32 = count
            .trim()
            .parse()
            .map_err(|_| bad("N is not a whole number"))?;
        let period = period.trim();
        let unit_at = period
            .find(|c: char| c.is_ascii_alphabetic())
            .ok_or_else(|| bad("no unit"))?;
        let amount = match &period[..unit_at] {
            "" => 1,
            n => n.parse::<u64>().map_err(|_| bad("bad period"))?,
        };
        let unit = match &period[unit_at..] {
            "s" | "sec" | "second" => 1,
            "m" | "min" | "minute" => 60,
            "h" | "hour" => 3600,
            _ => return Err(bad("unit must be s, m or h")),
        };
        let seconds = amount
            .checked_mul(unit)
            .filter(|s| *s <= MAX_PERIOD.as_secs())
            .ok_or_else(|| bad("the period is longer than a day"))?;
        RateSpec::new(host, count, Duration::from_secs(seconds))
            .map_err(|_| bad("empty host, or zero"))
    }

    /// A rate of `count` requests per `period` for `host`; none of them may
    /// be empty or zero, and the period is a day at most.
    pub fn new(host: &str, count: u32, period: Duration) -> Result<Self> {
        if host.is_empty() || count == 0 || period.is_zero() || period > MAX_PERIOD {
            return Err(Error::InvalidInput(format!(
                "rate {count} per {period:?} for host {host:?}: the host must be named, \
                 the count not zero, and the period not zero nor longer than a day"
            )));
        }
        Ok(RateSpec {
            host: host.to_string(),
            count,
            period,
        })
    }

    /// A full bucket for this rate (burst = count).
    pub fn bucket(&self) -> TokenBucket {
        TokenBucket::new(self.count, self.period, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(since_origin: Duration) -> Instant {
        Instant::from_origin(since_origin)
    }

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn burst_then_refill() {
        let mut b = TokenBucket::new(2, S, 3);
        for _ in 0..3 {
            assert_eq!(b.take(at(Duration::ZERO)), Ok(()));
        }
        assert_eq!(
            b.take(at(Duration::ZERO)),
            Err(Duration::from_millis(500)),
            "2 per second: half a second"
        );
        assert_eq!(b.take(at(Duration::from_millis(500))), Ok(()));
        assert!(b.take(at(Duration::from_millis(500))).is_err());
        // A quarter of a token refilled: three quarters left to wait for.
        assert_eq!(
            b.take(at(Duration::from_millis(625))),
            Err(Duration::from_millis(375))
        );
        // Refill never exceeds the burst.
        let t = Duration::from_secs(100);
        for _ in 0..3 {
            assert_eq!(b.take(at(t)), Ok(()));
        }
        assert!(b.take(at(t)).is_err());
    }

    #[test]
    fn a_429_empties_the_bucket() {
        let mut b = TokenBucket::new(300, Duration::from_secs(60), 300);
        b.empty(at(Duration::ZERO));
        assert_eq!(b.take(at(Duration::ZERO)), Err(Duration::from_millis(200)));
        assert_eq!(b.take(at(Duration::from_millis(200))), Ok(()));
    }

    #[test]
    fn rate_specs() {
        let r = RateSpec::parse("localhost:5000=10/s").unwrap();
        assert_eq!(
            (r.host.as_str(), r.count, r.period),
            ("localhost:5000", 10, S)
        );
        assert_eq!(
            RateSpec::parse("h=300/1m").unwrap().period,
            Duration::from_secs(60)
        );
        assert_eq!(
            RateSpec::parse("h=5/30s").unwrap().period,
            Duration::from_secs(30)
        );
        assert_eq!(
            RateSpec::parse("h=5/2h").unwrap().period,
            Duration::from_secs(7200)
        );
        assert_eq!(
            RateSpec::parse("h=5/hour").unwrap().period,
            Duration::from_secs(3600)
        );
        for bad in ["h", "h=10", "h=x/s", "h=10/fortnight", "=1/s", "h=0/s"] {
            let e = RateSpec::parse(bad).unwrap_err();
            assert!(e.to_string().contains(&format!("{bad:?}")), "{e}");
        }
        assert_eq!(RateSpec::docker_hub().count, 300);
        let e = RateSpec::new("h", 0, S).unwrap_err();
        assert!(e.to_string().contains("\"h\""), "{e}");
        assert!(RateSpec::new("h", 1, Duration::ZERO).is_err());
        assert!(RateSpec::new("h", 1, MAX_PERIOD).is_ok());
        assert!(RateSpec::new("h", 1, MAX_PERIOD + S).is_err());
        for huge in ["h=1/18446744073709551615s", "h=1/25h", "h=1/86401s"] {
            let e = RateSpec::parse(huge).unwrap_err().to_string();
            assert!(e.contains("longer than a day"), "{huge}: {e}");
        }
        assert!(RateSpec::parse("h=1/24h").is_ok());
        assert!(RateSpec::new("", 1, S).is_err());
    }
}
