//! The core's [`AdaptiveLimits`] (how many requests each registry gets at
//! once, learnt from its answers) shared by everything this process runs,
//! with the waiting done here: a request waits for a place among its
//! registry's, and holds it until its answer's body ends.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use http_body::{Body, Frame};
use ocirelay_core::adaptive::{AdaptiveLimits, Place};
use tokio::sync::Notify;

/// Said when a registry's limit changes: its name and the new limit.
type Announce = Box<dyn Fn(&str, usize) + Send + Sync>;

/// The limits of every registry the process speaks to.
pub struct Adaptive {
    limits: Mutex<AdaptiveLimits>,
    freed: Notify,
    announce: Mutex<Option<Announce>>,
}

impl std::fmt::Debug for Adaptive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Adaptive")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// A request's place among its registry's, given back when dropped.
#[derive(Debug)]
pub struct Permit {
    adaptive: Arc<Adaptive>,
    host: String,
    place: Place,
}

impl Adaptive {
    /// Limits starting at, and never above, `ceiling` per registry.
    pub fn new(ceiling: usize) -> Arc<Self> {
        Arc::new(Adaptive {
            limits: Mutex::new(AdaptiveLimits::new(ceiling)),
            freed: Notify::new(),
            announce: Mutex::new(None),
        })
    }

    /// Limits never above `ceiling` (`--concurrency`).
    pub fn set_ceiling(&self, ceiling: usize) {
        if let Ok(mut limits) = self.limits.lock() {
            limits.set_ceiling(ceiling);
        }
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
            let place = match self.limits.lock() {
                Ok(mut limits) => limits.try_acquire(host),
                // A poisoned lock limits nothing.
                Err(_) => Some(Place::default()),
            };
            if let Some(place) = place {
                return Permit {
                    adaptive: self.clone(),
                    host: host.to_string(),
                    place,
                };
            }
            freed.await;
        }
    }

    /// What the answer (`status`) to the request holding `permit` says.
    pub fn answered(&self, permit: &Permit, status: u16) {
        let changed = match self.limits.lock() {
            Ok(mut limits) => limits.answered(&permit.host, permit.place, status),
            Err(_) => None,
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
}

impl Drop for Permit {
    fn drop(&mut self) {
        if let Ok(mut limits) = self.adaptive.limits.lock() {
            limits.release(&self.host);
        }
        self.adaptive.freed.notify_waiters();
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
