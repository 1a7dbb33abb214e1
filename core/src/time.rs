//! Time as the core takes it: the driver's monotonic clock, passed in. The
//! core never reads a clock; it is told what time it is
//! ([`Client::set_now`](crate::Client::set_now)) and says until when it can
//! wait ([`Output::Wait`](crate::Output::Wait)), as quinn-proto's
//! `handle_timeout(now)` / `poll_timeout()` do.

use std::ops::Add;
use std::time::Duration;

/// A point on the driver's monotonic clock, measured from an origin the
/// driver chooses (its start, or the clock's own zero). Deadlines are
/// instants; delays are [`Duration`]s: the two never mix by accident.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant(Duration);

impl Instant {
    /// The clock's origin.
    pub const ZERO: Instant = Instant(Duration::ZERO);

    /// The instant `since_origin` after the origin.
    pub const fn from_origin(since_origin: Duration) -> Instant {
        Instant(since_origin)
    }

    /// The instant `nanos` nanoseconds after the origin (a wasi monotonic reading).
    pub const fn from_nanos(nanos: u64) -> Instant {
        Instant(Duration::from_nanos(nanos))
    }

    /// Time from the origin to this instant.
    pub const fn since_origin(self) -> Duration {
        self.0
    }

    /// How long from `earlier` to this instant (zero when `earlier` is later).
    pub fn saturating_since(self, earlier: Instant) -> Duration {
        self.0.saturating_sub(earlier.0)
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;

    /// Saturates instead of overflowing: a deadline past the end of time is
    /// the end of time.
    fn add(self, delay: Duration) -> Instant {
        Instant(self.0.saturating_add(delay))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_and_delays() {
        let t = Instant::from_nanos(1_500_000_000);
        assert_eq!(t.since_origin(), Duration::from_millis(1500));
        assert_eq!(
            (t + Duration::from_secs(2)).saturating_since(t),
            Duration::from_secs(2)
        );
        assert_eq!(Instant::ZERO.saturating_since(t), Duration::ZERO);
        assert_eq!(
            Instant::from_origin(Duration::MAX) + Duration::from_secs(1),
            Instant::from_origin(Duration::MAX)
        );
        assert!(Instant::ZERO < t);
    }
}
