//! Operations as sans-IO state machines, all of one shape so that one driver
//! runs every one of them.
//!
//! # Driving an operation
//!
//! A driver loops: tell the client the time ([`Client::set_now`]), then ask
//! the operation for its next output until it waits or is done:
//! - [`Output::Send`]: send this request (concurrently with others if you
//!   like) and, when its answer comes, hand it to
//!   [`Client::handle_response`] under the same id;
//! - [`Output::Wait`]: nothing to send now; poll again when an answer
//!   arrives, or at the deadline if it names one (a retry's wait);
//! - [`Output::Done`]: the outcome (for most operations a [`Result`]).
//!   Polling again is a caller bug.
//!
//! # Writing an operation
//!
//! One convention, followed by every operation here:
//! - **State** is an enum named `Stage`: what the operation is doing now,
//!   holding the sub-operation it runs (an [`exchange::Exchange`] for one
//!   request, or any other operation) and the data the next step needs.
//! - **Polling** matches on `&mut self.stage`. In each arm,
//!   [`ready!`](crate::ready) polls the sub-operation: it passes a `Send`
//!   or `Wait` up as the operation's own output, and evaluates to the
//!   sub-operation's outcome once it is done.
//! - **Deciding** is a method that takes that outcome and returns
//!   `Result<Step<Stage, Outcome>>`: the next stage, or the end.
//!   [`advance!`](crate::advance) applies it: it moves to the next stage,
//!   or returns `Done` with the value or the error. That is the one way an
//!   operation finishes.
//! - **Answers are never routed**: request ids are unique per client, the
//!   client keeps each answer until the exchange that sent the request
//!   takes it, so an operation has no `handle_response` of its own.
//! - **Time** comes from [`Client::now`]; an operation that must wait until
//!   some instant says so with `Output::Wait(Some(deadline))`.
//! - **Claims** on the cache ([`crate::cache::Mark`]) live in the stage
//!   that does the work: dropped with it, finished or abandoned.
//!
//! Operations that run several sub-operations side by side keep them in a
//! [`group::Group`], whose `poll` is awaited with `ready!` too; operations of
//! different types share one with [`Operation::map`] and `Box<dyn Operation>`.
//!
//! # Adding an operation
//!
//! 1. The state machine: a module here, `ops/<name>.rs`, following the
//!    convention above; unit tests in `core/tests/` against the scripted
//!    registries of `core/tests/common` (every request asserted).
//! 2. The contract: a method on the `client` resource in `wit/registry.wit`.
//! 3. The component: the method in `component/src/lib.rs` converts its
//!    arguments (`component/src/convert.rs`), builds the operation and
//!    hands it to `driver::run`: the driver needs nothing new.
//! 4. The host: a call in `host/src/runtime/session.rs` (`Session`), a command in
//!    `host/src/commands/`, and end-to-end tests in `tests/tests/` against
//!    real registries.

pub mod attach_referrer;
pub mod batch;
pub mod chunked_upload;
pub mod confirm_push;
pub mod copy_blob;
pub mod copy_manifest;
pub mod copy_platforms;
pub mod copy_referrers;
pub mod deploy;
pub mod ensure_blob;
pub mod ensure_manifest;
pub mod exchange;
pub mod group;
pub mod list_tags;
pub mod lookup;
pub mod paging;
pub mod push_blob;
pub mod read_range;
pub mod referrers;
pub mod resume_blob;
pub mod sync;
pub mod sync_image;
pub mod synthesize_index;
pub mod token;

use crate::client::Client;
use crate::http::{Request, RequestId};
use crate::time::Instant;

/// Polls a sub-operation from inside `poll_output`: evaluates to its
/// outcome once it is done; until then returns its `Send` or `Wait` as the
/// caller's own output.
#[macro_export]
macro_rules! ready {
    ($poll:expr) => {
        match $poll {
            $crate::Output::Done(outcome) => outcome,
            $crate::Output::Send(id, request) => return $crate::Output::Send(id, request),
            $crate::Output::Wait(deadline) => return $crate::Output::Wait(deadline),
        }
    };
}

