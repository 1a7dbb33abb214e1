//! ocirelay as a WebAssembly component: exports the `ocirelay:registry`
//! world and performs the core's requests over `wasi:http`. It imports only
//! standard WASI interfaces, so any wasi-http host can run it.

mod convert;
mod deploy;
mod sync;

use std::time::Duration;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use ocirelay_core::json;
use ocirelay_core::ops::batch::{Answer, Batch};
use ocirelay_core::ops::copy_blob::CopyBlob;
use ocirelay_core::ops::copy_manifest::CopyManifest;
use ocirelay_core::ops::copy_platforms::{parse_platforms, CopyPlatforms};
use ocirelay_core::ops::deploy::{Deploy, DeployOptions};
use ocirelay_core::ops::ensure_blob::{BlobSource, EnsureBlob};
use ocirelay_core::ops::ensure_manifest::EnsureManifest;
use ocirelay_core::ops::list_tags::TagsOptions;
use ocirelay_core::ops::lookup::Found;
use ocirelay_core::ops::referrers::Source;
use ocirelay_core::range::ByteRange;
use ocirelay_core::{ClientConfig, Descriptor, Operation, Reference};
use ocirelay_driver::{Client, Held, Range, SendOptions};
use wasi::io::streams::OutputStream;

use bindings::exports::ocirelay::registry::registry as wit;

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

