//! Copy-platforms: an image index cut down to the chosen platforms, pushed
//! as an index of its own (as regctl and crane do): the source's JSON with
//! only the kept entries, so it has its own digest, the same on every run
//! (a re-run finds it there with one HEAD after reading the source). Kept:
//! the entries whose platform is one chosen, and the attestations
//! (buildkit's `attestation-manifest` entries) of those. A source that is
//! no index, or whose entries are all kept, is copied as it is; an index
//! with an entry that names no platform is an error (it cannot be cut).

use serde_json::Value;

use crate::client::Client;
use crate::descriptor::Descriptor;
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::ops::ensure_manifest::{ChildRefs, EnsureManifest};
use crate::ops::lookup::{Body, Found, Lookup};
use crate::ops::sync_image::{head_there, Synced};
use crate::ops::{Operation, Output, Step};
use crate::platform::Platform;
use crate::reference::Reference;
use crate::{advance, ready};

/// Reads `os/arch[/variant]` items (normalized as containerd does); an
/// error names the one at fault.
pub fn parse_platforms(items: &[String]) -> std::result::Result<Vec<Platform>, String> {
    items
        .iter()
        .map(|item| {
            let parts: Vec<&str> = item.split('/').collect();
            match parts.as_slice() {
                [os, arch] if !os.is_empty() && !arch.is_empty() => {
                    Ok(Platform::new(os, arch, None))
                }
                [os, arch, variant]
                    if !os.is_empty() && !arch.is_empty() && !variant.is_empty() =>
                {
                    Ok(Platform::new(os, arch, Some(variant)))
                }
                _ => Err(format!("{item:?}: not os/arch[/variant]")),
            }
            .map(Platform::normalized)
        })
        .collect()
}

/// `index` cut down to `platforms`: `None` when it is no index or keeps
/// every entry (copied as it is); an error when it keeps none.
pub fn cut(index: &[u8], platforms: &[Platform], subject: &str) -> Result<Option<Vec<u8>>> {
    let Ok(mut value) = serde_json::from_slice::<Value>(index) else {
        return Ok(None);
    };
    let Some(entries) = value.get("manifests").and_then(Value::as_array) else {
        return Ok(None);
    };
    // An entry that names no platform cannot be chosen or left out.
    let unnamed = entries
        .iter()
        .find(|e| e.get("platform").is_none_or(Value::is_null));
    if let Some(entry) = unnamed {
        let digest = entry.get("digest").and_then(Value::as_str).unwrap_or("?");
        return Err(Error::protocol(
            subject,
            format!("the index names no platform for {digest}: not cut down to platforms"),
        ));
    }
    let chosen = |e: &Value| {
        e.get("platform")
            .and_then(|p| serde_json::from_value::<Platform>(p.clone()).ok())
            .is_some_and(|p| {
                let p = p.normalized();
                platforms.iter().any(|c| c.matches(&p))
            })
    };
    let kept_digests: Vec<&str> = entries
        .iter()
        .filter(|e| chosen(e))
        .filter_map(|e| e.get("digest").and_then(Value::as_str))
        .collect();
    if kept_digests.is_empty() {
        return Err(Error::not_found(format!(
            "{subject}: no manifest for the chosen platforms"
        )));
    }
    let attests = |e: &Value| {
        let note = |k: &str| {
            e.pointer(&format!("/annotations/{k}"))
                .and_then(Value::as_str)
        };
        note("vnd.docker.reference.type") == Some("attestation-manifest")
            && note("vnd.docker.reference.digest").is_some_and(|d| kept_digests.contains(&d))
    };
    let kept: Vec<Value> = entries
        .iter()
        .filter(|e| chosen(e) || attests(e))
        .cloned()
        .collect();
    if kept.len() == entries.len() {
        return Ok(None);
    }
    value["manifests"] = Value::Array(kept);
    serde_json::to_vec(&value)
        .map(Some)
        .map_err(|e| Error::Internal(format!("{subject}: writing the cut index: {e}")))
}

#[derive(Debug)]
enum Stage {
    /// The source read.
    Read(Box<Lookup>),
    /// The destination asked for, against what would be pushed.
    There {
        head: Box<Lookup>,
        bytes: Vec<u8>,
        media_type: String,
    },
    /// Pushing (children copied from the source as needed).
    Push(Box<EnsureManifest>),
}

/// The copy-platforms state machine.
#[derive(Debug)]
pub struct CopyPlatforms {
    source: Reference,
    destination: Reference,
    platforms: Vec<Platform>,
    dry_run: bool,
    stage: Stage,
}

impl CopyPlatforms {
    /// Copies `source` to `destination`, cut down to `platforms`
    /// (normalized); with `dry_run`, only looks.
    pub fn new(
        source: Reference,
        destination: Reference,
        platforms: Vec<Platform>,
        dry_run: bool,
    ) -> Self {
        let read = Lookup::manifest(source.clone(), false);
        CopyPlatforms {
            source,
            destination,
            platforms,
            dry_run,
            stage: Stage::Read(Box::new(read)),
        }
    }

    fn read(&mut self, found: Option<Found>) -> Result<Step<Stage, Synced>> {
        let found = found.ok_or_else(|| Error::not_found(self.source.to_string()))?;
        let Body::Bytes(bytes) = found.body else {
            return Err(Error::Internal(format!(
                "{}: manifest content missing",
                self.source
            )));
        };
        self.source.digest = Some(found.descriptor.digest.clone());
        let bytes = cut(&bytes, &self.platforms, &self.source.to_string())?
            .unwrap_or_else(|| bytes.to_vec());
        let head = head_there(&self.destination, self.dry_run);
        Ok(Step::Next(Stage::There {
            head: Box::new(head),
            bytes,
            media_type: found.descriptor.media_type,
        }))
    }

