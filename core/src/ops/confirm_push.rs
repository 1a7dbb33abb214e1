//! Confirm-push: what a push's success answer proves. A 201 whose
//! `Docker-Content-Digest` names what was pushed is trusted (no extra
//! request, the common case); one without a digest, or naming another, is
//! checked with one HEAD of what was pushed, which must be there with its
//! digest and size. Used by ensure-blob and ensure-manifest alike.

use crate::client::Client;
use crate::descriptor::Descriptor;
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::http::Response;
use crate::ops::lookup::Lookup;
use crate::ops::{Operation, Output};
use crate::ready;
use crate::reference::Reference;

/// The HEAD that checks a 201 which confirmed nothing.
#[derive(Debug)]
pub struct ConfirmPush {
    head: Box<Lookup>,
    /// The digest the 201 named, if any (quoted in the error).
    claimed: Option<String>,
    /// What was pushed: its digest, and its size when known.
    digest: Digest,
    size: Option<u64>,
    /// What the error names.
    subject: String,
}

impl ConfirmPush {
    /// After the success `response` to a push of `digest` (of `size` when
    /// known) to `subject`: `None` when the response names that digest,
    /// else the check, made by `head()` (a HEAD of what was pushed, by
    /// digest).
    pub fn after(
        response: &Response,
        head: impl FnOnce() -> Lookup,
        digest: &Digest,
        size: Option<u64>,
        subject: &Reference,
    ) -> Option<ConfirmPush> {
        let claimed = response.headers.get("docker-content-digest");
        let claimed = claimed.map(|c| c.trim().to_string());
        if claimed.as_deref() == Some(&digest.to_string()) {
            return None;
        }
        Some(ConfirmPush {
            head: Box::new(head()),
            claimed,
            digest: digest.clone(),
            size,
            subject: subject.to_string(),
        })
    }
}

impl Operation for ConfirmPush {
    /// What the registry holds, as its HEAD describes it.
    type Outcome = Result<Descriptor>;

    fn poll_output(&mut self, client: &mut Client) -> Output<Result<Descriptor>> {
        let found = match ready!(self.head.poll_output(client)) {
            Ok(found) => found,
            Err(e) => return Output::Done(Err(e)),
        };
        let held = found
            .map(|f| f.descriptor)
            .filter(|d| d.digest == self.digest && self.size.is_none_or(|size| size == d.size));
        Output::Done(held.ok_or_else(|| {
            let said = self.claimed.as_ref().map_or_else(
                || "201 without a digest".to_string(),
                |c| format!("201 for {c}"),
            );
            Error::integrity(
                self.subject.clone(),
                format!(
                    "pushed {}: the registry answered {said}, yet does not have it",
                    self.digest
                ),
            )
        }))
    }
}
