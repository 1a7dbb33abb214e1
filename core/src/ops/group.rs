//! Sub-operations run side by side inside a larger operation: answers are
//! routed back to the member that asked, and members finish in any order.

use std::collections::HashMap;

use crate::client::Client;
use crate::error::Result;
use crate::http::{Request, RequestId, Response, TransportError};
use crate::ops::{Operation, Output};

/// What [`Group::poll`] found.
#[derive(Debug)]
pub enum GroupOutput<K, T> {
    /// A member wants this sent.
    Send(RequestId, Request),
    /// A member finished (it is no longer in the group).
    Finished(K, Result<T>),
    /// Every member waits for an answer.
    Wait,
}

/// Operations of one type, each tagged with a caller's key.
#[derive(Debug)]
pub struct Group<K, O> {
    members: Vec<(u64, K, O)>,
    routes: HashMap<RequestId, u64>,
    next_member: u64,
}

impl<K, O> Default for Group<K, O> {
    fn default() -> Self {
        Group {
            members: Vec::new(),
            routes: HashMap::new(),
            next_member: 0,
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
        self.members.push((self.next_member, key, op));
        self.next_member += 1;
    }

    /// Members still running.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether no member is running.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Polls members in order. A finished member is returned at once, so
    /// the caller polls again, and members that waited on what it produced
    /// (a cache entry) get another turn.
    pub fn poll(&mut self, client: &mut Client) -> GroupOutput<K, O::Outcome> {
        for i in 0..self.members.len() {
            let (member, _, op) = &mut self.members[i];
            match op.poll_output(client) {
                Output::Send(id, request) => {
                    self.routes.insert(id, *member);
                    return GroupOutput::Send(id, request);
                }
                Output::Wait => {}
                Output::Done(outcome) => {
                    let (_, key, _) = self.members.remove(i);
                    return GroupOutput::Finished(key, outcome);
                }
            }
        }
        GroupOutput::Wait
    }

    /// Hands an answer to the member that asked; answers to no member are ignored.
    pub fn handle_response(
        &mut self,
        client: &mut Client,
        id: RequestId,
        response: std::result::Result<Response, TransportError>,
    ) {
        let Some(member) = self.routes.remove(&id) else {
            return;
        };
        if let Some((_, _, op)) = self.members.iter_mut().find(|(m, _, _)| *m == member) {
            op.handle_response(client, id, response);
        }
    }
}
