//! The mirror's blob reads where the upstream redirects them to storage (as
//! Docker Hub, GHCR, ECR and GAR do), under stock `wasmtime serve` and
//! `ocirelay serve`: with `redirect-blobs`, the client is sent there too
//! (nothing read or cached at the edge); without, the service reads and
//! checks the blob itself; a redirect down to plain HTTP is refused either
//! way. The upstream here is a fault proxy in front of a registry whose
//! blob GETs it answers with a redirect to the registry itself.

use std::net::TcpStream;

use ocirelay_core::Digest;
use ocirelay_tests::fault_proxy::{Fault, FaultProxy};
use ocirelay_tests::http1::exchange;
use ocirelay_tests::service::Service;
use ocirelay_tests::{push_image, Auth, Registry};
use serde_json::json;

/// A registry with a one-layer image, and in front of it an upstream (a
/// fault proxy, TLS or not) whose blob GETs redirect to `to(registry, path)`.
fn redirecting(
    tls: bool,
    to: impl Fn(&Registry, &str) -> String,
) -> (Registry, FaultProxy, Digest, Vec<u8>) {
    let registry = Registry::start_plain(Auth::None);
    let content = b"a layer kept in storage".to_vec();
    push_image(&registry, "team/app", "v1", &[&content]);
    let layer = Digest::sha256(&content);
    let proxy = match tls {
        true => FaultProxy::start_tls(registry.host()),
        false => FaultProxy::start(registry.host()),
    };
    let path = format!("/v2/team/app/blobs/{layer}");
    let location = to(&registry, &path);
    proxy.add(
        "GET",
        "/blobs/",
        Fault::Serve(307, vec![("Location".into(), location)], Vec::new()),
        100,
    );
    (registry, proxy, layer, content)
}

fn config(upstream: &str, redirect: bool) -> serde_json::Value {
    json!({"upstreams": [{"registry": upstream, "repositories": ["team/*"],
                          "redirect-blobs": redirect}]})
}

fn each_host(config: &serde_json::Value, check: impl Fn(&Service)) {
    for service in [Service::wasmtime(config), Service::ocirelay(config)] {
        check(&service);
    }
}

#[test]
fn with_redirect_blobs_the_client_is_sent_to_storage() {
    let (registry, proxy, layer, content) =
        redirecting(false, |r, path| format!("http://{}{path}", r.host()));
    let path = format!("/v2/team/app/blobs/{layer}");
    each_host(&config(&proxy.host(), true), |service| {
        let before = registry.requests_matching("GET", &path);
        let answer = service.get(&path);
        assert_eq!(answer.status, 307, "{answer:?}\n{}", service.log());
        let location = answer.header("location").unwrap().to_string();
        assert_eq!(location, format!("http://{}{path}", registry.host()));
        assert_eq!(answer.header("cache-control"), Some("no-store"));
        assert_eq!(
            answer.header("docker-content-digest"),
            Some(layer.to_string().as_str())
        );
        assert!(answer.body.is_empty());
        assert_eq!(
            registry.requests_matching("GET", &path),
            before,
            "the service read nothing from storage"
        );
        // Where a client then reads it, and checks it.
        let rest = location.strip_prefix("http://").unwrap();
        let (host, target) = rest.split_at(rest.find('/').unwrap());
        let read = exchange(
            TcpStream::connect(host).unwrap(),
            host,
            "GET",
            target,
            &[],
            b"",
        );
        assert_eq!(read.body, content);
        // A HEAD is answered here, as ever.
        let head = service.request("HEAD", &path, &[]);
        assert_eq!(head.status, 200, "{head:?}");
        assert_eq!(head.content_length(), Some(content.len()));
    });
}

#[test]
fn without_it_the_service_follows_and_checks() {
    let (_registry, proxy, layer, content) =
        redirecting(false, |r, path| format!("http://{}{path}", r.host()));
    each_host(&config(&proxy.host(), false), |service| {
        let answer = service.get(&format!("/v2/team/app/blobs/{layer}"));
        assert_eq!(
            (answer.status, &answer.body),
            (200, &content),
            "{}",
            service.log()
        );
    });
}

#[test]
fn a_redirect_down_to_plain_http_is_refused_either_way() {
    let (_registry, proxy, layer, _) =
        redirecting(true, |r, path| format!("http://{}{path}", r.host()));
    for redirect in [true, false] {
        let service = Service::ocirelay(&config(&proxy.host(), redirect));
        let answer = service.get(&format!("/v2/team/app/blobs/{layer}"));
        assert_eq!(answer.status, 502, "{answer:?}");
        let said = String::from_utf8_lossy(&answer.body).to_string();
        assert!(said.contains("down to plain HTTP"), "{said}");
        assert!(answer.header("location").is_none());
    }
}
