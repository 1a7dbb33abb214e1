//! Image references (`host/repository:tag@digest`) with the distribution
//! grammar and Docker Hub's normalization rules.

use std::fmt;
use std::str::FromStr;

use crate::digest::Digest;
use crate::error::{Error, Result};

/// The canonical name of Docker Hub in a normalized reference.
pub const DOCKER_HUB: &str = "docker.io";

/// Host names that all mean Docker Hub.
const DOCKER_HUB_ALIASES: &[&str] = &[
    "docker.io",
    "index.docker.io",
    "registry-1.docker.io",
    "registry.hub.docker.com",
];

/// Where Docker Hub's registry API actually answers.
pub const DOCKER_HUB_API_HOST: &str = "registry-1.docker.io";

const MAX_NAME_LEN: usize = 255;
const MAX_TAG_LEN: usize = 128;

/// A parsed, normalized reference. The tag is never defaulted here: a
/// reference with neither tag nor digest stays that way (`latest` is applied
/// by lookups).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    /// Registry host (with port), `docker.io` for Docker Hub.
    pub host: String,
    /// Repository path, e.g. `library/hello-world`.
    pub repository: String,
    /// Tag, if one was given.
    pub tag: Option<String>,
    /// Digest, if one was given.
    pub digest: Option<Digest>,
}

/// Whether `host` names Docker Hub (any alias).
pub fn is_docker_hub(host: &str) -> bool {
    DOCKER_HUB_ALIASES.contains(&host)
}

impl Reference {
    /// Parses a reference and applies Docker Hub normalization:
    /// `hello-world:latest` -> `docker.io/library/hello-world:latest`.
    pub fn parse(input: &str) -> Result<Self> {
        let mut r = parse_relative(input)?;
        r.normalize();
        Ok(r)
    }

    /// Docker Hub normalization: no host or any Docker Hub alias becomes
    /// `docker.io`, and a one-component Docker Hub repository gets `library/`.
    pub fn normalize(&mut self) {
        if self.host.is_empty() || is_docker_hub(&self.host) {
            self.host = DOCKER_HUB.to_string();
            if !self.repository.contains('/') {
                self.repository = format!("library/{}", self.repository);
            }
        }
    }

    /// The tag to look up: the given one, or `latest` when neither tag nor digest is set.
    pub fn tag_or_latest(&self) -> Option<&str> {
        match (&self.tag, &self.digest) {
            (Some(t), _) => Some(t),
            (None, None) => Some("latest"),
            (None, Some(_)) => None,
        }
    }

    /// What a lookup addresses: the digest when there is one, else the tag (default `latest`).
    pub fn object(&self) -> String {
        match (&self.digest, self.tag_or_latest()) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.to_string(),
            (None, None) => "latest".to_string(),
        }
    }

    /// `host/repository`: the namespace the registry cache keys objects in.
    pub fn cache_namespace(&self) -> String {
        format!("{}/{}", self.host, self.repository)
    }

    /// The same repository with another digest and no tag.
    pub fn with_digest(&self, digest: Digest) -> Self {
        Reference {
            host: self.host.clone(),
            repository: self.repository.clone(),
            tag: None,
            digest: Some(digest),
        }
    }

    /// Display form, dropping the digest when it equals `known` (so
    /// `hello-world:latest@sha256:…` prints as `hello-world:latest`).
    pub fn string_with_known_digest(&self, known: &Digest) -> String {
        if self.digest.as_ref() == Some(known) {
            let mut r = self.clone();
            r.digest = None;
            r.to_string()
        } else {
            self.to_string()
        }
    }

    /// The repository as displayed: `library/` dropped on Docker Hub, and
    /// `docker.io/` too unless the rest would then read as a host
    /// (`docker.io/registry.example/app` is Docker Hub's).
    fn display_name(&self) -> String {
        if self.host == DOCKER_HUB {
            let repo = match self.repository.strip_prefix("library/") {
                Some(rest) if !rest.contains('/') => rest,
                _ => &self.repository,
            };
            match repo.split_once('/') {
                Some((first, _)) if names_host(first) => format!("{DOCKER_HUB}/{repo}"),
                _ => repo.to_string(),
            }
        } else if self.host.is_empty() {
            self.repository.clone()
        } else {
            format!("{}/{}", self.host, self.repository)
        }
    }
}

/// Denormalized display: no `docker.io/`, no `library/` for official images.
impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display_name())?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

impl FromStr for Reference {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Reference::parse(s)
    }
}

