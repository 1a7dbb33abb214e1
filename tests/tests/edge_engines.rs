//! The edge service on JavaScript engines (edge/workers): Cloudflare's
//! workerd and Deno, from npm, running the same build of the service in
//! front of real registries: the API routes, the mirror's, errors, a token
//! and TLS upstream, blobs that stream (first bytes out while the upstream
//! stalls; memory far below the blob's size), many requests at once, and a
//! client that leaves mid-blob.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use ocirelay_core::Digest;
use ocirelay_tests::cli::ocirelay;
use ocirelay_tests::edge::Engine;
use ocirelay_tests::fault_proxy::{Fault, FaultProxy};
use ocirelay_tests::service::Service;
use ocirelay_tests::{bytes, push_image, Auth, Registry};
use serde_json::json;

const MIB: usize = 1024 * 1024;

fn config_for(registry: &str) -> serde_json::Value {
    json!({"upstreams": [{"registry": registry, "repositories": ["team/*"]}]})
}

/// The layer of a one-layer image.
fn only_layer(reference: &str) -> Digest {
    let out = ocirelay(&["lookup", "--type", "manifest", reference]).success();
    let layer = &out.json()[0]["layers"][0]["digest"];
    Digest::parse(layer.as_str().unwrap()).unwrap()
}

/// The API and mirror routes against an HTTPS registry with token auth
/// (public reads), as under `wasmtime serve`.
fn routes(engine: Engine) {
    let registry = Registry::start(Auth::Token {
        users: vec![("pusher".into(), "secret".into())],
        public_repositories: vec!["team/app".into()],
    });
    let image = push_image(&registry, "team/app", "v1", &[b"edge layer"]);
    let reference = registry.reference("team/app:v1");
    let service = Service::engine(engine, &config_for(registry.host()));

    let index = service.get(&format!("/index/{reference}"));
    assert_eq!(index.status, 200, "{index:?}\n{}", service.log());
    let cli = ocirelay(&["index", &reference]).success();
    assert_eq!(index.body, cli.stdout.as_bytes());
    let manifest = service.get(&format!("/manifest/{reference}"));
    assert_eq!(
        manifest.header("docker-content-digest"),
        Some(image.digest.to_string().as_str())
    );
    let layer = only_layer(&reference);
    let blob = service.get(&format!("/blob/{}@{layer}", registry.reference("team/app")));
    assert_eq!(
        (blob.status, blob.body.as_slice()),
        (200, &b"edge layer"[..])
    );

    // The mirror.
    assert_eq!(service.get("/v2/").status, 200);
    let by_tag = service.get("/v2/team/app/manifests/v1");
    assert_eq!(by_tag.status, 200, "{by_tag:?}");
    assert_eq!(Digest::sha256(&by_tag.body), image.digest);
    assert_eq!(by_tag.content_length(), Some(by_tag.body.len()));
    let by_digest = service.get(&format!("/v2/team/app/manifests/{}", image.digest));
    assert_eq!(by_digest.body, by_tag.body);
    let head = service.request("HEAD", "/v2/team/app/manifests/v1", &[]);
    assert_eq!(head.status, 200);
    assert_eq!(head.content_length(), Some(by_tag.body.len()));
    let etag = format!("\"{}\"", image.digest);
    let again = service.request(
        "GET",
        &format!("/v2/team/app/manifests/{}", image.digest),
        &[("If-None-Match", &etag)],
    );
    assert_eq!((again.status, again.body.len()), (304, 0), "{again:?}");
    let tags = service.get("/v2/team/app/tags/list");
    assert_eq!(tags.json(), json!({"name": "team/app", "tags": ["v1"]}));
    let range = service.request(
        "GET",
        &format!("/v2/team/app/blobs/{layer}"),
        &[("Range", "bytes=2-5")],
    );
    assert_eq!((range.status, range.body.as_slice()), (206, &b"ge l"[..]));
    assert_eq!(range.header("content-range"), Some("bytes 2-5/10"));

    // Errors, as JSON the clients read.
    let missing = service.get("/v2/team/app/manifests/nope");
    assert_eq!(missing.status, 404, "{missing:?}");
    assert_eq!(missing.json()["errors"][0]["code"], "MANIFEST_UNKNOWN");
    let bad = service.get("/index/Not%20A%20Ref");
    assert_eq!(bad.status, 400, "{bad:?}");
    let elsewhere = service.get("/v2/other/app/manifests/v1");
    assert_eq!(elsewhere.status, 403, "{elsewhere:?}");
    // An instance is kept for the next request, with its token: a request
    // after another asks the token server nothing.
    let tokens = registry
        .token_server()
        .expect("token auth")
        .requests()
        .len();
    let again = service.get(&format!("/v2/team/app/manifests/{}", image.digest));
    assert_eq!(again.status, 200);
    assert_eq!(
        registry.token_server().unwrap().requests().len(),
        tokens,
        "the instance kept its token"
    );
    // A body on a GET is no reason to fail.
    let conn = TcpStream::connect(service.addr()).unwrap();
    let with_body = ocirelay_tests::http1::exchange(
        conn,
        service.addr(),
        "GET",
        "/v2/team/app/manifests/v1",
        &[],
        b"unexpected",
    );
    assert_eq!(with_body.status, 200, "{with_body:?}");
}

