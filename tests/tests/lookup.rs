//! `ocirelay lookup` against real registries: plain HTTP, Basic auth, token auth.

use base64::Engine as _;
use ocirelay_core::media_type::OCI_MANIFEST;
use ocirelay_core::Descriptor;
use ocirelay_tests::cli::{docker_config, ocirelay_untrusting, ocirelay_with};
use ocirelay_tests::{ocirelay, platform, Auth, Flavour, Layout, Registry};
use serde_json::json;

/// An image with two layers, tagged `v1`; returns (manifest, its bytes, first layer).
fn sample(layout: &mut Layout) -> (Descriptor, Vec<u8>, Descriptor) {
    let manifest = layout.image(
        Flavour::Oci,
        &platform("linux", "amd64", None),
        &[b"layer one", b"layer two"],
    );
    layout.tag("v1", &manifest);
    let bytes = std::fs::read(
        layout
            .path()
            .join("blobs/sha256")
            .join(manifest.digest.hex()),
    )
    .unwrap();
    let children = ocirelay_core::manifest::ManifestChildren::parse(&bytes).unwrap();
    (manifest, bytes, children.layers[0].clone())
}

fn descriptor_json(d: &Descriptor) -> serde_json::Value {
    json!({"mediaType": d.media_type, "digest": d.digest.to_string(), "size": d.size})
}

#[test]
fn plain_registry_tag_digest_blob_head_and_not_found() {
    let registry = Registry::start(Auth::None);
    let mut layout = Layout::new();
    let (manifest, bytes, layer) = sample(&mut layout);
    layout.push(&registry, "app", "v1");
    let by_tag = registry.reference("app:v1");
    let by_digest = registry.reference(&format!("app@{}", manifest.digest));
    let blob = registry.reference(&format!("app@{}", layer.digest));

    let out = ocirelay(&[
        "lookup", "--type", "manifest", &by_tag, "--type", "manifest", &by_digest,
    ])
    .success();
    let expected: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(
        out.json(),
        vec![expected.clone(), expected],
        "manifest by tag, then by digest"
    );
    assert!(
        out.stdout.contains("\n\t\""),
        "pretty-printed with tabs: {}",
        out.stdout
    );

    let out = ocirelay(&["lookup", "--head", &by_tag]).success();
    assert_eq!(out.json(), vec![descriptor_json(&manifest)]);
    assert_eq!(manifest.media_type, OCI_MANIFEST);

    let out = ocirelay(&["lookup", "--type", "blob", &blob]).success();
    let encoded = base64::engine::general_purpose::STANDARD.encode(b"layer one");
    assert_eq!(out.json(), vec![json!(encoded)]);

    let out = ocirelay(&["lookup", "--type", "blob", "--head", &blob]).success();
    assert_eq!(
        out.json(),
        vec![
            json!({"mediaType": "application/octet-stream", "digest": layer.digest.to_string(), "size": 9})
        ]
    );

    let missing_blob =
        registry.reference(&format!("app@{}", ocirelay_core::Digest::sha256(b"absent")));
    let out = ocirelay(&[
        "lookup",
        "--type",
        "manifest",
        &registry.reference("app:nope"),
        &registry.reference("nothing/here:v1"),
    ])
    .success();
    assert_eq!(
        out.json(),
        vec![json!(null), json!(null)],
        "missing tag and missing repository"
    );
    let out = ocirelay(&["lookup", "--type", "blob", &missing_blob]).success();
    assert_eq!(out.json(), vec![json!(null)]);
    let out = ocirelay(&["lookup", "--head", &registry.reference("app:nope")]).success();
    assert_eq!(out.json(), vec![json!(null)]);
}

#[test]
fn tag_defaults_to_latest_at_lookup() {
    let registry = Registry::start(Auth::None);
    let mut layout = Layout::new();
    let manifest = layout.image(
        Flavour::Oci,
        &platform("linux", "arm64", Some("v8")),
        &[b"x"],
    );
    layout.tag("latest", &manifest);
    layout.push(&registry, "plain", "latest");
    let out = ocirelay(&["lookup", "--head", &registry.reference("plain")]).success();
    assert_eq!(out.json(), vec![descriptor_json(&manifest)]);
}

#[test]
fn bad_input_is_a_clear_error_naming_it() {
    for bad in [
        "Foo",
        "localhost:5000/foo:#",
        "localhost:5000/foo?test",
        "foo@bad_digest",
        "...",
    ] {
        let out = ocirelay(&["lookup", bad]);
        assert_eq!(out.code, 2, "{bad}: {out:?}");
        assert!(
            out.stderr.contains(&format!("{bad:?}")),
            "{bad}: {}",
            out.stderr
        );
        assert!(out.stdout.is_empty(), "nothing printed for {bad}");
    }
    let out = ocirelay(&["lookup", "--type", "tarball", "localhost:5000/foo"]);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("unknown lookup type \"tarball\""),
        "{}",
        out.stderr
    );

    let out = ocirelay(&["lookup", "--type", "blob", "localhost:5000/foo:v1"]);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr
            .contains("localhost:5000/foo:v1: a blob lookup needs a digest"),
        "{}",
        out.stderr
    );
}

#[test]
fn unreachable_registry_is_a_clear_error() {
    let port = ocirelay_tests::registry::free_port();
    let out = ocirelay(&["lookup", &format!("127.0.0.1:{port}/foo:v1")]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains(&format!(
            "cannot reach 127.0.0.1:{port}: connection refused"
        )),
        "{}",
        out.stderr
    );
}

