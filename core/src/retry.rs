//! Retry decisions, as pure functions of what happened: 429 is retried until
//! a deadline, 500/502/503/504 and connection failures up to three tries in
//! all, never sooner than one second, `Retry-After` honoured. Time is an
//! argument: the deadline counts the waits already asked for, and an
//! HTTP-date `Retry-After` is read against the answer's own `Date`.

use std::time::Duration;

use crate::time::Instant;

/// How persistent to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Tries in all (first included) for server errors and connection failures.
    pub server_error_tries: u32,
    /// How long one request may wait between its tries, in all: 429s are
    /// waited out until then, and no wait a server asks for (`Retry-After`,
    /// with any status) goes past it.
    pub deadline: Duration,
    /// The least wait between two tries of one request.
    pub min_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            server_error_tries: 3,
            deadline: Duration::from_secs(300),
            min_delay: Duration::from_secs(1),
        }
    }
}

/// What came back from one try.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt<'a> {
    /// An HTTP answer with its `Retry-After` and `Date` headers.
    Status {
        /// The status.
        status: u16,
        /// `Retry-After`, when present.
        retry_after: Option<&'a str>,
        /// `Date`, when present (what an HTTP-date `Retry-After` is relative to).
        date: Option<&'a str>,
    },
    /// No answer: connection refused, reset, timed out.
    ConnectionFailed,
}

impl<'a> From<&'a crate::http::Response> for Attempt<'a> {
    fn from(response: &'a crate::http::Response) -> Self {
        Attempt::Status {
            status: response.status,
            retry_after: response.headers.get("retry-after"),
            date: response.headers.get("date"),
        }
    }
}

/// One request's retry history under a policy: tries made, waits asked,
/// and when the next try may go. The one place a retry is scheduled.
#[derive(Debug, Clone, Copy, Default)]
pub struct Retries {
    tries: u32,
    waited: Duration,
    not_before: Option<Instant>,
}

impl Retries {
    /// Counts a try as sent.
    pub fn sent(&mut self) {
        self.tries += 1;
        self.not_before = None;
    }

    /// After `attempt` failed at `now`: schedules the next try (`true`; it
    /// may go once [`Retries::wait_until`] says so), or gives up (`false`).
    /// The wait counts toward the policy's deadline.
    pub fn schedule(&mut self, policy: &RetryPolicy, attempt: Attempt<'_>, now: Instant) -> bool {
        match policy.decide(attempt, self.tries, self.waited) {
            Some(delay) => {
                self.waited = self.waited.saturating_add(delay);
                self.not_before = Some(now + delay);
                true
            }
            None => false,
        }
    }

    /// The instant the next try must wait for, while `now` is before it.
    pub fn wait_until(&self, now: Instant) -> Option<Instant> {
        self.not_before.filter(|at| *at > now)
    }
}

impl RetryPolicy {
    /// How long to wait before try number `tries + 1`, or `None` to give
    /// up. `tries` counts tries made so far; `waited` is the total of the
    /// waits already asked for this request.
    pub fn decide(&self, attempt: Attempt<'_>, tries: u32, waited: Duration) -> Option<Duration> {
        let retry_after = match attempt {
            // 429s are waited out until the deadline, however many.
            Attempt::Status {
                status: 429,
                retry_after,
                date,
            } => retry_after.and_then(|v| parse_retry_after(v, date)),
            Attempt::Status {
                status: 500 | 502 | 503 | 504,
                retry_after,
                date,
            } if tries < self.server_error_tries => {
                retry_after.and_then(|v| parse_retry_after(v, date))
            }
            Attempt::ConnectionFailed if tries < self.server_error_tries => None,
            _ => return None,
        };
        let wait = retry_after.unwrap_or(self.min_delay).max(self.min_delay);
        // No wait goes past the deadline, whatever the server asks.
        (waited.saturating_add(wait) <= self.deadline).then_some(wait)
    }
}

/// `Retry-After` as a delay: delta-seconds, or an HTTP date taken relative
/// to the answer's `Date` (no clock here; without `Date`, `None`).
pub fn parse_retry_after(value: &str, date: Option<&str>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = parse_http_date(value)?;
    let now = parse_http_date(date?)?;
    Some(Duration::from_secs(at.saturating_sub(now)))
}

/// Seconds since the epoch of an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`).
pub fn parse_http_date(s: &str) -> Option<u64> {
    let parts: Vec<&str> = s.split_whitespace().collect();
    let [_, day, month, year, time, "GMT"] = parts.as_slice() else {
        return None;
    };
    let day: u64 = day.parse().ok()?;
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|m| m == month)? as u64
        + 1;
    let year: u64 = year.parse().ok()?;
    let hms: Vec<u64> = time
        .split(':')
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    let [h, m, sec] = hms.as_slice() else {
        return None;
    };
    if !(1..=31).contains(&day) || *h > 23 || *m > 59 || *sec > 60 || year < 1970 {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + h * 3600 + m * 60 + sec)
}

