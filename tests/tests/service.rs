//! The edge service (`service/`), composed by `ocirelay build-service` and
//! run by stock `wasmtime serve` (and by `ocirelay serve`), in front of real
//! registries: its API routes, and the read-through mirror that skopeo and
//! ocirelay pull through unchanged.

use std::process::Command;

use ocirelay_core::Digest;
use ocirelay_tests::cli::{ocirelay, ocirelay_untrusting, ocirelay_with};
use ocirelay_tests::fault_proxy::{Fault, FaultProxy};
use ocirelay_tests::service::Service;
use ocirelay_tests::{push_image, Auth, Registry};
use serde_json::json;

fn config_for(registry: &str, repositories: &[&str]) -> serde_json::Value {
    json!({"upstreams": [{"registry": registry, "repositories": repositories}]})
}

/// The layer of a one-layer image.
fn only_layer(reference: &str) -> Digest {
    let out = ocirelay(&["lookup", "--type", "manifest", reference]).success();
    let layer = &out.json()[0]["layers"][0]["digest"];
    Digest::parse(layer.as_str().unwrap()).unwrap()
}

#[test]
fn the_api_routes_answer_as_the_cli_prints() {
    let registry = Registry::start_plain(Auth::None);
    let image = push_image(&registry, "team/app", "v1", &[b"edge layer"]);
    let reference = registry.reference("team/app:v1");
    let service = Service::wasmtime(&config_for(registry.host(), &["team/*"]));

    let index = service.get(&format!("/index/{reference}"));
    assert_eq!(index.status, 200, "{index:?}");
    let cli = ocirelay(&["index", &reference]).success();
    assert_eq!(
        index.body,
        cli.stdout.as_bytes(),
        "the index as `ocirelay index` prints it"
    );
    assert!(index
        .header("cache-control")
        .unwrap()
        .contains("stale-if-error="));

    let manifest = service.get(&format!("/manifest/{reference}"));
    assert_eq!(manifest.status, 200, "{manifest:?}");
    let cli = ocirelay(&["lookup", "--type", "manifest", &reference]).success();
    assert_eq!(manifest.body, cli.stdout.as_bytes());
    assert_eq!(
        manifest.header("docker-content-digest"),
        Some(image.digest.to_string().as_str())
    );
    assert_eq!(
        manifest.header("etag"),
        Some(format!("\"{}\"", image.digest).as_str())
    );

    let layer = only_layer(&reference);
    let blob = service.get(&format!("/blob/{}@{layer}", registry.reference("team/app")));
    assert_eq!(
        (blob.status, blob.body.as_slice()),
        (200, &b"edge layer"[..]),
        "{blob:?}"
    );
    assert_eq!(
        blob.header("cache-control"),
        Some("public, max-age=31536000, immutable")
    );

    let missing = service.get(&format!(
        "/manifest/{}",
        registry.reference("team/app:nope")
    ));
    assert_eq!(missing.status, 404, "{missing:?}");
    assert_eq!(missing.json()["error"]["kind"], json!("not-found"));
    let bad = service.get("/index/Not%20A%20Ref");
    assert_eq!(bad.status, 400, "{bad:?}");
    assert_eq!(bad.json()["error"]["kind"], json!("invalid-reference"));
    let elsewhere = service.get(&format!("/index/{}", registry.reference("other/app:v1")));
    assert_eq!(elsewhere.status, 403, "{elsewhere:?}");
    let other_registry = service.get("/index/ghcr.io/team/app:v1");
    assert_eq!(other_registry.status, 403, "{other_registry:?}");
}

