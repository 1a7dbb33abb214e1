//! Big layers going up in chunks, against real registries behind an HTTPS
//! front (the fault proxy): a copy cut near its end resumes where the
//! session stands; a session the registry forgot starts over from byte 0;
//! a registry's minimum chunk is honoured; a 413 turns a whole upload into
//! chunks small enough.

use ocirelay_core::Digest;
use ocirelay_tests::cli::ocirelay_with;
use ocirelay_tests::fault_proxy::{Fault, FaultProxy};
use ocirelay_tests::{bytes, ocirelay, platform, Auth, Flavour, Layout, Registry};
use serde_json::json;

const MIB: u64 = 1 << 20;

/// A registry with `app:v1`, one layer of `size` bytes, behind a proxy
/// that logs its reads; the layer's digest.
fn source(size: u64) -> (Registry, FaultProxy, Digest) {
    let src = Registry::start_plain(Auth::None);
    let mut layout = Layout::new();
    let big = bytes(27, size as usize);
    let image = layout.image(Flavour::Oci, &platform("linux", "amd64", None), &[&big]);
    layout.tag("v1", &image);
    layout.push(&src, "app", "v1");
    let logged = FaultProxy::start(src.host());
    (src, logged, Digest::sha256(&big))
}

/// A destination registry behind an HTTPS front.
fn destination() -> (Registry, FaultProxy) {
    let dst = Registry::start_plain(Auth::None);
    let front = FaultProxy::start_tls_front(dst.host());
    (dst, front)
}

/// `ocirelay copy` of `app:v1` with `settings` (a settings file's JSON).
fn copy(
    src: &FaultProxy,
    front: &FaultProxy,
    settings: &serde_json::Value,
) -> ocirelay_tests::Output {
    let from = format!("{}/app:v1", src.host());
    let to = format!("{}/app:v1", front.host());
    ocirelay_set(&["copy", &from, &to], settings)
}

/// `ocirelay` with `args`, its settings file `settings`.
fn ocirelay_set(args: &[&str], settings: &serde_json::Value) -> ocirelay_tests::Output {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.json");
    std::fs::write(&file, settings.to_string()).unwrap();
    let env = [
        ("OCIRELAY_CONFIG", file.to_str().unwrap()),
        ("DOCKER_CONFIG", dir.path().to_str().unwrap()),
    ];
    ocirelay_with(args, &env)
}

/// What `dst` says of blob `layer` in `app` (its descriptor, or null).
fn blob_at(dst: &Registry, layer: &Digest) -> serde_json::Value {
    let blob = dst.reference(&format!("app@{layer}"));
    let out = ocirelay(&["lookup", "--type", "blob", "--head", &blob]);
    serde_json::from_str(out.stdout.trim()).unwrap_or_else(|_| panic!("{}", out.stderr))
}

/// The layer is at the destination, whole (the registry checked its digest).
fn arrived(dst: &Registry, layer: &Digest, size: u64) {
    assert_eq!(blob_at(dst, layer)["size"], json!(size));
}

/// The layer's upload requests (bodies over 64 KiB: not the config's, nor
/// the empty PUTs that complete sessions): (method, path, length).
fn uploads(front: &FaultProxy) -> Vec<(String, String, u64)> {
    let mut bodies = front.uploaded(|u| u.bodies.clone());
    bodies.retain(|(_, _, len)| *len > 64 * 1024);
    bodies
}

/// The upload sessions the layer went into.
fn sessions(front: &FaultProxy) -> usize {
    let mut paths: Vec<String> = uploads(front)
        .into_iter()
        .map(|(_, p, _)| p.split('?').next().unwrap_or_default().to_string())
        .collect();
    paths.sort();
    paths.dedup();
    paths.len()
}

#[test]
fn a_copy_cut_near_its_end_resumes_and_a_forgotten_session_starts_over() {
    let size = 300 * MIB;
    let (_src, logged, layer) = source(size);

    // A front that buffers bodies (as nginx does): the cut chunk never
    // reaches the registry, whose session stands at the last whole chunk.
    let (dst, front) = destination();
    front.uploads(|u| {
        u.buffered = true;
        u.cut_at(size * 9 / 10);
    });
    let out = copy(&logged, &front, &json!({}));
    out.success();
    arrived(&dst, &layer, size);
    let received = front.uploaded(|u| u.received);
    let again = received - size;
    assert!(
        again <= 40 * MIB,
        "{} MiB sent again: {:#?}",
        again / MIB,
        uploads(&front)
    );
    assert_eq!(sessions(&front), 1, "the same session throughout");
    let asked = front.requests("GET", "/blobs/uploads/");
    assert_eq!(asked.len(), 1, "the session asked how much it holds once");
    // The source read again from where the session stood, not from 0.
    let reads = logged.requests("GET", &format!("/blobs/{layer}"));
    assert_eq!(reads.len(), 2, "{reads:#?}");
    assert!(reads[1].contains("(Range: bytes="), "{reads:#?}");

    // Straight into distribution, which keeps the cut chunk's bytes and then
    // forgets the session: from byte 0 again, in a new one.
    let (dst, front) = destination();
    front.uploads(|u| u.cut_at(size * 9 / 10));
    copy(&logged, &front, &json!({})).success();
    arrived(&dst, &layer, size);
    assert_eq!(sessions(&front), 2, "{:#?}", uploads(&front));
    let received = front.uploaded(|u| u.received);
    assert!(received >= size + size * 8 / 10, "{} MiB", received / MIB);
    let reads = logged.requests("GET", &format!("/blobs/{layer}"));
    assert!(
        reads.last().is_some_and(|r| !r.contains("Range")),
        "read again from byte 0: {reads:#?}"
    );
}

