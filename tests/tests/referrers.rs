//! Referrers (OCI 1.1) against distribution over HTTPS, which has no
//! referrers API: a manifest with a `subject` that ocirelay pushes is
//! listed under the subject's fallback tag `sha256-<hex>` (two writers at
//! once included), and that list is what `ocirelay lookup --type
//! referrers` prints, filtered by artifact type on request; a fallback tag
//! that holds no index lists nothing, and is not written over.

use base64::Engine as _;
use ocirelay_core::media_type::{OCI_INDEX, OCI_MANIFEST};
use ocirelay_core::ops::referrers::fallback_tag;
use ocirelay_core::{Descriptor, Digest};
use ocirelay_tests::cli::{ocirelay, ocirelay_input};
use ocirelay_tests::fixtures::{push_index, two_platforms, Pushed};
use ocirelay_tests::{Auth, Flavour, Layout, Registry};
use serde_json::{json, Value};

const EMPTY: &str = "application/vnd.oci.empty.v1+json";
const SIG: &str = "application/vnd.dev.cosign.artifact.sig.v1+json";
const SBOM: &str = "application/spdx+json";

/// Deploy input that pushes `bytes` (a blob, or a manifest of
/// `media_type`) to `refs`: the exact bytes, base64.
fn object(kind: &str, refs: &[String], bytes: &[u8]) -> Value {
    let data = base64::engine::general_purpose::STANDARD.encode(bytes);
    json!({"type": kind, "refs": refs, "data": data})
}

/// A manifest of one layer of `content` (an empty config), with `extra`
/// fields (`artifactType`, `subject`): its descriptor, and the deploy input
/// that pushes it and its blobs to `repo`, the manifest to `refs` (by
/// digest when none).
fn one_layer(
    repo: &str,
    content: &[u8],
    extra: Value,
    refs: &[String],
) -> (Descriptor, Vec<Value>) {
    let empty = Descriptor::new(EMPTY, Digest::sha256(b"{}"), 2);
    let layer = Descriptor::new(
        "application/octet-stream",
        Digest::sha256(content),
        content.len() as u64,
    );
    let mut fields = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": empty,
        "layers": [layer],
    });
    if let (Some(fields), Value::Object(extra)) = (fields.as_object_mut(), extra) {
        fields.extend(extra);
    }
    let manifest = serde_json::to_vec(&fields).unwrap();
    let descriptor = Descriptor::new(
        OCI_MANIFEST,
        Digest::sha256(&manifest),
        manifest.len() as u64,
    );
    let by_digest = |d: &Descriptor| vec![format!("{repo}@{}", d.digest)];
    let refs = if refs.is_empty() {
        by_digest(&descriptor)
    } else {
        refs.to_vec()
    };
    let input = vec![
        object("blob", &by_digest(&empty), b"{}"),
        object("blob", &by_digest(&layer), content),
        object("manifest", &refs, &manifest),
    ];
    (descriptor, input)
}

/// What a signer pushes: an artifact manifest of `artifact_type` with one
/// layer of `content`, whose subject is `subject`; its descriptor (with
/// the artifact type, as a referrers list carries it) and the deploy
/// input that pushes it and its blobs to `repo`.
fn artifact(
    repo: &str,
    artifact_type: &str,
    content: &[u8],
    subject: &Descriptor,
) -> (Descriptor, Vec<Value>) {
    let extra = json!({"artifactType": artifact_type, "subject": subject});
    let (mut descriptor, input) = one_layer(repo, content, extra, &[]);
    descriptor.artifact_type = Some(artifact_type.to_string());
    (descriptor, input)
}

fn deploy(input: &[Value]) {
    let out = try_deploy(input);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
}

fn try_deploy(input: &[Value]) -> ocirelay_tests::Output {
    let lines: Vec<String> = input.iter().map(Value::to_string).collect();
    ocirelay_input(&["deploy"], &lines.join("\n"))
}

/// The digests (and artifact types) `lookup --type referrers ARGS` lists.
fn referrers(args: &[&str]) -> Vec<(String, String)> {
    let out = ocirelay(&[&["lookup", "--type", "referrers"][..], args].concat()).success();
    let index = &out.json()[0];
    assert_eq!(index["mediaType"], OCI_INDEX, "{}", out.stdout);
    index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            let t = d["artifactType"].as_str().unwrap_or_default();
            (d["digest"].as_str().unwrap().to_string(), t.to_string())
        })
        .collect()
}

