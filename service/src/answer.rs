//! What each route answers, asked of the registry component: a tag is
//! resolved with HEAD (Docker Hub counts GETs, not HEADs) and its content
//! fetched by digest; `If-None-Match` on a digest is answered without
//! asking upstream at all.

use std::cell::OnceCell;
use std::rc::Rc;

use ocirelay_core::service::reply::{cache_control, content_head, not_modified, Addressed};
use ocirelay_core::service::{Failure, FailureKind, Head, Request, Route, ServiceConfig};
use ocirelay_core::{Digest, Reference};

use crate::bindings::ocirelay::registry::registry::{
    BlobReader, Client, Descriptor, LookupKind, LookupOptions,
};
use crate::bindings::ocirelay::registry::service_config;
use crate::convert;

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
    /// A blob read as it is sent, verified by the reader; a mismatch ends
    /// the answer before its last bytes.
    Stream(BlobReader),
}

/// An answer: its head and body.
pub struct Answer {
    /// Status and headers.
    pub head: Head,
    /// What follows.
    pub body: Body,
}

/// The answer to `request`.
pub fn answer(
    config: &ServiceConfig,
    request: &Request,
    if_none_match: Option<&str>,
) -> Result<Answer, Failure> {
    let upstream = Upstream::new(config, if_none_match);
    match &request.route {
        Route::ApiBase => {
            let body = b"{}\n".to_vec();
            let head = Head::new(200)
                .with("Docker-Distribution-API-Version", "registry/2.0")
                .with("Content-Type", "application/json")
                .with("Content-Length", body.len().to_string());
            Ok(Answer {
                head,
                body: Body::Bytes(body),
            })
        }
        Route::Index(r) => upstream.index(r),
        Route::Manifest(r) => upstream.manifest(r, request.head, Dialect::Json),
        Route::MirrorManifest(r) => upstream.manifest(r, request.head, Dialect::Registry),
        Route::Blob(r) | Route::MirrorBlob(r) => upstream.blob(r, request.head),
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
            let verifies = service_config::host_verifies_downloads();
            Rc::new(Client::new(&convert::client_config(config, verifies)))
        };
        client.get_or_init(made).clone()
    })
}

/// One request's view of the upstream: the registry client and the
/// request's conditions.
struct Upstream<'a> {
    config: &'a ServiceConfig,
    client: Rc<Client>,
    if_none_match: Option<&'a str>,
}

impl<'a> Upstream<'a> {
    fn new(config: &'a ServiceConfig, if_none_match: Option<&'a str>) -> Self {
        Upstream {
            config,
            client: client(config),
            if_none_match,
        }
    }

    fn index(&self, r: &Reference) -> Result<Answer, Failure> {
        let json = self
            .client
            .synthesize_index_json(&r.into())
            .map_err(convert::failure)?
            .ok_or_else(|| not_found(r))?;
        let addressed = addressed(r);
        let head = Head::new(200)
            .with("Content-Type", "application/json")
            .with("Content-Length", json.len().to_string())
            .with("Cache-Control", cache_control(addressed, self.config));
        Ok(Answer {
            head,
            body: Body::Bytes(json.into_bytes()),
        })
    }

