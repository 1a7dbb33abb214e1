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
use ocirelay_core::http::TransportErrorKind;
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
use ocirelay_core::{
    Client as CoreClient, ClientConfig, Descriptor, Digest, Error, Operation, Reference,
};
use wasi::io::streams::{OutputStream, StreamError};

use bindings::exports::ocirelay::registry::registry as wit;
use transport::{BodyStream, SendOptions};

mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "relay",
        // The streams the `wasi` crate binds: one resource type for both.
        with: {
            "wasi:io/error@0.2.12": wasi::io::error,
            "wasi:io/poll@0.2.12": wasi::io::poll,
            "wasi:io/streams@0.2.12": wasi::io::streams,
        },
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
            host_checks_downloads: config.downloads_verified_by_host,
            resume_check: None,
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
                let check = if stream.host_check.is_some() {
                    Check::Host { seen: 0 }
                } else {
                    Check::Here(verifier)
                };
                Content::Stream {
                    stream,
                    check,
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
    /// A body read straight from the registry, checked as it is read.
    Stream {
        stream: BodyStream,
        check: Check,
        resume: Resume,
    },
}

/// How a streamed body is checked against its digest and size.
enum Check {
    /// Hashed here, chunk by chunk.
    Here(Box<Verifier>),
    /// Hashed by the host, which fails the last read on a mismatch; only
    /// counted here.
    Host { seen: u64 },
    /// Read to its end and found good.
    Done,
    /// Read to its end and found bad.
    Failed(Error),
}

impl Check {
    /// Bytes handed out so far.
    fn seen(&self) -> u64 {
        match self {
            Check::Here(v) => v.seen(),
            Check::Host { seen } => *seen,
            Check::Done | Check::Failed(_) => 0,
        }
    }

    /// Takes in `chunk`, handed out next, of content `digest` of `size` bytes.
    fn update(&mut self, chunk: &[u8], digest: &Digest, size: u64) -> Result<(), Error> {
        match self {
            Check::Here(v) => v.update(chunk),
            Check::Host { .. } => self.count(chunk.len() as u64, digest, size),
            Check::Done | Check::Failed(_) => Ok(()),
        }
    }

    /// Counts `n` more bytes the host checks.
    fn count(&mut self, n: u64, digest: &Digest, size: u64) -> Result<(), Error> {
        if let Check::Host { seen } = self {
            *seen += n;
            if *seen > size {
                let detail = format!("more than its {size} bytes");
                return Err(Error::integrity(digest.to_string(), detail));
            }
        }
        Ok(())
    }

    /// The end: the whole must match before it is said to. A failure is
    /// kept, said again to a caller that reads on.
    fn end(&mut self, digest: &Digest, size: u64) -> Result<(), Error> {
        let outcome = match std::mem::replace(self, Check::Done) {
            Check::Here(v) => v.finish().map(drop),
            Check::Host { seen } if seen != size => {
                let detail = format!("{seen} of its {size} bytes");
                Err(Error::integrity(digest.to_string(), detail))
            }
            Check::Failed(e) => Err(e),
            Check::Host { .. } | Check::Done => Ok(()),
        };
        if let Err(e) = &outcome {
            *self = Check::Failed(e.clone());
        }
        outcome
    }
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
    /// A stream of the blob from where `check` is (after `broken` broke),
    /// its checking carried on.
    ///
    /// From that byte on (asked for by `Range`; when the registry sends the
    /// whole blob instead, the bytes before it are read and dropped). A body
    /// the host was checking it asks to check on from there; if the host
    /// cannot (it kept no check, or the registry sent something else), the
    /// blob is read again from its start, and what the host does not vouch
    /// for then is hashed here, the bytes already handed out too.
    fn reopen(&mut self, check: &mut Check, broken: &BodyStream) -> Result<BodyStream, wit::Error> {
        let seen = check.seen();
        let Check::Host { .. } = check else {
            let (stream, skip) = self.open_at(seen, None)?;
            return self.skip(stream, skip, None);
        };
        let (stream, skip) = self.open_at(seen, broken.host_check)?;
        if stream.host_check.is_some() {
            return self.skip(stream, skip, None);
        }
        drop(stream);
        let (stream, _) = self.open_at(0, None)?;
        if stream.host_check.is_some() {
            return self.skip(stream, seen, None);
        }
        let digest =
            self.reference.digest.clone().ok_or_else(|| {
                wit::Error::Internal("a resumed blob read without its digest".into())
            })?;
        let subject = self.reference.to_string();
        let mut verifier = Box::new(Verifier::new(subject, digest, Some(self.size)));
        let stream = self.skip(stream, seen, Some(&mut verifier))?;
        *check = Check::Here(verifier);
        Ok(stream)
    }

    /// `stream` past its first `skip` bytes, hashed into `verifier` if given.
    fn skip(
        &self,
        mut stream: BodyStream,
        mut skip: u64,
        mut verifier: Option<&mut Verifier>,
    ) -> Result<BodyStream, wit::Error> {
        let broken =
            |message: String| wit::Error::Transport(format!("{}: {message}", self.reference));
        while skip > 0 {
            match stream
                .read(skip.min(1 << 20))
                .map_err(|e| broken(e.message))?
            {
                Some(chunk) => {
                    skip = skip.saturating_sub(chunk.len() as u64);
                    if let Some(v) = verifier.as_deref_mut() {
                        v.update(&chunk)?;
                    }
                }
                None => return Err(broken("the blob ended early when read again".into())),
            }
        }
        Ok(stream)
    }

