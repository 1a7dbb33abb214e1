//! Images that real clients unpack (containerd, podman): each layer a tar
//! archive of files, each config naming its layers' `diff_ids`, so that a
//! pull ends with a root filesystem, not only with content in a store.

use ocirelay_core::media_type::{OCI_CONFIG, OCI_MANIFEST};
use ocirelay_core::{Descriptor, Digest, Platform};
use serde_json::json;

use crate::fixtures::{Flavour, Layout, Pushed};

/// An uncompressed tar layer's media type.
pub const TAR_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";

/// A tar archive (ustar) of regular files, each `(path, content)`, mode
/// 0644, owned by root, dated 2000-01-01.
pub fn tar(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (path, content) in files {
        assert!(path.len() < 100, "{path}: a short name only");
        let mut header = [0u8; 512];
        header[..path.len()].copy_from_slice(path.as_bytes());
        let octal = |field: &mut [u8], value: u64| {
            let text = format!("{value:0width$o}\0", width = field.len() - 1);
            field.copy_from_slice(text.as_bytes());
        };
        octal(&mut header[100..108], 0o644);
        octal(&mut header[108..116], 0);
        octal(&mut header[116..124], 0);
        octal(&mut header[124..136], content.len() as u64);
        octal(&mut header[136..148], 946_684_800);
        header[156] = b'0';
        header[257..263].copy_from_slice(b"ustar\0");
        header[263..265].copy_from_slice(b"00");
        // The checksum counts its own field as spaces.
        header[148..156].copy_from_slice(b"        ");
        let sum: u32 = header.iter().map(|&b| u32::from(b)).sum();
        header[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        out.extend_from_slice(&header);
        out.extend_from_slice(content);
        out.resize(out.len().next_multiple_of(512), 0);
    }
    // Two empty blocks end the archive.
    out.resize(out.len() + 1024, 0);
    out
}

impl Layout {
    /// An OCI image for `platform` whose one layer is a tar of `files`.
    pub fn rootfs_image(&mut self, platform: &Platform, files: &[(&str, &[u8])]) -> Descriptor {
        let layer = tar(files);
        let diff_id = Digest::sha256(&layer);
        let mut config = json!({
            "architecture": platform.architecture,
            "os": platform.os,
            "config": {"Cmd": ["/hello"]},
            "rootfs": {"type": "layers", "diff_ids": [diff_id.to_string()]},
        });
        if let Some(v) = &platform.variant {
            config["variant"] = json!(v);
        }
        let config = self.blob(OCI_CONFIG, config.to_string().as_bytes());
        let layer = self.blob(TAR_LAYER, &layer);
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": config,
            "layers": [layer],
        });
        self.blob(OCI_MANIFEST, manifest.to_string().as_bytes())
    }

    /// An OCI index of one [`Layout::rootfs_image`] per platform, tagged
    /// `tag`; each has a file `hello` naming its platform and `tag`, and a
    /// file `data` of `data_len` bytes.
    pub fn rootfs_index(&mut self, tag: &str, platforms: &[Platform], data_len: usize) -> Pushed {
        let images: Vec<Descriptor> = platforms
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let hello = format!("{tag} {}/{}\n", p.os, p.architecture);
                let data = crate::fixtures::bytes(i as u64 + 1, data_len);
                self.rootfs_image(p, &[("hello", hello.as_bytes()), ("data", &data)])
            })
            .collect();
        let index = self.index(Flavour::Oci, &images);
        self.tag(tag, &index);
        Pushed { index, images }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What Debian's tar lists in the archive, if it is installed.
    #[test]
    fn tar_reads_the_archive() {
        let archive = tar(&[("hello", b"hi\n"), ("data", &[7u8; 700])]);
        assert_eq!(archive.len() % 512, 0);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("layer.tar");
        std::fs::write(&path, &archive).unwrap();
        let out = std::process::Command::new("tar")
            .arg("-tvf")
            .arg(&path)
            .output()
            .expect("tar");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let listing = String::from_utf8_lossy(&out.stdout);
        assert!(
            listing.contains(" 3 2000-01-01") && listing.contains("hello"),
            "{listing}"
        );
        assert!(
            listing.contains(" 700 2000-01-01") && listing.contains("data"),
            "{listing}"
        );
    }
}
