//! What each route answers, asked of the registry client: a tag is
//! resolved with HEAD (Docker Hub counts GETs, not HEADs) and its content
//! fetched by digest; `If-None-Match` on a digest is answered without
//! asking upstream at all; a ranged blob read asks upstream for the range.
//! Every head is the core's (`ocirelay_core::service::answer`).

use std::cell::OnceCell;
use std::rc::Rc;
use std::time::Duration;

use ocirelay_core::ops::list_tags::TagsOptions;
use ocirelay_core::ops::lookup::{LookupKind, LookupOptions};
use ocirelay_core::range::ByteRange;
use ocirelay_core::service::answer::api_base;
use ocirelay_core::service::route::ReferrersAsk;
use ocirelay_core::service::{Failure, FailureKind, Head, Request, Route, ServiceConfig, TagsPage};
use ocirelay_core::{json, Descriptor, Reference};
use ocirelay_driver::{BlobReader, Client, Located, Range, SendOptions};

use crate::bindings::ocirelay::registry::service_config;

/// The largest manifest read whole (the registry component's own cap).
const MANIFEST_LIMIT: u64 = 4 * 1024 * 1024;
/// Bytes asked of the registry component per read of an object read whole.
const STREAM_CHUNK: u64 = 1024 * 1024;

/// A body to send.
pub enum Body {
    /// None (a HEAD, a 304).
    Empty,
    /// These bytes.
    Bytes(Vec<u8>),
    /// A blob (or part of one) read as it is sent, checked by the reader;
    /// a mismatch ends the answer before its last bytes.
    Stream(Box<BlobReader>),
}

/// An answer: its head and body.
pub struct Answer {
    /// Status and headers.
    pub head: Head,
    /// What follows.
    pub body: Body,
}

impl Answer {
    fn bytes((head, body): (Head, String)) -> Self {
        Answer {
            head,
            body: Body::Bytes(body.into_bytes()),
        }
    }

    fn head_only(head: Head) -> Self {
        Answer {
            head,
            body: Body::Empty,
        }
    }
}

/// The answer to `request`.
pub fn answer(config: &ServiceConfig, request: &Request) -> Result<Answer, Failure> {
    let upstream = Upstream::new(config, request);
    match &request.route {
        Route::ApiBase => Ok(Answer::bytes(api_base())),
        Route::Index(r) => upstream.index(r),
        Route::Manifest(r) => upstream.manifest(r, Dialect::Json),
        Route::MirrorManifest(r) => upstream.manifest(r, Dialect::Registry),
        Route::Blob(r) | Route::MirrorBlob(r) => upstream.blob(r),
        Route::MirrorTags(page) => upstream.tags(page),
        Route::MirrorReferrers(ask) => upstream.referrers(ask),
    }
}

/// How a manifest is served: as the CLI prints it, or bytes unchanged.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Dialect {
    Json,
    Registry,
}

thread_local! {
    /// The instance's registry client, made for its first request. A host
    /// that gives an instance one request (`wasmtime serve`) makes it per
    /// request; one that reuses instances (`ocirelay serve`) spares the
    /// requests after the first what the client learned: its tokens, and
    /// where each registry sends for them, so no request meets a 401 first.
    static CLIENT: OnceCell<Rc<Client>> = const { OnceCell::new() };
}

/// The instance's registry client (see [`CLIENT`]); `config` is the one
/// composed in, the same for every request.
fn client(config: &ServiceConfig) -> Rc<Client> {
    CLIENT.with(|client| {
        let made = || {
            let send = SendOptions {
                // It never uploads; were it to, nothing but it would check.
                hash_uploads: true,
                host_checks_downloads: service_config::host_verifies_downloads(),
                resume_check: None,
                timeout: (config.timeout_secs > 0)
                    .then(|| Duration::from_secs(config.timeout_secs.into())),
            };
            Rc::new(Client::new(config.client_config(), send))
        };
        client.get_or_init(made).clone()
    })
}

/// One request's view of the upstream: the registry client and the request.
struct Upstream<'a> {
    config: &'a ServiceConfig,
    client: Rc<Client>,
    request: &'a Request,
}

