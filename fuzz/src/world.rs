//! The world an operation runs in under the fuzzer: images of the shape the
//! end-to-end fixtures push (configs, layers, per-platform manifests, an
//! index), and honest registries that serve them as distribution does:
//! reads, uploads, mounts, manifest pushes that need their children, Basic
//! or token authentication. The fuzzer then twists their answers
//! ([`crate::hostile`]).

use std::collections::HashMap;
use std::sync::OnceLock;

use arbitrary::Arbitrary;
use bytes::Bytes;
use ocirelay_core::manifest::ManifestChildren;
use ocirelay_core::media_type::{OCI_CONFIG, OCI_INDEX, OCI_MANIFEST, OCTET_STREAM};
use ocirelay_core::ops::ensure_blob::BLOB_SIZE_WORTH_HEAD;
use ocirelay_core::range::ByteRange;
use ocirelay_core::Digest;
use serde_json::json;

/// The source registry (and, for copies within one registry, the destination).
pub const SRC: &str = "src.example";
/// The destination of copies across registries.
pub const DST: &str = "dst.example";
/// The token service both registries name.
pub const AUTH: &str = "auth.example";
/// Blob storage that registries redirect to.
pub const CDN: &str = "cdn.example";
/// The source repository.
pub const SRC_REPO: &str = "library/app";
/// The destination repository.
pub const DST_REPO: &str = "team/app";

/// A stored object.
#[derive(Debug, Clone)]
pub struct Object {
    /// Its media type.
    pub media_type: &'static str,
    /// Its bytes.
    pub bytes: Bytes,
    /// Their digest.
    pub digest: Digest,
}

impl Object {
    fn new(media_type: &'static str, bytes: Vec<u8>) -> Object {
        let digest = Digest::sha256(&bytes);
        Object {
            media_type,
            bytes: bytes.into(),
            digest,
        }
    }
}

/// The fixture images: two platforms, one with a small layer and one with a
/// layer big enough to be streamed (and HEADed before an upload), under an
/// index.
#[derive(Debug)]
pub struct Images {
    /// A layer sent whole.
    pub small_layer: Object,
    /// A layer over [`BLOB_SIZE_WORTH_HEAD`]: streamed, HEADed first.
    pub big_layer: Object,
    /// The amd64 image's config.
    pub amd64_config: Object,
    /// The arm64 image's config.
    pub arm64_config: Object,
    /// amd64: its config and the small layer.
    pub amd64: Object,
    /// arm64: its config and the big layer.
    pub arm64: Object,
    /// Both images.
    pub index: Object,
}

impl Images {
    /// The images, made once per process.
    pub fn get() -> &'static Images {
        static IMAGES: OnceLock<Images> = OnceLock::new();
        IMAGES.get_or_init(Images::make)
    }

    fn make() -> Images {
        let pattern = |len: usize, seed: u8| -> Vec<u8> {
            (0..len)
                .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
                .collect()
        };
        let small_layer = Object::new(
            "application/vnd.oci.image.layer.v1.tar+gzip",
            pattern(300, 1),
        );
        let big_layer = Object::new(
            "application/vnd.oci.image.layer.v1.tar+gzip",
            pattern(BLOB_SIZE_WORTH_HEAD as usize + 64, 2),
        );
        let config = |arch: &str| {
            Object::new(
                OCI_CONFIG,
                json!({"architecture": arch, "os": "linux", "rootfs": {"type": "layers"}})
                    .to_string()
                    .into_bytes(),
            )
        };
        let (amd64_config, arm64_config) = (config("amd64"), config("arm64"));
        let descriptor = |o: &Object| json!({"mediaType": o.media_type, "digest": o.digest.to_string(), "size": o.bytes.len()});
        let image = |config: &Object, layer: &Object| {
            Object::new(
                OCI_MANIFEST,
                json!({
                    "schemaVersion": 2,
                    "mediaType": OCI_MANIFEST,
                    "config": descriptor(config),
                    "layers": [descriptor(layer)],
                })
                .to_string()
                .into_bytes(),
            )
        };
        let amd64 = image(&amd64_config, &small_layer);
        let arm64 = image(&arm64_config, &big_layer);
        let entry = |o: &Object, arch: &str, variant: Option<&str>| {
            let mut d = descriptor(o);
            d["platform"] = json!({"architecture": arch, "os": "linux"});
            if let Some(v) = variant {
                d["platform"]["variant"] = json!(v);
            }
            d
        };
        let index = Object::new(
            OCI_INDEX,
            json!({
                "schemaVersion": 2,
                "mediaType": OCI_INDEX,
                "manifests": [entry(&amd64, "amd64", None), entry(&arm64, "arm64", Some("v8"))],
            })
            .to_string()
            .into_bytes(),
        );
        Images {
            small_layer,
            big_layer,
            amd64_config,
            arm64_config,
            amd64,
            arm64,
            index,
        }
    }

    /// Every object, in a fixed order.
    pub fn all(&self) -> [&Object; 7] {
        [
            &self.small_layer,
            &self.big_layer,
            &self.amd64_config,
            &self.arm64_config,
            &self.amd64,
            &self.arm64,
            &self.index,
        ]
    }

    /// The object with `digest`, when it is one of these.
    pub fn by_digest(&self, digest: &str) -> Option<&Object> {
        self.all()
            .into_iter()
            .find(|o| o.digest.to_string() == digest)
    }
}

