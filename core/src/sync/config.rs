//! `sync`'s configuration: skopeo sync's source file as it is (one key per
//! source registry: `images`, `images-by-tag-regex`, `images-by-semver`,
//! `tls-verify`, `credentials`), plus ocirelay's own keys under `ocirelay`
//! (where to, which tags not, how many, referrers). The host reads YAML or
//! JSON; this reads its JSON form:
//!
//! ```json
//! {"registry.example": {"images": {"team/app": ["v1", "v2"], "team/base": []},
//!                       "images-by-tag-regex": {"team/tool": "^1\\.2\\."},
//!                       "images-by-semver": {"team/lib": ">= 1.2, < 2"},
//!                       "tls-verify": true,
//!                       "credentials": {"username": "u", "password": "p"}},
//!  "ocirelay": {"destination": "mirror.internal:5000/mirror",
//!               "exclude-tags": ["-rc"], "newest": 5, "referrers": true,
//!               "platforms": ["linux/amd64", "linux/arm64"]}}
//! ```
//!
//! An empty tag list (`team/base: []`) means every tag, as in skopeo.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::auth::Credential;
use crate::client::ClientConfig;
use crate::error::{Error, Result};
use crate::platform::Platform;
use crate::reference::{is_valid_tag, Reference};
use crate::Digest;

