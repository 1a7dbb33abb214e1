//! What a request to the edge service asks for: the route, its reference
//! (Docker Hub rules applied, the upstream chosen by `?ns=`), its
//! conditions (`If-None-Match`, `Range`), and whether the configuration
//! lets it through. The request target is decoded once, as RFC 3986 says,
//! before anything is routed.

use crate::http::Headers;
use crate::percent;
use crate::range::ByteRange;
use crate::reference::Reference;
use crate::service::config::ServiceConfig;
use crate::service::mirror;
pub use crate::service::mirror::is_mirror_path;
use crate::service::reply::{etag, Failure, FailureKind};
use crate::service::tags::TagsPage;

/// The request headers [`Request::parse`] reads (all else is ignored):
/// what a host hands over of an incoming request.
pub const READ_HEADERS: &[&str] = &["if-none-match", "range", "if-range"];

/// A request the service serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Where it goes.
    pub route: Route,
    /// HEAD: the answer's head only.
    pub head: bool,
    /// The client's `If-None-Match`, answered 304 when it names the content.
    pub if_none_match: Option<String>,
    /// The one byte range a blob read asks for (`Range`, unless an
    /// `If-Range` names other content); `None`: the whole.
    pub range: Option<ByteRange>,
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
    /// `/v2/<name>/tags/list`: a page of the mirror's tag list.
    MirrorTags(TagsPage),
    /// `/v2/<name>/referrers/<digest>[?artifactType=T]`: what refers to a
    /// manifest, as the referrers API lists it.
    MirrorReferrers(ReferrersAsk),
}

/// What a referrers request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReferrersAsk {
    /// The subject, by digest, at the upstream.
    pub subject: Reference,
    /// Only referrers of this artifact type.
    pub artifact_type: Option<String>,
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
            Route::ApiBase
                | Route::MirrorManifest(_)
                | Route::MirrorBlob(_)
                | Route::MirrorTags(_)
                | Route::MirrorReferrers(_)
        )
    }

    /// The reference it is about, if any (a tag list's has neither tag
    /// nor digest).
    pub fn reference(&self) -> Option<&Reference> {
        match self {
            Route::ApiBase => None,
            Route::Index(r)
            | Route::Manifest(r)
            | Route::Blob(r)
            | Route::MirrorManifest(r)
            | Route::MirrorBlob(r) => Some(r),
            Route::MirrorTags(page) => Some(&page.repository),
            Route::MirrorReferrers(ask) => Some(&ask.subject),
        }
    }
}

impl Request {
    /// Routes `method` on `path_and_query` (as the request line has it)
    /// with the request's `headers` under `config`; a request the service
    /// does not serve (unknown path, bad reference or escape, a registry
    /// or repository not allowed) is the failure to answer with.
    pub fn parse(
        method: &str,
        path_and_query: &str,
        headers: &Headers,
        config: &ServiceConfig,
    ) -> Result<Self, Failure> {
        let (raw_path, raw_query) = path_and_query
            .split_once('?')
            .unwrap_or((path_and_query, ""));
        let path = percent::decode(raw_path)
            .map_err(|e| Failure::new(FailureKind::InvalidReference, format!("path: {e}")))?;
        let query = percent::query_pairs(raw_query)
            .map_err(|e| Failure::new(FailureKind::InvalidInput, e.to_string()))?;
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
        let route = match is_mirror_path(&path) {
            true => mirror::route(&path, &query, config)?,
            false => api_route(&path, head, config)?,
        };
        let if_none_match = headers.get("if-none-match").map(str::to_string);
        let range = match &route {
            Route::Blob(r) | Route::MirrorBlob(r) if !head => blob_range(r, headers),
            _ => None,
        };
        Ok(Request {
            route,
            head,
            if_none_match,
            range,
        })
    }
}

/// The range a blob read asks for: none when `Range` asks for several
/// (the whole is sent), or when an `If-Range` names other content (a blob
/// never changes, so only another entity tag or a date can).
fn blob_range(reference: &Reference, headers: &Headers) -> Option<ByteRange> {
    let range = ByteRange::parse(headers.get("range")?)?;
    match (headers.get("if-range"), &reference.digest) {
        (None, _) => Some(range),
        (Some(tag), Some(digest)) if tag.trim() == etag(digest) => Some(range),
        (Some(_), _) => None,
    }
}

/// `/index/REF`, `/manifest/REF`, `/blob/REF@DIGEST`.
fn api_route(path: &str, head: bool, config: &ServiceConfig) -> Result<Route, Failure> {
    let (kind, text) = path
        .strip_prefix('/')
        .and_then(|p| p.split_once('/'))
        .ok_or_else(|| unknown_path(path))?;
    let reference = Reference::parse(text).map_err(Failure::from)?;
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
    match route.reference() {
        Some(r) if !config.allows(r) => Err(forbidden(r)),
        _ => Ok(route),
    }
}

/// A 403 for `reference`, which the configuration does not serve.
pub(crate) fn forbidden(reference: &Reference) -> Failure {
    Failure::new(
        FailureKind::Forbidden,
        format!(
            "{}/{} is not served here",
            reference.host, reference.repository
        ),
    )
}

/// A 404 for a path the service has no route for.
pub(crate) fn unknown_path(path: &str) -> Failure {
    Failure::new(
        FailureKind::NoSuchRoute,
        format!(
            "{path:?}: no such route (/index/REF, /manifest/REF, /blob/REF@DIGEST, /v2/NAME/manifests/REF, /v2/NAME/blobs/DIGEST, /v2/NAME/tags/list, /v2/NAME/referrers/DIGEST)"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::testing::{config, failure, reference, route, with_headers, DIGEST};

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
                head: true,
                if_none_match: None,
                range: None,
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
        assert_eq!(failure("GET", "/v2/_catalog"), FailureKind::NoSuchRoute);
        assert_eq!(failure("GET", "/v2/alpine/tags"), FailureKind::NoSuchRoute);
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

    #[test]
    fn a_blob_read_takes_one_range_unless_if_range_names_other_content() {
        let blob = format!("/v2/alpine/blobs/{DIGEST}");
        assert_eq!(
            with_headers(&blob, &[("Range", "bytes=5-")]).range,
            Some(ByteRange::From(5))
        );
        assert_eq!(
            with_headers(&blob, &[("range", "bytes=0-1,5-9")]).range,
            None
        );
        let etag = format!("\"{DIGEST}\"");
        let same = with_headers(&blob, &[("Range", "bytes=-3"), ("If-Range", &etag)]);
        assert_eq!(same.range, Some(ByteRange::Suffix(3)));
        let other = [
            ("Range", "bytes=-3"),
            ("If-Range", "Wed, 21 Oct 2015 07:28:00 GMT"),
        ];
        assert_eq!(with_headers(&blob, &other).range, None);
        // Manifests, tag lists and HEADs are answered whole.
        let manifest = with_headers("/v2/alpine/manifests/3", &[("Range", "bytes=5-")]);
        assert_eq!(manifest.range, None);
        let headers: Headers = [("Range".to_string(), "bytes=1-".to_string())]
            .into_iter()
            .collect();
        assert_eq!(
            Request::parse("HEAD", &blob, &headers, &config())
                .unwrap()
                .range,
            None
        );
        let api = with_headers(&format!("/blob/alpine@{DIGEST}"), &[("Range", "bytes=1-2")]);
        assert_eq!(api.range, Some(ByteRange::Span(1, 2)));
        let tagged = with_headers("/v2/alpine/manifests/3", &[("If-None-Match", "\"x\"")]);
        assert_eq!(tagged.if_none_match.as_deref(), Some("\"x\""));
    }
}
