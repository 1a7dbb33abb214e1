//! `ocirelay deploy` against real registries: the original deploy tool's
//! input (inline blobs, JSON objects, copies), pushed to many tags in two
//! repositories (a mount within the registry), copied across registries,
//! in parallel with children and parents interleaved; a dry run after it
//! prints nothing, and a second run sends only HEADs.

use std::io::Write;
use std::process::{Command, Stdio};

use base64::Engine as _;
use ocirelay_core::deploy::jq;
use ocirelay_core::Digest;
use ocirelay_tests::cli::{binary, cache_dir};
use ocirelay_tests::{Auth, Registry};
use serde_json::json;

/// Runs `ocirelay deploy ARGS` with `input` on stdin: exit code, stdout, stderr.
fn deploy(args: &[&str], input: &str) -> (i32, String, String) {
    let empty = tempfile::tempdir().unwrap();
    let mut child = Command::new(binary())
        .arg("deploy")
        .args(args)
        .env("DOCKER_CONFIG", empty.path())
        .env("OCIRELAY_CACHE_DIR", cache_dir())
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running ocirelay deploy");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A layer (base64), a config (a JSON object), an image to three tags in
/// two repositories, an index of it, and a copy of the image to `to`: as a
/// pipeline writes them, children first, one JSON object per input.
fn stream(host: &str, to: &str) -> (Vec<serde_json::Value>, Digest, Digest) {
    let layer = b"a layer of the deployed image".to_vec();
    let config = json!({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}});
    let config_bytes = jq::data_bytes(&config);
    let image = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": Digest::sha256(&config_bytes).to_string(), "size": config_bytes.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": Digest::sha256(&layer).to_string(), "size": layer.len()}],
    });
    let image_bytes = jq::data_bytes(&image);
    let image_digest = Digest::sha256(&image_bytes);
    let index = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "digest": image_digest.to_string(), "size": image_bytes.len(),
                       "platform": {"architecture": "amd64", "os": "linux"}}],
    });
    let index_digest = Digest::sha256(&jq::data_bytes(&index));
    let b64 = base64::engine::general_purpose::STANDARD.encode(&layer);
    let inputs = [
        json!({"type": "blob", "refs": [format!("{host}/app")], "data": b64}),
        json!({"type": "blob", "refs": [format!("{host}/app")], "data": config}),
        json!({"type": "manifest",
               "refs": [format!("{host}/app:v1"), format!("{host}/app:latest"), format!("{host}/other:v1")],
               "lookup": {"": format!("{host}/app")},
               "data": image}),
        json!({"type": "manifest", "refs": [format!("{host}/app:multi"), format!("{host}/other:multi")],
               "lookup": {"": format!("{host}/app")}, "data": index}),
        json!({"type": "manifest", "refs": [format!("{to}/copied:v1")], "lookup": {"": format!("{host}/app:v1")}}),
    ];
    (inputs.to_vec(), image_digest, index_digest)
}

