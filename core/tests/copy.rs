//! Pushing and copying against scripted registries: ensure-blob, copy-blob,
//! ensure-manifest and copy-manifest, with every request asserted.

use ocirelay_core::auth::Credential;
use ocirelay_core::http::{Method, Request, RequestBody, TransportError};
use ocirelay_core::media_type::{DOCKER_MANIFEST, OCI_CONFIG, OCI_INDEX, OCI_MANIFEST};
use ocirelay_core::ops::copy_blob::CopyBlob;
use ocirelay_core::ops::copy_manifest::CopyManifest;
use ocirelay_core::ops::ensure_blob::{BlobSource, EnsureBlob};
use ocirelay_core::ops::ensure_manifest::{ChildRefs, EnsureManifest};
use ocirelay_core::{Client, ClientConfig, Descriptor, Digest, Error, Reference};
use serde_json::json;

mod common;
use common::{client, drive, drive_concurrently, manifest_ok, response, urls, World};

const A: &str = "localhost:5000";
const B: &str = "127.0.0.1:6000";

fn r(s: &str) -> Reference {
    Reference::parse(s).unwrap()
}

/// An image (config + layers) in `repo` of `host`; returns the manifest bytes and its descriptor.
fn image(world: &mut World, host: &str, repo: &str, layers: &[&[u8]]) -> (Vec<u8>, Descriptor) {
    let reg = world.reg(host);
    let config = br#"{"architecture":"amd64","os":"linux"}"#;
    let cd = reg.put(repo, OCI_CONFIG, config);
    let layers: Vec<serde_json::Value> = layers
        .iter()
        .map(|l| {
            let d = reg.put(repo, "application/octet-stream", l);
            json!({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d.to_string(), "size": l.len()})
        })
        .collect();
    let manifest = json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": cd.to_string(), "size": config.len()},
        "layers": layers,
    })
    .to_string()
    .into_bytes();
    let d = reg.put(repo, OCI_MANIFEST, &manifest);
    let len = manifest.len() as u64;
    (manifest, Descriptor::new(OCI_MANIFEST, d, len))
}

/// The copy of `A/src:v1` to `B/dst:v1`, children from the source.
fn src_v1_to_dst() -> CopyManifest {
    CopyManifest::new(
        r(&format!("{A}/src:v1")),
        r(&format!("{B}/dst:v1")),
        ChildRefs::default(),
    )
}

/// Ensure-manifest of an OCI image manifest's `bytes` at `reference`.
fn ensure_manifest(reference: &str, bytes: Vec<u8>) -> EnsureManifest {
    EnsureManifest::new(r(reference), bytes, OCI_MANIFEST, ChildRefs::default()).unwrap()
}

fn methods(sent: &[Request]) -> Vec<String> {
    sent.iter()
        .map(|r| {
            let path = r.url.path_and_query.split('?').next().unwrap_or("");
            let kind = if path.contains("/manifests/") {
                "manifest"
            } else if path.contains("/blobs/uploads/") || path.starts_with("/upload/") {
                "upload"
            } else if path.contains("/blobs/") {
                "blob"
            } else {
                "other"
            };
            let mount = if r.url.path_and_query.contains("mount=") {
                "+mount"
            } else {
                ""
            };
            format!("{} {}{mount} {}", r.method.as_str(), kind, r.url.authority)
        })
        .collect()
}

#[test]
fn ensure_blob_checks_its_input_then_heads_only_when_worth_it() {
    let mut world = World::default();
    let mut c = client(&[]);
    let small = b"small blob".to_vec();
    let d = Digest::sha256(&small);

    // Bad references and lying content: errors before anything is sent.
    let err = EnsureBlob::new(
        &c,
        r(&format!("{A}/x:tag@{d}")),
        BlobSource::Bytes(small.clone().into()),
    )
    .unwrap_err();
    assert!(err.to_string().contains("blobs cannot have tags"), "{err}");
    let err = EnsureBlob::new(
        &c,
        r(&format!("{A}/x")),
        BlobSource::Bytes(small.clone().into()),
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("blobs must be pushed by digest"),
        "{err}"
    );
    let err = EnsureBlob::new(
        &c,
        r(&format!("{A}/x@{d}")),
        BlobSource::Bytes(b"other blob".to_vec().into()),
    )
    .unwrap_err();
    assert!(matches!(err, Error::Integrity { .. }), "{err}");

    // Small: no HEAD, POST + PUT.
    let mut op = EnsureBlob::new(
        &c,
        r(&format!("{A}/x@{d}")),
        BlobSource::Bytes(small.clone().into()),
    )
    .unwrap();
    let (out, sent) = drive(&mut c, &mut op, |q| world.serve(q));
    assert_eq!(out.unwrap().digest, d);
    assert_eq!(
        methods(&sent),
        [format!("POST upload {A}"), format!("PUT upload {A}")]
    );
    assert_eq!(
        sent[1].headers.get("content-type"),
        Some("application/octet-stream")
    );
    assert!(sent[1].url.path_and_query.ends_with(&format!("digest={d}")));
    assert!(world.reg(A).has("x", &d));

    // Big and already present: one HEAD, nothing sent.
    let big = vec![7u8; 70_000];
    let bd = world.reg(A).put("x", "application/octet-stream", &big);
    let mut op =
        EnsureBlob::new(&c, r(&format!("{A}/x@{bd}")), BlobSource::Bytes(big.into())).unwrap();
    let (out, sent) = drive(&mut c, &mut op, |q| world.serve(q));
    assert_eq!(out.unwrap().size, 70_000);
    assert_eq!(methods(&sent), [format!("HEAD blob {A}")]);
}