/// How a registry asks for credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Arbitrary)]
pub enum AuthMode {
    /// It does not.
    Open,
    /// `Basic realm=...`.
    Basic,
    /// `Bearer realm="https://auth.example/token"`.
    Bearer,
}

/// An answer before the driver frames its body per the request's body mode.
#[derive(Debug, Clone)]
pub struct Raw {
    /// Status.
    pub status: u16,
    /// Headers, as sent.
    pub headers: Vec<(String, String)>,
    /// The whole body.
    pub body: Bytes,
}

impl Raw {
    fn new(status: u16) -> Raw {
        Raw {
            status,
            headers: Vec::new(),
            body: Bytes::new(),
        }
    }

    fn header(mut self, name: &str, value: impl Into<String>) -> Raw {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    /// The first value of header `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Sets header `name` to `value`, replacing any.
    pub fn set(&mut self, name: &str, value: String) {
        self.remove(name);
        self.headers.push((name.to_string(), value));
    }

    /// Removes header `name`.
    pub fn remove(&mut self, name: &str) {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
    }

    fn error(status: u16, code: &str) -> Raw {
        let body = json!({"errors": [{"code": code, "message": code.to_lowercase()}]});
        let body = Bytes::from(body.to_string());
        Raw::new(status)
            .header("Content-Type", "application/json")
            .header("Content-Length", body.len().to_string())
            .with_body(body)
    }

    fn with_body(mut self, body: Bytes) -> Raw {
        self.body = body;
        self
    }

    fn object(status: u16, object: (&str, &Bytes), digest: &str, head: bool) -> Raw {
        let raw = Raw::new(status)
            .header("Content-Type", object.0)
            .header("Content-Length", object.1.len().to_string())
            .header("Docker-Content-Digest", digest);
        if head {
            raw
        } else {
            raw.with_body(object.1.clone())
        }
    }
}

/// A request as a registry sees it.
#[derive(Debug)]
pub struct Incoming<'a> {
    /// `GET`, `HEAD`, ...
    pub method: &'a str,
    /// Path and query.
    pub path_and_query: &'a str,
    /// `Authorization`, when sent.
    pub authorization: Option<&'a str>,
    /// `Content-Type`, when sent.
    pub content_type: Option<&'a str>,
    /// `Range`, when sent.
    pub range: Option<&'a str>,
    /// `Content-Range` (of a PATCHed chunk), when sent.
    pub content_range: Option<&'a str>,
    /// The body, as the driver would stream it.
    pub body: Bytes,
}

