//! What ocirelay reads is checked against its digest and size, and bounded:
//! real registries whose stored content was tampered with behind their
//! back, and manifests at the size limit.

use ocirelay_core::media_type::{OCI_CONFIG, OCI_MANIFEST};
use ocirelay_core::{Descriptor, Digest};
use ocirelay_tests::fault_proxy::{Fault, FaultProxy};
use ocirelay_tests::{bytes, ocirelay, push_image, Auth, Layout, Registry};
use serde_json::json;

/// The manifest limit: 4 MiB.
const LIMIT: usize = 4 * 1024 * 1024;

/// The layer of a one-layer image `app:v1` pushed to `registry`: 6 MiB
/// (more than the 4 MiB read whole, so it is streamed) of `seed`, then
/// corrupted in storage at byte `at`.
fn corrupted_layer(registry: &Registry, seed: u64, at: usize) -> Digest {
    let big = bytes(seed, 6 << 20);
    push_image(registry, "app", "v1", &[&big]);
    let layer = Digest::sha256(&big);
    registry.corrupt_blob(&layer, at);
    layer
}

/// `ocirelay lookup --type blob` of `blob`, which must fail as content
/// that does not match its digest; its output.
fn lookup_fails_as_corrupt(blob: &str) -> ocirelay_tests::Output {
    let out = ocirelay(&["lookup", "--type", "blob", blob]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr.contains("content does not match"),
        "{}",
        out.stderr
    );
    out
}

#[test]
fn a_streamed_blob_that_does_not_match_fails_at_its_end() {
    let registry = Registry::start(Auth::None);
    // Near the end: every chunk before it is handed out before the check.
    let layer = corrupted_layer(&registry, 5, (6 << 20) - 10);
    let out = lookup_fails_as_corrupt(&registry.reference(&format!("app@{layer}")));
    assert!(
        !out.stdout.trim_end().ends_with('"'),
        "the document is never completed"
    );
}

/// A manifest of exactly `size` bytes (its config in the layout too).
fn padded_manifest(layout: &mut Layout, size: usize) -> (Descriptor, Vec<u8>) {
    let config = layout.blob(OCI_CONFIG, br#"{"architecture":"amd64","os":"linux"}"#);
    let mut manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config,
        "layers": [],
        "annotations": {"padding": ""},
    });
    let bare = manifest.to_string().len();
    manifest["annotations"]["padding"] = json!("x".repeat(size - bare));
    let bytes = manifest.to_string().into_bytes();
    assert_eq!(bytes.len(), size);
    (layout.blob(OCI_MANIFEST, &bytes), bytes)
}

#[test]
fn manifests_up_to_4_mib_are_read_and_larger_ones_refused_unread() {
    let registry = Registry::start(Auth::None);
    let mut layout = Layout::new();
    let (exact, _) = padded_manifest(&mut layout, LIMIT);
    ocirelay_tests::push::push_tree(&registry, "big", layout.path(), &exact, Some("exact"));
    let reference = registry.reference("big:exact");
    let out = ocirelay(&["lookup", "--type", "manifest", &reference]).success();
    assert_eq!(out.json()[0]["schemaVersion"], json!(2));
    let out = ocirelay(&["lookup", "--head", &reference]).success();
    assert_eq!(out.json()[0]["size"], json!(LIMIT));

    // One byte more: no registry of ours stores that, so a proxy in front
    // of one serves it, with the headers a registry would send.
    let plain = Registry::start_plain(Auth::None);
    let (over, bytes) = padded_manifest(&mut layout, LIMIT + 1);
    let proxy = FaultProxy::start(plain.host());
    let headers = vec![
        ("Content-Type".to_string(), OCI_MANIFEST.to_string()),
        ("Docker-Content-Digest".to_string(), over.digest.to_string()),
    ];
    proxy.add(
        "GET",
        "/manifests/over",
        Fault::Serve(200, headers.clone(), bytes),
        10,
    );
    proxy.add(
        "HEAD",
        "/manifests/over",
        Fault::Serve(200, headers, vec![0; LIMIT + 1]),
        10,
    );
    let over = format!("{}/big:over", proxy.host());
    let target = plain.reference("big:copied");
    for args in [
        vec!["lookup", "--type", "manifest", &over],
        vec!["lookup", "--head", &over],
        vec!["copy", &over, &target],
    ] {
        let out = ocirelay(&args);
        assert_eq!(out.code, 1, "{args:?}: {out:?}");
        assert!(
            out.stderr.contains(&format!(
                "of {} bytes is larger than the {LIMIT}-byte limit; refused unread",
                LIMIT + 1
            )),
            "{args:?}: {}",
            out.stderr
        );
    }
}

/// Bytes that do not match before a read breaks are still found at its
/// end: the read resumes where it broke (`Range`), and the check of what
/// came before carries on (in the host, which checks blob reads for
/// ocirelay's component).
#[test]
fn a_blob_read_that_breaks_after_a_bad_byte_still_fails_at_its_end() {
    let registry = Registry::start_plain(Auth::None);
    let layer = corrupted_layer(&registry, 9, 100);
    let proxy = FaultProxy::start(registry.host());
    proxy.add(
        "GET",
        &format!("/blobs/{layer}"),
        Fault::CutResponseAfter(1 << 20),
        1,
    );
    lookup_fails_as_corrupt(&format!("{}/app@{layer}", proxy.host()));
    let gets = proxy.requests("GET", &layer.to_string());
    assert_eq!(gets.len(), 2, "resumed once, not read again: {gets:#?}");
    assert!(gets[1].contains("(Range: bytes=1048576-)"), "{gets:#?}");
}
