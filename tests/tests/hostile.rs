//! Registries that try to get credentials or content sent in cleartext:
//! nothing ever goes from HTTPS down to plain HTTP (issue of origins:
//! scheme, host and port), and what is refused says where it was pointed.

use ocirelay_tests::cli::docker_config;
use ocirelay_tests::cli::ocirelay_with;
use ocirelay_tests::fault_proxy::{Fault, FaultProxy};
use ocirelay_tests::{ocirelay, push_image, Auth, Registry};

fn basic() -> Auth {
    Auth::Basic {
        user: "mallory-victim".into(),
        password: "pw-never-in-clear".into(),
    }
}

#[test]
fn an_upload_location_down_to_plain_http_is_refused_and_nothing_goes_there() {
    let src = Registry::start(Auth::None);
    push_image(&src, "app", "v1", &[b"secret layer"]);
    // The destination sits behind a TLS-terminating proxy that does not say
    // so: it names http:// upload locations on the proxy's own host and port.
    let dst = Registry::start_plain(basic());
    let front = FaultProxy::start_tls(dst.host());
    let config = docker_config(&front.host(), "mallory-victim", "pw-never-in-clear");
    let env = [("DOCKER_CONFIG", config.path().to_str().unwrap())];
    let target = format!("{}/app:v1", front.host());
    let out = ocirelay_with(&["copy", &src.reference("app:v1"), &target], &env);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("refused an upload session to http://")
            && !out.stderr.contains("_state")
            && out.stderr.contains("down to plain HTTP"),
        "{}",
        out.stderr
    );
    assert_eq!(
        front.cleartext_connections(),
        0,
        "nothing was sent there in clear"
    );
    let uploads = front.requests("PUT", "/blobs/uploads/");
    assert!(
        uploads.is_empty(),
        "no upload was completed: {:#?}",
        front.log()
    );
}

#[test]
fn a_blob_redirect_down_to_plain_http_or_to_another_scheme_is_refused() {
    let registry = Registry::start_plain(basic());
    push_image(&registry, "app", "v1", &[b"redirected"]);
    let layer = ocirelay_core::Digest::sha256(b"redirected");
    let front = FaultProxy::start_tls(registry.host());
    let config = docker_config(&front.host(), "mallory-victim", "pw-never-in-clear");
    let env = [("DOCKER_CONFIG", config.path().to_str().unwrap())];
    let blob = format!("{}/app@{layer}", front.host());
    let plain = format!("http://{}/v2/app/blobs/{layer}", front.host());
    for location in [plain.as_str(), "file:///etc/passwd"] {
        let redirect = vec![("Location".to_string(), location.to_string())];
        front.add(
            "GET",
            &format!("/blobs/{layer}"),
            Fault::Status(307, redirect),
            1,
        );
        let out = ocirelay_with(&["lookup", "--type", "blob", &blob], &env);
        assert_eq!(out.code, 1, "{location}: {out:?}");
        let shown = location.split('?').next().unwrap_or(location);
        assert!(out.stderr.contains(shown), "{}", out.stderr);
    }
    assert_eq!(
        front.cleartext_connections(),
        0,
        "nothing was sent there in clear"
    );
}

#[test]
fn an_https_registry_naming_a_plain_http_realm_gets_no_credentials_there() {
    let registry = Registry::start_with_plain_realm(Auth::Token {
        users: vec![("trent".into(), "pw-realm".into())],
        public_repositories: vec![],
    });
    let config = docker_config(registry.host(), "trent", "pw-realm");
    let env = [("DOCKER_CONFIG", config.path().to_str().unwrap())];
    let out = ocirelay_with(&["lookup", "--head", &registry.reference("app:v1")], &env);
    assert_eq!(out.code, 1, "{out:?}");
    let realm = registry.token_server().expect("token auth").realm();
    assert!(
        out.stderr
            .contains(&format!("refused the token realm {realm}"))
            && out.stderr.contains("down to plain HTTP"),
        "{}",
        out.stderr
    );
    let asked = registry.token_server().map_or(0, |t| t.requests().len());
    assert_eq!(asked, 0, "the token server never heard from us");
}

