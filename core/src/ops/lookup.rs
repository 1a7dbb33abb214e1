//! Lookup: a manifest by tag or digest, or a blob by digest, by GET or HEAD.
//! "Not found" is a value, not an error; everything read is checked against
//! its digest and size.

use std::str::FromStr;

use bytes::Bytes;

use crate::auth::repository_scope;
use crate::cache::{CacheKey, Mark, CACHE_DATA_LIMIT};
use crate::client::Client;
use crate::descriptor::Descriptor;
use crate::digest::{Digest, Verifier};
use crate::distribution::{absent, blob_path, manifest_path};
use crate::error::{Error, Result};
use crate::http::{BodyMode, Headers, Method, RequestId, Response, ResponseBody, Url};
use crate::media_type::{MANIFEST_ACCEPT, OCTET_STREAM};
use crate::ops::exchange::{Exchange, ExchangeSpec, Exchanged};
use crate::ops::{Operation, Output, Step};
use crate::reference::Reference;
use crate::{advance, ready};

/// Manifests larger than this are refused unread (the original registry
/// package's limit, and distribution's own).
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
    /// A manifest (or small blob), already verified.
    Bytes(Bytes),
    /// A blob GET's redirect, passed on ([`Lookup::passing_redirects`]):
    /// where the content is; the descriptor's size is not known (0).
    Redirect(Url),
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
    /// Where it is: the reference looked up, by the object's digest (its
    /// tag kept), so that it can be read again.
    pub reference: Reference,
    /// What it is.
    pub descriptor: Descriptor,
    /// Its content, per the options.
    pub body: Body,
}

#[derive(Debug)]
enum Stage {
    /// The cache is to be consulted.
    Start,
    /// Asking the registry.
    Ask(Box<Exchange>),
}

