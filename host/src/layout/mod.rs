//! OCI image layouts as places to copy from and to (`oci:DIR[:TAG]`). The
//! component only speaks to registries, so each layout the command names
//! gets a registry name of its own under `.invalid` (a name that never
//! resolves), and the hook answers requests to it from the directory
//! ([`answer`]) instead of sending them: the copy code stays one, and the
//! core never learns of files. What the user reads says `oci:DIR` again
//! ([`Layouts::shown`]).

mod answer;
mod body;
mod store;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

pub use store::{Store, StoreError};

use crate::error::HostError;

/// The prefix that makes an argument a layout.
pub const PREFIX: &str = "oci:";

/// The repository name a single layout is spoken to as.
const SINGLE_NAME: &str = "layout";

/// An `oci:DIR[:TAG|@DIGEST]` argument, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayoutArg {
    /// The directory.
    pub dir: PathBuf,
    /// `:TAG`, the image's name in the layout.
    pub tag: Option<String>,
    /// `@DIGEST`.
    pub digest: Option<String>,
}

impl LayoutArg {
    /// Reads `text` if it names a layout (`oci:…`); `None` if it does not.
    /// The directory may hold `:` only where a tag follows it, as in skopeo.
    pub fn parse(text: &str) -> Option<Result<LayoutArg, HostError>> {
        let rest = text.strip_prefix(PREFIX)?;
        let bad = |why: &str| HostError::Usage(format!("{text}: {why}"));
        let (rest, digest) = match rest.rsplit_once('@') {
            Some((dir, digest)) if !digest.contains('/') => (dir, Some(digest.to_string())),
            _ => (rest, None),
        };
        let (dir, tag) = match rest.rsplit_once(':') {
            Some((dir, tag)) if !tag.contains('/') && digest.is_none() => {
                if !ocirelay_core::reference::is_valid_tag(tag) {
                    return Some(Err(bad(&format!(
                        "{tag:?} is not a tag (letters, digits, `_`, `.`, `-`)"
                    ))));
                }
                (dir, Some(tag.to_string()))
            }
            _ => (rest, None),
        };
        if dir.is_empty() {
            return Some(Err(bad("name a directory: oci:DIR[:TAG]")));
        }
        if let Some(d) = &digest {
            if let Err(e) = ocirelay_core::Digest::parse(d) {
                return Some(Err(bad(&e.to_string())));
            }
        }
        Some(Ok(LayoutArg {
            dir: PathBuf::from(dir),
            tag,
            digest,
        }))
    }
}

/// A layout (or a tree of them) the component may reach, by its registry name.
#[derive(Debug)]
pub struct Root {
    /// The registry name requests to it carry.
    pub host: String,
    /// The directory.
    dir: PathBuf,
    /// One layout (any repository name is it), or a tree of layouts, one
    /// per repository (`DIR/<repository>`).
    single: bool,
}

impl Root {
    /// The layout that `repository` names.
    fn store(&self, repository: &str) -> Store {
        match self.single {
            true => Store::at(&self.dir),
            false => Store::at(self.dir.join(repository)),
        }
    }

    /// How the user wrote it.
    fn shown(&self) -> String {
        format!("{PREFIX}{}", self.dir.display())
    }
}

/// The layouts a command names, and their uploads in progress.
#[derive(Debug, Default)]
pub struct Layouts {
    roots: Vec<Root>,
    uploads: answer::Uploads,
}

impl Layouts {
    /// The layout (or tree) at `dir`, spoken to as a registry: its name.
    fn add(&mut self, dir: &Path, single: bool) -> String {
        if let Some(root) = self
            .roots
            .iter()
            .find(|r| r.dir == dir && r.single == single)
        {
            return root.host.clone();
        }
        let host = format!("layout-{}.oci.invalid", self.roots.len() + 1);
        self.roots.push(Root {
            host: host.clone(),
            dir: dir.to_path_buf(),
            single,
        });
        host
    }