#[test]
fn skopeo_pulls_through_the_mirror_with_digests_unchanged() {
    let upstream = Registry::start_plain(Auth::None);
    let image = push_image(&upstream, "team/app", "v1", &[b"one", b"two"]);
    let service = Service::wasmtime(&config_for(upstream.host(), &["team/*"]));
    let destination = Registry::start_plain(Auth::None);

    let out = Command::new("skopeo")
        .args(["copy", "--all", "--preserve-digests", "-q"])
        .args(["--src-tls-verify=false", "--dest-tls-verify=false"])
        .arg(format!("docker://{}/team/app:v1", service.addr()))
        .arg(format!("docker://{}/copied:v1", destination.host()))
        .output()
        .expect("running skopeo");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let copied = ocirelay(&["lookup", "--head", &destination.reference("copied:v1")]).success();
    assert_eq!(copied.json()[0]["digest"], json!(image.digest.to_string()));
}

#[test]
fn a_tag_is_resolved_upstream_with_head_and_read_by_digest() {
    let upstream = Registry::start_plain(Auth::None);
    let image = push_image(&upstream, "team/app", "v1", &[b"budget"]);
    let service = Service::wasmtime(&config_for(upstream.host(), &["team/*"]));
    let before = upstream.access_log().len();

    let answer = service.get("/v2/team/app/manifests/v1");
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(
        Digest::sha256(&answer.body),
        image.digest,
        "bytes unchanged"
    );
    assert_eq!(
        answer.header("content-type"),
        Some(image.media_type.as_str())
    );
    assert_eq!(answer.content_length(), Some(answer.body.len()));
    assert_eq!(
        answer.header("docker-content-digest"),
        Some(image.digest.to_string().as_str())
    );
    let served = upstream.served(before);
    let requests: Vec<&str> = served.iter().map(|(r, _)| r.as_str()).collect();
    assert_eq!(
        requests,
        [
            "HEAD /v2/team/app/manifests/v1 HTTP/1.1".to_string(),
            format!("GET /v2/team/app/manifests/{} HTTP/1.1", image.digest),
        ],
        "the tag by HEAD only"
    );
    assert_eq!(
        answer.header("cache-control"),
        Some("public, max-age=60, stale-if-error=86400")
    );

    // HEAD answers the same head, with no GET upstream at all.
    let before = upstream.access_log().len();
    let head = service.request("HEAD", "/v2/team/app/manifests/v1", &[]);
    assert_eq!(head.status, 200);
    assert_eq!(head.content_length(), Some(answer.body.len()));
    assert_eq!(upstream.requests_matching("GET", "/manifests/"), 1);
    assert_eq!(upstream.served(before).len(), 1);
}

#[test]
fn if_none_match_is_answered_304_and_by_digest_without_asking_upstream() {
    let upstream = Registry::start_plain(Auth::None);
    let image = push_image(&upstream, "team/app", "v1", &[b"etag"]);
    let service = Service::wasmtime(&config_for(upstream.host(), &["team/*"]));
    let etag = format!("\"{}\"", image.digest);

    let by_tag = service.request(
        "GET",
        "/v2/team/app/manifests/v1",
        &[("If-None-Match", &etag)],
    );
    assert_eq!(by_tag.status, 304, "{by_tag:?}");
    assert!(by_tag.body.is_empty());
    assert_eq!(by_tag.header("etag"), Some(etag.as_str()));

    let before = upstream.access_log().len();
    let path = format!("/v2/team/app/manifests/{}", image.digest);
    let by_digest = service.request("GET", &path, &[("If-None-Match", &etag)]);
    assert_eq!(by_digest.status, 304, "{by_digest:?}");
    assert_eq!(
        upstream.served(before),
        vec![],
        "a digest's 304 costs no upstream request"
    );
    let changed = service.request("GET", &path, &[("If-None-Match", "\"sha256:00\"")]);
    assert_eq!(changed.status, 200);
    assert_eq!(
        changed.header("cache-control"),
        Some("public, max-age=31536000, immutable")
    );
}

