//! Credentials from the docker config: `auths`, `credHelpers`, `credsStore`;
//! secrets never in the output, even at the most verbose logging.

use std::os::unix::fs::PermissionsExt;

use ocirelay_tests::cli::ocirelay_with;
use ocirelay_tests::{push_image, Auth, Registry};
use serde_json::json;

/// A `docker-credential-<name>` script answering `user`/`secret` for `server`.
fn helper(dir: &std::path::Path, name: &str, server: &str, user: &str, secret: &str) {
    let script = format!(
        "#!/bin/sh\nread server\nif [ \"$1\" = get ] && [ \"$server\" = \"{server}\" ]; then\n  printf '{{\"ServerURL\":\"%s\",\"Username\":\"{user}\",\"Secret\":\"{secret}\"}}' \"$server\"\nelse\n  echo 'credentials not found in native keychain' >&2; exit 1\nfi\n"
    );
    let path = dir.join(format!("docker-credential-{name}"));
    std::fs::write(&path, script).expect("writing the helper");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

#[test]
fn helpers_authenticate_and_secrets_stay_out_of_logs() {
    let basic = Registry::start(Auth::Basic {
        user: "dave".into(),
        password: "basic-secret-8472".into(),
    });
    let token = Registry::start(Auth::Token {
        users: vec![("erin".into(), "token-secret-1953".into())],
        public_repositories: vec![],
    });
    let image = push_image(&basic, "private/app", "v1", &[b"helped"]);
    push_image(&token, "private/app", "v1", &[b"helped"]);

    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    helper(&bin, "ocitest", basic.host(), "dave", "basic-secret-8472");
    helper(&bin, "ocistore", token.host(), "erin", "token-secret-1953");
    let config = json!({"credHelpers": {basic.host(): "ocitest"}, "credsStore": "ocistore"});
    std::fs::write(dir.path().join("config.json"), config.to_string()).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let env = [
        ("DOCKER_CONFIG", dir.path().to_str().unwrap()),
        ("PATH", path.as_str()),
        ("RUST_LOG", "trace"),
    ];
    let out = ocirelay_with(
        &[
            "lookup",
            "--head",
            &basic.reference("private/app:v1"),
            "--head",
            &token.reference("private/app:v1"),
        ],
        &env,
    )
    .success();
    let docs = out.json();
    assert_eq!(
        docs[0]["digest"],
        json!(image.digest.to_string()),
        "credHelpers served the basic registry"
    );
    assert_eq!(
        docs[1]["digest"],
        json!(image.digest.to_string()),
        "credsStore served the token registry"
    );
    for secret in ["basic-secret-8472", "token-secret-1953"] {
        assert!(!out.stderr.contains(secret), "{secret} in the trace log");
        assert!(!out.stdout.contains(secret));
    }
    // The bearer tokens (JWTs, "eyJ…") never show either.
    assert!(!out.stderr.contains("eyJ"), "a token in the trace log");
    assert!(
        out.stderr.contains("TRACE") || out.stderr.contains("DEBUG"),
        "the log was on"
    );
}

#[test]
fn a_redirect_to_another_host_goes_without_authorization() {
    use ocirelay_tests::fault_proxy::{Fault, FaultProxy};
    let private = Registry::start_plain(Auth::Basic {
        user: "fay".into(),
        password: "pw-fay-3391".into(),
    });
    let storage = Registry::start_plain(Auth::None);
    push_image(&private, "app", "v1", &[b"redirected layer"]);
    push_image(&storage, "app", "v1", &[b"redirected layer"]);
    let layer = ocirelay_core::Digest::sha256(b"redirected layer");
    // "Blob storage" on another loopback host, and the registry sending us there.
    let cdn = FaultProxy::start(storage.host());
    let front = FaultProxy::start(private.host());
    let location = format!("http://{}/v2/app/blobs/{layer}?signed=1", cdn.host());
    front.add(
        "GET",
        &format!("/blobs/{layer}"),
        Fault::Status(307, vec![("Location".into(), location)]),
        10,
    );

    let config = ocirelay_tests::cli::docker_config(&front.host(), "fay", "pw-fay-3391");
    let env = [("DOCKER_CONFIG", config.path().to_str().unwrap())];
    // The HEAD meets the registry's Basic challenge, so the GET after it
    // carries Authorization up front, into the redirect.
    let blob = format!("{}/app@{layer}", front.host());
    let out = ocirelay_with(
        &[
            "lookup", "--type", "blob", "--head", &blob, "--type", "blob", &blob,
        ],
        &env,
    )
    .success();
    assert_eq!(
        out.json()[1],
        json!("cmVkaXJlY3RlZCBsYXllcg=="),
        "base64 of the layer, fetched from the other host"
    );
    let cdn_log = cdn.log();
    assert!(
        !cdn_log.is_empty() && cdn_log.iter().all(|l| !l.contains("with Authorization")),
        "{cdn_log:#?}"
    );
    assert!(
        front
            .log()
            .iter()
            .any(|l| l.contains("/blobs/") && l.contains("with Authorization")),
        "{:#?}",
        front.log()
    );
}

#[test]
fn identity_tokens_are_traded_by_oauth2_and_never_shown() {
    let token = Registry::start(Auth::Token {
        users: vec![("gil".into(), "unused-password".into())],
        public_repositories: vec![],
    });
    let image = push_image(&token, "private/app", "v1", &[b"identity"]);
    let server = token.token_server().expect("a token registry");
    let reference = token.reference("private/app:v1");

    // From `auths`, as `docker login` leaves it: `auth` holds only the user.
    let from_auths = server.issue_refresh_token("gil");
    let dir = tempfile::tempdir().unwrap();
    let auth = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, "gil:");
    let config = json!({"auths": {token.host(): {"auth": auth, "identitytoken": from_auths}}});
    std::fs::write(dir.path().join("config.json"), config.to_string()).unwrap();
    let env = [
        ("DOCKER_CONFIG", dir.path().to_str().unwrap()),
        ("RUST_LOG", "trace"),
    ];
    let out = ocirelay_with(&["lookup", "--head", &reference], &env).success();
    assert_eq!(out.json()[0]["digest"], json!(image.digest.to_string()));
    assert!(
        !out.stderr.contains(&from_auths),
        "the refresh token in the log"
    );
    assert!(!out.stderr.contains("eyJ"), "an access token in the log");

    // From a helper answering with Docker's `<token>` user.
    let from_helper = server.issue_refresh_token("gil");
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    helper(&bin, "ociid", token.host(), "<token>", &from_helper);
    let config = json!({"credHelpers": {token.host(): "ociid"}});
    std::fs::write(dir.path().join("config.json"), config.to_string()).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let env = [
        ("DOCKER_CONFIG", dir.path().to_str().unwrap()),
        ("PATH", path.as_str()),
        ("RUST_LOG", "trace"),
    ];
    let out = ocirelay_with(&["lookup", "--head", &reference], &env).success();
    assert_eq!(out.json()[0]["digest"], json!(image.digest.to_string()));
    assert!(
        !out.stderr.contains(&from_helper),
        "the refresh token in the log"
    );

    let grants: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|r| r.refresh)
        .collect();
    assert_eq!(grants.len(), 2, "one OAuth2 grant per run: {grants:?}");
    assert!(grants
        .iter()
        .all(|g| g.user.as_deref() == Some("gil") && !g.refused));

    // A refresh token the server does not know: an authentication error
    // naming the registry, exit 1, the token not echoed.
    let dir = tempfile::tempdir().unwrap();
    let config = json!({"auths": {token.host(): {"identitytoken": "refresh-stale-0000"}}});
    std::fs::write(dir.path().join("config.json"), config.to_string()).unwrap();
    let env = [("DOCKER_CONFIG", dir.path().to_str().unwrap())];
    let out = ocirelay_with(&["lookup", "--head", &reference], &env);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("authentication to") && out.stderr.contains(token.host()),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("refresh-stale-0000"), "{}", out.stderr);
}