#[test]
fn basic_auth_registry() {
    let registry = Registry::start(Auth::Basic {
        user: "alice".into(),
        password: "s3cret-basic".into(),
    });
    let mut layout = Layout::new();
    let (manifest, _, layer) = sample(&mut layout);
    layout.push(&registry, "private/app", "v1");
    let by_tag = registry.reference("private/app:v1");
    let blob = registry.reference(&format!("private/app@{}", layer.digest));

    let good = docker_config(registry.host(), "alice", "s3cret-basic");
    let env = [("DOCKER_CONFIG", good.path().to_str().unwrap())];
    let out = ocirelay_with(&["lookup", "--head", &by_tag], &env).success();
    assert_eq!(out.json(), vec![descriptor_json(&manifest)]);
    let out = ocirelay_with(&["lookup", "--type", "blob", &blob], &env).success();
    assert_eq!(
        out.json(),
        vec![json!(
            base64::engine::general_purpose::STANDARD.encode(b"layer one")
        )]
    );

    // Anonymous: the registry's 401 means "not visible", a value.
    let out = ocirelay(&["lookup", "--head", &by_tag]).success();
    assert_eq!(out.json(), vec![json!(null)]);

    // Wrong credentials are an authentication error, and the password is not echoed.
    let bad = docker_config(registry.host(), "alice", "wrong-password");
    let out = ocirelay_with(
        &["lookup", &by_tag],
        &[("DOCKER_CONFIG", bad.path().to_str().unwrap())],
    );
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("authentication to"), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("refused the credentials of user \"alice\""),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("wrong-password"));
}

#[test]
fn token_auth_registry() {
    let registry = Registry::start(Auth::Token {
        users: vec![("bob".into(), "s3cret-token".into())],
        public_repositories: vec!["public/app".into()],
    });
    let mut layout = Layout::new();
    let (manifest, bytes, layer) = sample(&mut layout);
    layout.push(&registry, "private/app", "v1");
    layout.push(&registry, "public/app", "v1");
    let private = registry.reference("private/app:v1");
    let public = registry.reference("public/app:v1");

    let good = docker_config(registry.host(), "bob", "s3cret-token");
    let env = [("DOCKER_CONFIG", good.path().to_str().unwrap())];
    let blob = registry.reference(&format!("private/app@{}", layer.digest));
    let out = ocirelay_with(&["lookup", "--type", "manifest", &private], &env).success();
    assert_eq!(
        out.json(),
        vec![serde_json::from_slice::<serde_json::Value>(&bytes).unwrap()]
    );
    let out = ocirelay_with(&["lookup", "--type", "blob", "--head", &blob], &env).success();
    assert_eq!(out.json()[0]["digest"], json!(layer.digest.to_string()));
    let seen = registry.token_server().unwrap().requests();
    assert!(
        seen.iter().any(
            |r| r.user.as_deref() == Some("bob") && r.scopes == ["repository:private/app:pull"]
        ),
        "{seen:?}"
    );

    // Anonymous: a public repository is readable, a private one is "not found".
    let from = registry.access_log().len();
    let out = ocirelay(&["lookup", "--head", &public, &private]).success();
    assert_eq!(out.json(), vec![descriptor_json(&manifest), json!(null)]);
    // Only the first scope meets a 401: the second's token is asked for
    // ahead, from the challenge remembered. Private is refused with its own.
    let statuses: Vec<u16> = registry.served(from).into_iter().map(|(_, s)| s).collect();
    assert_eq!(statuses, [401, 200, 401], "{:#?}", registry.access_log());

    // Wrong credentials: the token server refuses them; that is an error, not null.
    let bad = docker_config(registry.host(), "bob", "wrong-password");
    let out = ocirelay_with(
        &["lookup", "--head", &public],
        &[("DOCKER_CONFIG", bad.path().to_str().unwrap())],
    );
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("token server") && out.stderr.contains("refused the credentials"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("wrong-password"));
}

#[test]
fn a_machine_without_ca_certificates_still_reaches_plain_http_registries() {
    let registry = Registry::start_plain(Auth::None);
    let mut layout = Layout::new();
    let (manifest, _, _) = sample(&mut layout);
    layout.push(&registry, "app", "v1");
    let env = [
        ("SSL_CERT_FILE", "/nonexistent/ca.pem"),
        ("SSL_CERT_DIR", "/nonexistent"),
    ];
    let args = ["lookup", "--head", &registry.reference("app:v1")];
    let out = ocirelay_untrusting(&args, &env).success();
    assert_eq!(out.json(), vec![descriptor_json(&manifest)]);
    assert!(out.stderr.contains("no system TLS roots"), "{}", out.stderr);
}

/// As in the original: `--head` of an object already read in the same run
/// prints its bytes in the descriptor's `data` (base64); a first `--head`
/// has none.
#[test]
fn a_head_after_a_read_prints_the_data_as_the_original() {
    let registry = Registry::start(Auth::None);
    ocirelay_tests::push_image(&registry, "app", "v1", &[b"read then headed"]);
    let reference = registry.reference("app:v1");
    let out = ocirelay(&[
        "lookup", "--head", &reference, "--type", "manifest", &reference, "--head", &reference,
    ])
    .success();
    let docs = out.json();
    assert!(docs[0].get("data").is_none(), "{:?}", docs[0]);
    let manifest = serde_json::to_vec(&docs[1]).unwrap();
    let data = docs[2]["data"].as_str().expect("data after the read");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(data)
        .unwrap();
    let read_back: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(serde_json::to_vec(&read_back).unwrap(), manifest);
    assert_eq!(docs[2]["digest"], docs[0]["digest"]);
}
