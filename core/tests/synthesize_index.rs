//! Synthesize-index against a scripted registry: every rule of the
//! original registry package's SynthesizeIndex, and the requests it costs.

use base64::Engine as _;
use ocirelay_core::descriptor::{ANNOTATION_BASHBREW_ARCH, ANNOTATION_REF_NAME};
use ocirelay_core::index::Index;
use ocirelay_core::media_type::{
    DOCKER_CONFIG, DOCKER_LIST, DOCKER_MANIFEST, OCI_CONFIG, OCI_INDEX, OCI_MANIFEST,
};
use ocirelay_core::ops::synthesize_index::SynthesizeIndex;
use ocirelay_core::{Client, ClientConfig, Descriptor, Digest, Error, Platform, Reference};
use serde_json::{json, Value};

mod common;
use common::{client, drive, drive_concurrently, urls, ScriptedRegistry};

const REPO: &str = "library/app";
const HOST: &str = "localhost:5000";

/// An image in `reg` whose config says `platform`; returns (manifest descriptor, config digest).
fn image(reg: &mut ScriptedRegistry, docker: bool, config: Value) -> (Descriptor, Digest) {
    let (config_type, manifest_type) = if docker {
        (DOCKER_CONFIG, DOCKER_MANIFEST)
    } else {
        (OCI_CONFIG, OCI_MANIFEST)
    };
    let config_bytes = config.to_string().into_bytes();
    let config_digest = reg.put(REPO, config_type, &config_bytes);
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": manifest_type,
        "config": {"mediaType": config_type, "digest": config_digest.to_string(), "size": config_bytes.len()},
        "layers": [],
    })
    .to_string()
    .into_bytes();
    let digest = reg.put(REPO, manifest_type, &manifest);
    (
        Descriptor::new(manifest_type, digest, manifest.len() as u64),
        config_digest,
    )
}

fn config(os: &str, arch: &str) -> Value {
    json!({"architecture": arch, "os": os, "rootfs": {"type": "layers", "diff_ids": []}})
}

fn put_index(reg: &mut ScriptedRegistry, index: Value, tag: &str) -> Digest {
    let media_type = index["mediaType"].as_str().unwrap_or(OCI_INDEX).to_string();
    let d = reg.put(REPO, &media_type, index.to_string().as_bytes());
    reg.tag(REPO, tag, &d);
    d
}

fn entry(d: &Descriptor, platform: Option<Value>, annotations: Option<Value>) -> Value {
    let mut v = json!({"mediaType": d.media_type, "digest": d.digest.to_string(), "size": d.size});
    if let Some(p) = platform {
        v["platform"] = p;
    }
    if let Some(a) = annotations {
        v["annotations"] = a;
    }
    v
}

fn synthesize(
    c: &mut Client,
    reg: &ScriptedRegistry,
    r: &str,
) -> (ocirelay_core::Result<Option<Index>>, Vec<String>) {
    let mut op = SynthesizeIndex::new(Reference::parse(r).unwrap());
    let (out, sent) = drive(c, &mut op, |req| reg.answer(req));
    (out, urls(&sent))
}

fn ref_name(tag: &str, d: &Digest) -> String {
    format!("{HOST}/{REPO}:{tag}@{d}")
}

#[test]
fn an_image_manifest_becomes_a_one_entry_index_with_its_config_platform() {
    let mut reg = ScriptedRegistry::default();
    let (m, config_digest) = image(&mut reg, false, config("linux", "aarch64"));
    reg.tag(REPO, "v1", &m.digest);
    let mut c = client(&[]);
    let (index, sent) = synthesize(&mut c, &reg, &format!("{HOST}/{REPO}:v1"));
    let index = index.unwrap().unwrap();
    assert_eq!(
        sent,
        [
            format!("GET http://{HOST}/v2/{REPO}/manifests/v1"),
            format!("GET http://{HOST}/v2/{REPO}/blobs/{config_digest}"),
        ],
        "the manifest already read is not asked for again"
    );
    let expected = json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [{
            "mediaType": OCI_MANIFEST,
            "digest": m.digest.to_string(),
            "size": m.size,
            "annotations": {
                ANNOTATION_BASHBREW_ARCH: "arm64v8",
                ANNOTATION_REF_NAME: ref_name("v1", &m.digest),
            },
            "platform": {"architecture": "arm64", "os": "linux", "variant": "v8"},
        }],
        "annotations": {ANNOTATION_REF_NAME: ref_name("v1", &m.digest)},
    });
    assert_eq!(serde_json::to_value(&index).unwrap(), expected);
}

