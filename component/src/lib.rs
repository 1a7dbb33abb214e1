//! ocirelay as a WebAssembly component: exports the `ocirelay:registry`
//! world and performs the core's requests over `wasi:http`. It imports only
//! standard WASI interfaces, so any wasi-http host can run it.

mod convert;
mod driver;
mod transport;

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use ocirelay_core::digest::Verifier;

use ocirelay_core::http::RequestId;
use ocirelay_core::ops::batch::{Answer, Batch, Query};
use ocirelay_core::ops::copy_blob::CopyBlob;
use ocirelay_core::ops::copy_manifest::CopyManifest;
use ocirelay_core::ops::ensure_blob::{BlobSource, EnsureBlob};
use ocirelay_core::ops::ensure_manifest::EnsureManifest;
use ocirelay_core::ops::lookup::{Body, Found, Lookup};
use ocirelay_core::ops::resume_blob::{self, ResumeBlob};
use ocirelay_core::ops::synthesize_index::SynthesizeIndex;
use ocirelay_core::{Client as CoreClient, ClientConfig, Reference};

use bindings::exports::ocirelay::registry::registry as wit;
use bindings::exports::ocirelay::registry::registry as wt;
use transport::BodyStream;

mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "relay",
    });
    use super::Component;
    export!(Component);
}

struct Component;

impl wit::Guest for Component {
    type Client = ClientResource;
    type BlobReader = BlobReader;

    fn parse_ref(text: String) -> Result<wt::Reference, wt::Error> {
        Reference::parse(&text)
            .map(|r| convert::reference_to_wit(&r))
            .map_err(convert::error)
    }
}

/// One client: the core's shared state (tokens, cache). Blob readers share
/// it too, to resume a read that broke.
struct ClientResource {
    core: Rc<RefCell<CoreClient>>,
    /// What is wrong with the configuration, if anything: a constructor
    /// cannot fail, so every call answers with it instead.
    config_error: Option<wt::Error>,
}

impl wit::GuestClient for ClientResource {
    fn new(config: wit::Config) -> Self {
        let (config, config_error) = match convert::config_from_wit(config) {
            Ok(c) => (c, None),
            Err(e) => (ClientConfig::default(), Some(convert::error(e))),
        };
        ClientResource {
            core: Rc::new(RefCell::new(CoreClient::new(config))),
            config_error,
        }
    }

    fn lookup(
        &self,
        reference: wt::Reference,
        options: wit::LookupOptions,
    ) -> Result<Option<wit::BlobReader>, wt::Error> {
        let reference = convert::reference_from_wit(&reference).map_err(convert::error)?;
        let mut op = Lookup::new(reference.clone(), convert::lookup_options(options))
            .map_err(convert::error)?;
        let (outcome, mut held) = driver::run(&mut *self.client()?, &mut op);
        match outcome.map_err(convert::error)? {
            Some(found) => Ok(Some(self.reader(found, reference, &mut held)?)),
            None => Ok(None),
        }
    }

    fn synthesize_index(&self, reference: wt::Reference) -> Result<Option<wt::Index>, wt::Error> {
        let reference = convert::reference_from_wit(&reference).map_err(convert::error)?;
        let mut op = SynthesizeIndex::new(reference);
        let (outcome, _) = driver::run(&mut *self.client()?, &mut op);
        Ok(outcome
            .map_err(convert::error)?
            .map(|i| convert::index_to_wit(&i)))
    }

    fn copy_manifest(
        &self,
        src: wt::Reference,
        dst: wt::Reference,
        children: wit::ChildRefs,
    ) -> Result<wt::Descriptor, wt::Error> {
        let src = convert::reference_from_wit(&src).map_err(convert::error)?;
        let dst = convert::reference_from_wit(&dst).map_err(convert::error)?;
        let children = convert::child_refs(children).map_err(convert::error)?;
        self.run(&mut CopyManifest::new(src, dst, children))
    }

    fn copy_blob(
        &self,
        src: wt::Reference,
        dst: wt::Reference,
    ) -> Result<wt::Descriptor, wt::Error> {
        let src = convert::reference_from_wit(&src).map_err(convert::error)?;
        let dst = convert::reference_from_wit(&dst).map_err(convert::error)?;
        let mut op = CopyBlob::new(&*self.client()?, src, dst, None).map_err(convert::error)?;
        self.run(&mut op)
    }

