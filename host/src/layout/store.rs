//! One OCI image layout directory on disk: its blobs (each appearing under
//! its digest only once whole and checked) and its `index.json` (changed
//! under a lock on the directory, written whole and renamed into place, so
//! that runs writing to one layout side by side lose nothing).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use ocirelay_core::digest::{Algorithm, Hasher};
use ocirelay_core::layout::index::{check_layout_file, INDEX_FILE, LAYOUT_FILE, LAYOUT_FILE_TEXT};
use ocirelay_core::layout::LayoutIndex;
use ocirelay_core::Digest;

/// What went wrong with a layout, naming the file.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The directory is not a layout, or its files are not what the image
    /// spec says: nothing is written to it.
    #[error("{path}: {why}")]
    Invalid {
        /// The file or directory.
        path: String,
        /// What is wrong.
        why: String,
    },
    /// Reading or writing a file failed (a full disk, permissions).
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The failure.
        source: std::io::Error,
    },
    /// What was written does not match the digest it was written as.
    #[error("{0}")]
    Mismatch(String),
}

impl StoreError {
    /// An I/O failure on `path`.
    pub fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
        move |source| StoreError::Io {
            path: path.display().to_string(),
            source,
        }
    }
}

/// Names for files being written, unique in this process.
static NEXT_PART: AtomicU64 = AtomicU64::new(0);

/// One layout directory.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

impl Store {
    /// The layout at `dir`, which may not exist yet.
    pub fn at(dir: impl Into<PathBuf>) -> Self {
        Store { dir: dir.into() }
    }

    /// Its directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether `dir` holds a layout (its `oci-layout` file is there).
    pub fn exists(&self) -> bool {
        self.dir.join(LAYOUT_FILE).is_file()
    }

    /// Checks that the directory is a layout whose `oci-layout` and
    /// `index.json` are sound, and returns its index.
    pub fn check(&self) -> Result<LayoutIndex, StoreError> {
        let marker = self.dir.join(LAYOUT_FILE);
        let text = std::fs::read(&marker).map_err(|e| StoreError::Invalid {
            path: self.dir.display().to_string(),
            why: match e.kind() {
                std::io::ErrorKind::NotFound => {
                    format!("not an OCI image layout (no {LAYOUT_FILE})")
                }
                _ => format!("reading {LAYOUT_FILE}: {e}"),
            },
        })?;
        check_layout_file(&text).map_err(|e| invalid(&marker, e))?;
        self.index()
    }

