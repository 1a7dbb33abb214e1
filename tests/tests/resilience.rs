//! Faults between ocirelay and a real registry, injected by a proxy:
//! retries, restarts of broken streams, and clear failures.

use base64::Engine as _;
use ocirelay_core::Digest;
use ocirelay_tests::fault_proxy::{Fault, FaultProxy};
use ocirelay_tests::{
    bytes, ocirelay, platform, push_image, push_index, two_platforms, Auth, Flavour, Layout,
    Registry,
};
use serde_json::json;

fn status(code: u16) -> Fault {
    Fault::Status(code, Vec::new())
}

#[test]
fn server_errors_and_429s_are_retried() {
    let registry = Registry::start_plain(Auth::None);
    let image = push_image(&registry, "app", "v1", &[b"retry me"]);
    let proxy = FaultProxy::start(registry.host());
    proxy.add("GET", "/manifests/v1", status(503), 2);
    proxy.add(
        "HEAD",
        "/manifests/v1",
        Fault::Status(429, vec![("Retry-After".into(), "1".into())]),
        2,
    );
    let reference = format!("{}/app:v1", proxy.host());
    // Separate runs: in one, the HEAD would be answered from the cache.
    let out = ocirelay(&["lookup", "--head", &reference]).success();
    assert_eq!(out.json()[0]["digest"], json!(image.digest.to_string()));
    ocirelay(&["lookup", "--type", "manifest", &reference]).success();
    let log = proxy.log();
    assert_eq!(
        log.iter().filter(|l| l.starts_with("GET ")).count(),
        3,
        "{log:#?}"
    );
    assert_eq!(
        log.iter().filter(|l| l.starts_with("HEAD ")).count(),
        3,
        "{log:#?}"
    );
}

