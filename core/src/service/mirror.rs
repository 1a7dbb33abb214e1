//! The registry API's routes (`/v2/…`), as the mirror serves them: the
//! upstream chosen by `?ns=` (Docker Hub's one-component names given
//! `library/`), the name checked to be that upstream's and allowed, and a
//! tag list's page.

use crate::error::Error;
use crate::reference::{Reference, DOCKER_HUB};
use crate::service::config::ServiceConfig;
use crate::service::reply::{Failure, FailureKind};
use crate::service::route::{forbidden, unknown_path, ReferrersAsk, Route};
use crate::service::tags::TagsPage;
use crate::Digest;

/// Whether `path` (a request target's, decoded or not) is the registry
/// API's: its answers are the mirror's, errors included.
pub fn is_mirror_path(path: &str) -> bool {
    path == "/v2" || path.starts_with("/v2/") || path.starts_with("/v2?")
}

/// `/v2/`, `/v2/<name>/manifests/<ref>`, `/v2/<name>/blobs/<digest>`,
/// `/v2/<name>/tags/list`, `/v2/<name>/referrers/<digest>`.
pub(crate) fn route(
    path: &str,
    query: &[(String, String)],
    config: &ServiceConfig,
) -> Result<Route, Failure> {
    let rest = path.strip_prefix("/v2").unwrap_or(path);
    if rest.is_empty() || rest == "/" {
        return Ok(Route::ApiBase);
    }
    let rest = &rest[1..];
    enum Object<'a> {
        Manifest(&'a str),
        Blob(&'a str),
        Tags,
        Referrers(&'a str),
    }
    let (name, object) = if let Some(name) = rest.strip_suffix("/tags/list") {
        (name, Object::Tags)
    } else if let Some((name, object)) = rest.rsplit_once("/manifests/") {
        (name, Object::Manifest(object))
    } else if let Some((name, object)) = rest.rsplit_once("/blobs/") {
        (name, Object::Blob(object))
    } else if let Some((name, object)) = rest.rsplit_once("/referrers/") {
        (name, Object::Referrers(object))
    } else {
        return Err(unknown_path(path));
    };
    let param = |wanted: &str| {
        query
            .iter()
            .find(|(name, _)| name == wanted)
            .map(|(_, value)| value.as_str())
    };
    let ns = param("ns");
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
    let text = match object {
        Object::Tags => format!("{}/{repository}", upstream.registry),
        Object::Blob(object) | Object::Referrers(object) if !object.contains(':') => {
            return Err(Failure::new(
                FailureKind::InvalidReference,
                format!("{object:?}: a blob, or a referrers' subject, is named by digest"),
            ))
        }
        Object::Manifest(object) | Object::Blob(object) | Object::Referrers(object)
            if object.contains(':') =>
        {
            Digest::parse(object).map_err(invalid)?;
            format!("{}/{repository}@{object}", upstream.registry)
        }
        // (A blob or referrers without a digest were refused above.)
        Object::Manifest(object) | Object::Blob(object) | Object::Referrers(object) => {
            format!("{}/{repository}:{object}", upstream.registry)
        }
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
    Ok(match object {
        Object::Blob(_) => Route::MirrorBlob(reference),
        Object::Manifest(_) => Route::MirrorManifest(reference),
        Object::Referrers(_) => Route::MirrorReferrers(ReferrersAsk {
            subject: reference,
            artifact_type: param("artifactType").map(str::to_string),
        }),
        Object::Tags => Route::MirrorTags(TagsPage::new(
            reference,
            name,
            ns,
            param("n"),
            param("last"),
        )?),
    })
}

#[cfg(test)]
mod tests {
    use crate::service::reply::FailureKind;
    use crate::service::route::Route;
    use crate::service::testing::{failure, reference, route, DIGEST};

    #[test]
    fn mirror_routes_pick_the_upstream_by_ns() {
        assert_eq!(route("GET", "/v2/").unwrap().route, Route::ApiBase);
        assert_eq!(route("GET", "/v2").unwrap().route, Route::ApiBase);
        let r = route("HEAD", "/v2/alpine/manifests/3.20").unwrap();
        assert_eq!(
            (r.route, r.head),
            (Route::MirrorManifest(reference("alpine:3.20")), true)
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

    /// Each client's way of writing the upstream: containerd escapes the
    /// colon of a port (`%3A`), others do not; `+` is no space (RFC 3986).
    #[test]
    fn ns_is_decoded_as_each_client_writes_it() {
        let want = Route::MirrorManifest(reference("127.0.0.1:5000/library/app:v1"));
        for ns in [
            "127.0.0.1%3A5000",
            "127.0.0.1%3a5000",
            "127.0.0.1:5000",
            "127.0.0.1%3A5000&ns=x",
        ] {
            let path = format!("/v2/library/app/manifests/v1?ns={ns}");
            assert_eq!(route("GET", &path).unwrap().route, want, "{ns}");
        }
        // Docker Hub under any of its names.
        let r = route(
            "GET",
            "/v2/library/alpine/manifests/3?ns=registry-1.docker.io",
        )
        .unwrap();
        assert_eq!(r.route, Route::MirrorManifest(reference("alpine:3")));
        assert_eq!(
            failure("GET", "/v2/app/manifests/v1?ns=127.0.0.1+5000"),
            FailureKind::Forbidden
        );
        let e = route("GET", "/v2/app/manifests/v1?ns=127.0.0.1%3").unwrap_err();
        assert_eq!(e.kind, FailureKind::InvalidInput);
        assert!(e.message.contains("\"ns\""), "{}", e.message);
        // Paths are decoded too, once.
        let r = route("GET", "/v2/library%2Fapp/manifests/v1?ns=127.0.0.1%3A5000").unwrap();
        assert_eq!(r.route, want);
        let e = route("GET", "/v2/app/manifests/v%zz").unwrap_err();
        assert_eq!(e.kind, FailureKind::InvalidReference);
        assert!(e.message.contains("path"), "{}", e.message);
        assert_eq!(
            failure("GET", "/v2/app/manifests/v%25zz"),
            FailureKind::InvalidReference
        );
    }

    #[test]
    fn tag_lists_are_mirror_routes_with_their_page() {
        let r = route("GET", "/v2/alpine/tags/list").unwrap();
        let Route::MirrorTags(page) = &r.route else {
            panic!("{r:?}")
        };
        assert_eq!(page.repository, reference("docker.io/library/alpine"));
        assert_eq!(
            (page.name.as_str(), page.n, page.last.as_deref()),
            ("alpine", None, None)
        );
        assert!(r.route.is_mirror() && !r.route.is_blob());
        let r = route(
            "GET",
            "/v2/x/y/tags/list?n=2&last=v1%2Bb&ns=127.0.0.1%3A5000",
        )
        .unwrap();
        let Route::MirrorTags(page) = &r.route else {
            panic!("{r:?}")
        };
        assert_eq!(page.repository, reference("127.0.0.1:5000/x/y"));
        assert_eq!(
            (page.n, page.last.as_deref(), page.ns.as_deref()),
            (Some(2), Some("v1+b"), Some("127.0.0.1:5000"))
        );
        assert_eq!(
            failure("GET", "/v2/x/tags/list?n=-1"),
            FailureKind::InvalidPagination
        );
        assert_eq!(
            failure("GET", "/v2/someone/app/tags/list"),
            FailureKind::Forbidden
        );
        assert_eq!(failure("GET", "/v2/tags/list"), FailureKind::NoSuchRoute);
        assert!(route("HEAD", "/v2/alpine/tags/list").unwrap().head);
    }

    #[test]
    fn referrers_are_a_mirror_route_of_a_digest_with_its_filter() {
        let path = format!("/v2/alpine/referrers/{DIGEST}?artifactType=application%2Fspdx%2Bjson");
        let r = route("GET", &path).unwrap();
        let Route::MirrorReferrers(ask) = &r.route else {
            panic!("{r:?}")
        };
        assert_eq!(ask.subject, reference(&format!("alpine@{DIGEST}")));
        assert_eq!(ask.artifact_type.as_deref(), Some("application/spdx+json"));
        assert!(r.route.is_mirror() && !r.route.is_blob());
        let plain = route("HEAD", &format!("/v2/alpine/referrers/{DIGEST}")).unwrap();
        assert!(plain.head);
        let Route::MirrorReferrers(ask) = &plain.route else {
            panic!("{plain:?}")
        };
        assert_eq!(ask.artifact_type, None);
        assert_eq!(
            failure("GET", "/v2/alpine/referrers/latest"),
            FailureKind::InvalidReference
        );
        assert_eq!(
            failure("GET", "/v2/alpine/referrers/sha256:zz"),
            FailureKind::InvalidReference
        );
        assert_eq!(
            failure("GET", &format!("/v2/someone/app/referrers/{DIGEST}")),
            FailureKind::Forbidden
        );
    }
}
