//! The registry cache: what one client has already seen, so no object is
//! requested twice in its lifetime. Pure policy; operations consult it.
//!
//! Objects are keyed per repository (`host/repo@digest`: a digest seen in one
//! repository is not assumed present in another) and tags map to digests
//! (`host/repo:tag`). Bytes are kept for objects up to 4 MiB; larger ones and
//! HEAD results are kept as descriptors, upgraded when bytes arrive.
//!
//! A key being fetched (or an object being written) is claimed by the
//! operation doing it: a second operation on the same key waits for the
//! first instead of asking the registry again. The claim is a [`Mark`] its
//! owner holds; it ends when the owner drops it, finished or abandoned, so
//! no waiter waits on an operation that is gone.

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use bytes::Bytes;

use crate::descriptor::Descriptor;
use crate::digest::Digest;

/// Objects up to this size are cached with their bytes.
pub const CACHE_DATA_LIMIT: u64 = 4 * 1024 * 1024;

/// What the cache knows of one object in one repository.
#[derive(Debug, Clone)]
pub struct Cached {
    /// Its descriptor.
    pub descriptor: Descriptor,
    /// Its verified bytes, when small enough and once read (shared, not
    /// copied, with whoever reads them from the cache).
    pub data: Option<Bytes>,
}

/// What an operation claims while it works on it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CacheKey {
    /// Reading `host/repo@digest`.
    Object(String, Digest),
    /// Reading `host/repo:tag`.
    Tag(String, String),
    /// Making `host/repo@digest` present (a copy or push of it).
    Write(String, Digest),
}

/// A claim on a [`CacheKey`]: while it lives, other operations wait for
/// its owner's result. Dropping it ends the claim.
#[derive(Debug)]
pub struct Mark {
    _alive: Arc<()>,
}

/// The cache of one client.
#[derive(Debug, Default)]
pub struct Cache {
    disabled: bool,
    objects: HashMap<(String, Digest), Cached>,
    tags: HashMap<(String, String), Digest>,
    /// Claims, alive while their [`Mark`] is.
    claims: HashMap<CacheKey, Weak<()>>,
    /// Claims kept before ended ones are swept out.
    sweep_at: usize,
}

impl Cache {
    /// An empty cache; a disabled one remembers nothing and dedupes nothing.
    pub fn new(enabled: bool) -> Self {
        Cache {
            disabled: !enabled,
            ..Cache::default()
        }
    }

    /// The object `digest` in `repo` (`host/repository`).
    pub fn object(&self, repo: &str, digest: &Digest) -> Option<&Cached> {
        self.objects.get(&(repo.to_string(), digest.clone()))
    }

    /// The object `tag` in `repo` points at.
    pub fn tag(&self, repo: &str, tag: &str) -> Option<&Cached> {
        let digest = self.tags.get(&(repo.to_string(), tag.to_string()))?;
        self.object(repo, digest)
    }

    /// Records an object (and the tag it was found by). Bytes are kept only
    /// up to [`CACHE_DATA_LIMIT`]; a descriptor never replaces known bytes.
    pub fn insert(
        &mut self,
        repo: &str,
        tag: Option<&str>,
        descriptor: &Descriptor,
        data: Option<Bytes>,
    ) {
        if self.disabled {
            return;
        }
        let key = (repo.to_string(), descriptor.digest.clone());
        let data = data.filter(|d| d.len() as u64 <= CACHE_DATA_LIMIT);
        let mut stored = descriptor.clone();
        stored.data = None;
        match self.objects.get_mut(&key) {
            Some(existing) => {
                existing.descriptor = stored;
                if data.is_some() {
                    existing.data = data;
                }
            }
            None => {
                self.objects.insert(
                    key,
                    Cached {
                        descriptor: stored,
                        data,
                    },
                );
            }
        }
        if let Some(tag) = tag {
            self.tags.insert(
                (repo.to_string(), tag.to_string()),
                descriptor.digest.clone(),
            );
        }
    }

    /// Records what an operation made present at `at` (its repository, and
    /// its tag when it has one): pushes and mounts.
    pub fn record(
        &mut self,
        at: &crate::reference::Reference,
        descriptor: &Descriptor,
        data: Option<Bytes>,
    ) {
        self.insert(&at.cache_namespace(), at.tag.as_deref(), descriptor, data);
    }

    /// Whether an operation is working on `key` now.
    pub fn is_claimed(&self, key: &CacheKey) -> bool {
        self.claims.get(key).is_some_and(|w| w.strong_count() > 0)
    }

