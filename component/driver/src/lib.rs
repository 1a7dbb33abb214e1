//! The core's operations, performed over `wasi:http` inside a wasm32-wasip2
//! component: the one driver loop ([`driver`]), the transport ([`transport`],
//! request bodies pumped by `upload`), the component's own check of chunked
//! uploads ([`session_check`]), readers and writers of blobs ([`reader`],
//! [`writer`]), and a [`Client`] over them. The registry component exports it through WIT; the edge
//! service links it directly, so a request instantiates one component.

pub mod driver;
pub mod reader;
pub mod session_check;
pub mod transport;
mod upload;
pub mod writer;

use std::cell::{RefCell, RefMut};
use std::collections::HashMap;
use std::rc::Rc;

use ocirelay_core::http::RequestId;
use ocirelay_core::index::Index;
use ocirelay_core::ops::copy_referrers::{CopiedReferrers, CopyReferrers};
use ocirelay_core::ops::list_tags::{ListTags, TagList, TagsOptions};
use ocirelay_core::ops::lookup::{Body, Found, Lookup, LookupKind, LookupOptions};
use ocirelay_core::ops::push_blob::PushBlob;
use ocirelay_core::ops::read_range::{RangeRead, ReadRange};
use ocirelay_core::ops::referrers::{ListReferrers, Referrers};
use ocirelay_core::ops::synthesize_index::SynthesizeIndex;
use ocirelay_core::range::ByteRange;
use ocirelay_core::{json, Client as CoreClient, ClientConfig, Error, Operation, Reference};

pub use reader::BlobReader;
pub use transport::{BodyStream, SendOptions};
pub use writer::BlobWriter;

/// Bodies an operation held for its caller, by the request they answer.
pub type Held = HashMap<RequestId, BodyStream>;

/// A registry client: the core's shared state (tokens, cache) and how its
/// requests are sent. Blob readers and writers share it, to resume a read
/// that broke and to send a push's chunks.
pub struct Client {
    core: Rc<RefCell<CoreClient>>,
    send: SendOptions,
}

/// What a ranged read found (see [`ReadRange`]).
pub enum Range {
    /// The range covers the whole blob: read and checked as a lookup's.
    Whole(BlobReader),
    /// Bytes `first` to `last` (included) of the blob, checked for their
    /// length only.
    Part {
        /// The part's first byte in the blob.
        first: u64,
        /// Its last byte.
        last: u64,
        /// Its bytes.
        reader: BlobReader,
    },
    /// None of the range is in the blob (of this size, when said).
    Unsatisfiable(Option<u64>),
}

/// Where a blob is: read here, or at the URL its registry redirects to.
pub enum Located {
    /// Read, checked as it is.
    Read(Box<BlobReader>),
    /// At this URL (a redirect passed on; nothing read or checked here).
    Redirect(String),
}

impl Client {
    /// A client of `config`, sending as `send` says.
    pub fn new(config: ClientConfig, send: SendOptions) -> Self {
        Client {
            core: Rc::new(RefCell::new(CoreClient::new(config))),
            send,
        }
    }

    /// How it sends (for a client of another configuration that sends alike).
    pub fn send_options(&self) -> SendOptions {
        self.send
    }

