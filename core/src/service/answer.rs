//! The head of each answer, decided from the request and what was found:
//! the service component sends what these say and adds nothing. Mirror
//! answers carry `Docker-Distribution-API-Version`; blob answers say they
//! take ranges (`Accept-Ranges: bytes`).
//!
//! Ranged blob reads follow one rule: a part of a blob cannot be checked
//! against the blob's digest, so a part (a 206) is passed on checked for
//! its length only and is never stored by a cache (`no-store`); whoever
//! assembles the parts checks the whole, as every pull client does. A
//! range that covers the whole blob is read and checked as a whole read.

use crate::service::reply::{
    self, content_head, etag, not_modified, Addressed, Failure, Head, API_VERSION,
};
use crate::service::route::{is_mirror_path, Request};
use crate::service::ServiceConfig;
use crate::Digest;

/// The answer to `/v2/`: the registry API's version check.
pub fn api_base() -> (Head, String) {
    let body = "{}\n".to_string();
    let head = Head::new(200)
        .with(API_VERSION.0, API_VERSION.1)
        .with("Content-Type", "application/json")
        .with("Content-Length", body.len().to_string());
    (head, body)
}

/// The answer to a request the service refused before routing it (see
/// [`Request::parse`]): in the mirror's dialect when its path is the
/// registry API's.
pub fn refusal(path_and_query: &str, failure: &Failure) -> (Head, String) {
    let path = path_and_query.split('?').next().unwrap_or_default();
    reply::failure(failure, is_mirror_path(path), path.contains("/blobs/"))
}

impl Request {
    /// How what it asks for is addressed: by digest (immutable) or by tag.
    pub fn addressed(&self) -> Addressed {
        match self.route.reference().and_then(|r| r.digest.as_ref()) {
            Some(_) => Addressed::ByDigest,
            None => Addressed::ByTag,
        }
    }

    /// The 304 to answer when the client's `If-None-Match` names content
    /// `digest`; `None` when it does not.
    pub fn not_modified(&self, digest: &Digest, config: &ServiceConfig) -> Option<Head> {
        not_modified(self.if_none_match.as_deref(), digest)
            .then(|| self.finish(content_head(304, digest, "", 0, self.addressed(), config)))
    }

    /// The redirect of a blob read to where its upstream redirected it
    /// (blob storage; the client reads and checks it there). Never stored
    /// by a cache: such URLs are signed for minutes, and nothing of the
    /// blob passed through here.
    pub fn redirect_head(&self, location: &str, digest: &Digest) -> Head {
        self.finish(
            Head::new(307)
                .with("Location", location)
                .with("Docker-Content-Digest", digest.to_string())
                .with("Cache-Control", "no-store")
                .with("Content-Length", "0"),
        )
    }

    /// The head of found content `digest` of `media_type`, `length` bytes
    /// long (`None`: not known before it is made, as the CLI's JSON).
    pub fn content_head(
        &self,
        digest: &Digest,
        media_type: &str,
        length: Option<u64>,
        config: &ServiceConfig,
    ) -> Head {
        let mut head = content_head(
            200,
            digest,
            media_type,
            length.unwrap_or_default(),
            self.addressed(),
            config,
        );
        if length.is_none() {
            head.headers.retain(|(name, _)| name != "Content-Length");
        }
        self.finish(head)
    }

    /// The head of JSON the service made (`/index/REF`), `length` bytes
    /// long, cached as what it was made from is addressed.
    pub fn json_head(&self, length: u64, config: &ServiceConfig) -> Head {
        let head = Head::new(200)
            .with("Content-Type", "application/json")
            .with("Content-Length", length.to_string())
            .with(
                "Cache-Control",
                reply::cache_control(self.addressed(), config),
            );
        self.finish(head)
    }

    /// The head of bytes `first` to `last` (included) of blob `digest`
    /// of `size` bytes: a 206, never stored by a cache (see the module's
    /// rule).
    pub fn part_head(&self, digest: &Digest, first: u64, last: u64, size: u64) -> Head {
        let head = Head::new(206)
            .with("Docker-Content-Digest", digest.to_string())
            .with("ETag", etag(digest))
            .with("Cache-Control", "no-store")
            .with("Content-Type", "application/octet-stream")
            .with("Content-Range", format!("bytes {first}-{last}/{size}"))
            .with("Content-Length", (last - first + 1).to_string());
        self.finish(head)
    }

    /// The answer to a referrers request: the list as the referrers API
    /// gives it (an image index), filtered here when `filtered` names an
    /// artifact type (and so said in `OCI-Filters-Applied`). A list grows
    /// as signatures are added: it is cached as a tag is.
    pub fn referrers(
        &self,
        found: &crate::ops::referrers::Referrers,
        filtered: bool,
        config: &ServiceConfig,
    ) -> (Head, String) {
        let body = format!("{}\n", found.index());
        let mut head = Head::new(200)
            .with("Content-Type", crate::media_type::OCI_INDEX)
            .with("Content-Length", body.len().to_string())
            .with(
                "Cache-Control",
                reply::cache_control(Addressed::ByTag, config),
            );
        if filtered {
            head = head.with(
                "OCI-Filters-Applied",
                crate::ops::referrers::ARTIFACT_TYPE_FILTER,
            );
        }
        (self.finish(head), body)
    }

    /// The answer to it failing, in its route's dialect.
    pub fn failure(&self, failure: &Failure) -> (Head, String) {
        reply::failure(failure, self.route.is_mirror(), self.route.is_blob())
    }