#[test]
fn a_copy_through_bursts_of_429_and_503_arrives_identical() {
    let src = Registry::start_plain(Auth::None);
    let dst = Registry::start_plain(Auth::None);
    let index = push_index(&src, "app", "v1", Flavour::Oci, &two_platforms()).index;
    let proxy = FaultProxy::start(dst.host());
    proxy.add(
        "POST",
        "/blobs/uploads/",
        Fault::Status(429, vec![("Retry-After".into(), "1".into())]),
        3,
    );
    proxy.add("PUT", "/manifests/", status(503), 2);
    proxy.add("HEAD", "/blobs/", status(502), 1);
    let target = format!("{}/app:v1", proxy.host());
    let out = ocirelay(&["copy", &src.reference("app:v1"), &target]).success();
    assert_eq!(out.json()[0]["digest"], json!(index.digest.to_string()));
    let check = ocirelay(&["lookup", "--head", &dst.reference("app:v1")]).success();
    assert_eq!(check.json()[0]["digest"], json!(index.digest.to_string()));
    let src_index = ocirelay(&["index", &src.reference("app:v1")])
        .success()
        .json();
    let dst_index = ocirelay(&["index", &dst.reference("app:v1")])
        .success()
        .json();
    assert_eq!(
        src_index[0]["manifests"].as_array().map(Vec::len),
        dst_index[0]["manifests"].as_array().map(Vec::len)
    );
    for (s, d) in src_index[0]["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .zip(dst_index[0]["manifests"].as_array().unwrap())
    {
        assert_eq!(s["digest"], d["digest"]);
        assert_eq!(s["platform"], d["platform"]);
    }
}

#[test]
fn a_permanent_500_is_a_clear_error_and_nothing_new_is_tagged() {
    let src = Registry::start_plain(Auth::None);
    let dst = Registry::start_plain(Auth::None);
    push_image(&src, "app", "v1", &[b"doomed"]);
    let proxy = FaultProxy::start(dst.host());
    proxy.add("PUT", "/manifests/", status(500), 1000);
    let target = format!("{}/app:v1", proxy.host());
    let out = ocirelay(&["copy", &src.reference("app:v1"), &target]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr
            .contains(&format!("{target}: registry answered 500")),
        "{}",
        out.stderr
    );
    let check = ocirelay(&["lookup", "--head", &dst.reference("app:v1")]).success();
    assert_eq!(
        check.json(),
        vec![json!(null)],
        "nothing at the destination tag"
    );
    let puts = proxy.requests("PUT", "/manifests/");
    assert_eq!(puts.len(), 3, "three tries in all: {:#?}", proxy.log());
}

#[test]
fn broken_streams_mid_download_and_mid_upload_are_recovered() {
    let src = Registry::start_plain(Auth::None);
    let dst = Registry::start_plain(Auth::None);
    let mut layout = Layout::new();
    let big = bytes(2, 64 << 20);
    let image = layout.image(Flavour::Oci, &platform("linux", "amd64", None), &[&big]);
    layout.tag("v1", &image);
    layout.push(&src, "app", "v1");
    let layer = Digest::sha256(&big);
    let src_proxy = FaultProxy::start(src.host());
    let dst_proxy = FaultProxy::start(dst.host());
    // The 64 MiB layer's download breaks after 10 MiB, its upload after 20 MiB.
    src_proxy.add(
        "GET",
        &format!("/blobs/{layer}"),
        Fault::CutResponseAfter(10 << 20),
        1,
    );
    // The first upload breaks with its source; the second is cut itself
    // (the first PUT passes this proxy untouched).
    let upload = format!("digest={layer}");
    let untouched = Fault::Delay(std::time::Duration::ZERO);
    dst_proxy.add("PUT", &upload, untouched, 1);
    dst_proxy.add("PUT", &upload, Fault::CutRequestAfter(20 << 20), 1);
    let out = ocirelay(&[
        "copy",
        &format!("{}/app:v1", src_proxy.host()),
        &format!("{}/app:v1", dst_proxy.host()),
    ])
    .success();
    assert_eq!(out.json()[0]["digest"], json!(image.digest.to_string()));
    let head = ocirelay(&[
        "lookup",
        "--type",
        "blob",
        "--head",
        &dst.reference(&format!("app@{layer}")),
    ])
    .success();
    assert_eq!(
        head.json()[0]["size"],
        json!(big.len()),
        "the blob arrived whole (and the registry checked its digest)"
    );
    // Each fault broke one streamed upload, and each time the copy started
    // over: a new GET of the source into a new session.
    let layer_lines = |log: Vec<String>, method: &str| -> Vec<String> {
        log.into_iter()
            .filter(|l| l.starts_with(method) && l.contains(&layer.to_string()))
            .collect()
    };
    let gets = layer_lines(src_proxy.log(), "GET ");
    let puts = layer_lines(dst_proxy.log(), "PUT ");
    assert_eq!(gets.len(), 3, "{gets:#?} {:#?}", dst_proxy.log());
    assert_eq!(puts.len(), 3, "{puts:#?}");
    assert!(gets[0].contains("CutResponseAfter"), "{gets:#?}");
    assert!(puts[1].contains("CutRequestAfter"), "{puts:#?}");
    let session = |put: &str| put.split('?').next().unwrap_or(put).to_string();
    assert!(
        session(&puts[0]) != session(&puts[1]) && session(&puts[1]) != session(&puts[2]),
        "a new session each time: {puts:#?}"
    );
}

#[test]
fn a_blob_read_that_breaks_resumes_where_it_stopped() {
    let registry = Registry::start_plain(Auth::None);
    let mut layout = Layout::new();
    // Larger than the 4 MiB held in memory: streamed to the reader.
    let big = bytes(3, 6 << 20);
    let image = layout.image(Flavour::Oci, &platform("linux", "amd64", None), &[&big]);
    layout.tag("v1", &image);
    layout.push(&registry, "app", "v1");
    let layer = Digest::sha256(&big);
    let proxy = FaultProxy::start(registry.host());
    // The first read breaks after 1 MiB, the resumed one after 2 MiB more.
    proxy.add(
        "GET",
        &format!("/blobs/{layer}"),
        Fault::CutResponseAfter(1 << 20),
        1,
    );
    proxy.add(
        "GET",
        &format!("/blobs/{layer}"),
        Fault::CutResponseAfter(2 << 20),
        1,
    );
    let blob = format!("{}/app@{layer}", proxy.host());
    let out = ocirelay(&["lookup", "--type", "blob", &blob]).success();
    let expected = base64::engine::general_purpose::STANDARD.encode(&big);
    assert!(out.json()[0] == json!(expected), "the blob arrived whole");
    let gets = proxy.requests("GET", &layer.to_string());
    assert_eq!(gets.len(), 3, "{gets:#?}");
    assert!(!gets[0].contains("Range"), "{gets:#?}");
    assert!(gets[1].contains("(Range: bytes=1048576-)"), "{gets:#?}");
    assert!(gets[2].contains("(Range: bytes=3145728-)"), "{gets:#?}");
    let statuses: Vec<u16> = registry
        .served(0)
        .into_iter()
        .filter(|(request, _)| request.contains("/blobs/sha256:"))
        .map(|(_, status)| status)
        .collect();
    assert!(statuses.ends_with(&[206, 206]), "{statuses:?}");

    // In a batch, each reader resumes in its own repository (after a
    // query that found nothing, here).
    let app_layer = format!("/app/blobs/{layer}");
    proxy.add("GET", &app_layer, Fault::CutResponseAfter(1 << 20), 1);
    let nothing = format!("{}/nothing@{layer}", proxy.host());
    let args = [
        "lookup",
        "--parallel",
        "--type",
        "blob",
        &nothing,
        "--type",
        "blob",
        &blob,
    ];
    let out = ocirelay(&args).success();
    let docs = out.json();
    assert_eq!(docs[0], json!(null));
    assert!(docs[1] == json!(expected), "the blob arrived whole");
    let last = proxy.log().pop().unwrap_or_default();
    assert!(
        last.contains(&app_layer) && last.contains("Range"),
        "{last}"
    );
}

#[test]
fn a_stalled_answer_or_download_is_given_up_and_tried_again() {
    use std::time::Duration;
    let registry = Registry::start_plain(Auth::None);
    let big = bytes(4, 6 << 20);
    let image = push_image(&registry, "app", "v1", &[&big]);
    let layer = Digest::sha256(&big);
    let proxy = FaultProxy::start(registry.host());
    // No answer at all for 5 s, once; then a download that goes silent
    // after 1 MiB for 5 s, once. The idle timeout is 1 s.
    let silent = Duration::from_secs(5);
    proxy.add("HEAD", "/manifests/v1", Fault::Delay(silent), 1);
    let stall = Fault::StallResponseAfter(1 << 20, silent);
    proxy.add("GET", &format!("/blobs/{layer}"), stall, 1);

    let reference = format!("{}/app:v1", proxy.host());
    let out = ocirelay(&["--idle-timeout", "1", "lookup", "--head", &reference]).success();
    assert_eq!(out.json()[0]["digest"], json!(image.digest.to_string()));
    let heads = proxy
        .log()
        .iter()
        .filter(|l| l.starts_with("HEAD "))
        .count();
    assert_eq!(
        heads,
        2,
        "given up after 1 s and tried again: {:#?}",
        proxy.log()
    );

    let blob = format!("{}/app@{layer}", proxy.host());
    let out = ocirelay(&["--idle-timeout", "1", "lookup", "--type", "blob", &blob]).success();
    let expected = base64::engine::general_purpose::STANDARD.encode(&big);
    assert!(out.json()[0] == json!(expected), "the blob arrived whole");
    let last = proxy.log().pop().unwrap_or_default();
    assert!(
        last.contains("(Range: bytes=1048576-)"),
        "{:#?}",
        proxy.log()
    );
}

#[test]
fn a_trickled_download_is_no_progress_and_is_resumed() {
    let registry = Registry::start_plain(Auth::None);
    let big = bytes(6, 6 << 20);
    push_image(&registry, "app", "v1", &[&big]);
    let layer = Digest::sha256(&big);
    let proxy = FaultProxy::start(registry.host());
    // After 1 MiB, a byte every 200 ms: never a second without a frame,
    // yet nothing moves. The idle timeout is 1 s.
    let trickle = Fault::TrickleResponseAfter(1 << 20, std::time::Duration::from_millis(200));
    proxy.add("GET", &format!("/blobs/{layer}"), trickle, 1);
    let blob = format!("{}/app@{layer}", proxy.host());
    let out = ocirelay(&["--idle-timeout", "1", "lookup", "--type", "blob", &blob]).success();
    let expected = base64::engine::general_purpose::STANDARD.encode(&big);
    assert!(out.json()[0] == json!(expected), "the blob arrived whole");
    let gets = proxy.requests("GET", &layer.to_string());
    assert_eq!(gets.len(), 2, "{gets:#?}");
    assert!(gets[1].contains("(Range: bytes="), "resumed: {gets:#?}");
}

#[test]
fn a_registry_asking_to_wait_past_the_deadline_is_an_error_at_once() {
    let registry = Registry::start_plain(Auth::None);
    push_image(&registry, "app", "v1", &[b"no waiting"]);
    for (status, after) in [(503, "86400"), (429, "18446744073709551615")] {
        let proxy = FaultProxy::start(registry.host());
        let busy = Fault::Status(status, vec![("Retry-After".into(), after.into())]);
        proxy.add("HEAD", "/manifests/v1", busy, 10);
        let reference = format!("{}/app:v1", proxy.host());
        let out = ocirelay(&["lookup", "--head", &reference]);
        assert_eq!(out.code, 1, "{out:?}");
        assert!(
            out.stderr.contains(&format!("registry answered {status}")),
            "{}",
            out.stderr
        );
        let heads = proxy
            .log()
            .iter()
            .filter(|l| l.starts_with("HEAD "))
            .count();
        assert_eq!(heads, 1, "no wait past the deadline: {:#?}", proxy.log());
    }
}
