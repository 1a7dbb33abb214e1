//! The edge service with many requests in flight at once under stock
//! `wasmtime serve`, whose pooling allocator allows 1,000 core instances
//! at once by default. An instance of the service is 3 core modules, so
//! 333 requests fit in flight (at 13 modules, about 60 did). Past that,
//! `--max-concurrent-requests` makes wasmtime queue requests instead of
//! failing them: the README says so.

use std::sync::Barrier;
use std::time::Duration;

use ocirelay_tests::fault_proxy::{Fault, FaultProxy};
use ocirelay_tests::service::Service;
use ocirelay_tests::{push_image, Auth, Registry};
use serde_json::json;

/// `requests` asked at once of the service under `wasmtime serve ARGS`,
/// with an upstream slow enough to keep them all in flight together: how
/// many were not 200, with what the host said of the first failures, and
/// the most the upstream had in flight at once.
fn at_once(requests: usize, args: &[&str]) -> (usize, Vec<String>, usize) {
    let registry = Registry::start_plain(Auth::None);
    let image = push_image(&registry, "team/app", "v1", &[b"many at once"]);
    let proxy = FaultProxy::start(registry.host());
    let path = format!("/v2/team/app/manifests/{}", image.digest);
    proxy.add("GET", &path, Fault::Delay(Duration::from_secs(2)), requests);
    let config = json!({"upstreams": [{"registry": proxy.host(), "repositories": ["team/*"]}]});
    let service = Service::wasmtime_args(&config, args);
    let barrier = Barrier::new(requests);
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let asked: Vec<_> = (0..requests)
            .map(|_| {
                let (service, barrier, path) = (&service, &barrier, &path);
                s.spawn(move || {
                    barrier.wait();
                    service.get(path).status
                })
            })
            .collect();
        asked.into_iter().map(|t| t.join().unwrap()).collect()
    });
    let failed = statuses.iter().filter(|s| **s != 200).count();
    let said = service
        .log()
        .lines()
        .filter(|l| l.contains("error"))
        .take(2)
        .map(str::to_string)
        .collect();
    (failed, said, proxy.most_concurrent())
}

#[test]
fn three_hundred_requests_in_flight_under_stock_wasmtime_serve_all_succeed() {
    let (failed, said, most) = at_once(300, &[]);
    assert_eq!(failed, 0, "{said:#?}");
    assert!(most > 250, "only {most} in flight at once");
}

#[test]
fn two_hundred_requests_queue_under_wasmtime_serve_with_a_concurrency_limit() {
    let (failed, said, most) = at_once(200, &["--max-concurrent-requests", "150"]);
    assert_eq!(failed, 0, "{said:#?}");
    assert!(most <= 150, "{most} in flight at once, past the limit");
}