/// One honest registry.
#[derive(Debug)]
pub struct Registry {
    host: &'static str,
    auth: AuthMode,
    /// (repository, digest) -> (media type, bytes)
    objects: HashMap<(String, String), (String, Bytes)>,
    /// (repository, tag) -> digest
    tags: HashMap<(String, String), String>,
    /// Upload session path -> repository.
    /// Open upload sessions: repository, and the bytes PATCHed so far.
    uploads: HashMap<String, (String, Vec<u8>)>,
    next_upload: u32,
}

impl Registry {
    /// An empty registry at `host`.
    pub fn new(host: &'static str, auth: AuthMode) -> Registry {
        Registry {
            host,
            auth,
            objects: HashMap::new(),
            tags: HashMap::new(),
            uploads: HashMap::new(),
            next_upload: 0,
        }
    }

    /// Stores `object` in `repository`.
    pub fn put(&mut self, repository: &str, object: &Object) {
        self.objects.insert(
            (repository.to_string(), object.digest.to_string()),
            (object.media_type.to_string(), object.bytes.clone()),
        );
    }

    /// Tags `object` (stored) in `repository`.
    pub fn tag(&mut self, repository: &str, tag: &str, object: &Object) {
        self.put(repository, object);
        self.tags.insert(
            (repository.to_string(), tag.to_string()),
            object.digest.to_string(),
        );
    }

    /// Whether `repository` holds `digest`.
    pub fn has(&self, repository: &str, digest: &str) -> bool {
        self.objects
            .contains_key(&(repository.to_string(), digest.to_string()))
    }

    fn challenge(&self, repository: &str) -> Option<Raw> {
        let value = match self.auth {
            AuthMode::Open => return None,
            AuthMode::Basic => format!("Basic realm=\"{}\"", self.host),
            AuthMode::Bearer => format!(
                "Bearer realm=\"https://{AUTH}/token\",service=\"{}\",scope=\"repository:{repository}:pull\"",
                self.host
            ),
        };
        Some(Raw::error(401, "UNAUTHORIZED").header("WWW-Authenticate", value))
    }

    /// Answers `req` as distribution would.
    pub fn serve(&mut self, req: &Incoming<'_>) -> Raw {
        let (path, query) = req
            .path_and_query
            .split_once('?')
            .unwrap_or((req.path_and_query, ""));
        if path == "/v2/" || path == "/v2" {
            return Raw::new(200);
        }
        let Some(rest) = path.strip_prefix("/v2/") else {
            return Raw::error(404, "NAME_UNKNOWN");
        };
        if let Some(repository) = rest.strip_suffix("/tags/list") {
            if req.authorization.is_none() {
                if let Some(challenge) = self.challenge(repository) {
                    return challenge;
                }
            }
            return self.tag_page(repository, query);
        }
        let (repository, kind, object) = if let Some(i) = rest.rfind("/manifests/") {
            (&rest[..i], "manifests", &rest[i + "/manifests/".len()..])
        } else if let Some(i) = rest.find("/blobs/") {
            (&rest[..i], "blobs", &rest[i + "/blobs/".len()..])
        } else {
            return Raw::error(404, "NAME_UNKNOWN");
        };
        if req.authorization.is_none() {
            if let Some(challenge) = self.challenge(repository) {
                return challenge;
            }
        }
        match (req.method, kind) {
            ("GET" | "HEAD", "manifests") => self.read(repository, object, true, req),
            ("PUT", "manifests") => self.push_manifest(repository, object, req),
            ("GET", "blobs") if object.starts_with("uploads/") => self.upload_status(path),
            ("GET" | "HEAD", "blobs") => self.read(repository, object, false, req),
            ("POST", "blobs") if object.is_empty() || object == "uploads/" => {
                self.open_upload(repository, query)
            }
            ("PATCH", "blobs") => self.append_upload(path, req),
            ("PUT", "blobs") => self.complete_upload(path, query, req),
            _ => Raw::error(405, "UNSUPPORTED"),
        }
    }