    fn compared(
        &mut self,
        there: Option<Found>,
        bytes: Vec<u8>,
        media_type: &str,
    ) -> Result<Step<Stage, Synced>> {
        let digest = Digest::sha256(&bytes);
        let pushed = Descriptor::new(media_type, digest.clone(), bytes.len() as u64);
        if there.is_some_and(|t| t.descriptor.digest == digest) {
            return Ok(Step::Done(Synced::Unchanged(pushed)));
        }
        if self.dry_run {
            return Ok(Step::Done(Synced::WouldCopy(pushed)));
        }
        let children = ChildRefs {
            fallback: Some(self.source.clone()),
            ..ChildRefs::default()
        };
        let ensure = EnsureManifest::new(self.destination.clone(), bytes, media_type, children)?;
        Ok(Step::Next(Stage::Push(Box::new(ensure))))
    }
}

impl Operation for CopyPlatforms {
    type Outcome = Result<Synced>;

    fn poll_output(&mut self, client: &mut Client) -> Output<Self::Outcome> {
        loop {
            match &mut self.stage {
                Stage::Read(read) => {
                    let found = ready!(read.poll_output(client));
                    advance!(self.stage, found.and_then(|f| self.read(f)));
                }
                Stage::There {
                    head,
                    bytes,
                    media_type,
                } => {
                    let there = ready!(head.poll_output(client));
                    let (bytes, media_type) = (std::mem::take(bytes), media_type.clone());
                    advance!(
                        self.stage,
                        there.and_then(|t| self.compared(t, bytes, &media_type))
                    );
                }
                Stage::Push(ensure) => {
                    let pushed = ready!(ensure.poll_output(client));
                    advance!(self.stage, pushed.map(|d| Step::Done(Synced::Copied(d))));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn index() -> Vec<u8> {
        let d = |n: u8| format!("sha256:{}", format!("{n:02x}").repeat(32));
        json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [
                {"mediaType": "m", "digest": d(1), "size": 1, "platform": {"os": "linux", "architecture": "amd64"}},
                {"mediaType": "m", "digest": d(2), "size": 1, "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
                {"mediaType": "m", "digest": d(3), "size": 1, "platform": {"os": "unknown", "architecture": "unknown"},
                 "annotations": {"vnd.docker.reference.type": "attestation-manifest", "vnd.docker.reference.digest": d(1)}},
                {"mediaType": "m", "digest": d(4), "size": 1, "platform": {"os": "unknown", "architecture": "unknown"},
                 "annotations": {"vnd.docker.reference.type": "attestation-manifest", "vnd.docker.reference.digest": d(2)}},
            ],
            "annotations": {"org.opencontainers.image.source": "kept"},
        })
        .to_string()
        .into_bytes()
    }

    fn platforms(items: &[&str]) -> Vec<Platform> {
        parse_platforms(&items.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn an_index_is_cut_to_the_chosen_platforms_and_their_attestations() {
        let cut_once = cut(&index(), &platforms(&["linux/amd64"]), "s")
            .unwrap()
            .unwrap();
        let v: Value = serde_json::from_slice(&cut_once).unwrap();
        let digests: Vec<&str> = v["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["digest"].as_str().unwrap())
            .collect();
        assert_eq!(digests.len(), 2);
        assert!(digests[0].starts_with("sha256:0101") && digests[1].starts_with("sha256:0303"));
        assert_eq!(v["annotations"]["org.opencontainers.image.source"], "kept");
        // The same bytes every time: a re-run finds its digest.
        assert_eq!(
            cut(&index(), &platforms(&["linux/amd64"]), "s")
                .unwrap()
                .unwrap(),
            cut_once
        );
        // arm64 as containerd spells it finds arm64/v8.
        let arm = cut(&index(), &platforms(&["linux/aarch64"]), "s")
            .unwrap()
            .unwrap();
        assert!(String::from_utf8(arm).unwrap().contains(&"02".repeat(32)));
    }

    #[test]
    fn all_kept_or_no_index_is_copied_as_it_is_and_none_kept_is_an_error() {
        let all = platforms(&["linux/amd64", "linux/arm64"]);
        assert_eq!(cut(&index(), &all, "s").unwrap(), None);
        let manifest = br#"{"schemaVersion": 2, "layers": []}"#;
        assert_eq!(cut(manifest, &all, "s").unwrap(), None);
        let e = cut(&index(), &platforms(&["windows/amd64"]), "r.example/app:v1").unwrap_err();
        assert!(e.to_string().contains("r.example/app:v1"), "{e}");
        let unnamed = br#"{"manifests": [{"digest": "sha256:ab", "size": 1, "mediaType": "m"}]}"#;
        let e = cut(unnamed, &all, "s").unwrap_err().to_string();
        assert!(e.contains("no platform for sha256:ab"), "{e}");
    }

    #[test]
    fn platforms_are_read_as_os_arch_variant() {
        assert_eq!(
            platforms(&["linux/arm/v7"])[0],
            Platform::new("linux", "arm", Some("v7"))
        );
        for bad in ["linux", "linux/", "/amd64", "a/b/c/d", "linux/arm/"] {
            let e = parse_platforms(&[bad.to_string()]).unwrap_err();
            assert!(e.contains(bad), "{e}");
        }
    }
}