impl serde::Serialize for Reference {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Reference {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Reference::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Parses without normalization; the host is empty when none was given.
fn parse_relative(input: &str) -> Result<Reference> {
    let bad = |reason: &str| Error::InvalidReference {
        input: input.to_string(),
        reason: reason.to_string(),
    };
    if input.is_empty() {
        return Err(bad("empty reference"));
    }

    let (rest, digest) = match input.split_once('@') {
        Some((rest, d)) => {
            let digest = Digest::parse(d).map_err(|e| match e {
                Error::InvalidDigest { reason, .. } => bad(&format!("digest {d:?}: {reason}")),
                other => other,
            })?;
            (rest, Some(digest))
        }
        None => (input, None),
    };

    // A tag's `:` comes after the last `/`; an earlier one is a port.
    let last_slash = rest.rfind('/').unwrap_or(0);
    let (name, tag) = match rest[last_slash..].find(':') {
        Some(i) => {
            let split = last_slash + i;
            (&rest[..split], Some(&rest[split + 1..]))
        }
        None => (rest, None),
    };
    if let Some(t) = tag {
        if !is_valid_tag(t) {
            return Err(bad(&format!(
                "tag {t:?} must match [A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}}"
            )));
        }
    }

    let (host, repository) = match name.split_once('/') {
        Some((first, remainder)) if names_host(first) => (first, remainder),
        _ => ("", name),
    };
    if repository.len() > MAX_NAME_LEN {
        return Err(bad("repository longer than 255 characters"));
    }
    if repository.is_empty() {
        return Err(bad("repository is empty"));
    }
    if repository.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(bad(&format!(
            "repository {repository:?} must be lower-case"
        )));
    }
    for component in repository.split('/') {
        if !valid_path_component(component) {
            return Err(bad(&format!(
                "repository component {component:?} must be lower-case alphanumerics separated by '.', '_', '__' or dashes"
            )));
        }
    }

