//! Sync between scripted registries: tags selected (listed, by pattern),
//! what is there already costs a HEAD at each end, what changed is copied,
//! a failure is reported and the rest goes on, shards split repositories.

use ocirelay_core::http::Method;
use ocirelay_core::media_type::OCI_MANIFEST;
use ocirelay_core::ops::sync::{Sync, SyncOptions, SyncResult, Traffic};
use ocirelay_core::ops::sync_image::Synced;
use ocirelay_core::sync::SyncConfig;
use ocirelay_core::Digest;
use serde_json::json;

mod common;
use common::{client, drive, World};

const SRC: &str = "src.example:5000";
const DST: &str = "dst.example:5000";

/// An image of one layer of `content` in `repo` at the source, tagged.
fn image(world: &mut World, repo: &str, tag: &str, content: &[u8]) -> Digest {
    let src = world.reg(SRC);
    let config = src.put(repo, "application/vnd.oci.image.config.v1+json", b"{}");
    let layer = src.put(repo, "application/octet-stream", content);
    let manifest = json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": 2},
        "layers": [{"mediaType": "application/octet-stream", "digest": layer, "size": content.len()}],
    });
    let digest = src.put(repo, OCI_MANIFEST, manifest.to_string().as_bytes());
    src.tag(repo, tag, &digest);
    digest
}

fn sync(
    world: &mut World,
    config: serde_json::Value,
    options: SyncOptions,
) -> (Vec<SyncResult>, Vec<ocirelay_core::http::Request>) {
    let mut c = client(&[]);
    let config = SyncConfig::parse(&config.to_string()).unwrap();
    let options = SyncOptions {
        destination: Some(format!("{DST}/mirror")),
        ..options
    };
    let mut op = Sync::new(&c, config, options).unwrap();
    let (done, sent) = drive(&mut c, &mut op, |req| world.serve(req));
    done.unwrap();
    (op.into_results(), sent)
}

fn outcome(r: &SyncResult) -> String {
    match &r.outcome {
        Ok((Synced::Copied(_), _)) => "copied".into(),
        Ok((Synced::Unchanged(_), _)) => "unchanged".into(),
        Ok((Synced::WouldCopy(_), _)) => "would-copy".into(),
        Err(e) => format!("failed: {e}"),
    }
}

#[test]
fn listed_and_matched_tags_are_copied_then_a_rerun_heads_only() {
    let mut world = World::default();
    let v1 = image(&mut world, "team/app", "v1", b"one");
    image(&mut world, "team/app", "v2", b"two");
    image(&mut world, "team/tool", "1.0.0", b"tool 1");
    image(&mut world, "team/tool", "1.1.0", b"tool 1.1");
    image(&mut world, "team/tool", "2.0.0-rc1", b"tool 2 rc");
    let config = json!({SRC: {
        "images": {"team/app": ["v1", "v2"]},
        "images-by-tag-regex": {"team/tool": "^1\\."},
    }});
    let (results, sent) = sync(&mut world, config.clone(), SyncOptions::default());
    let said: Vec<(String, String)> = results
        .iter()
        .map(|r| (r.destination.as_ref().unwrap().to_string(), outcome(r)))
        .collect();
    assert_eq!(
        said,
        [
            (format!("{DST}/mirror/app:v1"), "copied".into()),
            (format!("{DST}/mirror/app:v2"), "copied".into()),
            (format!("{DST}/mirror/tool:1.0.0"), "copied".into()),
            (format!("{DST}/mirror/tool:1.1.0"), "copied".into()),
        ]
    );
    assert!(world.reg(DST).tagged("mirror/app", "v1", &v1));
    assert!(sent.iter().any(|r| r.method == Method::Put));
    // What each image cost: every request but the tag list is an image's,
    // and the bytes are its config (2), its layer and its manifest, twice
    // (pushed first as if its children were there; refused; pushed again).
    let counted: u64 = results.iter().map(|r| r.traffic.requests).sum();
    assert_eq!(counted as usize, sent.len() - 1);
    let manifest_size = world.reg(SRC).tagged_bytes("team/app", "v1").unwrap().len() as u64;
    assert_eq!(results[0].traffic.bytes_sent, 2 + 3 + 2 * manifest_size);

    // Again: a HEAD at each end per image, and the tag list.
    let (results, sent) = sync(&mut world, config, SyncOptions::default());
    assert!(
        results.iter().all(|r| outcome(r) == "unchanged"),
        "{results:?}"
    );
    let gets: Vec<&str> = sent
        .iter()
        .filter(|r| r.method != Method::Head)
        .map(|r| r.url.path_and_query.as_str())
        .collect();
    assert_eq!(gets, ["/v2/team/tool/tags/list?n=1000"]);
    assert_eq!(sent.iter().filter(|r| r.method == Method::Head).count(), 8);
    assert!(results.iter().all(|r| r.traffic
        == Traffic {
            requests: 2,
            bytes_sent: 0
        }));
}

