//! How many requests each registry gets at once, learnt from its answers
//! (additive increase, multiplicative decrease), as pure state: whoever
//! performs requests asks before each one and says how each was answered.
//! A 429 or 503 halves what was in flight (never below 1); each window of
//! successes as long as the limit grows it by one, up to the ceiling
//! (`--concurrency`) and up to what was in flight when the registry last
//! refused (the level known to be too many: probed again, one more, only
//! after a long calm of 16 windows there). One decrease per round: answers
//! to requests sent before the last decrease do not lower it again.

use std::collections::HashMap;

/// The limits of every registry spoken to.
#[derive(Debug, Clone)]
pub struct AdaptiveLimits {
    ceiling: usize,
    hosts: HashMap<String, HostLimit>,
}

/// One registry's limit and what is in flight to it.
#[derive(Debug, Clone, Copy)]
struct HostLimit {
    limit: usize,
    in_flight: usize,
    /// Successes since the limit last changed.
    successes: usize,
    /// Which round of the limit this is (a decrease starts a new one).
    round: u64,
    /// Requests at once known to be too many (in flight at the last
    /// refusal): the limit grows up to it, not past.
    too_many: usize,
    /// Successes while at that level, towards probing one more.
    calm: usize,
}

/// Windows of successes at the level known to be too many before one
/// more is tried.
const CALM_WINDOWS: usize = 16;

/// A request's place among its registry's: the round it was sent in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Place {
    round: u64,
}

impl AdaptiveLimits {
    /// Limits starting at, and never above, `ceiling` per registry.
    pub fn new(ceiling: usize) -> Self {
        AdaptiveLimits {
            ceiling: ceiling.max(1),
            hosts: HashMap::new(),
        }
    }

    /// From now on, limits never above `ceiling`.
    pub fn set_ceiling(&mut self, ceiling: usize) {
        self.ceiling = ceiling.max(1);
        for h in self.hosts.values_mut() {
            h.limit = h.limit.min(self.ceiling);
        }
    }

    /// A place for a request to `host` if its limit has room (else the
    /// caller waits for a [`AdaptiveLimits::release`]).
    pub fn try_acquire(&mut self, host: &str) -> Option<Place> {
        let ceiling = self.ceiling;
        let h = self.hosts.entry(host.to_string()).or_insert(HostLimit {
            limit: ceiling,
            in_flight: 0,
            successes: 0,
            round: 0,
            too_many: usize::MAX,
            calm: 0,
        });
        (h.in_flight < h.limit).then(|| {
            h.in_flight += 1;
            Place { round: h.round }
        })
    }

    /// `host`'s limit now and the requests in flight to it (none before
    /// its first request).
    pub fn state(&self, host: &str) -> Option<(usize, usize)> {
        self.hosts.get(host).map(|h| (h.limit, h.in_flight))
    }

    /// A request to `host` is over (its answer read, or given up).
    pub fn release(&mut self, host: &str) {
        if let Some(h) = self.hosts.get_mut(host) {
            h.in_flight = h.in_flight.saturating_sub(1);
        }
    }

    /// The answer (`status`) to a request to `host` sent at `place`: the
    /// new limit when it changed.
    pub fn answered(&mut self, host: &str, place: Place, status: u16) -> Option<usize> {
        let ceiling = self.ceiling;
        let h = self.hosts.get_mut(host)?;
        match status {
            429 | 503 if place.round == h.round => {
                // Half of what was in flight when it said so (the limit
                // may be far above what was ever sent).
                let limit = (h.limit.min(h.in_flight) / 2).max(1);
                // One at a time refused says a rate, not a crowd.
                h.too_many = h.too_many.min(h.in_flight.max(2));
                h.round += 1;
                h.successes = 0;
                h.calm = 0;
                (limit != h.limit).then(|| {
                    h.limit = limit;
                    limit
                })
            }
            429 | 503 => None,
            _ if status < 500 => {
                h.successes += 1;
                if h.limit >= h.too_many {
                    h.calm += 1;
                    if h.calm >= CALM_WINDOWS * h.limit {
                        h.calm = 0;
                        h.too_many = h.too_many.saturating_add(1);
                    }
                }
                if h.successes >= h.limit && h.limit < ceiling.min(h.too_many) {
                    h.successes = 0;
                    h.limit += 1;
                    return Some(h.limit);
                }
                None
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halves_once_a_round_and_grows_back_by_one_a_window() {
        let mut l = AdaptiveLimits::new(64);
        let early: Vec<Place> = (0..8).map(|_| l.try_acquire("r").unwrap()).collect();
        assert_eq!(
            l.answered("r", early[0], 429),
            Some(4),
            "half of what was in flight"
        );
        assert_eq!(
            l.answered("r", early[1], 429),
            None,
            "sent before the decrease"
        );
        for _ in 0..8 {
            l.release("r");
        }
        let places: Vec<Place> = (0..4).map(|_| l.try_acquire("r").unwrap()).collect();
        assert_eq!(l.try_acquire("r"), None, "the limit is 4");
        assert_eq!(l.answered("r", places[0], 503), Some(2));
        for _ in 0..4 {
            l.release("r");
        }
        let p = l.try_acquire("r").unwrap();
        let _q = l.try_acquire("r").unwrap();
        assert_eq!(l.answered("r", p, 429), Some(1));
        l.release("r");
        l.release("r");
        let p = l.try_acquire("r").unwrap();
        assert_eq!(l.answered("r", p, 429), None, "never below 1");
        l.release("r");
        // A window of successes as long as the limit: one more, up to the
        // level last refused (2 at once: one alone refused says a rate).
        let p = l.try_acquire("r").unwrap();
        assert_eq!(l.answered("r", p, 200), Some(2));
        assert_eq!(l.answered("r", p, 404), None);
        assert_eq!(l.answered("r", p, 201), None, "2 were too many");
        // A long calm there (16 windows): one more is tried.
        let grown: Vec<Option<usize>> = (0..32).map(|_| l.answered("r", p, 200)).collect();
        assert_eq!(grown.iter().flatten().collect::<Vec<_>>(), [&3]);
        // Server errors other than 503 say nothing of load.
        assert_eq!(l.answered("r", p, 500), None);
        // Never past the ceiling; another registry has its own.
        let mut top = AdaptiveLimits::new(2);
        let p = top.try_acquire("r").unwrap();
        for _ in 0..10 {
            assert_eq!(top.answered("r", p, 200), None);
        }
        assert!(top.try_acquire("other").is_some());
    }
}
