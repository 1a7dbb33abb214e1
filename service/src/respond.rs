//! Sends answers over `wasi:http`: the head, then the body, a blob streamed
//! a chunk at a time. A blob that fails its check ends the answer without
//! its last chunk and without finishing its body, so the client sees it cut
//! short (its `Content-Length` unmet), never a complete-looking wrong blob.

use ocirelay_core::service::{log, Head};
use wasi::http::types::{Fields, OutgoingBody, OutgoingResponse, ResponseOutparam};
use wasi::io::streams::{OutputStream, StreamError};

use crate::answer::{Answer, Body};

/// Sends `answer` (its head only for a HEAD request). `what` names what a
/// streamed body is, for the warning written (on stderr, which the host
/// logs) when it is cut short.
pub fn answer(out: ResponseOutparam, answer: Answer, head_only: bool, what: &str) {
    let body = if head_only { Body::Empty } else { answer.body };
    send(out, &answer.head, body, what);
}

/// Sends a head and a text body (a failure's).
pub fn text(out: ResponseOutparam, (head, text): (Head, String), head_only: bool) {
    let body = match head_only {
        true => Body::Empty,
        false => Body::Bytes(text.into_bytes()),
    };
    send(out, &head, body, "");
}

fn send(out: ResponseOutparam, head: &Head, body: Body, what: &str) {
    let fields = Fields::new();
    for (name, value) in &head.headers {
        // Our own names and values: valid by construction.
        let _ = fields.append(name, value.as_bytes());
    }
    let response = OutgoingResponse::new(fields);
    let _ = response.set_status_code(head.status);
    let Ok(outgoing) = response.body() else {
        return;
    };
    ResponseOutparam::set(out, Ok(response));
    let Ok(stream) = outgoing.write() else {
        return;
    };
    let complete = match body {
        Body::Empty => true,
        Body::Bytes(bytes) => write_all(&stream, &bytes).is_ok(),
        // Straight into the answer (inside the host where it checks the
        // bytes): the last bytes go out only once the whole blob matched;
        // an upstream that broke or lied cuts the answer short.
        Body::Stream(reader) => match reader.write_to(&stream) {
            Ok(_) => true,
            Err(e) => {
                let error = ocirelay_core::error::printable(&e.to_string()).into_owned();
                eprintln!("{}", log::cut_short(what, &error));
                false
            }
        },
    };
    if complete && stream.blocking_flush().is_ok() {
        drop(stream);
        let _ = OutgoingBody::finish(outgoing, None);
    }
    // Otherwise the body is dropped unfinished: the host aborts the answer.
}

/// Writes all of `bytes`, as fast as the stream takes them.
fn write_all(stream: &OutputStream, mut bytes: &[u8]) -> Result<(), StreamError> {
    let ready = stream.subscribe();
    while !bytes.is_empty() {
        let room = stream.check_write()? as usize;
        if room == 0 {
            ready.block();
            continue;
        }
        let n = room.min(bytes.len());
        stream.write(&bytes[..n])?;
        bytes = &bytes[n..];
    }
    Ok(())
}
