//! A layout answered as a registry: each request the component sends to a
//! layout's name is read by the core ([`Ask`]), and answered from the
//! directory as the core says distribution would answer it
//! ([`ocirelay_core::layout::answer`]): here are the files and the bytes.
//! Nothing reaches a digest's name before its bytes are whole and checked.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use bytes::Bytes;
use http_body_util::BodyExt as _;
use ocirelay_core::digest::{Algorithm, Hasher};
use ocirelay_core::layout::answer::{self as say, Head, Listed, Trouble, MANIFEST_LIMIT};
use ocirelay_core::layout::{Ask, Object, Refusal};
use ocirelay_core::range::ByteRange;
use ocirelay_core::Digest;
use tokio::io::{AsyncSeekExt as _, AsyncWriteExt as _};
use wasmtime_wasi_http::{Error, WasiBody};

use super::body::{full, read_all, FileBody};
use super::{Layouts, Root, Store, StoreError};

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
            Err(refusal) => Ok(document(say::refused(&refusal))),
            Ok(ask) => self.answer_ask(root, ask, &parts, body).await,
        };
        let mut answer = match answer {
            Ok(answer) => answer,
            Err(Failed::Store(e)) => {
                tracing::debug!("layout: {e}");
                let trouble = match &e {
                    StoreError::Io { .. } => Trouble::Io,
                    StoreError::Invalid { .. } => Trouble::Unsound,
                    StoreError::Mismatch(_) => Trouble::Mismatch,
                };
                document(say::trouble(trouble, e.to_string()))
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
            Ask::Base => Ok(document(say::json(200, "{}".into()))),
            Ask::Manifest { name, object } => manifest(&root.store(&name), &object),
            Ask::PutManifest { name, object } => {
                let content_type = headers
                    .get(http::header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok());
                let Some(bytes) = read_all(body, MANIFEST_LIMIT).await.map_err(Failed::Body)?
                else {
                    let why = format!("a manifest is at most {MANIFEST_LIMIT} bytes");
                    return Ok(refused(413, "MANIFEST_INVALID", why));
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
                    return Ok(empty(say::created(format!("/v2/{name}/blobs/{d}"), &d)));
                }
                let (part, file) = store.part()?;
                drop(file);
                let mut upload = Upload {
                    store,
                    part,
                    sha256: Hasher::new(Algorithm::Sha256),
                    size: 0,
                };
                if let Some(digest) = digest {
                    return finish(upload, &name, &digest, Some(body)).await;
                }
                upload_more(&mut upload, body).await?;
                let id = format!(
                    "{:08x}{:016x}",
                    std::process::id(),
                    self.uploads.next.fetch_add(1, Ordering::Relaxed)
                );
                let answer = empty(say::upload_state(&name, &id, upload.size, 202));
                self.uploads.keep(id, upload);
                Ok(answer)
            }
            Ask::Upload { name, id, digest } => {
                let Some(mut upload) = self.uploads.take(&id) else {
                    return Ok(refused(
                        404,
                        "BLOB_UPLOAD_UNKNOWN",
                        format!("no upload {id}"),
                    ));
                };
                match (&parts.method, digest) {
                    (&http::Method::DELETE, _) => {
                        let _ = std::fs::remove_file(&upload.part);
                        Ok(document(say::json(204, String::new())))
                    }
                    (&http::Method::PUT, Some(digest)) => {
                        finish(upload, &name, &digest, Some(body)).await
                    }
                    (&http::Method::PUT, None) => {
                        let _ = std::fs::remove_file(&upload.part);
                        let why = "the upload's last PUT names no digest";
                        Ok(refused(400, "DIGEST_INVALID", why.into()))
                    }
                    (method, _) => {
                        upload_more(&mut upload, body).await?;
                        let status = if method == http::Method::GET {
                            204
                        } else {
                            202
                        };
                        let answer = empty(say::upload_state(&name, &id, upload.size, status));
                        self.uploads.keep(id, upload);
                        Ok(answer)
                    }
                }
            }
            Ask::Tags { name, n, last } => {
                let store = root.store(&name);
                if !store.exists() {
                    return Ok(no_layout(&store));
                }
                let tags = store.index()?.tags();
                Ok(document(say::tags_page(&name, &tags, n, last.as_deref())))
            }
            // No referrers API: the fallback tag (`sha256-<hex>`) serves.
            Ask::Referrers { name, .. } => {
                let why = format!("{name}: an OCI layout has no referrers API");
                Ok(refused(404, "UNSUPPORTED", why))
            }
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

/// An answer of `head` and `body`.
fn answer_of(head: Head, body: WasiBody) -> Answer {
    let mut answer = http::Response::new(body);
    *answer.status_mut() = http::StatusCode::from_u16(head.status).unwrap_or_default();
    for (name, value) in head.headers {
        let name = http::HeaderName::from_bytes(name.as_bytes());
        if let (Ok(name), Ok(value)) = (name, http::HeaderValue::from_str(&value)) {
            answer.headers_mut().append(name, value);
        }
    }
    answer
}

/// An answer whose body is a small document.
fn document((head, body): (Head, String)) -> Answer {
    answer_of(head, full(body))
}

/// An answer without a body.
fn empty(head: Head) -> Answer {
    answer_of(head, full(Bytes::new()))
}

/// The distribution API's error of `status` and `code`.
fn refused(status: u16, code: &'static str, message: String) -> Answer {
    document(say::refused(&Refusal::new(status, code, message)))
}

/// A 404 for a repository that is no layout (yet).
fn no_layout(store: &Store) -> Answer {
    let why = format!("{}: no OCI image layout", store.dir().display());
    refused(404, "NAME_UNKNOWN", why)
}

/// A manifest by tag or digest: its bytes, media type and digest.
fn manifest(store: &Store, object: &Object) -> Result<Answer, Failed> {
    let unknown = |what: String| Ok(refused(404, "MANIFEST_UNKNOWN", what));
    if !store.exists() {
        return Ok(no_layout(store));
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
    let media_type = listed_type.unwrap_or_else(|| say::media_type_of(&bytes));
    let head = say::manifest(&digest, &media_type, bytes.len() as u64);
    Ok(answer_of(head, full(bytes)))
}

/// Stores a manifest, as the core says it is to be stored and listed.
fn put_manifest(
    store: &Store,
    name: &str,
    object: &Object,
    content_type: Option<&str>,
    bytes: &[u8],
) -> Result<Answer, Failed> {
    let has = |d: &Digest| store.blob_size(d).is_some();
    let storing = match say::storing(object, bytes, content_type, has) {
        Ok(storing) => storing,
        Err(refusal) => return Ok(document(say::refused(&refusal))),
    };
    let (digest, media_type, size) = (&storing.digest, &storing.media_type, bytes.len() as u64);
    store.write_blob(digest, bytes)?;
    match &storing.listed {
        Listed::Named(tag) => store.update_index(|i| i.put(Some(tag), media_type, digest, size))?,
        Listed::Unnamed => store.update_index(|i| i.put(None, media_type, digest, size))?,
        Listed::No => {}
    }
    Ok(empty(say::created(
        format!("/v2/{name}/manifests/{digest}"),
        digest,
    )))
}

/// A blob's bytes, or the range of them asked for.
async fn blob(store: &Store, digest: &Digest, range: Option<ByteRange>) -> Result<Answer, Failed> {
    let Some(size) = store.blob_size(digest) else {
        return Ok(refused(
            404,
            "BLOB_UNKNOWN",
            format!("{digest}: not in the layout"),
        ));
    };
    let part = match say::blob(digest, size, range) {
        Ok(part) => part,
        Err(refusal) => return Ok(document(refusal)),
    };
    let path = store.blob_path(digest);
    let mut file = tokio::fs::File::open(&path)
        .await
        .map_err(StoreError::io(&path))?;
    if part.first > 0 {
        file.seek(std::io::SeekFrom::Start(part.first))
            .await
            .map_err(StoreError::io(&path))?;
    }
    let body = FileBody::new(file, part.length).boxed_unsync();
    Ok(answer_of(part.head, body))
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
    Ok(empty(say::created(
        format!("/v2/{name}/blobs/{digest}"),
        digest,
    )))
}
