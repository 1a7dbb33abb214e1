//! Content digests (`sha256:…`, `sha384:…`, `sha512:…`) and a streaming verifier that
//! checks both digest and size as bytes pass through it.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest as _, Sha256, Sha384, Sha512};

use crate::error::{Error, Result};

/// The hash algorithms a digest may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    /// SHA-256: 64 lower-case hex characters.
    Sha256,
    /// SHA-384 (the original accepts it, as go-digest does).
    Sha384,
    /// SHA-512: 128 lower-case hex characters.
    Sha512,
}

impl Algorithm {
    /// The name used in digest strings.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha384 => "sha384",
            Algorithm::Sha512 => "sha512",
        }
    }

    fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha384 => 96,
            Algorithm::Sha512 => 128,
        }
    }
}

/// A validated content digest, e.g. `sha256:e3b0c442…`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    algorithm: Algorithm,
    hex: String,
}

impl Digest {
    /// Parses and validates `algorithm:hex`.
    pub fn parse(input: &str) -> Result<Self> {
        let bad = |reason: &str| Error::InvalidDigest {
            input: input.to_string(),
            reason: reason.to_string(),
        };
        let (alg, hex) = input
            .split_once(':')
            .ok_or_else(|| bad("expected algorithm:hex"))?;
        let algorithm = match alg {
            "sha256" => Algorithm::Sha256,
            "sha384" => Algorithm::Sha384,
            "sha512" => Algorithm::Sha512,
            _ => return Err(bad("unsupported algorithm (sha256, sha384 and sha512 are)")),
        };
        if hex.len() != algorithm.hex_len() {
            return Err(bad(&format!(
                "{} needs {} hex characters, found {}",
                alg,
                algorithm.hex_len(),
                hex.len()
            )));
        }
        if !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(bad("hex part must be lower-case hexadecimal"));
        }
        Ok(Digest {
            algorithm,
            hex: hex.to_string(),
        })
    }

    /// The digest of `bytes` with the given algorithm.
    pub fn of(algorithm: Algorithm, bytes: &[u8]) -> Self {
        let mut h = Hasher::new(algorithm);
        h.update(bytes);
        h.finish()
    }

    /// The SHA-256 digest of `bytes` (what manifests pushed by us are named by).
    pub fn sha256(bytes: &[u8]) -> Self {
        Self::of(Algorithm::Sha256, bytes)
    }

    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The hex part.
    pub fn hex(&self) -> &str {
        &self.hex
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm.name(), self.hex)
    }
}

impl FromStr for Digest {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Digest::parse(s)
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Digest::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// An incremental hash of one algorithm.
#[derive(Clone)]
pub struct Hasher(HasherInner);

// The hash state says nothing useful; the algorithm does.
impl std::fmt::Debug for Hasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let algorithm = match self.0 {
            HasherInner::Sha256(_) => Algorithm::Sha256,
            HasherInner::Sha384(_) => Algorithm::Sha384,
            HasherInner::Sha512(_) => Algorithm::Sha512,
        };
        write!(f, "Hasher({})", algorithm.name())
    }
}

#[derive(Clone)]
enum HasherInner {
    Sha256(Sha256),
    Sha384(Sha384),
    Sha512(Sha512),
}

impl Hasher {
    /// A fresh hasher.
    pub fn new(algorithm: Algorithm) -> Self {
        Hasher(match algorithm {
            Algorithm::Sha256 => HasherInner::Sha256(Sha256::new()),
            Algorithm::Sha384 => HasherInner::Sha384(Sha384::new()),
            Algorithm::Sha512 => HasherInner::Sha512(Sha512::new()),
        })
    }

    /// Feeds bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        match &mut self.0 {
            HasherInner::Sha256(h) => h.update(bytes),
            HasherInner::Sha384(h) => h.update(bytes),
            HasherInner::Sha512(h) => h.update(bytes),
        }
    }

    /// The digest of everything fed.
    pub fn finish(self) -> Digest {
        let (algorithm, bytes) = match self.0 {
            HasherInner::Sha256(h) => (Algorithm::Sha256, h.finalize().to_vec()),
            HasherInner::Sha384(h) => (Algorithm::Sha384, h.finalize().to_vec()),
            HasherInner::Sha512(h) => (Algorithm::Sha512, h.finalize().to_vec()),
        };
        let hex = bytes.iter().map(|b| format!("{b:02x}")).collect();
        Digest { algorithm, hex }
    }
}