#[test]
fn an_upload_location_with_dot_segments_is_resolved_not_sent_raw() {
    let src = Registry::start(Auth::None);
    push_image(&src, "app", "v1", &[b"dotted"]);
    let dst = Registry::start_plain(basic());
    let front = FaultProxy::start_tls(dst.host());
    // The destination's upload session points up and out of its API.
    let dotted = "/v2/app/blobs/uploads/../../../../admin/./session?_state=s";
    let location = vec![("Location".to_string(), dotted.to_string())];
    front.add("POST", "/blobs/uploads/", Fault::Status(202, location), 10);
    let config = docker_config(&front.host(), "mallory-victim", "pw-never-in-clear");
    let env = [("DOCKER_CONFIG", config.path().to_str().unwrap())];
    let target = format!("{}/app:v1", front.host());
    let out = ocirelay_with(&["copy", &src.reference("app:v1"), &target], &env);
    // The registry has nothing at /admin/session: the copy fails there.
    assert_eq!(out.code, 1, "{out:?}");
    let log = front.log();
    assert!(
        log.iter().any(|l| l.contains(" /admin/session?")),
        "the session was used where RFC 3986 puts it: {log:#?}"
    );
    let mut paths = log.iter().filter_map(|l| l.split(' ').nth(1));
    assert!(
        !paths.any(|p| p.contains("/../") || p.contains("/./")),
        "no dot segment was sent: {log:#?}"
    );
}

#[test]
fn corrupt_bytes_are_never_completed_at_a_destination_that_verifies_nothing() {
    let src = Registry::start(Auth::None);
    let layer = ocirelay_tests::bytes(7, 200_000);
    push_image(&src, "app", "v1", &[&layer]);
    let digest = ocirelay_core::Digest::sha256(&layer);
    // Behind the source registry's back: the same size, other bytes.
    src.corrupt_blob(&digest, 150_000);
    // A destination that stores whatever it is sent (it checks no digest):
    // its upload PUT is answered by the proxy, 201 with the digest asked.
    let dst = Registry::start_plain(Auth::None);
    let front = FaultProxy::start(dst.host());
    let stored = vec![("Docker-Content-Digest".to_string(), digest.to_string())];
    front.add(
        "PUT",
        &format!("digest={digest}"),
        Fault::Serve(201, stored, Vec::new()),
        10,
    );
    let target = format!("{}/app:v1", front.host());
    let out = ocirelay(&["copy", &src.reference("app:v1"), &target]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("does not match its digest")
            && out.stderr.contains(&digest.to_string()),
        "{}",
        out.stderr
    );
    // The bytes were checked as they went: the PUT either never left, or
    // arrived short (its last bytes held back); it was never tried again.
    let puts: Vec<String> = front
        .settled_log()
        .into_iter()
        .filter(|l| l.starts_with("PUT ") && l.contains(&digest.to_string()))
        .collect();
    let short = puts
        .iter()
        .filter(|l| l.contains("body ended after"))
        .count();
    assert!(
        puts.len() <= 2 && short * 2 == puts.len(),
        "never completed: {puts:#?}"
    );
}

#[test]
fn what_a_registry_says_reaches_the_terminal_inert_and_signed_urls_stay_out_of_logs() {
    let registry = Registry::start_plain(Auth::None);
    push_image(&registry, "app", "v1", &[b"inert"]);
    let layer = ocirelay_core::Digest::sha256(b"inert");
    let proxy = FaultProxy::start(registry.host());
    // An error whose message would clear the line and forge another.
    let forged =
        r#"{"errors":[{"code":"DENIED","message":"no\u001b[2K\rocirelay: copied everything\n"}]}"#;
    let json = vec![("Content-Type".to_string(), "application/json".to_string())];
    proxy.add(
        "GET",
        "/manifests/v1",
        Fault::Serve(400, json, forged.as_bytes().to_vec()),
        1,
    );
    let reference = format!("{}/app:v1", proxy.host());
    let out = ocirelay(&["lookup", "--type", "manifest", &reference]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        !out.stderr.contains('\u{1b}') && !out.stderr.contains('\r'),
        "{:?}",
        out.stderr
    );
    assert!(
        out.stderr.contains("no\\u{1b}[2K\\u{d}ocirelay: copied"),
        "{}",
        out.stderr
    );
    assert_eq!(out.stderr.trim_end().lines().count(), 1, "{:?}", out.stderr);

    // A blob redirected to a signed URL: the signature is not logged.
    let signed = format!(
        "http://{}/v2/app/blobs/{layer}?X-Signature=s3cret-sig",
        registry.host()
    );
    let redirect = vec![("Location".to_string(), signed)];
    proxy.add(
        "GET",
        &format!("/blobs/{layer}"),
        Fault::Status(307, redirect),
        1,
    );
    let blob = format!("{}/app@{layer}", proxy.host());
    let out = ocirelay_with(
        &["lookup", "--type", "blob", &blob],
        &[("RUST_LOG", "trace")],
    )
    .success();
    assert!(out.stderr.contains("/blobs/"), "logged: {}", out.stderr);
    assert!(!out.stderr.contains("s3cret-sig"), "{}", out.stderr);
}