/// Days from 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: u64, m: u64, d: u64) -> u64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(status: u16) -> Attempt<'static> {
        Attempt::Status {
            status,
            retry_after: None,
            date: None,
        }
    }

    #[test]
    fn server_errors_three_tries_in_all() {
        let p = RetryPolicy::default();
        for s in [500, 502, 503, 504] {
            assert_eq!(
                p.decide(status(s), 1, Duration::ZERO),
                Some(Duration::from_secs(1)),
                "{s}"
            );
            assert_eq!(
                p.decide(status(s), 2, Duration::ZERO),
                Some(Duration::from_secs(1)),
                "{s}"
            );
            assert_eq!(p.decide(status(s), 3, Duration::ZERO), None, "{s}");
        }
        assert_eq!(
            p.decide(Attempt::ConnectionFailed, 1, Duration::ZERO),
            Some(Duration::from_secs(1))
        );
        assert_eq!(p.decide(Attempt::ConnectionFailed, 3, Duration::ZERO), None);
        for s in [200, 400, 401, 404, 501] {
            assert_eq!(p.decide(status(s), 1, Duration::ZERO), None, "{s}");
        }
    }

    #[test]
    fn too_many_requests_until_the_deadline() {
        let p = RetryPolicy::default();
        assert_eq!(
            p.decide(status(429), 50, Duration::from_secs(100)),
            Some(Duration::from_secs(1))
        );
        assert_eq!(p.decide(status(429), 300, Duration::from_secs(300)), None);
        let a = Attempt::Status {
            status: 429,
            retry_after: Some("7"),
            date: None,
        };
        assert_eq!(p.decide(a, 1, Duration::ZERO), Some(Duration::from_secs(7)));
        assert_eq!(
            p.decide(a, 1, Duration::from_secs(295)),
            None,
            "7 s more would pass the deadline"
        );
        assert_eq!(
            p.decide(a, 1, Duration::from_secs(293)),
            Some(Duration::from_secs(7)),
            "7 s more reach the deadline exactly"
        );
    }

    #[test]
    fn no_wait_a_server_asks_for_goes_past_the_deadline() {
        let p = RetryPolicy::default();
        let asks = |status, seconds: &'static str| Attempt::Status {
            status,
            retry_after: Some(seconds),
            date: None,
        };
        // A day, or the end of time: given up at once, with any status.
        for status in [429, 503] {
            assert_eq!(p.decide(asks(status, "86400"), 1, Duration::ZERO), None);
            let forever = asks(status, "18446744073709551615");
            assert_eq!(p.decide(forever, 1, Duration::ZERO), None);
            assert_eq!(p.decide(forever, 1, Duration::MAX), None, "no overflow");
        }
        assert_eq!(
            p.decide(asks(503, "300"), 1, Duration::ZERO),
            Some(Duration::from_secs(300))
        );
        // Waits already asked for count, and never overflow.
        let mut r = Retries::default();
        r.sent();
        assert!(r.schedule(&p, asks(503, "200"), Instant::ZERO));
        r.sent();
        assert!(
            !r.schedule(&p, asks(503, "200"), Instant::ZERO),
            "400 s in all"
        );
    }

    #[test]
    fn never_sooner_than_a_second() {
        let p = RetryPolicy::default();
        let a = Attempt::Status {
            status: 503,
            retry_after: Some("0"),
            date: None,
        };
        assert_eq!(p.decide(a, 1, Duration::ZERO), Some(Duration::from_secs(1)));
    }

    #[test]
    fn retries_schedule_the_next_try_on_the_given_clock() {
        let p = RetryPolicy::default();
        let mut r = Retries::default();
        let t0 = Instant::from_origin(Duration::from_secs(10));
        r.sent();
        assert_eq!(r.wait_until(t0), None, "nothing scheduled");
        let busy = Attempt::Status {
            status: 503,
            retry_after: Some("2"),
            date: None,
        };
        assert!(r.schedule(&p, busy, t0));
        let due = t0 + Duration::from_secs(2);
        assert_eq!(r.wait_until(t0), Some(due));
        assert_eq!(r.wait_until(due), None, "due now");
        r.sent();
        assert!(r.schedule(&p, Attempt::ConnectionFailed, due));
        r.sent();
        assert!(
            !r.schedule(&p, Attempt::ConnectionFailed, due),
            "three tries in all"
        );
    }

    #[test]
    fn retry_after_forms() {
        assert_eq!(
            parse_retry_after("120", None),
            Some(Duration::from_secs(120))
        );
        let date = "Sat, 28 Nov 2026 10:00:00 GMT";
        assert_eq!(
            parse_retry_after("Sat, 28 Nov 2026 10:00:30 GMT", Some(date)),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Sat, 28 Nov 2026 09:00:00 GMT", Some(date)),
            Some(Duration::ZERO)
        );
        assert_eq!(
            parse_retry_after("Sat, 28 Nov 2026 10:00:30 GMT", None),
            None,
            "no clock here"
        );
        assert_eq!(parse_retry_after("soon", Some(date)), None);
        assert_eq!(
            parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784_111_777)
        );
        assert_eq!(parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(parse_http_date("Sun, 06 Nov 1994 08:49:37 PST"), None);
        // Each field at its limit, and one past it.
        assert!(parse_http_date("Sat, 31 Dec 2022 23:59:60 GMT").is_some());
        for bad in [
            "Sat, 32 Dec 2022 10:00:00 GMT",
            "Sat, 00 Dec 2022 10:00:00 GMT",
            "Sat, 31 Dec 2022 24:00:00 GMT",
            "Sat, 31 Dec 2022 10:60:00 GMT",
            "Sat, 31 Dec 2022 10:00:61 GMT",
            "Sat, 31 Dec 1969 10:00:00 GMT",
            "Sat, 31 Dec 2022 10:00 GMT",
        ] {
            assert_eq!(parse_http_date(bad), None, "{bad}");
        }
    }
}