#[test]
fn a_registry_minimum_chunk_is_honoured_and_a_413_makes_chunks_small_enough() {
    let (_src, logged, layer) = source(100 * MIB);

    // Chunks of at least 5 MiB, said on the session's opening answer;
    // ocirelay is set to send 1 MiB ones.
    let (dst, front) = destination();
    let min = (5 * MIB).to_string();
    front.add(
        "POST",
        "/blobs/uploads/",
        Fault::AddHeaders(vec![("OCI-Chunk-Min-Length".into(), min)]),
        usize::MAX,
    );
    let small = json!({"uploads": {"*": {"chunk-size": "1MiB", "monolithic-up-to": "1MiB"}}});
    copy(&logged, &front, &small).success();
    arrived(&dst, &layer, 100 * MIB);
    let patches: Vec<u64> = uploads(&front)
        .into_iter()
        .filter(|(m, _, _)| m == "PATCH")
        .map(|(_, _, len)| len)
        .collect();
    assert_eq!(patches.len(), 20, "{patches:?}");
    assert!(patches.iter().all(|n| *n == 5 * MIB), "{patches:?}");

    // A front that refuses bodies over 64 MiB, and ocirelay set to send
    // every blob whole: refused once, then in chunks under the limit.
    let (dst, front) = destination();
    front.uploads(|u| u.refuse_over = Some(64 * MIB));
    let whole = json!({"uploads": {"*": {"chunk-size": "96MiB", "monolithic-up-to": "any"}}});
    copy(&logged, &front, &whole).success();
    arrived(&dst, &layer, 100 * MIB);
    assert_eq!(front.uploaded(|u| u.refused), 1, "{:#?}", uploads(&front));
    let bodies = uploads(&front);
    let (first, rest) = bodies.split_first().expect("uploads");
    assert_eq!(
        (first.0.as_str(), first.2),
        ("PUT", 100 * MIB),
        "{bodies:#?}"
    );
    assert!(
        rest.iter()
            .all(|(m, _, len)| m == "PATCH" && *len <= 64 * MIB),
        "{bodies:#?}"
    );
    assert_eq!(sessions(&front), 1, "the refused upload's session is used");

    // A settings file with a size that is not one: bad input, naming it.
    let out = copy(
        &logged,
        &front,
        &json!({"uploads": {"*": {"chunk-size": "huge"}}}),
    );
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("uploads.*.chunk-size"),
        "{}",
        out.stderr
    );
}

#[test]
fn chunks_that_are_not_the_digest_are_never_completed() {
    // A layer tampered with in the source's storage, early or late: its
    // chunks go up, but the PUT that would complete the session does not.
    for at in [10, (6 << 20) - 10] {
        let src = Registry::start_plain(Auth::None);
        let big = bytes(28, 6 << 20);
        ocirelay_tests::push_image(&src, "app", "v1", &[&big]);
        let layer = Digest::sha256(&big);
        src.corrupt_blob(&layer, at);
        let logged = FaultProxy::start(src.host());
        let (dst, front) = destination();
        let chunked = json!({"uploads": {"*": {"chunk-size": "1MiB", "monolithic-up-to": "1MiB"}}});
        let out = copy(&logged, &front, &chunked);
        assert_eq!(out.code, 1, "{}", out.stderr);
        assert!(
            out.stderr.contains("does not match its digest"),
            "{}",
            out.stderr
        );
        assert!(uploads(&front).len() >= 6, "{:#?}", uploads(&front));
        let completed = front.requests("PUT", &format!("digest={layer}"));
        assert!(completed.is_empty(), "{completed:#?}");
        assert_eq!(blob_at(&dst, &layer), json!(null));
    }
}

#[test]
fn a_layer_goes_into_a_layout_and_out_again_in_chunks() {
    let src = Registry::start(Auth::None);
    let big = bytes(29, 6 << 20);
    let pushed = ocirelay_tests::push_image(&src, "app", "v1", &[&big]);
    let dir = tempfile::tempdir().unwrap();
    let chunked = json!({"uploads": {"*": {"chunk-size": "1MiB", "monolithic-up-to": "1MiB"}}});
    let layout = format!("oci:{}:v1", dir.path().join("l").display());
    ocirelay_set(&["copy", &src.reference("app:v1"), &layout], &chunked).success();
    let dst = Registry::start(Auth::None);
    let back = dst.reference("app:v1");
    ocirelay_set(&["copy", &layout, &back], &chunked).success();
    let found = ocirelay(&["lookup", "--head", &back]).success();
    assert_eq!(found.json()[0]["digest"], json!(pushed.digest.to_string()));
    let blob = dir
        .path()
        .join("l/blobs/sha256")
        .join(Digest::sha256(&big).hex());
    assert_eq!(
        std::fs::read(blob).unwrap(),
        big,
        "stored whole under its digest"
    );
}