/// Applies a stage's decision (`Result<Step<Stage, T>>`) from inside the
/// `poll_output` of an operation whose outcome is `Result<T>`: moves
/// `$stage` on to the next stage, or returns `Done` with the value or the
/// error. The one way such an operation finishes.
#[macro_export]
macro_rules! advance {
    ($stage:expr, $step:expr) => {
        match $step {
            Ok($crate::ops::Step::Next(next)) => $stage = next,
            Ok($crate::ops::Step::Done(value)) => return $crate::Output::Done(Ok(value)),
            Err(e) => return $crate::Output::Done(Err(e)),
        }
    };
}

/// What an operation needs next.
#[derive(Debug)]
pub enum Output<T> {
    /// Send this request; hand its answer to
    /// [`Client::handle_response`] under this id.
    Send(RequestId, Request),
    /// Nothing to send now: poll again when an answer arrives, or at this
    /// instant at the latest (`None`: only an answer can move it on).
    Wait(Option<Instant>),
    /// Finished with this outcome; polling again is a caller bug.
    Done(T),
}

/// The shape every operation shares, so one driver runs them all.
pub trait Operation: std::fmt::Debug {
    /// What the operation produces (a [`Result`] for every operation that
    /// can fail).
    type Outcome;

    /// The next thing the driver must do. The operation takes the answers
    /// to its own requests from `client` and judges time by
    /// [`Client::now`].
    fn poll_output(&mut self, client: &mut Client) -> Output<Self::Outcome>;

    /// The same operation with its outcome passed through `f`.
    fn map<U, F: FnMut(Self::Outcome) -> U>(self, f: F) -> Map<Self, F>
    where
        Self: Sized,
    {
        Map { op: self, f }
    }
}

impl<O: Operation + ?Sized> Operation for Box<O> {
    type Outcome = O::Outcome;

    fn poll_output(&mut self, client: &mut Client) -> Output<Self::Outcome> {
        (**self).poll_output(client)
    }
}

/// An operation whose outcome is passed through a function ([`Operation::map`]).
pub struct Map<O, F> {
    op: O,
    f: F,
}

impl<O: std::fmt::Debug, F> std::fmt::Debug for Map<O, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Map").field(&self.op).finish()
    }
}

impl<O: Operation, U, F: FnMut(O::Outcome) -> U> Operation for Map<O, F> {
    type Outcome = U;

    fn poll_output(&mut self, client: &mut Client) -> Output<U> {
        let outcome = ready!(self.op.poll_output(client));
        Output::Done((self.f)(outcome))
    }
}

/// What an operation does when one of its stages ends.
#[derive(Debug)]
pub enum Step<S, T> {
    /// Goes on with this stage.
    Next(S),
    /// Finishes with this value.
    Done(T),
}

/// The earlier of two deadlines (`None`: no deadline).
pub(crate) fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::lookup::Lookup;
    use crate::Reference;
    use std::time::Duration;

    #[test]
    fn the_earliest_deadline_wins_and_none_is_no_deadline() {
        let (t1, t2) = (
            Instant::ZERO + Duration::from_secs(1),
            Instant::ZERO + Duration::from_secs(2),
        );
        assert_eq!(earliest(Some(t2), Some(t1)), Some(t1));
        assert_eq!(earliest(Some(t1), Some(t2)), Some(t1));
        assert_eq!(earliest(None, Some(t2)), Some(t2));
        assert_eq!(earliest(Some(t2), None), Some(t2));
        assert_eq!(earliest(None, None), None);
    }

    #[test]
    fn a_mapped_operation_shows_the_one_it_maps() {
        let r = Reference::parse("localhost:5000/a:b").unwrap();
        let op = Lookup::manifest(r, true).map(|outcome| outcome.is_ok());
        assert!(format!("{op:?}").starts_with("Map(Lookup"), "{op:?}");
    }
}
