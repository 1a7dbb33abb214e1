//! The mirror as operators run it, under `ocirelay serve` and stock
//! `wasmtime serve`: tag lists page by page (the next page's `Link` on the
//! mirror's own path), ranged blob reads that resume a pull, the request
//! log, and what a hostile or missing upstream gets answered with. Also
//! `ocirelay tags`, which reads every page of a registry's list.

use std::process::Command;

use ocirelay_core::Digest;
use ocirelay_tests::cli::{binary, cache_dir, ocirelay};
use ocirelay_tests::fault_proxy::{Fault, FaultProxy};
use ocirelay_tests::service::Service;
use ocirelay_tests::{push_image, Auth, Registry};
use serde_json::json;

fn config_for(registry: &str) -> serde_json::Value {
    json!({"upstreams": [{"registry": registry, "repositories": ["team/*"]}]})
}

/// A page of tags, as a registry answers it, with a `Link` to `next`.
fn page(tags: &[&str], next: Option<&str>) -> Fault {
    let mut headers = vec![("Content-Type".to_string(), "application/json".to_string())];
    if let Some(next) = next {
        headers.push(("Link".to_string(), format!("<{next}>; rel=\"next\"")));
    }
    let body = json!({"name": "team/app", "tags": tags}).to_string();
    Fault::Serve(200, headers, body.into_bytes())
}

#[test]
fn tag_lists_page_through_the_mirror_on_its_own_links() {
    let registry = Registry::start_plain(Auth::None);
    push_image(&registry, "team/app", "v1", &[b"tagged"]);
    let proxy = FaultProxy::start(registry.host());
    let config = config_for(&proxy.host());
    let ns = format!("ns={}", proxy.host().replace(':', "%3A"));
    for service in [Service::ocirelay(&config), Service::wasmtime(&config)] {
        // The upstream pages two at a time; the later rule first (both match).
        proxy.add("GET", "last=b", page(&["c"], None), 1);
        let next = "/v2/team/app/tags/list?n=2&last=b";
        proxy.add("GET", "tags/list?n=2", page(&["a", "b"], Some(next)), 1);
        let first = service.get(&format!("/v2/team/app/tags/list?n=2&{ns}"));
        assert_eq!(first.status, 200, "{first:?}");
        assert_eq!(
            first.json(),
            json!({"name": "team/app", "tags": ["a", "b"]})
        );
        let link = format!("</v2/team/app/tags/list?n=2&last=b&{ns}>; rel=\"next\"");
        assert_eq!(first.header("link"), Some(link.as_str()));
        assert_eq!(
            first.header("docker-distribution-api-version"),
            Some("registry/2.0")
        );
        assert!(first.header("cache-control").unwrap().contains("max-age="));
        let second = service.get(&link[1..link.find('>').unwrap()]);
        assert_eq!(second.json(), json!({"name": "team/app", "tags": ["c"]}));
        assert_eq!(second.header("link"), None);

        // The real registry's list (one page), under the name as asked.
        let real = service.get("/v2/team/app/tags/list");
        assert_eq!(real.json(), json!({"name": "team/app", "tags": ["v1"]}));

        let empty = service.get("/v2/team/app/tags/list?n=0");
        assert_eq!(empty.json(), json!({"name": "team/app", "tags": []}));
        let negative = service.get("/v2/team/app/tags/list?n=-1");
        assert_eq!(negative.status, 400, "{negative:?}");
        assert_eq!(
            negative.json()["errors"][0]["code"],
            "PAGINATION_NUMBER_INVALID"
        );
        let escaped = service.get("/v2/team/app/tags/list?last=v1%2Bbuild%3A1");
        assert_eq!(escaped.status, 200, "{escaped:?}");
        let unknown = service.get("/v2/team/nothing/tags/list");
        assert_eq!(unknown.status, 404, "{unknown:?}");
        assert_eq!(unknown.json()["errors"][0]["code"], "NAME_UNKNOWN");
        let outside = service.get("/v2/other/app/tags/list");
        assert_eq!(outside.status, 403, "{outside:?}");
        assert_eq!(outside.json()["errors"][0]["code"], "DENIED");
        let bad = service.get("/v2/team/app/tags/list?last=%zz");
        assert_eq!(bad.status, 400, "{bad:?}");
        assert!(
            String::from_utf8_lossy(&bad.body).contains("\\\"last\\\""),
            "{bad:?}"
        );
    }
    // What went upstream: the pages as asked, `last` escaped again; n=0 never.
    let asked = proxy.requests("GET", "tags/list");
    assert_eq!(
        asked.iter().filter(|l| l.contains("?n=2&last=b ")).count(),
        2,
        "{asked:#?}"
    );
    assert_eq!(
        asked
            .iter()
            .filter(|l| l.contains("last=v1%2Bbuild%3A1"))
            .count(),
        2,
        "{asked:#?}"
    );
    assert!(!asked.iter().any(|l| l.contains("n=0")), "{asked:#?}");
}