/// The key of ocirelay's own settings (a registry host has a dot, a colon
/// or is `localhost`; this is none of those).
pub const OWN_KEY: &str = "ocirelay";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RegistryFile {
    #[serde(default)]
    images: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    images_by_tag_regex: BTreeMap<String, String>,
    #[serde(default)]
    images_by_semver: BTreeMap<String, String>,
    #[serde(default)]
    tls_verify: Option<bool>,
    #[serde(default)]
    credentials: Option<CredentialsFile>,
    #[serde(default)]
    cert_dir: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CredentialsFile {
    username: String,
    password: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct OwnFile {
    #[serde(default)]
    destination: Option<String>,
    #[serde(default)]
    scoped: bool,
    #[serde(default)]
    exclude_tags: Vec<String>,
    #[serde(default)]
    newest: Option<usize>,
    #[serde(default)]
    referrers: bool,
    #[serde(default)]
    platforms: Vec<String>,
}

/// Which tags of a repository.
#[derive(Debug, Clone)]
pub enum Tags {
    /// These, by name or digest (`sha256:…`).
    Listed(Vec<String>),
    /// Every tag the registry lists.
    All,
    /// The listed tags this expression matches (anywhere in the tag, as
    /// skopeo's Go regexp does; anchor it with `^…$`).
    Regex(regex_lite::Regex),
    /// The listed tags that are versions (`1.2.3`, `v1.2`, `1`) within
    /// this range.
    Semver(semver::VersionReq),
}

/// A repository to sync, and which of its tags.
#[derive(Debug, Clone)]
pub struct Repository {
    /// Where it is (no tag).
    pub source: Reference,
    /// Which tags.
    pub tags: Tags,
}

/// A source registry's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceRegistry {
    /// Its host (with port).
    pub host: String,
    /// Reached over plain HTTP (`tls-verify: false`).
    pub insecure: bool,
    /// Its credentials, when the file gives them.
    pub credential: Option<Credential>,
}

/// A sync's configuration, checked.
#[derive(Debug, Clone)]
pub struct SyncConfig {
    /// The repositories, by registry, then by name (sorted, as JSON objects keep no order here).
    pub repositories: Vec<Repository>,
    /// The source registries.
    pub registries: Vec<SourceRegistry>,
    /// Where to: a registry and repository prefix (`host[/prefix]`), when
    /// the file says (else the command line does).
    pub destination: Option<String>,
    /// Keep the source's registry and whole path under the destination
    /// (`DEST/registry.example/team/app`); else its last path component
    /// alone (`DEST/app`), as skopeo sync does without `--scoped`.
    pub scoped: bool,
    /// Tags never synced: any that one of these matches.
    pub exclude_tags: Vec<regex_lite::Regex>,
    /// Of a repository's selected tags that are versions, only the newest
    /// this many (tags that are no version are kept).
    pub newest: Option<usize>,
    /// What refers to each image (signatures, SBOMs) travels with it.
    pub referrers: bool,
    /// Only these platforms of an index (normalized): each index is cut
    /// down to them and pushed as an index of its own, with its own
    /// digest ([`crate::ops::copy_platforms`]); none: everything.
    pub platforms: Vec<Platform>,
}

impl SyncConfig {
    /// Parses the JSON form; an error names the field by its path.
    pub fn parse(text: &str) -> Result<Self> {
        let file: BTreeMap<String, serde_json::Value> = crate::json::from_str_naming_field(text)
            .map_err(|e| Error::InvalidInput(format!("not a sync config: {e}")))?;
        let mut own = OwnFile::default();
        let mut repositories = Vec::new();
        let mut registries = Vec::new();
        for (key, value) in file {
            if key == OWN_KEY {
                own = field(value, OWN_KEY)?;
                continue;
            }
            let file: RegistryFile = field(value, &key)?;
            let (host, insecure, credential) = registry(&key, &file)?;
            registries.push(SourceRegistry {
                host: host.clone(),
                insecure,
                credential,
            });
            let at = |repo: &str, what: &str| -> Result<Reference> {
                let path = format!("{key}.{what}.{repo}");
                let reference = Reference::parse(&format!("{host}/{repo}"))
                    .map_err(|e| invalid(&path, &e.to_string()))?;
                if reference.host != host || reference.tag.is_some() || reference.digest.is_some() {
                    return Err(invalid(&path, "not a repository name"));
                }
                Ok(reference)
            };
            for (repo, tags) in file.images {
                let source = at(&repo, "images")?;
                for (i, tag) in tags.iter().enumerate() {
                    let ok = is_valid_tag(tag) || Digest::parse(tag).is_ok();
                    if !ok {
                        let path = format!("{key}.images.{repo}[{i}]");
                        return Err(invalid(&path, "neither a tag nor a digest"));
                    }
                }
                let tags = match tags.is_empty() {
                    true => Tags::All,
                    false => Tags::Listed(tags),
                };
                repositories.push(Repository { source, tags });
            }
            for (repo, expression) in file.images_by_tag_regex {
                let source = at(&repo, "images-by-tag-regex")?;
                let regex = regex_lite::Regex::new(&expression).map_err(|e| {
                    invalid(&format!("{key}.images-by-tag-regex.{repo}"), &e.to_string())
                })?;
                repositories.push(Repository {
                    source,
                    tags: Tags::Regex(regex),
                });
            }
            for (repo, range) in file.images_by_semver {
                let source = at(&repo, "images-by-semver")?;
                let req = semver_range(&range)
                    .map_err(|why| invalid(&format!("{key}.images-by-semver.{repo}"), &why))?;
                repositories.push(Repository {
                    source,
                    tags: Tags::Semver(req),
                });
            }
        }
        if repositories.is_empty() {
            return Err(Error::InvalidInput(
                "a sync config needs at least one registry with images to sync".into(),
            ));
        }
        let exclude_tags = own
            .exclude_tags
            .iter()
            .enumerate()
            .map(|(i, e)| {
                regex_lite::Regex::new(e).map_err(|why| {
                    invalid(&format!("{OWN_KEY}.exclude-tags[{i}]"), &why.to_string())
                })
            })
            .collect::<Result<Vec<_>>>()?;
        if own.newest == Some(0) {
            return Err(invalid(&format!("{OWN_KEY}.newest"), "must be at least 1"));
        }
        let platforms = crate::ops::copy_platforms::parse_platforms(&own.platforms)
            .map_err(|why| invalid(&format!("{OWN_KEY}.platforms"), &why))?;
        if let Some(dest) = &own.destination {
            check_destination(dest)
                .map_err(|why| invalid(&format!("{OWN_KEY}.destination"), &why))?;
        }
        Ok(SyncConfig {
            repositories,
            registries,
            destination: own.destination,
            scoped: own.scoped,
            exclude_tags,
            newest: own.newest,
            referrers: own.referrers,
            platforms,
        })
    }

    /// `base` with what the file says of its source registries: plain
    /// HTTP where `tls-verify` is false, and their credentials (where
    /// `base` has none for the host).
    pub fn client_config(&self, base: &ClientConfig) -> ClientConfig {
        let mut config = base.clone();
        for registry in &self.registries {
            if registry.insecure && !config.insecure_registries.contains(&registry.host) {
                config.insecure_registries.push(registry.host.clone());
            }
            if let Some(credential) = &registry.credential {
                config
                    .credentials
                    .entry(registry.host.clone())
                    .or_insert_with(|| credential.clone());
            }
        }
        config
    }

    /// Where `source`'s image goes under `destination` (`host[/prefix]`),
    /// with `tag`.
    pub fn destination_of(
        &self,
        destination: &str,
        source: &Reference,
        tag: &str,
    ) -> Result<Reference> {
        let path = match self.scoped {
            true => format!("{}/{}", source.host, source.repository),
            false => source
                .repository
                .rsplit('/')
                .next()
                .unwrap_or(&source.repository)
                .to_string(),
        };
        let text = match Digest::parse(tag) {
            Ok(_) => format!("{}/{path}@{tag}", destination.trim_end_matches('/')),
            Err(_) => format!("{}/{path}:{tag}", destination.trim_end_matches('/')),
        };
        Reference::parse(&text).map_err(|e| Error::InvalidInput(format!("destination {text}: {e}")))
    }
}

/// A destination is a registry host, and a repository prefix or not.
pub fn check_destination(dest: &str) -> std::result::Result<(), String> {
    let probe = format!("{}/probe:tag", dest.trim_end_matches('/'));
    let reference = Reference::parse(&probe).map_err(|e| e.to_string())?;
    let host = dest.split('/').next().unwrap_or_default();
    if reference.host != host && !crate::reference::is_docker_hub(host) {
        return Err(format!(
            "{dest:?} names no registry host (e.g. registry.example/mirror)"
        ));
    }
    Ok(())
}

/// A section read as a `T`, its errors under `path`.
fn field<T: serde::de::DeserializeOwned>(value: serde_json::Value, path: &str) -> Result<T> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let at = e.path().to_string();
        let path = match at.as_str() {
            "." => path.to_string(),
            _ => format!("{path}.{at}"),
        };
        invalid(&path, &e.into_inner().to_string())
    })
}