/// The lookup state machine. It answers from the client's cache when it
/// can, waits while another operation fetches the same key, and records
/// what it finds.
#[derive(Debug)]
pub struct Lookup {
    reference: Reference,
    options: LookupOptions,
    subject: String,
    /// `host/repository`, the cache's namespace.
    repo: String,
    key: CacheKey,
    stage: Stage,
    /// The claim on `key` while asking the registry.
    claim: Option<Mark>,
    /// A HEAD that lacked digest or size was replaced by a GET.
    head_fell_back: bool,
    /// Token actions asked for: `pull`, or `pull,push` when the lookup
    /// precedes a push (one token then serves both).
    actions: &'static str,
    /// Hold every blob body for the next request to send on, small ones too
    /// (a copy's source).
    relay: bool,
    /// A blob GET's redirect to storage is the answer ([`Body::Redirect`]).
    pass_redirects: bool,
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
            stage: Stage::Start,
            claim: None,
            head_fell_back: false,
            actions: "pull",
            relay: false,
            pass_redirects: false,
        }
    }

    /// Asks for a push token: for a lookup in a repository about to be
    /// pushed to.
    pub fn for_push(mut self) -> Self {
        self.actions = "pull,push";
        self
    }

    /// Holds the blob body, whatever its size, for the next request to send
    /// on ([`BodyMode::Relay`]): a copy's source, whose bytes go straight
    /// into an upload (not into memory, not into the cache).
    pub fn relayed(mut self) -> Self {
        self.relay = true;
        self
    }

    /// A blob GET answered with a redirect (to blob storage, as Docker Hub,
    /// GHCR, ECR and GAR do) finds [`Body::Redirect`] instead of the
    /// content: for a mirror that sends its client there (the client then
    /// checks the digest). See [`Exchange::passing_redirects`] for which
    /// redirects are passed on.
    pub fn passing_redirects(mut self) -> Self {
        self.pass_redirects = true;
        self
    }

    /// What the cache already knows, in the shape this lookup returns.
    fn cached_answer(&self, client: &Client) -> Option<Found> {
        let cached = match &self.key {
            CacheKey::Object(repo, digest) | CacheKey::Write(repo, digest) => {
                client.cache.object(repo, digest)
            }
            CacheKey::Tag(repo, tag) => client.cache.tag(repo, tag),
        }?;
        let mut descriptor = cached.descriptor.clone();
        let body = if self.options.head {
            // As the original's cache answers a HEAD of an object it has
            // read: the descriptor carries the bytes (`data`, base64).
            if let Some(bytes) = &cached.data {
                use base64::Engine as _;
                descriptor.data = Some(base64::engine::general_purpose::STANDARD.encode(bytes));
            }
            Body::Empty
        } else {
            Body::Bytes(cached.data.clone()?)
        };
        Some(Found {
            reference: self.reference.with_digest(cached.descriptor.digest.clone()),
            descriptor,
            body,
        })
    }

    /// Records what was found (with its bytes when they were read whole),
    /// then shapes the answer: a HEAD lookup returns no content.
    fn remember(&self, client: &mut Client, mut found: Found) -> Found {
        let tag = match &self.key {
            CacheKey::Tag(_, tag) => Some(tag.as_str()),
            CacheKey::Object(..) | CacheKey::Write(..) => None,
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
        let (path, accept, body_mode) = match (kind, &reference.digest) {
            (LookupKind::Blob, Some(d)) => {
                let body_mode = if self.relay {
                    BodyMode::Relay
                } else {
                    BodyMode::Stream {
                        buffer_up_to: CACHE_DATA_LIMIT,
                    }
                };
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

    /// `Docker-Content-Digest`, parsed; a malformed one is the registry's error.
    fn header_digest(&self, headers: &Headers) -> Result<Option<Digest>> {
        match headers.get("docker-content-digest") {
            None => Ok(None),
            Some(v) => Digest::parse(v.trim()).map(Some).map_err(|e| {
                Error::protocol(&self.subject, format!("bad Docker-Content-Digest: {e}"))
            }),
        }
    }

    /// The digest an answer claims must agree with the one asked for.
    fn expected_digest(&self, headers: &Headers) -> Result<Option<Digest>> {
        let claimed = self.header_digest(headers)?;
        match (&self.reference.digest, claimed) {
            (Some(asked), Some(claimed))
                if asked.algorithm() == claimed.algorithm() && *asked != claimed =>
            {
                Err(Error::integrity(
                    &self.subject,
                    format!("asked for {asked}, registry answered {claimed}"),
                ))
            }
            (Some(asked), _) => Ok(Some(asked.clone())),
            (None, claimed) => Ok(claimed),
        }
    }

    /// Consults the cache: its answer, or the claim on the key and the
    /// request to ask the registry; `None` while another operation holds
    /// the claim (its answer lands in the cache).
    fn start(&mut self, client: &mut Client) -> Option<Result<Step<Stage, Option<Found>>>> {
        if let Some(found) = self.cached_answer(client) {
            return Some(Ok(Step::Done(Some(found))));
        }
        self.claim = Some(client.cache.claim(self.key.clone())?);
        let method = if self.options.head {
            Method::Head
        } else {
            Method::Get
        };
        let mut exchange = Exchange::new(client, self.spec(self.options.kind, method));
        if self.pass_redirects && self.options.kind == LookupKind::Blob && !self.options.head {
            exchange = exchange.passing_redirects();
        }
        Some(Ok(Step::Next(Stage::Ask(Box::new(exchange)))))
    }

    /// What the registry's answer means: found (recorded in the cache), not
    /// found, an error, or a GET to make up for a HEAD that said too little.
    fn answered(
        &mut self,
        client: &mut Client,
        answer: Result<Exchanged>,
    ) -> Result<Step<Stage, Option<Found>>> {
        // Finished either way, unless a GET follows: the claim ends here.
        let claim = self.claim.take();
        let Exchanged { id, response } = answer?;
        if absent(&response) {
            return Ok(Step::Done(None));
        }
        if !response.is_success() {
            return Err(Error::registry(&self.subject, &response));
        }
        let head = self.options.head && !self.head_fell_back;
        let found = match (self.options.kind, head) {
            (LookupKind::Blob, true) => self.blob_head(&response)?,
            (LookupKind::Blob, false) => match self.blob_get(id, &response) {
                Ok(found) => found,
                // Its body, held to be read or sent on, is not.
                Err(e) => {
                    if matches!(response.body, ResponseBody::Held) {
                        client.release(id);
                    }
                    return Err(e);
                }
            },
            (LookupKind::Manifest, true) => match self.manifest_head(&response)? {
                Some(found) => found,
                None => {
                    // Some registries omit the digest (or size) on HEAD: read
                    // the manifest and compute it.
                    self.head_fell_back = true;
                    self.claim = claim;
                    let get = Exchange::new(client, self.spec(LookupKind::Manifest, Method::Get));
                    return Ok(Step::Next(Stage::Ask(Box::new(get))));
                }
            },
            (LookupKind::Manifest, false) => self.manifest_get(&response)?,
        };
        Ok(Step::Done(Some(self.remember(client, found))))
    }

    /// A blob GET redirected elsewhere, the redirect passed on: found there
    /// (unread, unchecked, not cached; its size unknown here).
    fn redirected(&mut self, to: Url) -> Step<Stage, Option<Found>> {
        self.claim = None;
        let digest = self
            .reference
            .digest
            .clone()
            .unwrap_or_else(|| Digest::sha256(b""));
        Step::Done(Some(Found {
            reference: self.reference.clone(),
            descriptor: Descriptor::new(OCTET_STREAM, digest, 0),
            body: Body::Redirect(to),
        }))
    }

    /// A blob answer's digest and size: both required.
    fn blob_descriptor(&self, r: &Response) -> Result<(Digest, u64)> {
        let digest = self
            .expected_digest(&r.headers)?
            .ok_or_else(|| Error::protocol(&self.subject, "no digest"))?;
        let size = r
            .headers
            .content_length()
            .ok_or_else(|| Error::protocol(&self.subject, "blob answer without Content-Length"))?;
        Ok((digest, size))
    }

    fn blob_head(&self, r: &Response) -> Result<Found> {
        let (digest, size) = self.blob_descriptor(r)?;
        Ok(Found {
            reference: self.reference.with_digest(digest.clone()),
            descriptor: Descriptor::new(OCTET_STREAM, digest, size),
            body: Body::Empty,
        })
    }

    fn blob_get(&self, id: RequestId, r: &Response) -> Result<Found> {
        let (digest, size) = self.blob_descriptor(r)?;
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
                return Err(Error::Internal(format!(
                    "{}: blob body was neither read nor held",
                    self.subject
                )))
            }
        };
        Ok(Found {
            reference: self.reference.with_digest(digest.clone()),
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
                    return Err(self.too_large(Some(size)));
                }
                Ok(Some(Found {
                    reference: self.reference.with_digest(digest.clone()),
                    descriptor: Descriptor::new(media_type, digest, size),
                    body: Body::Empty,
                }))
            }
            _ => Ok(None),
        }
    }

    /// A manifest over the limit (of `size` bytes, when the answer said).
    fn too_large(&self, size: Option<u64>) -> Error {
        let of = size.map_or_else(String::new, |s| format!(" of {s} bytes"));
        Error::protocol(
            &self.subject,
            format!(
                "manifest{of} is larger than the {MANIFEST_SIZE_LIMIT}-byte limit; refused unread"
            ),
        )
    }

    fn manifest_get(&self, r: &Response) -> Result<Found> {
        let bytes = match &r.body {
            ResponseBody::Bytes(b) => b,
            ResponseBody::TooLarge => return Err(self.too_large(r.headers.content_length())),
            ResponseBody::Held => {
                return Err(Error::Internal(format!(
                    "{}: manifest body was held, not read",
                    self.subject
                )))
            }
        };
        if bytes.len() as u64 > MANIFEST_SIZE_LIMIT {
            return Err(Error::Internal(format!(
                "{}: the driver read a manifest past the {MANIFEST_SIZE_LIMIT}-byte limit",
                self.subject
            )));
        }
        if let Some(len) = r.headers.content_length() {
            if len != bytes.len() as u64 {
                return Err(Error::integrity(
                    &self.subject,
                    format!("Content-Length {len} but {} bytes arrived", bytes.len()),
                ));
            }
        }
        let digest = match self.expected_digest(&r.headers)? {
            Some(expected) => {
                let actual = Digest::of(expected.algorithm(), bytes);
                if actual != expected {
                    return Err(Error::integrity(
                        &self.subject,
                        format!("expected {expected}, content is {actual}"),
                    ));
                }
                actual
            }
            None => Digest::sha256(bytes),
        };
        let media_type = content_type(&r.headers)
            .filter(|t| t != "application/json" && t != "text/plain")
            .or_else(|| embedded_media_type(bytes))
            .ok_or_else(|| {
                Error::protocol(
                    &self.subject,
                    "manifest has no media type (no Content-Type, no mediaType field)",
                )
            })?;
        Ok(Found {
            reference: self.reference.with_digest(digest.clone()),
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
    type Outcome = Result<Option<Found>>;

    fn poll_output(&mut self, client: &mut Client) -> Output<Result<Option<Found>>> {
        loop {
            match &mut self.stage {
                Stage::Start => match self.start(client) {
                    Some(step) => advance!(self.stage, step),
                    // Another operation is fetching this key; its answer
                    // lands in the cache, and the driver polls us again.
                    None => return Output::Wait(None),
                },
                Stage::Ask(exchange) => {
                    let answer = ready!(exchange.poll_output(client));
                    let passed = exchange.passed_redirect().cloned();
                    let step = match passed {
                        Some(to) => answer.map(|_| self.redirected(to)),
                        None => self.answered(client, answer),
                    };
                    advance!(self.stage, step);
                }
            }
        }
    }
}