#[test]
fn a_head_is_worth_it_above_65535_bytes() {
    for (size, heads) in [(65_535, 0), (65_536, 1)] {
        let mut world = World::default();
        let content = vec![1u8; size];
        let d = Digest::sha256(&content);
        let mut c = client(&[]);
        let reference = r(&format!("{A}/x@{d}"));
        let mut op = EnsureBlob::new(&c, reference, BlobSource::Bytes(content.into())).unwrap();
        let (out, sent) = drive(&mut c, &mut op, |q| world.serve(q));
        assert_eq!(out.unwrap().size, size as u64);
        let sent_heads = sent.iter().filter(|q| q.method == Method::Head).count();
        assert_eq!(sent_heads, heads, "{size} bytes: {:?}", urls(&sent));

        // A copy whose size the manifest told: the same rule.
        let mut world = World::default();
        world
            .reg(A)
            .put("src", "application/octet-stream", &vec![1u8; size]);
        let known = Descriptor::new("l", d.clone(), size as u64);
        let mut op = CopyBlob::new(
            r(&format!("{A}/src@{d}")),
            r(&format!("{B}/dst")),
            Some(known),
        )
        .unwrap();
        let (out, sent) = drive(&mut client(&[]), &mut op, |q| world.serve(q));
        assert_eq!(out.unwrap().size, size as u64);
        let sent_heads = sent.iter().filter(|q| q.method == Method::Head).count();
        assert_eq!(sent_heads, heads, "copy of {size} bytes: {:?}", urls(&sent));
    }
}

#[test]
fn a_blob_of_another_size_is_not_the_one_ensured_and_writes_say_their_length() {
    let content = vec![9u8; 70_000];
    let d = Digest::sha256(&content);
    let mut c = client(&[]);
    let mut op = EnsureBlob::new(
        &c,
        r(&format!("{A}/x@{d}")),
        BlobSource::Bytes(content.into()),
    )
    .unwrap();
    let (out, sent) = drive(&mut c, &mut op, |q| {
        Ok(match q.method {
            // The registry has something of that digest, but not of our size.
            Method::Head => response(
                200,
                &[
                    ("Content-Length", "12"),
                    ("Docker-Content-Digest", &d.to_string()),
                ],
                b"",
            ),
            Method::Post => response(202, &[("Location", "/upload/1")], b""),
            _ => response(201, &[("Docker-Content-Digest", &d.to_string())], b""),
        })
    });
    assert_eq!(out.unwrap().size, 70_000);
    assert_eq!(
        methods(&sent),
        [
            format!("HEAD blob {A}"),
            format!("POST upload {A}"),
            format!("PUT upload {A}")
        ]
    );
    assert_eq!(
        sent[1].headers.get("content-length"),
        Some("0"),
        "a write without a body says so"
    );
}

