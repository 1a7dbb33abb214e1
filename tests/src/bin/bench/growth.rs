//! Cost as work grows: the same copy at several sizes, so that a cost that
//! grows faster than the work shows as a column that is not flat.
//!
//! - Layers: one 272 MiB layer, then 1, 4, 16 and 64 layers of 16 MiB,
//!   beside a floor: `curl` PUTs of the same blobs (upload sessions opened
//!   beforehand, untimed), as many at once as ocirelay's default
//!   concurrency.
//! - Platforms: an index of 1, 8, 32 and 128 platforms.
//! - Images: 1, 10 and 100 images copied by one process (`ocirelay deploy
//!   --parallel`; `skopeo sync`, which copies a list of images).
//!
//! Every copy goes to a fresh registry; the tools take turns, run after
//! run, and the tables show medians.

use std::path::{Path, PathBuf};

use ocirelay_core::Descriptor;
use ocirelay_tests::{bytes, platform, Auth, Flavour, Layout, Registry};

use crate::{requests_served, reset_skopeo_cache, run, run_in, Medians, Run};

const MIB: usize = 1024 * 1024;

/// ocirelay's default `--concurrency`: the floor moves as many blobs at once.
const CONCURRENCY: usize = 8;

/// The tools and settings every series uses.
pub struct Tools<'a> {
    /// The ocirelay binary.
    pub ocirelay: &'a str,
    /// ocirelay's environment (its compiled-component cache).
    pub env: &'a [(&'a str, &'a str)],
    /// skopeo's environment (a home of its own).
    pub skopeo_env: &'a [(&'a str, &'a str)],
    /// Where skopeo keeps its blob-info cache, emptied before each run.
    pub skopeo_home: &'a Path,
    /// Runs per measure.
    pub runs: usize,
}

/// One series: its table, measured.
pub type Series = fn(&Tools) -> String;

/// Medians of one tool's runs at one size.
struct Measured {
    seconds: f64,
    cpu: f64,
    peak_mib: f64,
    /// Requests the registries served in the first run.
    requests: usize,
}

impl Tools<'_> {
    /// Runs each of `tools` against a fresh, empty registry per run (and
    /// `src`), taking turns, so that a machine that slows down for a while
    /// slows them all alike; counts the requests of each one's first run.
    fn measure<const N: usize>(
        &self,
        src: &Registry,
        mut tools: [&mut dyn FnMut(&Registry) -> Run; N],
    ) -> [Measured; N] {
        let mut runs: [Vec<Run>; N] = std::array::from_fn(|_| Vec::new());
        let mut requests = [0; N];
        for i in 0..self.runs {
            for (k, once) in tools.iter_mut().enumerate() {
                let dst = Registry::start_plain(Auth::None);
                let before = requests_served(src);
                let r = once(&dst);
                if i == 0 {
                    requests[k] = requests_served(src) - before + requests_served(&dst);
                }
                runs[k].push(r);
            }
        }
        std::array::from_fn(|k| {
            let Medians {
                seconds,
                cpu,
                peak_mib,
            } = Medians::of(&runs[k]);
            Measured {
                seconds,
                cpu,
                peak_mib,
                requests: requests[k],
            }
        })
    }

    fn ocirelay_copy(&self, source: &str, dst: &Registry, target: &str) -> Run {
        let target = dst.reference(target);
        run(&[self.ocirelay, "copy", source, &target], self.env)
    }

    fn skopeo_copy(&self, source: &str, dst: &Registry, target: &str) -> Run {
        reset_skopeo_cache(self.skopeo_home);
        let (from, to) = (
            format!("docker://{source}"),
            format!("docker://{}", dst.reference(target)),
        );
        let argv = [
            "skopeo",
            "copy",
            "--all",
            "-q",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            &from,
            &to,
        ];
        run(&argv, self.skopeo_env)
    }
}

