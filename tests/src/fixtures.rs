//! Deterministic test images: written as an OCI layout, pushed with
//! `skopeo copy --all --preserve-digests`, so digests are known in advance.

use std::path::Path;
use std::process::Command;

use ocirelay_core::media_type::{
    DOCKER_CONFIG, DOCKER_LIST, DOCKER_MANIFEST, OCI_CONFIG, OCI_INDEX, OCI_MANIFEST,
};
use ocirelay_core::{Descriptor, Digest, Platform};
use serde_json::json;

use crate::registry::{temp_dir, Registry};

/// Manifest flavour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    /// OCI image manifest / index.
    Oci,
    /// Docker v2.2 manifest / manifest list.
    Docker,
}

/// An OCI image layout under construction.
pub struct Layout {
    dir: tempfile::TempDir,
    tags: Vec<(String, Descriptor)>,
}

impl Default for Layout {
    fn default() -> Self {
        Self::new()
    }
}

impl Layout {
    /// An empty layout in a temporary directory.
    pub fn new() -> Layout {
        let dir = temp_dir("ocirelay-layout-");
        std::fs::create_dir_all(dir.path().join("blobs/sha256")).expect("layout dirs");
        std::fs::write(
            dir.path().join("oci-layout"),
            r#"{"imageLayoutVersion":"1.0.0"}"#,
        )
        .expect("oci-layout");
        Layout {
            dir,
            tags: Vec::new(),
        }
    }

    /// The layout's directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Stores `bytes` as a blob and describes it.
    pub fn blob(&mut self, media_type: &str, bytes: &[u8]) -> Descriptor {
        let digest = Digest::sha256(bytes);
        std::fs::write(
            self.dir.path().join("blobs/sha256").join(digest.hex()),
            bytes,
        )
        .expect("writing a blob");
        Descriptor::new(media_type, digest, bytes.len() as u64)
    }

