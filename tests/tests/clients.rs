//! Real pull clients through the edge mirror, under `ocirelay serve` and
//! stock `wasmtime serve`, in front of a registry whose name has a port:
//! skopeo (inspect with tags, list-tags, copy --all to an OCI layout),
//! containerd (a `hosts.toml` mirror, as the README writes it, also with
//! the server it would fall back to down) and podman (directly, and as a
//! `registries.conf` mirror, as the README writes it). Digests are
//! compared with what was pushed, and the registry's access log shows who
//! asked: every request comes from the mirror (its User-Agent), none from
//! the client going around it.

use ocirelay_tests::clients::{run, Containerd, Podman};
use ocirelay_tests::registry::free_port;
use ocirelay_tests::service::Service;
use ocirelay_tests::{two_platforms, Auth, Layout, Pushed, Registry};
use serde_json::json;

/// The mirror's own User-Agent, as the registry logs it.
const MIRROR_AGENT: &str = "ocirelay-service/";

/// A registry on 127.0.0.1:PORT with `team/app` tagged v1, v2 and 1.0
/// (one two-platform index whose layers unpack).
fn upstream() -> (Registry, Pushed) {
    let registry = Registry::start_plain(Auth::None);
    let mut layout = Layout::new();
    let pushed = layout.rootfs_index("v1", &two_platforms(), 4096);
    layout.push(&registry, "team/app", "v1");
    for tag in ["v2", "1.0"] {
        layout.tag(tag, &pushed.index);
        layout.push(&registry, "team/app", tag);
    }
    (registry, pushed)
}

fn config(registry: &Registry) -> serde_json::Value {
    json!({"upstreams": [{"registry": registry.host(), "repositories": ["team/*"]}]})
}

/// The service under both hosts.
fn both(config: &serde_json::Value) -> [(&'static str, Service); 2] {
    [
        ("ocirelay serve", Service::ocirelay(config)),
        ("wasmtime serve", Service::wasmtime(config)),
    ]
}

/// Requests the registry served since line `from` that did not come from
/// the mirror.
fn around_the_mirror(registry: &Registry, from: usize) -> Vec<String> {
    let log = registry.access_log();
    log.get(from..)
        .unwrap_or_default()
        .iter()
        .filter(|l| !l.contains(MIRROR_AGENT))
        .cloned()
        .collect()
}

#[test]
fn skopeo_inspects_lists_tags_and_copies_all_through_the_mirror() {
    let (registry, pushed) = upstream();
    let from = registry.access_log().len();
    for (host, service) in both(&config(&registry)) {
        let image = format!("docker://{}/team/app:v1", service.addr());
        let inspect = run("skopeo", &["inspect", "--tls-verify=false", &image], &[]);
        assert_eq!(inspect.code, 0, "{host}: {}", inspect.stderr);
        let v: serde_json::Value = serde_json::from_str(&inspect.stdout).unwrap();
        assert_eq!(
            v["Digest"],
            json!(pushed.index.digest.to_string()),
            "{host}"
        );
        let mut tags: Vec<String> = serde_json::from_value(v["RepoTags"].clone()).unwrap();
        tags.sort();
        assert_eq!(tags, ["1.0", "v1", "v2"], "{host}");

        let repo = format!("docker://{}/team/app", service.addr());
        let listed = run("skopeo", &["list-tags", "--tls-verify=false", &repo], &[]);
        assert_eq!(listed.code, 0, "{host}: {}", listed.stderr);
        assert!(
            listed.stdout.contains("\"1.0\""),
            "{host}: {}",
            listed.stdout
        );

        let dir = tempfile::tempdir().unwrap();
        let layout = format!("oci:{}:v1", dir.path().display());
        let copy = run(
            "skopeo",
            &[
                "copy",
                "--all",
                "--preserve-digests",
                "--src-tls-verify=false",
                &image,
                &layout,
            ],
            &[],
        );
        assert_eq!(copy.code, 0, "{host}: {}", copy.stderr);
        let index: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.path().join("index.json")).unwrap())
                .unwrap();
        assert_eq!(
            index["manifests"][0]["digest"],
            json!(pushed.index.digest.to_string()),
            "{host}"
        );
        for image in &pushed.images {
            let blob = dir.path().join("blobs/sha256").join(image.digest.hex());
            let bytes = std::fs::read(&blob).unwrap_or_else(|e| panic!("{host}: {e}"));
            assert_eq!(
                ocirelay_core::Digest::sha256(&bytes),
                image.digest,
                "{host}"
            );
        }
    }
    assert_eq!(around_the_mirror(&registry, from), Vec::<String>::new());
}

