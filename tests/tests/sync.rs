//! `ocirelay sync` between real registries (distribution over HTTPS): a
//! skopeo-style YAML config, tags by list and by pattern, a re-run that
//! only HEADs, failures reported while the rest is synced, bad configs
//! named by field, and shards that together cover the config once.

use std::path::Path;

use ocirelay_core::Digest;
use ocirelay_tests::cli::ocirelay;
use ocirelay_tests::fault_proxy::{Fault, FaultProxy};
use ocirelay_tests::{push_image, Auth, Registry};
use serde_json::{json, Value};

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("writing the config");
    path.to_str().unwrap().to_string()
}

/// The digest `reference` holds, or null.
fn digest_at(reference: &str) -> Value {
    ocirelay(&["lookup", "--head", reference]).success().json()[0]["digest"].clone()
}

#[test]
fn a_skopeo_config_syncs_then_a_rerun_only_heads() {
    let from = Registry::start(Auth::None);
    let to = Registry::start(Auth::None);
    let mut digests = Vec::new();
    for (repo, tag) in [
        ("team/app", "v1"),
        ("team/app", "v2"),
        ("team/tool", "1.0.0"),
        ("team/tool", "1.1.0"),
        ("team/tool", "2.0.0-rc1"),
    ] {
        let image = push_image(&from, repo, tag, &[format!("{repo}:{tag}").as_bytes()]);
        digests.push((repo, tag, image.digest.to_string()));
    }
    let dir = tempfile::tempdir().unwrap();
    let config = write(
        dir.path(),
        "sync.yaml",
        &format!(
            "# as skopeo sync reads it, and ocirelay's keys\n\
             {src}:\n  images:\n    team/app: [v1, v2]\n  images-by-tag-regex:\n    team/tool: '^1\\.'\n\
             ocirelay:\n  destination: {dst}/mirror\n",
            src = from.host(),
            dst = to.host()
        ),
    );
    let out = ocirelay(&["sync", &config, "--report", "-"]).success();
    let report = &out.json()[0];
    assert_eq!(report["totals"]["copied"], 4, "{report:#}\n{}", out.stderr);
    for (repo, tag, digest) in &digests[..4] {
        let name = repo.rsplit('/').next().unwrap();
        let there = digest_at(&to.reference(&format!("mirror/{name}:{tag}")));
        assert_eq!(there, Value::String(digest.clone()), "{repo}:{tag}");
    }
    assert_eq!(
        digest_at(&to.reference("mirror/tool:2.0.0-rc1")),
        Value::Null
    );
    assert!(out.stderr.contains("copied"), "{}", out.stderr);
    // What each image cost, and the totals are their sums.
    let images = report["images"].as_array().unwrap();
    let sum = |key: &str| images.iter().map(|i| i[key].as_u64().unwrap()).sum::<u64>();
    assert!(
        images.iter().all(|i| i["bytes-sent"].as_u64().unwrap() > 0),
        "{report:#}"
    );
    assert_eq!(report["totals"]["bytes-sent"], sum("bytes-sent"));
    assert_eq!(report["totals"]["requests"], sum("requests"));

    let (f0, t0) = (from.access_log().len(), to.access_log().len());
    let out = ocirelay(&["sync", &config, "--report", "-", "--progress", "json"]).success();
    let report = &out.json()[0];
    assert_eq!(report["totals"]["unchanged"], 4);
    for image in report["images"].as_array().unwrap() {
        assert_eq!(
            (&image["requests"], &image["bytes-sent"]),
            (&json!(2), &json!(0))
        );
    }
    // JSON lines on stderr, a start and an end for each image.
    let events: Vec<Value> = out
        .stderr
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let ended: Vec<&Value> = events.iter().filter(|e| e["event"] == "finished").collect();
    assert_eq!(events.len(), 8, "{}", out.stderr);
    assert_eq!(ended.len(), 4);
    assert!(ended
        .iter()
        .all(|e| e["outcome"] == "unchanged" && e["digest"].is_string() && e["requests"] == 2));
    for (request, _) in from.served(f0).iter().chain(&to.served(t0)) {
        let ok = request.starts_with("HEAD ") || request.starts_with("GET /v2/team/tool/tags/list");
        assert!(ok, "a re-run sent {request}");
    }
}

