//! A registry that refuses more than a few requests at once (429 above 3
//! in flight, at a proxy in front of distribution): ocirelay's requests at
//! once to it settle at what it takes, and the sync still completes.

use ocirelay_tests::fault_proxy::{Fault, FaultProxy};
use ocirelay_tests::{ocirelay, Auth, Layout, Registry};
use serde_json::Value;

#[test]
fn requests_at_once_settle_at_what_a_busy_registry_takes() {
    let registry = Registry::start_plain(Auth::None);
    let mut layout = Layout::new();
    layout.eight_platforms("v1", 4096, 500);
    layout.push(&registry, "app", "v1");
    let proxy = FaultProxy::start(registry.host());
    // Each blob read takes a while, so that requests overlap.
    let slow = Fault::Delay(std::time::Duration::from_millis(250));
    proxy.add("GET", "/blobs/", slow, 1000);
    proxy.cap_in_flight(3);
    let to = Registry::start_plain(Auth::None);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sync.json");
    let yaml = serde_json::json!({proxy.host(): {"images": {"app": ["v1"]}}});
    std::fs::write(&config, yaml.to_string()).unwrap();
    let out = ocirelay(&[
        "--concurrency",
        "16",
        "sync",
        config.to_str().unwrap(),
        &to.reference("mirror"),
        "--progress",
        "json",
        "--report",
        "-",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.json()[0]["totals"]["copied"], 1);
    let refused = proxy
        .log()
        .iter()
        .filter(|l| l.contains("over the cap"))
        .count();
    assert!(refused > 0, "the cap never refused: {:#?}", proxy.log());
    let settled = proxy.most_concurrent_settled();
    assert!(
        (1..=4).contains(&settled),
        "{settled} at once after settling (the cap is 3; one more probes)"
    );
    // The JSON progress says when the limit changed.
    let lowered = out
        .stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .any(|e| e["event"] == "concurrency" && e["registry"] == proxy.host().as_str());
    assert!(lowered, "{}", out.stderr);
}
