//! OCI image layouts (`oci:DIR[:TAG]`) as places to copy and sync from
//! and to, beside real registries (distribution over HTTPS) and skopeo,
//! which must read what ocirelay writes and the other way round; bad
//! layouts stop a command before anything is written, and a write that
//! fails leaves nothing under a digest.

use std::path::Path;
use std::process::Command;

use ocirelay_tests::cli::{binary, ocirelay};
use ocirelay_tests::{push_image, push_index, two_platforms, Auth, Flavour, Registry};
use serde_json::Value;

/// `oci:DIR:TAG` of `dir`.
fn oci(dir: &Path, tag: &str) -> String {
    format!("oci:{}:{tag}", dir.display())
}

/// The digest `reference` holds, or null.
fn digest_at(reference: &str) -> Value {
    ocirelay(&["lookup", "--head", reference]).success().json()[0]["digest"].clone()
}

/// The layout's `index.json`.
fn index_of(dir: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(dir.join("index.json")).expect("index.json"))
        .expect("index.json is JSON")
}

/// The names `index.json` gives, in order.
fn names(dir: &Path) -> Vec<String> {
    index_of(dir)["manifests"]
        .as_array()
        .expect("manifests")
        .iter()
        .filter_map(|m| m["annotations"]["org.opencontainers.image.ref.name"].as_str())
        .map(str::to_string)
        .collect()
}

/// Files under `dir` (recursively) whose names start with a dot: parts
/// left behind.
fn leftovers(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(leftovers(&path));
        } else if entry.file_name().to_string_lossy().starts_with('.') {
            found.push(path.display().to_string());
        }
    }
    found
}