/// Inputs as a pipeline writes them: pretty-printed, one after another.
fn text(inputs: &[serde_json::Value]) -> String {
    inputs
        .iter()
        .map(|i| format!("{i:#}"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn digest_of(reference: &str) -> String {
    let out = ocirelay_tests::ocirelay(&["lookup", "--head", reference]).success();
    out.json()[0]["digest"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn a_pipeline_deploys_then_finds_nothing_left_to_do() {
    let registry = Registry::start_plain(Auth::None);
    let other = Registry::start_plain(Auth::None);
    let (inputs, image, index) = stream(registry.host(), other.host());
    let text = text(&inputs);

    let (code, stdout, stderr) = deploy(&["--parallel"], &text);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout, "");
    assert_eq!(stderr.matches("❔ ").count(), 8, "{stderr}");
    assert_eq!(stderr.matches("✅ ").count(), 8, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "✅ {}/copied:v1 🤝 (manifest) {}/app:v1@{image}",
            other.host(),
            registry.host()
        )),
        "{stderr}"
    );
    for tag in ["app:v1", "app:latest", "other:v1"] {
        assert_eq!(
            digest_of(&registry.reference(tag)),
            image.to_string(),
            "{tag}"
        );
    }
    assert_eq!(
        digest_of(&registry.reference("other:multi")),
        index.to_string()
    );
    assert_eq!(digest_of(&other.reference("copied:v1")), image.to_string());
    assert!(
        registry.requests_matching("POST", "mount=") >= 1,
        "other/ got its blobs by mounting them from app/"
    );

    let (code, stdout, stderr) = deploy(&["--dry-run"], &text);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout, "", "nothing would change: {stderr}");

    let before = registry.access_log().len();
    let (code, _, stderr) = deploy(&["--parallel"], &text);
    assert_eq!(code, 0, "{stderr}");
    let again = registry.served(before);
    assert!(
        again.iter().all(|(line, _)| line.starts_with("HEAD ")),
        "a second deploy only looks: {again:#?}"
    );
}

#[test]
fn a_dry_run_prints_each_ref_that_would_change_as_the_original() {
    let registry = Registry::start_plain(Auth::None);
    let other = Registry::start_plain(Auth::None);
    let (inputs, _, _) = stream(registry.host(), other.host());
    // The layer is there already; the config is not.
    deploy(&[], &text(&inputs[..1]));
    let before = registry.access_log().len();
    let (code, stdout, stderr) = deploy(&["--dry-run"], &text(&inputs[..2]));
    assert_eq!(code, 0, "{stderr}");
    let printed: Vec<serde_json::Value> = serde_json::Deserializer::from_str(&stdout)
        .into_iter()
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert_eq!(printed.len(), 1, "the config blob, alone: {stdout}");
    assert_eq!(printed[0]["type"], json!("blob"));
    let config = jq::data_bytes(&inputs[1]["data"]);
    let encoded = base64::engine::general_purpose::STANDARD.encode(&config);
    assert_eq!(printed[0]["data"], json!(encoded));
    assert!(stderr.contains("✅ ") && stderr.contains("❌ "), "{stderr}");
    assert!(
        stdout.starts_with("{\n\t\"type\": \"blob\",\n\t\"refs\": [\n\t\t\""),
        "{stdout}"
    );
    assert!(
        registry
            .served(before)
            .iter()
            .all(|(line, _)| line.starts_with("HEAD ")),
        "a dry run only looks"
    );
}

#[test]
fn bad_input_is_refused_whole_naming_where() {
    let registry = Registry::start_plain(Auth::None);
    let good = json!({"type": "blob", "refs": [registry.reference("app")], "data": "eA=="});
    let bad = json!({"type": "blob", "refs": [registry.reference("app:tag")], "data": "eQ=="});
    let before = registry.access_log().len();
    let (code, _, stderr) = deploy(&[], &format!("{good}\n{bad}"));
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("input 2 (line 2)") && stderr.contains("cannot push blobs to a tag"),
        "{stderr}"
    );
    assert_eq!(
        registry.served(before),
        vec![],
        "nothing is pushed when any input is bad"
    );
    let (code, _, stderr) = deploy(&[], "{\"type\": \"blob\", \"refs\": [");
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("input 1 (line 1): not JSON"), "{stderr}");
}

#[test]
fn a_failure_is_exit_1_and_starts_nothing_new() {
    let registry = Registry::start_plain(Auth::None);
    let missing = format!("{}/nothing@sha256:{}", registry.host(), "0".repeat(64));
    let copy =
        json!({"type": "blob", "refs": [registry.reference("app")], "lookup": {"": missing}});
    let later = json!({"type": "blob", "refs": [registry.reference("app")], "data": "eA=="});
    let (code, _, stderr) = deploy(&[], &format!("{copy}\n{later}"));
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("❌ ") && stderr.contains("-- ERROR: "),
        "{stderr}"
    );
    assert_eq!(
        stderr.matches("❔ ").count(),
        1,
        "the second never started: {stderr}"
    );
}