    fn read(&self, repository: &str, object: &str, manifest: bool, req: &Incoming<'_>) -> Raw {
        let digest = if object.contains(':') {
            object.to_string()
        } else if manifest {
            match self.tags.get(&(repository.to_string(), object.to_string())) {
                Some(d) => d.clone(),
                None => return Raw::error(404, "MANIFEST_UNKNOWN"),
            }
        } else {
            return Raw::error(400, "DIGEST_INVALID");
        };
        let Some((media_type, bytes)) = self.objects.get(&(repository.to_string(), digest.clone()))
        else {
            let code = if manifest {
                "MANIFEST_UNKNOWN"
            } else {
                "BLOB_UNKNOWN"
            };
            return Raw::error(404, code);
        };
        let head = req.method == "HEAD";
        let media_type = if manifest {
            media_type.as_str()
        } else {
            OCTET_STREAM
        };
        let range = req.range.and_then(ByteRange::parse);
        match range.map(|r| r.resolve(bytes.len() as u64)) {
            Some(Some((first, last))) if !manifest && !head => {
                let (first, last) = (first as usize, last as usize);
                let part = bytes.slice(first..=last);
                Raw::object(206, (media_type, &part), &digest, false).header(
                    "Content-Range",
                    format!("bytes {first}-{last}/{}", bytes.len()),
                )
            }
            Some(None) if !manifest && !head => Raw::error(416, "RANGE_INVALID")
                .header("Content-Range", format!("bytes */{}", bytes.len())),
            _ => Raw::object(200, (media_type, bytes), &digest, head),
        }
    }

    /// A page of `repository`'s tags, sorted, as `n` and `last` ask, with a
    /// `Link` to the next while more remain (as distribution 3 pages).
    fn tag_page(&self, repository: &str, query: &str) -> Raw {
        let pairs = ocirelay_core::percent::query_pairs(query).unwrap_or_default();
        let param = |name: &str| {
            pairs
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
        };
        let mut tags: Vec<&str> = self
            .tags
            .keys()
            .filter(|(r, _)| r == repository)
            .map(|(_, t)| t.as_str())
            .collect();
        if tags.is_empty() {
            return Raw::error(404, "NAME_UNKNOWN");
        }
        tags.sort_unstable();
        let last = param("last").unwrap_or_default();
        tags.retain(|t| *t > last.as_str());
        let n = param("n")
            .and_then(|n| n.parse().ok())
            .unwrap_or(usize::MAX);
        let more = tags.len() > n;
        tags.truncate(n);
        let body = Bytes::from(json!({"name": repository, "tags": tags}).to_string());
        let mut raw = Raw::new(200)
            .header("Content-Type", "application/json")
            .header("Content-Length", body.len().to_string());
        if let (true, Some(last)) = (more, tags.last()) {
            let next = format!("</v2/{repository}/tags/list?n={n}&last={last}>; rel=\"next\"");
            raw = raw.header("Link", next);
        }
        raw.with_body(body)
    }

    fn push_manifest(&mut self, repository: &str, object: &str, req: &Incoming<'_>) -> Raw {
        let digest = Digest::sha256(&req.body).to_string();
        if object.contains(':') && object != digest {
            return Raw::error(400, "DIGEST_INVALID");
        }
        let Ok(children) = ManifestChildren::parse(&req.body) else {
            return Raw::error(400, "MANIFEST_INVALID");
        };
        let missing = children
            .manifests
            .iter()
            .chain(children.config.iter())
            .chain(children.layers.iter())
            .any(|c| !self.has(repository, &c.digest.to_string()));
        if missing {
            return Raw::error(400, "MANIFEST_BLOB_UNKNOWN");
        }
        let media_type = req.content_type.unwrap_or(OCI_MANIFEST).to_string();
        self.objects.insert(
            (repository.to_string(), digest.clone()),
            (media_type, req.body.clone()),
        );
        if !object.contains(':') {
            self.tags
                .insert((repository.to_string(), object.to_string()), digest.clone());
        }
        Raw::new(201)
            .header("Location", format!("/v2/{repository}/manifests/{digest}"))
            .header("Docker-Content-Digest", digest)
    }