/// `ocirelay tags ARGS` through a shell pipeline `| PIPE`: exit status of
/// the pipeline's last command, stdout, and stderr (which ends with
/// `ocirelay exit N`).
fn tags_piped(args: &str, pipe: &str) -> (i32, String, String) {
    let empty = tempfile::tempdir().unwrap();
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "{{ \"$OCIRELAY\" tags {args}; echo \"ocirelay exit $?\" >&2; }} | {pipe}"
        ))
        .env("OCIRELAY", binary())
        .env("OCIRELAY_CACHE_DIR", cache_dir())
        .env("DOCKER_CONFIG", empty.path())
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn ocirelay_tags_reads_every_page_and_stops_on_a_hostile_list() {
    let registry = Registry::start_plain(Auth::None);
    push_image(&registry, "team/app", "v1", &[b"one"]);
    push_image(&registry, "team/app", "v2", &[b"two"]);
    let repo = registry.reference("team/app");
    let out = ocirelay(&["tags", &repo]).success();
    let mut lines: Vec<&str> = out.stdout.lines().collect();
    lines.sort();
    assert_eq!(lines, ["v1", "v2"]);
    let out = ocirelay(&["tags", "--json", &repo]).success();
    let v = &out.json()[0];
    assert_eq!(v["name"], json!(repo));
    assert_eq!(v["tags"].as_array().map(Vec::len), Some(2));
    let missing = registry.reference("team/none");
    let out = ocirelay(&["tags", &missing]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("no such repository") && out.stderr.contains("team/none"),
        "{out:?}"
    );
    assert_eq!(
        ocirelay(&["tags", "--json", &missing]).success().stdout,
        "null\n"
    );
    let out = ocirelay(&["tags", &registry.reference("team/app:v1")]);
    assert_eq!(out.code, 2, "{out:?}");

    let proxy = FaultProxy::start(registry.host());
    let repo = format!("{}/team/app", proxy.host());
    proxy.add("GET", "last=b", page(&["c"], None), 1);
    proxy.add(
        "GET",
        "tags/list?n=2",
        page(&["a", "b"], Some("/v2/team/app/tags/list?n=2&last=b")),
        1,
    );
    let out = ocirelay(&["tags", "--page-size", "2", &repo]).success();
    assert_eq!(out.stdout, "a\nb\nc\n");

    // A list that loops, or leads elsewhere: an error naming it, exit 1.
    proxy.add(
        "GET",
        "tags/list",
        page(&["a"], Some("/v2/team/app/tags/list")),
        1,
    );
    let out = ocirelay(&["tags", &repo]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("already read"), "{out:?}");
    proxy.add(
        "GET",
        "tags/list",
        page(
            &["a"],
            Some("http://127.0.0.9:1/v2/team/app/tags/list?last=a"),
        ),
        1,
    );
    let out = ocirelay(&["tags", &repo]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("another origin"), "{out:?}");

    // 100,000 tags in one page: all of them, and `| head` stays quiet.
    let many: Vec<String> = (0..100_000).map(|i| format!("t{i:06}")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    proxy.add("GET", "tags/list", page(&many, None), 2);
    let (code, stdout, stderr) = tags_piped(&repo, "wc -l");
    assert_eq!(
        (code, stdout.trim(), stderr.as_str()),
        (0, "100000", "ocirelay exit 0\n")
    );
    // `head` leaves after a line: ocirelay stops without a word.
    let (code, stdout, stderr) = tags_piped(&repo, "head -n 1");
    assert_eq!((code, stdout.as_str()), (0, "t000000\n"), "{stderr}");
    assert_eq!(stderr, "ocirelay exit 0\n");
}

/// `curl ARGS URL` to `file`; its exit status.
fn curl(args: &[&str], url: &str, file: &std::path::Path) -> i32 {
    let out = Command::new("curl")
        .args(["-s", "-o"])
        .arg(file)
        .args(args)
        .arg(url)
        .output()
        .expect("curl");
    out.status.code().unwrap_or(-1)
}

#[test]
fn ranged_reads_resume_a_pull_and_say_what_they_are() {
    let registry = Registry::start_plain(Auth::None);
    // Over the 4 MiB the registry component reads whole: streamed.
    let large = ocirelay_tests::bytes(11, 5 * 1024 * 1024 + 17);
    let digest = Digest::sha256(&large);
    let image = push_image(&registry, "team/app", "v1", &[&large]);
    let config = config_for(registry.host());
    for service in [Service::ocirelay(&config), Service::wasmtime(&config)] {
        let path = format!("/v2/team/app/blobs/{digest}");
        let url = format!("http://{}{path}", service.addr());
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("layer");
        // A pull cut off after 1 MiB, then resumed where it stopped.
        assert_eq!(curl(&["-r", "0-1048575"], &url, &file), 0);
        assert_eq!(std::fs::metadata(&file).unwrap().len(), 1 << 20);
        assert_eq!(curl(&["-C", "-", "-f"], &url, &file), 0);
        let assembled = std::fs::read(&file).unwrap();
        assert_eq!(
            Digest::sha256(&assembled),
            digest,
            "the resumed pull is the blob"
        );

        let head = service.request("HEAD", &path, &[]);
        assert_eq!(head.header("accept-ranges"), Some("bytes"), "{head:?}");
        let size = large.len();
        let tail = service.request("GET", &path, &[("Range", "bytes=-100")]);
        assert_eq!(tail.status, 206, "{tail:?}");
        assert_eq!(tail.body, &large[size - 100..]);
        let range = format!("bytes {}-{}/{size}", size - 100, size - 1);
        assert_eq!(tail.header("content-range"), Some(range.as_str()));
        assert_eq!(tail.header("cache-control"), Some("no-store"));
        let whole = service.request("GET", &path, &[("Range", "bytes=0-")]);
        assert_eq!((whole.status, whole.body.len()), (206, size));
        let past = service.request("GET", &path, &[("Range", &format!("bytes={size}-"))]);
        assert_eq!(past.status, 416, "{past:?}");
        assert_eq!(
            past.header("content-range"),
            Some(format!("bytes */{size}").as_str())
        );
        // Several ranges, or an If-Range naming other content: the whole.
        let several = service.request("GET", &path, &[("Range", "bytes=0-1,5-9")]);
        assert_eq!((several.status, several.body.len()), (200, size));
        let other = [("Range", "bytes=5-"), ("If-Range", "\"sha256:other\"")];
        assert_eq!(service.request("GET", &path, &other).status, 200);
        let same = [
            ("Range", "bytes=5-9"),
            ("If-Range", &format!("\"{digest}\"")),
        ];
        assert_eq!(service.request("GET", &path, &same).body, &large[5..10]);
        // A manifest is answered whole.
        let manifest = format!("/v2/team/app/manifests/{}", image.digest);
        let m = service.request("GET", &manifest, &[("Range", "bytes=0-1")]);
        assert_eq!((m.status, m.header("content-range")), (200, None), "{m:?}");
        assert_eq!(m.body.len() as u64, image.size);
    }
    // A range over the whole blob is checked as a whole read: corrupted,
    // it never arrives whole.
    registry.corrupt_blob(&digest, large.len() - 5);
    for service in [Service::ocirelay(&config), Service::wasmtime(&config)] {
        let path = format!("/v2/team/app/blobs/{digest}");
        let cut = service.request("GET", &path, &[("Range", "bytes=0-")]);
        assert!(
            !cut.complete || cut.body.len() < large.len(),
            "{} bytes",
            cut.body.len()
        );
    }
}

/// The request log's JSON lines.
fn json_lines(log: &str) -> Vec<serde_json::Value> {
    log.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

#[test]
fn the_request_log_says_what_each_request_cost_and_what_went_wrong() {
    let registry = Registry::start_plain(Auth::None);
    let large = ocirelay_tests::bytes(12, 5 * 1024 * 1024);
    let image = push_image(&registry, "team/app", "v1", &[&large]);
    let layer = Digest::sha256(&large);
    let config = config_for(registry.host());
    let service = Service::ocirelay_args(&config, &["--log-format", "json"]);

    assert_eq!(service.get("/v2/team/app/manifests/v1").status, 200);
    let etag = format!("\"{}\"", image.digest);
    let by_digest = format!("/v2/team/app/manifests/{}", image.digest);
    let cached = service.request("GET", &by_digest, &[("If-None-Match", &etag)]);
    assert_eq!(cached.status, 304);
    registry.corrupt_blob(&layer, large.len() - 3);
    let cut = service.get(&format!("/v2/team/app/blobs/{layer}"));
    assert!(!cut.complete || cut.body.len() < large.len());
    // The line of an answer is written once its last byte went out.
    std::thread::sleep(std::time::Duration::from_millis(300));
    let lines = json_lines(&service.log());
    assert_eq!(lines.len(), 3, "{lines:#?}");

    let tag = &lines[0];
    assert_eq!(
        (tag["method"].as_str(), tag["status"].as_u64()),
        (Some("GET"), Some(200))
    );
    assert_eq!(tag["path"], "/v2/team/app/manifests/v1");
    assert_eq!(tag["bytes"].as_u64(), Some(image.size));
    assert_eq!(tag["level"], "info");
    assert!(tag["duration_ms"].is_u64());
    let calls: Vec<(String, u64)> = tag["upstream"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["method"].as_str().unwrap().to_string(),
                c["status"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(calls, [("HEAD".to_string(), 200), ("GET".to_string(), 200)]);
    assert_eq!(tag["upstream"][0]["host"], json!(registry.host()));

    let not_modified = &lines[1];
    assert_eq!(not_modified["status"], 304);
    assert_eq!(
        not_modified["upstream"],
        json!([]),
        "answered without asking upstream"
    );

    let warned = &lines[2];
    assert_eq!(
        (warned["status"].as_u64(), warned["level"].as_str()),
        (Some(200), Some("warn"))
    );
    assert_eq!(warned["complete"], false);
    let warning = warned["warnings"][0].as_str().unwrap_or_default();
    let named = format!("{}/team/app@{layer}", registry.host());
    assert!(
        warning.contains(&named) && warning.contains("does not match"),
        "{warning}"
    );

    // The text log says the same as key=value pairs; under stock hosts the
    // component's warning goes to the host's stderr.
    let text = Service::ocirelay(&config);
    let wasmtime = Service::wasmtime(&config);
    for service in [&text, &wasmtime] {
        let cut = service.get(&format!("/v2/team/app/blobs/{layer}"));
        assert!(!cut.complete || cut.body.len() < large.len());
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    let line = text.log();
    assert!(
        line.starts_with("level=warn method=GET path=/v2/team/app/blobs/")
            && line.contains(" status=200 ")
            && line.contains(&format!("upstream=GET:{}:200", registry.host()))
            && line.contains("cut_short=true")
            && line.contains(&named),
        "{line}"
    );
    let stderr = wasmtime.log();
    assert!(
        stderr.contains("ocirelay-service: answer cut short: ") && stderr.contains(&named),
        "{stderr}"
    );
}

#[test]
fn tag_lists_and_ranges_come_from_an_https_upstream_too() {
    let registry = Registry::start(Auth::None);
    let large = ocirelay_tests::bytes(13, 5 * 1024 * 1024);
    push_image(&registry, "team/app", "v1", &[&large]);
    push_image(&registry, "team/app", "v2", &[b"two"]);
    let digest = Digest::sha256(&large);
    // Under our host, which trusts the tests' CA (`--ca-file`).
    let service = Service::ocirelay(&config_for(registry.host()));
    let tags = service.get("/v2/team/app/tags/list");
    let mut listed: Vec<String> = serde_json::from_value(tags.json()["tags"].clone()).unwrap();
    listed.sort();
    assert_eq!(listed, ["v1", "v2"]);
    let part = service.request(
        "GET",
        &format!("/v2/team/app/blobs/{digest}"),
        &[("Range", "bytes=1000-1999")],
    );
    assert_eq!(
        (part.status, part.body.as_slice()),
        (206, &large[1000..2000])
    );
    // And `ocirelay tags` straight from it.
    let out = ocirelay(&["tags", &registry.reference("team/app")]).success();
    assert_eq!(out.stdout.lines().count(), 2, "{}", out.stdout);
}

#[test]
fn past_its_instances_ocirelay_serve_answers_503_with_retry_after() {
    let registry = Registry::start_plain(Auth::None);
    push_image(&registry, "team/app", "v1", &[b"slow"]);
    let proxy = FaultProxy::start(registry.host());
    let slow = std::time::Duration::from_secs(4);
    proxy.add("HEAD", "manifests/v1", Fault::Delay(slow), 2);
    let args = ["--instances", "2", "--queue-wait", "1"];
    let service = Service::ocirelay_args(&config_for(&proxy.host()), &args);
    let answers: Vec<_> = std::thread::scope(|s| {
        let asked: Vec<_> = (0..3)
            .map(|i| {
                let service = &service;
                s.spawn(move || {
                    // The third asks once two are in flight upstream.
                    std::thread::sleep(std::time::Duration::from_millis(300 * i));
                    service.get("/v2/team/app/manifests/v1")
                })
            })
            .collect();
        asked.into_iter().map(|t| t.join().unwrap()).collect()
    });
    let statuses: Vec<u16> = answers.iter().map(|a| a.status).collect();
    assert_eq!(statuses, [200, 200, 503], "{answers:?}");
    let busy = &answers[2];
    assert_eq!(busy.header("retry-after"), Some("1"));
    assert_eq!(busy.json()["errors"][0]["code"], "UNAVAILABLE");
    assert!(
        String::from_utf8_lossy(&busy.body).contains("at capacity (2 requests"),
        "{busy:?}"
    );
    assert_eq!(
        busy.header("docker-distribution-api-version"),
        Some("registry/2.0")
    );
    // Once they are done, it serves again.
    assert_eq!(service.get("/v2/team/app/manifests/v1").status, 200);
}

#[test]
fn an_upstream_that_is_gone_is_a_502_naming_the_reference_not_a_url() {
    let registry = Registry::start_plain(Auth::None);
    let host = registry.host().to_string();
    drop(registry);
    let config = config_for(&host);
    for service in [Service::ocirelay(&config), Service::wasmtime(&config)] {
        for path in ["/v2/team/app/manifests/v1", "/v2/team/app/tags/list"] {
            let gone = service.get(path);
            assert_eq!(gone.status, 502, "{gone:?}");
            let body = String::from_utf8_lossy(&gone.body);
            assert!(body.contains(&host), "{body}");
            assert!(
                !body.contains("http://") && !body.contains("backtrace"),
                "{body}"
            );
            assert_eq!(
                gone.header("docker-distribution-api-version"),
                Some("registry/2.0")
            );
        }
    }
}