/// Layers: wall and client CPU of ocirelay and skopeo against the curl floor.
pub fn layers(tools: &Tools) -> String {
    let src = Registry::start_plain(Auth::None);
    let mut layout = Layout::new();
    let config_platform = platform("linux", "amd64", None);
    let big = bytes(7000, 272 * MIB);
    let big_image = layout.image(Flavour::Oci, &config_platform, &[&big]);
    drop(big);
    layout.tag("big", &big_image);
    let layers: Vec<Vec<u8>> = (0..64).map(|i| bytes(7100 + i, 16 * MIB)).collect();
    let mut cases = vec![("1 × 272 MiB".to_string(), "big".to_string(), big_image)];
    for n in [1, 4, 16, 64] {
        let refs: Vec<&[u8]> = layers[..n].iter().map(Vec::as_slice).collect();
        let image = layout.image(Flavour::Oci, &config_platform, &refs);
        let tag = format!("n{n}");
        layout.tag(&tag, &image);
        cases.push((format!("{n} × 16 MiB"), tag, image));
    }
    drop(layers);
    for (_, tag, _) in &cases {
        layout.push(&src, "grow/layers", tag);
    }

    let mut out = String::from(
        "| layers       | tool       |    wall    |    CPU     | peak RSS  | wall / floor | CPU / floor |\n\
         |--------------|------------|------------|------------|-----------|--------------|-------------|\n",
    );
    for (name, tag, image) in &cases {
        let blobs = layer_files(&layout, image);
        let source = src.reference(&format!("grow/layers:{tag}"));
        let [floor, ours, theirs] = tools.measure(
            &src,
            [
                &mut |dst| curl_floor(dst, &blobs),
                &mut |dst| tools.ocirelay_copy(&source, dst, "grow/copy:v1"),
                &mut |dst| tools.skopeo_copy(&source, dst, "grow/copy:v1"),
            ],
        );
        for (tool, m) in [
            ("curl floor", &floor),
            ("ocirelay", &ours),
            ("skopeo", &theirs),
        ] {
            out.push_str(&format!(
                "| {name:<12} | {tool:<10} | {:>7.1} ms | {:>7.1} ms | {:>5.1} MiB | {:>11.2}x | {:>10.2}x |\n",
                m.seconds * 1000.0,
                m.cpu * 1000.0,
                m.peak_mib,
                m.seconds / floor.seconds,
                m.cpu / floor.cpu,
            ));
        }
    }
    out
}

/// The files of `image`'s layers in `layout`, with their digests.
fn layer_files(layout: &Layout, image: &Descriptor) -> Vec<(PathBuf, String)> {
    let blob = |d: &str| {
        layout
            .path()
            .join("blobs/sha256")
            .join(d.trim_start_matches("sha256:"))
    };
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(blob(&image.digest.to_string())).expect("the image's manifest"),
    )
    .expect("manifest JSON");
    manifest["layers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| l["digest"].as_str())
        .map(|d| (blob(d), d.to_string()))
        .collect()
}

/// Uploads `blobs` to `dst` with one curl process, [`CONCURRENCY`] at a
/// time; the upload sessions are opened first, untimed.
fn curl_floor(dst: &Registry, blobs: &[(PathBuf, String)]) -> Run {
    let mut argv: Vec<String> = [
        "curl",
        "-s",
        "-f",
        "-Z",
        "--parallel-max",
        &CONCURRENCY.to_string(),
        "-H",
        "Content-Type: application/octet-stream",
    ]
    .map(String::from)
    .to_vec();
    for (path, digest) in blobs {
        let location = open_upload(dst, "grow/copy");
        let sep = if location.contains('?') { '&' } else { '?' };
        argv.push("-T".into());
        argv.push(path.display().to_string());
        argv.push(format!("{location}{sep}digest={digest}"));
        argv.push("-o".into());
        argv.push("/dev/null".into());
    }
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    run(&argv, &[])
}

/// `POST /v2/REPOSITORY/blobs/uploads/`: the session's absolute URL.
fn open_upload(dst: &Registry, repository: &str) -> String {
    let conn = std::net::TcpStream::connect(dst.host()).expect("connecting to the registry");
    let path = format!("/v2/{repository}/blobs/uploads/");
    let answer = ocirelay_tests::http1::exchange(conn, dst.host(), "POST", &path, &[], &[]);
    assert_eq!(answer.status, 202, "opening an upload: {answer:?}");
    let location = answer.header("location").expect("a Location").to_string();
    if location.starts_with('/') {
        format!("http://{}{location}", dst.host())
    } else {
        location
    }
}