#[test]
fn a_docker_image_manifest_gets_the_docker_list_type() {
    let mut reg = ScriptedRegistry::default();
    let (m, _) = image(&mut reg, true, config("linux", "amd64"));
    reg.tag(REPO, "latest", &m.digest);
    let mut c = client(&[]);
    let (index, _) = synthesize(&mut c, &reg, &format!("{HOST}/{REPO}"));
    let index = index.unwrap().unwrap();
    assert_eq!(index.media_type.as_deref(), Some(DOCKER_LIST));
    assert_eq!(
        index.manifests[0].annotations[ANNOTATION_BASHBREW_ARCH],
        "amd64"
    );
    assert_eq!(
        index.annotations[ANNOTATION_REF_NAME],
        format!("{HOST}/{REPO}@{}", m.digest),
        "no tag given, none shown"
    );
}

#[test]
fn a_docker_list_is_read_as_is_and_platforms_are_normalized() {
    let mut reg = ScriptedRegistry::default();
    let (a, _) = image(&mut reg, true, config("linux", "amd64"));
    let (b, _) = image(&mut reg, true, config("linux", "arm"));
    let list = json!({
        "schemaVersion": 2,
        "mediaType": DOCKER_LIST,
        "manifests": [
            entry(&a, Some(json!({"architecture": "amd64", "os": "linux"})), None),
            entry(&b, Some(json!({"architecture": "arm", "os": "linux", "variant": "7"})), None),
        ],
    });
    let top = put_index(&mut reg, list, "1.0");
    let mut c = client(&[]);
    let (index, sent) = synthesize(&mut c, &reg, &format!("{HOST}/{REPO}:1.0"));
    assert_eq!(
        sent.len(),
        1,
        "platforms present: nothing else to read: {sent:?}"
    );
    let index = index.unwrap().unwrap();
    assert_eq!(index.media_type.as_deref(), Some(DOCKER_LIST));
    assert_eq!(
        index.annotations[ANNOTATION_REF_NAME],
        ref_name("1.0", &top)
    );
    assert_eq!(
        index.manifests[1].platform,
        Some(Platform::new("linux", "arm", Some("v7")))
    );
    assert_eq!(
        index.manifests[1].annotations[ANNOTATION_BASHBREW_ARCH],
        "arm32v7"
    );
    assert_eq!(
        index.manifests[1].annotations[ANNOTATION_REF_NAME],
        ref_name("1.0", &b.digest)
    );
}

#[test]
fn an_index_without_media_type_gets_one_from_its_first_entry() {
    for (docker, expected) in [(false, OCI_INDEX), (true, DOCKER_LIST)] {
        let mut reg = ScriptedRegistry::default();
        let (a, _) = image(&mut reg, docker, config("linux", "amd64"));
        let bytes = json!({"schemaVersion": 2, "manifests": [entry(&a, Some(json!({"architecture": "amd64", "os": "linux"})), None)]});
        let d = reg.put(REPO, OCI_INDEX, bytes.to_string().as_bytes());
        reg.tag(REPO, "t", &d);
        let mut c = client(&[]);
        let (index, _) = synthesize(&mut c, &reg, &format!("{HOST}/{REPO}:t"));
        assert_eq!(
            index.unwrap().unwrap().media_type.as_deref(),
            Some(expected)
        );
    }
}

