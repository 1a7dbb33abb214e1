//! Lookup: a manifest by tag or digest, or a blob by digest, by GET or HEAD.
//! "Not found" is a value, not an error; everything read is checked against
//! its digest and size.

use std::str::FromStr;

use crate::auth::repository_scope;
use crate::cache::{CacheKey, CACHE_DATA_LIMIT};
use crate::client::Client;
use crate::descriptor::Descriptor;
use crate::digest::{Digest, Verifier};
use crate::distribution::{blob_path, manifest_path, RegistryError};
use crate::error::{Error, Result};
use crate::http::{BodyMode, Headers, Method, RequestId, Response, ResponseBody, TransportError};
use crate::media_type::{MANIFEST_ACCEPT, OCTET_STREAM};
use crate::ops::exchange::{Exchange, ExchangeSpec, Exchanged};
use crate::ops::{Operation, Output};
use crate::reference::Reference;

/// Manifests larger than this are refused unread (as the seed's registry cache does).
pub const MANIFEST_SIZE_LIMIT: u64 = CACHE_DATA_LIMIT;

/// What to look up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LookupKind {
    /// A manifest or index, by tag or digest.
    #[default]
    Manifest,
    /// A blob, by digest.
    Blob,
}

impl FromStr for LookupKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "manifest" | "" => Ok(LookupKind::Manifest),
            "blob" => Ok(LookupKind::Blob),
            other => Err(Error::InvalidInput(format!(
                "unknown lookup type {other:?} (expected \"manifest\" or \"blob\")"
            ))),
        }
    }
}

/// Options of a lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LookupOptions {
    /// Manifest or blob.
    pub kind: LookupKind,
    /// HEAD instead of GET: the descriptor without the content.
    pub head: bool,
}

/// The content of a found object.
#[derive(Debug)]
pub enum Body {
    /// HEAD: no content.
    Empty,
    /// A manifest, already verified.
    Bytes(Vec<u8>),
    /// A blob the driver holds unread under `request`; every byte read from
    /// it must pass through `verifier`, and `verifier.finish()` must succeed
    /// at its end.
    Stream {
        /// The request whose body this is.
        request: RequestId,
        /// Checks the stream's digest and size (boxed: hash state is large).
        verifier: Box<Verifier>,
    },
}

/// A found object.
#[derive(Debug)]
pub struct Found {
    /// What it is.
    pub descriptor: Descriptor,
    /// Its content, per the options.
    pub body: Body,
}

/// The lookup state machine. It answers from the client's cache when it
/// can, waits while another lookup fetches the same key, and records what it
/// finds.
#[derive(Debug)]
pub struct Lookup {
    reference: Reference,
    options: LookupOptions,
    subject: String,
    /// `host/repository`, the cache's namespace.
    repo: String,
    key: CacheKey,
    /// `None` until the cache has been consulted and missed.
    exchange: Option<Exchange>,
    /// A HEAD that lacked digest or size was replaced by a GET.
    head_fell_back: bool,
    /// Token actions asked for: `pull`, or `pull,push` when the lookup
    /// precedes a push (one token then serves both).
    actions: &'static str,
    /// Hold every blob body for streaming, small ones too (a copy's source).
    always_stream: bool,
    outcome: Option<Result<Option<Found>>>,
}

impl Lookup {
    /// A lookup of `reference`; blob lookups need a digest.
    pub fn new(reference: Reference, options: LookupOptions) -> Result<Self> {
        match (options.kind, reference.digest.clone()) {
            (LookupKind::Manifest, _) => Ok(Self::manifest(reference, options.head)),
            (LookupKind::Blob, Some(digest)) => Ok(Self::blob(&reference, digest, options.head)),
            (LookupKind::Blob, None) => Err(Error::InvalidInput(format!(
                "{reference}: a blob lookup needs a digest"
            ))),
        }
    }

    /// A manifest lookup (by digest, else by tag, else `latest`).
    pub fn manifest(reference: Reference, head: bool) -> Self {
        Self::build(
            reference,
            LookupOptions {
                kind: LookupKind::Manifest,
                head,
            },
        )
    }