#[test]
fn two_upstreams_are_chosen_by_ns_and_nothing_else_is_served() {
    let first = Registry::start_plain(Auth::None);
    let second = Registry::start_plain(Auth::None);
    let a = push_image(&first, "team/app", "v1", &[b"first"]);
    let b = push_image(&second, "team/app", "v1", &[b"second"]);
    let config = json!({"upstreams": [
        {"registry": first.host(), "repositories": ["team/*"]},
        {"registry": second.host(), "repositories": ["team/app"]},
    ]});
    let service = Service::wasmtime(&config);
    let digest_of = |path: &str| {
        let answer = service.request("HEAD", path, &[]);
        assert_eq!(answer.status, 200, "{path}: {answer:?}");
        answer.header("docker-content-digest").unwrap().to_string()
    };
    assert_eq!(digest_of("/v2/team/app/manifests/v1"), a.digest.to_string());
    let ns = format!("/v2/team/app/manifests/v1?ns={}", second.host());
    assert_eq!(digest_of(&ns), b.digest.to_string());
    let ns = format!("/v2/team/app/manifests/v1?ns={}", first.host());
    assert_eq!(digest_of(&ns), a.digest.to_string());

    let not_mirrored = service.get("/v2/team/app/manifests/v1?ns=ghcr.io");
    assert_eq!(not_mirrored.status, 403, "{not_mirrored:?}");
    assert_eq!(not_mirrored.json()["errors"][0]["code"], json!("DENIED"));
    let not_allowed = service.get(&format!("/v2/team/other/manifests/v1?ns={}", second.host()));
    assert_eq!(not_allowed.status, 403, "{not_allowed:?}");
    let missing = service.get("/v2/team/app/manifests/nope");
    assert_eq!(missing.status, 404);
    assert_eq!(
        missing.json()["errors"][0]["code"],
        json!("MANIFEST_UNKNOWN")
    );
    // A distribution API the mirror does not serve is said to be so, not
    // reported as a missing manifest.
    let catalog = service.get("/v2/_catalog");
    assert_eq!(catalog.status, 404, "{catalog:?}");
    assert_eq!(catalog.json()["errors"][0]["code"], json!("UNSUPPORTED"));
    let upload = service.request("POST", "/v2/team/app/blobs/uploads/", &[]);
    assert_eq!(upload.status, 405, "a mirror takes no pushes");
    assert_eq!(upload.header("allow"), Some("GET, HEAD"));
    assert!(
        String::from_utf8_lossy(&upload.body).contains("POST is not served"),
        "{upload:?}"
    );
}

/// Under stock `wasmtime serve` the registry component hashes the blob;
/// under `ocirelay serve` the host does, as the bytes pass. Either way a
/// corrupted one is cut short, never delivered whole.
#[test]
fn a_blob_whose_upstream_is_corrupted_never_arrives_whole() {
    let upstream = Registry::start_plain(Auth::None);
    // Over the registry component's 4 MiB whole-read limit: streamed.
    let large = ocirelay_tests::bytes(7, 6 * 1024 * 1024);
    let small = b"a small layer, read whole and checked before answering".to_vec();
    push_image(&upstream, "team/app", "v1", &[&large, &small]);
    let config = config_for(upstream.host(), &["team/*"]);
    let services = [Service::wasmtime(&config), Service::ocirelay(&config)];
    let path = |d: &Digest| format!("/v2/team/app/blobs/{d}");
    let (large_digest, small_digest) = (Digest::sha256(&large), Digest::sha256(&small));

    for service in &services {
        let whole = service.get(&path(&large_digest));
        assert_eq!(whole.status, 200);
        assert!(
            whole.complete && whole.body == large,
            "streamed whole and unchanged"
        );
        assert_eq!(whole.content_length(), Some(large.len()));
    }

    upstream.corrupt_blob(&large_digest, large.len() - 10);
    for service in &services {
        let cut = service.get(&path(&large_digest));
        assert_eq!(
            cut.status, 200,
            "the head went before the last bytes were checked"
        );
        assert!(
            !cut.complete || cut.body.len() < large.len(),
            "a corrupted blob must not arrive whole: got {} of {} bytes",
            cut.body.len(),
            large.len()
        );
        assert_ne!(Digest::sha256(&cut.body), large_digest);
    }

    upstream.corrupt_blob(&small_digest, 3);
    for service in &services {
        let refused = service.get(&path(&small_digest));
        assert_eq!(refused.status, 502, "{refused:?}");
        assert!(
            String::from_utf8_lossy(&refused.body).contains("does not match"),
            "{refused:?}"
        );
    }
}

