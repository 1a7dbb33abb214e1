//! `ocirelay index` and the default of `ocirelay lookup` (synthesize-index)
//! against a real registry: exact JSON, and what it costs in requests.

use ocirelay_core::media_type::{DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX};
use ocirelay_core::{Descriptor, Digest};
use ocirelay_tests::{ocirelay, platform, Auth, Flavour, Layout, Registry};
use serde_json::{json, Value};

const ARCH: &str = "com.docker.official-images.bashbrew.arch";
const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// Registry requests (GET/HEAD under /v2/) in the access log.
fn registry_requests(registry: &Registry) -> Vec<String> {
    registry
        .access_log()
        .into_iter()
        .filter(|l| l.contains("\"GET /v2/") || l.contains("\"HEAD /v2/"))
        .collect()
}

fn expected_entry(d: &Descriptor, reference: &str, arch: &str, platform: Value) -> Value {
    json!({
        "mediaType": d.media_type,
        "digest": d.digest.to_string(),
        "size": d.size,
        "annotations": {ARCH: arch, REF_NAME: format!("{reference}@{}", d.digest)},
        "platform": platform,
    })
}

#[test]
fn an_index_without_platforms_costs_one_plus_two_n_requests_and_is_cached() {
    let registry = Registry::start(Auth::None);
    let mut layout = Layout::new();
    let amd64 = layout.image(Flavour::Oci, &platform("linux", "amd64", None), &[b"amd64"]);
    let arm = layout.image(
        Flavour::Oci,
        &platform("linux", "arm", Some("v7")),
        &[b"arm"],
    );
    let arm64 = layout.image(
        Flavour::Oci,
        &platform("linux", "aarch64", None),
        &[b"arm64"],
    );
    // Entries with no platform objects at all: every one needs its config.
    let index = layout.index(Flavour::Oci, &[amd64.clone(), arm.clone(), arm64.clone()]);
    layout.tag("multi", &index);
    layout.push(&registry, "app", "multi");
    let reference = registry.reference("app:multi");

    let before = registry_requests(&registry).len();
    let out = ocirelay(&["index", &reference]).success();
    let sent = registry_requests(&registry)[before..].to_vec();
    assert!(
        sent.len() <= 1 + 2 * 3,
        "at most 1 + 2N requests, got {}:\n{}",
        sent.len(),
        sent.join("\n")
    );

    let expected = json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            expected_entry(&amd64, &reference, "amd64", json!({"architecture": "amd64", "os": "linux"})),
            expected_entry(&arm, &reference, "arm32v7", json!({"architecture": "arm", "os": "linux", "variant": "v7"})),
            expected_entry(&arm64, &reference, "arm64v8", json!({"architecture": "arm64", "os": "linux", "variant": "v8"})),
        ],
        "annotations": {REF_NAME: format!("{reference}@{}", index.digest)},
    });
    assert_eq!(out.json(), vec![expected.clone()]);

    // The same reference twice in one run (and as lookup's default): the
    // second costs no request at all.
    let before = registry_requests(&registry).len();
    let out = ocirelay(&["lookup", &reference, &reference]).success();
    let sent = registry_requests(&registry)[before..].to_vec();
    assert_eq!(out.json(), vec![expected.clone(), expected.clone()]);
    assert!(
        sent.len() <= 7,
        "the second lookup is answered from the cache:\n{}",
        sent.join("\n")
    );

    // --parallel: same documents, same order, same cost.
    let before = registry_requests(&registry).len();
    let out = ocirelay(&[
        "lookup",
        "--parallel",
        &reference,
        "--head",
        &reference,
        &reference,
    ])
    .success();
    let sent = registry_requests(&registry)[before..].to_vec();
    let docs = out.json();
    assert_eq!(docs.len(), 3);
    assert_eq!(docs[0], expected);
    assert_eq!(docs[1]["digest"], json!(index.digest.to_string()));
    assert_eq!(docs[2], expected);
    assert!(
        sent.len() <= 7,
        "parallel queries share one cache:\n{}",
        sent.join("\n")
    );

    // Without the cache, the repeat is paid for.
    let before = registry_requests(&registry).len();
    ocirelay(&["lookup", "--no-cache", &reference, &reference]).success();
    assert_eq!(registry_requests(&registry).len() - before, 14);
}

#[test]
fn a_single_image_manifest_becomes_a_one_entry_index() {
    let registry = Registry::start(Auth::None);
    let mut layout = Layout::new();
    let image = layout.image(Flavour::Oci, &platform("linux", "s390x", None), &[b"s390x"]);
    layout.tag("single", &image);
    layout.push(&registry, "app", "single");
    let reference = registry.reference("app:single");
    let out = ocirelay(&["index", &reference]).success();
    assert_eq!(
        out.json(),
        vec![json!({
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [expected_entry(&image, &reference, "s390x", json!({"architecture": "s390x", "os": "linux"}))],
            "annotations": {REF_NAME: format!("{reference}@{}", image.digest)},
        })]
    );
}

