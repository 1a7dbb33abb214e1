//! Sub-operations run side by side inside a larger operation: members
//! finish in any order, each with the key its owner gave it.

use crate::client::Client;
use crate::ops::{earliest, Operation, Output};

/// Operations of one type, each tagged with a caller's key.
#[derive(Debug)]
pub struct Group<K, O> {
    members: Vec<(K, O)>,
}

impl<K, O> Default for Group<K, O> {
    fn default() -> Self {
        Group {
            members: Vec::new(),
        }
    }
}

impl<K, O: Operation> Group<K, O> {
    /// An empty group.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a member.
    pub fn push(&mut self, key: K, op: O) {
        self.members.push((key, op));
    }

    /// Members still running.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether no member is running.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Polls members in order: the first `Send`, or the first member to
    /// finish (with its key; it leaves the group), or `Wait` until the
    /// earliest deadline any member waits for. A finished member is returned
    /// at once, so the caller polls again, and members that waited on what
    /// it produced (a cache entry) get another turn. An empty group waits
    /// for nothing: its owner checks [`Group::is_empty`] first.
    pub fn poll(&mut self, client: &mut Client) -> Output<(K, O::Outcome)> {
        self.poll_seeing(client, |_, _| {})
    }

    /// [`Group::poll`], `seen` told which member sends each request.
    pub fn poll_seeing(
        &mut self,
        client: &mut Client,
        mut seen: impl FnMut(&K, &crate::http::Request),
    ) -> Output<(K, O::Outcome)> {
        let mut deadline = None;
        for i in 0..self.members.len() {
            match self.members[i].1.poll_output(client) {
                Output::Send(id, request) => {
                    seen(&self.members[i].0, &request);
                    return Output::Send(id, request);
                }
                Output::Wait(until) => deadline = earliest(deadline, until),
                Output::Done(outcome) => {
                    let (key, _) = self.members.remove(i);
                    return Output::Done((key, outcome));
                }
            }
        }
        Output::Wait(deadline)
    }
}