#[test]
fn an_upstream_429_is_passed_on_with_its_retry_after() {
    let upstream = Registry::start_plain(Auth::None);
    push_image(&upstream, "team/app", "v1", &[b"busy"]);
    let proxy = FaultProxy::start(upstream.host());
    let busy = Fault::Status(429, vec![("Retry-After".into(), "37".into())]);
    proxy.add("HEAD", "/manifests/v1", busy, 100);
    let service = Service::wasmtime(&config_for(&proxy.host(), &["team/*"]));

    let answer = service.get("/v2/team/app/manifests/v1");
    assert_eq!(answer.status, 429, "{answer:?}");
    assert_eq!(answer.header("retry-after"), Some("37"));
    assert_eq!(answer.json()["errors"][0]["code"], json!("TOOMANYREQUESTS"));
    assert_eq!(answer.header("cache-control"), Some("no-store"));
    let api = service.get(&format!("/manifest/{}/team/app:v1", proxy.host()));
    assert_eq!((api.status, api.header("retry-after")), (429, Some("37")));
    assert_eq!(api.json()["error"]["kind"], json!("rate-limited"));
}

#[test]
fn ocirelay_reads_docker_hub_through_the_mirror() {
    // The service mirrors "Docker Hub", which here is a loopback registry.
    let hub = Registry::start_plain(Auth::None);
    let image = push_image(
        &hub,
        "library/hello-world",
        "latest",
        &[b"hello via the edge"],
    );
    let config = json!({
        "upstreams": [{"registry": "docker.io", "repositories": ["library/*"]}],
        "docker-hub-proxy": format!("http://{}", hub.host()),
    });
    let service = Service::wasmtime(&config);
    let url = format!("http://{}", service.addr());
    let env = [("DOCKERHUB_PUBLIC_PROXY", url.as_str())];
    let out = ocirelay_with(&["lookup", "--head", "hello-world"], &env).success();
    assert_eq!(out.json()[0]["digest"], json!(image.digest.to_string()));
    let out = ocirelay_with(&["index", "hello-world"], &env).success();
    assert_eq!(
        out.json()[0]["manifests"][0]["digest"],
        json!(image.digest.to_string())
    );
    // Docker's one-component names are library/'s; others are not served.
    let answer = service.request("HEAD", "/v2/hello-world/manifests/latest", &[]);
    assert_eq!(answer.status, 200, "{answer:?}");
    let refused = service.request("HEAD", "/v2/someone/else/manifests/latest", &[]);
    assert_eq!(refused.status, 403, "{refused:?}");
    // ocirelay reads a mirror's 403 as "not there", as it reads a registry's.
    let out = ocirelay_with(&["lookup", "--head", "someone/else"], &env).success();
    assert_eq!(out.json(), vec![json!(null)]);
}

#[test]
fn a_token_auth_upstream_is_read_anonymously() {
    let upstream = Registry::start_plain(Auth::Token {
        users: vec![("pusher".into(), "secret".into())],
        public_repositories: vec!["team/app".into()],
    });
    let image = push_image(&upstream, "team/app", "v1", &[b"public"]);
    let service = Service::wasmtime(&config_for(upstream.host(), &["team/*"]));
    let answer = service.get("/v2/team/app/manifests/v1");
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(Digest::sha256(&answer.body), image.digest);
}

