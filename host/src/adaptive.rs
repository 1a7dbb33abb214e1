//! How many requests each registry gets at once, learnt from its answers
//! (additive increase, multiplicative decrease): a 429 or 503 halves what
//! was in flight (never below 1), and each window of successes as long as
//! the limit grows it by one, up to `--concurrency`. So a large copy or
//! sync settles at what a registry takes instead of hammering it. One
//! decrease per round: answers to requests sent before the last decrease
//! do not lower it again.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use http_body::{Body, Frame};
use tokio::sync::Notify;

/// Said when a registry's limit changes: its name and the new limit.
type Announce = Box<dyn Fn(&str, usize) + Send + Sync>;

/// The limits of every registry the process speaks to.
pub struct Adaptive {
    ceiling: AtomicUsize,
    hosts: Mutex<HashMap<String, Host>>,
    freed: Notify,
    announce: Mutex<Option<Announce>>,
}

/// One registry's limit and what is in flight to it.
#[derive(Debug, Clone, Copy)]
struct Host {
    limit: usize,
    in_flight: usize,
    /// Successes since the limit last changed.
    successes: usize,
    /// Which round of the limit this is (a decrease starts a new one).
    round: u64,
}

impl std::fmt::Debug for Adaptive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Adaptive")
            .field("ceiling", &self.ceiling.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// A request's place in its registry's limit, given back when dropped.
#[derive(Debug)]
pub struct Permit {
    adaptive: Arc<Adaptive>,
    host: String,
    round: u64,
}

impl Adaptive {
    /// Limits starting at, and never above, `ceiling` per registry.
    pub fn new(ceiling: usize) -> Arc<Self> {
        Arc::new(Adaptive {
            ceiling: AtomicUsize::new(ceiling.max(1)),
            hosts: Mutex::new(HashMap::new()),
            freed: Notify::new(),
            announce: Mutex::new(None),
        })
    }

    /// Limits never above `ceiling` (`--concurrency`), set before any
    /// request is sent.
    pub fn set_ceiling(&self, ceiling: usize) {
        self.ceiling.store(ceiling.max(1), Ordering::Relaxed);
    }

    /// From now on, `announce` is told of every change of a limit.
    pub fn announce_with(&self, announce: impl Fn(&str, usize) + Send + Sync + 'static) {
        if let Ok(mut a) = self.announce.lock() {
            *a = Some(Box::new(announce));
        }
    }

    /// Waits for a place among the requests in flight to `host`.
    pub async fn acquire(self: &Arc<Self>, host: &str) -> Permit {
        loop {
            let freed = self.freed.notified();
            if let Ok(mut hosts) = self.hosts.lock() {
                let h = hosts.entry(host.to_string()).or_insert(Host {
                    limit: self.ceiling.load(Ordering::Relaxed),
                    in_flight: 0,
                    successes: 0,
                    round: 0,
                });
                if h.in_flight < h.limit {
                    h.in_flight += 1;
                    return Permit {
                        adaptive: self.clone(),
                        host: host.to_string(),
                        round: h.round,
                    };
                }
            }
            freed.await;
        }
    }

    /// What the answer (`status`) to the request holding `permit` says.
    pub fn answered(&self, permit: &Permit, status: u16) {
        let changed = {
            let Ok(mut hosts) = self.hosts.lock() else {
                return;
            };
            let Some(h) = hosts.get_mut(&permit.host) else {
                return;
            };
            step(
                h,
                permit.round,
                status,
                self.ceiling.load(Ordering::Relaxed),
            )
        };
        if let Some(limit) = changed {
            tracing::info!(host = %permit.host, limit, status, "requests at once to this registry");
            if let Ok(announce) = self.announce.lock() {
                if let Some(announce) = announce.as_ref() {
                    announce(&permit.host, limit);
                }
            }
            self.freed.notify_waiters();
        }
    }

    fn release(&self, host: &str) {
        if let Ok(mut hosts) = self.hosts.lock() {
            if let Some(h) = hosts.get_mut(host) {
                h.in_flight = h.in_flight.saturating_sub(1);
            }
        }
        self.freed.notify_waiters();
    }
}

/// The limit after an answer of `status` to a request sent in `round`:
/// the new limit when it changed.
fn step(h: &mut Host, round: u64, status: u16, ceiling: usize) -> Option<usize> {
    match status {
        429 | 503 if round == h.round => {
            // Half of what was in flight when it said so (the limit may
            // be far above what was ever sent).
            let limit = (h.limit.min(h.in_flight) / 2).max(1);
            h.round += 1;
            h.successes = 0;
            (limit != h.limit).then(|| {
                h.limit = limit;
                limit
            })
        }
        429 | 503 => None,
        _ if status < 500 => {
            h.successes += 1;
            if h.successes >= h.limit && h.limit < ceiling {
                h.successes = 0;
                h.limit += 1;
                return Some(h.limit);
            }
            None
        }
        _ => None,
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.adaptive.release(&self.host);
    }
}

/// A response body that holds its request's permit until it ends.
pub struct Held<B> {
    inner: B,
    permit: Option<Permit>,
}

impl<B> Held<B> {
    /// `inner`, holding `permit` until its last frame (or until dropped).
    pub fn new(inner: B, permit: Permit) -> Self {
        Held {
            inner,
            permit: Some(permit),
        }
    }
}

impl<B: Body + Unpin> Body for Held<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None) | Poll::Ready(Some(Err(_)))) {
            self.permit = None;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(limit: usize, in_flight: usize) -> Host {
        Host {
            limit,
            in_flight,
            successes: 0,
            round: 0,
        }
    }

    #[test]
    fn halves_once_a_round_and_grows_back_by_one_a_window() {
        let mut h = host(64, 8);
        assert_eq!(
            step(&mut h, 0, 429, 64),
            Some(4),
            "half of what was in flight"
        );
        assert_eq!(step(&mut h, 0, 429, 64), None, "sent before the decrease");
        h.in_flight = 4;
        assert_eq!(step(&mut h, 1, 503, 64), Some(2));
        h.in_flight = 2;
        assert_eq!(step(&mut h, 2, 429, 64), Some(1));
        h.in_flight = 1;
        assert_eq!(step(&mut h, 3, 429, 64), None, "never below 1");
        assert_eq!(h.limit, 1);
        // A window of successes as long as the limit: one more.
        assert_eq!(step(&mut h, 4, 200, 64), Some(2));
        assert_eq!(step(&mut h, 4, 404, 64), None);
        assert_eq!(step(&mut h, 4, 201, 64), Some(3));
        // Server errors other than 503 say nothing of load.
        assert_eq!(step(&mut h, 4, 500, 64), None);
        // Never past the ceiling.
        let mut top = host(2, 0);
        for _ in 0..10 {
            assert_eq!(step(&mut top, 0, 200, 2), None);
        }
    }

    #[test]
    fn a_permit_waits_for_a_place_and_gives_it_back() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let adaptive = Adaptive::new(2);
            let a = adaptive.acquire("r").await;
            let _b = adaptive.acquire("r").await;
            let waiting = tokio::spawn({
                let adaptive = adaptive.clone();
                async move { adaptive.acquire("r").await }
            });
            tokio::task::yield_now().await;
            assert!(!waiting.is_finished(), "a third waits");
            let _other = adaptive.acquire("elsewhere").await;
            drop(a);
            let third = tokio::time::timeout(std::time::Duration::from_secs(5), waiting)
                .await
                .expect("freed")
                .unwrap();
            assert_eq!(third.host, "r");
        });
    }
}