/// One client (the driver's: the core's shared state and how it sends).
struct ClientResource {
    client: Client,
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
            client: Client::new(config, send),
            config_error,
        }
    }

    fn lookup(
        &self,
        reference: wit::Reference,
        options: wit::LookupOptions,
    ) -> Result<Option<wit::BlobReader>, wit::Error> {
        let found = self
            .client()?
            .lookup((&reference).try_into()?, options.into())?;
        Ok(found.map(|reader| wit::BlobReader::new(BlobReader(reader))))
    }

    fn synthesize_index(
        &self,
        reference: wit::Reference,
    ) -> Result<Option<wit::Index>, wit::Error> {
        let index = self.client()?.synthesize_index((&reference).try_into()?)?;
        Ok(index.as_ref().map(Into::into))
    }

    fn synthesize_index_json(
        &self,
        reference: wit::Reference,
    ) -> Result<Option<String>, wit::Error> {
        let index = self.client()?.synthesize_index((&reference).try_into()?)?;
        Ok(index.as_ref().map(json::to_string).transpose()?)
    }

    fn manifest_json(&self, reference: wit::Reference) -> Result<Option<String>, wit::Error> {
        Ok(self.client()?.manifest_json((&reference).try_into()?)?)
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

    fn copy_platforms(
        &self,
        src: wit::Reference,
        dst: wit::Reference,
        platforms: Vec<String>,
    ) -> Result<wit::Descriptor, wit::Error> {
        let chosen = parse_platforms(&platforms)
            .map_err(|why| wit::Error::InvalidInput(format!("platforms: {why}")))?;
        if chosen.is_empty() {
            return Err(wit::Error::InvalidInput(
                "platforms: name at least one (os/arch[/variant])".into(),
            ));
        }
        let mut op = CopyPlatforms::new((&src).try_into()?, (&dst).try_into()?, chosen, false);
        let (copied, _) = self.run(&mut op)?;
        Ok(copied?.descriptor().into())
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
            &self.client()?.core(),
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
            referrers: options.referrers,
        };
        let mut op = Deploy::new(&self.client()?.core(), inputs, run);
        let mut printed = deploy::WithProgress {
            deploy: &mut op,
            print: options.progress,
        };
        let (outcomes, _) = self.run(&mut printed)?;
        Ok(deploy::results(&op, outcomes))
    }

    fn sync(
        &self,
        config_json: String,
        options: wit::SyncOptions,
    ) -> Result<Vec<wit::SyncResult>, wit::Error> {
        sync::sync(self.client()?, &config_json, options)
    }

    fn push_blob(
        &self,
        reference: wit::Reference,
        size: u64,
    ) -> Result<wit::BlobWriter, wit::Error> {
        let writer = self.client()?.push_blob((&reference).try_into()?, size)?;
        Ok(wit::BlobWriter::new(BlobWriter(writer)))
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
        let list = self
            .client()?
            .list_tags((&repository).try_into()?, options)?;
        Ok(list.map(|list| wit::TagList {
            tags: list.tags,
            next: list.next,
        }))
    }

    fn copy_referrers(
        &self,
        src: wit::Reference,
        dst: wit::Reference,
    ) -> Result<wit::CopiedReferrers, wit::Error> {
        let copied = self
            .client()?
            .copy_referrers((&src).try_into()?, (&dst).try_into()?)?;
        Ok(sync::copied(copied))
    }

    fn list_referrers(
        &self,
        subject: wit::Reference,
        artifact_type: Option<String>,
    ) -> Result<Option<wit::Referrers>, wit::Error> {
        let found = self
            .client()?
            .referrers((&subject).try_into()?, artifact_type)?;
        let Some(found) = found else { return Ok(None) };
        Ok(Some(wit::Referrers {
            index_json: json::to_string(&found.index())?,
            manifests: found.manifests.iter().map(Into::into).collect(),
            source: match found.source {
                Source::Api => wit::ReferrersSource::Api,
                Source::FallbackTag => wit::ReferrersSource::FallbackTag,
                Source::Nothing => wit::ReferrersSource::Nothing,
                Source::NotAnIndex(what) => wit::ReferrersSource::NotAnIndex(what),
            },
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
        let read = self.client()?.read_range((&reference).try_into()?, range)?;
        let reader = |r| wit::BlobReader::new(BlobReader(r));
        Ok(read.map(|read| match read {
            Range::Whole(r) => wit::RangeRead::Whole(reader(r)),
            Range::Part {
                first,
                last,
                reader: r,
            } => wit::RangeRead::Part(wit::BlobPart {
                first,
                last,
                reader: reader(r),
            }),
            Range::Unsatisfiable(size) => wit::RangeRead::Unsatisfiable(size),
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
    /// The driver's client, unless the configuration was bad.
    fn client(&self) -> Result<&Client, wit::Error> {
        match &self.config_error {
            Some(e) => Err(e.clone()),
            None => Ok(&self.client),
        }
    }

    /// Runs `op` to its end on this client: its outcome, and the bodies it
    /// held for the caller.
    fn run<O: Operation>(&self, op: &mut O) -> Result<(O::Outcome, Held), wit::Error> {
        Ok(self.client()?.run(op)?)
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
    fn reader(&self, found: Found, held: &mut Held) -> Result<wit::BlobReader, wit::Error> {
        let reader = self.client()?.reader(found, held)?;
        Ok(wit::BlobReader::new(BlobReader(reader)))
    }
}

/// A found object's reader, as the WIT resource.
struct BlobReader(ocirelay_driver::BlobReader);

impl wit::GuestBlobReader for BlobReader {
    fn descriptor(&self) -> wit::Descriptor {
        self.0.descriptor().into()
    }

    fn descriptor_json(&self) -> String {
        self.0.descriptor_json()
    }

    fn read(&self, max: u64) -> Result<Vec<u8>, wit::Error> {
        Ok(self.0.read(max)?)
    }

    fn read_base64(&self, max: u64) -> Result<String, wit::Error> {
        Ok(BASE64.encode(self.0.read(max)?))
    }

    fn write_to(&self, out: &OutputStream) -> Result<u64, wit::Error> {
        Ok(self.0.write_to(out)?)
    }
}

/// A blob pushed a chunk at a time, as the WIT resource.
struct BlobWriter(ocirelay_driver::BlobWriter);

impl wit::GuestBlobWriter for BlobWriter {
    fn write(&self, chunk: Vec<u8>) -> Result<bool, wit::Error> {
        Ok(self.0.write(chunk)?)
    }

    fn write_base64(&self, chunk: String) -> Result<bool, wit::Error> {
        let bytes = BASE64
            .decode(chunk)
            .map_err(|e| wit::Error::InvalidInput(format!("a chunk that is not base64: {e}")))?;
        Ok(self.0.write(bytes)?)
    }

    fn finish(&self) -> Result<wit::Descriptor, wit::Error> {
        Ok((&self.0.finish()?).into())
    }
}