    /// A lookup of blob `digest` in `reference`'s repository.
    pub fn blob(reference: &Reference, digest: Digest, head: bool) -> Self {
        Self::build(
            reference.with_digest(digest),
            LookupOptions {
                kind: LookupKind::Blob,
                head,
            },
        )
    }

    fn build(reference: Reference, options: LookupOptions) -> Self {
        let subject = reference.to_string();
        let repo = reference.cache_namespace();
        let key = match (&reference.digest, reference.tag_or_latest()) {
            (Some(d), _) => CacheKey::Object(repo.clone(), d.clone()),
            (None, tag) => CacheKey::Tag(repo.clone(), tag.unwrap_or("latest").to_string()),
        };
        Lookup {
            reference,
            options,
            subject,
            repo,
            key,
            exchange: None,
            head_fell_back: false,
            actions: "pull",
            always_stream: false,
            outcome: None,
        }
    }

    /// Asks for a push token: for a lookup in a repository about to be
    /// pushed to.
    pub fn for_push(mut self) -> Self {
        self.actions = "pull,push";
        self
    }

    /// Holds the blob body for streaming whatever its size: for a copy's
    /// source, whose bytes go straight into an upload (not into memory, not
    /// into the cache).
    pub fn streamed(mut self) -> Self {
        self.always_stream = true;
        self
    }

    /// What the cache already knows, in the shape this lookup returns.
    fn cached_answer(&self, client: &Client) -> Option<Found> {
        let cached = match &self.key {
            CacheKey::Object(repo, digest) => client.cache.object(repo, digest),
            CacheKey::Tag(repo, tag) => client.cache.tag(repo, tag),
        }?;
        let body = if self.options.head {
            Body::Empty
        } else {
            Body::Bytes(cached.data.as_ref()?.to_vec())
        };
        Some(Found {
            descriptor: cached.descriptor.clone(),
            body,
        })
    }

    /// Records what was found (with its bytes when they were read whole),
    /// then shapes the answer: a HEAD lookup returns no content.
    fn remember(&self, client: &mut Client, mut found: Found) -> Found {
        let tag = match &self.key {
            CacheKey::Tag(_, tag) => Some(tag.as_str()),
            CacheKey::Object(..) => None,
        };
        let data = match &found.body {
            Body::Bytes(b) => Some(b.clone()),
            _ => None,
        };
        client
            .cache
            .insert(&self.repo, tag, &found.descriptor, data);
        if self.options.head {
            found.body = Body::Empty;
        }
        found
    }

    fn spec(&self, kind: LookupKind, method: Method) -> ExchangeSpec {
        let reference = &self.reference;
        let scope = repository_scope(&reference.repository, self.actions);
        let buffer_up_to = if self.always_stream {
            0
        } else {
            CACHE_DATA_LIMIT
        };
        let (path, accept, body_mode) = match (kind, &reference.digest) {
            (LookupKind::Blob, Some(d)) => {
                let body_mode = BodyMode::Stream { buffer_up_to };
                (blob_path(&reference.repository, d), None, body_mode)
            }
            _ => (
                manifest_path(&reference.repository, &reference.object()),
                Some(MANIFEST_ACCEPT),
                BodyMode::Buffer(MANIFEST_SIZE_LIMIT),
            ),
        };
        ExchangeSpec {
            accept,
            body_mode,
            ..ExchangeSpec::read(&reference.host, vec![scope], method, path)
        }
    }

    fn integrity(&self, detail: String) -> Error {
        Error::Integrity {
            subject: self.subject.clone(),
            detail,
        }
    }

    fn protocol(&self, detail: impl Into<String>) -> Error {
        Error::Protocol {
            subject: self.subject.clone(),
            detail: detail.into(),
        }
    }

    /// `Docker-Content-Digest`, parsed; a malformed one is the registry's error.
    fn header_digest(&self, headers: &Headers) -> Result<Option<Digest>> {
        match headers.get("docker-content-digest") {
            None => Ok(None),
            Some(v) => Digest::parse(v.trim())
                .map(Some)
                .map_err(|e| self.protocol(format!("bad Docker-Content-Digest: {e}"))),
        }
    }