/// Checks a stream of bytes against an expected digest and (optionally) size.
///
/// A stream that runs past the expected size fails at once, so a lying
/// registry cannot make us read without bound.
#[derive(Debug)]
pub struct Verifier {
    subject: String,
    expected: Digest,
    expected_size: Option<u64>,
    seen: u64,
    hasher: Hasher,
}

impl Verifier {
    /// A verifier for content named `subject` (used in errors).
    pub fn new(subject: impl Into<String>, expected: Digest, expected_size: Option<u64>) -> Self {
        let hasher = Hasher::new(expected.algorithm());
        Verifier {
            subject: subject.into(),
            expected,
            expected_size,
            seen: 0,
            hasher,
        }
    }

    /// Feeds a chunk; fails when the content grows past the expected size.
    pub fn update(&mut self, chunk: &[u8]) -> Result<()> {
        self.seen += chunk.len() as u64;
        if let Some(size) = self.expected_size {
            if self.seen > size {
                return Err(self.integrity(format!(
                    "more than the expected {size} bytes for {}",
                    self.expected
                )));
            }
        }
        self.hasher.update(chunk);
        Ok(())
    }

    /// Bytes fed so far: where a resumed read starts.
    pub fn seen(&self) -> u64 {
        self.seen
    }

    /// Ends the stream: the size and digest must both match.
    pub fn finish(self) -> Result<Digest> {
        if let Some(size) = self.expected_size {
            if self.seen != size {
                return Err(self.integrity(format!(
                    "expected {size} bytes for {}, got {}",
                    self.expected, self.seen
                )));
            }
        }
        let actual = self.hasher.clone().finish();
        if actual != self.expected {
            return Err(self.integrity(format!("expected {}, got {actual}", self.expected)));
        }
        Ok(actual)
    }

    fn integrity(&self, detail: String) -> Error {
        Error::Integrity {
            subject: self.subject.clone(),
            detail,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn parses_and_displays() {
        let d = Digest::parse(EMPTY).unwrap();
        assert_eq!(d.algorithm(), Algorithm::Sha256);
        assert_eq!(d.to_string(), EMPTY);
        assert_eq!(Digest::sha256(b""), d);
        let d512 = Digest::of(Algorithm::Sha512, b"abc");
        assert_eq!(d512.hex().len(), 128);
        assert_eq!(Digest::parse(&d512.to_string()).unwrap(), d512);
        // sha384, as the original (go-digest) accepts it; FIPS 180-2's "abc".
        let d384 = Digest::of(Algorithm::Sha384, b"abc");
        assert_eq!(
            d384.to_string(),
            "sha384:cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed8086072ba1e7cc2358baeca134c825a7"
        );
        assert_eq!(Digest::parse(&d384.to_string()).unwrap(), d384);
        assert!(Digest::parse(&format!("sha384:{}", "a".repeat(64))).is_err());
    }

    #[test]
    fn rejects_malformed_digests_quoting_them() {
        for bad in [
            "bad_digest",
            "sha256:abc",
            "sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
            "md5:d41d8cd98f00b204e9800998ecf8427e",
            ":e3b0",
            "sha512:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        ] {
            let err = Digest::parse(bad).unwrap_err();
            assert!(err.to_string().contains(&format!("{bad:?}")), "{err}");
        }
    }

    #[test]
    fn verifier_checks_digest_and_size() {
        let d = Digest::sha256(b"hello world");
        let mut v = Verifier::new("x", d.clone(), Some(11));
        v.update(b"hello ").unwrap();
        assert_eq!(v.seen(), 6, "where a resumed read starts");
        v.update(b"world").unwrap();
        assert_eq!(v.seen(), 11);
        assert!(format!("{v:?}").contains("Hasher(sha256)"), "{v:?}");
        assert_eq!(v.finish().unwrap(), d);

        let mut v = Verifier::new("x", d.clone(), Some(11));
        v.update(b"hello world").unwrap();
        assert!(
            v.update(b"!").is_err(),
            "growing past the size fails at once"
        );

        let mut v = Verifier::new("x", d.clone(), Some(11));
        v.update(b"hello").unwrap();
        assert!(v
            .finish()
            .unwrap_err()
            .to_string()
            .contains("expected 11 bytes"));

        let mut v = Verifier::new("ref", d.clone(), None);
        v.update(b"hello worle").unwrap();
        let err = v.finish().unwrap_err();
        assert!(matches!(err, Error::Integrity { ref subject, .. } if subject == "ref"));
    }
}