#[test]
fn containerd_pulls_through_a_hosts_toml_mirror_even_with_its_server_down() {
    let (registry, pushed) = upstream();
    let reference = registry.reference("team/app:v1");
    let dead = format!("127.0.0.1:{}", free_port());
    for (host, service) in both(&config(&registry)) {
        let containerd = Containerd::start();
        let unpack = containerd.can_unpack();
        if !unpack {
            eprintln!("{host}: this machine's containerd cannot unpack (no overlayfs snapshotter): content is fetched, not unpacked");
        }
        // As an operator writes it, then with the server it falls back to gone.
        for server in [registry.host().to_string(), dead.clone()] {
            let from = registry.access_log().len();
            let hosts = containerd.hosts_dir(registry.host(), &server, service.addr());
            let hosts = hosts.to_str().unwrap();
            // Every platform's content, then (where it can) the image
            // unpacked for this machine's platform, as a node pulls it.
            let mut pulls = vec![vec![
                "content",
                "fetch",
                "--hosts-dir",
                hosts,
                "--all-platforms",
                &reference,
            ]];
            if unpack {
                pulls.push(vec!["images", "pull", "--hosts-dir", hosts, &reference]);
            }
            for pull in pulls {
                let pulled = containerd.ctr(&pull);
                assert_eq!(
                    pulled.code,
                    0,
                    "{host}, server {server}, {pull:?}: {}{}\n{}",
                    pulled.stdout,
                    pulled.stderr,
                    containerd.log()
                );
            }
            let content = containerd.ctr(&["content", "ls", "-q"]).stdout;
            for image in &pushed.images {
                assert!(
                    content.contains(&image.digest.to_string()),
                    "{host}: {content}"
                );
            }
            if unpack {
                let images = containerd.ctr(&["images", "ls"]).stdout;
                assert!(
                    images.contains(&pushed.index.digest.to_string()),
                    "{host}: {images}"
                );
                let check = containerd.ctr(&["images", "check"]).stdout;
                assert!(
                    check.contains("complete (") && !check.contains("incomplete"),
                    "{host}: {check}"
                );
                let snapshots = containerd.ctr(&["snapshots", "ls"]).stdout;
                assert!(
                    snapshots.contains("Committed"),
                    "{host}: unpacked: {snapshots}"
                );
            }
            assert_eq!(
                around_the_mirror(&registry, from),
                Vec::<String>::new(),
                "{host}"
            );
            if host == "ocirelay serve" {
                // containerd names the upstream, its port's colon escaped.
                let ns = format!("ns={}", registry.host().replace(':', "%3A"));
                let log = service.log();
                let through = log
                    .lines()
                    .filter(|l| l.contains(&ns) && l.contains("status=200"));
                assert!(through.count() >= 5, "{host}: {log}");
            }
            // Again from nothing: the next pull goes to the mirror again.
            if unpack {
                containerd.ctr(&["images", "rm", &reference]);
            }
            containerd.ctr(&["content", "prune", "references"]);
            for image in &pushed.images {
                containerd.ctr(&["content", "rm", &image.digest.to_string()]);
            }
        }
    }
}

#[test]
fn podman_pulls_directly_and_through_a_registries_conf_mirror() {
    let (registry, pushed) = upstream();
    for (host, service) in both(&config(&registry)) {
        let from = registry.access_log().len();
        // Pulled, and stored under the index's digest.
        let pulls = |podman: &Podman, reference: &str, extra: &[&str]| {
            let pulled = podman.pull(reference, extra);
            assert_eq!(pulled.code, 0, "{host}: {}", pulled.stderr);
            let digest = podman.run(&["image", "inspect", "--format", "{{.Digest}}", reference]);
            let index = pushed.index.digest.to_string();
            assert_eq!(digest.stdout.trim(), index, "{host}");
        };
        let direct = format!("{}/team/app:v1", service.addr());
        pulls(&Podman::new(), &direct, &["--tls-verify=false"]);
        let mirrored = Podman::with_mirror(registry.host(), service.addr());
        pulls(&mirrored, &registry.reference("team/app:v1"), &[]);
        assert_eq!(
            around_the_mirror(&registry, from),
            Vec::<String>::new(),
            "{host}"
        );
    }
}