    /// The core client, for building operations.
    pub fn core(&self) -> RefMut<'_, CoreClient> {
        self.core.borrow_mut()
    }

    /// Runs `op` to its end: its outcome, and the bodies it held.
    pub fn run<O: Operation>(&self, op: &mut O) -> Result<(O::Outcome, Held), Error> {
        let (outcome, held) = driver::run(&mut self.core(), op, self.send);
        Ok((outcome?, held))
    }

    /// A reader over a found object's content (a held body taken from `held`).
    pub fn reader(&self, found: Found, held: &mut Held) -> Result<BlobReader, Error> {
        BlobReader::found(found, held, &self.core, self.send)
    }

    /// Looks `reference` up; `None` when it does not exist.
    pub fn lookup(
        &self,
        reference: Reference,
        options: LookupOptions,
    ) -> Result<Option<BlobReader>, Error> {
        let mut op = Lookup::new(reference, options)?;
        let (found, mut held) = self.run(&mut op)?;
        found?.map(|f| self.reader(f, &mut held)).transpose()
    }

    /// Blob `reference` (by digest) read, or where its registry redirects
    /// the read to (blob storage: the URL, for a client to read and check
    /// itself); `None` when it does not exist. See
    /// [`Lookup::passing_redirects`] for which redirects are passed on.
    pub fn blob_or_redirect(&self, reference: Reference) -> Result<Option<Located>, Error> {
        let options = LookupOptions {
            kind: LookupKind::Blob,
            head: false,
        };
        let mut op = Lookup::new(reference, options)?.passing_redirects();
        let (found, mut held) = self.run(&mut op)?;
        let Some(found) = found? else {
            return Ok(None);
        };
        Ok(Some(match found.body {
            Body::Redirect(to) => Located::Redirect(to.to_string()),
            _ => Located::Read(Box::new(self.reader(found, &mut held)?)),
        }))
    }

    /// Whatever `reference` points at as an index; `None` when it does not exist.
    pub fn synthesize_index(&self, reference: Reference) -> Result<Option<Index>, Error> {
        let mut op = SynthesizeIndex::new(reference);
        let (index, _) = self.run(&mut op)?;
        index
    }

    /// The manifest at `reference` as JSON, as `ocirelay lookup --type
    /// manifest` prints it; `None` when it does not exist.
    pub fn manifest_json(&self, reference: Reference) -> Result<Option<String>, Error> {
        let mut op = Lookup::new(reference.clone(), LookupOptions::default())?;
        let (found, _) = self.run(&mut op)?;
        let Some(found) = found? else {
            return Ok(None);
        };
        let Body::Bytes(bytes) = found.body else {
            return Err(Error::Internal(format!(
                "{reference}: a manifest lookup gave no content"
            )));
        };
        Ok(Some(json::manifest(&reference.to_string(), &bytes)?))
    }

    /// The tags of `repository`; `None` when it does not exist.
    pub fn list_tags(
        &self,
        repository: Reference,
        options: TagsOptions,
    ) -> Result<Option<TagList>, Error> {
        let mut op = ListTags::new(&self.core(), repository, options);
        let (list, _) = self.run(&mut op)?;
        list
    }

    /// The referrers of `subject` (its digest; a tag is resolved with a
    /// HEAD first), only those of `artifact_type` when given; `None` when
    /// the subject's tag does not exist.
    pub fn referrers(
        &self,
        subject: Reference,
        artifact_type: Option<String>,
    ) -> Result<Option<Referrers>, Error> {
        let digest = match &subject.digest {
            Some(digest) => digest.clone(),
            None => {
                let head = LookupOptions {
                    head: true,
                    ..LookupOptions::default()
                };
                match self.lookup(subject.clone(), head)? {
                    Some(found) => found.descriptor().digest.clone(),
                    None => return Ok(None),
                }
            }
        };
        let mut op = ListReferrers::new(&self.core(), subject, digest, artifact_type);
        let (referrers, _) = self.run(&mut op)?;
        referrers.map(Some)
    }

    /// Copies what refers to `source` into `destination`'s repository.
    pub fn copy_referrers(
        &self,
        source: Reference,
        destination: Reference,
    ) -> Result<CopiedReferrers, Error> {
        let mut op = CopyReferrers::new(source, destination);
        let (copied, _) = self.run(&mut op)?;
        copied
    }

    /// `range` of blob `reference` (by digest); `None` when it does not exist.
    pub fn read_range(
        &self,
        reference: Reference,
        range: ByteRange,
    ) -> Result<Option<Range>, Error> {
        let mut op = ReadRange::new(&self.core(), reference, range)?;
        let (read, mut held) = self.run(&mut op)?;
        Ok(match read? {
            None => None,
            Some(RangeRead::Whole(found)) => Some(Range::Whole(self.reader(found, &mut held)?)),
            Some(RangeRead::Part(part)) => Some(Range::Part {
                first: part.first,
                last: part.last,
                reader: BlobReader::part(part, &mut held)?,
            }),
            Some(RangeRead::Unsatisfiable { size }) => Some(Range::Unsatisfiable(size)),
        })
    }

    /// Starts pushing blob `reference` (by digest) of `size` bytes.
    pub fn push_blob(&self, reference: Reference, size: u64) -> Result<BlobWriter, Error> {
        let mut push = PushBlob::new(&self.core(), reference, size)?;
        let (outcome, _) = self.run(&mut push)?;
        outcome?;
        Ok(BlobWriter::new(self.core.clone(), self.send, push))
    }
}
