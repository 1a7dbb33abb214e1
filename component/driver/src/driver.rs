//! The one driver loop that runs every core operation: send what it asks
//! for, wait on all in-flight answers and on its deadline at once, hand
//! each answer to the client, poll again.
//!
//! Requests in flight are bounded by the client's concurrency as a whole
//! (operations nest: an index's children each copy their own blobs). A body
//! held for relaying into the next request (a copy's source) keeps its
//! connection busy, so it holds its slot until the upload that sends it
//! starts, and that upload takes the slot over. Requests pass the client's
//! policy, when it has one, before they start.

use std::collections::{HashMap, VecDeque};

use ocirelay_core::http::{BodyMode, Request, RequestBody, RequestId, TransportError};
use ocirelay_core::policy::Admission;
use ocirelay_core::{Client, Error, Instant, Operation, Output};
use wasi::clocks::monotonic_clock;
use wasi::io::poll::Pollable;

use crate::session_check::Checks;
use crate::transport::{Answered, BodyStream, InFlight, SendOptions};

/// Runs `op` to completion, sending as `send` says (whether streamed
/// uploads are checked here, timeouts). Response bodies the operation asked
/// to keep for the caller are returned by request id for the caller to read.
pub fn run<O: Operation>(
    client: &mut Client,
    op: &mut O,
    send: SendOptions,
) -> (Result<O::Outcome, Error>, HashMap<RequestId, BodyStream>) {
    let mut driver = Driver {
        send,
        ..Driver::default()
    };
    let outcome = driver.run(client, op);
    // Answers to requests of sub-operations that are gone are not waited for.
    client.forget_requests();
    let held = driver
        .held
        .into_iter()
        .map(|(id, h)| (id, h.stream))
        .collect();
    (outcome, held)
}

/// A request the operation asked for, not started yet.
struct Unsent {
    id: RequestId,
    request: Request,
    /// The held body a streamed upload sends.
    source: Option<BodyStream>,
}

/// A request waiting for its host's rate to allow it.
struct Scheduled {
    unsent: Unsent,
    timer: Pollable,
}

/// A response body kept unread.
struct Held {
    stream: BodyStream,
    /// Kept for the next request to send on: it still occupies a slot.
    relay: bool,
}

/// The requests of one run, by where they are.
#[derive(Default)]
struct Driver {
    /// Sent, awaiting their answers.
    in_flight: Vec<(RequestId, InFlight)>,
    /// Waiting for their host's rate.
    scheduled: Vec<Scheduled>,
    /// Ready, waiting for a free slot (uploads of relayed bodies first).
    queued: VecDeque<Unsent>,
    /// Response bodies held, by request.
    held: HashMap<RequestId, Held>,
    /// How requests are sent.
    send: SendOptions,
    /// The operation's last deadline, with its timer.
    timer: Option<(Instant, Pollable)>,
    /// Chunked uploads' checks, when this component hashes uploads.
    checks: Checks,
}

impl Driver {
    fn run<O: Operation>(&mut self, client: &mut Client, op: &mut O) -> Result<O::Outcome, Error> {
        loop {
            client.set_now(now());
            let deadline = loop {
                match op.poll_output(client) {
                    Output::Send(id, request) => self.enqueue(id, request),
                    Output::Wait(deadline) => break deadline,
                    Output::Done(outcome) => return Ok(outcome),
                }
                self.drop_released(client);
                self.fill(client);
            };
            self.drop_released(client);
            self.fill(client);
            let idle = self.in_flight.is_empty() && self.scheduled.is_empty();
            if idle && self.queued.is_empty() && deadline.is_none() {
                // An operation that waits with nothing in flight would wait forever.
                return Err(Error::Internal(
                    "an operation waited with no request in flight".into(),
                ));
            }
            self.wait(deadline);
            client.set_now(now());
            self.collect(client);
            self.fill(client);
        }
    }

    /// Queues a request; the upload of a relayed body goes first, and takes
    /// that body (and its slot) with it.
    fn enqueue(&mut self, id: RequestId, request: Request) {
        let source = match request.body {
            RequestBody::Transfer { from, .. } | RequestBody::Chunk { from, .. } => {
                self.held.remove(&from).map(|h| h.stream)
            }
            _ => None,
        };
        let relayed = source.is_some();
        let unsent = Unsent {
            id,
            request,
            source,
        };
        if relayed {
            self.queued.push_front(unsent);
        } else {
            self.queued.push_back(unsent);
        }
    }

    /// Drops the held bodies the client's operations gave up on, and the
    /// places they hold.
    fn drop_released(&mut self, client: &mut Client) {
        for id in client.take_released() {
            self.held.remove(&id);
        }
    }