#[test]
fn schema_versions_and_unknown_media_types() {
    let mut reg = ScriptedRegistry::default();
    let (a, _) = image(&mut reg, false, config("linux", "amd64"));
    let e = entry(
        &a,
        Some(json!({"architecture": "amd64", "os": "linux"})),
        None,
    );
    put_index(
        &mut reg,
        json!({"mediaType": OCI_INDEX, "manifests": [e.clone()]}),
        "v0",
    );
    put_index(
        &mut reg,
        json!({"schemaVersion": 3, "mediaType": OCI_INDEX, "manifests": [e.clone()]}),
        "v3",
    );
    let weird = reg.put(REPO, "application/vnd.example.thing+json", b"{}");
    reg.tag(REPO, "weird", &weird);
    let bad_index = reg.put(
        REPO,
        OCI_INDEX,
        json!({"schemaVersion": 2, "mediaType": "application/x-nope", "manifests": []})
            .to_string()
            .as_bytes(),
    );
    reg.tag(REPO, "badindex", &bad_index);

    let mut c = client(&[]);
    let (index, _) = synthesize(&mut c, &reg, &format!("{HOST}/{REPO}:v0"));
    assert_eq!(index.unwrap().unwrap().schema_version, 2, "0 becomes 2");

    let (index, _) = synthesize(&mut c, &reg, &format!("{HOST}/{REPO}:v3"));
    assert_eq!(
        index.unwrap_err().to_string(),
        format!("invalid input: {HOST}/{REPO}:v3: unsupported index schemaVersion 3")
    );

    let (index, _) = synthesize(&mut c, &reg, &format!("{HOST}/{REPO}:weird"));
    let err = index.unwrap_err().to_string();
    assert!(
        err.contains("unsupported mediaType \"application/vnd.example.thing+json\""),
        "{err}"
    );

    let (index, _) = synthesize(&mut c, &reg, &format!("{HOST}/{REPO}:badindex"));
    assert!(index
        .unwrap_err()
        .to_string()
        .contains("unsupported index mediaType \"application/x-nope\""));

    let (index, _) = synthesize(&mut c, &reg, &format!("{HOST}/{REPO}:missing"));
    assert!(index.unwrap().is_none(), "not found is null, not an error");
}

#[test]
fn platforms_come_from_oci_and_docker_configs_concurrently_each_object_once() {
    let mut reg = ScriptedRegistry::default();
    let mut entries = Vec::new();
    let mut expected_arches = Vec::new();
    for (i, (os, arch, docker)) in [
        ("linux", "amd64", false),
        ("linux", "s390x", true),
        ("linux", "ppc64le", false),
        ("linux", "riscv64", true),
    ]
    .into_iter()
    .enumerate()
    {
        let mut cfg = config(os, arch);
        cfg["created"] = json!(format!("entry {i}"));
        let (m, _) = image(&mut reg, docker, cfg);
        entries.push(entry(&m, None, None));
        expected_arches.push(arch);
    }
    // The same entry twice: de-duplicated, first wins.
    entries.push(entries[0].clone());
    put_index(
        &mut reg,
        json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}),
        "multi",
    );

    let mut c = client(&[]);
    let mut op = SynthesizeIndex::new(Reference::parse(&format!("{HOST}/{REPO}:multi")).unwrap());
    let (index, sent, most) = drive_concurrently(&mut c, &mut op, |r| reg.answer(r));
    let index = index.unwrap().unwrap();
    assert_eq!(sent.len(), 1 + 2 * 4, "1 + 2N requests: {:#?}", urls(&sent));
    assert_eq!(
        most, 4,
        "the four manifests are read together, then the four configs"
    );
    assert_eq!(index.manifests.len(), 4);
    for (m, arch) in index.manifests.iter().zip(expected_arches) {
        assert_eq!(m.platform.as_ref().unwrap().architecture, arch);
        assert_eq!(m.annotations[ANNOTATION_BASHBREW_ARCH], arch);
        assert!(m.data.is_none());
    }

    // The same reference again in this client: all from the cache.
    let mut op = SynthesizeIndex::new(Reference::parse(&format!("{HOST}/{REPO}:multi")).unwrap());
    let (again, sent) = drive(&mut c, &mut op, |r| reg.answer(r));
    assert!(sent.is_empty(), "{:?}", urls(&sent));
    assert_eq!(again.unwrap().unwrap(), index);
}

#[test]
fn concurrency_is_bounded() {
    let mut reg = ScriptedRegistry::default();
    let entries: Vec<Value> = (0..6)
        .map(|i| {
            let mut cfg = config("linux", "amd64");
            cfg["created"] = json!(i);
            entry(&image(&mut reg, false, cfg).0, None, None)
        })
        .collect();
    put_index(
        &mut reg,
        json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}),
        "six",
    );
    let mut c = Client::new(ClientConfig {
        concurrency: 2,
        ..ClientConfig::default()
    });
    let mut op = SynthesizeIndex::new(Reference::parse(&format!("{HOST}/{REPO}:six")).unwrap());
    let (index, sent, most) = drive_concurrently(&mut c, &mut op, |r| reg.answer(r));
    assert_eq!(index.unwrap().unwrap().manifests.len(), 6);
    assert_eq!(sent.len(), 13);
    assert_eq!(most, 2);
}

