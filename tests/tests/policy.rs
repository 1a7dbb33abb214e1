//! The host's outgoing-request policy: rate limits and the allow-list.

use std::time::{Duration, Instant};

use ocirelay_tests::cli::ocirelay_with;
use ocirelay_tests::fault_proxy::{Fault, FaultProxy};
use ocirelay_tests::{ocirelay, push_image, Auth, Registry};

#[test]
fn a_rate_limit_is_a_lower_bound_on_time() {
    let registry = Registry::start(Auth::None);
    push_image(&registry, "app", "v1", &[b"rated"]);
    // R = 4 per second, burst B = 4; N = 12 HEADs (no cache: each one is sent).
    let reference = registry.reference("app:v1");
    let rate = format!("{}=4/s", registry.host());
    let mut args = vec!["lookup", "--no-cache", "--rate", &rate];
    for _ in 0..12 {
        args.extend(["--head", reference.as_str()]);
    }
    let started = Instant::now();
    let out = ocirelay(&args).success();
    let elapsed = started.elapsed();
    assert_eq!(out.json().len(), 12);
    // (N - B) / R = 2 s at least; the start-up of the process only adds.
    assert!(
        elapsed >= Duration::from_secs(2),
        "12 requests at 4/s with burst 4 took {elapsed:?}"
    );

    let out = ocirelay(&["lookup", "--rate", "nonsense", &reference]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("rate \"nonsense\""), "{}", out.stderr);

    // The same limit from the settings file: 1 per second, burst 1, so 3
    // requests take at least 2 s.
    let dir = tempfile::tempdir().unwrap();
    let settings = dir.path().join("config.json");
    let rates = serde_json::json!({"rates": {registry.host(): "1/s"}});
    std::fs::write(&settings, rates.to_string()).unwrap();
    let docker = tempfile::tempdir().unwrap();
    let env = [
        ("OCIRELAY_CONFIG", settings.to_str().unwrap()),
        ("DOCKER_CONFIG", docker.path().to_str().unwrap()),
    ];
    let head = ["--head", reference.as_str()];
    let args = [&["lookup", "--no-cache"][..], &head, &head, &head].concat();
    let started = Instant::now();
    let out = ocirelay_with(&args, &env).success();
    let elapsed = started.elapsed();
    assert_eq!(out.json().len(), 3);
    assert!(elapsed >= Duration::from_secs(2), "took {elapsed:?}");

    // A settings file that is not one: bad input naming the file.
    std::fs::write(&settings, r#"{"rates": {"h": "often"}}"#).unwrap();
    let out = ocirelay_with(&["lookup", &reference], &env);
    assert_eq!(out.code, 2, "{out:?}");
    let named = format!("settings file {}", settings.display());
    assert!(out.stderr.contains(&named), "{}", out.stderr);
}

#[test]
fn an_upload_session_on_another_host_is_refused_before_anything_goes_there() {
    let src = Registry::start_plain(Auth::None);
    let dst = Registry::start_plain(Auth::None);
    push_image(&src, "app", "v1", &[b"guarded"]);
    // The destination hands out an upload session on a host nobody named.
    let stranger = FaultProxy::start(src.host());
    let proxy = FaultProxy::start(dst.host());
    let location = format!("http://{}/upload/elsewhere", stranger.host());
    proxy.add(
        "POST",
        "/blobs/uploads/",
        Fault::Status(202, vec![("Location".into(), location.clone())]),
        10,
    );
    let out = ocirelay(&[
        "copy",
        &src.reference("app:v1"),
        &format!("{}/app:v1", proxy.host()),
    ]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains(&format!(
            "refused an upload session at {location}: not the registry's own origin"
        )),
        "{}",
        out.stderr
    );
    assert!(stranger.log().is_empty(), "{:#?}", stranger.log());
}

/// A registry's rate covers what it sends the client to, as the original
/// counts it: here its token server. At 1 per second (burst 1), a HEAD, the
/// token request its 401 asks for and the HEAD again take 2 s at least;
/// with the token free of charge they would take 1 s.
#[test]
fn a_registrys_token_requests_spend_its_rate() {
    let registry = Registry::start(Auth::Token {
        users: vec![("pusher".into(), "pushes".into())],
        public_repositories: vec!["app".into()],
    });
    push_image(&registry, "app", "v1", &[b"rated tokens"]);
    let pushed = registry
        .token_server()
        .expect("token auth")
        .requests()
        .len();
    let reference = registry.reference("app:v1");
    let rate = format!("{}=1/s", registry.host());
    let started = Instant::now();
    ocirelay(&["lookup", "--rate", &rate, "--head", &reference]).success();
    let elapsed = started.elapsed();
    let tokens = registry.token_server().expect("token auth").requests();
    assert_eq!(tokens.len() - pushed, 1, "{tokens:?}");
    assert!(
        elapsed >= Duration::from_secs(2),
        "HEAD, token, HEAD at 1/s took {elapsed:?}"
    );
}

/// A registry behind a proxy that adds `headers` to the first `times`
/// answers to manifest requests.
fn stating(headers: &[(&str, &str)], times: usize) -> (Registry, FaultProxy) {
    let registry = Registry::start_plain(Auth::None);
    ocirelay_tests::push_index(
        &registry,
        "app",
        "v1",
        ocirelay_tests::Flavour::Oci,
        &ocirelay_tests::two_platforms(),
    );
    let proxy = FaultProxy::start(registry.host());
    let added = headers
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
    proxy.add("GET", "/manifests/", Fault::AddHeaders(added), times);
    (registry, proxy)
}

#[test]
fn a_registry_saying_its_budget_is_spent_is_not_asked_again_until_it_is_back() {
    // Spent for six hours, past the deadline: the copy fails at once,
    // saying when the budget is back, and nothing more is sent.
    let (_registry, proxy) = stating(
        &[
            ("ratelimit-limit", "100;w=21600"),
            ("ratelimit-remaining", "0;w=21600"),
        ],
        100,
    );
    let to = Registry::start_plain(Auth::None);
    let src = format!("{}/app:v1", proxy.host());
    let out = ocirelay(&["copy", &src, &to.reference("app:v1")]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let back = ["back in 5h59m", "back in 6h00m"];
    assert!(
        out.stderr.contains("budget is spent") && back.iter().any(|b| out.stderr.contains(b)),
        "{}",
        out.stderr
    );
    let sent = proxy.log();
    assert!(
        sent.len() <= 2,
        "asked again after it said none is left: {sent:#?}"
    );

    // Spent for two seconds, within the deadline: waited for, then done.
    let (_registry, proxy) = stating(&[("RateLimit", "limit=10, remaining=0, reset=2")], 1);
    let started = Instant::now();
    let out = ocirelay(&[
        "copy",
        &format!("{}/app:v1", proxy.host()),
        &to.reference("b:v1"),
    ]);
    assert!(out.code == 0, "{}", out.stderr);
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "the budget was not waited for"
    );

    // Headers that say nothing usable are ignored.
    let (_registry, proxy) = stating(&[("ratelimit-remaining", "-5;w=x")], 100);
    let out = ocirelay(&[
        "copy",
        &format!("{}/app:v1", proxy.host()),
        &to.reference("c:v1"),
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
}