#[test]
fn a_registry_refusing_the_digest_is_an_integrity_error() {
    let mut c = client(&[]);
    let content = b"content".to_vec();
    let d = Digest::sha256(&content);
    let mut op = EnsureBlob::new(
        &c,
        r(&format!("{A}/x@{d}")),
        BlobSource::Bytes(content.into()),
    )
    .unwrap();
    let (out, _) = drive(&mut c, &mut op, |q| {
        Ok(match q.method {
            Method::Post => response(202, &[("Location", "/upload/1")], b""),
            _ => response(400, &[], br#"{"errors":[{"code":"DIGEST_INVALID"}]}"#),
        })
    });
    let err = out.unwrap_err();
    assert!(
        matches!(err, Error::Integrity { .. }) && err.to_string().contains("DIGEST_INVALID"),
        "{err}"
    );
    // Another refusal is the registry's error, as it said it.
    let content = b"content".to_vec();
    let mut op = EnsureBlob::new(
        &c,
        r(&format!("{A}/x@{d}")),
        BlobSource::Bytes(content.into()),
    )
    .unwrap();
    let (out, _) = drive(&mut c, &mut op, |q| {
        Ok(match q.method {
            Method::Post => response(202, &[("Location", "/upload/1")], b""),
            _ => response(400, &[], br#"{"errors":[{"code":"BLOB_UPLOAD_INVALID"}]}"#),
        })
    });
    let err = out.unwrap_err();
    assert!(
        matches!(err, Error::Registry { ref code, .. } if code.as_deref() == Some("BLOB_UPLOAD_INVALID")),
        "{err}"
    );
}

#[test]
fn copy_blob_within_a_registry_mounts() {
    let mut world = World::default();
    let (_, _) = image(&mut world, A, "src", &[b"layer"]);
    let d = Digest::sha256(b"layer");
    let mut c = client(&[]);
    let mut op = CopyBlob::new(
        r(&format!("{A}/src@{d}")),
        r(&format!("{A}/dst")),
        Some(Descriptor::new("l", d.clone(), 5)),
    )
    .unwrap();
    let (out, sent) = drive(&mut c, &mut op, |q| world.serve(q));
    assert_eq!(out.unwrap(), Descriptor::new("l", d.clone(), 5));
    assert_eq!(methods(&sent), [format!("POST upload+mount {A}")]);
    assert!(sent[0]
        .url
        .path_and_query
        .ends_with(&format!("?mount={d}&from=src")));
    assert!(world.reg(A).has("dst", &d));

    // The cache knows it now: ensuring it again costs nothing.
    let mut op = CopyBlob::new(
        r(&format!("{A}/src@{d}")),
        r(&format!("{A}/dst")),
        Some(Descriptor::new("l", d.clone(), 70_000)),
    )
    .unwrap();
    let (_, sent) = drive(&mut c, &mut op, |q| world.serve(q));
    assert!(sent.is_empty(), "made present by this client: no request");
}

#[test]
fn a_mount_answered_with_a_session_streams_into_it() {
    let mut world = World::default();
    world.reg(A).mounts_open_sessions = true;
    world.reg(A).hold_above = Some(0);
    image(&mut world, A, "src", &[b"big layer"]);
    let d = Digest::sha256(b"big layer");
    let mut c = client(&[]);
    let mut op = CopyBlob::new(r(&format!("{A}/src@{d}")), r(&format!("{A}/dst")), None).unwrap();
    let (out, sent) = drive(&mut c, &mut op, |q| world.serve(q));
    assert_eq!(out.unwrap().size, 9);
    assert_eq!(
        methods(&sent),
        [
            format!("POST upload+mount {A}"),
            format!("GET blob {A}"),
            format!("PUT upload {A}")
        ],
        "no second POST: the mount's session is used"
    );
    assert_eq!(
        sent[2].body,
        RequestBody::Transfer {
            from: ocirelay_core::http::RequestId(2),
            size: 9,
            digest: d.clone(),
        }
    );
}

#[test]
fn a_refused_mount_falls_back_to_a_copy() {
    let mut world = World::default();
    world.reg(A).refuse_mounts = true;
    image(&mut world, A, "src", &[b"layer"]);
    let d = Digest::sha256(b"layer");
    let mut c = client(&[]);
    let mut op = CopyBlob::new(r(&format!("{A}/src@{d}")), r(&format!("{A}/dst")), None).unwrap();
    let (out, sent) = drive(&mut c, &mut op, |q| world.serve(q));
    assert_eq!(out.unwrap().digest, d);
    assert_eq!(
        methods(&sent),
        [
            format!("POST upload+mount {A}"),
            format!("POST upload {A}"),
            format!("GET blob {A}"),
            format!("PUT upload {A}")
        ],
        "the session is opened before the source is read"
    );
    assert_eq!(
        sent[3].body,
        RequestBody::Bytes(b"layer".to_vec().into()),
        "small blobs arrive whole and go whole"
    );
}

#[test]
fn copy_blob_across_registries_heads_then_streams() {
    let mut world = World::default();
    world.reg(A).hold_above = Some(1000);
    let big = vec![3u8; 100_000];
    let d = world.reg(A).put("src", "application/octet-stream", &big);
    let known = Descriptor::new(
        "application/vnd.oci.image.layer.v1.tar+gzip",
        d.clone(),
        100_000,
    );
    let mut c = client(&[]);
    let mut op = CopyBlob::new(
        r(&format!("{A}/src@{d}")),
        r(&format!("{B}/dst@{d}")),
        Some(known.clone()),
    )
    .unwrap();
    let (out, sent) = drive(&mut c, &mut op, |q| world.serve(q));
    assert_eq!(out.unwrap(), known);
    assert_eq!(
        methods(&sent),
        [
            format!("HEAD blob {B}"),
            format!("POST upload {B}"),
            format!("GET blob {A}"),
            format!("PUT upload {B}")
        ],
        "the source is read only once the session is open: its body goes straight into the PUT"
    );
    let RequestBody::Transfer { size, .. } = sent[3].body else {
        panic!("streamed: {:?}", sent[3].body)
    };
    assert_eq!(size, 100_000);
    assert_eq!(sent[3].headers.get("content-length"), Some("100000"));

    // Present now: a HEAD, nothing else (fresh client, so not from cache).
    let mut c = client(&[]);
    let mut op = CopyBlob::new(
        r(&format!("{A}/src@{d}")),
        r(&format!("{B}/dst")),
        Some(known),
    )
    .unwrap();
    let (_, sent) = drive(&mut c, &mut op, |q| world.serve(q));
    assert_eq!(methods(&sent), [format!("HEAD blob {B}")]);

    // Bad arguments.
    let err = CopyBlob::new(r(&format!("{A}/src")), r(&format!("{B}/dst")), None).unwrap_err();
    assert!(err.to_string().contains("missing digest"), "{err}");
    let other = Digest::sha256(b"x");
    let err = CopyBlob::new(
        r(&format!("{A}/src@{d}")),
        r(&format!("{B}/dst@{other}")),
        None,
    )
    .unwrap_err();
    assert!(err.to_string().contains("digest mismatch"), "{err}");
}

#[test]
fn ensure_manifest_head_hit_sends_nothing_else() {
    let mut world = World::default();
    let (bytes, desc) = image(&mut world, A, "app", &[b"l"]);
    world.reg(A).tag("app", "v1", &desc.digest);
    let mut c = client(&[]);
    let mut op = ensure_manifest(&format!("{A}/app:v1"), bytes);
    let (out, sent) = drive(&mut c, &mut op, |q| world.serve(q));
    assert_eq!(out.unwrap().digest, desc.digest);
    assert_eq!(methods(&sent), [format!("HEAD manifest {A}")]);
    assert!(sent[0].url.path_and_query.ends_with("/manifests/v1"));
}

#[test]
fn copy_manifest_across_registries_copies_children_then_pushes_again() {
    let mut world = World::default();
    let (_, desc) = image(&mut world, A, "src", &[b"one", b"two"]);
    world.reg(A).tag("src", "v1", &desc.digest);
    let mut c = client(&[]);
    let mut op = src_v1_to_dst();
    let (out, sent, most) = drive_concurrently(&mut c, &mut op, |q| world.serve(q));
    assert_eq!(
        out.unwrap().digest,
        desc.digest,
        "digests never change in a copy"
    );
    let m = methods(&sent);
    assert_eq!(
        &m[..3],
        [
            format!("GET manifest {A}"),
            format!("HEAD manifest {B}"),
            format!("PUT manifest {B}")
        ]
    );
    assert_eq!(m.last().unwrap(), &format!("PUT manifest {B}"));
    assert_eq!(
        m.iter().filter(|x| x.starts_with("GET blob")).count(),
        3,
        "config and two layers: {m:#?}"
    );
    assert!(most >= 3, "children are copied side by side");
    for blob in [&b"one"[..], b"two"] {
        assert!(world.reg(B).has("dst", &Digest::sha256(blob)));
    }

    // The same copy again in this client: one HEAD, answered from the cache.
    let mut op = src_v1_to_dst();
    let (_, sent) = drive(&mut c, &mut op, |q| world.serve(q));
    assert!(sent.is_empty(), "{:?}", urls(&sent));
    // A fresh client: the source GET, and one HEAD at the destination.
    let mut c = client(&[]);
    let mut op = src_v1_to_dst();
    let (_, sent) = drive(&mut c, &mut op, |q| world.serve(q));
    assert_eq!(
        methods(&sent),
        [format!("GET manifest {A}"), format!("HEAD manifest {B}")]
    );
}

#[test]
fn index_children_are_ensured_recursively_from_their_fallback_refs() {
    let mut world = World::default();
    // The child image lives in another repository than the index.
    let (_, child) = image(&mut world, A, "images", &[b"layer"]);
    let mut entry = serde_json::to_value(&child).unwrap();
    entry["platform"] = json!({"architecture": "amd64", "os": "linux"});
    let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [entry]})
        .to_string()
        .into_bytes();
    let mut c = client(&[]);
    let mut children = ChildRefs::default();
    children
        .by_digest
        .insert(child.digest.clone(), r(&format!("{A}/images")));
    let mut op = EnsureManifest::new(
        r(&format!("{B}/dst:multi")),
        index.clone(),
        OCI_INDEX,
        children,
    )
    .unwrap();
    let (out, sent, _) = drive_concurrently(&mut c, &mut op, |q| world.serve(q));
    assert_eq!(out.unwrap().digest, Digest::sha256(&index));
    assert!(
        world.reg(B).has("dst", &child.digest),
        "the child manifest was ensured"
    );
    assert!(
        world.reg(B).has("dst", &Digest::sha256(b"layer")),
        "its layer came from the child's own source"
    );
    let gets: Vec<String> = sent
        .iter()
        .filter(|q| q.method == Method::Get)
        .map(|q| q.url.path_and_query.clone())
        .collect();
    assert!(
        gets.iter().all(|p| p.starts_with("/v2/images/")),
        "{gets:#?}"
    );

    // Without a source for the child, the fallback is the reference itself:
    // nothing there, so a clear error naming it.
    let mut c = client(&[]);
    let mut op = EnsureManifest::new(
        r(&format!("{B}/elsewhere:x")),
        index,
        OCI_INDEX,
        ChildRefs::default(),
    )
    .unwrap();
    let (out, _) = drive(&mut c, &mut op, |q| world.serve(q));
    let err = out.unwrap_err().to_string();
    assert!(
        err.contains(&format!("{B}/elsewhere@{}: not found", child.digest)),
        "{err}"
    );
}