impl<'a> Upstream<'a> {
    fn new(config: &'a ServiceConfig, request: &'a Request) -> Self {
        Upstream {
            config,
            client: client(config),
            request,
        }
    }

    fn index(&self, r: &Reference) -> Result<Answer, Failure> {
        let index = self
            .client
            .synthesize_index(r.clone())?
            .ok_or_else(|| not_found(r))?;
        let json = json::to_string(&index)?;
        Ok(Answer {
            head: self.request.json_head(json.len() as u64, self.config),
            body: Body::Bytes(json.into_bytes()),
        })
    }

    /// A manifest: a tag is resolved by HEAD and its content read by
    /// digest; a digest is read at once.
    fn manifest(&self, r: &Reference, dialect: Dialect) -> Result<Answer, Failure> {
        if let Some(answer) = self.not_modified_by_digest(r) {
            return Ok(answer);
        }
        let head = self.request.head;
        let mut reader = None;
        let (digest, media_type, size) = match (&r.digest, dialect) {
            (Some(_), Dialect::Registry) if !head => {
                let found = self.get(r, LookupKind::Manifest)?;
                let d = found.descriptor().clone();
                reader = Some(found);
                (d.digest, d.media_type, d.size)
            }
            // The CLI's JSON is asked for by digest, with nothing to resolve.
            (Some(digest), Dialect::Json) if !head => (digest.clone(), String::new(), 0),
            _ => {
                let d = self.head(r, LookupKind::Manifest)?;
                (d.digest, d.media_type, d.size)
            }
        };
        if let Some(not_modified) = self.request.not_modified(&digest, self.config) {
            return Ok(Answer::head_only(not_modified));
        }
        // The CLI's JSON is JSON, its length known only once printed.
        let media_type = match dialect {
            Dialect::Json => "application/json".to_string(),
            Dialect::Registry => media_type,
        };
        if head {
            let length = (dialect == Dialect::Registry).then_some(size);
            let head = self
                .request
                .content_head(&digest, &media_type, length, self.config);
            return Ok(Answer::head_only(head));
        }
        let by_digest = r.with_digest(digest.clone());
        let bytes = match (dialect, reader) {
            (Dialect::Registry, Some(reader)) => read_whole(&reader, &by_digest)?,
            (Dialect::Registry, None) => {
                read_whole(&self.get(&by_digest, LookupKind::Manifest)?, &by_digest)?
            }
            (Dialect::Json, _) => self
                .client
                .manifest_json(by_digest.clone())?
                .ok_or_else(|| not_found(&by_digest))?
                .into_bytes(),
        };
        let length = Some(bytes.len() as u64);
        Ok(Answer {
            head: self
                .request
                .content_head(&digest, &media_type, length, self.config),
            body: Body::Bytes(bytes),
        })
    }

    /// A blob (or the part a `Range` asks for), streamed as the registry
    /// component checks it.
    fn blob(&self, r: &Reference) -> Result<Answer, Failure> {
        if let Some(answer) = self.not_modified_by_digest(r) {
            return Ok(answer);
        }
        if let Some(range) = self.request.range {
            return self.blob_range(r, range);
        }
        let kind = LookupKind::Blob;
        let (found, body) = match self.request.head {
            true => (self.head(r, kind)?, Body::Empty),
            false if self.config.redirects_blobs(r) => {
                match self.client.blob_or_redirect(r.clone())? {
                    None => return Err(not_found(r)),
                    Some(Located::Redirect(to)) => {
                        let digest = r.digest.as_ref().ok_or_else(|| not_found(r))?;
                        let head = self.request.redirect_head(&to, digest);
                        return Ok(Answer::head_only(head));
                    }
                    Some(Located::Read(reader)) => {
                        (reader.descriptor().clone(), Body::Stream(reader))
                    }
                }
            }
            false => {
                let reader = self.get(r, kind)?;
                (reader.descriptor().clone(), Body::Stream(Box::new(reader)))
            }
        };
        let octets = "application/octet-stream";
        let head = self
            .request
            .content_head(&found.digest, octets, Some(found.size), self.config);
        Ok(Answer { head, body })
    }

