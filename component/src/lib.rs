//! ocirelay as a WebAssembly component: exports the `ocirelay:registry`
//! world and performs the core's requests over `wasi:http`. It imports only
//! standard WASI interfaces, so any wasi-http host can run it.

mod convert;
mod deploy;
mod driver;
mod transport;

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use ocirelay_core::digest::Verifier;
use ocirelay_core::http::RequestId;
use ocirelay_core::json;
use ocirelay_core::ops::batch::{Answer, Batch};
use ocirelay_core::ops::copy_blob::CopyBlob;
use ocirelay_core::ops::copy_manifest::CopyManifest;
use ocirelay_core::ops::deploy::{Deploy, DeployOptions};
use ocirelay_core::ops::ensure_blob::{BlobSource, EnsureBlob};
use ocirelay_core::ops::ensure_manifest::EnsureManifest;
use ocirelay_core::ops::lookup::{Body, Found, Lookup, LookupOptions};
use ocirelay_core::ops::push_blob::PushBlob;
use ocirelay_core::ops::resume_blob::{self, ResumeBlob};
use ocirelay_core::ops::synthesize_index::SynthesizeIndex;
use ocirelay_core::{Client as CoreClient, ClientConfig, Descriptor, Operation, Reference};

use bindings::exports::ocirelay::registry::registry as wit;
use transport::{BodyStream, SendOptions};

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
    type BlobWriter = BlobWriter;
    type BlobReader = BlobReader;

    fn parse_ref(text: String) -> Result<wit::Reference, wit::Error> {
        Ok((&Reference::parse(&text)?).into())
    }
}

/// One client: the core's shared state (tokens, cache). Blob readers share
/// it too, to resume a read that broke.
struct ClientResource {
    core: Rc<RefCell<CoreClient>>,
    /// How requests are sent (uploads hashed here or not, timeouts).
    send: SendOptions,
    /// What is wrong with the configuration, if anything: a constructor
    /// cannot fail, so every call answers with it instead.
    config_error: Option<wit::Error>,
}

impl wit::GuestClient for ClientResource {
    fn new(config: wit::Config) -> Self {
        let send = SendOptions {
            hash_uploads: !config.uploads_verified_by_host,
            timeout: (config.request_timeout_secs > 0)
                .then(|| Duration::from_secs(config.request_timeout_secs.into())),
        };
        let (config, config_error) = match ClientConfig::try_from(config) {
            Ok(c) => (c, None),
            Err(e) => (ClientConfig::default(), Some(e.into())),
        };
        ClientResource {
            core: Rc::new(RefCell::new(CoreClient::new(config))),
            send,
            config_error,
        }
    }

    fn lookup(
        &self,
        reference: wit::Reference,
        options: wit::LookupOptions,
    ) -> Result<Option<wit::BlobReader>, wit::Error> {
        let mut op = Lookup::new((&reference).try_into()?, options.into())?;
        let (found, mut held) = self.run(&mut op)?;
        found?.map(|f| self.reader(f, &mut held)).transpose()
    }

    fn synthesize_index(
        &self,
        reference: wit::Reference,
    ) -> Result<Option<wit::Index>, wit::Error> {
        let mut op = SynthesizeIndex::new((&reference).try_into()?);
        let (index, _) = self.run(&mut op)?;
        Ok(index?.as_ref().map(Into::into))
    }

    fn synthesize_index_json(
        &self,
        reference: wit::Reference,
    ) -> Result<Option<String>, wit::Error> {
        let mut op = SynthesizeIndex::new((&reference).try_into()?);
        let (index, _) = self.run(&mut op)?;
        Ok(index?.as_ref().map(json::to_string).transpose()?)
    }

    fn manifest_json(&self, reference: wit::Reference) -> Result<Option<String>, wit::Error> {
        let reference = Reference::try_from(&reference)?;
        let mut op = Lookup::new(reference.clone(), LookupOptions::default())?;
        let (found, _) = self.run(&mut op)?;
        let Some(found) = found? else {
            return Ok(None);
        };
        let Body::Bytes(bytes) = found.body else {
            return Err(wit::Error::Internal(format!(
                "{reference}: a manifest lookup gave no content"
            )));
        };
        Ok(Some(json::manifest(&reference.to_string(), &bytes)?))
    }

    fn copy_manifest(
        &self,
        src: wit::Reference,
        dst: wit::Reference,
        children: wit::ChildRefs,
    ) -> Result<wit::Descriptor, wit::Error> {
        let mut op = CopyManifest::new(
            (&src).try_into()?,
            (&dst).try_into()?,
            (&children).try_into()?,
        );
        self.descriptor(&mut op)
    }