#[test]
fn files_that_are_not_what_they_should_be_are_named() {
    let registry = Registry::start(Auth::None);
    push_image(&registry, "app", "v1", &[b"named"]);
    let reference = registry.reference("app:v1");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.json");
    let docker = [("DOCKER_CONFIG", dir.path().to_str().unwrap())];

    // The user's files: bad input (exit 2), naming the file and the fault.
    let bad_auth = json!({"auths": {registry.host(): {"auth": "!!"}}}).to_string();
    for (text, says) in [
        ("{not json", "not a docker config"),
        (bad_auth.as_str(), "is not base64"),
    ] {
        std::fs::write(&config, text).unwrap();
        let out = ocirelay_with(&["lookup", "--head", &reference], &docker);
        assert_eq!(out.code, 2, "{out:?}");
        let named = config.display().to_string();
        assert!(
            out.stderr.contains(&named) && out.stderr.contains(says),
            "{}",
            out.stderr
        );
    }
    let settings = dir.path().join("settings.json");
    std::fs::write(&settings, r#"{"rate": {}}"#).unwrap();
    let env = [("OCIRELAY_CONFIG", settings.to_str().unwrap())];
    let out = ocirelay_with(&["lookup", "--head", &reference], &env);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr.contains(settings.to_str().unwrap()) && out.stderr.contains("unknown field"),
        "{}",
        out.stderr
    );

    // A helper that answers something else than credentials: its fault
    // (exit 1), named.
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let script = bin.join("docker-credential-garbled");
    std::fs::write(&script, "#!/bin/sh\necho 'Username: not json'\n").unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(&config, json!({"credsStore": "garbled"}).to_string()).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let env = [docker[0], ("PATH", path.as_str())];
    let out = ocirelay_with(&["lookup", "--head", &reference], &env);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("docker-credential-garbled")
            && out.stderr.contains("not credentials JSON"),
        "{}",
        out.stderr
    );
}
