//! What a distribution-API request to an OCI layout asks for: the host that
//! answers a layout as a registry parses each request with
//! [`Ask::parse`], then reads or writes files. Names are checked here, so
//! no repository or upload id can climb out of the layout's directory.

use crate::digest::Digest;
use crate::percent;
use crate::reference::{is_valid_tag, Reference};

/// What a request asks of a layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ask {
    /// `GET /v2/`: the version check.
    Base,
    /// `GET`/`HEAD /v2/<name>/manifests/<tag-or-digest>`.
    Manifest {
        /// The repository.
        name: String,
        /// The tag or digest.
        object: Object,
    },
    /// `PUT /v2/<name>/manifests/<tag-or-digest>`.
    PutManifest {
        /// The repository.
        name: String,
        /// The tag or digest.
        object: Object,
    },
    /// `GET`/`HEAD /v2/<name>/blobs/<digest>`.
    Blob {
        /// The repository.
        name: String,
        /// The blob.
        digest: Digest,
    },
    /// `POST /v2/<name>/blobs/uploads/`: an upload session, or a mount.
    StartUpload {
        /// The repository.
        name: String,
        /// `?mount=`: the blob asked to be mounted.
        mount: Option<Digest>,
        /// `?digest=`: a monolithic upload, its body the whole blob.
        digest: Option<Digest>,
    },
    /// `PATCH`/`PUT`/`DELETE`/`GET /v2/<name>/blobs/uploads/<id>`.
    Upload {
        /// The repository.
        name: String,
        /// The session.
        id: String,
        /// `?digest=` (on the PUT that ends it).
        digest: Option<Digest>,
    },
    /// `GET /v2/<name>/tags/list[?n=&last=]`.
    Tags {
        /// The repository.
        name: String,
        /// `n`: at most this many.
        n: Option<usize>,
        /// `last`: those after this one.
        last: Option<String>,
    },
    /// `GET /v2/<name>/referrers/<digest>`.
    Referrers {
        /// The repository.
        name: String,
        /// The subject.
        digest: Digest,
    },
}

/// A manifest's address in a repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Object {
    /// A tag (`org.opencontainers.image.ref.name`).
    Tag(String),
    /// A digest.
    Digest(Digest),
}

/// Why a request is not one a layout answers: the distribution error code
/// and a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The HTTP status.
    pub status: u16,
    /// The distribution error code (`NAME_INVALID`, `UNSUPPORTED`, …).
    pub code: &'static str,
    /// What was wrong.
    pub message: String,
}

impl Refusal {
    /// A refusal of `status` with `code`.
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        Refusal {
            status,
            code,
            message: message.into(),
        }
    }

    /// The distribution API's error document.
    pub fn body(&self) -> String {
        serde_json::json!({"errors": [{"code": self.code, "message": self.message}]}).to_string()
    }
}

/// The longest upload id a layout hands out (hex).
const MAX_ID_LEN: usize = 64;

impl Ask {
    /// What `method` on `path` (with `query`) asks.
    pub fn parse(method: &str, path: &str, query: Option<&str>) -> Result<Ask, Refusal> {
        let unsupported = || {
            Refusal::new(
                405,
                "UNSUPPORTED",
                format!("{method} {path}: not something an OCI layout answers"),
            )
        };
        let pairs = percent::query_pairs(query.unwrap_or(""))
            .map_err(|e| Refusal::new(400, "UNSUPPORTED", format!("query of {path}: {e:?}")))?;
        let param = |key: &str| {
            pairs
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
        };
        let digest_param = |key: &str| {
            param(key)
                .map(|d| {
                    Digest::parse(d)
                        .map_err(|e| Refusal::new(400, "DIGEST_INVALID", format!("{key}: {e}")))
                })
                .transpose()
        };
        if path == "/v2/" || path == "/v2" {
            return Ok(Ask::Base);
        }
        let rest = path.strip_prefix("/v2/").ok_or_else(unsupported)?;
        let (name, kind, tail) = split(rest).ok_or_else(unsupported)?;
        let name = repository(name)?;
        let digest = |text: &str| {
            Digest::parse(text).map_err(|e| Refusal::new(400, "DIGEST_INVALID", e.to_string()))
        };
        match (method, kind, tail) {
            ("GET" | "HEAD", "manifests", object) => Ok(Ask::Manifest {
                name,
                object: object_of(object)?,
            }),
            ("PUT", "manifests", object) => Ok(Ask::PutManifest {
                name,
                object: object_of(object)?,
            }),
            ("POST", "blobs", "uploads/" | "uploads") => Ok(Ask::StartUpload {
                name,
                mount: digest_param("mount")?,
                digest: digest_param("digest")?,
            }),
            ("GET" | "PATCH" | "PUT" | "DELETE", "blobs", upload)
                if upload.starts_with("uploads/") =>
            {
                let id = &upload["uploads/".len()..];
                let hex = id.bytes().all(|b| b.is_ascii_hexdigit());
                if id.is_empty() || id.len() > MAX_ID_LEN || !hex {
                    return Err(Refusal::new(
                        404,
                        "BLOB_UPLOAD_UNKNOWN",
                        format!("no upload {id:?}"),
                    ));
                }
                Ok(Ask::Upload {
                    name,
                    id: id.to_string(),
                    digest: digest_param("digest")?,
                })
            }
            ("GET" | "HEAD", "blobs", d) => Ok(Ask::Blob {
                name,
                digest: digest(d)?,
            }),
            ("GET", "tags", "list") => {
                let n = param("n")
                    .map(|n| {
                        n.parse::<usize>().map_err(|_| {
                            Refusal::new(400, "PAGINATION_NUMBER_INVALID", format!("n={n:?}"))
                        })
                    })
                    .transpose()?;
                Ok(Ask::Tags {
                    name,
                    n,
                    last: param("last").map(str::to_string),
                })
            }
            ("GET", "referrers", d) => Ok(Ask::Referrers {
                name,
                digest: digest(d)?,
            }),
            _ => Err(unsupported()),
        }
    }
}