    /// The digest an answer claims must agree with the one asked for.
    fn expected_digest(&self, headers: &Headers) -> Result<Option<Digest>> {
        let claimed = self.header_digest(headers)?;
        match (&self.reference.digest, claimed) {
            (Some(asked), Some(claimed))
                if asked.algorithm() == claimed.algorithm() && *asked != claimed =>
            {
                Err(self.integrity(format!("asked for {asked}, registry answered {claimed}")))
            }
            (Some(asked), _) => Ok(Some(asked.clone())),
            (None, claimed) => Ok(claimed),
        }
    }

    fn classify(&mut self, client: &mut Client, done: Exchanged) -> Option<Result<Option<Found>>> {
        let Exchanged { id, response } = done;
        if matches!(response.status, 401 | 403 | 404) {
            return Some(Ok(None));
        }
        if !response.is_success() {
            let e = RegistryError::parse(response.bytes());
            if e.is_not_found() {
                return Some(Ok(None));
            }
            return Some(Err(Error::Registry {
                subject: self.subject.clone(),
                status: response.status,
                code: e.code,
                message: e.message,
            }));
        }
        let head = self.options.head && !self.head_fell_back;
        let result = match (self.options.kind, head) {
            (LookupKind::Blob, true) => self.blob_head(&response),
            (LookupKind::Blob, false) => self.blob_get(id, &response),
            (LookupKind::Manifest, true) => match self.manifest_head(&response) {
                Ok(Some(found)) => Ok(found),
                Ok(None) => {
                    // Some registries omit the digest (or size) on HEAD: read
                    // the manifest and compute it.
                    self.head_fell_back = true;
                    self.exchange = Some(Exchange::new(
                        client,
                        self.spec(LookupKind::Manifest, Method::Get),
                    ));
                    return None;
                }
                Err(e) => Err(e),
            },
            (LookupKind::Manifest, false) => self.manifest_get(&response),
        };
        Some(result.map(Some))
    }

    fn blob_head(&self, r: &Response) -> Result<Found> {
        let digest = self
            .expected_digest(&r.headers)?
            .ok_or_else(|| self.protocol("no digest"))?;
        let size = r
            .headers
            .content_length()
            .ok_or_else(|| self.protocol("blob HEAD answer without Content-Length"))?;
        Ok(Found {
            descriptor: Descriptor::new(OCTET_STREAM, digest, size),
            body: Body::Empty,
        })
    }

    fn blob_get(&self, id: RequestId, r: &Response) -> Result<Found> {
        let digest = self
            .expected_digest(&r.headers)?
            .ok_or_else(|| self.protocol("no digest"))?;
        let size = r
            .headers
            .content_length()
            .ok_or_else(|| self.protocol("blob answer without Content-Length"))?;
        let mut verifier = Box::new(Verifier::new(
            self.subject.clone(),
            digest.clone(),
            Some(size),
        ));
        let body = match &r.body {
            ResponseBody::Held => Body::Stream {
                request: id,
                verifier,
            },
            // Small blobs arrive whole: check them now so they can be cached.
            ResponseBody::Bytes(bytes) => {
                verifier.update(bytes)?;
                verifier.finish()?;
                Body::Bytes(bytes.clone())
            }
            ResponseBody::TooLarge => {
                return Err(self.protocol("blob body was neither read nor held"))
            }
        };
        Ok(Found {
            descriptor: Descriptor::new(OCTET_STREAM, digest, size),
            body,
        })
    }

    /// `Ok(None)` when the HEAD answer lacks what a descriptor needs.
    fn manifest_head(&self, r: &Response) -> Result<Option<Found>> {
        let digest = self.expected_digest(&r.headers)?;
        let size = r.headers.content_length();
        let media_type = content_type(&r.headers);
        match (digest, size, media_type) {
            (Some(digest), Some(size), Some(media_type)) => {
                if size > MANIFEST_SIZE_LIMIT {
                    return Err(self.too_large(size));
                }
                Ok(Some(Found {
                    descriptor: Descriptor::new(media_type, digest, size),
                    body: Body::Empty,
                }))
            }
            _ => Ok(None),
        }
    }