    fn ensure_manifest(
        &self,
        reference: wt::Reference,
        manifest: Vec<u8>,
        media_type: String,
        children: wit::ChildRefs,
    ) -> Result<wt::Descriptor, wt::Error> {
        let reference = convert::reference_from_wit(&reference).map_err(convert::error)?;
        let children = convert::child_refs(children).map_err(convert::error)?;
        let mut op = EnsureManifest::new(reference, manifest, &media_type, children)
            .map_err(convert::error)?;
        self.run(&mut op)
    }

    fn ensure_blob(
        &self,
        reference: wt::Reference,
        content: Vec<u8>,
    ) -> Result<wt::Descriptor, wt::Error> {
        let reference = convert::reference_from_wit(&reference).map_err(convert::error)?;
        let size = content.len() as u64;
        let mut op = EnsureBlob::new(
            &*self.client()?,
            reference,
            size,
            BlobSource::Bytes(content),
        )
        .map_err(convert::error)?;
        self.run(&mut op)
    }

    fn batch(&self, queries: Vec<wit::Query>) -> Vec<Result<Option<wit::Answer>, wt::Error>> {
        let mut client = match self.client() {
            Ok(c) => c,
            Err(e) => return queries.iter().map(|_| Err(e.clone())).collect(),
        };
        // Queries with a broken reference fail alone; the rest run together.
        let mut parsed = Vec::with_capacity(queries.len());
        // Each query's reference, for a reader of what it finds.
        let mut references = Vec::with_capacity(queries.len());
        let mut early: Vec<Option<wt::Error>> = Vec::with_capacity(queries.len());
        for q in queries {
            let query = match q {
                wit::Query::Lookup((r, options)) => convert::reference_from_wit(&r)
                    .map(|r| Query::Lookup(r, convert::lookup_options(options))),
                wit::Query::SynthesizeIndex(r) => {
                    convert::reference_from_wit(&r).map(Query::SynthesizeIndex)
                }
            };
            match query {
                Ok(q) => {
                    references.push(match &q {
                        Query::Lookup(r, _) | Query::SynthesizeIndex(r) => r.clone(),
                    });
                    parsed.push(q);
                    early.push(None);
                }
                Err(e) => early.push(Some(convert::error(e))),
            }
        }
        let mut op = Batch::new(parsed);
        let (outcome, mut held) = driver::run(&mut client, &mut op);
        drop(client);
        let mut answers = match outcome {
            Ok(answers) => answers.into_iter().zip(references),
            Err(e) => {
                let e = convert::error(e);
                return early
                    .into_iter()
                    .map(|x| Err(x.unwrap_or_else(|| e.clone())))
                    .collect();
            }
        };
        early
            .into_iter()
            .map(|failed| match failed {
                Some(e) => Err(e),
                None => match answers.next() {
                    Some((Ok(Some(Answer::Found(found))), reference)) => self
                        .reader(found, reference, &mut held)
                        .map(|r| Some(wit::Answer::Found(r))),
                    Some((Ok(Some(Answer::Index(index))), _)) => {
                        Ok(Some(wit::Answer::Index(convert::index_to_wit(&index))))
                    }
                    Some((Ok(None), _)) => Ok(None),
                    Some((Err(e), _)) => Err(convert::error(e)),
                    None => Err(wt::Error::Protocol("batch lost an answer".into())),
                },
            })
            .collect()
    }
}

impl ClientResource {
    /// The core client, unless the configuration was bad.
    fn client(&self) -> Result<std::cell::RefMut<'_, CoreClient>, wt::Error> {
        match &self.config_error {
            Some(e) => Err(e.clone()),
            None => Ok(self.core.borrow_mut()),
        }
    }

    /// A reader over a found object's content (held bodies are taken from
    /// the driver's); `reference` is what was looked up, for resuming.
    fn reader(
        &self,
        found: Found,
        reference: Reference,
        held: &mut HashMap<RequestId, BodyStream>,
    ) -> Result<wit::BlobReader, wt::Error> {
        let content = match found.body {
            Body::Empty => Content::Bytes(Vec::new(), 0),
            Body::Bytes(bytes) => Content::Bytes(bytes, 0),
            Body::Stream { request, verifier } => match held.remove(&request) {
                Some(stream) => Content::Stream {
                    stream,
                    verifier: Some(verifier),
                    resume: Resume {
                        client: self.core.clone(),
                        reference: reference.with_digest(found.descriptor.digest.clone()),
                        size: found.descriptor.size,
                        tries: 0,
                    },
                },
                None => {
                    return Err(wt::Error::Protocol(
                        "blob body went missing in the driver".into(),
                    ))
                }
            },
        };
        Ok(wit::BlobReader::new(BlobReader {
            descriptor: convert::descriptor_to_wit(&found.descriptor),
            content: RefCell::new(content),
        }))
    }

    /// Runs `op` to its end on this client, for operations that yield a descriptor.
    fn run<O: ocirelay_core::Operation<Outcome = ocirelay_core::Descriptor>>(
        &self,
        op: &mut O,
    ) -> Result<wt::Descriptor, wt::Error> {
        let (outcome, _) = driver::run(&mut *self.client()?, op);
        outcome
            .map(|d| convert::descriptor_to_wit(&d))
            .map_err(convert::error)
    }
}

