//! Which tags of a listed repository a sync takes, and which shard of a
//! split run takes a repository.

use crate::reference::Reference;
use crate::sync::config::{SyncConfig, Tags};

/// A tag read as a version, as skopeo's semver filter reads it: a leading
/// `v` dropped, a missing minor or patch taken as 0 (`v1.2` is 1.2.0);
/// `None` for a tag that is no version (`latest`, `1.2.3.4`).
pub fn version_of(tag: &str) -> Option<semver::Version> {
    let text = tag.strip_prefix('v').unwrap_or(tag);
    let (core, rest) = match text.find(['-', '+']) {
        Some(i) => text.split_at(i),
        None => (text, ""),
    };
    let parts: Vec<&str> = core.split('.').collect();
    if parts.is_empty()
        || parts.len() > 3
        || parts
            .iter()
            .any(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return None;
    }
    let mut full = parts.join(".");
    for _ in parts.len()..3 {
        full.push_str(".0");
    }
    semver::Version::parse(&format!("{full}{rest}")).ok()
}

/// The tags of `listed` (a repository's, in the registry's order) that
/// `tags` selects, none that the config excludes, and of the versions
/// among them only the newest `newest`; in the registry's order.
pub fn select(tags: &Tags, listed: &[String], config: &SyncConfig) -> Vec<String> {
    let chosen = |tag: &&String| match tags {
        Tags::Listed(wanted) => wanted.contains(tag),
        Tags::All => true,
        Tags::Regex(regex) => regex.is_match(tag),
        Tags::Semver(range) => version_of(tag).is_some_and(|v| range.matches(&v)),
    };
    let mut kept: Vec<String> = listed
        .iter()
        .filter(chosen)
        .filter(|tag| !config.exclude_tags.iter().any(|e| e.is_match(tag)))
        .cloned()
        .collect();
    if let Some(newest) = config.newest {
        let mut versions: Vec<semver::Version> =
            kept.iter().filter_map(|t| version_of(t)).collect();
        versions.sort_unstable_by(|a, b| b.cmp(a));
        versions.dedup();
        if let Some(oldest_kept) = versions.get(newest.saturating_sub(1)).cloned() {
            kept.retain(|t| version_of(t).is_none_or(|v| v >= oldest_kept));
        }
    }
    kept
}

/// Which of `count` shards takes `repository` (a stable hash of its
/// `host/name`, FNV-1a): the same on every machine and every run.
pub fn shard_of(repository: &Reference, count: u32) -> u32 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let key = format!("{}/{}", repository.host, repository.repository);
    for byte in key.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (hash % u64::from(count.max(1))) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &str) -> SyncConfig {
        SyncConfig::parse(&format!(
            r#"{{"r.example": {{"images": {{"team/app": []}}}}, "ocirelay": {{{extra}}}}}"#
        ))
        .unwrap()
    }

    fn tags(list: &[&str]) -> Vec<String> {
        list.iter().map(|t| t.to_string()).collect()
    }

    #[test]
    fn versions_are_read_as_skopeo_reads_them() {
        assert_eq!(version_of("v1.2"), Some(semver::Version::new(1, 2, 0)));
        assert_eq!(version_of("3"), Some(semver::Version::new(3, 0, 0)));
        assert_eq!(version_of("1.2.3-rc1").unwrap().pre.as_str(), "rc1");
        for no in ["latest", "1.2.3.4", "v", "1..2", "1.2a", ""] {
            assert_eq!(version_of(no), None, "{no}");
        }
    }

    #[test]
    fn filters_exclusions_and_the_newest_few() {
        let listed = tags(&[
            "latest",
            "1.0.0",
            "1.1.0",
            "1.2.0-rc1",
            "1.2.0",
            "2.0.0",
            "nightly-1",
        ]);
        let plain = config("");
        let semver = Tags::Semver(semver::VersionReq::parse(">= 1.1, < 2").unwrap());
        assert_eq!(select(&semver, &listed, &plain), tags(&["1.1.0", "1.2.0"]));
        let regex = Tags::Regex(regex_lite::Regex::new("^1\\.").unwrap());
        assert_eq!(
            select(&regex, &listed, &plain),
            tags(&["1.0.0", "1.1.0", "1.2.0-rc1", "1.2.0"])
        );
        let excluding = config(r#""exclude-tags": ["-rc", "^nightly"]"#);
        assert_eq!(
            select(&Tags::All, &listed, &excluding),
            tags(&["latest", "1.0.0", "1.1.0", "1.2.0", "2.0.0"])
        );
        let newest = config(r#""newest": 2"#);
        assert_eq!(
            select(&Tags::All, &listed, &newest),
            tags(&["latest", "1.2.0", "2.0.0", "nightly-1"])
        );
        let listed_only = Tags::Listed(tags(&["2.0.0", "gone"]));
        assert_eq!(select(&listed_only, &listed, &plain), tags(&["2.0.0"]));
    }

    #[test]
    fn shards_split_repositories_the_same_way_every_time() {
        let repos: Vec<Reference> = (0..200)
            .map(|i| Reference::parse(&format!("r.example/team/app{i}")).unwrap())
            .collect();
        let mut counts = [0; 3];
        for r in &repos {
            let shard = shard_of(r, 3);
            assert_eq!(shard, shard_of(r, 3));
            counts[shard as usize] += 1;
        }
        assert!(counts.iter().all(|&c| c > 40), "{counts:?}");
        assert_eq!(shard_of(&repos[0], 1), 0);
    }
}