#[test]
fn a_failure_is_listed_and_the_rest_synced() {
    let from = Registry::start(Auth::None);
    let to = Registry::start(Auth::None);
    let image = push_image(&from, "team/app", "v1", &[b"present"]);
    let dir = tempfile::tempdir().unwrap();
    let config = write(
        dir.path(),
        "sync.json",
        &serde_json::json!({from.host(): {"images": {"team/app": ["gone", "v1"], "team/none": []}}})
            .to_string(),
    );
    let report_path = dir.path().join("report.json");
    let out = ocirelay(&[
        "sync",
        &config,
        &to.reference("mirror"),
        "--report",
        report_path.to_str().unwrap(),
    ]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr.contains("team/app:gone") && out.stderr.contains("team/none"),
        "{}",
        out.stderr
    );
    let report: Value = serde_json::from_slice(&std::fs::read(&report_path).unwrap()).unwrap();
    assert_eq!(report["totals"]["failed"], 2, "{report:#}");
    assert_eq!(report["totals"]["copied"], 1);
    let gone = &report["images"][0];
    assert_eq!(gone["outcome"], "failed");
    assert_eq!(gone["error"]["kind"], "not-found");
    assert_eq!(
        digest_at(&to.reference("mirror/app:v1")),
        Value::String(image.digest.to_string())
    );
}