#[test]
fn workerd_serves_the_api_and_the_mirror_from_a_token_and_tls_upstream() {
    routes(Engine::Workerd);
}

#[test]
fn deno_serves_the_api_and_the_mirror_from_a_token_and_tls_upstream() {
    routes(Engine::Deno);
}

/// A blob's answer read by hand: its head, then body bytes as they come.
struct Reading {
    reader: BufReader<TcpStream>,
    status: u16,
    length: Option<usize>,
}

impl Reading {
    fn get(service: &Service, path: &str) -> Reading {
        let mut conn = TcpStream::connect(service.addr()).unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(60))).ok();
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            service.addr()
        );
        conn.write_all(request.as_bytes()).unwrap();
        let mut reader = BufReader::new(conn);
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let status = line.split_whitespace().nth(1).and_then(|s| s.parse().ok());
        let mut length = None;
        loop {
            line.clear();
            if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
                break;
            }
            let (name, value) = line.split_once(':').unwrap_or(("", ""));
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().ok();
            }
        }
        Reading {
            reader,
            status: status.unwrap_or(0),
            length,
        }
    }

    /// Reads `n` body bytes (fewer at the end), hashing them into `hash`.
    fn read(&mut self, n: usize, hash: &mut sha2::Sha256) -> usize {
        use sha2::Digest as _;
        let mut buf = vec![0; 256 * 1024];
        let mut got = 0;
        while got < n {
            let want = buf.len().min(n - got);
            match self.reader.read(&mut buf[..want]) {
                Ok(0) | Err(_) => break,
                Ok(k) => {
                    hash.update(&buf[..k]);
                    got += k;
                }
            }
        }
        got
    }
}

/// The first bytes of a blob reach the client while its upstream is still
/// stalled before the rest: the body streams; the whole arrives and
/// matches its digest.
fn streams_while_upstream_stalls(engine: Engine) {
    let registry = Registry::start_plain(Auth::None);
    let content = bytes(7, 32 * MIB);
    push_image(&registry, "team/big", "v1", &[&content]);
    let layer = only_layer(&registry.reference("team/big:v1"));
    let proxy = FaultProxy::start(registry.host());
    let stall = Duration::from_secs(6);
    proxy.add(
        "GET",
        "/blobs/",
        Fault::StallResponseAfter(8 * MIB, stall),
        1,
    );
    let service = Service::engine(engine, &config_for(&proxy.host()));

    let started = Instant::now();
    let mut reading = Reading::get(&service, &format!("/v2/team/big/blobs/{layer}"));
    assert_eq!(reading.status, 200, "{}\n{:#?}", service.log(), proxy.log());
    assert_eq!(reading.length, Some(content.len()), "Content-Length kept");
    let mut hash = <sha2::Sha256 as sha2::Digest>::new();
    assert_eq!(reading.read(MIB, &mut hash), MIB);
    let first = started.elapsed();
    assert!(
        first < stall / 2,
        "the first MiB came after {first:?}: held until the upstream's stall ({stall:?}) ended"
    );
    let rest = reading.read(usize::MAX, &mut hash);
    assert_eq!(MIB + rest, content.len());
    let got = format!("sha256:{:x}", sha2::Digest::finalize(hash));
    assert_eq!(got, layer.to_string());
}

#[test]
fn workerd_streams_a_blob_while_its_upstream_stalls() {
    streams_while_upstream_stalls(Engine::Workerd);
}

#[test]
fn deno_streams_a_blob_while_its_upstream_stalls() {
    streams_while_upstream_stalls(Engine::Deno);
}