#[test]
fn a_tag_on_other_content_is_moved_and_a_failing_push_copies_nothing() {
    let mut world = World::default();
    let (_, old_desc) = image(&mut world, A, "app", &[b"old"]);
    let (new, new_desc) = image(&mut world, A, "app", &[b"new"]);
    world.reg(A).tag("app", "v1", &old_desc.digest);
    let mut c = client(&[]);
    let mut op = ensure_manifest(&format!("{A}/app:v1"), new.clone());
    let (out, sent) = drive(&mut c, &mut op, |q| world.serve(q));
    assert_eq!(out.unwrap(), new_desc);
    assert_eq!(
        methods(&sent),
        [format!("HEAD manifest {A}"), format!("PUT manifest {A}")],
        "the tag names other content: pushed"
    );
    assert!(world.reg(A).tagged("app", "v1", &new_desc.digest));

    // A registry failing every push (500): its error, naming the manifest,
    // after three tries; no child is copied for it.
    let mut c = client(&[]);
    let mut op = ensure_manifest(&format!("{B}/app:v1"), new);
    let (out, sent) = drive(&mut c, &mut op, |q| {
        Ok(match q.method {
            Method::Head => response(404, &[], b""),
            _ => response(500, &[], b""),
        })
    });
    assert_eq!(
        out.unwrap_err().to_string(),
        format!("{B}/app:v1: registry answered 500")
    );
    assert_eq!(
        methods(&sent),
        [
            format!("HEAD manifest {B}"),
            format!("PUT manifest {B}"),
            format!("PUT manifest {B}"),
            format!("PUT manifest {B}")
        ]
    );
}