#[test]
fn ocirelay_serve_gets_a_token_once_and_then_asks_upstream_with_it_at_once() {
    use std::io::{Read, Write};
    let upstream = Registry::start(Auth::Token {
        users: vec![("edge".into(), "s3cret".into())],
        public_repositories: vec![],
    });
    let big = vec![7u8; 16 << 20];
    let image = push_image(&upstream, "team/app", "v1", &[&big]);
    let layer = Digest::sha256(&big);
    let token_server = upstream.token_server().expect("token auth");
    let mut config = config_for(upstream.host(), &["team/*"]);
    config["credentials"] = json!({upstream.host(): {"username": "edge", "password": "s3cret"}});
    let service = Service::ocirelay(&config);
    let manifest = format!("/v2/team/app/manifests/{}", image.digest);
    let get_manifest = || {
        let answer = service.get(&manifest);
        assert_eq!(answer.status, 200, "{answer:?}");
        assert_eq!(Digest::sha256(&answer.body), image.digest);
    };
    let (tokens, log) = (token_server.requests().len(), upstream.access_log().len());

    // The first request meets the challenge and gets a token with the
    // configured credentials; the instance is then kept, and the requests
    // after it go upstream once each, with that token.
    for _ in 0..3 {
        get_manifest();
    }
    let asked = token_server.requests()[tokens..].to_vec();
    assert_eq!(asked.len(), 1, "{asked:?}");
    assert_eq!(asked[0].user.as_deref(), Some("edge"));
    let statuses: Vec<u16> = upstream.served(log).iter().map(|(_, s)| *s).collect();
    assert_eq!(statuses, [401, 200, 200, 200]);

    // While that instance streams a blob nobody reads, a request gets an
    // instance of its own, whose client knows nothing yet: it meets the
    // challenge, and the host gives it the token answer it kept.
    let mut held = std::net::TcpStream::connect(service.addr()).expect("connecting");
    let blob = format!("/v2/team/app/blobs/{layer}");
    write!(held, "GET {blob} HTTP/1.1\r\nHost: edge\r\n\r\n").expect("asking");
    let mut first = [0u8; 1024];
    let n = held.read(&mut first).expect("the head");
    assert!(
        first[..n].starts_with(b"HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&first[..n])
    );
    let log = upstream.access_log().len();
    get_manifest();
    assert_eq!(
        token_server.requests().len(),
        tokens + 1,
        "no token asked for again"
    );
    let statuses: Vec<u16> = upstream.served(log).iter().map(|(_, s)| *s).collect();
    assert_eq!(statuses, [401, 200], "a new instance");
    drop(held);
}

#[test]
fn ocirelay_serve_runs_the_same_service_over_https_upstreams() {
    let upstream = Registry::start(Auth::None);
    let image = push_image(&upstream, "team/app", "v1", &[b"served natively"]);
    let service = Service::ocirelay(&config_for(upstream.host(), &["team/*"]));
    let answer = service.get("/v2/team/app/manifests/v1");
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(Digest::sha256(&answer.body), image.digest);
    let index = service.get(&format!("/index/{}", upstream.reference("team/app:v1")));
    assert_eq!(index.status, 200, "{index:?}");
    assert_eq!(
        index.json()["manifests"][0]["digest"],
        json!(image.digest.to_string())
    );
    assert_eq!(service.get("/v2/").status, 200);
}

#[test]
fn a_bad_config_is_refused_naming_its_field() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bad.json");
    std::fs::write(
        &config,
        r#"{"upstreams": [{"registry": "docker.io", "repositories": []}]}"#,
    )
    .unwrap();
    let out_path = dir.path().join("out.wasm");
    let build = |extra: &[&str]| {
        let mut args = extra.to_vec();
        args.extend(["build-service", config.to_str().unwrap(), "--output"]);
        args.push(out_path.to_str().unwrap());
        ocirelay_untrusting(&args, &[])
    };
    let out = build(&[]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr.contains("upstreams[0].repositories"),
        "{}",
        out.stderr
    );
    assert!(!out_path.exists(), "nothing written");

    // Options the written component cannot carry are refused, not ignored.
    std::fs::write(
        &config,
        r#"{"upstreams": [{"registry": "docker.io", "repositories": ["*"]}]}"#,
    )
    .unwrap();
    let out = build(&["--rate", "docker.io=1/1s", "--idle-timeout", "5"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr.contains("--rate, --idle-timeout do not apply"),
        "{}",
        out.stderr
    );
    assert!(!out_path.exists(), "nothing written");
    let out = ocirelay_untrusting(
        &["--insecure", "x.example", "serve", config.to_str().unwrap()],
        &[],
    );
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr.contains("--insecure does not apply"),
        "{}",
        out.stderr
    );
    assert!(build(&[]).code == 0 && out_path.exists());
}