    /// A manifest: a tag is resolved by HEAD and its content read by
    /// digest; a digest is read at once.
    fn manifest(&self, r: &Reference, head: bool, dialect: Dialect) -> Result<Answer, Failure> {
        let addressed = addressed(r);
        if let Some(answer) = self.not_modified_by_digest(r) {
            return Ok(answer);
        }
        let mut reader = None;
        let (digest, media_type, size) = match (&r.digest, dialect) {
            (Some(_), Dialect::Registry) if !head => {
                let found = self.get(r, LookupKind::Manifest)?;
                let d = found.descriptor();
                reader = Some(found);
                (convert::digest(&d)?, d.media_type, d.size)
            }
            // The CLI's JSON is asked for by digest, with nothing to resolve.
            (Some(digest), Dialect::Json) if !head => (digest.clone(), String::new(), 0),
            _ => {
                let d = self.head(r, LookupKind::Manifest)?;
                (convert::digest(&d)?, d.media_type, d.size)
            }
        };
        if not_modified(self.if_none_match, &digest) {
            return Ok(self.not_modified(&digest, addressed));
        }
        // The CLI's JSON is JSON, its length known only once printed.
        let media_type = match dialect {
            Dialect::Json => "application/json".to_string(),
            Dialect::Registry => media_type,
        };
        if head {
            let mut head = content_head(200, &digest, &media_type, size, addressed, self.config);
            if dialect == Dialect::Json {
                head.headers.retain(|(name, _)| name != "Content-Length");
            }
            return Ok(Answer {
                head,
                body: Body::Empty,
            });
        }
        let by_digest = r.with_digest(digest.clone());
        let bytes = match (dialect, reader) {
            (Dialect::Registry, Some(reader)) => read_whole(&reader, &by_digest)?,
            (Dialect::Registry, None) => {
                read_whole(&self.get(&by_digest, LookupKind::Manifest)?, &by_digest)?
            }
            (Dialect::Json, _) => self
                .client
                .manifest_json(&(&by_digest).into())
                .map_err(convert::failure)?
                .ok_or_else(|| not_found(&by_digest))?
                .into_bytes(),
        };
        let length = bytes.len() as u64;
        let head = content_head(200, &digest, &media_type, length, addressed, self.config);
        Ok(Answer {
            head,
            body: Body::Bytes(bytes),
        })
    }

    /// A blob, streamed as the registry component verifies it.
    fn blob(&self, r: &Reference, head: bool) -> Result<Answer, Failure> {
        if let Some(answer) = self.not_modified_by_digest(r) {
            return Ok(answer);
        }
        let kind = LookupKind::Blob;
        let (found, body) = match head {
            true => (self.head(r, kind)?, Body::Empty),
            false => {
                let reader = self.get(r, kind)?;
                (reader.descriptor(), Body::Stream(reader))
            }
        };
        let digest = convert::digest(&found)?;
        let head = content_head(
            200,
            &digest,
            "application/octet-stream",
            found.size,
            Addressed::ByDigest,
            self.config,
        );
        Ok(Answer { head, body })
    }

    /// A 304 for a by-digest request whose digest the client holds: no
    /// upstream request at all.
    fn not_modified_by_digest(&self, r: &Reference) -> Option<Answer> {
        let digest = r.digest.as_ref()?;
        not_modified(self.if_none_match, digest)
            .then(|| self.not_modified(digest, Addressed::ByDigest))
    }

    fn not_modified(&self, digest: &Digest, addressed: Addressed) -> Answer {
        Answer {
            head: content_head(304, digest, "", 0, addressed, self.config),
            body: Body::Empty,
        }
    }

    fn head(&self, r: &Reference, kind: LookupKind) -> Result<Descriptor, Failure> {
        let options = LookupOptions { kind, head: true };
        let reader = self
            .client
            .lookup(&r.into(), options)
            .map_err(convert::failure)?
            .ok_or_else(|| not_found(r))?;
        Ok(reader.descriptor())
    }

    fn get(&self, r: &Reference, kind: LookupKind) -> Result<BlobReader, Failure> {
        let options = LookupOptions { kind, head: false };
        self.client
            .lookup(&r.into(), options)
            .map_err(convert::failure)?
            .ok_or_else(|| not_found(r))
    }
}

/// All of a (small) object, checked by the reader as it ends.
fn read_whole(reader: &BlobReader, r: &Reference) -> Result<Vec<u8>, Failure> {
    let mut out = Vec::new();
    loop {
        let chunk = reader.read(STREAM_CHUNK).map_err(convert::failure)?;
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

fn addressed(r: &Reference) -> Addressed {
    match r.digest {
        Some(_) => Addressed::ByDigest,
        None => Addressed::ByTag,
    }
}

fn not_found(r: &Reference) -> Failure {
    Failure::new(FailureKind::NotFound, format!("{r}: not found"))
}
