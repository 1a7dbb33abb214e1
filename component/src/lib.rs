//! ocirelay as a WebAssembly component: exports the `ocirelay:registry`
//! world and performs the core's requests over `wasi:http`. It imports only
//! standard WASI interfaces, so any wasi-http host can run it.

mod convert;
mod deploy;
mod driver;
mod reader;
mod transport;
mod writer;

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use ocirelay_core::http::RequestId;
use ocirelay_core::json;
use ocirelay_core::ops::batch::{Answer, Batch};
use ocirelay_core::ops::copy_blob::CopyBlob;
use ocirelay_core::ops::copy_manifest::CopyManifest;
use ocirelay_core::ops::deploy::{Deploy, DeployOptions};
use ocirelay_core::ops::ensure_blob::{BlobSource, EnsureBlob};
use ocirelay_core::ops::ensure_manifest::EnsureManifest;
use ocirelay_core::ops::list_tags::{ListTags, TagsOptions};
use ocirelay_core::ops::lookup::{Body, Found, Lookup, LookupOptions};
use ocirelay_core::ops::push_blob::PushBlob;
use ocirelay_core::ops::read_range::{RangeRead, ReadRange};
use ocirelay_core::ops::synthesize_index::SynthesizeIndex;
use ocirelay_core::range::ByteRange;
use ocirelay_core::{Client as CoreClient, ClientConfig, Descriptor, Operation, Reference};

use bindings::exports::ocirelay::registry::registry as wit;
use reader::BlobReader;
use transport::{BodyStream, SendOptions};
use writer::BlobWriter;

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
        Ok(wit::BlobWriter::new(BlobWriter::new(
            self.core.clone(),
            self.send,
            push,
        )))
    }

    fn list_tags(
        &self,
        repository: wit::Reference,
        options: wit::TagsOptions,
    ) -> Result<Option<wit::TagList>, wit::Error> {
        let options = TagsOptions {
            page_size: options.page_size,
            last: options.last,
            all_pages: options.all_pages,
        };
        let mut op = ListTags::new(&*self.client()?, (&repository).try_into()?, options);
        let (list, _) = self.run(&mut op)?;
        Ok(list?.map(|list| wit::TagList {
            tags: list.tags,
            next: list.next,
        }))
    }

    fn read_range(
        &self,
        reference: wit::Reference,
        range: wit::ByteRange,
    ) -> Result<Option<wit::RangeRead>, wit::Error> {
        let range = match range {
            wit::ByteRange::From(first) => ByteRange::From(first),
            wit::ByteRange::Span((first, last)) if first <= last => ByteRange::Span(first, last),
            wit::ByteRange::Span((first, last)) => {
                return Err(wit::Error::InvalidInput(format!(
                    "byte range {first}-{last}: the last byte comes before the first"
                )))
            }
            wit::ByteRange::Suffix(n) => ByteRange::Suffix(n),
        };
        let mut op = ReadRange::new(&*self.client()?, (&reference).try_into()?, range)?;
        let (read, mut held) = self.run(&mut op)?;
        Ok(match read? {
            None => None,
            Some(RangeRead::Whole(found)) => {
                Some(wit::RangeRead::Whole(self.reader(found, &mut held)?))
            }
            Some(RangeRead::Part(part)) => {
                let (first, last) = (part.first, part.last);
                let reader = wit::BlobReader::new(BlobReader::part(part, &mut held)?);
                Some(wit::RangeRead::Part(wit::BlobPart {
                    first,
                    last,
                    reader,
                }))
            }
            Some(RangeRead::Unsatisfiable { size }) => Some(wit::RangeRead::Unsatisfiable(size)),
        })
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
        let reader = BlobReader::found(found, held, &self.core, self.send)?;
        Ok(wit::BlobReader::new(reader))
    }
}
