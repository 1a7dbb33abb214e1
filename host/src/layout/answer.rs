//! A layout answered as a registry: each request the component sends to a
//! layout's name is read by the core ([`Ask`]) and answered here from the
//! directory, as distribution would answer it (status, headers, errors).
//! Nothing reaches a digest's name before its bytes are whole and checked.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use bytes::Bytes;
use http_body_util::BodyExt as _;
use ocirelay_core::digest::{Algorithm, Hasher};
use ocirelay_core::layout::{Ask, Object, Refusal};
use ocirelay_core::manifest::ManifestChildren;
use ocirelay_core::media_type::{OCI_INDEX, OCI_MANIFEST, OCTET_STREAM};
use ocirelay_core::range::ByteRange;
use ocirelay_core::Digest;
use tokio::io::{AsyncSeekExt as _, AsyncWriteExt as _};
use wasmtime_wasi_http::{Error, WasiBody};

use super::body::{full, read_all, FileBody};
use super::{Layouts, Root, Store, StoreError};

/// The largest manifest a layout takes or serves (the core's cache limit).
const MANIFEST_LIMIT: u64 = 4 * 1024 * 1024;

/// Uploads in progress, by id.
#[derive(Debug, Default)]
pub struct Uploads {
    open: Mutex<HashMap<String, Upload>>,
    next: AtomicU64,
}

/// An upload session: the part file its bytes go to, hashed as they come.
#[derive(Debug)]
struct Upload {
    store: Store,
    part: PathBuf,
    sha256: Hasher,
    size: u64,
}

impl Uploads {
    fn take(&self, id: &str) -> Option<Upload> {
        self.open.lock().ok()?.remove(id)
    }

    fn keep(&self, id: String, upload: Upload) {
        if let Ok(mut open) = self.open.lock() {
            open.insert(id, upload);
        }
    }
}

impl Drop for Uploads {
    /// Uploads never finished leave nothing behind.
    fn drop(&mut self) {
        if let Ok(open) = self.open.get_mut() {
            for upload in open.values() {
                let _ = std::fs::remove_file(&upload.part);
            }
        }
    }
}

/// An answer: its status, headers and body.
type Answer = http::Response<WasiBody>;

impl Layouts {
    /// The answer to `request`, sent to `root`'s name. An `Err` is what a
    /// connection's failure would be: the request's own body failed.
    pub async fn answer(
        &self,
        root: &Root,
        parts: http::request::Parts,
        body: WasiBody,
    ) -> Result<Answer, Error> {
        let ask = Ask::parse(parts.method.as_str(), parts.uri.path(), parts.uri.query());
        let head = parts.method == http::Method::HEAD;
        let answer = match ask {
            Err(refusal) => Ok(refused(&refusal)),
            Ok(ask) => self.answer_ask(root, ask, &parts, body).await,
        };
        let mut answer = match answer {
            Ok(answer) => answer,
            Err(Failed::Store(e)) => {
                tracing::debug!("layout: {e}");
                stored_failure(&e)
            }
            Err(Failed::Body(e)) => return Err(e),
        };
        answer.headers_mut().insert(
            "docker-distribution-api-version",
            http::HeaderValue::from_static("registry/2.0"),
        );
        if head {
            *answer.body_mut() = full(Bytes::new());
        }
        Ok(answer)
    }