/// Runs skopeo with `args`, the tests' registries trusted without checks.
fn skopeo(args: &[&str]) -> String {
    let out = Command::new("skopeo")
        .args(args)
        .output()
        .expect("skopeo runs (scripts/setup installs it)");
    assert!(
        out.status.success(),
        "skopeo {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn an_index_goes_to_a_layout_skopeo_reads_and_back_unchanged() {
    let from = Registry::start(Auth::None);
    let to = Registry::start(Auth::None);
    let pushed = push_index(&from, "team/app", "v1", Flavour::Oci, &two_platforms());
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("app");

    // Into a layout that does not exist yet: SRC's tag names it there.
    let out = ocirelay(&[
        "copy",
        &from.reference("team/app:v1"),
        &format!("oci:{}", layout.display()),
    ]);
    let copied = out.success().json()[0].clone();
    assert_eq!(copied["digest"], pushed.index.digest.to_string());
    assert_eq!(names(&layout), vec!["v1"]);
    assert!(leftovers(&layout).is_empty(), "{:?}", leftovers(&layout));
    let marker = std::fs::read_to_string(layout.join("oci-layout")).unwrap();
    assert!(marker.contains("imageLayoutVersion"), "{marker}");

    // skopeo reads it: the same index, and each image.
    let raw = skopeo(&["inspect", "--raw", &oci(&layout, "v1")]);
    assert_eq!(
        ocirelay_core::Digest::sha256(raw.as_bytes()),
        pushed.index.digest
    );
    skopeo(&[
        "copy",
        "--all",
        "--preserve-digests",
        "-q",
        "--dest-tls-verify=false",
        &oci(&layout, "v1"),
        &format!("docker://{}", to.reference("by/skopeo:v1")),
    ]);
    assert_eq!(
        digest_at(&to.reference("by/skopeo:v1")),
        Value::String(pushed.index.digest.to_string())
    );

    // And back from the layout to a registry.
    let out = ocirelay(&["copy", &oci(&layout, "v1"), &to.reference("back/app:v1")]).success();
    assert_eq!(out.json()[0]["digest"], pushed.index.digest.to_string());
    assert_eq!(
        digest_at(&to.reference("back/app:v1")),
        Value::String(pushed.index.digest.to_string())
    );

    // Again: nothing is written, and the index is the same file.
    let before = std::fs::read(layout.join("index.json")).unwrap();
    ocirelay(&["copy", &from.reference("team/app:v1"), &oci(&layout, "v1")]).success();
    assert_eq!(std::fs::read(layout.join("index.json")).unwrap(), before);

    // A second name, and the layout's tags as a registry lists them.
    let out = ocirelay(&["copy", &from.reference("team/app:v1"), &oci(&layout, "v2")]).success();
    assert!(
        out.stderr.is_empty() || !out.stderr.contains(".invalid"),
        "{}",
        out.stderr
    );
    assert_eq!(names(&layout), vec!["v1", "v2"]);
    let dir_arg = format!("oci:{}", layout.display());
    let out = ocirelay(&["tags", &dir_arg]).success();
    assert_eq!(out.stdout, "v1\nv2\n");
    let out = ocirelay(&["tags", "--json", &dir_arg]).success();
    assert_eq!(out.json()[0]["name"], dir_arg.as_str());
}

#[test]
fn a_layout_skopeo_wrote_is_read() {
    let from = Registry::start(Auth::None);
    let to = Registry::start(Auth::None);
    let image = push_image(&from, "team/tool", "1.0", &[b"one", b"two"]);
    let dir = tempfile::tempdir().unwrap();
    skopeo(&[
        "copy",
        "-q",
        "--preserve-digests",
        "--src-tls-verify=false",
        &format!("docker://{}", from.reference("team/tool:1.0")),
        &oci(dir.path(), "stable"),
    ]);
    // Without a tag: the layout's one image.
    let out = ocirelay(&[
        "copy",
        &format!("oci:{}", dir.path().display()),
        &to.reference("team/tool:1.0"),
    ])
    .success();
    assert_eq!(out.json()[0]["digest"], image.digest.to_string());
    assert_eq!(
        digest_at(&to.reference("team/tool:1.0")),
        Value::String(image.digest.to_string())
    );
    // A name the layout lacks: not found, exit 1, said with the layout's path.
    let out = ocirelay(&[
        "copy",
        &oci(dir.path(), "nope"),
        &to.reference("team/tool:x"),
    ]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr.contains(&oci(dir.path(), "nope")) && !out.stderr.contains(".invalid"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_bad_layout_stops_the_command_and_nothing_is_written() {
    let to = Registry::start(Auth::None);
    push_image(&to, "team/app", "v1", &[b"x"]);
    let dir = tempfile::tempdir().unwrap();

    // Not a layout at all.
    let plain = dir.path().join("plain");
    std::fs::create_dir(&plain).unwrap();
    std::fs::write(plain.join("notes.txt"), "mine").unwrap();
    for args in [
        vec!["copy".to_string(), oci(&plain, "v1"), to.reference("a:v1")],
        vec![
            "copy".to_string(),
            to.reference("team/app:v1"),
            oci(&plain, "v1"),
        ],
        vec![
            "copy".to_string(),
            oci(&dir.path().join("missing"), "v1"),
            to.reference("a:v1"),
        ],
    ] {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = ocirelay(&args);
        assert_eq!(out.code, 2, "{args:?}: {}", out.stderr);
        assert!(
            out.stderr.contains("not an OCI image layout"),
            "{}",
            out.stderr
        );
    }
    let names: Vec<_> = std::fs::read_dir(&plain).unwrap().flatten().collect();
    assert_eq!(names.len(), 1, "only notes.txt: {names:?}");

    // A layout whose index.json is corrupt: read or written, exit 2 naming it.
    let corrupt = dir.path().join("corrupt");
    std::fs::create_dir(&corrupt).unwrap();
    std::fs::write(
        corrupt.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    let bad_index =
        r#"{"schemaVersion":2,"manifests":[{"mediaType":"x","size":1,"digest":"sha256:12"}]}"#;
    std::fs::write(corrupt.join("index.json"), bad_index).unwrap();
    for args in [
        vec![
            "copy".to_string(),
            oci(&corrupt, "v1"),
            to.reference("a:v1"),
        ],
        vec![
            "copy".to_string(),
            to.reference("team/app:v1"),
            oci(&corrupt, "v1"),
        ],
    ] {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = ocirelay(&args);
        assert_eq!(out.code, 2, "{args:?}: {}", out.stderr);
        assert!(
            out.stderr.contains("index.json") && out.stderr.contains("manifests[0].digest"),
            "{}",
            out.stderr
        );
    }
    assert_eq!(
        std::fs::read_to_string(corrupt.join("index.json")).unwrap(),
        bad_index
    );
    assert!(!corrupt.join("blobs").exists());

    // A layout of several images, read without a tag: name one.
    let several = dir.path().join("several");
    for tag in ["a", "b"] {
        ocirelay(&["copy", &to.reference("team/app:v1"), &oci(&several, tag)]).success();
    }
    let out = ocirelay(&[
        "copy",
        &format!("oci:{}", several.display()),
        &to.reference("x:1"),
    ]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("name one") && out.stderr.contains("a, b"),
        "{}",
        out.stderr
    );
}

#[test]
fn copies_side_by_side_into_one_layout_lose_no_tag() {
    let from = Registry::start(Auth::None);
    push_image(&from, "team/app", "v1", &[b"shared layer", b"one"]);
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("shared");
    let tags: Vec<String> = (0..8).map(|i| format!("t{i}")).collect();
    let children: Vec<_> = tags
        .iter()
        .map(|tag| {
            let mut cmd = Command::new(binary());
            let ca = ocirelay_tests::tls::ca_file();
            cmd.arg("--ca-file")
                .arg(ca)
                .args(["copy", &from.reference("team/app:v1"), &oci(&layout, tag)])
                .env("DOCKER_CONFIG", dir.path())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped());
            cmd.spawn().expect("ocirelay starts")
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let mut named = names(&layout);
    named.sort();
    assert_eq!(named, tags);
    assert!(leftovers(&layout).is_empty(), "{:?}", leftovers(&layout));
}

#[test]
fn a_write_that_fails_names_the_file_and_leaves_no_blob() {
    let from = Registry::start(Auth::None);
    // A 3 MiB layer against a 1 MiB file size limit: a full disk, as
    // writes see it (EFBIG, with SIGXFSZ ignored).
    let big = ocirelay_tests::bytes(7, 3 << 20);
    let image = push_image(&from, "team/big", "v1", &[&big]);
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("small-disk");
    let script = r#"trap '' XFSZ; ulimit -f 1024; exec "$0" --ca-file "$1" copy "$2" "$3""#;
    let out = Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg(binary())
        .arg(ocirelay_tests::tls::ca_file())
        .arg(from.reference("team/big:v1"))
        .arg(oci(&layout, "v1"))
        .env("DOCKER_CONFIG", dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&layout.display().to_string()), "{stderr}");
    assert!(stderr.contains("File too large"), "{stderr}");
    assert!(leftovers(&layout).is_empty(), "{:?}", leftovers(&layout));
    assert!(names(&layout).is_empty(), "no image was named");
    let index = index_of(&layout);
    assert!(index["manifests"].as_array().unwrap().is_empty());
    // Whatever is under a digest is whole and is that digest.
    for entry in std::fs::read_dir(layout.join("blobs/sha256"))
        .unwrap()
        .flatten()
    {
        let bytes = std::fs::read(entry.path()).unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        assert_eq!(ocirelay_core::Digest::sha256(&bytes).hex(), name);
    }
    assert_ne!(image.digest.hex(), "");
}

#[test]
fn sync_to_a_tree_of_layouts_and_from_it_to_a_registry() {
    let from = Registry::start(Auth::None);
    let to = Registry::start(Auth::None);
    let mut digests = Vec::new();
    for (repo, tag) in [("team/app", "v1"), ("team/app", "v2"), ("team/tool", "1.0")] {
        let image = push_image(&from, repo, tag, &[format!("{repo}:{tag}").as_bytes()]);
        digests.push((repo, tag, image.digest.to_string()));
    }
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    let config = dir.path().join("sync.yaml");
    std::fs::write(
        &config,
        format!(
            "{}:\n  images:\n    team/app: []\n    team/tool: ['1.0']\nocirelay:\n  destination: oci:{}\n",
            from.host(),
            tree.display()
        ),
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let out = ocirelay(&["sync", config, "--report", "-"]).success();
    let report = &out.json()[0];
    assert_eq!(report["totals"]["copied"], 3, "{report:#}\n{}", out.stderr);
    let first = report["images"][0]["destination"].as_str().unwrap();
    assert!(
        first.starts_with(&format!("oci:{}/", tree.display())),
        "{first}"
    );
    assert!(!out.stderr.contains(".invalid"), "{}", out.stderr);
    let mut app = names(&tree.join("app"));
    app.sort();
    assert_eq!(app, vec!["v1", "v2"]);
    assert_eq!(names(&tree.join("tool")), vec!["1.0"]);

    // Again: nothing copied; the source is only HEADed (and listed).
    let served = from.access_log().len();
    let out = ocirelay(&["sync", config, "--report", "-"]).success();
    assert_eq!(out.json()[0]["totals"]["unchanged"], 3);
    for (request, _) in from.served(served) {
        assert!(
            request.starts_with("HEAD ") || request.contains("/tags/list"),
            "{request}"
        );
    }

    // The tree to a registry: every layout, every tag.
    let source = format!("oci:{}", tree.display());
    let out = ocirelay(&["sync", &source, &to.reference("mirror"), "--report", "-"]).success();
    assert_eq!(out.json()[0]["totals"]["copied"], 3, "{}", out.stderr);
    for (repo, tag, digest) in &digests {
        let name = repo.rsplit('/').next().unwrap();
        let there = digest_at(&to.reference(&format!("mirror/{name}:{tag}")));
        assert_eq!(there, Value::String(digest.clone()), "{repo}:{tag}");
    }
    // A tagged layout argument is no tree.
    let out = ocirelay(&["sync", config, &oci(&tree, "v1")]);
    assert_eq!(out.code, 2, "{}", out.stderr);
}
