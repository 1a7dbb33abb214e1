//! `DOCKERHUB_PUBLIC_PROXY`: Docker Hub reads go to a read-through mirror
//! (here a loopback registry), whose 404 is final.

use ocirelay_tests::cli::{ocirelay_untrusting, ocirelay_with};
use ocirelay_tests::{push_image, Auth, Registry};
use serde_json::json;

#[test]
fn docker_hub_reads_go_to_the_mirror() {
    let mirror = Registry::start_plain(Auth::None);
    let image = push_image(
        &mirror,
        "library/hello-world",
        "latest",
        &[b"hello from the mirror"],
    );
    let url = format!("http://{}", mirror.host());
    let env = [("DOCKERHUB_PUBLIC_PROXY", url.as_str())];

    let out = ocirelay_with(
        &[
            "lookup",
            "--head",
            "hello-world",
            "--head",
            "docker.io/library/hello-world:latest",
        ],
        &env,
    )
    .success();
    let docs = out.json();
    assert_eq!(docs[0]["digest"], json!(image.digest.to_string()));
    assert_eq!(docs[0], docs[1]);
    let out = ocirelay_with(&["index", "hello-world"], &env).success();
    assert_eq!(
        out.json()[0]["manifests"][0]["annotations"]["com.docker.official-images.bashbrew.arch"],
        json!("amd64")
    );
    assert_eq!(
        out.json()[0]["annotations"]["org.opencontainers.image.ref.name"],
        json!(format!("hello-world@{}", image.digest)),
        "names stay Docker Hub's"
    );
    // The mirror's 404 is final: null, with no second try at Docker Hub.
    let out = ocirelay_with(&["lookup", "--head", "busybox:nope"], &env).success();
    assert_eq!(out.json(), vec![json!(null)]);

    let host_only = [("DOCKERHUB_PUBLIC_PROXY_HOST", mirror.host())];
    // _HOST means HTTPS; this mirror speaks plain HTTP, so the failure shows it was used.
    let out = ocirelay_with(&["lookup", "--head", "hello-world"], &host_only);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains(mirror.host()), "{}", out.stderr);

    for bad in [
        "mirror.example",
        "ftp://mirror.example",
        "https://mirror.example/v2/",
    ] {
        let out = ocirelay_with(
            &["lookup", "hello-world"],
            &[("DOCKERHUB_PUBLIC_PROXY", bad)],
        );
        assert_eq!(out.code, 2, "{bad}: {out:?}");
        assert!(
            out.stderr.contains(&format!("Docker Hub proxy {bad:?}")),
            "{}",
            out.stderr
        );
    }
}

#[test]
fn an_https_mirror_is_trusted_through_ca_file() {
    let mirror = Registry::start(Auth::None);
    let image = push_image(
        &mirror,
        "library/hello-world",
        "latest",
        &[b"hello over TLS"],
    );
    let ca = mirror
        .ca_file()
        .expect("an HTTPS registry")
        .to_str()
        .unwrap();
    let env = [("DOCKERHUB_PUBLIC_PROXY_HOST", mirror.host())];

    // The test CA is not the system's: untrusted.
    let out = ocirelay_untrusting(&["lookup", "--head", "hello-world"], &env);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("TLS certificate not trusted") && out.stderr.contains("UnknownIssuer"),
        "{}",
        out.stderr
    );

    let args = ["--ca-file", ca, "lookup", "--head", "hello-world"];
    let out = ocirelay_untrusting(&args, &env).success();
    assert_eq!(out.json()[0]["digest"], json!(image.digest.to_string()));

    // A file that holds no certificate is bad input naming it.
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "not a certificate\n").unwrap();
    let empty = empty.to_str().unwrap();
    let out = ocirelay_untrusting(&["--ca-file", empty, "lookup", "hello-world"], &env);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr.contains(&format!("--ca-file {empty}")),
        "{}",
        out.stderr
    );
}

/// A mirror that wants tokens, as the original meets it: its challenge is
/// answered at its own realm, anonymously for what is public and with the
/// docker config's credentials for the mirror's host otherwise (Docker
/// Hub's never go there).
#[test]
fn a_mirror_that_wants_tokens_gets_them_with_its_own_credentials() {
    let mirror = Registry::start_plain(Auth::Token {
        users: vec![("mirror-user".into(), "mirror-pw".into())],
        public_repositories: vec!["library/hello-world".into()],
    });
    let public = push_image(
        &mirror,
        "library/hello-world",
        "latest",
        &[b"public, via a token mirror"],
    );
    let private = push_image(
        &mirror,
        "someone/private",
        "v1",
        &[b"private, via a token mirror"],
    );
    let url = format!("http://{}", mirror.host());

    let env = [("DOCKERHUB_PUBLIC_PROXY", url.as_str())];
    let out = ocirelay_with(&["lookup", "--head", "hello-world"], &env).success();
    assert_eq!(out.json()[0]["digest"], json!(public.digest.to_string()));
    let out = ocirelay_with(&["lookup", "--head", "someone/private:v1"], &env).success();
    assert_eq!(out.json(), vec![json!(null)], "not for anonymous eyes");

    let config = ocirelay_tests::cli::docker_config(mirror.host(), "mirror-user", "mirror-pw");
    let env = [
        ("DOCKERHUB_PUBLIC_PROXY", url.as_str()),
        ("DOCKER_CONFIG", config.path().to_str().unwrap()),
    ];
    let out = ocirelay_with(&["lookup", "--head", "someone/private:v1"], &env).success();
    assert_eq!(out.json()[0]["digest"], json!(private.digest.to_string()));
    let tokens = mirror.token_server().expect("token auth").requests();
    assert!(
        tokens
            .iter()
            .any(|t| t.user.as_deref() == Some("mirror-user")),
        "{tokens:?}"
    );
}
