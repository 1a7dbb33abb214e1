//! The one driver loop that runs every core operation: send what it asks
//! for, wait on all in-flight responses at once, hand each answer back.

use std::collections::HashMap;

use ocirelay_core::http::{Request, RequestBody, RequestId};
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
    let mut in_flight: Vec<(RequestId, InFlight)> = Vec::new();
    // Retries wait for their timer before they start.
    let mut scheduled: Vec<(RequestId, Request, Option<BodyStream>, Pollable)> = Vec::new();
    let mut held = HashMap::new();
    loop {
        // Time is the core's input: token lifetimes are judged against it.
        client.set_now(std::time::Duration::from_nanos(monotonic_clock::now()));
        loop {
            match op.poll_output(client) {
                Output::Send(id, request) => {
                    // A streamed body comes from a response body held earlier.
                    let source = match request.body {
                        RequestBody::Transfer { from, .. } => held.remove(&from),
                        _ => None,
                    };
                    match request.not_before {
                        Some(delay) => {
                            let nanos = u64::try_from(delay.as_nanos()).unwrap_or(u64::MAX);
                            let timer = monotonic_clock::subscribe_duration(nanos);
                            scheduled.push((id, request, source, timer));
                        }
                        None => match InFlight::start(request, source) {
                            Ok(f) => in_flight.push((id, f)),
                            Err(e) => op.handle_response(client, id, Err(e)),
                        },
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
            let pollables: Vec<_> = in_flight.iter().flat_map(|(_, f)| f.subscribe()).collect();
            let mut refs: Vec<_> = pollables.iter().collect();
            refs.extend(scheduled.iter().map(|(_, _, _, timer)| timer));
            wasi::io::poll::poll(&refs);
        }
        // Retries whose wait is over start now.
        let mut waiting = Vec::with_capacity(scheduled.len());
        for (id, request, source, timer) in scheduled {
            if !timer.ready() {
                waiting.push((id, request, source, timer));
                continue;
            }
            match InFlight::start(request, source) {
                Ok(f) => in_flight.push((id, f)),
                Err(e) => op.handle_response(client, id, Err(e)),
            }
        }
        scheduled = waiting;
        // Something is ready: move uploads along and collect every answer
        // that arrived (both are non-blocking checks).
        let mut still = Vec::with_capacity(in_flight.len());
        for (id, mut flight) in in_flight {
            if let Err(e) = flight.pump() {
                op.handle_response(client, id, Err(e));
                continue;
            }
            match flight.poll() {
                Poll::Pending(f) => still.push((id, f)),
                Poll::Ready(Ok((response, body))) => {
                    if let Some(body) = body {
                        held.insert(id, body);
                    }
                    op.handle_response(client, id, Ok(response));
                }
                Poll::Ready(Err(e)) => op.handle_response(client, id, Err(e)),
            }
        }
        in_flight = still;
    }
}
