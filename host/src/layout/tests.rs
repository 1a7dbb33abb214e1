//! A layout answered as a registry, request by request: what is stored,
//! what is refused, and that nothing unchecked reaches a digest's name.

use bytes::Bytes;
use http_body_util::BodyExt as _;
use ocirelay_core::Digest;

use super::body::full;
use super::Layouts;

/// A layout in a fresh directory, and a runtime to answer with.
struct Fixture {
    dir: tempfile::TempDir,
    layouts: Layouts,
    host: String,
    rt: tokio::runtime::Runtime,
}

/// An answer's status, headers and body.
struct Answered {
    status: u16,
    headers: http::HeaderMap,
    body: Bytes,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let mut layouts = Layouts::default();
        let host = layouts.add(&dir.path().join("l"), true);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        Fixture {
            dir,
            layouts,
            host,
            rt,
        }
    }

    fn path(&self, rest: &str) -> std::path::PathBuf {
        self.dir.path().join("l").join(rest)
    }

    fn send(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Answered {
        let mut request = http::Request::builder()
            .method(method)
            .uri(format!("https://{}{path}", self.host));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request
            .body(full(Bytes::copy_from_slice(body)))
            .expect("a request");
        let (parts, body) = request.into_parts();
        let root = self.layouts.root(&self.host).expect("the root");
        self.rt.block_on(async {
            let answer = self
                .layouts
                .answer(root, parts, body)
                .await
                .expect("an answer");
            let (head, body) = answer.into_parts();
            let body = body.collect().await.expect("the body").to_bytes();
            Answered {
                status: head.status.as_u16(),
                headers: head.headers,
                body,
            }
        })
    }

    /// Uploads `blob` in two PATCHes and a PUT.
    fn upload(&self, blob: &[u8]) -> Answered {
        let started = self.send("POST", "/v2/layout/blobs/uploads/", &[], b"");
        assert_eq!(started.status, 202);
        let location = header(&started, "location");
        let (first, rest) = blob.split_at(blob.len() / 2);
        let patched = self.send("PATCH", &location, &[], first);
        assert_eq!(patched.status, 202);
        assert_eq!(header(&patched, "range"), format!("0-{}", first.len() - 1));
        let digest = Digest::sha256(blob);
        self.send("PUT", &format!("{location}?digest={digest}"), &[], rest)
    }
}

fn header(answer: &Answered, name: &str) -> String {
    answer
        .headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

fn image(config: &Digest, layer: &Digest) -> String {
    serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": 2},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer, "size": 5}],
    })
    .to_string()
}

#[test]
fn an_image_is_stored_named_and_read_back() {
    let f = Fixture::new();
    assert_eq!(f.send("GET", "/v2/", &[], b"").status, 200);
    let (config, layer) = (b"{}".as_slice(), b"layer".as_slice());
    for blob in [config, layer] {
        let put = f.upload(blob);
        assert_eq!(put.status, 201, "{:?}", put.body);
        assert_eq!(
            header(&put, "docker-content-digest"),
            Digest::sha256(blob).to_string()
        );
    }
    let manifest = image(&Digest::sha256(config), &Digest::sha256(layer));
    let oci = "application/vnd.oci.image.manifest.v1+json";
    let put = f.send(
        "PUT",
        "/v2/layout/manifests/v1",
        &[("content-type", oci)],
        manifest.as_bytes(),
    );
    assert_eq!(put.status, 201, "{:?}", put.body);
    let digest = Digest::sha256(manifest.as_bytes());
    let head = f.send("HEAD", "/v2/layout/manifests/v1", &[], b"");
    assert_eq!((head.status, head.body.len()), (200, 0));
    assert_eq!(header(&head, "docker-content-digest"), digest.to_string());
    assert_eq!(header(&head, "content-type"), oci);
    let got = f.send("GET", &format!("/v2/layout/manifests/{digest}"), &[], b"");
    assert_eq!(got.body, manifest.as_bytes());
    // A range of a blob.
    let path = format!("/v2/layout/blobs/{}", Digest::sha256(layer));
    let part = f.send("GET", &path, &[("range", "bytes=2-")], b"");
    assert_eq!((part.status, &part.body[..]), (206, &b"yer"[..]));
    assert_eq!(header(&part, "content-range"), "bytes 2-4/5");
    assert_eq!(
        f.send("GET", &path, &[("range", "bytes=9-")], b"").status,
        416
    );
    // Tags, paged as distribution pages them.
    for tag in ["v2", "v3"] {
        let path = format!("/v2/layout/manifests/{tag}");
        assert_eq!(f.send("PUT", &path, &[], manifest.as_bytes()).status, 201);
    }
    let page = f.send("GET", "/v2/layout/tags/list", &[], b"");
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&page.body).unwrap()["tags"],
        serde_json::json!(["v1", "v2", "v3"])
    );
    let page = f.send("GET", "/v2/layout/tags/list?n=1&last=v1", &[], b"");
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&page.body).unwrap()["tags"],
        serde_json::json!(["v2"])
    );
    assert!(
        header(&page, "link").contains("last=v2&n=1"),
        "{:?}",
        page.headers
    );
}