enum Content {
    /// Verified bytes and the read position.
    Bytes(Vec<u8>, usize),
    /// A body read straight from the registry; the verifier is taken at the end.
    Stream {
        stream: BodyStream,
        verifier: Option<Box<Verifier>>,
        resume: Resume,
    },
}

/// What it takes to read a blob again from where its stream broke.
struct Resume {
    client: Rc<RefCell<CoreClient>>,
    /// The blob, by digest.
    reference: Reference,
    size: u64,
    tries: u32,
}

impl Resume {
    /// A stream of the blob from byte `offset` on (asked for by `Range`;
    /// when the registry sends the whole blob instead, the bytes before
    /// `offset` are read and dropped).
    fn reopen(&mut self, offset: u64) -> Result<BodyStream, wt::Error> {
        self.tries += 1;
        let mut client = self.client.borrow_mut();
        let mut op =
            ResumeBlob::new(&client, &self.reference, offset, self.size).map_err(convert::error)?;
        let (outcome, mut held) = driver::run(&mut client, &mut op);
        let resumed = outcome.map_err(convert::error)?;
        let mut stream = held.remove(&resumed.request).ok_or_else(|| {
            wt::Error::Protocol("resumed blob body went missing in the driver".into())
        })?;
        let mut skip = resumed.skip;
        while skip > 0 {
            let broken =
                |message: String| wt::Error::Transport(format!("{}: {message}", self.reference));
            match stream
                .read(skip.min(1 << 20))
                .map_err(|e| broken(e.message))?
            {
                Some(chunk) => skip -= chunk.len() as u64,
                None => return Err(broken("the blob ended early when read again".into())),
            }
        }
        Ok(stream)
    }
}

/// A found object's descriptor and content, checked as it is read.
struct BlobReader {
    descriptor: wt::Descriptor,
    content: RefCell<Content>,
}

impl wit::GuestBlobReader for BlobReader {
    fn descriptor(&self) -> wt::Descriptor {
        self.descriptor.clone()
    }

    fn read(&self, max: u64) -> Result<Vec<u8>, wt::Error> {
        let max = max.clamp(1, 16 * 1024 * 1024);
        match &mut *self.content.borrow_mut() {
            Content::Bytes(bytes, pos) => {
                let end = (*pos + max as usize).min(bytes.len());
                let chunk = bytes[*pos..end].to_vec();
                *pos = end;
                Ok(chunk)
            }
            Content::Stream {
                stream,
                verifier,
                resume,
            } => {
                let Some(v) = verifier.as_mut() else {
                    return Ok(Vec::new());
                };
                let chunk = loop {
                    match stream.read(max) {
                        Ok(chunk) => break chunk,
                        // The connection broke: read on from where it did.
                        Err(e) if resume_blob::resumable(&e, resume.tries) => {
                            *stream = resume.reopen(v.seen())?;
                        }
                        Err(e) => {
                            let digest = &self.descriptor.digest;
                            return Err(wt::Error::Transport(format!("{digest}: {}", e.message)));
                        }
                    }
                };
                match chunk {
                    Some(chunk) => {
                        v.update(&chunk).map_err(convert::error)?;
                        Ok(chunk)
                    }
                    None => {
                        // The end: the whole must match before we say so.
                        if let Some(v) = verifier.take() {
                            v.finish().map_err(convert::error)?;
                        }
                        Ok(Vec::new())
                    }
                }
            }
        }
    }
}