    fn copy_blob(
        &self,
        src: wit::Reference,
        dst: wit::Reference,
    ) -> Result<wit::Descriptor, wit::Error> {
        let mut op = CopyBlob::new((&src).try_into()?, (&dst).try_into()?, None)?;
        self.descriptor(&mut op)
    }

    fn ensure_manifest(
        &self,
        reference: wit::Reference,
        manifest: Vec<u8>,
        media_type: String,
        children: wit::ChildRefs,
    ) -> Result<wit::Descriptor, wit::Error> {
        let reference = (&reference).try_into()?;
        let mut op =
            EnsureManifest::new(reference, manifest, &media_type, (&children).try_into()?)?;
        self.descriptor(&mut op)
    }

    fn ensure_blob(
        &self,
        reference: wit::Reference,
        content: Vec<u8>,
    ) -> Result<wit::Descriptor, wit::Error> {
        let reference = (&reference).try_into()?;
        let mut op = EnsureBlob::new(
            &*self.client()?,
            reference,
            BlobSource::Bytes(content.into()),
        )?;
        self.descriptor(&mut op)
    }

    fn deploy(
        &self,
        input: String,
        options: wit::DeployOptions,
    ) -> Result<Vec<wit::DeployResult>, wit::Error> {
        let inputs = ocirelay_core::deploy::normalize_stream(&input)?;
        let run = DeployOptions {
            dry_run: options.dry_run,
            parallel: options.parallel,
        };
        let mut op = Deploy::new(&*self.client()?, inputs, run);
        let mut printed = deploy::WithProgress {
            deploy: &mut op,
            print: options.progress,
        };
        let (outcomes, _) = self.run(&mut printed)?;
        Ok(deploy::results(&op, outcomes))
    }

    fn push_blob(
        &self,
        reference: wit::Reference,
        size: u64,
    ) -> Result<wit::BlobWriter, wit::Error> {
        let mut push = PushBlob::new(&*self.client()?, (&reference).try_into()?, size)?;
        let (outcome, _) = self.run(&mut push)?;
        outcome?;
        Ok(wit::BlobWriter::new(BlobWriter {
            core: self.core.clone(),
            send: self.send,
            push: RefCell::new(push),
            pending: RefCell::new(Vec::new()),
        }))
    }

    fn batch(&self, queries: Vec<wit::Query>) -> Vec<Result<Option<wit::Answer>, wit::Error>> {
        // Queries with a broken reference fail alone; the rest run together.
        let mut op = Batch::new(queries.iter().map(TryInto::try_into));
        let (answers, mut held) = match self.run(&mut op) {
            Ok(done) => done,
            Err(e) => return queries.iter().map(|_| Err(e.clone())).collect(),
        };
        let mut answer = |a| match a {
            Answer::Found(found) => self.reader(found, &mut held).map(wit::Answer::Found),
            Answer::Index(index) => Ok(wit::Answer::Index((&index).into())),
        };
        answers
            .into_iter()
            .map(|outcome| outcome?.map(&mut answer).transpose())
            .collect()
    }
}

impl ClientResource {
    /// The core client, unless the configuration was bad.
    fn client(&self) -> Result<std::cell::RefMut<'_, CoreClient>, wit::Error> {
        match &self.config_error {
            Some(e) => Err(e.clone()),
            None => Ok(self.core.borrow_mut()),
        }
    }

    /// Runs `op` to its end on this client: its outcome, and the bodies it
    /// held for the caller.
    fn run<O: Operation>(
        &self,
        op: &mut O,
    ) -> Result<(O::Outcome, HashMap<RequestId, BodyStream>), wit::Error> {
        let (outcome, held) = driver::run(&mut *self.client()?, op, self.send);
        Ok((outcome?, held))
    }

    /// Runs `op`, an operation that yields a descriptor.
    fn descriptor<O: Operation<Outcome = ocirelay_core::Result<Descriptor>>>(
        &self,
        op: &mut O,
    ) -> Result<wit::Descriptor, wit::Error> {
        let (d, _) = self.run(op)?;
        Ok((&d?).into())
    }

    /// A reader over a found object's content (held bodies are taken from
    /// the driver's).
    fn reader(
        &self,
        found: Found,
        held: &mut HashMap<RequestId, BodyStream>,
    ) -> Result<wit::BlobReader, wit::Error> {
        let content = match found.body {
            Body::Empty => Content::Bytes(bytes::Bytes::new(), 0),
            Body::Bytes(bytes) => Content::Bytes(bytes, 0),
            Body::Stream { request, verifier } => {
                let stream = held.remove(&request).ok_or_else(|| {
                    wit::Error::Internal("blob body went missing in the driver".into())
                })?;
                Content::Stream {
                    stream,
                    verifier: Some(verifier),
                    resume: Resume {
                        client: self.core.clone(),
                        send: self.send,
                        reference: found.reference,
                        size: found.descriptor.size,
                        tries: 0,
                    },
                }
            }
        };
        Ok(wit::BlobReader::new(BlobReader {
            descriptor: found.descriptor,
            content: RefCell::new(content),
        }))
    }
}