/// Platforms: wall, requests and peak RSS of an index copy as it widens.
pub fn platforms(tools: &Tools) -> String {
    let src = Registry::start_plain(Auth::None);
    let mut layout = Layout::new();
    let sizes = [1, 8, 32, 128];
    for n in sizes {
        let images: Vec<Descriptor> = (0..n)
            .map(|i| {
                let layer = bytes(9000 + 1000 * n as u64 + i as u64, 4096);
                let arch = format!("arch{i}");
                layout.image(Flavour::Oci, &platform("linux", &arch, None), &[&layer])
            })
            .collect();
        let index = layout.index(Flavour::Oci, &images);
        let tag = format!("p{n}");
        layout.tag(&tag, &index);
        layout.push(&src, "grow/platforms", &tag);
    }
    let mut out = String::from(
        "| platforms | tool     |    wall    |    CPU     | peak RSS  | requests | ms per platform |\n\
         |-----------|----------|------------|------------|-----------|----------|-----------------|\n",
    );
    for n in sizes {
        let source = src.reference(&format!("grow/platforms:p{n}"));
        let [ours, theirs] = tools.measure(
            &src,
            [
                &mut |dst| tools.ocirelay_copy(&source, dst, "grow/copy:v1"),
                &mut |dst| tools.skopeo_copy(&source, dst, "grow/copy:v1"),
            ],
        );
        for (tool, m) in [("ocirelay", &ours), ("skopeo", &theirs)] {
            out.push_str(&format!(
                "| {n:>9} | {tool:<8} | {:>7.1} ms | {:>7.1} ms | {:>5.1} MiB | {:>8} | {:>12.2} ms |\n",
                m.seconds * 1000.0,
                m.cpu * 1000.0,
                m.peak_mib,
                m.requests,
                m.seconds * 1000.0 / n as f64,
            ));
        }
    }
    out
}

/// Images: 1, 10 and 100 images copied by one process.
pub fn images(tools: &Tools) -> String {
    let src = Registry::start_plain(Auth::None);
    let mut layout = Layout::new();
    let count = 100;
    for i in 0..count {
        let layer = bytes(20_000 + i, 64 * 1024);
        let image = layout.image(Flavour::Oci, &platform("linux", "amd64", None), &[&layer]);
        layout.tag(&format!("img{i}"), &image);
    }
    for i in 0..count {
        layout.push(&src, "grow/images", &format!("img{i}"));
    }
    let work = ocirelay_tests::registry::temp_dir("ocirelay-bench-images-");
    let mut out = String::from(
        "| images | tool     |    wall    |    CPU     | peak RSS  | requests | requests/s | ms per image |\n\
         |--------|----------|------------|------------|-----------|----------|------------|--------------|\n",
    );
    for n in [1, 10, 100] {
        let tags: Vec<String> = (0..n).map(|i| format!("img{i}")).collect();
        let mut ours = |dst: &Registry| {
            let input = work.path().join(format!("deploy-{n}.json"));
            let lines: String = tags
                .iter()
                .map(|t| {
                    let line = serde_json::json!({
                        "type": "manifest",
                        "refs": [dst.reference(&format!("grow/images:{t}"))],
                        "lookup": {"": src.reference(&format!("grow/images:{t}"))},
                    });
                    format!("{line}\n")
                })
                .collect();
            std::fs::write(&input, lines).expect("the deploy input");
            let argv = [tools.ocirelay, "deploy", "--parallel"];
            run_in(&argv, tools.env, Some(&input))
        };
        let mut theirs = |dst: &Registry| {
            // skopeo sync takes a list of images in YAML.
            let list = work.path().join(format!("sync-{n}.yaml"));
            let yaml = format!(
                "{}:\n  tls-verify: false\n  images:\n    grow/images: [{}]\n",
                src.host(),
                tags.join(", ")
            );
            std::fs::write(&list, yaml).expect("the sync list");
            reset_skopeo_cache(tools.skopeo_home);
            let list = list.display().to_string();
            let argv = [
                "skopeo",
                "sync",
                "--all",
                "--src",
                "yaml",
                "--dest",
                "docker",
                "--dest-tls-verify=false",
                &list,
                dst.host(),
            ];
            run(&argv, tools.skopeo_env)
        };
        let [ours, theirs] = tools.measure(&src, [&mut ours, &mut theirs]);
        for (tool, m) in [("ocirelay", &ours), ("skopeo", &theirs)] {
            out.push_str(&format!(
                "| {n:>6} | {tool:<8} | {:>7.1} ms | {:>7.1} ms | {:>5.1} MiB | {:>8} | {:>10.0} | {:>9.2} ms |\n",
                m.seconds * 1000.0,
                m.cpu * 1000.0,
                m.peak_mib,
                m.requests,
                m.requests as f64 / m.seconds,
                m.seconds * 1000.0 / n as f64,
            ));
        }
    }
    out
}