    fn too_large(&self, size: u64) -> Error {
        self.protocol(format!(
            "manifest of {size} bytes is larger than the {MANIFEST_SIZE_LIMIT}-byte limit; refused unread"
        ))
    }

    fn manifest_get(&self, r: &Response) -> Result<Found> {
        let bytes = match &r.body {
            ResponseBody::Bytes(b) => b,
            ResponseBody::TooLarge => {
                return Err(self.too_large(
                    r.headers
                        .content_length()
                        .unwrap_or(MANIFEST_SIZE_LIMIT + 1),
                ))
            }
            ResponseBody::Held => return Err(self.protocol("manifest body was not read")),
        };
        if let Some(len) = r.headers.content_length() {
            if len != bytes.len() as u64 {
                return Err(self.integrity(format!(
                    "Content-Length {len} but {} bytes arrived",
                    bytes.len()
                )));
            }
        }
        let digest = match self.expected_digest(&r.headers)? {
            Some(expected) => {
                let actual = Digest::of(expected.algorithm(), bytes);
                if actual != expected {
                    return Err(self.integrity(format!("expected {expected}, content is {actual}")));
                }
                actual
            }
            None => Digest::sha256(bytes),
        };
        let media_type = content_type(&r.headers)
            .filter(|t| t != "application/json" && t != "text/plain")
            .or_else(|| embedded_media_type(bytes))
            .ok_or_else(|| {
                self.protocol("manifest has no media type (no Content-Type, no mediaType field)")
            })?;
        Ok(Found {
            descriptor: Descriptor::new(media_type, digest, bytes.len() as u64),
            body: Body::Bytes(bytes.clone()),
        })
    }
}

/// `Content-Type` without parameters.
fn content_type(headers: &Headers) -> Option<String> {
    let v = headers.get("content-type")?;
    let t = v.split(';').next().unwrap_or("").trim();
    (!t.is_empty()).then(|| t.to_string())
}

/// The `mediaType` field of a manifest's JSON.
fn embedded_media_type(bytes: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct MediaTypeOnly {
        #[serde(rename = "mediaType")]
        media_type: Option<String>,
    }
    serde_json::from_slice::<MediaTypeOnly>(bytes)
        .ok()?
        .media_type
        .filter(|t| !t.is_empty())
}

impl Operation for Lookup {
    type Outcome = Option<Found>;

    fn poll_output(&mut self, client: &mut Client) -> Output<Option<Found>> {
        loop {
            if let Some(outcome) = self.outcome.take() {
                client.cache.end(&self.key);
                let outcome = outcome.map(|found| found.map(|f| self.remember(client, f)));
                return Output::Done(outcome);
            }
            let Some(exchange) = self.exchange.as_mut() else {
                if let Some(found) = self.cached_answer(client) {
                    return Output::Done(Ok(Some(found)));
                }
                if client.cache.is_pending(&self.key) {
                    // Another lookup is fetching this key; its answer lands
                    // in the cache, and the driver polls us again after it.
                    return Output::Wait;
                }
                client.cache.begin(self.key.clone());
                let method = if self.options.head {
                    Method::Head
                } else {
                    Method::Get
                };
                let spec = self.spec(self.options.kind, method);
                self.exchange = Some(Exchange::new(client, spec));
                continue;
            };
            match exchange.poll_output(client) {
                Output::Send(id, req) => return Output::Send(id, req),
                Output::Wait => return Output::Wait,
                Output::Done(Err(e)) => self.outcome = Some(Err(e)),
                // None: a GET replaced a HEAD that lacked a digest; poll it.
                Output::Done(Ok(done)) => self.outcome = self.classify(client, done),
            }
        }
    }

    fn handle_response(
        &mut self,
        client: &mut Client,
        id: RequestId,
        response: std::result::Result<Response, TransportError>,
    ) {
        if let Some(exchange) = self.exchange.as_mut() {
            exchange.handle_response(client, id, response);
        }
    }
}