    /// A layout to read from: checked now (a directory that is not one, or
    /// whose `index.json` is not sound, stops the command with exit 2), and
    /// named as a reference. Without a tag or digest it must hold one image.
    pub fn source(&mut self, arg: &LayoutArg) -> Result<String, HostError> {
        let shown = format!("{PREFIX}{}", arg.dir.display());
        let index = Store::at(&arg.dir)
            .check()
            .map_err(|e| HostError::Usage(e.to_string()))?;
        let host = self.add(&arg.dir, true);
        let base = format!("{host}/{SINGLE_NAME}");
        match (&arg.tag, &arg.digest) {
            (Some(tag), _) => Ok(format!("{base}:{tag}")),
            (None, Some(digest)) => Ok(format!("{base}@{digest}")),
            (None, None) => match index.entries().collect::<Vec<_>>().as_slice() {
                [one] => Ok(format!("{base}@{}", one.digest)),
                [] => Err(HostError::Usage(format!(
                    "{shown}: the layout holds no image"
                ))),
                _ => Err(HostError::Usage(format!(
                    "{shown}: the layout holds several images; name one: {shown}:TAG (tags: {})",
                    index.tags().join(", ")
                ))),
            },
        }
    }

    /// A layout as a repository (for its tags): checked now.
    pub fn repository(&mut self, arg: &LayoutArg) -> Result<String, HostError> {
        let shown = format!("{PREFIX}{}", arg.dir.display());
        if arg.tag.is_some() || arg.digest.is_some() {
            return Err(HostError::Usage(format!(
                "{shown}: name the layout, without a tag or digest"
            )));
        }
        Store::at(&arg.dir)
            .check()
            .map_err(|e| HostError::Usage(e.to_string()))?;
        Ok(format!("{}/{SINGLE_NAME}", self.add(&arg.dir, true)))
    }

    /// A layout to write to: checked now (it is one, or missing, or an
    /// empty directory), named as a reference. An image needs a name in a
    /// layout: `tag`, else `fallback` (the source's tag).
    pub fn destination(
        &mut self,
        arg: &LayoutArg,
        fallback: Option<&str>,
    ) -> Result<String, HostError> {
        let shown = format!("{PREFIX}{}", arg.dir.display());
        if arg.digest.is_some() {
            return Err(HostError::Usage(format!(
                "{shown}: a layout is written to by tag (oci:DIR:TAG), not by digest"
            )));
        }
        Store::at(&arg.dir)
            .check_writable()
            .map_err(|e| HostError::Usage(e.to_string()))?;
        let Some(tag) = arg.tag.as_deref().or(fallback) else {
            return Err(HostError::Usage(format!(
                "{shown}: name the image in the layout: {shown}:TAG"
            )));
        };
        let host = self.add(&arg.dir, true);
        Ok(format!("{host}/{SINGLE_NAME}:{tag}"))
    }

    /// A directory of layouts, one per repository (`DIR/<repository>`), to
    /// write to: its registry name.
    pub fn tree(&mut self, dir: &Path) -> Result<String, HostError> {
        let store = Store::at(dir);
        if store.exists() {
            return Err(HostError::Usage(format!(
                "{PREFIX}{}: this is one layout; a sync writes a directory of them \
                 (one per repository): give a directory that is not a layout",
                dir.display()
            )));
        }
        Ok(self.add(dir, false))
    }

    /// The repositories of a tree of layouts (every directory under `dir`
    /// holding one, by its path), each checked: a layout that is not sound
    /// stops the command, naming it.
    pub fn repositories(&mut self, dir: &Path) -> Result<(String, Vec<String>), HostError> {
        let host = self.tree(dir)?;
        let mut found = Vec::new();
        walk(dir, dir, 0, &mut found)?;
        found.sort();
        if found.is_empty() {
            return Err(HostError::Usage(format!(
                "{PREFIX}{}: no OCI image layout under it",
                dir.display()
            )));
        }
        Ok((host, found))
    }