#[test]
fn children_are_copied_at_most_concurrency_at_a_time() {
    let mut world = World::default();
    let layers: Vec<Vec<u8>> = (0..6u8).map(|i| vec![i; 10]).collect();
    let refs: Vec<&[u8]> = layers.iter().map(Vec::as_slice).collect();
    let (_, desc) = image(&mut world, A, "src", &refs);
    let mut c = Client::new(ClientConfig {
        concurrency: 2,
        ..ClientConfig::default()
    });
    let mut op = CopyManifest::new(
        r(&format!("{A}/src@{}", desc.digest)),
        r(&format!("{B}/dst:v1")),
        ChildRefs::default(),
    );
    let (out, _, most) = drive_concurrently(&mut c, &mut op, |q| world.serve(q));
    assert_eq!(out.unwrap().digest, desc.digest);
    assert_eq!(most, 2, "config and six layers, two at a time");
}

#[test]
fn a_copy_keeps_the_source_media_type_unless_told_another() {
    let mut world = World::default();
    let (_, desc) = image(&mut world, A, "src", &[b"typed"]);
    let src = r(&format!("{A}/src@{}", desc.digest));
    for (told, pushed) in [("", OCI_MANIFEST), (DOCKER_MANIFEST, DOCKER_MANIFEST)] {
        let mut c = client(&[]);
        let dst = r(&format!("{B}/dst-{}:v1", told.len()));
        let mut op =
            CopyManifest::new(src.clone(), dst, ChildRefs::default()).with_media_type(told);
        let (out, sent) = drive(&mut c, &mut op, |q| world.serve(q));
        assert_eq!(out.unwrap().media_type, pushed, "told {told:?}");
        let put = sent.iter().rfind(|q| q.method == Method::Put).unwrap();
        assert_eq!(put.headers.get("content-type"), Some(pushed));
    }
}

