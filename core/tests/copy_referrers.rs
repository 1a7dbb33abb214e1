//! Copy-referrers between scripted registries: what refers to an image is
//! pushed after it, listed at the destination, cosign's tags copied; a
//! referrer that fails its digest fails the copy naming it, with nothing
//! of it pushed or listed.

use ocirelay_core::http::{Method, Request};
use ocirelay_core::media_type::{OCI_INDEX, OCI_MANIFEST};
use ocirelay_core::ops::copy_referrers::CopyReferrers;
use ocirelay_core::ops::referrers::fallback_tag;
use ocirelay_core::{Descriptor, Digest, Reference};
use serde_json::json;

mod common;
use common::{client, drive, response, World};

const REPO: &str = "team/app";
const SRC: &str = "src.example:5000";
const DST: &str = "dst.example:5000";

/// A manifest with one layer of `content` and, when given, a subject: its
/// bytes, with its blobs put in `world`'s source.
fn manifest(world: &mut World, content: &[u8], subject: Option<&Descriptor>) -> Vec<u8> {
    let src = world.reg(SRC);
    let empty = src.put(REPO, "application/octet-stream", b"{}");
    let layer = src.put(REPO, "application/octet-stream", content);
    let mut m = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty, "size": 2},
        "layers": [{"mediaType": "application/octet-stream", "digest": layer, "size": content.len()}],
    });
    if let Some(subject) = subject {
        m["subject"] = serde_json::to_value(subject).unwrap();
        m["artifactType"] = json!("application/example");
    }
    serde_json::to_vec(&m).unwrap()
}

struct Fixture {
    world: World,
    subject: Descriptor,
    /// The first of its three referrers.
    referrer: Descriptor,
    referrers: Vec<Descriptor>,
    legacy: Digest,
}

/// A subject at both ends, a referrer of it and a cosign tag at the source.
fn fixture() -> Fixture {
    let mut world = World::default();
    let bytes = manifest(&mut world, b"the image", None);
    let digest = world.reg(SRC).put(REPO, OCI_MANIFEST, &bytes);
    world.reg(SRC).tag(REPO, "v1", &digest);
    let subject = Descriptor::new(OCI_MANIFEST, digest, bytes.len() as u64);
    // The destination has the image (copied first) and its blobs.
    assert_eq!(
        world.reg(DST).put(REPO, OCI_MANIFEST, &bytes),
        subject.digest
    );
    let referrers: Vec<Descriptor> = (0..3)
        .map(|n| {
            let r = manifest(
                &mut world,
                format!("signature {n}").as_bytes(),
                Some(&subject),
            );
            let r_digest = world.reg(SRC).put(REPO, OCI_MANIFEST, &r);
            let mut referrer = Descriptor::new(OCI_MANIFEST, r_digest, r.len() as u64);
            referrer.artifact_type = Some("application/example".into());
            referrer
        })
        .collect();
    let referrer = referrers[0].clone();
    let index = serde_json::to_vec(
        &json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": referrers}),
    )
    .unwrap();
    let index_digest = world.reg(SRC).put(REPO, OCI_INDEX, &index);
    world
        .reg(SRC)
        .tag(REPO, &fallback_tag(&subject.digest), &index_digest);
    let legacy_bytes = manifest(&mut world, b"a cosign signature", None);
    let legacy = world.reg(SRC).put(REPO, OCI_MANIFEST, &legacy_bytes);
    world.reg(SRC).tag(
        REPO,
        &format!("{}.sig", fallback_tag(&subject.digest)),
        &legacy,
    );
    Fixture {
        world,
        subject,
        referrer,
        referrers,
        legacy,
    }
}

fn copy(
    answer: impl FnMut(&Request) -> ocirelay_core::client::Answer,
) -> (
    ocirelay_core::Result<ocirelay_core::ops::copy_referrers::CopiedReferrers>,
    Vec<Request>,
) {
    let mut c = client(&[]);
    let src = Reference::parse(&format!("{SRC}/{REPO}:v1")).unwrap();
    let dst = Reference::parse(&format!("{DST}/{REPO}:v1")).unwrap();
    let mut op = CopyReferrers::new(src, dst);
    drive(&mut c, &mut op, answer)
}

