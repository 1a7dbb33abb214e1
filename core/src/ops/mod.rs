//! Operations as sans-IO state machines. Each one is driven by the same loop:
//! ask [`Operation::poll_output`] what to do until it says [`Output::Wait`]
//! or [`Output::Done`], send what it asked for (concurrently if you like),
//! and hand every answer to [`Operation::handle_response`] with its id.

pub mod batch;
pub mod copy_blob;
pub mod copy_manifest;
pub mod ensure_blob;
pub mod ensure_manifest;
pub mod exchange;
pub mod group;
pub mod lookup;
pub mod resume_blob;
pub mod synthesize_index;

use crate::client::Client;
use crate::error::Result;
use crate::http::{Request, RequestId, Response, TransportError};

/// What an operation needs next.
#[derive(Debug)]
pub enum Output<T> {
    /// Send this request and hand its response back under this id.
    Send(RequestId, Request),
    /// Nothing to send until a response arrives.
    Wait,
    /// Finished; polling again is a caller bug.
    Done(Result<T>),
}

/// A sub-operation's Send or Wait, passed up by the operation composing it
/// (which handles the sub-operation's Done itself).
pub(crate) fn pass<A, B>(output: Output<A>) -> Output<B> {
    match output {
        Output::Send(id, request) => Output::Send(id, request),
        _ => Output::Wait,
    }
}

/// The shape every operation shares, so one driver runs them all.
pub trait Operation {
    /// What the operation produces.
    type Outcome;

    /// The next thing the driver must do.
    fn poll_output(&mut self, client: &mut Client) -> Output<Self::Outcome>;

    /// The answer to request `id` (or why there is none).
    fn handle_response(
        &mut self,
        client: &mut Client,
        id: RequestId,
        response: std::result::Result<Response, TransportError>,
    );
}
