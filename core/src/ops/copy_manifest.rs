//! Copy-manifest: a manifest (image or index) and all its children from one
//! reference to another. The exact bytes and media type are kept, so no
//! digest changes.

use crate::client::Client;
use crate::descriptor::Descriptor;
use crate::error::Error;
use crate::http::{RequestId, Response, TransportError};
use crate::ops::ensure_manifest::{ChildRefs, EnsureManifest};
use crate::ops::lookup::{Body, Lookup};
use crate::ops::{pass, Operation, Output};
use crate::reference::Reference;

#[derive(Debug)]
enum Stage {
    Read(Box<Lookup>),
    Ensure(Box<EnsureManifest>),
    Finished,
}

/// The copy-manifest state machine.
#[derive(Debug)]
pub struct CopyManifest {
    source: Reference,
    destination: Reference,
    children: ChildRefs,
    media_type: Option<String>,
    stage: Stage,
}

impl CopyManifest {
    /// Copies `source` to `destination`; children not listed in `children`
    /// come from `source` (unless a fallback is given).
    pub fn new(source: Reference, destination: Reference, children: ChildRefs) -> Self {
        let read = Lookup::manifest(source.clone(), false);
        CopyManifest {
            source,
            destination,
            children,
            media_type: None,
            stage: Stage::Read(Box::new(read)),
        }
    }

    /// Pushes with this media type instead of the one the source reports
    /// (an index entry's own, as the seed does for children).
    pub fn with_media_type(mut self, media_type: &str) -> Self {
        if !media_type.is_empty() {
            self.media_type = Some(media_type.to_string());
        }
        self
    }
}

impl Operation for CopyManifest {
    type Outcome = Descriptor;

    fn poll_output(&mut self, client: &mut Client) -> Output<Descriptor> {
        loop {
            match std::mem::replace(&mut self.stage, Stage::Finished) {
                Stage::Read(mut lookup) => match lookup.poll_output(client) {
                    Output::Done(Ok(Some(found))) => {
                        let Body::Bytes(bytes) = found.body else {
                            return Output::Done(Err(Error::Protocol {
                                subject: self.source.to_string(),
                                detail: "manifest content missing".into(),
                            }));
                        };
                        let media_type = self
                            .media_type
                            .take()
                            .unwrap_or(found.descriptor.media_type);
                        let mut children = std::mem::take(&mut self.children);
                        children.fallback.get_or_insert_with(|| self.source.clone());
                        match EnsureManifest::new(
                            self.destination.clone(),
                            bytes,
                            &media_type,
                            children,
                        ) {
                            Ok(op) => self.stage = Stage::Ensure(Box::new(op)),
                            Err(e) => return Output::Done(Err(e)),
                        }
                    }
                    Output::Done(Ok(None)) => {
                        return Output::Done(Err(Error::InvalidInput(format!(
                            "{}: manifest not found",
                            self.source
                        ))))
                    }
                    Output::Done(Err(e)) => return Output::Done(Err(e)),
                    other => {
                        self.stage = Stage::Read(lookup);
                        return pass(other);
                    }
                },
                Stage::Ensure(mut op) => {
                    let out = op.poll_output(client);
                    if !matches!(out, Output::Done(_)) {
                        self.stage = Stage::Ensure(op);
                    }
                    return out;
                }
                Stage::Finished => return Output::Wait,
            }
        }
    }

    fn handle_response(
        &mut self,
        client: &mut Client,
        id: RequestId,
        response: std::result::Result<Response, TransportError>,
    ) {
        match &mut self.stage {
            Stage::Read(lookup) => lookup.handle_response(client, id, response),
            Stage::Ensure(op) => op.handle_response(client, id, response),
            Stage::Finished => {}
        }
    }
}