    /// Claims `key` for the caller, unless another operation holds it:
    /// `None` then, and the caller waits for that one's result. A disabled
    /// cache dedupes nothing: every claim succeeds and none is kept.
    pub fn claim(&mut self, key: CacheKey) -> Option<Mark> {
        let mark = Mark {
            _alive: Arc::new(()),
        };
        if self.disabled {
            return Some(mark);
        }
        if self.is_claimed(&key) {
            return None;
        }
        if self.claims.len() >= self.sweep_at {
            self.claims.retain(|_, w| w.strong_count() > 0);
            self.sweep_at = 2 * self.claims.len() + 16;
        }
        self.claims.insert(key, Arc::downgrade(&mark._alive));
        Some(mark)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desc(bytes: &[u8]) -> Descriptor {
        Descriptor::new("m", Digest::sha256(bytes), bytes.len() as u64)
    }

    #[test]
    fn per_repository_keys_and_tags() {
        let mut c = Cache::new(true);
        let d = desc(b"x");
        c.insert("h/a", Some("v1"), &d, Some(Bytes::from_static(b"x")));
        assert!(c.object("h/a", &d.digest).unwrap().data.is_some());
        assert!(
            c.object("h/b", &d.digest).is_none(),
            "not assumed present elsewhere"
        );
        assert_eq!(c.tag("h/a", "v1").unwrap().descriptor, d);
        assert!(c.tag("h/a", "v2").is_none());
    }

    #[test]
    fn head_results_upgrade_to_bytes_and_never_downgrade() {
        let mut c = Cache::new(true);
        let d = desc(b"x");
        c.insert("h/a", None, &d, None);
        assert!(c.object("h/a", &d.digest).unwrap().data.is_none());
        c.insert("h/a", None, &d, Some(Bytes::from_static(b"x")));
        c.insert("h/a", None, &d, None);
        assert!(c.object("h/a", &d.digest).unwrap().data.is_some());
    }

    #[test]
    fn large_objects_keep_only_their_descriptor_and_off_means_off() {
        let mut c = Cache::new(true);
        let big = vec![0u8; CACHE_DATA_LIMIT as usize + 1];
        let d = desc(&big);
        c.insert("h/a", None, &d, Some(big.into()));
        assert!(c.object("h/a", &d.digest).unwrap().data.is_none());

        let mut off = Cache::new(false);
        off.insert("h/a", Some("t"), &d, None);
        assert!(off.object("h/a", &d.digest).is_none());
        let k = CacheKey::Tag("h/a".into(), "t".into());
        let _first = off.claim(k.clone());
        assert!(off.claim(k.clone()).is_some() && !off.is_claimed(&k));
    }

    #[test]
    fn claims_end_with_their_mark() {
        let mut c = Cache::new(true);
        let k = CacheKey::Tag("h/a".into(), "t".into());
        let mark = c.claim(k.clone()).expect("unclaimed");
        assert!(c.is_claimed(&k));
        assert!(c.claim(k.clone()).is_none(), "held by another");
        let other = CacheKey::Write("h/a".into(), Digest::sha256(b"x"));
        assert!(c.claim(other.clone()).is_some(), "another key");
        drop(mark);
        assert!(!c.is_claimed(&k), "dropped, finished or not");
        assert!(c.claim(k).is_some());
        // Ended claims are swept out as new ones come.
        for i in 0..100 {
            drop(c.claim(CacheKey::Tag("h/a".into(), i.to_string())));
        }
        assert!(c.claims.len() < 40, "{}", c.claims.len());
    }

    #[test]
    fn a_sweep_keeps_live_claims_and_what_it_keeps_stays_near_them() {
        let mut c = Cache::new(true);
        let key = |i: usize| CacheKey::Tag("h/a".into(), format!("t{i}"));
        // Ten operations stay in flight while a thousand others come and go.
        let live: Vec<Mark> = (0..10).map(|i| c.claim(key(i)).expect("free")).collect();
        for i in 10..1010 {
            drop(c.claim(key(i)).expect("free"));
            // Swept once ended claims outnumber the live ones and 16 more.
            assert!(c.claims.len() <= 2 * live.len() + 16, "{}", c.claims.len());
        }
        for i in 0..10 {
            assert!(c.claim(key(i)).is_none(), "t{i} is in flight still");
        }
        assert!(c.claim(key(10)).is_some(), "an ended claim is free again");

        // With every claim in flight, each sweep finds them all live: the
        // next comes only after as many claims again, so sweeping stays
        // linear in the claims made, not quadratic.
        let mut c = Cache::new(true);
        let mut live = Vec::new();
        for i in 0..1000 {
            let before = c.sweep_at;
            live.push(c.claim(key(i)).expect("free"));
            if c.sweep_at != before {
                assert!(c.sweep_at >= 2 * (live.len() - 1), "{}", c.sweep_at);
            }
        }
    }
}