    async fn answer_ask(
        &self,
        root: &Root,
        ask: Ask,
        parts: &http::request::Parts,
        body: WasiBody,
    ) -> Result<Answer, Failed> {
        let headers = &parts.headers;
        match ask {
            Ask::Base => Ok(json(200, "{}")),
            Ask::Manifest { name, object } => manifest(&root.store(&name), &object),
            Ask::PutManifest { name, object } => {
                let content_type = headers
                    .get(http::header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                let Some(bytes) = read_all(body, MANIFEST_LIMIT).await.map_err(Failed::Body)?
                else {
                    return Ok(refused(&Refusal::new(
                        413,
                        "MANIFEST_INVALID",
                        format!("a manifest is at most {MANIFEST_LIMIT} bytes"),
                    )));
                };
                put_manifest(&root.store(&name), &name, &object, content_type, &bytes)
            }
            Ask::Blob { name, digest } => {
                let range = headers
                    .get(http::header::RANGE)
                    .and_then(|v| ByteRange::parse(v.to_str().ok()?));
                blob(&root.store(&name), &digest, range).await
            }
            Ask::StartUpload {
                name,
                mount,
                digest,
            } => {
                let store = root.store(&name);
                if let Some(d) = mount.filter(|d| store.blob_size(d).is_some()) {
                    return Ok(blob_created(&name, &d));
                }
                let (part, file) = store.part()?;
                let mut upload = Upload {
                    store,
                    part,
                    sha256: Hasher::new(Algorithm::Sha256),
                    size: 0,
                };
                drop(file);
                if let Some(digest) = digest {
                    return finish(upload, &name, &digest, Some(body)).await;
                }
                upload_more(&mut upload, body).await?;
                let id = format!(
                    "{:08x}{:016x}",
                    std::process::id(),
                    self.uploads.next.fetch_add(1, Ordering::Relaxed)
                );
                let answer = upload_state(&name, &id, upload.size, 202);
                self.uploads.keep(id, upload);
                Ok(answer)
            }
            Ask::Upload { name, id, digest } => {
                let Some(mut upload) = self.uploads.take(&id) else {
                    return Ok(refused(&Refusal::new(
                        404,
                        "BLOB_UPLOAD_UNKNOWN",
                        format!("no upload {id}"),
                    )));
                };
                match (&parts.method, digest) {
                    (&http::Method::DELETE, _) => {
                        let _ = std::fs::remove_file(&upload.part);
                        Ok(json(204, ""))
                    }
                    (&http::Method::PUT, Some(digest)) => {
                        finish(upload, &name, &digest, Some(body)).await
                    }
                    (&http::Method::PUT, None) => {
                        let _ = std::fs::remove_file(&upload.part);
                        Ok(refused(&Refusal::new(
                            400,
                            "DIGEST_INVALID",
                            "the upload's last PUT names no digest",
                        )))
                    }
                    (method, _) => {
                        upload_more(&mut upload, body).await?;
                        let status = if method == http::Method::GET {
                            204
                        } else {
                            202
                        };
                        let answer = upload_state(&name, &id, upload.size, status);
                        self.uploads.keep(id, upload);
                        Ok(answer)
                    }
                }
            }
            Ask::Tags { name, n, last } => tags(&root.store(&name), &name, n, last.as_deref()),
            // No referrers API: the fallback tag (`sha256-<hex>`) serves.
            Ask::Referrers { name, .. } => Ok(refused(&Refusal::new(
                404,
                "UNSUPPORTED",
                format!("{name}: an OCI layout has no referrers API"),
            ))),
        }
    }
}

/// Why a request got no answer of its own.
enum Failed {
    /// The layout's files failed.
    Store(StoreError),
    /// The request's body failed (the sender's side).
    Body(Error),
}

impl From<StoreError> for Failed {
    fn from(e: StoreError) -> Self {
        Failed::Store(e)
    }
}

/// An answer of the distribution API's error document.
fn refused(refusal: &Refusal) -> Answer {
    json(refusal.status, &refusal.body())
}

/// What a layout's failure to read or write answers: 507 for a write that
/// failed (not retried: a full disk stays full), 500 for a layout found
/// unsound, 400 for bytes that are not what they were sent as.
fn stored_failure(e: &StoreError) -> Answer {
    let (status, code) = match e {
        StoreError::Io { .. } => (507, "UNKNOWN"),
        StoreError::Invalid { .. } => (500, "UNKNOWN"),
        StoreError::Mismatch(_) => (400, "DIGEST_INVALID"),
    };
    refused(&Refusal::new(status, code, e.to_string()))
}

/// A JSON answer.
fn json(status: u16, body: &str) -> Answer {
    let mut answer = http::Response::new(full(body.to_string()));
    *answer.status_mut() = http::StatusCode::from_u16(status).unwrap_or_default();
    if !body.is_empty() {
        set(&mut answer, "content-type", "application/json");
    }
    set(&mut answer, "content-length", &body.len().to_string());
    answer
}

/// Sets a header whose value we made (always a valid one).
fn set(answer: &mut Answer, name: &'static str, value: &str) {
    if let Ok(value) = http::HeaderValue::from_str(value) {
        answer.headers_mut().insert(name, value);
    }
}

/// A manifest by tag or digest: its bytes, media type and digest.
fn manifest(store: &Store, object: &Object) -> Result<Answer, Failed> {
    let unknown = |what: String| Ok(refused(&Refusal::new(404, "MANIFEST_UNKNOWN", what)));
    if !store.exists() {
        return Ok(refused(&Refusal::new(
            404,
            "NAME_UNKNOWN",
            format!("{}: no OCI image layout", store.dir().display()),
        )));
    }
    let index = store.index()?;
    let (digest, listed_type) = match object {
        Object::Tag(tag) => match index.find(tag) {
            Some(entry) => (entry.digest.clone(), Some(entry.media_type.clone())),
            None => return unknown(format!("no image named {tag:?} in the layout")),
        },
        Object::Digest(d) => (
            d.clone(),
            index.find_digest(d).map(|e| e.media_type.clone()),
        ),
    };
    let path = store.blob_path(&digest);
    let bytes = match std::fs::metadata(&path) {
        Ok(meta) if meta.len() > MANIFEST_LIMIT => {
            return unknown(format!("{digest}: larger than a manifest may be"))
        }
        Ok(_) => std::fs::read(&path).map_err(StoreError::io(&path))?,
        Err(_) => return unknown(format!("{digest}: not in the layout")),
    };
    let media_type = listed_type.unwrap_or_else(|| media_type_of(&bytes));
    let mut answer = http::Response::new(full(bytes.clone()));
    set(&mut answer, "content-type", &media_type);
    set(&mut answer, "content-length", &bytes.len().to_string());
    set(&mut answer, "docker-content-digest", &digest.to_string());
    Ok(answer)
}

/// A manifest's media type from its own `mediaType`, else from its shape.
fn media_type_of(bytes: &[u8]) -> String {
    let value: serde_json::Value = serde_json::from_slice(bytes).unwrap_or_default();
    match value.get("mediaType").and_then(|m| m.as_str()) {
        Some(m) => m.to_string(),
        None if value.get("manifests").is_some() => OCI_INDEX.to_string(),
        None => OCI_MANIFEST.to_string(),
    }
}

/// Stores a manifest (all it names must be in the layout) and lists it
/// under its tag; one with a `subject` is listed unnamed, so that tools
/// reading the layout (oras) find it as a referrer.
fn put_manifest(
    store: &Store,
    name: &str,
    object: &Object,
    content_type: Option<String>,
    bytes: &[u8],
) -> Result<Answer, Failed> {
    let digest = match object {
        Object::Digest(d) => {
            let actual = Digest::of(d.algorithm(), bytes);
            if &actual != d {
                return Ok(refused(&Refusal::new(
                    400,
                    "DIGEST_INVALID",
                    format!("the manifest put as {d} is {actual}"),
                )));
            }
            actual
        }
        Object::Tag(_) => Digest::sha256(bytes),
    };
    let children = match ManifestChildren::parse(bytes) {
        Ok(c) => c,
        Err(e) => {
            return Ok(refused(&Refusal::new(
                400,
                "MANIFEST_INVALID",
                e.to_string(),
            )))
        }
    };
    let named = children
        .manifests
        .iter()
        .chain(children.config.iter())
        .chain(children.layers.iter().filter(|l| l.urls.is_empty()));
    for child in named {
        if store.blob_size(&child.digest).is_none() {
            return Ok(refused(&Refusal::new(
                400,
                "MANIFEST_BLOB_UNKNOWN",
                format!("{}: not in the layout", child.digest),
            )));
        }
    }
    let media_type = content_type.unwrap_or_else(|| media_type_of(bytes));
    store.write_blob(&digest, bytes)?;
    let subject = serde_json::from_slice::<serde_json::Value>(bytes)
        .ok()
        .and_then(|v| v.get("subject").cloned());
    let size = bytes.len() as u64;
    match object {
        Object::Tag(tag) => store.update_index(|i| i.put(Some(tag), &media_type, &digest, size))?,
        Object::Digest(_) if subject.is_some() => {
            store.update_index(|i| i.put(None, &media_type, &digest, size))?
        }
        Object::Digest(_) => {}
    }
    let mut answer = json(201, "");
    set(
        &mut answer,
        "location",
        &format!("/v2/{name}/manifests/{digest}"),
    );
    set(&mut answer, "docker-content-digest", &digest.to_string());
    Ok(answer)
}

/// A blob's bytes, or the range of them asked for.
async fn blob(store: &Store, digest: &Digest, range: Option<ByteRange>) -> Result<Answer, Failed> {
    let Some(size) = store.blob_size(digest) else {
        return Ok(refused(&Refusal::new(
            404,
            "BLOB_UNKNOWN",
            format!("{digest}: not in the layout"),
        )));
    };
    let (status, first, last) = match range.map(|r| r.resolve(size)) {
        None => (200, 0, size.saturating_sub(1)),
        Some(Some((first, last))) => (206, first, last),
        Some(None) => {
            let mut answer = refused(&Refusal::new(
                416,
                "BLOB_UNKNOWN",
                format!("{digest}: no such range of {size} bytes"),
            ));
            set(&mut answer, "content-range", &format!("bytes */{size}"));
            return Ok(answer);
        }
    };
    let length = if size == 0 { 0 } else { last - first + 1 };
    let path = store.blob_path(digest);
    let mut file = tokio::fs::File::open(&path)
        .await
        .map_err(StoreError::io(&path))?;
    if first > 0 {
        file.seek(std::io::SeekFrom::Start(first))
            .await
            .map_err(StoreError::io(&path))?;
    }
    let mut answer = http::Response::new(FileBody::new(file, length).boxed_unsync());
    *answer.status_mut() = http::StatusCode::from_u16(status).unwrap_or_default();
    set(&mut answer, "content-type", OCTET_STREAM);
    set(&mut answer, "content-length", &length.to_string());
    set(&mut answer, "docker-content-digest", &digest.to_string());
    if status == 206 {
        set(
            &mut answer,
            "content-range",
            &format!("bytes {first}-{last}/{size}"),
        );
    }
    Ok(answer)
}

/// Appends `body` to the upload's part, hashing it.
async fn upload_more(upload: &mut Upload, mut body: WasiBody) -> Result<(), Failed> {
    let path = upload.part.clone();
    let mut file = tokio::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .await
        .map_err(StoreError::io(&path))?;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            let _ = std::fs::remove_file(&path);
            Failed::Body(e)
        })?;
        if let Ok(data) = frame.into_data() {
            file.write_all(&data).await.map_err(|e| {
                let _ = std::fs::remove_file(&path);
                StoreError::io(&path)(e)
            })?;
            upload.sha256.update(&data);
            upload.size += data.len() as u64;
        }
    }
    file.flush().await.map_err(StoreError::io(&path))?;
    Ok(())
}