    /// Slots in use: requests in flight, bodies held for relaying, and
    /// uploads of relayed bodies not started yet.
    fn busy(&self) -> usize {
        let relays = self.held.values().filter(|h| h.relay).count();
        let carried = |u: &Unsent| u.source.is_some();
        let waiting = self.queued.iter().filter(|u| carried(u)).count()
            + self.scheduled.iter().filter(|s| carried(&s.unsent)).count();
        self.in_flight.len() + relays + waiting
    }

    /// Blocks until an answer arrives, an upload can move, a rate allows a
    /// request, or the operation's deadline comes. The pollables are made
    /// once (with their requests, and per deadline): a wait makes no calls
    /// but the poll.
    fn wait(&mut self, deadline: Option<Instant>) {
        let timer = match (deadline, self.timer.take()) {
            (Some(at), Some((same, timer))) if same == at => Some((at, timer)),
            (Some(at), _) => Some((at, monotonic_clock::subscribe_instant(nanos(at)))),
            (None, _) => None,
        };
        self.timer = timer;
        let mut refs: Vec<&Pollable> = self.in_flight.iter().flat_map(|(_, f)| f.ready()).collect();
        refs.extend(self.scheduled.iter().map(|s| &s.timer));
        refs.extend(self.timer.as_ref().map(|(_, t)| t));
        wasi::io::poll::poll(&refs);
    }

    /// Moves uploads along and hands every answer that arrived to the
    /// client (both are non-blocking checks); requests whose rate now
    /// allows them are queued again.
    fn collect(&mut self, client: &mut Client) {
        let mut still = Vec::with_capacity(self.in_flight.len());
        for (id, mut flight) in std::mem::take(&mut self.in_flight) {
            if let Err(e) = flight.pump() {
                client.handle_response(id, Err(e));
                continue;
            }
            let relay = flight.body_mode() == BodyMode::Relay;
            match flight.poll() {
                None => still.push((id, flight)),
                Some(Answered::Ready(Ok((response, body)))) => {
                    if let Some(stream) = body {
                        self.held.insert(id, Held { stream, relay });
                    }
                    client.handle_response(id, Ok(response));
                }
                Some(Answered::Ready(Err(e))) => client.handle_response(id, Err(e)),
                Some(Answered::Chunked(response, rest)) => {
                    let held = Held {
                        stream: rest,
                        relay: true,
                    };
                    self.held.insert(id, held);
                    client.handle_response(id, Ok(response));
                }
            }
        }
        self.in_flight = still;
        let (due, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.scheduled)
            .into_iter()
            .partition(|s| s.timer.ready());
        self.scheduled = waiting;
        for s in due {
            if s.unsent.source.is_some() {
                self.queued.push_front(s.unsent);
            } else {
                self.queued.push_back(s.unsent);
            }
        }
    }

    /// Starts queued requests while there is room (an upload of a relayed
    /// body always has: it brings its slot): each one the client's policy
    /// admits now; one over its host's rate is scheduled for later, one to
    /// a host not allowed fails.
    fn fill(&mut self, client: &mut Client) {
        while let Some(next) = self.queued.front() {
            // Bodies held for relaying never stop everything: with nothing
            // in flight, nothing would free their places.
            let full = self.busy() >= client.concurrency() && !self.in_flight.is_empty();
            if next.source.is_none() && full {
                return;
            }
            let Some(u) = self.queued.pop_front() else {
                return;
            };
            let authority = u.request.url.authority.clone();
            match client.admit(&u.request) {
                // Its registry takes no more at once now: once an answer
                // is in.
                Admission::Go if !client.take_place(u.id, &u.request) => {
                    self.queued.push_front(u);
                    return;
                }
                Admission::Go => {
                    match InFlight::start(u.request, u.source, self.send, &self.checks) {
                        Ok(f) => self.in_flight.push((u.id, f)),
                        Err(e) => client.handle_response(u.id, Err(e)),
                    }
                }
                Admission::Wait(at) => {
                    let timer = monotonic_clock::subscribe_instant(nanos(at));
                    self.scheduled.push(Scheduled { unsent: u, timer });
                }
                Admission::Refused => {
                    let message = format!(
                        "{authority} is not a host this client may reach (its policy's allow-list)"
                    );
                    client.handle_response(u.id, Err(TransportError::permanent(message)));
                }
                Admission::Exhausted(at) => {
                    let back = at.saturating_since(client.now()).as_secs();
                    let message = format!(
                        "{authority} said its request budget is spent; it is back in {back} s, \
                         past the retry deadline"
                    );
                    client.handle_response(u.id, Err(TransportError::permanent(message)));
                }
            }
        }
    }
}

/// The monotonic clock, as the core takes time.
fn now() -> Instant {
    Instant::from_nanos(monotonic_clock::now())
}

/// An instant as the monotonic clock's nanoseconds.
fn nanos(at: Instant) -> u64 {
    u64::try_from(at.since_origin().as_nanos()).unwrap_or(u64::MAX)
}