    /// Checks that the directory can become a layout: it is one, or it is
    /// missing or empty (then nothing is made until the first write).
    pub fn check_writable(&self) -> Result<(), StoreError> {
        match std::fs::read_dir(&self.dir) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StoreError::io(&self.dir)(e)),
            Ok(entries) => match entries.count() {
                0 => Ok(()),
                _ => self.check().map(drop),
            },
        }
    }

    /// The index as it is now (an empty one where the layout has none yet).
    pub fn index(&self) -> Result<LayoutIndex, StoreError> {
        let path = self.dir.join(INDEX_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => LayoutIndex::parse(&bytes).map_err(|e| invalid(&path, e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !self.exists() => {
                Ok(LayoutIndex::default())
            }
            Err(e) => Err(StoreError::io(&path)(e)),
        }
    }

    /// Where the blob of `digest` is (whether or not it is there).
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.dir
            .join("blobs")
            .join(digest.algorithm().name())
            .join(digest.hex())
    }

    /// The size of the blob of `digest`, if the layout has it.
    pub fn blob_size(&self, digest: &Digest) -> Option<u64> {
        let meta = std::fs::metadata(self.blob_path(digest)).ok()?;
        meta.is_file().then_some(meta.len())
    }

    /// Makes the directory a layout if it is not one yet.
    pub fn create(&self) -> Result<(), StoreError> {
        if self.exists() {
            return Ok(());
        }
        let blobs = self.dir.join("blobs");
        std::fs::create_dir_all(&blobs).map_err(StoreError::io(&blobs))?;
        let _lock = self.lock()?;
        if self.exists() {
            return Ok(());
        }
        let index = self.dir.join(INDEX_FILE);
        if !index.exists() {
            self.replace(&index, &LayoutIndex::default().to_json())?;
        }
        // The marker last: a layout is only one once it is whole.
        self.replace(&self.dir.join(LAYOUT_FILE), LAYOUT_FILE_TEXT.as_bytes())
    }

    /// A new file to write a blob into, in the layout (so that renaming
    /// it into place is atomic), named so that no reader takes it for a
    /// blob.
    pub fn part(&self) -> Result<(PathBuf, std::fs::File), StoreError> {
        self.create()?;
        let n = NEXT_PART.fetch_add(1, Ordering::Relaxed);
        let path = self
            .dir
            .join("blobs")
            .join(format!(".ocirelay-{}-{n}.part", std::process::id()));
        let file = std::fs::File::create_new(&path).map_err(StoreError::io(&path))?;
        Ok((path, file))
    }

    /// Puts the written `part` (of `size` bytes, hashed by `sha256` as it
    /// was written) under `digest`, once it is shown to be that; removes
    /// it either way.
    pub fn commit(
        &self,
        part: &Path,
        sha256: Hasher,
        size: u64,
        digest: &Digest,
    ) -> Result<(), StoreError> {
        let placed = (|| {
            let actual = match digest.algorithm() {
                Algorithm::Sha256 => sha256.finish(),
                other => hash_file(part, other)?,
            };
            if &actual != digest {
                return Err(StoreError::Mismatch(format!(
                    "{digest}: the {size} bytes written hash to {actual}; nothing was stored"
                )));
            }
            let target = self.blob_path(digest);
            if let Some(dir) = target.parent() {
                std::fs::create_dir_all(dir).map_err(StoreError::io(dir))?;
            }
            // On disk before it is named: a crash never leaves a short blob
            // under a digest.
            std::fs::File::open(part)
                .and_then(|f| f.sync_data())
                .map_err(StoreError::io(part))?;
            std::fs::rename(part, &target).map_err(StoreError::io(&target))
        })();
        // Renamed, it is gone from there; else nothing unchecked stays.
        let _ = std::fs::remove_file(part);
        placed
    }

    /// Writes `bytes` as the blob of `digest`, checked, atomically.
    pub fn write_blob(&self, digest: &Digest, bytes: &[u8]) -> Result<(), StoreError> {
        if self.blob_size(digest) == Some(bytes.len() as u64) {
            return Ok(());
        }
        let (path, mut file) = self.part()?;
        let written = file.write_all(bytes).map_err(StoreError::io(&path));
        drop(file);
        if let Err(e) = written {
            let _ = std::fs::remove_file(&path);
            return Err(e);
        }
        let mut sha256 = Hasher::new(Algorithm::Sha256);
        sha256.update(bytes);
        self.commit(&path, sha256, bytes.len() as u64, digest)
    }

    /// Changes `index.json` with `change`, under the directory's lock: read,
    /// changed, written whole beside it and renamed over it.
    pub fn update_index(
        &self,
        change: impl FnOnce(&mut LayoutIndex) -> bool,
    ) -> Result<(), StoreError> {
        self.create()?;
        let _lock = self.lock()?;
        let mut index = self.index()?;
        if change(&mut index) {
            self.replace(&self.dir.join(INDEX_FILE), &index.to_json())?;
        }
        Ok(())
    }

    /// An exclusive lock on the layout's directory, released when dropped
    /// (an advisory lock: other writers that take it, ours, wait).
    fn lock(&self) -> Result<std::fs::File, StoreError> {
        let dir = std::fs::File::open(&self.dir).map_err(StoreError::io(&self.dir))?;
        dir.lock().map_err(StoreError::io(&self.dir))?;
        Ok(dir)
    }

    /// Writes `bytes` to `path` by way of a file beside it, renamed over it.
    fn replace(&self, path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
        let n = NEXT_PART.fetch_add(1, Ordering::Relaxed);
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
        let temp = path.with_file_name(format!(".{name}.{}-{n}.part", std::process::id()));
        let written = std::fs::File::create(&temp).and_then(|mut f| {
            f.write_all(bytes)?;
            f.sync_data()
        });
        if let Err(e) = written {
            let _ = std::fs::remove_file(&temp);
            return Err(StoreError::io(path)(e));
        }
        std::fs::rename(&temp, path).map_err(|e| {
            let _ = std::fs::remove_file(&temp);
            StoreError::io(path)(e)
        })
    }
}

/// The digest of the file at `path` by `algorithm`.
fn hash_file(path: &Path, algorithm: Algorithm) -> Result<Digest, StoreError> {
    use std::io::Read as _;
    let mut file = std::fs::File::open(path).map_err(StoreError::io(path))?;
    let mut hasher = Hasher::new(algorithm);
    let mut buf = vec![0; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(StoreError::io(path))?;
        if n == 0 {
            return Ok(hasher.finish());
        }
        hasher.update(&buf[..n]);
    }
}

/// A core error about the file at `path`.
fn invalid(path: &Path, e: ocirelay_core::Error) -> StoreError {
    let why = match e {
        ocirelay_core::Error::InvalidInput(why) => why,
        other => other.to_string(),
    };
    // The core names the file too; the path says it already.
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    let why = why
        .strip_prefix(&format!("{name}: "))
        .map(str::to_string)
        .unwrap_or(why);
    StoreError::Invalid {
        path: path.display().to_string(),
        why,
    }
}
