//! A manifest with a `subject`, pushed to a registry without the referrers
//! API, listed under its subject's fallback tag: created, added to, kept
//! when another writer's list replaced ours, left alone when the registry
//! lists referrers itself, and never written over something that is not a
//! referrers index.

use std::cell::RefCell;

use ocirelay_core::http::{Method, Request};
use ocirelay_core::media_type::{OCI_INDEX, OCI_MANIFEST};
use ocirelay_core::ops::attach_referrer::{ATTEMPTS, SETTLE};
use ocirelay_core::ops::ensure_manifest::{ChildRefs, EnsureManifest};
use ocirelay_core::ops::referrers::fallback_tag;
use ocirelay_core::{Descriptor, Digest, Reference};
use serde_json::{json, Value};

mod common;
use common::{client, drive_timed, ScriptedRegistry, Sent};

const REPO: &str = "team/app";
const SIG_CONFIG: &str = "application/vnd.dev.cosign.artifact.sig.v1+json";

/// A registry holding a subject, and the blobs of signatures of it.
fn registry() -> (ScriptedRegistry, Descriptor) {
    let mut reg = ScriptedRegistry::default();
    let subject = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}"#;
    reg.put(REPO, "application/octet-stream", b"{}");
    let digest = reg.put(REPO, OCI_MANIFEST, subject);
    reg.tag(REPO, "v1", &digest);
    (
        reg,
        Descriptor::new(OCI_MANIFEST, digest, subject.len() as u64),
    )
}

/// A signature of `subject` (the config's media type is its artifact
/// type), told apart by `n`: its bytes, whose layer is put in `reg`.
fn signature(reg: &mut ScriptedRegistry, subject: &Descriptor, n: u32) -> Vec<u8> {
    let layer = format!("signature {n}");
    let layer_digest = reg.put(REPO, "application/octet-stream", layer.as_bytes());
    serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": SIG_CONFIG, "digest": Digest::sha256(b"{}"), "size": 2},
        "layers": [{"mediaType": "application/octet-stream", "digest": layer_digest, "size": layer.len()}],
        "annotations": {"n": n.to_string()},
        "subject": subject,
    }))
    .unwrap()
}

/// Another writer's referrer of `subject`, put in `reg`, and the index
/// listing it alone, as that writer would write the tag.
fn their_list(reg: &mut ScriptedRegistry, subject: &Descriptor) -> (Digest, Vec<u8>) {
    let theirs = signature(reg, subject, 2);
    let digest = reg.put(REPO, OCI_MANIFEST, &theirs);
    let entry = json!({"mediaType": OCI_MANIFEST, "digest": digest, "size": theirs.len()});
    let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [entry]});
    (digest, serde_json::to_vec(&index).unwrap())
}

/// Pushes `bytes` by digest through `serve`: the outcome and the requests.
fn push(
    bytes: &[u8],
    serve: impl FnMut(&Request) -> ocirelay_core::client::Answer,
) -> (ocirelay_core::Result<Descriptor>, Vec<Request>) {
    let (outcome, sent) = push_timed(bytes, serve);
    (outcome, sent.into_iter().map(|s| s.request).collect())
}

/// [`push`], with when each request was sent.
fn push_timed(
    bytes: &[u8],
    serve: impl FnMut(&Request) -> ocirelay_core::client::Answer,
) -> (ocirelay_core::Result<Descriptor>, Vec<Sent>) {
    let mut c = client(&[]);
    let target = Reference::parse(&format!("localhost:5000/{REPO}")).unwrap();
    let mut op =
        EnsureManifest::new(target, bytes.to_vec(), OCI_MANIFEST, ChildRefs::default()).unwrap();
    drive_timed(&mut c, &mut op, serve)
}