#[test]
fn a_docker_manifest_list_keeps_its_type() {
    let registry = Registry::start(Auth::None);
    let mut layout = Layout::new();
    let amd64 = layout.image(
        Flavour::Docker,
        &platform("linux", "amd64", None),
        &[b"d-amd64"],
    );
    let win = layout.image(
        Flavour::Docker,
        &{
            let mut p = platform("windows", "amd64", None);
            p.os_version = Some("10.0.20348.2340".into());
            p
        },
        &[b"d-win"],
    );
    let list = layout.index(Flavour::Docker, &[amd64.clone(), win.clone()]);
    layout.tag("docker", &list);
    layout.push(&registry, "app", "docker");
    let reference = registry.reference("app:docker");
    let out = ocirelay(&["index", &reference]).success();
    assert_eq!(
        out.json(),
        vec![json!({
            "schemaVersion": 2,
            "mediaType": DOCKER_LIST,
            "manifests": [
                expected_entry(&amd64, &reference, "amd64", json!({"architecture": "amd64", "os": "linux"})),
                expected_entry(&win, &reference, "windows-amd64", json!({"architecture": "amd64", "os": "windows", "os.version": "10.0.20348.2340"})),
            ],
            "annotations": {REF_NAME: format!("{reference}@{}", list.digest)},
        })]
    );
    assert_eq!(amd64.media_type, DOCKER_MANIFEST);
}

#[test]
fn attestations_take_their_subjects_arch_or_are_dropped() {
    let registry = Registry::start(Auth::None);
    let mut layout = Layout::new();
    let image = layout.image(Flavour::Oci, &platform("linux", "ppc64le", None), &[b"ppc"]);
    let attestation = layout.image(
        Flavour::Oci,
        &platform("unknown", "unknown", None),
        &[b"in-toto"],
    );
    let orphan = layout.image(
        Flavour::Oci,
        &platform("unknown", "unknown", None),
        &[b"orphan in-toto"],
    );
    let annotate = |d: &Descriptor, subject: &Digest| {
        let mut d = d.clone();
        d.platform = Some(platform("unknown", "unknown", None));
        d.annotations.insert(
            "vnd.docker.reference.type".into(),
            "attestation-manifest".into(),
        );
        d.annotations
            .insert("vnd.docker.reference.digest".into(), subject.to_string());
        d
    };
    let mut image_entry = image.clone();
    image_entry.platform = Some(platform("linux", "ppc64le", None));
    // A registry-provided arch annotation is not trusted.
    image_entry.annotations.insert(ARCH.into(), "amd64".into());
    let index = layout.index(
        Flavour::Oci,
        &[
            image_entry,
            annotate(&attestation, &image.digest),
            annotate(&orphan, &Digest::sha256(b"gone")),
        ],
    );
    layout.tag("attested", &index);
    layout.push(&registry, "app", "attested");
    let reference = registry.reference("app:attested");
    let out = ocirelay(&["index", &reference]).success();
    let doc = &out.json()[0];
    let manifests = doc["manifests"].as_array().unwrap();
    assert_eq!(
        manifests.len(),
        2,
        "the orphaned attestation is dropped: {doc:#}"
    );
    assert_eq!(manifests[0]["annotations"][ARCH], json!("ppc64le"));
    assert_eq!(
        manifests[1]["digest"],
        json!(attestation.digest.to_string())
    );
    assert_eq!(
        manifests[1]["annotations"],
        json!({
            ARCH: "ppc64le",
            REF_NAME: format!("{reference}@{}", attestation.digest),
            "vnd.docker.reference.digest": image.digest.to_string(),
            "vnd.docker.reference.type": "attestation-manifest",
        })
    );
    assert_eq!(
        manifests[1]["platform"],
        json!({"architecture": "unknown", "os": "unknown"})
    );
}

#[test]
fn not_found_is_null_and_help_explains_every_flag() {
    let registry = Registry::start(Auth::None);
    let out = ocirelay(&["index", &registry.reference("nothing:here")]).success();
    assert_eq!(out.json(), vec![json!(null)]);

    let help = ocirelay(&["index", "--help"]).success().stdout;
    for needle in ["--parallel", "REF", "bashbrew.arch", "null"] {
        assert!(
            help.contains(needle),
            "index --help lacks {needle}:\n{help}"
        );
    }
    let help = ocirelay(&["lookup", "--help"]).success().stdout;
    for needle in [
        "--parallel",
        "--type manifest",
        "--type blob",
        "--head",
        "synthesized index",
        "--no-cache",
        "--concurrency",
    ] {
        assert!(
            help.contains(needle),
            "lookup --help lacks {needle}:\n{help}"
        );
    }
    let out = ocirelay(&["lookup", &registry.reference("x:y"), "--head"]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("dangling"), "{}", out.stderr);
}