#[test]
fn ensure_manifest_checks_digests_both_ways() {
    let mut world = World::default();
    let (bytes, desc) = image(&mut world, A, "app", &[b"l"]);
    // A reference digest that is not the bytes' is an error, up front.
    let other = Digest::sha256(b"nope");
    let err = EnsureManifest::new(
        r(&format!("{A}/app:v1@{other}")),
        bytes.clone(),
        OCI_MANIFEST,
        ChildRefs::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("digest mismatch"), "{err}");

    // Tag and (matching) digest: HEAD by tag, PUT by tag.
    let mut c = client(&[]);
    let mut op = ensure_manifest(&format!("{A}/app:v2@{}", desc.digest), bytes.clone());
    let (out, sent) = drive(&mut c, &mut op, |q| world.serve(q));
    assert_eq!(out.unwrap(), desc);
    assert_eq!(
        methods(&sent),
        [format!("HEAD manifest {A}"), format!("PUT manifest {A}")]
    );
    assert!(
        sent.iter()
            .all(|q| q.url.path_and_query.ends_with("/manifests/v2")),
        "{:?}",
        urls(&sent)
    );
    assert!(world.reg(A).tagged("app", "v2", &desc.digest));

    // A registry that says it stored another digest than ours, and does
    // not have ours: an error naming both.
    let mut c = client(&[]);
    let mut op = ensure_manifest(&format!("{A}/app:v3"), bytes);
    let (out, sent) = drive(&mut c, &mut op, |q| {
        Ok(match q.method {
            Method::Head => response(404, &[], b""),
            _ => response(201, &[("Docker-Content-Digest", &other.to_string())], b""),
        })
    });
    let err = out.unwrap_err().to_string();
    assert!(
        err.contains(&format!("pushed {}", desc.digest))
            && err.contains(&format!("201 for {other}"))
            && err.contains("does not have it"),
        "{err}"
    );
    assert_eq!(
        methods(&sent),
        [
            format!("HEAD manifest {A}"),
            format!("PUT manifest {A}"),
            format!("HEAD manifest {A}")
        ]
    );
    assert!(
        sent[2]
            .url
            .path_and_query
            .ends_with(&desc.digest.to_string()),
        "by digest"
    );
}

#[test]
fn a_201_that_confirms_nothing_is_checked_with_one_head() {
    // Blobs and manifests alike: a 201 without a digest is confirmed by a
    // HEAD; the blob or manifest then is there, or the push failed.
    let (bytes, desc) = {
        let mut world = World::default();
        image(&mut world, A, "app", &[b"confirmed"])
    };
    let blob = vec![4u8; 70_000];
    let bd = Digest::sha256(&blob);
    // The manifest pushed where its PUT is answered 201 without a digest
    // and a HEAD of its digest with `held` (`None`: 404).
    let push_manifest = |held: Option<&[u8]>| {
        let mut c = client(&[]);
        let mut op = ensure_manifest(&format!("{A}/app:v1"), bytes.clone());
        let digest = desc.digest.to_string();
        drive(&mut c, &mut op, |q| {
            Ok(match (q.method, held) {
                (Method::Put, _) => response(201, &[], b""),
                (Method::Head, Some(held)) if q.url.path_and_query.ends_with(&digest) => {
                    manifest_ok(held, Some(&digest))
                }
                _ => response(404, &[], b""),
            })
        })
    };
    for stores in [true, false] {
        let mut world = World::default();
        let mut c = client(&[]);
        let mut op = EnsureBlob::new(
            &c,
            r(&format!("{A}/x@{bd}")),
            BlobSource::Bytes(blob.clone().into()),
        )
        .unwrap();
        let mut heads = 0;
        let (out, sent) = drive(&mut c, &mut op, |q| {
            let answer = world.serve(q);
            if q.method == Method::Head {
                heads += 1;
                // Absent at first; afterwards as the registry stored it.
                if heads == 1 || !stores {
                    return Ok(response(404, &[], b""));
                }
            }
            Ok(match answer {
                Ok(r) if q.method == Method::Put => response(r.status, &[], b""),
                other => other?,
            })
        });
        let heads_sent = sent.iter().filter(|q| q.method == Method::Head).count();
        assert_eq!(heads_sent, 2, "stores: {stores}: {:?}", urls(&sent));
        if stores {
            assert_eq!(out.unwrap().digest, bd);
        } else {
            let err = out.unwrap_err().to_string();
            assert!(
                err.contains("201 without a digest, yet does not have"),
                "{err}"
            );
        }

        let (out, sent) = push_manifest(stores.then_some(&bytes[..]));
        assert_eq!(sent.len(), 3, "HEAD, PUT, HEAD: {:?}", urls(&sent));
        assert_eq!(out.is_ok(), stores, "{out:?}");
    }

    // A HEAD naming our digest with another size confirms nothing.
    let (out, _) = push_manifest(Some(b"{}"));
    let err = out.unwrap_err().to_string();
    assert!(err.contains("yet does not have it"), "{err}");
}

