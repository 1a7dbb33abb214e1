//! What the command line says and does beyond the registry work: flags
//! wired end to end, messages a user can act on, output to pipes.

use std::io::Read;
use std::process::{Command, Stdio};

use ocirelay_tests::cli::{binary, ocirelay_with};
use ocirelay_tests::fault_proxy::{Fault, FaultProxy};
use ocirelay_tests::{ocirelay, push_image, push_index, two_platforms, Auth, Flavour, Registry};
use serde_json::json;

#[test]
fn an_insecure_registry_is_spoken_to_over_plain_http_only_when_named() {
    // Plain HTTP on an address ocirelay speaks HTTPS to by default.
    let registry = Registry::start_insecure(Auth::None);
    let image = push_image(&registry, "app", "v1", &[b"insecure"]);
    let reference = registry.reference("app:v1");

    let out = ocirelay(&["lookup", "--head", &reference]);
    assert_eq!(out.code, 1, "HTTPS to a plain-HTTP registry: {out:?}");
    // Said so, with what mends it, and not tried again: a handshake that
    // fails this way fails every time.
    let said = format!(
        "cannot reach {}: TLS handshake failed (a registry that speaks plain HTTP must be named insecure)",
        registry.host()
    );
    assert!(out.stderr.contains(&said), "{}", out.stderr);
    assert_eq!(out.stderr.matches("TLS: ").count(), 1, "{}", out.stderr);

    let by_flag = [
        "--insecure",
        registry.host(),
        "lookup",
        "--head",
        &reference,
    ];
    let out = ocirelay(&by_flag).success();
    assert_eq!(out.json()[0]["digest"], json!(image.digest.to_string()));

    let dir = tempfile::tempdir().unwrap();
    let settings = dir.path().join("config.json");
    let insecure = json!({"insecure": [registry.host()]});
    std::fs::write(&settings, insecure.to_string()).unwrap();
    let env = [("OCIRELAY_CONFIG", settings.to_str().unwrap())];
    let out = ocirelay_with(&["lookup", "--head", &reference], &env).success();
    assert_eq!(out.json()[0]["digest"], json!(image.digest.to_string()));
}

#[test]
fn the_retry_deadline_bounds_how_long_429s_are_waited_out() {
    let registry = Registry::start_plain(Auth::None);
    let image = push_image(&registry, "app", "v1", &[b"patience"]);
    let proxy = FaultProxy::start(registry.host());
    let busy = Fault::Status(429, vec![("Retry-After".into(), "1".into())]);
    // Four 429s, a second apart: more than a 2-second deadline allows.
    proxy.add("HEAD", "/manifests/v1", busy.clone(), 4);
    let reference = format!("{}/app:v1", proxy.host());
    let out = ocirelay(&["--retry-deadline", "2", "lookup", "--head", &reference]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("registry answered 429"),
        "{}",
        out.stderr
    );
    let heads = |proxy: &FaultProxy| {
        proxy
            .log()
            .iter()
            .filter(|l| l.starts_with("HEAD "))
            .count()
    };
    assert_eq!(
        heads(&proxy),
        3,
        "waits of 1 s and 1 s, then no more: {:#?}",
        proxy.log()
    );

    // Within the default deadline the same four are waited out.
    let proxy = FaultProxy::start(registry.host());
    proxy.add("HEAD", "/manifests/v1", busy, 4);
    let reference = format!("{}/app:v1", proxy.host());
    let out = ocirelay(&["lookup", "--head", &reference]).success();
    assert_eq!(out.json()[0]["digest"], json!(image.digest.to_string()));
    assert_eq!(heads(&proxy), 5);
}

#[test]
fn a_host_that_does_not_resolve_is_named() {
    let out = ocirelay(&["lookup", "--head", "nothing.invalid/app:v1"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("cannot resolve nothing.invalid"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("Payload"), "{}", out.stderr);
}

#[test]
fn parallel_after_a_reference_says_where_it_goes() {
    let out = ocirelay(&[
        "lookup",
        "localhost:5000/a:v1",
        "--parallel",
        "localhost:5000/b:v1",
    ]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr
            .contains("--parallel applies to the whole command: put it before the first reference"),
        "{}",
        out.stderr
    );
}

#[test]
fn logs_into_a_pipe_carry_no_colour_codes() {
    let registry = Registry::start(Auth::None);
    push_image(&registry, "app", "v1", &[b"plain logs"]);
    let env = [("RUST_LOG", "debug")];
    let out = ocirelay_with(&["lookup", "--head", &registry.reference("app:v1")], &env).success();
    assert!(out.stderr.contains("sending"), "{}", out.stderr);
    assert!(!out.stderr.contains('\u{1b}'), "{:?}", out.stderr);
}

#[test]
fn a_reader_that_goes_away_ends_every_command_quietly() {
    let registry = Registry::start(Auth::None);
    let pushed = push_index(&registry, "app", "v1", Flavour::Oci, &two_platforms());
    let reference = registry.reference("app:v1");
    let target = registry.reference("copy:v1");
    let ca = ocirelay_tests::tls::ca_file().to_str().unwrap().to_string();
    for args in [
        vec!["lookup", reference.as_str()],
        vec!["index", reference.as_str()],
        vec!["lookup", "--type", "manifest", reference.as_str()],
        vec!["copy", reference.as_str(), target.as_str()],
    ] {
        // The reader is gone before anything is written (`| head -c 0`).
        let mut child = Command::new(binary())
            .args(["--ca-file", ca.as_str()])
            .args(&args)
            .env(
                "OCIRELAY_CACHE_DIR",
                binary().with_file_name("ocirelay-test-cache"),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("running ocirelay");
        drop(child.stdout.take());
        let mut stderr = String::new();
        if let Some(mut e) = child.stderr.take() {
            e.read_to_string(&mut stderr).unwrap();
        }
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(0), "{args:?}: {stderr}");
        assert!(stderr.is_empty(), "{args:?}: {stderr}");
    }
    let out = ocirelay(&["lookup", "--head", &target]).success();
    assert_eq!(
        out.json()[0]["digest"],
        json!(pushed.index.digest.to_string())
    );
}

#[test]
fn numbers_out_of_range_are_refused_not_clamped() {
    let reference = "localhost:5000/app:v1";
    for (args, named) in [
        (vec!["--idle-timeout", "0"], "--idle-timeout"),
        (
            vec!["--idle-timeout", "18446744073709551615"],
            "--idle-timeout",
        ),
        (vec!["--concurrency", "0"], "--concurrency"),
        (vec!["--retry-deadline", "0"], "--retry-deadline"),
        (
            vec!["--rate", "localhost:5000=1/18446744073709551615s"],
            "longer than a day",
        ),
    ] {
        let args = [&args[..], &["lookup", "--head", reference]].concat();
        let out = ocirelay(&args);
        assert_eq!(out.code, 2, "{args:?}: {out:?}");
        assert!(out.stderr.contains(named), "{args:?}: {}", out.stderr);
    }
}