    /// The root that `authority` names, if it is a layout's.
    pub fn root(&self, authority: &str) -> Option<&Root> {
        self.roots.iter().find(|r| r.host == authority)
    }

    /// `text` with every layout's registry name written back as `oci:DIR`.
    pub fn shown(&self, text: &str) -> String {
        let mut text = text.to_string();
        for root in &self.roots {
            if !text.contains(&root.host) {
                continue;
            }
            text = match root.single {
                true => text.replace(&format!("{}/{SINGLE_NAME}", root.host), &root.shown()),
                false => text.replace(&format!("{}/", root.host), &format!("{}/", root.shown())),
            };
            text = text.replace(&root.host, &root.shown());
        }
        text
    }

    /// Whether any layout is named.
    pub fn is_empty(&self) -> bool {
        self.roots.is_empty()
    }
}

/// The deepest a tree of layouts is looked into.
const MAX_DEPTH: usize = 8;

/// Adds the repositories of the layouts under `dir` (paths from `top`).
fn walk(top: &Path, dir: &Path, depth: usize, found: &mut Vec<String>) -> Result<(), HostError> {
    let read = |e: std::io::Error| HostError::Usage(format!("{}: {e}", dir.display()));
    let store = Store::at(dir);
    if dir != top && store.exists() {
        store.check().map_err(|e| HostError::Usage(e.to_string()))?;
        let relative = dir.strip_prefix(top).unwrap_or(dir);
        let name = relative
            .components()
            .map(|c| c.as_os_str().to_string_lossy())
            .collect::<Vec<_>>()
            .join("/");
        let valid = ocirelay_core::Reference::parse(&format!("x.invalid/{name}"))
            .is_ok_and(|r| r.repository == name);
        if !valid {
            return Err(HostError::Usage(format!(
                "{}: {name:?} is not a repository name (lower-case letters, digits, `.`, `_`, `-`)",
                dir.display()
            )));
        }
        found.push(name);
        return Ok(());
    }
    if depth >= MAX_DEPTH {
        return Ok(());
    }
    for entry in std::fs::read_dir(dir).map_err(read)? {
        let entry = entry.map_err(read)?;
        if entry.file_type().map_err(read)?.is_dir() {
            walk(top, &entry.path(), depth + 1, found)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod naming_tests {
    use super::*;

    #[test]
    fn reads_layout_arguments_as_skopeo_writes_them() {
        let arg = |t: &str| LayoutArg::parse(t).map(|r| r.map_err(|e| e.to_string()));
        assert_eq!(arg("registry.example/a:b"), None);
        assert_eq!(
            arg("oci:/tmp/x:v1"),
            Some(Ok(LayoutArg {
                dir: "/tmp/x".into(),
                tag: Some("v1".into()),
                digest: None
            }))
        );
        assert_eq!(
            arg("oci:rel/dir"),
            Some(Ok(LayoutArg {
                dir: "rel/dir".into(),
                tag: None,
                digest: None
            }))
        );
        let d = format!("sha256:{}", "a".repeat(64));
        assert_eq!(
            arg(&format!("oci:/x@{d}"))
                .and_then(Result::ok)
                .unwrap()
                .digest,
            Some(d)
        );
        for bad in ["oci:", "oci::v1", "oci:/x:v 1", "oci:/x@sha256:12"] {
            let e = arg(bad).unwrap().unwrap_err();
            assert!(e.starts_with(bad), "{bad}: {e}");
        }
    }

    #[test]
    fn what_the_user_reads_names_the_directory() {
        let mut layouts = Layouts::default();
        let single = layouts.add(Path::new("/data/one"), true);
        let tree = layouts.add(Path::new("/data/tree"), false);
        assert_ne!(single, tree);
        assert_eq!(layouts.add(Path::new("/data/one"), true), single);
        let text = format!("copied {single}/layout:v1 to {tree}/team/app:v1 ({tree})");
        assert_eq!(
            layouts.shown(&text),
            "copied oci:/data/one:v1 to oci:/data/tree/team/app:v1 (oci:/data/tree)"
        );
    }
}