#[test]
fn a_failure_is_reported_and_the_rest_goes_on() {
    let mut world = World::default();
    image(&mut world, "team/app", "v1", b"one");
    let config = json!({SRC: {
        "images": {"team/app": ["gone", "v1"], "team/none": []},
    }});
    let (results, _) = sync(&mut world, config, SyncOptions::default());
    let said: Vec<String> = results.iter().map(outcome).collect();
    assert_eq!(said.len(), 3, "{said:?}");
    assert!(
        said[0].contains("not found") && said[0].contains("team/app:gone"),
        "{said:?}"
    );
    assert_eq!(said[1], "copied");
    assert!(said[2].contains("team/none"), "{said:?}");
}

#[test]
fn a_dry_run_looks_only_and_shards_split_the_repositories() {
    let mut world = World::default();
    for i in 0..12 {
        image(
            &mut world,
            &format!("team/app{i}"),
            "v1",
            format!("image {i}").as_bytes(),
        );
    }
    let images: serde_json::Map<String, serde_json::Value> = (0..12)
        .map(|i| (format!("team/app{i}"), json!(["v1"])))
        .collect();
    let config = json!({SRC: {"images": images}});
    let dry = SyncOptions {
        dry_run: true,
        ..SyncOptions::default()
    };
    let (results, sent) = sync(&mut world, config.clone(), dry);
    assert!(results.iter().all(|r| outcome(r) == "would-copy"));
    assert!(sent.iter().all(|r| r.method == Method::Head));
    let mut seen = Vec::new();
    for k in 0..3 {
        let shard = SyncOptions {
            shard: Some((k, 3)),
            ..SyncOptions::default()
        };
        let (results, _) = sync(&mut world, config.clone(), shard);
        seen.extend(results.iter().map(|r| r.source.to_string()));
    }
    seen.sort();
    let all: Vec<String> = {
        let mut v: Vec<String> = (0..12).map(|i| format!("{SRC}/team/app{i}:v1")).collect();
        v.sort();
        v
    };
    assert_eq!(seen, all, "every repository in exactly one shard");
}

#[test]
fn bad_configs_name_the_field() {
    let bad = |config: serde_json::Value| {
        SyncConfig::parse(&config.to_string())
            .unwrap_err()
            .to_string()
    };
    let e = bad(json!({SRC: {"images-by-tag-regex": {"team/app": "(unclosed"}}}));
    assert!(
        e.contains(&format!("{SRC}.images-by-tag-regex.team/app")),
        "{e}"
    );
    let e = bad(json!({SRC: {"images": {"team/app": ["no tag!"]}}}));
    assert!(e.contains(&format!("{SRC}.images.team/app[0]")), "{e}");
    let e = bad(json!({SRC: {"imagez": {}}}));
    assert!(e.contains(SRC) && e.contains("imagez"), "{e}");
    let e = bad(json!({SRC: {"images": {"team/app": []}}, "ocirelay": {"newest": 0}}));
    assert!(e.contains("ocirelay.newest"), "{e}");
    let e = bad(json!({"notahost": {"images": {"team/app": []}}}));
    assert!(e.contains("notahost"), "{e}");
    let e = bad(json!({SRC: {"images-by-semver": {"team/app": "not a range"}}}));
    assert!(e.contains("images-by-semver.team/app"), "{e}");
    let c = SyncConfig::parse(&json!({SRC: {"images": {"a/b": []}}}).to_string()).unwrap();
    let client = client(&[]);
    let none = Sync::new(&client, c.clone(), SyncOptions::default()).unwrap_err();
    assert!(none.to_string().contains("no destination"), "{none}");
    let shard = SyncOptions {
        destination: Some(DST.into()),
        shard: Some((3, 3)),
        ..SyncOptions::default()
    };
    assert!(Sync::new(&client, c, shard).is_err());
}