#[test]
fn bytes_that_are_not_their_digest_are_not_stored() {
    let f = Fixture::new();
    let put = f.send(
        "POST",
        &format!(
            "/v2/layout/blobs/uploads/?digest={}",
            Digest::sha256(b"other")
        ),
        &[],
        b"these",
    );
    assert_eq!(put.status, 400);
    assert!(String::from_utf8_lossy(&put.body).contains("DIGEST_INVALID"));
    let blobs: Vec<_> = std::fs::read_dir(f.path("blobs"))
        .unwrap()
        .flatten()
        .collect();
    assert!(blobs.is_empty(), "nothing stored, no part left: {blobs:?}");
    // A manifest put by a digest it does not have.
    let wrong = Digest::sha256(b"x");
    let put = f.send("PUT", &format!("/v2/layout/manifests/{wrong}"), &[], b"{}");
    assert_eq!(put.status, 400);
    assert!(!f.path(&format!("blobs/sha256/{}", wrong.hex())).exists());
}

#[test]
fn a_manifest_needs_what_it_names_and_a_referrer_is_listed() {
    let f = Fixture::new();
    let manifest = image(&Digest::sha256(b"{}"), &Digest::sha256(b"layer"));
    let put = f.send("PUT", "/v2/layout/manifests/v1", &[], manifest.as_bytes());
    assert_eq!(put.status, 400);
    assert!(String::from_utf8_lossy(&put.body).contains("MANIFEST_BLOB_UNKNOWN"));
    assert!(
        !f.path("index.json").exists()
            || !std::fs::read_to_string(f.path("index.json"))
                .unwrap()
                .contains("v1")
    );
    // A referrer (pushed by digest, with a subject): listed, unnamed, for
    // tools that find referrers in the layout's index (oras).
    f.upload(b"{}");
    let subject = Digest::sha256(b"{}");
    let referrer = serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": subject, "size": 2},
        "layers": [], "subject": {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": subject, "size": 2},
    })
    .to_string();
    let digest = Digest::sha256(referrer.as_bytes());
    let put = f.send(
        "PUT",
        &format!("/v2/layout/manifests/{digest}"),
        &[],
        referrer.as_bytes(),
    );
    assert_eq!(put.status, 201, "{:?}", put.body);
    let index = std::fs::read_to_string(f.path("index.json")).unwrap();
    assert!(index.contains(&digest.to_string()), "{index}");
    // The referrers API is not there: the fallback tag serves.
    let refs = f.send("GET", &format!("/v2/layout/referrers/{subject}"), &[], b"");
    assert_eq!(refs.status, 404);
}

#[test]
fn unknown_things_are_404s_of_the_right_code() {
    let f = Fixture::new();
    let d = Digest::sha256(b"none");
    for (path, code) in [
        ("/v2/layout/manifests/v1".to_string(), "NAME_UNKNOWN"),
        (format!("/v2/layout/blobs/{d}"), "BLOB_UNKNOWN"),
        (
            "/v2/layout/blobs/uploads/00ff".to_string(),
            "BLOB_UPLOAD_UNKNOWN",
        ),
    ] {
        let method = if path.contains("uploads") {
            "PATCH"
        } else {
            "GET"
        };
        let answer = f.send(method, &path, &[], b"");
        assert_eq!(answer.status, 404, "{path}");
        assert!(
            String::from_utf8_lossy(&answer.body).contains(code),
            "{path}: {:?}",
            answer.body
        );
        assert_eq!(
            header(&answer, "docker-distribution-api-version"),
            "registry/2.0"
        );
    }
    assert_eq!(
        f.send("DELETE", "/v2/layout/manifests/v1", &[], b"").status,
        405
    );
}