    /// An image of one platform with the given layer contents. Its config
    /// carries the platform, its descriptor does not.
    pub fn image(&mut self, flavour: Flavour, platform: &Platform, layers: &[&[u8]]) -> Descriptor {
        let (config_type, manifest_type, layer_type) = match flavour {
            Flavour::Oci => (
                OCI_CONFIG,
                OCI_MANIFEST,
                "application/vnd.oci.image.layer.v1.tar+gzip",
            ),
            Flavour::Docker => (
                DOCKER_CONFIG,
                DOCKER_MANIFEST,
                "application/vnd.docker.image.rootfs.diff.tar.gzip",
            ),
        };
        let mut config = json!({
            "architecture": platform.architecture,
            "os": platform.os,
            "rootfs": {"type": "layers", "diff_ids": []},
        });
        if let Some(v) = &platform.variant {
            config["variant"] = json!(v);
        }
        if let Some(v) = &platform.os_version {
            config["os.version"] = json!(v);
        }
        let config = self.blob(config_type, config.to_string().as_bytes());
        let layers: Vec<Descriptor> = layers.iter().map(|l| self.blob(layer_type, l)).collect();
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": manifest_type,
            "config": config,
            "layers": layers,
        });
        self.blob(manifest_type, manifest.to_string().as_bytes())
    }

    /// An index (or Docker manifest list) of `entries`.
    pub fn index(&mut self, flavour: Flavour, entries: &[Descriptor]) -> Descriptor {
        let media_type = match flavour {
            Flavour::Oci => OCI_INDEX,
            Flavour::Docker => DOCKER_LIST,
        };
        let index = json!({"schemaVersion": 2, "mediaType": media_type, "manifests": entries});
        self.blob(media_type, index.to_string().as_bytes())
    }

    /// Names `descriptor` as `tag` in the layout's `index.json`.
    pub fn tag(&mut self, tag: &str, descriptor: &Descriptor) {
        self.tags.push((tag.to_string(), descriptor.clone()));
        let manifests: Vec<serde_json::Value> = self
            .tags
            .iter()
            .map(|(t, d)| {
                let mut v = serde_json::to_value(d).expect("descriptor JSON");
                v["annotations"] = json!({"org.opencontainers.image.ref.name": t});
                v
            })
            .collect();
        let index = json!({"schemaVersion": 2, "manifests": manifests});
        std::fs::write(self.dir.path().join("index.json"), index.to_string()).expect("index.json");
    }

    /// Pushes tag `tag` of the layout to `registry` as `repository:tag`,
    /// digests unchanged. Docker manifest lists (which skopeo's layout
    /// source refuses) go through the harness's own pusher, without auth.
    pub fn push(&self, registry: &Registry, repository: &str, tag: &str) {
        let tagged = self
            .tags
            .iter()
            .rev()
            .find(|(t, _)| t == tag)
            .map(|(_, d)| d.clone());
        if let Some(d) = tagged.filter(|d| d.media_type == DOCKER_LIST) {
            assert!(
                registry.credentials().is_none(),
                "the harness pusher speaks no auth"
            );
            crate::push::push_tree(registry, repository, self.dir.path(), &d, Some(tag));
            return;
        }
        let dest = format!("{}/{repository}:{tag}", registry.host());
        self.copy_out(tag, &dest, registry.credentials());
    }

    /// Copies tag `tag` of the layout to `dest` (`host/repository:tag`) with
    /// skopeo, digests unchanged, with `credentials` when given.
    pub fn copy_out(&self, tag: &str, dest: &str, credentials: Option<&(String, String)>) {
        if let Err(e) = self.try_copy_out(tag, dest, credentials) {
            panic!("{e}");
        }
    }

    /// [`Layout::copy_out`], saying why it failed rather than panicking.
    pub fn try_copy_out(
        &self,
        tag: &str,
        dest: &str,
        credentials: Option<&(String, String)>,
    ) -> Result<(), String> {
        let source = format!("oci:{}:{tag}", self.dir.path().display());
        let dest = format!("docker://{dest}");
        let mut cmd = Command::new("skopeo");
        cmd.args([
            "copy",
            "--all",
            "--preserve-digests",
            "--dest-tls-verify=false",
            "-q",
        ]);
        if let Some((user, password)) = credentials {
            cmd.arg("--dest-creds").arg(format!("{user}:{password}"));
        }
        let out = cmd
            .arg(&source)
            .arg(&dest)
            .output()
            .map_err(|e| format!("running skopeo: {e} (scripts/setup installs it)"))?;
        match out.status.success() {
            true => Ok(()),
            false => Err(format!(
                "skopeo copy {source} {dest} failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            )),
        }
    }
}

/// Pushes a `linux/amd64` OCI image of `layers` to `registry` as
/// `repository:tag` and returns its manifest's descriptor: the set-up most
/// tests start from.
pub fn push_image(
    registry: &Registry,
    repository: &str,
    tag: &str,
    layers: &[&[u8]],
) -> Descriptor {
    let mut layout = Layout::new();
    let image = layout.image(Flavour::Oci, &platform("linux", "amd64", None), layers);
    layout.tag(tag, &image);
    layout.push(registry, repository, tag);
    image
}

/// An index pushed by [`push_index`]: its descriptor and its images'.
#[derive(Debug, Clone)]
pub struct Pushed {
    /// The index (or Docker manifest list).
    pub index: Descriptor,
    /// Its images, in order.
    pub images: Vec<Descriptor>,
}

impl Layout {
    /// An index (`Flavour::Docker`: a manifest list) of one image per
    /// platform, tagged `tag`. Each image has one layer whose bytes name
    /// its platform and `tag`, so layers differ between images and tags.
    pub fn platform_index(
        &mut self,
        tag: &str,
        flavour: Flavour,
        platforms: &[Platform],
    ) -> Pushed {
        let images: Vec<Descriptor> = platforms
            .iter()
            .map(|p| {
                let layer = format!("{tag} {}/{} layer", p.os, p.architecture);
                self.image(flavour, p, &[layer.as_bytes()])
            })
            .collect();
        let index = self.index(flavour, &images);
        self.tag(tag, &index);
        Pushed { index, images }
    }
}

/// Pushes an OCI index of one image per platform to `registry` as
/// `repository:tag`, its entries naming their platforms as registries
/// serve them (what cutting an index down to platforms reads); each image
/// has one layer, its architecture's name.
pub fn push_platform_named_index(
    registry: &Registry,
    repository: &str,
    tag: &str,
    platforms: &[Platform],
) -> Pushed {
    let mut layout = Layout::new();
    let images: Vec<Descriptor> = platforms
        .iter()
        .map(|p| {
            let mut d = layout.image(Flavour::Oci, p, &[p.architecture.as_bytes()]);
            d.platform = Some(p.clone());
            d
        })
        .collect();
    let index = layout.index(Flavour::Oci, &images);
    layout.tag(tag, &index);
    layout.push(registry, repository, tag);
    Pushed { index, images }
}

/// Pushes [`Layout::platform_index`] to `registry` as `repository:tag`.
pub fn push_index(
    registry: &Registry,
    repository: &str,
    tag: &str,
    flavour: Flavour,
    platforms: &[Platform],
) -> Pushed {
    let mut layout = Layout::new();
    let pushed = layout.platform_index(tag, flavour, platforms);
    layout.push(registry, repository, tag);
    pushed
}

/// linux/amd64 and linux/arm64/v8: the two platforms most fixtures have.
pub fn two_platforms() -> [Platform; 2] {
    [
        platform("linux", "amd64", None),
        platform("linux", "arm64", Some("v8")),
    ]
}

/// `len` deterministic bytes that differ by `seed` (xorshift): large
/// layers whose digests repeat from run to run.
pub fn bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// `linux/amd64`-style shorthand.
pub fn platform(os: &str, architecture: &str, variant: Option<&str>) -> Platform {
    Platform::new(os, architecture, variant)
}

/// The benchmarks' copy fixtures: (name, tag) pushed to `src` as `bench/<name>:<tag>`.
pub fn bench_fixtures(src: &Registry) -> Vec<&'static str> {
    const MIB: usize = 1024 * 1024;
    let mut layout = Layout::new();
    // A 272 MiB single image: one large layer and a small one.
    let big = layout.image(
        Flavour::Oci,
        &platform("linux", "amd64", None),
        &[&bytes(1, 256 * MIB), &bytes(2, 16 * MIB)],
    );
    layout.tag("single", &big);
    // Three platforms with small layers.
    let small: Vec<Descriptor> = [("amd64", None), ("arm64", Some("v8")), ("s390x", None)]
        .iter()
        .enumerate()
        .map(|(i, (arch, v))| {
            let layers: Vec<Vec<u8>> = (0..3)
                .map(|l| bytes(100 + 10 * i as u64 + l, 4096))
                .collect();
            let refs: Vec<&[u8]> = layers.iter().map(Vec::as_slice).collect();
            layout.image(Flavour::Oci, &platform("linux", arch, *v), &refs)
        })
        .collect();
    let three = layout.index(Flavour::Oci, &small);
    layout.tag("three", &three);
    // Eight platforms x five 1 MiB layers.
    layout.eight_platforms("eight", MIB, 1000);
    for tag in ["single", "three", "eight"] {
        layout.push(src, &format!("bench/{tag}"), tag);
    }
    vec!["single", "three", "eight"]
}

impl Layout {
    /// An OCI index of eight Linux platforms, each image of five layers of
    /// `layer_size` bytes (seeded from `seed`, so layers differ between
    /// images), tagged `tag`.
    pub fn eight_platforms(&mut self, tag: &str, layer_size: usize, seed: u64) -> Descriptor {
        let arches = [
            "amd64", "arm64", "arm", "386", "ppc64le", "s390x", "riscv64", "mips64le",
        ];
        let images: Vec<Descriptor> = arches
            .iter()
            .enumerate()
            .map(|(i, arch)| {
                let layers: Vec<Vec<u8>> = (0..5)
                    .map(|l| bytes(seed + 10 * i as u64 + l, layer_size))
                    .collect();
                let refs: Vec<&[u8]> = layers.iter().map(Vec::as_slice).collect();
                self.image(Flavour::Oci, &platform("linux", arch, None), &refs)
            })
            .collect();
        let index = self.index(Flavour::Oci, &images);
        self.tag(tag, &index);
        index
    }
}