/// A two-platform index pushed to `registry` as `app:v1`, with a signature
/// of it, an SBOM of its first image and a signature of the SBOM, pushed
/// by `deploy` along with `extra` input.
struct Signed {
    repo: String,
    index: Descriptor,
    images: Vec<Descriptor>,
    signature: Descriptor,
    sbom: Descriptor,
    sbom_signature: Descriptor,
}

fn signed(registry: &Registry, extra: impl FnOnce(&str, &Descriptor) -> Vec<Value>) -> Signed {
    let Pushed { index, images } =
        push_index(registry, "app", "v1", Flavour::Oci, &two_platforms());
    let repo = registry.reference("app");
    let (signature, mut input) = artifact(&repo, SIG, b"index signature", &index);
    let (sbom, more) = artifact(&repo, SBOM, br#"{"spdxVersion": "SPDX-2.3"}"#, &images[0]);
    input.extend(more);
    let (sbom_signature, more) = artifact(&repo, SIG, b"sbom signature", &sbom);
    input.extend(more);
    input.extend(extra(&repo, &index));
    deploy(&input);
    Signed {
        repo,
        index,
        images,
        signature,
        sbom,
        sbom_signature,
    }
}

#[test]
fn pushed_referrers_are_listed_under_the_fallback_tag_and_filtered() {
    let registry = Registry::start(Auth::None);
    let Signed {
        images,
        signature,
        sbom,
        sbom_signature,
        ..
    } = signed(&registry, |_, _| Vec::new());

    let listed = |d: &Descriptor| (d.digest.to_string(), d.artifact_type.clone().unwrap());
    // By tag (resolved first) and by digest.
    assert_eq!(
        referrers(&[&registry.reference("app:v1")]),
        [listed(&signature)]
    );
    let image = registry.reference(&format!("app@{}", images[0].digest));
    assert_eq!(referrers(&[&image]), [listed(&sbom)]);
    assert_eq!(
        referrers(&["--artifact-type", SBOM, &image]),
        [listed(&sbom)]
    );
    assert_eq!(referrers(&["--artifact-type", SIG, &image]), []);
    let of_sbom = registry.reference(&format!("app@{}", sbom.digest));
    assert_eq!(referrers(&[&of_sbom]), [listed(&sbom_signature)]);
    // A manifest nothing refers to: an empty list.
    let other = registry.reference(&format!("app@{}", images[1].digest));
    assert_eq!(referrers(&[&other]), []);

    // A tag that does not exist: null, as every lookup prints it.
    let out = ocirelay(&[
        "lookup",
        "--type",
        "referrers",
        &registry.reference("app:nope"),
    ])
    .success();
    assert_eq!(out.json(), [Value::Null]);
}

#[test]
fn two_writers_at_once_both_end_up_listed() {
    let registry = Registry::start(Auth::None);
    let Pushed { index, .. } = push_index(&registry, "app", "v1", Flavour::Oci, &two_platforms());
    let repo = registry.reference("app");
    // Rounds of two deploys started together, each pushing one more
    // signature of the same subject: each read-modify-write of the tag can
    // meet the other's.
    let mut expected = Vec::new();
    for round in 0..4 {
        let made: Vec<(Descriptor, Vec<Value>)> = (0..2)
            .map(|writer| {
                let content = format!("signature {round}.{writer}");
                artifact(&repo, SIG, content.as_bytes(), &index)
            })
            .collect();
        let barrier = std::sync::Barrier::new(2);
        std::thread::scope(|s| {
            for (_, input) in &made {
                let barrier = &barrier;
                s.spawn(move || {
                    barrier.wait();
                    deploy(input);
                });
            }
        });
        expected.extend(
            made.into_iter()
                .map(|(d, _)| (d.digest.to_string(), SIG.to_string())),
        );
    }
    let mut listed = referrers(&[&registry.reference("app:v1")]);
    listed.sort();
    expected.sort();
    assert_eq!(listed, expected);
}

#[test]
fn a_fallback_tag_that_holds_a_manifest_lists_nothing_and_says_so() {
    let registry = Registry::start(Auth::None);
    let mut layout = Layout::new();
    let Pushed { index, images } = layout.platform_index("v1", Flavour::Oci, &two_platforms());
    layout.push(&registry, "app", "v1");
    let repo = registry.reference("app");
    // The tag names the index's referrers but holds one of its images.
    let image = std::fs::read(
        layout
            .path()
            .join("blobs/sha256")
            .join(images[0].digest.hex()),
    )
    .unwrap();
    deploy(&[object(
        "manifest",
        &[format!("{repo}:{}", fallback_tag(&index.digest))],
        &image,
    )]);

    let subject = registry.reference(&format!("app@{}", index.digest));
    let out = ocirelay(&["lookup", "--type", "referrers", &subject]).success();
    assert_eq!(out.json()[0]["manifests"], json!([]));
    assert!(
        out.stderr.contains("not an index") && out.stderr.contains(OCI_MANIFEST),
        "{}",
        out.stderr
    );
    // A referrer pushed to it fails naming the tag, which keeps what it held.
    let (_, input) = artifact(&repo, SIG, b"a signature", &index);
    let out = try_deploy(&input);
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    let tag = fallback_tag(&index.digest);
    assert!(
        out.stderr.contains("not overwritten") && out.stderr.contains(&tag),
        "{}{}",
        out.stdout,
        out.stderr
    );
    let held = ocirelay(&["lookup", "--head", &format!("{repo}:{tag}")]).success();
    assert_eq!(held.json()[0]["digest"], images[0].digest.to_string());
}

#[test]
fn referrer_flags_in_the_wrong_place_are_usage_errors() {
    for args in [
        &["lookup", "--artifact-type", SBOM, "app:v1"][..],
        &["lookup", "--type", "referrers", "--head", "app:v1"],
        &["lookup", "app:v1", "--artifact-type"],
    ] {
        let out = ocirelay(args);
        assert_eq!(out.code, 2, "{args:?}: {}", out.stderr);
    }
}

/// A manifest of one layer of `content` and no subject (cosign's older
/// signatures are such), and the deploy input that pushes it to `refs`.
fn plain(repo: &str, content: &[u8], refs: &[String]) -> (Descriptor, Vec<Value>) {
    one_layer(repo, content, json!({}), refs)
}

#[test]
fn copy_with_referrers_brings_what_refers_to_the_image_and_its_children() {
    let from = Registry::start(Auth::None);
    let to = Registry::start(Auth::None);
    // cosign's older scheme: a tag beside the image; and a referrer of a
    // manifest elsewhere, listed for the second image below: skipped.
    let legacy_tag = |index: &Descriptor| format!("{}.sig", fallback_tag(&index.digest));
    let mut made = Vec::new();
    let Signed {
        repo,
        index,
        images,
        signature,
        sbom,
        sbom_signature,
    } = signed(&from, |repo, index| {
        let (legacy, mut input) = plain(
            repo,
            b"legacy signature",
            &[format!("{repo}:{}", legacy_tag(index))],
        );
        let (elsewhere, more) = plain(repo, b"another image", &[format!("{repo}:elsewhere")]);
        input.extend(more);
        let (stray, more) = artifact(repo, SIG, b"a signature of another", &elsewhere);
        input.extend(more);
        made.extend([legacy, stray]);
        input
    });
    let [legacy, stray] = [made[0].clone(), made[1].clone()];
    let legacy_tag = legacy_tag(&index);
    let mislisted = serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": OCI_INDEX,
        "manifests": [stray]}))
    .unwrap();
    deploy(&[object(
        "manifest",
        &[format!("{repo}:{}", fallback_tag(&images[1].digest))],
        &mislisted,
    )]);

    let (src, dst) = (from.reference("app:v1"), to.reference("app:v1"));
    let out = ocirelay(&["copy", "--referrers", &src, &dst]).success();
    assert_eq!(out.json()[0]["digest"], index.digest.to_string());
    assert!(
        out.stderr.contains("3 referrers copied, 1 cosign tags"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("skipped") && out.stderr.contains(&stray.digest.to_string()),
        "{}",
        out.stderr
    );

    // At the destination, each list is the source's, digests unchanged.
    for subject in [&index, &images[0], &sbom] {
        let at = |r: &Registry| r.reference(&format!("app@{}", subject.digest));
        assert_eq!(
            referrers(&[&at(&to)]),
            referrers(&[&at(&from)]),
            "{}",
            subject.digest
        );
    }
    let listed = |d: &Descriptor| (d.digest.to_string(), d.artifact_type.clone().unwrap());
    assert_eq!(referrers(&[&dst]), [listed(&signature)]);
    let of_sbom = to.reference(&format!("app@{}", sbom.digest));
    assert_eq!(referrers(&[&of_sbom]), [listed(&sbom_signature)]);
    assert_eq!(
        referrers(&[&to.reference(&format!("app@{}", images[1].digest))]),
        []
    );
    let stray_there = ocirelay(&[
        "lookup",
        "--head",
        &to.reference(&format!("app@{}", stray.digest)),
    ]);
    assert_eq!(
        stray_there.success().json(),
        [Value::Null],
        "the stray was not copied"
    );
    let legacy_at = |r: &Registry| {
        let out = ocirelay(&[
            "lookup",
            "--head",
            &r.reference(&format!("app:{legacy_tag}")),
        ]);
        out.success().json()[0]["digest"].clone()
    };
    assert_eq!(legacy_at(&to), json!(legacy.digest.to_string()));

    // Again: all there already; the same report.
    let (f0, t0) = (from.access_log().len(), to.access_log().len());
    let out = ocirelay(&["copy", "--referrers", &src, &dst]).success();
    // ... found so with HEADs and the lists: nothing written, no manifest
    // or blob read but the image's own and the stray's (never copied, so
    // read again to learn its subject).
    let lists =
        |request: &str| request.contains("/referrers/") || request.contains("/manifests/sha256-");
    let stray_read = format!("GET /v2/app/manifests/{} ", stray.digest);
    for (request, _) in from.served(f0).iter().chain(&to.served(t0)) {
        let ok = request.starts_with("HEAD ")
            || request.starts_with("GET /v2/app/manifests/v1 ")
            || request.starts_with(&stray_read)
            || (request.starts_with("GET ") && lists(request));
        assert!(ok, "a re-run sent {request}");
    }
    assert!(
        out.stderr.contains("3 referrers copied, 1 cosign tags"),
        "{}",
        out.stderr
    );
}