#[test]
fn referrers_and_cosign_tags_are_copied_and_listed_in_one_write() {
    let Fixture {
        mut world,
        subject,
        referrer,
        referrers,
        legacy,
    } = fixture();
    let (copied, sent) = copy(|req| world.serve(req));
    let copied = copied.unwrap();
    let digests = |ds: &[Descriptor]| ds.iter().map(|d| d.digest.clone()).collect::<Vec<_>>();
    assert_eq!(digests(&copied.copied), digests(&referrers));
    let tag_path = format!("/v2/{REPO}/manifests/{}", fallback_tag(&subject.digest));
    let writes = sent
        .iter()
        .filter(|r| r.method == Method::Put && r.url.path_and_query == tag_path);
    assert_eq!(
        writes.count(),
        1,
        "three referrers of one subject, one write"
    );
    let legacy_tag = format!("{}.sig", fallback_tag(&subject.digest));
    assert_eq!(copied.tags, vec![legacy_tag.clone()]);
    assert!(copied.skipped.is_empty());
    let dst = world.reg(DST);
    assert!(dst.has(REPO, &referrer.digest));
    assert!(dst.tagged(REPO, &legacy_tag, &legacy));
    let list = dst
        .tagged_bytes(REPO, &fallback_tag(&subject.digest))
        .expect("listed");
    let list: serde_json::Value = serde_json::from_slice(&list).unwrap();
    assert_eq!(list["manifests"][0]["digest"], referrer.digest.to_string());
    assert_eq!(list["manifests"].as_array().unwrap().len(), 3);
    assert_eq!(list["manifests"].as_array().unwrap().len(), 3);
    assert_eq!(list["manifests"][0]["artifactType"], "application/example");
    // Nothing is written to the source.
    assert!(sent
        .iter()
        .all(|r| r.url.authority != SRC || matches!(r.method, Method::Get | Method::Head)));
}

#[test]
fn a_referrer_that_fails_its_digest_fails_the_copy_with_nothing_of_it_pushed() {
    let Fixture {
        mut world,
        subject,
        referrer,
        ..
    } = fixture();
    let wanted = format!("/v2/{REPO}/manifests/{}", referrer.digest);
    let (copied, sent) = copy(|req| {
        if req.url.authority == SRC && req.url.path_and_query == wanted && req.method == Method::Get
        {
            return Ok(response(
                200,
                &[("Content-Type", OCI_MANIFEST)],
                b"{\"tampered\": true}",
            ));
        }
        world.serve(req)
    });
    let e = copied.unwrap_err().to_string();
    assert!(e.contains(&referrer.digest.to_string()), "{e}");
    assert!(!world.reg(DST).has(REPO, &referrer.digest));
    assert!(world
        .reg(DST)
        .tagged_bytes(REPO, &fallback_tag(&subject.digest))
        .is_none());
    assert!(sent
        .iter()
        .all(|r| r.url.authority != DST || r.method != Method::Put));
}

#[test]
fn a_re_run_reads_the_lists_and_heads_the_rest() {
    let Fixture {
        mut world, subject, ..
    } = fixture();
    let (first, _) = copy(|req| world.serve(req));
    first.unwrap();
    let (again, sent) = copy(|req| world.serve(req));
    let again = again.unwrap();
    assert_eq!(again.copied.len(), 3, "reported as there");
    assert!(sent.iter().all(|r| r.method != Method::Put), "{sent:#?}");
    // GETs: the image at the source (its children are subjects), then per
    // subject its list at the source, and at the destination where the
    // source listed any; the API asked once per end.
    let gets: Vec<String> = sent
        .iter()
        .filter(|r| r.method == Method::Get)
        .map(|r| format!("{} {}", r.url.authority, r.url.path_and_query))
        .collect();
    let subject_tag = fallback_tag(&subject.digest);
    let api = format!("/v2/{REPO}/referrers/{}", subject.digest);
    let expected_start = [
        format!("{SRC} /v2/{REPO}/manifests/v1"),
        format!("{SRC} {api}"),
        format!("{SRC} /v2/{REPO}/manifests/{subject_tag}"),
        format!("{DST} {api}"),
        format!("{DST} /v2/{REPO}/manifests/{subject_tag}"),
    ];
    assert_eq!(gets[..5], expected_start, "{gets:#?}");
    // Each referrer, as a subject: its (absent) fallback tag at the source
    // only, no API asked again, no manifest read.
    assert_eq!(gets.len(), 5 + 3, "{gets:#?}");
    assert!(gets[5..]
        .iter()
        .all(|g| g.starts_with(SRC) && g.contains("/manifests/sha256-")));
}

#[test]
fn referrers_there_but_unlisted_are_listed_without_being_pushed() {
    let Fixture {
        mut world,
        subject,
        referrers,
        ..
    } = fixture();
    // A run cut between pushing the referrers and listing them.
    for r in &referrers {
        let bytes = world.reg(SRC).bytes(REPO, &r.digest).unwrap();
        world.reg(DST).put(REPO, OCI_MANIFEST, &bytes);
    }
    let (copied, sent) = copy(|req| world.serve(req));
    assert_eq!(copied.unwrap().copied.len(), 3);
    let puts = |path: &str| {
        sent.iter()
            .filter(|r| r.method == Method::Put && r.url.path_and_query == path)
            .count()
    };
    let tag_path = format!("/v2/{REPO}/manifests/{}", fallback_tag(&subject.digest));
    assert_eq!(puts(&tag_path), 1);
    for r in &referrers {
        assert_eq!(puts(&format!("/v2/{REPO}/manifests/{}", r.digest)), 0);
    }
    let list = world
        .reg(DST)
        .tagged_bytes(REPO, &fallback_tag(&subject.digest))
        .expect("listed");
    let list: serde_json::Value = serde_json::from_slice(&list).unwrap();
    assert_eq!(list["manifests"].as_array().unwrap().len(), 3);
}