/// The digests the fallback tag of `subject` lists in `reg`.
fn listed(reg: &ScriptedRegistry, subject: &Descriptor) -> Vec<String> {
    let bytes = reg
        .tagged_bytes(REPO, &fallback_tag(&subject.digest))
        .expect("the tag");
    let index: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(index["mediaType"], OCI_INDEX);
    index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["digest"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn the_fallback_tag_is_made_then_added_to() {
    let (mut reg, subject) = registry();
    let first = signature(&mut reg, &subject, 1);
    let second = signature(&mut reg, &subject, 2);
    let reg = RefCell::new(reg);
    let (pushed, sent) = push_timed(&first, |req| reg.borrow_mut().serve(req));
    let first_digest = pushed.unwrap().digest.to_string();
    let tag_path = format!("/v2/{REPO}/manifests/{}", fallback_tag(&subject.digest));
    let to_tag: Vec<&Sent> = sent
        .iter()
        .filter(|s| s.request.url.path_and_query == tag_path)
        .collect();
    let methods: Vec<&str> = to_tag.iter().map(|s| s.request.method.as_str()).collect();
    // Read (absent), written, read again at once and once more later.
    assert_eq!(methods, ["GET", "PUT", "GET", "GET"]);
    assert_eq!(to_tag[3].at, to_tag[2].at + SETTLE);
    assert_eq!(listed(&reg.borrow(), &subject), vec![first_digest.clone()]);
    let bytes = reg
        .borrow()
        .tagged_bytes(REPO, &fallback_tag(&subject.digest))
        .unwrap();
    let entry = &serde_json::from_slice::<Value>(&bytes).unwrap()["manifests"][0];
    assert_eq!(
        entry["artifactType"], SIG_CONFIG,
        "the config's media type, as the spec lists it"
    );
    assert_eq!(entry["annotations"], json!({"n": "1"}));

    let (pushed, _) = push(&second, |req| reg.borrow_mut().serve(req));
    let second_digest = pushed.unwrap().digest.to_string();
    assert_eq!(
        listed(&reg.borrow(), &subject),
        [first_digest.clone(), second_digest]
    );
    // Pushed again: it is there, nothing is written.
    let (_, sent) = push(&first, |req| reg.borrow_mut().serve(req));
    assert!(sent.iter().all(|r| r.method == Method::Head), "{sent:?}");
}

#[test]
fn a_list_another_writer_replaced_ours_with_is_merged_and_written_again() {
    let (mut reg, subject) = registry();
    let ours = signature(&mut reg, &subject, 1);
    let (theirs_digest, theirs_index) = their_list(&mut reg, &subject);
    let tag = fallback_tag(&subject.digest);
    let reg = RefCell::new(reg);
    let mut overwritten = false;
    let (pushed, sent) = push(&ours, |req| {
        let answer = reg.borrow_mut().serve(req);
        // Right after our first write, the other writer's lands.
        if req.method == Method::Put && req.url.path_and_query.ends_with(&tag) && !overwritten {
            overwritten = true;
            let mut reg = reg.borrow_mut();
            let d = reg.put(REPO, OCI_INDEX, &theirs_index);
            reg.tag(REPO, &tag, &d);
        }
        answer
    });
    let ours_digest = pushed.unwrap().digest.to_string();
    let puts = sent
        .iter()
        .filter(|r| r.method == Method::Put && r.url.path_and_query.ends_with(&tag));
    assert_eq!(puts.count(), 2, "written, lost, written again");
    assert_eq!(
        listed(&reg.borrow(), &subject),
        [theirs_digest.to_string(), ours_digest]
    );
}

#[test]
fn a_writer_whose_list_lands_after_our_first_check_is_caught_later() {
    let (mut reg, subject) = registry();
    let ours = signature(&mut reg, &subject, 1);
    let (theirs_digest, theirs_index) = their_list(&mut reg, &subject);
    let tag = fallback_tag(&subject.digest);
    let reg = RefCell::new(reg);
    let mut reads_after_write = 0;
    let mut wrote = false;
    let (pushed, _) = push(&ours, |req| {
        let to_tag = req.url.path_and_query.ends_with(&tag);
        if to_tag && req.method == Method::Put {
            wrote = true;
        } else if to_tag && wrote && req.method == Method::Get {
            reads_after_write += 1;
            // Their write (read before ours) lands between our two checks.
            if reads_after_write == 2 {
                let mut reg = reg.borrow_mut();
                let d = reg.put(REPO, OCI_INDEX, &theirs_index);
                reg.tag(REPO, &tag, &d);
            }
        }
        reg.borrow_mut().serve(req)
    });
    let ours_digest = pushed.unwrap().digest.to_string();
    assert_eq!(
        listed(&reg.borrow(), &subject),
        [theirs_digest.to_string(), ours_digest]
    );
}

#[test]
fn a_writer_that_always_loses_gives_up_naming_why() {
    let (mut reg, subject) = registry();
    let ours = signature(&mut reg, &subject, 1);
    let tag = fallback_tag(&subject.digest);
    let empty =
        serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}))
            .unwrap();
    let reg = RefCell::new(reg);
    let (pushed, sent) = push(&ours, |req| {
        let answer = reg.borrow_mut().serve(req);
        if req.method == Method::Put && req.url.path_and_query.ends_with(&tag) {
            let mut reg = reg.borrow_mut();
            let d = reg.put(REPO, OCI_INDEX, &empty);
            reg.tag(REPO, &tag, &d);
        }
        answer
    });
    let e = pushed.unwrap_err().to_string();
    assert!(e.contains("lost each time") && e.contains(&tag), "{e}");
    let puts = sent
        .iter()
        .filter(|r| r.method == Method::Put && r.url.path_and_query.ends_with(&tag));
    assert_eq!(puts.count(), usize::from(ATTEMPTS));
}

#[test]
fn a_registry_that_lists_referrers_itself_is_left_to_it() {
    let (mut reg, subject) = registry();
    let ours = signature(&mut reg, &subject, 1);
    let reg = RefCell::new(reg);
    let (pushed, sent) = push(&ours, |req| {
        let mut answer = reg.borrow_mut().serve(req)?;
        if req.method == Method::Put {
            answer
                .headers
                .set("OCI-Subject", subject.digest.to_string());
        }
        Ok(answer)
    });
    pushed.unwrap();
    let tag = fallback_tag(&subject.digest);
    assert!(
        sent.iter().all(|r| !r.url.path_and_query.ends_with(&tag)),
        "the tag was not touched"
    );
}

#[test]
fn a_tag_that_holds_something_else_is_not_overwritten() {
    let (mut reg, subject) = registry();
    let ours = signature(&mut reg, &subject, 1);
    let tag = fallback_tag(&subject.digest);
    reg.tag(REPO, &tag, &subject.digest);
    let reg = RefCell::new(reg);
    let (pushed, sent) = push(&ours, |req| reg.borrow_mut().serve(req));
    let e = pushed.unwrap_err().to_string();
    assert!(
        e.contains("not overwritten") && e.contains(OCI_MANIFEST) && e.contains(&tag),
        "{e}"
    );
    assert!(!sent
        .iter()
        .any(|r| r.method == Method::Put && r.url.path_and_query.ends_with(&tag)));
    assert!(
        reg.borrow().tagged(REPO, &tag, &subject.digest),
        "still what it was"
    );
}