#[test]
fn a_shared_config_is_fetched_once() {
    let mut reg = ScriptedRegistry::default();
    // Two manifests (different layers) with one config.
    let cfg = config("linux", "amd64").to_string().into_bytes();
    let cd = reg.put(REPO, OCI_CONFIG, &cfg);
    let mut entries = Vec::new();
    for layer in ["a", "b"] {
        let m = json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": cd.to_string(), "size": cfg.len()},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": Digest::sha256(layer.as_bytes()).to_string(), "size": 1}],
        })
        .to_string();
        let d = reg.put(REPO, OCI_MANIFEST, m.as_bytes());
        entries.push(entry(
            &Descriptor::new(OCI_MANIFEST, d, m.len() as u64),
            None,
            None,
        ));
    }
    put_index(
        &mut reg,
        json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}),
        "shared",
    );
    let mut c = client(&[]);
    let mut op = SynthesizeIndex::new(Reference::parse(&format!("{HOST}/{REPO}:shared")).unwrap());
    let (index, sent, _) = drive_concurrently(&mut c, &mut op, |r| reg.answer(r));
    assert_eq!(index.unwrap().unwrap().manifests.len(), 2);
    let config_gets = sent
        .iter()
        .filter(|r| r.url.path_and_query.contains("/blobs/"))
        .count();
    assert_eq!(config_gets, 1, "{:#?}", urls(&sent));
}

#[test]
fn embedded_data_is_used_without_a_request() {
    let mut reg = ScriptedRegistry::default();
    let cfg = config("windows", "amd64").to_string().into_bytes();
    let cfg_d = Digest::sha256(&cfg);
    let b64 = base64::engine::general_purpose::STANDARD;
    // Neither the config nor the manifest is in the registry: only embedded.
    let manifest = json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": cfg_d.to_string(), "size": cfg.len(), "data": b64.encode(&cfg)},
        "layers": [],
    })
    .to_string()
    .into_bytes();
    let md = Descriptor::new(
        OCI_MANIFEST,
        Digest::sha256(&manifest),
        manifest.len() as u64,
    );
    let mut e = entry(&md, None, None);
    e["data"] = json!(b64.encode(&manifest));
    put_index(
        &mut reg,
        json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [e]}),
        "embedded",
    );
    let mut c = client(&[]);
    let (index, sent) = synthesize(&mut c, &reg, &format!("{HOST}/{REPO}:embedded"));
    assert_eq!(sent.len(), 1, "{sent:?}");
    let m = &index.unwrap().unwrap().manifests[0];
    assert_eq!(m.annotations[ANNOTATION_BASHBREW_ARCH], "windows-amd64");
    assert!(m.data.is_none(), "no data survives");

    // Embedded data that lies about its digest is an error.
    let mut reg = ScriptedRegistry::default();
    let mut e = entry(&md, None, None);
    e["data"] = json!(b64.encode(manifest.iter().map(|b| b ^ 1).collect::<Vec<_>>()));
    put_index(
        &mut reg,
        json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [e]}),
        "lies",
    );
    let (index, _) = synthesize(&mut c, &reg, &format!("{HOST}/{REPO}:lies"));
    assert!(matches!(index.unwrap_err(), Error::Integrity { .. }));
}

#[test]
fn windows_os_version_arm64_and_untrusted_annotations() {
    let mut reg = ScriptedRegistry::default();
    let (win, _) = image(&mut reg, false, config("windows", "amd64"));
    let (arm, _) = image(&mut reg, false, config("linux", "arm64"));
    let (odd, _) = image(&mut reg, false, config("linux", "sparc64"));
    let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        entry(&win, Some(json!({"architecture": "amd64", "os": "windows", "os.version": "10.0.20348.2340"})), Some(json!({ANNOTATION_BASHBREW_ARCH: "amd64"}))),
        entry(&arm, Some(json!({"architecture": "arm64", "os": "linux"})), None),
        entry(&odd, Some(json!({"architecture": "sparc64", "os": "linux"})), Some(json!({ANNOTATION_BASHBREW_ARCH: "amd64", "keep": "me"}))),
    ]});
    put_index(&mut reg, index, "mixed");
    let mut c = client(&[]);
    let (index, _) = synthesize(&mut c, &reg, &format!("{HOST}/{REPO}:mixed"));
    let m = index.unwrap().unwrap().manifests;
    assert_eq!(
        m[0].annotations[ANNOTATION_BASHBREW_ARCH], "windows-amd64",
        "recomputed, not trusted"
    );
    assert_eq!(
        m[0].platform.as_ref().unwrap().os_version.as_deref(),
        Some("10.0.20348.2340")
    );
    assert_eq!(
        m[1].platform.as_ref().unwrap().variant.as_deref(),
        Some("v8"),
        "arm64 without variant is v8"
    );
    assert_eq!(m[1].annotations[ANNOTATION_BASHBREW_ARCH], "arm64v8");
    assert!(
        !m[2].annotations.contains_key(ANNOTATION_BASHBREW_ARCH),
        "no arch matches sparc64: removed"
    );
    assert_eq!(m[2].annotations["keep"], "me");
}