#[test]
fn a_blob_given_up_after_its_read_frees_its_place_for_the_rest() {
    // A layer whose source answers another size than its manifest says:
    // its read is held to be sent on, then given up. At one request at a
    // time, its place must come back, or nothing else moves.
    let from = Registry::start_plain(Auth::None);
    let to = Registry::start(Auth::None);
    let bad = vec![7u8; 100_000];
    push_image(&from, "team/a", "v1", &[&bad]);
    let fine = push_image(&from, "team/b", "v1", &[b"a fine layer"]);
    let proxy = FaultProxy::start(from.host());
    let layer = Digest::sha256(&bad);
    let other = vec![8u8; bad.len() + 1];
    let headers = vec![
        ("Content-Length".into(), other.len().to_string()),
        ("Docker-Content-Digest".into(), layer.to_string()),
    ];
    let wrong_size = Fault::Serve(200, headers, other);
    proxy.add("GET", &format!("/blobs/{layer}"), wrong_size, usize::MAX);
    let dir = tempfile::tempdir().unwrap();
    let images = json!({proxy.host(): {"images": {"team/a": ["v1"], "team/b": ["v1"]}}});
    let config = write(dir.path(), "sync.json", &images.to_string());
    let mirror = to.reference("mirror");
    let out = ocirelay(&["sync", &config, &mirror, "--concurrency", "1"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr.contains("team/a:v1") && out.stderr.contains("its descriptor says 100000"),
        "{}",
        out.stderr
    );
    let copied = digest_at(&to.reference("mirror/b:v1"));
    assert_eq!(copied, Value::String(fine.digest.to_string()));
}

#[test]
fn bad_configs_exit_2_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("r.example:\n  imagez: {a/b: [v1]}\nocirelay: {destination: d.example}\n", "r.example.imagez"),
        ("r.example:\n  images: {a/b: [v1]}\nocirelay: {newest: 0, destination: d.example}\n", "ocirelay.newest"),
        ("r.example:\n  images-by-tag-regex: {a/b: '(open'}\nocirelay: {destination: d.example}\n", "images-by-tag-regex.a/b"),
        ("r.example:\n  images: {a/b: [v1]\n", "YAML"),
        ("r.example:\n  images: {a/b: [v1]}\n", "no destination"),
    ];
    for (i, (text, named)) in cases.iter().enumerate() {
        let config = write(dir.path(), &format!("bad{i}.yaml"), text);
        let out = ocirelay(&["sync", &config]);
        assert_eq!(out.code, 2, "{text}\n{}", out.stderr);
        assert!(out.stderr.contains(named), "{named}: {}", out.stderr);
    }
    let out = ocirelay(&["sync", "--shard", "3/3", "whatever.yaml", "d.example"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
}

#[test]
fn shards_together_sync_every_image_once() {
    let from = Registry::start(Auth::None);
    let to = Registry::start(Auth::None);
    let repos: Vec<String> = (0..6).map(|i| format!("team/app{i}")).collect();
    for repo in &repos {
        push_image(&from, repo, "v1", &[repo.as_bytes()]);
    }
    let images: serde_json::Map<String, Value> = repos
        .iter()
        .map(|r| (r.clone(), serde_json::json!(["v1"])))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let config = write(
        dir.path(),
        "sync.json",
        &serde_json::json!({from.host(): {"images": images}}).to_string(),
    );
    let mut copied = 0;
    let mut cost = (0, 0);
    for k in 0..3 {
        let shard = format!("{k}/3");
        let out = ocirelay(&[
            "sync",
            "--shard",
            &shard,
            &config,
            &to.reference("m"),
            "--report",
            "-",
        ])
        .success();
        let totals = &out.json()[0]["totals"];
        copied += totals["copied"].as_u64().unwrap();
        cost.0 += totals["requests"].as_u64().unwrap();
        cost.1 += totals["bytes-sent"].as_u64().unwrap();
    }
    assert_eq!(copied, 6);
    // The shards' reports add up to a single run's (into a fresh registry).
    let single = Registry::start(Auth::None);
    let dest = single.reference("m");
    let out = ocirelay(&["sync", &config, &dest, "--report", "-"]).success();
    let totals = &out.json()[0]["totals"];
    assert_eq!(totals["copied"], 6);
    assert_eq!(
        (totals["requests"].as_u64(), totals["bytes-sent"].as_u64()),
        (Some(cost.0), Some(cost.1))
    );
    let pushed = to
        .served(0)
        .iter()
        .filter(|(request, status)| {
            request.starts_with("PUT ") && request.contains("/manifests/v1 ") && *status == 201
        })
        .count();
    assert_eq!(pushed, 6, "each image pushed once across the shards");
}

#[test]
fn platforms_cut_an_index_to_one_of_its_own_and_a_rerun_finds_it() {
    use ocirelay_tests::fixtures::{push_platform_named_index, two_platforms};
    let from = Registry::start(Auth::None);
    let to = Registry::start(Auth::None);
    let ocirelay_tests::Pushed { index, images } =
        push_platform_named_index(&from, "team/multi", "v1", &two_platforms());
    let dir = tempfile::tempdir().unwrap();
    let config = write(
        dir.path(),
        "sync.yaml",
        &format!("{}:\n  images: {{team/multi: [v1]}}\n", from.host()),
    );
    let dest = to.reference("mirror");
    let sync_amd64 = || {
        let args = [
            "sync",
            &config,
            &dest,
            "--platform",
            "linux/amd64",
            "--report",
            "-",
        ];
        ocirelay(&args).success()
    };
    let out = sync_amd64();
    let report = &out.json()[0];
    assert_eq!(report["images"][0]["outcome"], "copied", "{report:#}");
    let cut = report["images"][0]["digest"].as_str().unwrap().to_string();
    assert_ne!(cut, index.digest.to_string(), "an index of its own");
    let there = ocirelay(&[
        "lookup",
        "--type",
        "manifest",
        &to.reference("mirror/multi:v1"),
    ])
    .success();
    let manifests = there.json()[0]["manifests"].as_array().unwrap().clone();
    assert_eq!(manifests.len(), 1);
    assert_eq!(manifests[0]["digest"], images[0].digest.to_string());
    assert_eq!(
        digest_at(&to.reference("mirror/multi:v1")),
        Value::String(cut.clone())
    );
    let absent = to.reference(&format!("mirror/multi@{}", images[1].digest));
    assert_eq!(
        digest_at(&absent),
        Value::Null,
        "the other platform stays behind"
    );

    let out = sync_amd64();
    assert_eq!(out.json()[0]["images"][0]["outcome"], "unchanged");
    assert_eq!(out.json()[0]["images"][0]["digest"], Value::String(cut));
    let bad = ocirelay(&["sync", &config, &dest, "--platform", "linux"]);
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    assert!(bad.stderr.contains("ocirelay.platforms"), "{}", bad.stderr);
}

#[test]
fn on_a_terminal_a_bar_keeps_the_totals_and_a_line_says_each_image() {
    let from = Registry::start(Auth::None);
    let to = Registry::start(Auth::None);
    for tag in ["v1", "v2", "v3"] {
        push_image(&from, "team/app", tag, &[tag.as_bytes()]);
    }
    let dir = tempfile::tempdir().unwrap();
    let config = write(
        dir.path(),
        "sync.yaml",
        &format!("{}:\n  images: {{team/app: []}}\n", from.host()),
    );
    // `script` gives the command a terminal, as a person's shell would.
    let command = format!(
        "{} --ca-file {} sync {config} {}",
        ocirelay_tests::cli::binary().display(),
        ocirelay_tests::tls::ca_file().display(),
        to.reference("mirror")
    );
    let out = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env("DOCKER_CONFIG", dir.path())
        .output()
        .expect("script runs (util-linux)");
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{shown}");
    for tag in ["v1", "v2", "v3"] {
        let line = format!("copied {}:{tag} -> ", from.reference("team/app"));
        assert!(shown.contains(&line), "{line}: {shown}");
    }
    assert!(shown.contains("in flight"), "the bar: {shown}");
    assert!(shown.contains("3 images: 3 copied"), "{shown}");
    assert!(
        !shown.contains("\"event\""),
        "JSON lines are read, not shown: {shown}"
    );
}

#[test]
fn ten_thousand_tags_are_listed_by_pages_and_the_newest_chosen() {
    let from = Registry::start(Auth::None);
    let to = Registry::start(Auth::None);
    let image = push_image(&from, "team/many", "1.0.0", &[b"many"]);
    // 9,999 more tags of the same image, written as distribution keeps
    // tags (a link per tag), rather than pushed one by one.
    let tags = from
        .storage()
        .join("docker/registry/v2/repositories/team/many/_manifests/tags");
    let link = format!("{}", image.digest);
    for i in 1..10_000 {
        let tag = tags.join(format!("1.0.{i}"));
        let index = tag.join(format!("index/sha256/{}", image.digest.hex()));
        std::fs::create_dir_all(tag.join("current")).unwrap();
        std::fs::create_dir_all(&index).unwrap();
        std::fs::write(tag.join("current/link"), &link).unwrap();
        std::fs::write(index.join("link"), &link).unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let config = write(
        dir.path(),
        "sync.yaml",
        &format!(
            "{}:\n  images-by-semver: {{team/many: '>= 1.0.0'}}\nocirelay: {{newest: 2}}\n",
            from.host()
        ),
    );
    let out = std::process::Command::new("/usr/bin/time")
        .args(["-f", "peak-rss-kib %M"])
        .arg(ocirelay_tests::cli::binary())
        .arg("--ca-file")
        .arg(ocirelay_tests::tls::ca_file())
        .args(["sync", &config, &to.reference("mirror"), "--report", "-"])
        .env("DOCKER_CONFIG", dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let synced: Vec<&str> = report["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["destination"].as_str().unwrap())
        .collect();
    let want = [
        to.reference("mirror/many:1.0.9999"),
        to.reference("mirror/many:1.0.9998"),
    ];
    assert_eq!(synced.len(), 2, "{report:#}");
    assert!(
        want.iter().all(|w| synced.contains(&w.as_str())),
        "{synced:?}"
    );
    // The list asked for in pages of 1,000 (distribution 2.8 answers with
    // all in one; the core's tests follow a registry's pages).
    let pages = from.requests_matching("GET", "/tags/list?n=1000");
    assert_eq!(pages, 1, "{:?}", from.access_log());
    let peak: u64 = stderr
        .lines()
        .find_map(|l| l.strip_prefix("peak-rss-kib "))
        .and_then(|v| v.trim().parse().ok())
        .expect("time's figure");
    assert!(peak < 256 * 1024, "peak RSS {peak} KiB");
}