enum Content {
    /// Verified bytes and the read position.
    Bytes(bytes::Bytes, usize),
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
    send: SendOptions,
    /// The blob, by digest.
    reference: Reference,
    size: u64,
    tries: u32,
}

impl Resume {
    /// A stream of the blob from byte `offset` on (asked for by `Range`;
    /// when the registry sends the whole blob instead, the bytes before
    /// `offset` are read and dropped).
    fn reopen(&mut self, offset: u64) -> Result<BodyStream, wit::Error> {
        self.tries += 1;
        let mut client = self.client.borrow_mut();
        let mut op = ResumeBlob::new(&client, &self.reference, offset, self.size)?;
        let (outcome, mut held) = driver::run(&mut client, &mut op, self.send);
        let resumed = outcome??;
        let mut stream = held.remove(&resumed.request).ok_or_else(|| {
            wit::Error::Internal("resumed blob body went missing in the driver".into())
        })?;
        let mut skip = resumed.skip;
        while skip > 0 {
            let broken =
                |message: String| wit::Error::Transport(format!("{}: {message}", self.reference));
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
    descriptor: Descriptor,
    content: RefCell<Content>,
}

impl wit::GuestBlobReader for BlobReader {
    fn descriptor(&self) -> wit::Descriptor {
        (&self.descriptor).into()
    }

    fn descriptor_json(&self) -> String {
        // A descriptor always serializes (string keys, plain values).
        json::to_string(&self.descriptor).unwrap_or_default()
    }

    fn read(&self, max: u64) -> Result<Vec<u8>, wit::Error> {
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
                            return Err(wit::Error::Transport(format!("{digest}: {}", e.message)));
                        }
                    }
                };
                match chunk {
                    Some(chunk) => {
                        v.update(&chunk)?;
                        Ok(chunk)
                    }
                    None => {
                        // The end: the whole must match before we say so.
                        if let Some(v) = verifier.take() {
                            v.finish()?;
                        }
                        Ok(Vec::new())
                    }
                }
            }
        }
    }
}

/// Written bytes are gathered up to this size before they go out as one
/// PATCH, so an embedder may write small pieces (cheaper for some bindings)
/// without a request each; a larger chunk goes out as it is.
const PATCH_SIZE: usize = 1 << 20;

/// A blob pushed a chunk at a time: each PATCH runs one step of the push on
/// the client's core, so at most a chunk (or `PATCH_SIZE`) is held here.
struct BlobWriter {
    core: Rc<RefCell<CoreClient>>,
    send: SendOptions,
    push: RefCell<PushBlob>,
    /// Written, not sent yet.
    pending: RefCell<Vec<u8>>,
}

impl BlobWriter {
    /// Sends `bytes` as the push's next chunk (one PATCH).
    fn send(&self, push: &mut PushBlob, bytes: Vec<u8>) -> Result<(), wit::Error> {
        push.write(&self.core.borrow(), bytes.into())?;
        let mut client = self.core.borrow_mut();
        let (outcome, _) = driver::run(&mut client, push, self.send);
        outcome??;
        Ok(())
    }
}

impl wit::GuestBlobWriter for BlobWriter {
    fn write(&self, chunk: Vec<u8>) -> Result<bool, wit::Error> {
        let mut push = self.push.borrow_mut();
        if push.present().is_some() {
            return Ok(false);
        }
        let mut pending = self.pending.borrow_mut();
        if pending.is_empty() && chunk.len() >= PATCH_SIZE {
            self.send(&mut push, chunk)?;
        } else {
            pending.extend_from_slice(&chunk);
            if pending.len() >= PATCH_SIZE {
                self.send(&mut push, std::mem::take(&mut *pending))?;
            }
        }
        Ok(true)
    }

    fn finish(&self) -> Result<wit::Descriptor, wit::Error> {
        let mut push = self.push.borrow_mut();
        if let Some(d) = push.present() {
            return Ok(d.into());
        }
        let rest = std::mem::take(&mut *self.pending.borrow_mut());
        if !rest.is_empty() {
            self.send(&mut push, rest)?;
        }
        push.finish(&self.core.borrow())?;
        let mut client = self.core.borrow_mut();
        let (outcome, _) = driver::run(&mut client, &mut *push, self.send);
        outcome??
            .as_ref()
            .map(Into::into)
            .ok_or_else(|| wit::Error::Internal("a completed push gave no descriptor".into()))
    }
}
