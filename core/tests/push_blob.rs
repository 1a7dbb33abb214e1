//! Push-blob against scripted registries: a blob handed over a chunk at a
//! time goes out as PATCHes and one PUT, is checked before it completes,
//! and is not sent at all when the registry has it.

use ocirelay_core::ops::push_blob::PushBlob;
use ocirelay_core::{Digest, Reference};

mod common;
use common::{client, drive, urls, World};

const A: &str = "localhost:5000";

fn r(s: &str) -> Reference {
    Reference::parse(s).unwrap()
}

/// `blob` pushed in `chunk`-byte pieces: the outcome of `finish`, and
/// every request sent.
fn push(
    world: &mut World,
    blob: &[u8],
    size: u64,
    chunk: usize,
) -> (
    ocirelay_core::Result<Option<ocirelay_core::Descriptor>>,
    Vec<String>,
) {
    let digest = Digest::sha256(blob);
    let mut c = client(&[]);
    let mut all = Vec::new();
    let mut op = PushBlob::new(&c, r(&format!("{A}/app@{digest}")), size).unwrap();
    let mut step = |c: &mut ocirelay_core::Client, op: &mut PushBlob, all: &mut Vec<String>| {
        let (outcome, sent) = drive(c, op, |q| world.serve(q));
        all.extend(urls(&sent));
        outcome
    };
    if let Some(d) = step(&mut c, &mut op, &mut all).unwrap() {
        return (Ok(Some(d)), all);
    }
    for piece in blob.chunks(chunk) {
        if let Err(e) = op.write(&c, bytes::Bytes::copy_from_slice(piece)) {
            return (Err(e), all);
        }
        if let Err(e) = step(&mut c, &mut op, &mut all) {
            return (Err(e), all);
        }
    }
    if let Err(e) = op.finish(&c) {
        return (Err(e), all);
    }
    (step(&mut c, &mut op, &mut all), all)
}

#[test]
fn chunks_go_as_patches_then_one_put_with_the_digest() {
    let blob: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let digest = Digest::sha256(&blob);
    let mut world = World::default();
    let (out, sent) = push(&mut world, &blob, blob.len() as u64, 65_536);
    let d = out.unwrap().expect("pushed");
    assert_eq!((d.digest.clone(), d.size), (digest.clone(), 200_000));
    let methods: Vec<&str> = sent.iter().map(|s| s.split(' ').next().unwrap()).collect();
    assert_eq!(
        methods,
        ["HEAD", "POST", "PATCH", "PATCH", "PATCH", "PATCH", "PUT"],
        "{sent:#?}"
    );
    // Each request goes to the session the last answer named.
    assert!(sent[3].contains("state=after-65536"), "{sent:#?}");
    assert!(sent[6].contains("state=after-200000") && sent[6].contains(&digest.to_string()));
    assert!(world.reg(A).has("app", &digest));
}

#[test]
fn a_blob_the_registry_has_is_not_sent_and_a_small_one_is_not_looked_for() {
    let blob = vec![7u8; 100_000];
    let digest = Digest::sha256(&blob);
    let mut world = World::default();
    world.reg(A).put("app", "application/octet-stream", &blob);
    let (out, sent) = push(&mut world, &blob, 100_000, 4096);
    assert_eq!(out.unwrap().map(|d| d.digest), Some(digest));
    assert_eq!(sent.len(), 1, "one HEAD: {sent:#?}");

    let small = b"small".to_vec();
    let mut world = World::default();
    let (out, sent) = push(&mut world, &small, 5, 2);
    assert!(out.unwrap().is_some());
    assert!(
        sent[0].starts_with("POST"),
        "no HEAD under 64 KiB: {sent:#?}"
    );
}

#[test]
fn bytes_that_do_not_match_never_complete_the_upload() {
    let blob = vec![1u8; 70_000];
    let mut world = World::default();
    // Other bytes than the digest names: the PUT never goes.
    let digest = Digest::sha256(&blob);
    let mut c = client(&[]);
    let mut op = PushBlob::new(&c, r(&format!("{A}/app@{digest}")), 70_000).unwrap();
    drive(&mut c, &mut op, |q| world.serve(q)).0.unwrap();
    op.write(&c, vec![2u8; 70_000].into()).unwrap();
    drive(&mut c, &mut op, |q| world.serve(q)).0.unwrap();
    let e = op.finish(&c).unwrap_err();
    assert!(e.to_string().contains(&digest.to_string()), "{e}");
    assert!(!world.reg(A).has("app", &digest));

    // More bytes than the size given: refused before they are sent.
    let (out, sent) = push(&mut world, &blob, 69_999, 35_000);
    let e = out.unwrap_err().to_string();
    assert!(e.contains("more than the expected 69999 bytes"), "{e}");
    let patches = sent.iter().filter(|s| s.starts_with("PATCH")).count();
    assert_eq!(patches, 1, "{sent:#?}");
    assert!(!sent.iter().any(|s| s.starts_with("PUT")), "{sent:#?}");
}

#[test]
fn a_push_must_name_a_digest_and_no_tag() {
    let c = client(&[]);
    let d = Digest::sha256(b"x");
    for bad in [format!("{A}/app:v1"), format!("{A}/app:v1@{d}")] {
        assert!(PushBlob::new(&c, r(&bad), 1).is_err(), "{bad}");
    }
}

#[test]
fn a_blob_found_takes_no_bytes_and_one_of_another_size_is_not_it() {
    let blob = vec![7u8; 100_000];
    let digest = Digest::sha256(&blob);
    let reference = r(&format!("{A}/app@{digest}"));
    let mut world = World::default();
    world.reg(A).put("app", "application/octet-stream", &blob);
    let mut c = client(&[]);
    let mut op = PushBlob::new(&c, reference.clone(), 100_000).unwrap();
    let found = drive(&mut c, &mut op, |q| world.serve(q)).0.unwrap();
    let found = found.expect("the registry has it");
    assert_eq!(op.present(), Some(&found));
    // What an embedder writes on is taken and goes nowhere.
    op.write(&c, vec![7u8; 4096].into()).unwrap();
    let (out, sent) = drive(&mut c, &mut op, |q| world.serve(q));
    assert_eq!(out.unwrap(), Some(found));
    assert!(sent.is_empty(), "{:?}", urls(&sent));

    // A HEAD naming our digest with another length is not our blob: an
    // upload opens; an empty write then sends nothing.
    let mut world = World::default();
    let mut c = client(&[]);
    let mut op = PushBlob::new(&c, reference, 100_000).unwrap();
    let digest = digest.to_string();
    let mut answer = |q: &ocirelay_core::http::Request| match q.method {
        ocirelay_core::http::Method::Head => Ok(common::response(
            200,
            &[
                ("Content-Length", "99999"),
                ("Docker-Content-Digest", &digest),
            ],
            b"",
        )),
        _ => world.serve(q),
    };
    let (out, sent) = drive(&mut c, &mut op, &mut answer);
    assert_eq!(out.unwrap(), None, "ready for bytes");
    assert_eq!(op.present(), None);
    let methods: Vec<&str> = sent.iter().map(|q| q.method.as_str()).collect();
    assert_eq!(methods, ["HEAD", "POST"]);
    op.write(&c, bytes::Bytes::new()).unwrap();
    let (out, sent) = drive(&mut c, &mut op, &mut answer);
    assert_eq!(out.unwrap(), None);
    assert!(sent.is_empty(), "{:?}", urls(&sent));
}
