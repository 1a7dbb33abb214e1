//! Many queries at once (`ocirelay lookup --parallel`): every query runs
//! side by side in one client, so they share its cache and tokens, and each
//! keeps its own outcome, in input order.

use crate::client::Client;
use crate::error::Result;
use crate::index::Index;
use crate::ops::group::Group;
use crate::ops::lookup::{Found, Lookup, LookupOptions};
use crate::ops::synthesize_index::SynthesizeIndex;
use crate::ops::{Operation, Output};
use crate::ready;
use crate::reference::Reference;

/// One query of a batch.
#[derive(Debug, Clone)]
pub enum Query {
    /// A lookup, as [`Lookup`] does it.
    Lookup(Reference, LookupOptions),
    /// A synthesized index, as [`SynthesizeIndex`] makes it.
    SynthesizeIndex(Reference),
}

impl Query {
    /// The reference queried.
    pub fn reference(&self) -> &Reference {
        match self {
            Query::Lookup(r, _) | Query::SynthesizeIndex(r) => r,
        }
    }
}

/// What a query found: an object (a [`Found`], or whatever a driver makes
/// of one, such as a reader of its content), or an index.
#[derive(Debug)]
// Answers are few (one per query), and `F` is as large as an index by default.
#[allow(clippy::large_enum_variant)]
pub enum Answer<F = Found> {
    /// A looked-up object.
    Found(F),
    /// A synthesized index.
    Index(Index),
}

/// A query's outcome: its answer, `None` when it found nothing, or why it failed.
pub type Outcome = Result<Option<Answer>>;

/// A running query.
type Running = Box<dyn Operation<Outcome = Outcome>>;

/// The batch state machine.
#[derive(Debug)]
pub struct Batch {
    running: Group<usize, Running>,
    outcomes: Vec<Option<Outcome>>,
}

impl Batch {
    /// A batch of `queries`; one that failed before it could run (a
    /// reference that did not parse, a blob lookup without digest) keeps its
    /// error as its outcome, and the others run.
    pub fn new(queries: impl IntoIterator<Item = Result<Query>>) -> Self {
        let mut running = Group::new();
        let mut outcomes = Vec::new();
        for (i, query) in queries.into_iter().enumerate() {
            let op: Result<Running> = query.and_then(|q| match q {
                Query::Lookup(r, options) => Lookup::new(r, options)
                    .map(|op| Box::new(op.map(|o| o.map(|f| f.map(Answer::Found)))) as Running),
                Query::SynthesizeIndex(r) => Ok(Box::new(
                    SynthesizeIndex::new(r).map(|o| o.map(|i| i.map(Answer::Index))),
                )),
            });
            match op {
                Ok(op) => {
                    running.push(i, op);
                    outcomes.push(None);
                }
                Err(e) => outcomes.push(Some(Err(e))),
            }
        }
        Batch { running, outcomes }
    }
}

impl Operation for Batch {
    /// One outcome per query, in input order.
    type Outcome = Vec<Outcome>;

    fn poll_output(&mut self, client: &mut Client) -> Output<Vec<Outcome>> {
        while !self.running.is_empty() {
            let (i, outcome) = ready!(self.running.poll(client));
            self.outcomes[i] = Some(outcome);
        }
        let outcomes = std::mem::take(&mut self.outcomes);
        Output::Done(outcomes.into_iter().flatten().collect())
    }
}