#[test]
fn attestations_follow_their_subject_or_are_dropped() {
    let mut reg = ScriptedRegistry::default();
    let (img, _) = image(&mut reg, false, config("linux", "amd64"));
    let (att, _) = image(&mut reg, false, config("unknown", "unknown"));
    let (orphan, _) = image(&mut reg, false, {
        let mut c = config("unknown", "unknown");
        c["created"] = json!("orphan");
        c
    });
    let attestation = |subject: &Digest| {
        Some(
            json!({"vnd.docker.reference.type": "attestation-manifest", "vnd.docker.reference.digest": subject.to_string()}),
        )
    };
    let unknown = Some(json!({"architecture": "unknown", "os": "unknown"}));
    let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        entry(&img, Some(json!({"architecture": "amd64", "os": "linux"})), None),
        entry(&att, unknown.clone(), attestation(&img.digest)),
        entry(&orphan, unknown, attestation(&Digest::sha256(b"not here"))),
    ]});
    put_index(&mut reg, index, "attested");
    let mut c = client(&[]);
    let (index, _) = synthesize(&mut c, &reg, &format!("{HOST}/{REPO}:attested"));
    let m = index.unwrap().unwrap().manifests;
    assert_eq!(m.len(), 2, "the attestation without its subject is dropped");
    assert_eq!(m[1].digest, att.digest);
    assert_eq!(
        m[1].annotations[ANNOTATION_BASHBREW_ARCH], "amd64",
        "takes its subject's arch"
    );
}

/// Duplicates are dropped after dangling attestations, as in the original:
/// an attestation dropped for coming before its subject is not "seen", so
/// a later copy of it, after the subject, is kept.
#[test]
fn a_dropped_attestation_is_not_seen_by_deduplication() {
    let mut reg = ScriptedRegistry::default();
    let (img, _) = image(&mut reg, false, config("linux", "amd64"));
    let (att, _) = image(&mut reg, false, config("unknown", "unknown"));
    let attestation = Some(json!({"vnd.docker.reference.type": "attestation-manifest",
                                  "vnd.docker.reference.digest": img.digest.to_string()}));
    let unknown = Some(json!({"architecture": "unknown", "os": "unknown"}));
    let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        entry(&att, unknown.clone(), attestation.clone()),
        entry(&img, Some(json!({"architecture": "amd64", "os": "linux"})), None),
        entry(&att, unknown.clone(), attestation.clone()),
        entry(&img, Some(json!({"architecture": "amd64", "os": "linux"})), None),
    ]});
    put_index(&mut reg, index, "reordered");
    let mut c = client(&[]);
    let (index, _) = synthesize(&mut c, &reg, &format!("{HOST}/{REPO}:reordered"));
    let digests: Vec<Digest> = index
        .unwrap()
        .unwrap()
        .manifests
        .into_iter()
        .map(|m| m.digest)
        .collect();
    assert_eq!(digests, [img.digest.clone(), att.digest.clone()]);
}