#[test]
fn upstream_credentials_come_from_the_config_never_from_a_request() {
    use base64::Engine as _;
    let upstream = Registry::start_plain(Auth::Basic {
        user: "edge".into(),
        password: "s3cret".into(),
    });
    let image = push_image(&upstream, "team/app", "v1", &[b"private"]);
    let basic = base64::engine::general_purpose::STANDARD.encode("edge:s3cret");
    let authorization = format!("Basic {basic}");

    let anonymous = Service::wasmtime(&config_for(upstream.host(), &["team/*"]));
    let answer = anonymous.request(
        "GET",
        "/v2/team/app/manifests/v1",
        &[("Authorization", &authorization)],
    );
    assert_ne!(
        answer.status, 200,
        "a request's credentials are not passed on: {answer:?}"
    );

    let mut config = config_for(upstream.host(), &["team/*"]);
    config["credentials"] = json!({upstream.host(): {"username": "edge", "password": "s3cret"}});
    let trusted = Service::wasmtime(&config);
    let answer = trusted.get("/v2/team/app/manifests/v1");
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(Digest::sha256(&answer.body), image.digest);
}

#[test]
fn ocirelay_serve_uses_the_docker_config_for_its_upstreams() {
    let upstream = Registry::start(Auth::Basic {
        user: "edge".into(),
        password: "s3cret".into(),
    });
    let image = push_image(&upstream, "team/app", "v1", &[b"private, over https"]);
    let docker = ocirelay_tests::cli::docker_config(upstream.host(), "edge", "s3cret");
    let service = Service::ocirelay_with(&config_for(upstream.host(), &["team/*"]), docker.path());
    let answer = service.get("/v2/team/app/manifests/v1");
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(Digest::sha256(&answer.body), image.digest);

    let without = Service::ocirelay(&config_for(upstream.host(), &["team/*"]));
    assert_ne!(without.get("/v2/team/app/manifests/v1").status, 200);
}

#[test]
fn an_upstream_that_does_not_answer_in_time_is_a_504() {
    let upstream = Registry::start_plain(Auth::None);
    push_image(&upstream, "team/app", "v1", &[b"slow"]);
    let proxy = FaultProxy::start(upstream.host());
    let stall = Fault::Delay(std::time::Duration::from_secs(20));
    proxy.add("HEAD", "/manifests/v1", stall, 100);
    let mut config = config_for(&proxy.host(), &["team/*"]);
    config["timeout-secs"] = json!(1);
    let service = Service::wasmtime(&config);

    let started = std::time::Instant::now();
    let answer = service.get("/v2/team/app/manifests/v1");
    assert_eq!(answer.status, 504, "{answer:?}");
    assert!(
        String::from_utf8_lossy(&answer.body).contains("timed out")
            || String::from_utf8_lossy(&answer.body).contains("timeout"),
        "{answer:?}"
    );
    // Three tries of a second, a second apart: well short of the stall.
    assert!(
        started.elapsed() < std::time::Duration::from_secs(12),
        "{:?}",
        started.elapsed()
    );
}