/// `<name>/<kind>/<tail>`: the name is all before the last of the API's
/// words (a repository may itself have a component named `blobs`).
fn split(rest: &str) -> Option<(&str, &'static str, &str)> {
    let upload = rest.rfind("/blobs/uploads");
    let found = ["manifests", "blobs", "tags", "referrers"]
        .into_iter()
        .filter_map(|kind| {
            let at = match kind {
                "blobs" => upload.or_else(|| rest.rfind("/blobs/"))?,
                _ => rest.rfind(&format!("/{kind}/"))?,
            };
            Some((at, kind))
        })
        .max_by_key(|(at, _)| *at)?;
    let (at, kind) = found;
    Some((&rest[..at], kind, &rest[at + kind.len() + 2..]))
}

/// A repository name, checked by the reference grammar (lower-case
/// components of letters, digits and separators: never `.` or `..`).
fn repository(name: &str) -> Result<String, Refusal> {
    let invalid = |why: String| Refusal::new(400, "NAME_INVALID", why);
    let probe = Reference::parse(&format!("layout.invalid/{name}"))
        .map_err(|e| invalid(format!("repository {name:?}: {e}")))?;
    if probe.repository != name || probe.tag.is_some() || probe.digest.is_some() {
        return Err(invalid(format!("{name:?} is not a repository name")));
    }
    Ok(name.to_string())
}

/// A manifest's tag or digest, checked.
fn object_of(text: &str) -> Result<Object, Refusal> {
    if text.contains(':') {
        return Digest::parse(text)
            .map(Object::Digest)
            .map_err(|e| Refusal::new(400, "DIGEST_INVALID", e.to_string()));
    }
    if is_valid_tag(text) {
        return Ok(Object::Tag(text.to_string()));
    }
    Err(Refusal::new(
        400,
        "TAG_INVALID",
        format!("{text:?} is no tag"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

    fn digest() -> Digest {
        Digest::parse(D).unwrap()
    }

    #[test]
    fn reads_each_route() {
        let name = || "team/blobs/app".to_string();
        assert_eq!(Ask::parse("GET", "/v2/", None), Ok(Ask::Base));
        assert_eq!(
            Ask::parse("HEAD", "/v2/team/blobs/app/manifests/v1", None),
            Ok(Ask::Manifest {
                name: name(),
                object: Object::Tag("v1".into())
            })
        );
        assert_eq!(
            Ask::parse("PUT", &format!("/v2/team/blobs/app/manifests/{D}"), None),
            Ok(Ask::PutManifest {
                name: name(),
                object: Object::Digest(digest())
            })
        );
        assert_eq!(
            Ask::parse("GET", &format!("/v2/team/blobs/app/blobs/{D}"), None),
            Ok(Ask::Blob {
                name: name(),
                digest: digest()
            })
        );
        assert_eq!(
            Ask::parse(
                "POST",
                "/v2/team/blobs/app/blobs/uploads/",
                Some(&format!("mount={D}&from=other"))
            ),
            Ok(Ask::StartUpload {
                name: name(),
                mount: Some(digest()),
                digest: None
            })
        );
        assert_eq!(
            Ask::parse(
                "PUT",
                "/v2/team/blobs/app/blobs/uploads/00ff",
                Some(&format!("digest={}", D.replace(':', "%3A")))
            ),
            Ok(Ask::Upload {
                name: name(),
                id: "00ff".into(),
                digest: Some(digest())
            })
        );
        assert_eq!(
            Ask::parse("GET", "/v2/a/tags/list", Some("n=2&last=v1")),
            Ok(Ask::Tags {
                name: "a".into(),
                n: Some(2),
                last: Some("v1".into())
            })
        );
        assert_eq!(
            Ask::parse("GET", &format!("/v2/a/referrers/{D}"), None),
            Ok(Ask::Referrers {
                name: "a".into(),
                digest: digest()
            })
        );
    }

    #[test]
    fn nothing_climbs_out_of_the_layout() {
        for (method, path) in [
            ("GET", "/v2/../etc/manifests/v1"),
            ("GET", "/v2/a/../../manifests/v1"),
            ("GET", "/v2/./manifests/v1"),
            ("GET", "/v2//manifests/v1"),
            ("GET", "/v2/A/manifests/v1"),
            ("PUT", "/v2/a/blobs/uploads/..%2F..%2Fx"),
            ("PUT", "/v2/a/blobs/uploads/../x"),
            ("GET", "/v2/a/manifests/../x"),
            ("GET", "/v2/a/blobs/sha256:../../x"),
        ] {
            let refused = Ask::parse(method, path, None);
            assert!(refused.is_err(), "{method} {path}: {refused:?}");
        }
    }

    #[test]
    fn what_is_not_asked_of_a_layout_is_refused_by_name() {
        let e = Ask::parse("DELETE", "/v2/a/manifests/v1", None).unwrap_err();
        assert_eq!((e.status, e.code), (405, "UNSUPPORTED"));
        assert!(
            e.body().contains("DELETE /v2/a/manifests/v1"),
            "{}",
            e.body()
        );
        let e = Ask::parse("GET", "/v2/a/tags/list", Some("n=x")).unwrap_err();
        assert_eq!(e.code, "PAGINATION_NUMBER_INVALID");
        assert!(Ask::parse("GET", "/other", None).is_err());
    }
}