#[test]
fn a_batch_runs_queries_side_by_side_sharing_the_cache() {
    use ocirelay_core::ops::batch::{Answer, Batch, Query};
    use ocirelay_core::ops::lookup::{LookupKind, LookupOptions};
    let mut reg = ScriptedRegistry::default();
    let (a, _) = image(&mut reg, false, config("linux", "amd64"));
    let (b, _) = image(&mut reg, false, config("linux", "arm64"));
    let top = put_index(
        &mut reg,
        json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [entry(&a, None, None), entry(&b, None, None)]}),
        "v1",
    );
    let r = Reference::parse(&format!("{HOST}/{REPO}:v1")).unwrap();
    let head = LookupOptions {
        kind: LookupKind::Manifest,
        head: true,
    };
    let bad_blob = LookupOptions {
        kind: LookupKind::Blob,
        head: false,
    };
    let mut batch = Batch::new(vec![
        Ok(Query::SynthesizeIndex(r.clone())),
        Ok(Query::SynthesizeIndex(r.clone())),
        Ok(Query::Lookup(r.clone(), head)),
        Ok(Query::Lookup(r.clone(), bad_blob)),
        Err(Error::InvalidInput("unparsable".into())),
    ]);
    let mut c = client(&[]);
    let (out, sent, most) = drive_concurrently(&mut c, &mut batch, |req| reg.answer(req));
    assert_eq!(out.len(), 5, "one outcome per query, in order");
    let (Ok(Some(Answer::Index(x))), Ok(Some(Answer::Index(y)))) = (&out[0], &out[1]) else {
        panic!("{out:?}")
    };
    assert_eq!(x, y);
    let Ok(Some(Answer::Found(found))) = &out[2] else {
        panic!("{out:?}")
    };
    assert_eq!(found.descriptor.digest, top);
    assert!(out[3]
        .as_ref()
        .unwrap_err()
        .to_string()
        .contains("a blob lookup needs a digest"));
    assert!(matches!(&out[4], Err(Error::InvalidInput(m)) if m == "unparsable"));
    assert_eq!(
        sent.len(),
        1 + 2 * 2,
        "shared cache: the index, two manifests, two configs: {:#?}",
        urls(&sent)
    );
    assert!(most >= 2);
}

#[test]
fn a_query_that_fails_holding_a_claim_does_not_leave_another_waiting() {
    use ocirelay_core::ops::batch::{Answer, Batch, Query};
    let mut reg = ScriptedRegistry::default();
    let (shared, _) = image(&mut reg, false, config("linux", "amd64"));
    let missing = Descriptor::new(OCI_MANIFEST, Digest::sha256(b"not there"), 9);
    // The first index lists a manifest the registry does not have, before
    // the one both indexes share: reading it fails the first query while
    // its read of the shared manifest is in flight, holding the claim on it.
    put_index(
        &mut reg,
        json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [entry(&missing, None, None), entry(&shared, None, None)]}),
        "broken",
    );
    put_index(
        &mut reg,
        json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [entry(&shared, None, None)]}),
        "fine",
    );
    let query = |tag: &str| {
        let r = Reference::parse(&format!("{HOST}/{REPO}:{tag}")).unwrap();
        Ok(Query::SynthesizeIndex(r))
    };
    let mut batch = Batch::new(vec![query("broken"), query("fine")]);
    let mut c = client(&[]);
    let (out, sent, _) = drive_concurrently(&mut c, &mut batch, |req| reg.answer(req));
    let err = out[0].as_ref().unwrap_err().to_string();
    assert!(err.contains("missing from the registry"), "{err}");
    let Ok(Some(Answer::Index(index))) = &out[1] else {
        panic!("the other query went on: {out:?}")
    };
    assert_eq!(index.manifests[0].digest, shared.digest);
    let shared_reads = sent
        .iter()
        .filter(|q| q.url.path_and_query.ends_with(&shared.digest.to_string()))
        .count();
    assert_eq!(
        shared_reads,
        2,
        "asked again once the claim ended: {:#?}",
        urls(&sent)
    );
}

#[test]
fn a_platform_needs_both_os_and_architecture() {
    let mut reg = ScriptedRegistry::default();
    // Said in the entry, but half: completed from the image config.
    let (a, _) = image(&mut reg, false, config("linux", "amd64"));
    // A config that says only its OS: no platform at all.
    let (b, _) = image(
        &mut reg,
        false,
        json!({"os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}),
    );
    let half = json!({"os": "linux", "architecture": ""});
    put_index(
        &mut reg,
        json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [entry(&a, Some(half), None), entry(&b, None, None)]}),
        "v1",
    );
    let mut c = client(&[]);
    let (out, _) = synthesize(&mut c, &reg, &format!("{HOST}/{REPO}:v1"));
    let index = out.unwrap().unwrap();
    let platform = index.manifests[0]
        .platform
        .as_ref()
        .expect("from the config");
    assert_eq!(
        (platform.os.as_str(), platform.architecture.as_str()),
        ("linux", "amd64")
    );
    assert_eq!(
        index.manifests[1].platform, None,
        "an OS alone is no platform"
    );
}