/// A blob larger than what the engine's memory grows by on the way: the
/// body is never held whole. The bound: what the engines' garbage
/// collection lets float (measured with a young generation of 1 MiB:
/// workerd about 105 MiB, Deno 20-70 MiB above their start, for any size;
/// see the README), half the blob's 384 MiB, which a held body would add
/// at least once.
fn big_blob_in_bounded_memory(engine: Engine) {
    let registry = Registry::start_plain(Auth::None);
    let content = bytes(11, 384 * MIB);
    push_image(&registry, "team/big", "v1", &[&content]);
    let layer = only_layer(&registry.reference("team/big:v1"));
    drop(content);
    let service = Service::engine(engine, &config_for(registry.host()));
    assert_eq!(service.get("/v2/team/big/manifests/v1").status, 200);
    let before = service.peak_rss_kib();

    let mut reading = Reading::get(&service, &format!("/v2/team/big/blobs/{layer}"));
    assert_eq!(reading.status, 200, "{}", service.log());
    let mut hash = <sha2::Sha256 as sha2::Digest>::new();
    assert_eq!(reading.read(usize::MAX, &mut hash), 384 * MIB);
    assert_eq!(
        format!("sha256:{:x}", sha2::Digest::finalize(hash)),
        layer.to_string()
    );
    let grown = (service.peak_rss_kib() - before) / 1024;
    assert!(
        grown < 192,
        "{engine:?} grew by {grown} MiB passing a 384 MiB blob"
    );
}

#[test]
fn workerd_passes_a_big_blob_in_bounded_memory() {
    big_blob_in_bounded_memory(Engine::Workerd);
}

#[test]
fn deno_passes_a_big_blob_in_bounded_memory() {
    big_blob_in_bounded_memory(Engine::Deno);
}

/// 100 requests at once, each its own instance; then a client that leaves
/// mid-blob, after which the service answers as before.
fn many_at_once_and_a_client_that_leaves(engine: Engine) {
    let registry = Registry::start_plain(Auth::None);
    let image = push_image(&registry, "team/app", "v1", &[&bytes(3, 16 * MIB)]);
    let layer = only_layer(&registry.reference("team/app:v1"));
    let service = Service::engine(engine, &config_for(registry.host()));
    let answers: Vec<_> = std::thread::scope(|s| {
        let asks: Vec<_> = (0..100)
            .map(|_| s.spawn(|| service.get(&format!("/v2/team/app/manifests/{}", image.digest))))
            .collect();
        asks.into_iter().map(|a| a.join().unwrap()).collect()
    });
    for answer in &answers {
        assert_eq!(answer.status, 200, "{answer:?}\n{}", service.log());
        assert_eq!(Digest::sha256(&answer.body), image.digest);
    }

    let mut reading = Reading::get(&service, &format!("/v2/team/app/blobs/{layer}"));
    let mut hash = <sha2::Sha256 as sha2::Digest>::new();
    assert_eq!(reading.read(MIB, &mut hash), MIB);
    drop(reading);
    let whole = service.get(&format!("/v2/team/app/blobs/{layer}"));
    assert_eq!(whole.status, 200);
    assert_eq!(Digest::sha256(&whole.body), layer);
}

#[test]
fn workerd_answers_100_at_once_and_outlives_a_client_that_leaves() {
    many_at_once_and_a_client_that_leaves(Engine::Workerd);
}

#[test]
fn deno_answers_100_at_once_and_outlives_a_client_that_leaves() {
    many_at_once_and_a_client_that_leaves(Engine::Deno);
}

/// wasmCloud's `wash dev` trusts the public CAs only (not the tests' own,
/// whatever `SSL_CERT_FILE` says): a plain-HTTP upstream here.
#[test]
fn wasmcloud_wash_dev_serves_the_mirror() {
    let registry = Registry::start_plain(Auth::None);
    let image = push_image(&registry, "team/app", "v1", &[b"cloud layer"]);
    let service = Service::wash(&config_for(registry.host()));
    let by_tag = service.get("/v2/team/app/manifests/v1");
    assert_eq!(by_tag.status, 200, "{by_tag:?}\n{}", service.log());
    assert_eq!(Digest::sha256(&by_tag.body), image.digest);
    let layer = only_layer(&registry.reference("team/app:v1"));
    let blob = service.get(&format!("/v2/team/app/blobs/{layer}"));
    assert_eq!(blob.body, b"cloud layer");
    let tags = service.get("/v2/team/app/tags/list");
    assert_eq!(tags.json(), json!({"name": "team/app", "tags": ["v1"]}));
}