/// A source registry's host, transport and credentials.
fn registry(key: &str, file: &RegistryFile) -> Result<(String, bool, Option<Credential>)> {
    let probe =
        Reference::parse(&format!("{key}/probe")).map_err(|e| invalid(key, &e.to_string()))?;
    if !key.contains(['.', ':']) && key != "localhost" {
        return Err(invalid(
            key,
            "not a registry host (nor `ocirelay`, for ocirelay's own keys)",
        ));
    }
    if file.cert_dir.is_some() {
        return Err(invalid(
            &format!("{key}.cert-dir"),
            "not read: give the CA file with --ca-file (or the settings file's ca-files)",
        ));
    }
    let credential = file.credentials.as_ref().map(|c| Credential::Basic {
        username: c.username.clone(),
        password: c.password.clone(),
    });
    Ok((probe.host, file.tls_verify == Some(false), credential))
}

/// skopeo's semver ranges (Masterminds): `>= 1.2, < 2`, `~1.2`, `^1`,
/// `1.2.x`; read with the `semver` crate's comparators.
fn semver_range(range: &str) -> std::result::Result<semver::VersionReq, String> {
    let normalized = range.replace(".x", ".*").replace(".X", ".*");
    semver::VersionReq::parse(&normalized).map_err(|e| e.to_string())
}

fn invalid(path: &str, why: &str) -> Error {
    Error::InvalidInput(format!("sync config: {path}: {why}"))
}
