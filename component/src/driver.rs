//! The one driver loop that runs every core operation: send what it asks
//! for, wait on all in-flight responses at once, hand each answer back.

use std::collections::HashMap;

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
    let result = run_inner(client, op);
    // No operation outlives this run: nothing is being fetched any more.
    client.cache.clear_pending();
    result
}

fn run_inner<O: Operation>(
    client: &mut Client,
    op: &mut O,
) -> (
    ocirelay_core::Result<O::Outcome>,
    HashMap<RequestId, BodyStream>,
) {
    let mut in_flight: Vec<(RequestId, String, InFlight)> = Vec::new();
    // Retries, and requests over their host's rate, wait for their timer.
    let mut scheduled: Vec<Scheduled> = Vec::new();
    let mut held = HashMap::new();
    loop {
        // Time is the core's input: token lifetimes are judged against it.
        client.set_now(Duration::from_nanos(monotonic_clock::now()));
        loop {
            match op.poll_output(client) {
                Output::Send(id, request) => {
                    // A streamed body comes from a response body held earlier.
                    let source = match request.body {
                        RequestBody::Transfer { from, .. } => held.remove(&from),
                        _ => None,
                    };
                    let not_before = request.not_before;
                    let unsent = Unsent {
                        id,
                        request,
                        source,
                    };
                    match not_before {
                        Some(delay) => scheduled.push(Scheduled::new(unsent, delay)),
                        None => start(client, op, unsent, &mut in_flight, &mut scheduled),
                    }
                }
                Output::Wait => break,
                Output::Done(outcome) => return (outcome, held),
            }
        }
        if in_flight.is_empty() && scheduled.is_empty() {
            // An operation that waits with nothing in flight would wait forever.
            let e = ocirelay_core::Error::InvalidInput(
                "operation stalled with no request in flight".into(),
            );
            return (Err(e), held);
        }
        // Pollables are children of their futures and streams: they must be
        // gone before those are used up, so they live only for this wait.
        {
            let pollables: Vec<_> = in_flight
                .iter()
                .flat_map(|(_, _, f)| f.subscribe())
                .collect();
            let mut refs: Vec<_> = pollables.iter().collect();
            refs.extend(scheduled.iter().map(|s| &s.timer));
            wasi::io::poll::poll(&refs);
        }
        client.set_now(Duration::from_nanos(monotonic_clock::now()));
        // Requests whose wait is over start now.
        let (due, waiting): (Vec<_>, Vec<_>) = scheduled.into_iter().partition(|s| s.timer.ready());
        scheduled = waiting;
        for s in due {
            start(client, op, s.unsent, &mut in_flight, &mut scheduled);
        }
        // Something is ready: move uploads along and collect every answer
        // that arrived (both are non-blocking checks).
        let mut still = Vec::with_capacity(in_flight.len());
        for (id, authority, mut flight) in in_flight {
            if let Err(e) = flight.pump() {
                op.handle_response(client, id, Err(e));
                continue;
            }
            match flight.poll() {
                Poll::Pending(f) => still.push((id, authority, f)),
                Poll::Ready(Ok((response, body))) => {
                    if let Some(body) = body {
                        held.insert(id, body);
                    }
                    client.observe(&authority, &response);
                    op.handle_response(client, id, Ok(response));
                }
                Poll::Ready(Err(e)) => op.handle_response(client, id, Err(e)),
            }
        }
        in_flight = still;
    }
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

/// Starts `u` if the client's policy admits it now; otherwise schedules it
/// for when its host's rate allows, or fails it when the host is not allowed.
fn start<O: Operation>(
    client: &mut Client,
    op: &mut O,
    u: Unsent,
    in_flight: &mut Vec<(RequestId, String, InFlight)>,
    scheduled: &mut Vec<Scheduled>,
) {
    let authority = u.request.url.authority.clone();
    match client.admit(&authority) {
        Admission::Go => match InFlight::start(u.request, u.source) {
            Ok(f) => in_flight.push((u.id, authority, f)),
            Err(e) => op.handle_response(client, u.id, Err(e)),
        },
        Admission::Wait(wait) => {
            scheduled.push(Scheduled::new(u, wait.max(Duration::from_millis(1))));
        }
        Admission::Refused => {
            let message = format!(
                "{authority} is not a host this client may reach (its policy's allow-list)"
            );
            op.handle_response(client, u.id, Err(TransportError::permanent(message)));
        }
    }
}