    /// What every answer of the route carries.
    fn finish(&self, mut head: Head) -> Head {
        if self.route.is_blob() {
            head = head.with("Accept-Ranges", "bytes");
        }
        if self.route.is_mirror() {
            head = head.with(API_VERSION.0, API_VERSION.1);
        }
        head
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::reply::FailureKind;
    use crate::service::testing::{config, with_headers as request, DIGEST};

    fn digest() -> Digest {
        Digest::parse(DIGEST).unwrap()
    }

    #[test]
    fn every_mirror_answer_says_its_api_version() {
        let version = |head: &Head| {
            head.get("docker-distribution-api-version")
                .map(str::to_string)
        };
        let v2 = Some("registry/2.0".to_string());
        let manifest = request("/v2/app/manifests/v1", &[]);
        let head = manifest.content_head(&digest(), "application/x", Some(3), &config());
        assert_eq!(version(&head), v2);
        assert_eq!(head.get("accept-ranges"), None);
        assert_eq!(
            version(
                &manifest
                    .failure(&Failure::new(FailureKind::NotFound, "x"))
                    .0
            ),
            v2
        );
        let blob = request(&format!("/v2/app/blobs/{DIGEST}"), &[]);
        let head = blob.content_head(&digest(), "application/octet-stream", Some(0), &config());
        assert_eq!(
            (version(&head), head.get("accept-ranges")),
            (v2.clone(), Some("bytes"))
        );
        assert_eq!(version(&blob.part_head(&digest(), 1, 2, 3)), v2);
        let lookup = request("/manifest/127.0.0.1:5000/app:v1", &[]);
        let head = lookup.content_head(&digest(), "application/json", None, &config());
        assert_eq!(version(&head), None);
        assert_eq!(head.get("content-length"), None);
        assert_eq!(version(&api_base().0), v2);
        let refused = Failure::new(FailureKind::NoSuchRoute, "no");
        assert_eq!(version(&refusal("/v2/_catalog?n=1", &refused).0), v2);
        assert_eq!(version(&refusal("/elsewhere", &refused).0), None);
        let (_, body) = refusal(
            &format!("/v2/a/blobs/{DIGEST}"),
            &Failure::new(FailureKind::NotFound, "x"),
        );
        assert!(body.contains("BLOB_UNKNOWN"), "{body}");
    }

    #[test]
    fn made_json_is_cached_as_its_source_is_addressed() {
        let by_tag = request("/index/127.0.0.1:5000/app:v1", &[]).json_head(9, &config());
        assert_eq!(by_tag.get("content-length"), Some("9"));
        assert_eq!(by_tag.get("content-type"), Some("application/json"));
        assert!(by_tag.get("cache-control").unwrap().contains("max-age=60"));
        let by_digest = request(&format!("/index/127.0.0.1:5000/app@{DIGEST}"), &[]);
        let head = by_digest.json_head(9, &config());
        assert!(head.get("cache-control").unwrap().contains("immutable"));
    }

    #[test]
    fn a_part_is_a_206_no_cache_stores() {
        let blob = request(&format!("/v2/app/blobs/{DIGEST}"), &[("Range", "bytes=5-")]);
        let head = blob.part_head(&digest(), 5, 9, 10);
        assert_eq!(head.status, 206);
        assert_eq!(head.get("content-range"), Some("bytes 5-9/10"));
        assert_eq!(head.get("content-length"), Some("5"));
        assert_eq!(head.get("cache-control"), Some("no-store"));
        assert_eq!(head.get("etag"), Some(format!("\"{DIGEST}\"").as_str()));
    }

    #[test]
    fn a_304_answers_an_if_none_match_naming_the_content() {
        let tag = format!("\"{DIGEST}\"");
        let r = request("/v2/app/manifests/v1", &[("If-None-Match", &tag)]);
        let head = r.not_modified(&digest(), &config()).unwrap();
        assert_eq!(head.status, 304);
        assert!(head.get("cache-control").unwrap().contains("max-age=60"));
        assert!(r.not_modified(&Digest::sha256(b"x"), &config()).is_none());
        assert!(request("/v2/app/manifests/v1", &[])
            .not_modified(&digest(), &config())
            .is_none());
    }

    #[test]
    fn a_referrers_answer_is_an_index_cached_as_a_tag_saying_its_filter() {
        use crate::ops::referrers::{Referrers, Source};
        let mut entry = crate::Descriptor::new(crate::media_type::OCI_MANIFEST, digest(), 7);
        entry.artifact_type = Some("application/spdx+json".into());
        let found = Referrers {
            manifests: vec![entry],
            source: Source::FallbackTag,
        };
        let ask = request(&format!("/v2/app/referrers/{DIGEST}"), &[]);
        let (head, body) = ask.referrers(&found, true, &config());
        assert_eq!(head.status, 200);
        assert_eq!(head.get("content-type"), Some(crate::media_type::OCI_INDEX));
        assert_eq!(
            head.get("content-length"),
            Some(body.len().to_string().as_str())
        );
        assert_eq!(head.get("oci-filters-applied"), Some("artifactType"));
        assert_eq!(
            head.get("docker-distribution-api-version"),
            Some("registry/2.0")
        );
        let tag_like = request("/v2/app/manifests/v1", &[]).json_head(1, &config());
        assert_eq!(head.get("cache-control"), tag_like.get("cache-control"));
        let index: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            index["manifests"][0]["artifactType"],
            "application/spdx+json"
        );
        let (head, _) = ask.referrers(&found, false, &config());
        assert_eq!(head.get("oci-filters-applied"), None);
    }
}