    fn open_upload(&mut self, repository: &str, query: &str) -> Raw {
        let param = |name: &str| {
            query
                .split('&')
                .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
                .map(|v| v.replace("%2F", "/").replace("%3A", ":"))
        };
        if let (Some(mount), Some(from)) = (param("mount"), param("from")) {
            if let Some(found) = self.objects.get(&(from, mount.clone())).cloned() {
                self.objects
                    .insert((repository.to_string(), mount.clone()), found);
                return Raw::new(201)
                    .header("Location", format!("/v2/{repository}/blobs/{mount}"))
                    .header("Docker-Content-Digest", mount);
            }
        }
        self.next_upload += 1;
        let session = format!("/v2/{repository}/blobs/uploads/u{}", self.next_upload);
        self.uploads
            .insert(session.clone(), (repository.to_string(), Vec::new()));
        Raw::new(202)
            .header(
                "Location",
                format!("{session}?_state=s{}", self.next_upload),
            )
            .header("Range", "0-0")
    }

    /// A chunk into an open session, where the upload is (as distribution
    /// checks `Content-Range`).
    fn append_upload(&mut self, path: &str, req: &Incoming<'_>) -> Raw {
        let Some((_, received)) = self.uploads.get_mut(path) else {
            return Raw::error(404, "BLOB_UPLOAD_UNKNOWN");
        };
        let first = req
            .content_range
            .and_then(|r| r.split('-').next()?.parse::<usize>().ok());
        if first != Some(received.len()) || req.body.is_empty() {
            return Raw::error(416, "BLOB_UPLOAD_INVALID");
        }
        received.extend_from_slice(&req.body);
        let end = received.len();
        Raw::new(202)
            .header("Location", format!("{path}?_state=at{end}"))
            .header("Range", format!("0-{}", end - 1))
    }

    /// How much an open session holds (`Range: 0-LAST`, `0-0` when empty).
    fn upload_status(&self, path: &str) -> Raw {
        let Some((_, received)) = self.uploads.get(path) else {
            return Raw::error(404, "BLOB_UPLOAD_UNKNOWN");
        };
        let end = received.len();
        Raw::new(204)
            .header("Location", format!("{path}?_state=at{end}"))
            .header("Range", format!("0-{}", end.saturating_sub(1)))
    }

    fn complete_upload(&mut self, path: &str, query: &str, req: &Incoming<'_>) -> Raw {
        let Some((repository, received)) = self.uploads.remove(path) else {
            return Raw::error(404, "BLOB_UPLOAD_UNKNOWN");
        };
        let body: Bytes = [&received[..], &req.body[..]].concat().into();
        let Some(digest) = query
            .split('&')
            .find_map(|kv| kv.strip_prefix("digest="))
            .map(|d| d.replace("%3A", ":"))
        else {
            return Raw::error(400, "DIGEST_INVALID");
        };
        if Digest::sha256(&body).to_string() != digest {
            return Raw::error(400, "DIGEST_INVALID");
        }
        self.objects.insert(
            (repository.clone(), digest.clone()),
            (OCTET_STREAM.to_string(), body),
        );
        Raw::new(201)
            .header("Location", format!("/v2/{repository}/blobs/{digest}"))
            .header("Docker-Content-Digest", digest)
    }
}

/// `bytes=N-` -> N.
/// The token service: a token for anyone who asks (GET), an access token
/// for a refresh token (POST).
pub fn token_service(method: &str, issued: u32) -> Raw {
    let body = if method == "POST" {
        json!({"access_token": format!("access-{issued}"), "expires_in": 300})
    } else {
        json!({"token": format!("token-{issued}"), "expires_in": 300})
    };
    let body = Bytes::from(body.to_string());
    Raw::new(200)
        .header("Content-Type", "application/json")
        .header("Content-Length", body.len().to_string())
        .with_body(body)
}

/// Blob storage: any fixture object by digest (`/blobs/<digest>`), as a
/// registry's redirect target would serve it.
pub fn cdn(path: &str, head: bool) -> Raw {
    let digest = path.rsplit('/').next().unwrap_or("");
    match Images::get().by_digest(digest) {
        Some(o) => Raw::object(200, (OCTET_STREAM, &o.bytes), digest, head),
        None => Raw::error(404, "BLOB_UNKNOWN"),
    }
}
