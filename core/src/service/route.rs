//! What a request to the edge service asks for: the route, its reference
//! (Docker Hub rules applied, the upstream chosen by `?ns=`), and whether
//! the configuration lets it through.

use crate::error::Error;
use crate::reference::{Reference, DOCKER_HUB};
use crate::service::config::ServiceConfig;
use crate::service::reply::{Failure, FailureKind};
use crate::Digest;

/// A request the service serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Where it goes.
    pub route: Route,
    /// HEAD: the answer's head only.
    pub head: bool,
}

/// The service's routes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `/v2/`: the version check registry clients send first.
    ApiBase,
    /// `/index/<ref>`: the synthesized index, as `ocirelay index` prints it.
    Index(Reference),
    /// `/manifest/<ref>`: the manifest, as `ocirelay lookup --type manifest` prints it.
    Manifest(Reference),
    /// `/blob/<ref@digest>`: the blob's bytes.
    Blob(Reference),
    /// `/v2/<name>/manifests/<tag-or-digest>`: the mirror's manifest, bytes unchanged.
    MirrorManifest(Reference),
    /// `/v2/<name>/blobs/<digest>`: the mirror's blob.
    MirrorBlob(Reference),
}

impl Route {
    /// Whether the route serves blobs (a mirror's 404 is then `BLOB_UNKNOWN`).
    pub fn is_blob(&self) -> bool {
        matches!(self, Route::Blob(_) | Route::MirrorBlob(_))
    }

    /// Whether the route speaks the distribution API (its errors are
    /// `{"errors": [...]}`), rather than the service's own JSON API.
    pub fn is_mirror(&self) -> bool {
        matches!(
            self,
            Route::ApiBase | Route::MirrorManifest(_) | Route::MirrorBlob(_)
        )
    }
}

impl Request {
    /// Routes `method` on `path_and_query` under `config`; a request the
    /// service does not serve (unknown path, bad reference, a registry or
    /// repository not allowed) is the failure to answer with.
    pub fn parse(
        method: &str,
        path_and_query: &str,
        config: &ServiceConfig,
    ) -> Result<Self, Failure> {
        let (path, query) = match path_and_query.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (path_and_query, None),
        };
        let mirror = path == "/v2" || path.starts_with("/v2/");
        let head = match method {
            "GET" => false,
            "HEAD" => true,
            _ => {
                return Err(Failure::new(
                    FailureKind::MethodNotAllowed,
                    format!("{method} is not served here: only GET and HEAD"),
                ))
            }
        };
        if mirror {
            return mirror_route(path, query, config).map(|route| Request { route, head });
        }
        let (kind, rest) = path
            .strip_prefix('/')
            .and_then(|p| p.split_once('/'))
            .ok_or_else(|| unknown_path(path))?;
        let text = percent_decode(rest).ok_or_else(|| {
            Failure::new(
                FailureKind::InvalidReference,
                format!("{path:?}: bad percent-encoding"),
            )
        })?;
        let reference = Reference::parse(&text).map_err(Failure::from)?;
        let route = match kind {
            "index" if !head => Route::Index(reference),
            "manifest" => Route::Manifest(reference),
            "blob" if reference.digest.is_none() => {
                return Err(Failure::new(
                    FailureKind::InvalidReference,
                    format!("{text:?}: a blob is named by digest (REF@sha256:...)"),
                ))
            }
            "blob" if !head => Route::Blob(reference),
            "index" | "blob" => {
                return Err(Failure::new(
                    FailureKind::MethodNotAllowed,
                    format!("HEAD is not served on /{kind}/: use GET"),
                ))
            }
            _ => return Err(unknown_path(path)),
        };
        let reference = match &route {
            Route::Index(r) | Route::Manifest(r) | Route::Blob(r) => r,
            _ => unreachable!("only API routes get here"),
        };
        if !config.allows(reference) {
            return Err(forbidden(reference));
        }
        Ok(Request { route, head })
    }
}