#[test]
fn a_child_in_flux_is_pushed_around_up_to_three_times_never_more() {
    // While another copy pushes the same child (to another tag), distribution
    // may read the child's link half-written: DIGEST_INVALID, then the
    // child unknown. The children are there; the push is tried again.
    let in_flux = br#"{"errors":[{"code":"DIGEST_INVALID","message":"provided digest did not match uploaded content"},{"code":"MANIFEST_BLOB_UNKNOWN","message":"blob unknown to registry"}]}"#;
    for (refusals, pushed) in [(1, true), (2, true), (3, false)] {
        let mut world = World::default();
        let (_, desc) = image(&mut world, A, "src", &[b"one"]);
        world.reg(A).tag("src", "v1", &desc.digest);
        let mut c = client(&[]);
        let mut op = src_v1_to_dst();
        let mut refused = 0;
        let (out, sent) = drive(&mut c, &mut op, |q| {
            let tag_push =
                q.method == Method::Put && q.url.path_and_query.ends_with("/manifests/v1");
            if tag_push && refused < refusals {
                refused += 1;
                return Ok(response(400, &[], in_flux));
            }
            world.serve(q)
        });
        let pushes = methods(&sent)
            .iter()
            .filter(|m| *m == &format!("PUT manifest {B}"))
            .count();
        if pushed {
            assert_eq!(out.unwrap().digest, desc.digest);
            assert_eq!(pushes, refusals + 1, "{:#?}", urls(&sent));
        } else {
            let err = out.unwrap_err().to_string();
            assert!(err.contains("DIGEST_INVALID"), "{err}");
            assert_eq!(pushes, 3, "never a fourth: {:#?}", urls(&sent));
        }
    }
}

#[test]
fn a_refused_manifest_push_is_the_manifests_error_and_copies_no_children() {
    let mut world = World::default();
    let (bytes, _) = image(&mut world, A, "app", &[b"refused"]);
    for (status, body) in [
        (401, &b""[..]),
        (
            403,
            &br#"{"errors":[{"code":"DENIED","message":"no push"}]}"#[..],
        ),
        (400, &br#"{"errors":[{"code":"TAG_INVALID"}]}"#[..]),
    ] {
        let mut c = client(&[]);
        let mut op = ensure_manifest(&format!("{A}/app:v1"), bytes.clone());
        let (out, sent) = drive(&mut c, &mut op, |q| {
            Ok(match q.method {
                Method::Put => response(status, &[], body),
                _ => response(404, &[], b""),
            })
        });
        let err = out.unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("{A}/app:v1: registry answered {status}")),
            "{err}"
        );
        assert_eq!(sent.len(), 2, "HEAD, PUT, no child: {:?}", urls(&sent));
    }
}

#[test]
fn foreign_layers_are_not_copied_and_a_missing_source_is_an_error() {
    let mut world = World::default();
    let config = br#"{"architecture":"amd64","os":"windows"}"#;
    let cd = world.reg(A).put("src", OCI_CONFIG, config);
    let foreign = Digest::sha256(b"foreign");
    let manifest = json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": cd.to_string(), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip", "digest": foreign.to_string(), "size": 7, "urls": ["https://example.invalid/x"]}],
    })
    .to_string()
    .into_bytes();
    let d = world.reg(A).put("src", OCI_MANIFEST, &manifest);
    let mut c: Client = client(&[]);
    let mut op = CopyManifest::new(
        r(&format!("{A}/src@{d}")),
        r(&format!("{B}/dst")),
        ChildRefs::default(),
    );
    let (out, sent) = drive(&mut c, &mut op, |q| world.serve(q));
    assert_eq!(out.unwrap().digest, d);
    assert!(
        !sent
            .iter()
            .any(|q| q.url.path_and_query.contains(&foreign.to_string())),
        "{:?}",
        urls(&sent)
    );

    let mut op = CopyManifest::new(
        r(&format!("{A}/src:missing")),
        r(&format!("{B}/dst")),
        ChildRefs::default(),
    );
    let (out, _) = drive(&mut c, &mut op, |q| world.serve(q));
    let err = out.unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
    assert_eq!(err.to_string(), format!("{A}/src:missing: not found"));
}

#[test]
fn a_broken_stream_starts_over_in_a_new_session_and_never_completes_the_old_one() {
    let big = vec![5u8; 100_000];
    for (permanent, tries) in [(false, 3), (true, 1)] {
        let mut world = World::default();
        world.reg(A).hold_above = Some(1000);
        let d = world.reg(A).put("src", "application/octet-stream", &big);
        let mut c = client(&[]);
        let mut op =
            CopyBlob::new(r(&format!("{A}/src@{d}")), r(&format!("{B}/dst")), None).unwrap();
        // Every streamed upload breaks: the registry gets the PUT, but the
        // driver reports the stream broken (a broken connection), or
        // refused by policy.
        let (out, sent) = drive(&mut c, &mut op, |q| {
            let answer = world.serve(q);
            if q.method != Method::Put {
                return answer;
            }
            let message = "connection reset";
            Err(if permanent {
                TransportError::permanent(message)
            } else {
                TransportError::transient(message)
            })
        });
        let err = out.unwrap_err();
        assert_eq!(err.is_transient(), !permanent, "{err:?}");
        let puts: Vec<&str> = sent
            .iter()
            .filter(|q| q.method == Method::Put)
            .map(|q| q.url.path_and_query.as_str())
            .collect();
        assert_eq!(puts.len(), tries, "permanent: {permanent}: {puts:#?}");
        // Each try has a session of its own: an abandoned session is never
        // sent to again (its PUT would complete it with whatever arrived).
        let sessions: std::collections::HashSet<&str> = puts
            .iter()
            .map(|p| p.split('?').next().unwrap_or(p))
            .collect();
        assert_eq!(sessions.len(), tries, "{puts:#?}");
        let posts = sent.iter().filter(|q| q.method == Method::Post).count();
        assert_eq!(posts, tries, "a new session for each try");
    }
}