#[test]
fn the_mirror_answers_the_referrers_api_from_the_fallback_tag() {
    use ocirelay_tests::service::Service;
    let registry = Registry::start_plain(Auth::None);
    let Pushed { index, .. } =
        push_index(&registry, "team/app", "v1", Flavour::Oci, &two_platforms());
    let repo = registry.reference("team/app");
    let (signature, mut input) = artifact(&repo, SIG, b"index signature", &index);
    let (sbom, more) = artifact(&repo, SBOM, br#"{"spdxVersion": "SPDX-2.3"}"#, &index);
    input.extend(more);
    deploy(&input);
    let config = json!({"upstreams": [{"registry": registry.host(), "repositories": ["team/*"]}]});
    for service in [Service::ocirelay(&config), Service::wasmtime(&config)] {
        let path = format!("/v2/team/app/referrers/{}", index.digest);
        let all = service.get(&path);
        assert_eq!(all.status, 200, "{}", String::from_utf8_lossy(&all.body));
        assert_eq!(all.header("content-type"), Some(OCI_INDEX));
        assert_eq!(all.header("oci-filters-applied"), None);
        let listed: Value = serde_json::from_slice(&all.body).unwrap();
        let digests: Vec<&str> = listed["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["digest"].as_str().unwrap())
            .collect();
        assert_eq!(
            digests,
            [signature.digest.to_string(), sbom.digest.to_string()]
        );

        let filtered = service.get(&format!("{path}?artifactType=application%2Fspdx%2Bjson"));
        assert_eq!(filtered.header("oci-filters-applied"), Some("artifactType"));
        let listed: Value = serde_json::from_slice(&filtered.body).unwrap();
        assert_eq!(listed["manifests"].as_array().unwrap().len(), 1);
        assert_eq!(listed["manifests"][0]["artifactType"], SBOM);

        let bad = service.get("/v2/team/app/referrers/v1");
        assert_eq!(bad.status, 400);
        let elsewhere = service.get(&format!("/v2/other/app/referrers/{}", index.digest));
        assert_eq!(elsewhere.status, 403);
    }
}

#[test]
fn deploy_copies_referrers_when_an_input_or_the_run_asks() {
    let from = Registry::start(Auth::None);
    let to = Registry::start(Auth::None);
    let Signed {
        index,
        signature,
        sbom,
        ..
    } = signed(&from, |_, _| Vec::new());
    let src = from.reference("app:v1");
    let copy = |dst: &str, referrers: Option<Value>| {
        let mut input = json!({"type": "manifest", "refs": [dst], "lookup": {"": src}});
        if let Some(r) = referrers {
            input["referrers"] = r;
        }
        input
    };
    let listed = |r: &Registry, repo: &str, d: &Descriptor| {
        referrers(&[&r.reference(&format!("{repo}@{}", d.digest))])
    };
    // The input's own field.
    deploy(&[copy(&to.reference("one:v1"), Some(json!(true)))]);
    assert_eq!(listed(&to, "one", &index), listed(&from, "app", &index));
    assert_eq!(
        listed(&to, "one", &index)[0].0,
        signature.digest.to_string()
    );
    // Not asked: the image alone.
    deploy(&[copy(&to.reference("two:v1"), None)]);
    assert_eq!(listed(&to, "two", &index), []);
    // The run's flag.
    let lines = copy(&to.reference("three:v1"), None).to_string();
    let out = ocirelay_input(&["deploy", "--referrers"], &lines);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(listed(&to, "three", &index), listed(&from, "app", &index));
    assert_eq!(
        listed(&to, "three", &sbom),
        listed(&from, "app", &sbom),
        "recursively"
    );
    let of_first = |r: &Registry, repo: &str| {
        let index: Value = ocirelay(&[
            "lookup",
            "--type",
            "manifest",
            &r.reference(&format!("{repo}:v1")),
        ])
        .success()
        .json()[0]
            .clone();
        let first = index["manifests"][0]["digest"]
            .as_str()
            .unwrap()
            .to_string();
        referrers(&[&r.reference(&format!("{repo}@{first}"))])
    };
    assert_eq!(of_first(&to, "three"), of_first(&from, "app"));
    assert_eq!(of_first(&to, "three")[0].0, sbom.digest.to_string());

    // A field that is not a boolean, or on what is not a copy: bad input.
    let bad = copy(&to.reference("four:v1"), Some(json!("yes")));
    let out = try_deploy(&[bad]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("referrers: not a boolean"),
        "{}",
        out.stderr
    );
}

#[test]
fn signatures_and_sboms_go_through_a_layout_and_out_again() {
    let from = Registry::start(Auth::None);
    let to = Registry::start(Auth::None);
    let signed = signed(&from, |_, _| Vec::new());
    let dir = tempfile::tempdir().unwrap();
    let layout = format!("oci:{}:v1", dir.path().join("app").display());
    let src = from.reference("app:v1");
    let out = ocirelay(&["copy", "--referrers", &src, &layout]).success();
    assert!(out.stderr.contains("3 referrers copied"), "{}", out.stderr);
    // In the layout: each referrer listed in index.json (unnamed, where
    // oras looks), besides the fallback tags.
    let index = std::fs::read_to_string(dir.path().join("app/index.json")).unwrap();
    for d in [&signed.signature, &signed.sbom, &signed.sbom_signature] {
        assert!(index.contains(&d.digest.to_string()), "{index}");
    }
    // And out of it, to another registry: the same referrers there.
    let dst = to.reference("app:v1");
    let out = ocirelay(&["copy", "--referrers", &layout, &dst]).success();
    assert!(out.stderr.contains("3 referrers copied"), "{}", out.stderr);
    let there = referrers(&[&to.reference(&format!("app@{}", signed.index.digest))]);
    assert_eq!(
        there,
        vec![(signed.signature.digest.to_string(), SIG.to_string())]
    );
    let sbom_there = referrers(&[&to.reference(&format!("app@{}", signed.images[0].digest))]);
    assert_eq!(
        sbom_there,
        vec![(signed.sbom.digest.to_string(), SBOM.to_string())]
    );
    let _ = &signed.repo;
}