/// `/v2/`, `/v2/<name>/manifests/<ref>`, `/v2/<name>/blobs/<digest>`.
fn mirror_route(path: &str, query: Option<&str>, config: &ServiceConfig) -> Result<Route, Failure> {
    let rest = path.strip_prefix("/v2").unwrap_or(path);
    if rest.is_empty() || rest == "/" {
        return Ok(Route::ApiBase);
    }
    let rest = &rest[1..];
    let (name, object, blob) = if let Some((name, object)) = rest.rsplit_once("/manifests/") {
        (name, object, false)
    } else if let Some((name, object)) = rest.rsplit_once("/blobs/") {
        (name, object, true)
    } else {
        return Err(unknown_path(path));
    };
    let ns = query.and_then(|q| {
        q.split('&')
            .filter_map(|pair| pair.split_once('='))
            .find(|(k, _)| *k == "ns")
            .map(|(_, v)| v)
    });
    let upstream = config.upstream(ns).ok_or_else(|| {
        Failure::new(
            FailureKind::Forbidden,
            format!("registry {:?} is not mirrored here", ns.unwrap_or_default()),
        )
    })?;
    // Docker Hub's one-component names are `library/`'s, as docker pulls them.
    let repository = if upstream.registry == DOCKER_HUB && !name.contains('/') {
        format!("library/{name}")
    } else {
        name.to_string()
    };
    let invalid = |e: Error| Failure::new(FailureKind::InvalidReference, e.to_string());
    let is_digest = object.contains(':');
    if blob && !is_digest {
        return Err(Failure::new(
            FailureKind::InvalidReference,
            format!("{object:?}: a blob is named by digest"),
        ));
    }
    let text = match is_digest {
        true => {
            Digest::parse(object).map_err(invalid)?;
            format!("{}/{repository}@{object}", upstream.registry)
        }
        false => format!("{}/{repository}:{object}", upstream.registry),
    };
    let reference = Reference::parse(&text).map_err(invalid)?;
    // The grammar may read a name's first component as a host; the mirror
    // serves names of its upstream only.
    if reference.host != upstream.registry || reference.repository != repository {
        return Err(Failure::new(
            FailureKind::InvalidReference,
            format!("{name:?} is not a repository name"),
        ));
    }
    if !upstream.allows(&reference.repository) {
        return Err(forbidden(&reference));
    }
    Ok(match blob {
        true => Route::MirrorBlob(reference),
        false => Route::MirrorManifest(reference),
    })
}

fn forbidden(reference: &Reference) -> Failure {
    Failure::new(
        FailureKind::Forbidden,
        format!(
            "{}/{} is not served here",
            reference.host, reference.repository
        ),
    )
}

fn unknown_path(path: &str) -> Failure {
    Failure::new(
        FailureKind::NoSuchRoute,
        format!(
            "{path:?}: no such route (/index/REF, /manifest/REF, /blob/REF@DIGEST, /v2/NAME/manifests/REF, /v2/NAME/blobs/DIGEST)"
        ),
    )
}