    /// The blob's body from byte `offset` on, and how many bytes at its
    /// start to skip (the registry ignored the range).
    /// `resume_check`: the host's check of the read that broke, to carry on.
    fn open_at(
        &mut self,
        offset: u64,
        resume_check: Option<u64>,
    ) -> Result<(BodyStream, u64), wit::Error> {
        self.tries += 1;
        let mut client = self.client.borrow_mut();
        let mut op = ResumeBlob::new(&client, &self.reference, offset, self.size)?;
        let send = SendOptions {
            resume_check,
            ..self.send
        };
        let (outcome, mut held) = driver::run(&mut client, &mut op, send);
        let resumed = outcome??;
        let stream = held.remove(&resumed.request).ok_or_else(|| {
            wit::Error::Internal("resumed blob body went missing in the driver".into())
        })?;
        Ok((stream, resumed.skip))
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
                check,
                resume,
            } => {
                match check {
                    Check::Done => return Ok(Vec::new()),
                    Check::Failed(e) => return Err(e.clone().into()),
                    Check::Here(_) | Check::Host { .. } => {}
                }
                let digest = &self.descriptor.digest;
                let chunk = loop {
                    match stream.read(max) {
                        Ok(chunk) => break chunk,
                        // The host found the bytes do not match.
                        Err(e) if e.kind == TransportErrorKind::Integrity => {
                            return Err(Error::integrity(digest.to_string(), e.message).into());
                        }
                        // The connection broke: read on from where it did.
                        Err(e) if resume_blob::resumable(&e, resume.tries) => {
                            *stream = resume.reopen(check, stream)?;
                        }
                        Err(e) => {
                            return Err(wit::Error::Transport(format!("{digest}: {}", e.message)));
                        }
                    }
                };
                let size = self.descriptor.size;
                match chunk {
                    Some(chunk) => {
                        check.update(&chunk, digest, size)?;
                        Ok(chunk)
                    }
                    None => {
                        check.end(digest, size)?;
                        Ok(Vec::new())
                    }
                }
            }
        }
    }

    fn write_to(&self, out: &OutputStream) -> Result<u64, wit::Error> {
        let mut written = 0;
        // While the host checks the bytes: moved inside the host.
        while let Some(n) = self.splice(out)? {
            written += n;
        }
        // Else, or from where it stopped: read and checked here, each chunk
        // held until the next read succeeds (the one that finds the end is
        // the one that checks the whole).
        let mut held: Vec<u8> = Vec::new();
        loop {
            let chunk = self.read(SPLICE_MAX)?;
            write_all(out, &held)?;
            written += held.len() as u64;
            if chunk.is_empty() {
                return Ok(written);
            }
            held = chunk;
        }
    }
}

/// The most bytes one read or splice of `write-to` asks for.
const SPLICE_MAX: u64 = 16 << 20;

impl BlobReader {
    /// Moves the next bytes into `out` inside the host, while the host
    /// checks them: how many (0 after a resume); `None` once it does not
    /// (the rest is read here) or at the end, checked.
    fn splice(&self, out: &OutputStream) -> Result<Option<u64>, wit::Error> {
        let mut content = self.content.borrow_mut();
        let Content::Stream {
            stream,
            check,
            resume,
        } = &mut *content
        else {
            return Ok(None);
        };
        if !matches!(check, Check::Host { .. }) {
            return Ok(None);
        }
        let (digest, size) = (&self.descriptor.digest, self.descriptor.size);
        match stream.splice_into(out, SPLICE_MAX) {
            Ok(Some(n)) => {
                check.count(n, digest, size)?;
                Ok(Some(n))
            }
            Ok(None) => {
                check.end(digest, size)?;
                Ok(None)
            }
            Err(e) if e.kind == TransportErrorKind::Integrity => {
                Err(Error::integrity(digest.to_string(), e.message).into())
            }
            Err(e) if resume_blob::resumable(&e, resume.tries) => {
                *stream = resume.reopen(check, stream)?;
                Ok(Some(0))
            }
            Err(e) => Err(wit::Error::Transport(format!("{digest}: {}", e.message))),
        }
    }
}

/// Writes all of `bytes` to `out`, as fast as it takes them.
fn write_all(out: &OutputStream, mut bytes: &[u8]) -> Result<(), wit::Error> {
    let broken = |e: StreamError| wit::Error::Transport(format!("writing the content: {e:?}"));
    let ready = out.subscribe();
    while !bytes.is_empty() {
        let room = out.check_write().map_err(broken)?;
        if room == 0 {
            ready.block();
            continue;
        }
        let n = usize::try_from(room).unwrap_or(usize::MAX).min(bytes.len());
        out.write(&bytes[..n]).map_err(broken)?;
        bytes = &bytes[n..];
    }
    Ok(())
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
