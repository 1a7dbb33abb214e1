//! The one driver loop that runs every core operation: send what it asks
//! for, wait on all in-flight responses at once, hand each answer back.
//! Requests in flight are bounded by the client's concurrency as a whole
//! (operations nest: an index's children each copy their own blobs), and
//! pass the client's policy, when it has one, before they start.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use ocirelay_core::http::{Request, RequestBody, RequestId, TransportError};
use ocirelay_core::policy::Admission;
use ocirelay_core::{Client, Operation, Output};
use wasi::clocks::monotonic_clock;
use wasi::io::poll::Pollable;

use crate::transport::{BodyStream, InFlight, Poll};

/// Runs `op` to completion. Response bodies the operation asked to stream
/// are returned by request id for the caller to read.
pub fn run<O: Operation>(
    client: &mut Client,
    op: &mut O,
) -> (
    ocirelay_core::Result<O::Outcome>,
    HashMap<RequestId, BodyStream>,
) {
    let mut driver = Driver::default();
    let outcome = driver.run(client, op);
    // No operation outlives this run: nothing is being fetched any more.
    client.cache.clear_pending();
    (outcome, driver.held)
}

/// A request the operation asked for, not started yet.
struct Unsent {
    id: RequestId,
    request: Request,
    /// The held body a streamed upload sends.
    source: Option<BodyStream>,
}

/// A request waiting for its timer (a retry's delay, or its host's rate).
struct Scheduled {
    unsent: Unsent,
    timer: Pollable,
}

impl Scheduled {
    fn new(unsent: Unsent, delay: Duration) -> Self {
        let nanos = u64::try_from(delay.as_nanos()).unwrap_or(u64::MAX);
        let timer = monotonic_clock::subscribe_duration(nanos);
        Scheduled { unsent, timer }
    }
}

/// The requests of one run, by where they are.
#[derive(Default)]
struct Driver {
    /// Sent, awaiting their answers (with the host each went to).
    in_flight: Vec<(RequestId, String, InFlight)>,
    /// Waiting for their timer.
    scheduled: Vec<Scheduled>,
    /// Ready, waiting for a free slot.
    queued: VecDeque<Unsent>,
    /// Response bodies held for streaming, by request.
    held: HashMap<RequestId, BodyStream>,
}

impl Driver {
    fn run<O: Operation>(
        &mut self,
        client: &mut Client,
        op: &mut O,
    ) -> ocirelay_core::Result<O::Outcome> {
        loop {
            // Time is the core's input: token lifetimes are judged against it.
            client.set_now(now());
            loop {
                match op.poll_output(client) {
                    Output::Send(id, request) => {
                        // A streamed body comes from a response body held earlier.
                        let source = match request.body {
                            RequestBody::Transfer { from, .. } => self.held.remove(&from),
                            _ => None,
                        };
                        let not_before = request.not_before;
                        let unsent = Unsent {
                            id,
                            request,
                            source,
                        };
                        match not_before {
                            Some(delay) => self.scheduled.push(Scheduled::new(unsent, delay)),
                            None => self.queued.push_back(unsent),
                        }
                        self.fill(client, op);
                    }
                    Output::Wait => break,
                    Output::Done(outcome) => return outcome,
                }
            }
            if self.in_flight.is_empty() && self.scheduled.is_empty() && self.queued.is_empty() {
                // An operation that waits with nothing in flight would wait forever.
                return Err(ocirelay_core::Error::InvalidInput(
                    "operation stalled with no request in flight".into(),
                ));
            }
            self.wait();
            client.set_now(now());
            // Requests whose wait is over are ready now.
            let (due, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.scheduled)
                .into_iter()
                .partition(|s| s.timer.ready());
            self.scheduled = waiting;
            self.queued.extend(due.into_iter().map(|s| s.unsent));
            self.collect(client, op);
            self.fill(client, op);
        }
    }

    /// Blocks until an answer arrives, an upload can move, or a timer fires.
    fn wait(&self) {
        // Pollables are children of their futures and streams: they must be
        // gone before those are used up, so they live only for this wait.
        let pollables: Vec<_> = self
            .in_flight
            .iter()
            .flat_map(|(_, _, f)| f.subscribe())
            .collect();
        let mut refs: Vec<_> = pollables.iter().collect();
        refs.extend(self.scheduled.iter().map(|s| &s.timer));
        wasi::io::poll::poll(&refs);
    }

    /// Moves uploads along and hands every answer that arrived to `op`
    /// (both are non-blocking checks).
    fn collect<O: Operation>(&mut self, client: &mut Client, op: &mut O) {
        let mut still = Vec::with_capacity(self.in_flight.len());
        for (id, authority, mut flight) in std::mem::take(&mut self.in_flight) {
            if let Err(e) = flight.pump() {
                op.handle_response(client, id, Err(e));
                continue;
            }
            match flight.poll() {
                Poll::Pending(f) => still.push((id, authority, f)),
                Poll::Ready(Ok((response, body))) => {
                    if let Some(body) = body {
                        self.held.insert(id, body);
                    }
                    client.observe(&authority, &response);
                    op.handle_response(client, id, Ok(response));
                }
                Poll::Ready(Err(e)) => op.handle_response(client, id, Err(e)),
            }
        }
        self.in_flight = still;
    }

    /// Starts queued requests while there is room: each one the client's
    /// policy admits now; one over its host's rate is scheduled for later,
    /// one to a host not allowed fails.
    fn fill<O: Operation>(&mut self, client: &mut Client, op: &mut O) {
        while self.in_flight.len() < client.concurrency() {
            let Some(u) = self.queued.pop_front() else {
                return;
            };
            let authority = u.request.url.authority.clone();
            match client.admit(&authority) {
                Admission::Go => match InFlight::start(u.request, u.source) {
                    Ok(f) => self.in_flight.push((u.id, authority, f)),
                    Err(e) => op.handle_response(client, u.id, Err(e)),
                },
                Admission::Wait(wait) => {
                    let wait = wait.max(Duration::from_millis(1));
                    self.scheduled.push(Scheduled::new(u, wait));
                }
                Admission::Refused => {
                    let message = format!(
                        "{authority} is not a host this client may reach (its policy's allow-list)"
                    );
                    op.handle_response(client, u.id, Err(TransportError::permanent(message)));
                }
            }
        }
    }
}

/// The monotonic clock, as the core takes time.
fn now() -> Duration {
    Duration::from_nanos(monotonic_clock::now())
}