/// Ends an upload: its last bytes, then the whole checked against
/// `digest` and put under it.
async fn finish(
    mut upload: Upload,
    name: &str,
    digest: &Digest,
    body: Option<WasiBody>,
) -> Result<Answer, Failed> {
    if let Some(body) = body {
        upload_more(&mut upload, body).await?;
    }
    let Upload {
        store,
        part,
        sha256,
        size,
    } = upload;
    let committed = tokio::task::spawn_blocking({
        let (store, digest) = (store.clone(), digest.clone());
        move || store.commit(&part, sha256, size, &digest)
    })
    .await
    .map_err(|e| Failed::Body(Error::InternalError(Some(format!("storing a blob: {e}")))))?;
    committed?;
    Ok(blob_created(name, digest))
}

/// A 201 for a blob now in the layout.
fn blob_created(name: &str, digest: &Digest) -> Answer {
    let mut answer = json(201, "");
    set(
        &mut answer,
        "location",
        &format!("/v2/{name}/blobs/{digest}"),
    );
    set(&mut answer, "docker-content-digest", &digest.to_string());
    answer
}

/// Where an upload stands: its URL and the bytes it has.
fn upload_state(name: &str, id: &str, size: u64, status: u16) -> Answer {
    let mut answer = json(status, "");
    set(
        &mut answer,
        "location",
        &format!("/v2/{name}/blobs/uploads/{id}"),
    );
    set(&mut answer, "docker-upload-uuid", id);
    set(
        &mut answer,
        "range",
        &format!("0-{}", size.saturating_sub(1)),
    );
    answer
}

/// A page of the layout's tags.
fn tags(store: &Store, name: &str, n: Option<usize>, last: Option<&str>) -> Result<Answer, Failed> {
    if !store.exists() {
        return Ok(refused(&Refusal::new(
            404,
            "NAME_UNKNOWN",
            format!("{}: no OCI image layout", store.dir().display()),
        )));
    }
    let all = store.index()?.tags();
    let after: Vec<&String> = all
        .iter()
        .filter(|t| last.is_none_or(|l| t.as_str() > l))
        .collect();
    let page: Vec<&String> = after
        .iter()
        .copied()
        .take(n.unwrap_or(usize::MAX))
        .collect();
    let body = serde_json::json!({"name": name, "tags": page}).to_string();
    let mut answer = json(200, &body);
    if let (Some(n), Some(end)) = (n, page.last()) {
        if after.len() > page.len() {
            set(
                &mut answer,
                "link",
                &format!("</v2/{name}/tags/list?last={end}&n={n}>; rel=\"next\""),
            );
        }
    }
    Ok(answer)
}
