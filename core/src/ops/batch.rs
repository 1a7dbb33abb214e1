//! Many queries at once (`ocirelay lookup --parallel`): every query runs
//! side by side in one client, so they share its cache and tokens, and each
//! keeps its own outcome, in input order.

use crate::client::Client;
use crate::error::Result;
use crate::http::{RequestId, Response, TransportError};
use crate::index::Index;
use crate::ops::group::{Group, GroupOutput};
use crate::ops::lookup::{Found, Lookup, LookupOptions};
use crate::ops::synthesize_index::SynthesizeIndex;
use crate::ops::{Operation, Output};
use crate::reference::Reference;

/// One query of a batch.
#[derive(Debug, Clone)]
pub enum Query {
    /// A lookup, as [`Lookup`] does it.
    Lookup(Reference, LookupOptions),
    /// A synthesized index, as [`SynthesizeIndex`] makes it.
    SynthesizeIndex(Reference),
}

/// What a query found.
#[derive(Debug)]
pub enum Answer {
    /// A looked-up object.
    Found(Found),
    /// A synthesized index.
    Index(Index),
}

/// A running query.
#[derive(Debug)]
enum Running {
    Lookup(Box<Lookup>),
    Index(SynthesizeIndex),
}

impl Operation for Running {
    type Outcome = Option<Answer>;

    fn poll_output(&mut self, client: &mut Client) -> Output<Option<Answer>> {
        match self {
            Running::Lookup(op) => match op.poll_output(client) {
                Output::Done(r) => Output::Done(r.map(|f| f.map(Answer::Found))),
                Output::Send(id, req) => Output::Send(id, req),
                Output::Wait => Output::Wait,
            },
            Running::Index(op) => match op.poll_output(client) {
                Output::Done(r) => Output::Done(r.map(|i| i.map(Answer::Index))),
                Output::Send(id, req) => Output::Send(id, req),
                Output::Wait => Output::Wait,
            },
        }
    }

    fn handle_response(
        &mut self,
        client: &mut Client,
        id: RequestId,
        response: std::result::Result<Response, TransportError>,
    ) {
        match self {
            Running::Lookup(op) => op.handle_response(client, id, response),
            Running::Index(op) => op.handle_response(client, id, response),
        }
    }
}

/// The batch state machine.
#[derive(Debug)]
pub struct Batch {
    running: Group<usize, Running>,
    outcomes: Vec<Option<Result<Option<Answer>>>>,
}

impl Batch {
    /// A batch of `queries`; a query that is invalid on its face (a blob
    /// lookup without digest) fails alone, at once.
    pub fn new(queries: Vec<Query>) -> Self {
        let mut running = Group::new();
        let mut outcomes = Vec::with_capacity(queries.len());
        for (i, q) in queries.into_iter().enumerate() {
            match q {
                Query::Lookup(r, options) => match Lookup::new(r, options) {
                    Ok(op) => {
                        running.push(i, Running::Lookup(Box::new(op)));
                        outcomes.push(None);
                    }
                    Err(e) => outcomes.push(Some(Err(e))),
                },
                Query::SynthesizeIndex(r) => {
                    running.push(i, Running::Index(SynthesizeIndex::new(r)));
                    outcomes.push(None);
                }
            }
        }
        Batch { running, outcomes }
    }
}

impl Operation for Batch {
    type Outcome = Vec<Result<Option<Answer>>>;

    fn poll_output(&mut self, client: &mut Client) -> Output<Self::Outcome> {
        loop {
            match self.running.poll(client) {
                GroupOutput::Send(id, request) => return Output::Send(id, request),
                GroupOutput::Finished(i, outcome) => self.outcomes[i] = Some(outcome),
                GroupOutput::Wait if !self.running.is_empty() => return Output::Wait,
                GroupOutput::Wait => {
                    let outcomes = std::mem::take(&mut self.outcomes);
                    return Output::Done(Ok(outcomes.into_iter().flatten().collect()));
                }
            }
        }
    }

    fn handle_response(
        &mut self,
        client: &mut Client,
        id: RequestId,
        response: std::result::Result<Response, TransportError>,
    ) {
        self.running.handle_response(client, id, response);
    }
}