/// `%XX` escapes decoded (clients escape `@` and `:` in paths); `None`
/// for a broken escape or bytes that are not UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn config() -> ServiceConfig {
        ServiceConfig::parse(
            r#"{"upstreams": [{"registry": "docker.io", "repositories": ["library/*", "team/app"]},
                              {"registry": "127.0.0.1:5000", "repositories": ["*"], "insecure": true}]}"#,
        )
        .unwrap()
    }

    fn route(method: &str, path: &str) -> Result<Request, Failure> {
        Request::parse(method, path, &config())
    }

    fn failure(method: &str, path: &str) -> FailureKind {
        route(method, path).unwrap_err().kind
    }

    fn reference(text: &str) -> Reference {
        Reference::parse(text).unwrap()
    }

    #[test]
    fn api_routes_take_references_with_docker_hub_rules() {
        let r = route("GET", "/index/alpine:3").unwrap();
        assert_eq!(
            r.route,
            Route::Index(reference("docker.io/library/alpine:3"))
        );
        let r = route("HEAD", "/manifest/127.0.0.1:5000/x/y").unwrap();
        assert_eq!(
            r,
            Request {
                route: Route::Manifest(reference("127.0.0.1:5000/x/y")),
                head: true
            }
        );
        let path = format!("/blob/alpine%40{}", DIGEST.replace(':', "%3A"));
        let r = route("GET", &path).unwrap();
        assert_eq!(r.route, Route::Blob(reference(&format!("alpine@{DIGEST}"))));
        assert!(!r.route.is_mirror());
        assert!(r.route.is_blob());
        assert!(!route("GET", "/index/alpine:3").unwrap().route.is_blob());
    }

    #[test]
    fn mirror_routes_pick_the_upstream_by_ns() {
        assert_eq!(route("GET", "/v2/").unwrap().route, Route::ApiBase);
        assert_eq!(route("GET", "/v2").unwrap().route, Route::ApiBase);
        let r = route("HEAD", "/v2/alpine/manifests/3.20").unwrap();
        assert_eq!(
            r,
            Request {
                route: Route::MirrorManifest(reference("alpine:3.20")),
                head: true
            }
        );
        let r = route("GET", "/v2/library/alpine/manifests/latest?ns=docker.io").unwrap();
        assert_eq!(r.route, Route::MirrorManifest(reference("alpine:latest")));
        let r = route("GET", &format!("/v2/x/y/blobs/{DIGEST}?ns=127.0.0.1:5000")).unwrap();
        assert_eq!(
            r.route,
            Route::MirrorBlob(reference(&format!("127.0.0.1:5000/x/y@{DIGEST}")))
        );
        let r = route(
            "GET",
            &format!("/v2/x/manifests/{DIGEST}?foo=1&ns=127.0.0.1:5000"),
        )
        .unwrap();
        assert_eq!(
            r.route,
            Route::MirrorManifest(reference(&format!("127.0.0.1:5000/x@{DIGEST}")))
        );
        assert!(r.route.is_mirror());
    }

    #[test]
    fn what_is_not_allowed_is_forbidden() {
        assert_eq!(
            failure("GET", "/v2/someone/app/manifests/1"),
            FailureKind::Forbidden
        );
        assert_eq!(
            failure("GET", "/v2/team/app2/manifests/1"),
            FailureKind::Forbidden
        );
        assert!(route("GET", "/v2/team/app/manifests/1").is_ok());
        assert_eq!(
            failure("GET", "/v2/alpine/manifests/1?ns=ghcr.io"),
            FailureKind::Forbidden
        );
        assert_eq!(
            failure("GET", "/index/ghcr.io/library/alpine"),
            FailureKind::Forbidden
        );
        assert_eq!(
            failure("GET", "/manifest/someone/app:1"),
            FailureKind::Forbidden
        );
        // A name whose first component reads as a host is still the
        // upstream's (here not allowed), never a way to another registry.
        assert_eq!(
            failure("GET", "/v2/ghcr.io/library/alpine/manifests/1"),
            FailureKind::Forbidden
        );
    }

    #[test]
    fn bad_requests_say_what_is_wrong() {
        assert_eq!(
            failure("POST", "/v2/alpine/blobs/uploads/"),
            FailureKind::MethodNotAllowed
        );
        assert_eq!(
            failure("HEAD", "/index/alpine"),
            FailureKind::MethodNotAllowed
        );
        assert_eq!(
            failure("HEAD", &format!("/blob/alpine@{DIGEST}")),
            FailureKind::MethodNotAllowed
        );
        assert_eq!(
            failure("GET", "/v2/alpine/tags/list"),
            FailureKind::NoSuchRoute
        );
        assert_eq!(failure("GET", "/v2/_catalog"), FailureKind::NoSuchRoute);
        assert_eq!(failure("GET", "/"), FailureKind::NoSuchRoute);
        assert_eq!(
            failure("GET", "/elsewhere/alpine"),
            FailureKind::NoSuchRoute
        );
        assert_eq!(
            failure("GET", "/blob/alpine:3"),
            FailureKind::InvalidReference
        );
        assert_eq!(
            failure("GET", "/v2/alpine/blobs/latest"),
            FailureKind::InvalidReference
        );
        assert_eq!(
            failure("GET", "/v2/alpine/blobs/sha256:abc"),
            FailureKind::InvalidReference
        );
        assert_eq!(
            failure("GET", "/v2/Alpine/manifests/1"),
            FailureKind::InvalidReference
        );
        assert_eq!(
            failure("GET", "/index/alpine%4"),
            FailureKind::InvalidReference
        );
        assert_eq!(
            failure("GET", "/index/UPPER"),
            FailureKind::InvalidReference
        );
        let e = route("GET", "/manifest/a:b:c").unwrap_err();
        assert!(e.message.contains("a:b:c"), "{}", e.message);
    }
}