    Ok(Reference {
        host: host.to_string(),
        repository: repository.to_string(),
        tag: tag.map(str::to_string),
        digest,
    })
}

/// Whether a name's first component is a registry host, by the grammar
/// the original uses (cue-labs `ociref`): a domain name with a dot, an IPv4
/// address or `[IPv6]`, each with an optional port, or one label with a
/// port. Anything else (`localhost`, `foo_bar.com`) starts a Docker Hub
/// repository.
fn names_host(first: &str) -> bool {
    valid_host(first) && (first.contains('.') || first.contains(':'))
}

/// Whether `t` is a tag as the distribution grammar has them
/// (`[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`).
pub fn is_valid_tag(t: &str) -> bool {
    let mut bytes = t.bytes();
    match bytes.next() {
        Some(b) if b.is_ascii_alphanumeric() || b == b'_' => {}
        _ => return false,
    }
    t.len() <= MAX_TAG_LEN
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// `[a-z0-9]+` joined by `.`, `_`, `__` or any run of `-`.
fn valid_path_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// A domain name (dot-separated labels), an IPv4 address, or `[IPv6]`, with an optional port.
fn valid_host(h: &str) -> bool {
    let (name, port) = if let Some(rest) = h.strip_prefix('[') {
        let Some((v6, after)) = rest.split_once(']') else {
            return false;
        };
        if v6.is_empty()
            || !v6
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        {
            return false;
        }
        match after {
            "" => return true,
            p => match p.strip_prefix(':') {
                Some(port) => return valid_port(port),
                None => return false,
            },
        }
    } else {
        match h.split_once(':') {
            Some((n, p)) => (n, Some(p)),
            None => (h, None),
        }
    };
    if let Some(p) = port {
        if !valid_port(p) {
            return false;
        }
    }
    !name.is_empty()
        && name.split('.').all(|label| {
            let b = label.as_bytes();
            !b.is_empty()
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter().all(|x| x.is_ascii_alphanumeric() || *x == b'-')
        })
}

/// Any run of digits, as the original's grammar takes it.
fn valid_port(p: &str) -> bool {
    !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:53641cd209a4fecfc68e21a99871ce8c6920b2e7502df0a20671c6fccc73a7c6";

    fn norm(s: &str) -> (String, String) {
        let r = Reference::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"));
        let mut full = format!("{}/{}", r.host, r.repository);
        if let Some(t) = &r.tag {
            full.push(':');
            full.push_str(t);
        }
        if let Some(d) = &r.digest {
            full.push('@');
            full.push_str(&d.to_string());
        }
        (full, r.to_string())
    }

    #[test]
    fn docker_hub_normalization_and_display() {
        let cases = [
            (
                "hello-world:latest",
                "docker.io/library/hello-world:latest",
                "hello-world:latest",
            ),
            (
                "tianon/true:oci",
                "docker.io/tianon/true:oci",
                "tianon/true:oci",
            ),
            (
                "docker.io/tianon/true:oci",
                "docker.io/tianon/true:oci",
                "tianon/true:oci",
            ),
            (
                "localhost:5000/foo",
                "localhost:5000/foo",
                "localhost:5000/foo",
            ),
            // A Docker Hub repository whose first component reads as a
            // host keeps `docker.io/`, so that what is shown parses back
            // (found by fuzzing).
            (
                "docker.io/registry.example/app",
                "docker.io/registry.example/app",
                "docker.io/registry.example/app",
            ),
            (
                "registry-1.docker.io/localhost/app:v1",
                "docker.io/localhost/app:v1",
                "localhost/app:v1",
            ),
            // The original's grammar: `localhost` without a port, or a first
            // component that is no domain name, starts a Hub repository.
            ("localhost/foo", "docker.io/localhost/foo", "localhost/foo"),
            (
                "foo_bar.com/x:1",
                "docker.io/foo_bar.com/x:1",
                "foo_bar.com/x:1",
            ),
            (
                "registry.example:123456/app",
                "registry.example:123456/app",
                "registry.example:123456/app",
            ),
            (
                "Registry.Example/app",
                "Registry.Example/app",
                "Registry.Example/app",
            ),
            (
                "docker.io/library/localhost",
                "docker.io/library/localhost",
                "localhost",
            ),
        ];
        for (input, normalized, displayed) in cases {
            assert_eq!(
                norm(input),
                (normalized.to_string(), displayed.to_string()),
                "{input}"
            );
        }
        for alias in [
            "hello-world",
            "library/hello-world",
            "docker.io/hello-world",
            "docker.io/library/hello-world",
            "index.docker.io/library/hello-world",
            "registry-1.docker.io/library/hello-world",
            "registry.hub.docker.com/library/hello-world",
        ] {
            assert_eq!(
                norm(alias),
                (
                    "docker.io/library/hello-world".to_string(),
                    "hello-world".to_string()
                ),
                "{alias}"
            );
        }
    }

    #[test]
    fn tag_is_never_defaulted_in_the_value() {
        let r = Reference::parse("hello-world").unwrap();
        assert_eq!(r.tag, None);
        assert_eq!(r.tag_or_latest(), Some("latest"));
        assert_eq!(r.object(), "latest");
        let r = Reference::parse(&format!("hello-world@{D}")).unwrap();
        assert_eq!(r.tag_or_latest(), None);
        assert_eq!(r.object(), D);
    }

    #[test]
    fn tag_and_digest_together() {
        let r = Reference::parse(&format!("localhost:5000/a/b:v1.0@{D}")).unwrap();
        assert_eq!(r.host, "localhost:5000");
        assert_eq!(r.repository, "a/b");
        assert_eq!(r.tag.as_deref(), Some("v1.0"));
        assert_eq!(r.digest.as_ref().unwrap().to_string(), D);
        assert_eq!(r.object(), D, "the digest wins over the tag");
    }

    #[test]
    fn string_with_known_digest() {
        let r = Reference::parse(&format!("hello-world:latest@{D}")).unwrap();
        let d = Digest::parse(D).unwrap();
        assert_eq!(r.string_with_known_digest(&d), "hello-world:latest");
        let other = Digest::sha256(b"other");
        assert_eq!(
            r.string_with_known_digest(&other),
            format!("hello-world:latest@{D}")
        );
    }

    #[test]
    fn json_is_the_display_string_both_ways() {
        let r = Reference::parse("docker.io/library/hello-world:latest").unwrap();
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(json, "\"hello-world:latest\"");
        let back: Reference = serde_json::from_str(&json).unwrap();
        assert_eq!(back, r);
        assert!(serde_json::from_str::<Reference>("\"Foo\"").is_err());
    }

    #[test]
    fn invalid_input_is_an_error_quoting_it() {
        for bad in [
            "...",
            "localhost:5000/foo:#",
            "localhost:5000/foo?test",
            "foo@bad_digest",
            "Hello-World",
            "localhost:5000/Foo",
            "",
            "foo:",
            "foo/",
            "/foo",
            "a//b",
            "foo-:tag",
            "localhost:abc/foo",
            "[]/x",
            "[zz::1]/x",
            "[::1]x/y",
            "[::1]:/x",
            "-a.example/x",
            "a-.example/x",
            "a..example/x",
            ".example/x",
        ] {
            let err = Reference::parse(bad).unwrap_err();
            assert!(
                matches!(err, Error::InvalidReference { ref input, .. } if input == bad),
                "{bad}: {err}"
            );
            assert!(err.to_string().contains(&format!("{bad:?}")), "{err}");
        }
    }

    #[test]
    fn grammar_edge_cases_that_are_valid() {
        for ok in [
            "a__b/c.d/e-f---g",
            "127.0.0.1:5000/x",
            "[::1]:5000/x:t",
            "example.com/x:_t",
            "x:Tag.With-Mixed_Case",
        ] {
            Reference::parse(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        let long_tag = format!("x:{}", "a".repeat(129));
        assert!(Reference::parse(&long_tag).is_err());
        // A repository of 255 characters at most; the host does not count
        // (the original's limit).
        let name = |len: usize| format!("example.com/{}", "a".repeat(len));
        assert!(Reference::parse(&name(255)).is_ok());
        assert!(Reference::parse(&name(256)).is_err());
        // sha384, as go-digest takes it.
        let d384 = format!("sha384:{}", "a".repeat(96));
        let r = Reference::parse(&format!("example.com/x@{d384}")).unwrap();
        assert_eq!(r.digest.unwrap().to_string(), d384);
        // Docker Hub drops `library/` only where nothing nests under it.
        assert_eq!(
            Reference::parse("docker.io/library/a/b:t")
                .unwrap()
                .to_string(),
            "library/a/b:t"
        );
    }
}