    /// The part of blob `r` that `range` asks for: a 206 (the whole blob
    /// when the range covers it, checked), or a 416.
    fn blob_range(&self, r: &Reference, range: ByteRange) -> Result<Answer, Failure> {
        let read = self
            .client
            .read_range(r.clone(), range)?
            .ok_or_else(|| not_found(r))?;
        let (first, last, reader) = match read {
            Range::Whole(reader) => {
                let size = reader.descriptor().size;
                (0, size.saturating_sub(1), reader)
            }
            Range::Part {
                first,
                last,
                reader,
            } => (first, last, reader),
            Range::Unsatisfiable(size) => {
                return Err(Failure {
                    blob_size: size,
                    ..Failure::new(
                        FailureKind::RangeNotSatisfiable,
                        format!("{r}: none of the range asked for is in the blob"),
                    )
                })
            }
        };
        let found = reader.descriptor();
        let head = self
            .request
            .part_head(&found.digest, first, last, found.size);
        Ok(Answer {
            head,
            body: Body::Stream(Box::new(reader)),
        })
    }

    /// A page of a tag list: the upstream's page under the client's name,
    /// its next page's `Link` on the mirror's own path.
    fn tags(&self, page: &TagsPage) -> Result<Answer, Failure> {
        if !page.asks_upstream() {
            return Ok(Answer::bytes(page.answer(&[], None, self.config)));
        }
        let options = TagsOptions {
            page_size: page.n,
            last: page.last.clone(),
            all_pages: false,
        };
        let list = self
            .client
            .list_tags(page.repository.clone(), options)?
            .ok_or_else(|| {
                let r = &page.repository;
                Failure::new(
                    FailureKind::RepositoryNotFound,
                    format!("{}/{}: no such repository", r.host, r.repository),
                )
            })?;
        let answer = page.answer(&list.tags, list.next.as_deref(), self.config);
        Ok(Answer::bytes(answer))
    }

    fn referrers(&self, ask: &ReferrersAsk) -> Result<Answer, Failure> {
        let subject = ask.subject.clone();
        let found = self
            .client
            .referrers(subject, ask.artifact_type.clone())?
            .ok_or_else(|| not_found(&ask.subject))?;
        let filtered = ask.artifact_type.is_some();
        Ok(Answer::bytes(self.request.referrers(
            &found,
            filtered,
            self.config,
        )))
    }

    /// A 304 for a by-digest request whose digest the client holds: no
    /// upstream request at all.
    fn not_modified_by_digest(&self, r: &Reference) -> Option<Answer> {
        let digest = r.digest.as_ref()?;
        let head = self.request.not_modified(digest, self.config)?;
        Some(Answer::head_only(head))
    }

    fn head(&self, r: &Reference, kind: LookupKind) -> Result<Descriptor, Failure> {
        let options = LookupOptions { kind, head: true };
        let reader = self
            .client
            .lookup(r.clone(), options)?
            .ok_or_else(|| not_found(r))?;
        Ok(reader.descriptor().clone())
    }

    fn get(&self, r: &Reference, kind: LookupKind) -> Result<BlobReader, Failure> {
        let options = LookupOptions { kind, head: false };
        self.client
            .lookup(r.clone(), options)?
            .ok_or_else(|| not_found(r))
    }
}

/// All of a (small) object, checked by the reader as it ends.
fn read_whole(reader: &BlobReader, r: &Reference) -> Result<Vec<u8>, Failure> {
    let mut out = Vec::new();
    loop {
        let chunk = reader.read(STREAM_CHUNK)?;
        if chunk.is_empty() {
            return Ok(out);
        }
        out.extend_from_slice(&chunk);
        if out.len() as u64 > MANIFEST_LIMIT {
            return Err(Failure::new(
                FailureKind::Protocol,
                format!("{r}: manifest larger than {MANIFEST_LIMIT} bytes"),
            ));
        }
    }
}

fn not_found(r: &Reference) -> Failure {
    Failure::new(FailureKind::NotFound, format!("{r}: not found"))
}