#[test]
fn a_streamed_body_that_does_not_match_its_digest_is_not_tried_again() {
    let big = vec![6u8; 100_000];
    let mut world = World::default();
    world.reg(A).hold_above = Some(1000);
    let d = world.reg(A).put("src", "application/octet-stream", &big);
    let mut c = client(&[]);
    let mut op = CopyBlob::new(r(&format!("{A}/src@{d}")), r(&format!("{B}/dst")), None).unwrap();
    // The driver (or its host) found the bytes it streamed are not `d`,
    // and abandoned the upload before its last byte.
    let (out, sent) = drive(&mut c, &mut op, |q| {
        let RequestBody::Transfer { digest, .. } = &q.body else {
            return world.serve(q);
        };
        assert_eq!(*digest, d, "the driver is told what to check");
        Err(TransportError::integrity(format!(
            "upload does not match its digest: expected {digest}"
        )))
    });
    let err = out.unwrap_err();
    assert!(matches!(err, Error::Integrity { .. }), "{err:?}");
    assert!(
        err.to_string().contains("does not match its digest"),
        "{err}"
    );
    let puts = sent.iter().filter(|q| q.method == Method::Put).count();
    assert_eq!(puts, 1, "bad content is not sent again");
}

#[test]
fn an_upload_session_elsewhere_or_down_to_plain_http_is_refused() {
    let content = b"private".to_vec();
    let d = Digest::sha256(&content);
    let basic = Credential::Basic {
        username: "u".into(),
        password: "p".into(),
    };
    for (location, refused) in [
        // Same host and port, plain HTTP: a TLS-terminating proxy that
        // ignores X-Forwarded-Proto answers like this.
        (
            "http://r.example/v2/x/blobs/uploads/1",
            "from HTTPS down to plain HTTP",
        ),
        // Another registry (the copy's source, say) would get the upload.
        (
            "https://source.example/v2/x/blobs/uploads/1",
            "not the registry's own origin https://r.example:443",
        ),
    ] {
        let mut c = client(&[("r.example", basic.clone())]);
        let reference = r(&format!("r.example/x@{d}"));
        let mut op =
            EnsureBlob::new(&c, reference, BlobSource::Bytes(content.clone().into())).unwrap();
        let (out, sent) = drive(&mut c, &mut op, |q| {
            Ok(match q.method {
                Method::Post => response(202, &[("Location", location)], b""),
                _ => response(201, &[("Docker-Content-Digest", &d.to_string())], b""),
            })
        });
        let err = out.unwrap_err().to_string();
        assert!(err.contains(location) && err.contains(refused), "{err}");
        assert_eq!(
            urls(&sent),
            ["POST https://r.example/v2/x/blobs/uploads/"],
            "no PUT"
        );
    }
}

#[test]
fn indexes_nested_too_deep_are_refused_not_followed() {
    let deepest = usize::from(ocirelay_core::ops::ensure_manifest::MAX_NESTING);
    for (levels, followed) in [(deepest, true), (deepest + 1, false), (20, false)] {
        let mut world = World::default();
        // An image, then indexes of indexes of it, `levels` deep.
        let (_, mut inner) = image(&mut world, A, "deep", &[b"bottom"]);
        for _ in 0..levels {
            let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [inner]})
                .to_string()
                .into_bytes();
            let d = world.reg(A).put("deep", OCI_INDEX, &index);
            inner = Descriptor::new(OCI_INDEX, d, index.len() as u64);
        }
        let mut c = client(&[]);
        let mut op = CopyManifest::new(
            r(&format!("{A}/deep@{}", inner.digest)),
            r(&format!("{B}/deep:v1")),
            ChildRefs::default(),
        );
        let (out, _, _) = drive_concurrently(&mut c, &mut op, |q| world.serve(q));
        match out {
            Ok(copied) => {
                assert!(followed, "{levels} deep");
                assert_eq!(copied.digest, inner.digest);
            }
            Err(e) => {
                assert!(!followed, "{levels} deep: {e}");
                let err = e.to_string();
                assert!(err.contains("indexes nested more than 16 deep"), "{err}");
            }
        }
    }
}
