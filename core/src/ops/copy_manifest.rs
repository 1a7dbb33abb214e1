//! Copy-manifest: a manifest (image or index) and all its children from one
//! reference to another. The exact bytes and media type are kept, so no
//! digest changes.

use crate::client::Client;
use crate::descriptor::Descriptor;
use crate::error::{Error, Result};
use crate::ops::ensure_manifest::{ChildRefs, EnsureManifest};
use crate::ops::lookup::{Body, Found, Lookup};
use crate::ops::{Operation, Output, Step};
use crate::reference::Reference;
use crate::{advance, ready};

#[derive(Debug)]
enum Stage {
    /// Reading the source.
    Read(Box<Lookup>),
    /// Ensuring it at the destination.
    Ensure(Box<EnsureManifest>),
}

/// The copy-manifest state machine.
#[derive(Debug)]
pub struct CopyManifest {
    source: Reference,
    destination: Reference,
    children: ChildRefs,
    media_type: Option<String>,
    /// How many manifests up it is a child of (0: the one asked for).
    depth: u8,
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
            depth: 0,
            stage: Stage::Read(Box::new(read)),
        }
    }

    /// A child this deep in the copy of another (see
    /// [`MAX_NESTING`](crate::ops::ensure_manifest::MAX_NESTING)).
    pub(crate) fn at_depth(mut self, depth: u8) -> Self {
        self.depth = depth;
        self
    }

    /// Pushes with this media type instead of the one the source reports
    /// (an index entry's own, as the original tool does for children).
    pub fn with_media_type(mut self, media_type: &str) -> Self {
        if !media_type.is_empty() {
            self.media_type = Some(media_type.to_string());
        }
        self
    }

    fn read(&mut self, found: Option<Found>) -> Result<Step<Stage, Descriptor>> {
        let found = found.ok_or_else(|| Error::not_found(self.source.to_string()))?;
        let Body::Bytes(bytes) = found.body else {
            return Err(Error::Internal(format!(
                "{}: manifest content missing",
                self.source
            )));
        };
        let media_type = self
            .media_type
            .take()
            .unwrap_or(found.descriptor.media_type);
        let mut children = std::mem::take(&mut self.children);
        children.fallback.get_or_insert_with(|| self.source.clone());
        let ensure = EnsureManifest::new(self.destination.clone(), bytes, &media_type, children)?
            .at_depth(self.depth)?;
        Ok(Step::Next(Stage::Ensure(Box::new(ensure))))
    }
}

impl Operation for CopyManifest {
    type Outcome = Result<Descriptor>;

    fn poll_output(&mut self, client: &mut Client) -> Output<Result<Descriptor>> {
        loop {
            match &mut self.stage {
                Stage::Read(lookup) => {
                    let found = ready!(lookup.poll_output(client));
                    advance!(self.stage, found.and_then(|f| self.read(f)));
                }
                Stage::Ensure(ensure) => {
                    let ensured = ready!(ensure.poll_output(client));
                    advance!(self.stage, ensured.map(Step::Done));
                }
            }
        }
    }
}
