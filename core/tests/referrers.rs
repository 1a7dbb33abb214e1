//! Referrers against scripted registries: the referrers API (filtered by
//! the registry or by us, paged), the fallback tag where there is no API,
//! and registries that answer something else, loop, or list too much.

use ocirelay_core::client::Answer;
use ocirelay_core::http::{BodyMode, Request, ResponseBody};
use ocirelay_core::media_type::{OCI_INDEX, OCI_MANIFEST};
use ocirelay_core::ops::referrers::{
    fallback_tag, ListReferrers, Referrers, Source, MAX_REFERRERS, PAGE_SIZE_LIMIT,
};
use ocirelay_core::{Descriptor, Digest, Reference};

mod common;
use common::{client, drive, response};

const SBOM: &str = "application/spdx+json";
const SIG: &str = "application/vnd.dev.cosign.artifact.sig.v1+json";

fn subject() -> Digest {
    Digest::sha256(b"the subject")
}

/// A referrer of artifact type `t`, told apart by `n`.
fn referrer(n: u32, t: &str) -> Descriptor {
    let mut d = Descriptor::new(
        OCI_MANIFEST,
        Digest::sha256(&n.to_be_bytes()),
        500 + u64::from(n),
    );
    d.artifact_type = Some(t.to_string());
    d.annotations.insert(
        "org.opencontainers.image.created".into(),
        format!("2026-01-0{n}"),
    );
    d
}

/// An index of `entries` with `headers` (a `Link`, `OCI-Filters-Applied`).
fn index(entries: &[Descriptor], headers: &[(&str, &str)]) -> Answer {
    let body =
        serde_json::json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries})
            .to_string();
    let mut all = vec![("Content-Type", OCI_INDEX)];
    all.extend_from_slice(headers);
    Ok(response(200, &all, body.as_bytes()))
}

fn not_found() -> Answer {
    let body = br#"{"errors":[{"code":"NOT_FOUND","message":"not found"}]}"#;
    Ok(response(404, &[("Content-Type", "application/json")], body))
}

fn api_path() -> String {
    format!("/v2/team/app/referrers/{}", subject())
}

fn tag_path() -> String {
    format!("/v2/team/app/manifests/{}", fallback_tag(&subject()))
}

fn list(
    artifact_type: Option<&str>,
    answer: impl FnMut(&Request) -> Answer,
) -> (ocirelay_core::Result<Referrers>, Vec<Request>) {
    let mut c = client(&[]);
    let reference = Reference::parse("localhost:5000/team/app:v1").unwrap();
    let mut op = ListReferrers::new(&c, reference, subject(), artifact_type.map(str::to_string));
    drive(&mut c, &mut op, answer)
}

fn paths(sent: &[Request]) -> Vec<String> {
    sent.iter().map(|r| r.url.path_and_query.clone()).collect()
}

#[test]
fn the_api_s_index_is_the_list_and_its_filter_is_not_applied_twice() {
    let (a, b) = (referrer(1, SBOM), referrer(2, SIG));
    // The registry says it filtered (and, to show we trust it, did not).
    let (outcome, sent) = list(Some(SBOM), |_| {
        index(
            &[a.clone(), b.clone()],
            &[("OCI-Filters-Applied", "artifactType")],
        )
    });
    let got = outcome.unwrap();
    assert_eq!(got.source, Source::Api);
    assert_eq!(got.manifests, [a.clone(), b.clone()]);
    assert_eq!(
        paths(&sent),
        [format!(
            "{}?artifactType=application%2Fspdx%2Bjson",
            api_path()
        )]
    );
    assert_eq!(sent[0].headers.get("accept"), Some(OCI_INDEX));
    assert_eq!(got.index()["manifests"][0]["artifactType"], SBOM);
    assert_eq!(got.index()["mediaType"], OCI_INDEX);

    // It did not say so: the filter is ours to apply.
    let (outcome, _) = list(Some(SBOM), |_| index(&[a.clone(), b.clone()], &[]));
    assert_eq!(outcome.unwrap().manifests, vec![a.clone()]);
    // Other filters applied are not the artifact type's.
    let (outcome, _) = list(Some(SBOM), |_| {
        index(
            &[a.clone(), b.clone()],
            &[("OCI-Filters-Applied", "annotation")],
        )
    });
    assert_eq!(outcome.unwrap().manifests, vec![a.clone()]);
    // No filter asked: every referrer.
    let (outcome, sent) = list(None, |_| index(&[a.clone(), b.clone()], &[]));
    assert_eq!(outcome.unwrap().manifests.len(), 2);
    assert_eq!(paths(&sent), [api_path()]);
}

#[test]
fn pages_are_followed_to_the_end_on_the_registry_s_own_path() {
    let entries: Vec<Descriptor> = (1..=5).map(|n| referrer(n, SIG)).collect();
    let mut n = 0;
    let (outcome, sent) = list(None, |_| {
        n += 1;
        match n {
            1 => index(
                &entries[..2],
                &[(
                    "Link",
                    &format!("<{}?n=2&last=b>; rel=\"next\"", api_path()),
                )],
            ),
            2 => index(
                &entries[2..4],
                &[(
                    "Link",
                    &format!(
                        "<http://localhost:5000{}?n=2&last=d>; rel=\"next\"",
                        api_path()
                    ),
                )],
            ),
            _ => index(&entries[4..], &[]),
        }
    });
    assert_eq!(outcome.unwrap().manifests, entries);
    assert_eq!(sent.len(), 3);

    for (link, why) in [
        (
            format!("http://elsewhere.example{}", api_path()),
            "another origin",
        ),
        (
            "/v2/team/other/referrers/x".to_string(),
            "not on this list's path",
        ),
        (api_path(), "already read"),
    ] {
        let header = format!("<{link}>; rel=\"next\"");
        let (outcome, sent) = list(None, |_| index(&entries[..1], &[("Link", &header)]));
        let e = outcome.unwrap_err().to_string();
        assert!(
            e.contains(why) && e.contains("localhost:5000/team/app@sha256:"),
            "{link}: {e}"
        );
        assert_eq!(sent.len(), 1, "{link}: nothing followed");
    }
}

#[test]
fn without_the_api_the_fallback_tag_s_index_is_read_and_filtered() {
    let (a, b) = (referrer(1, SBOM), referrer(2, SIG));
    let (outcome, sent) = list(Some(SIG), |req| {
        if req.url.path_and_query.contains("/referrers/") {
            not_found()
        } else {
            index(&[a.clone(), b.clone()], &[])
        }
    });
    let got = outcome.unwrap();
    assert_eq!(got.source, Source::FallbackTag);
    assert_eq!(got.manifests, vec![b.clone()]);
    assert_eq!(
        paths(&sent),
        [
            format!(
                "{}?artifactType=application%2Fvnd.dev.cosign.artifact.sig.v1%2Bjson",
                api_path()
            ),
            tag_path()
        ]
    );
    assert!(sent[1].headers.get("accept").unwrap().contains(OCI_INDEX));

    // What registries without the API answer instead of a 404.
    for status in [400, 405, 406, 501] {
        let (outcome, sent) = list(None, |req| {
            if req.url.path_and_query.contains("/referrers/") {
                Ok(response(status, &[], b""))
            } else {
                index(std::slice::from_ref(&a), &[])
            }
        });
        assert_eq!(outcome.unwrap().source, Source::FallbackTag, "{status}");
        assert_eq!(paths(&sent)[1], tag_path());
    }
}

#[test]
fn an_api_answer_that_is_not_an_index_means_no_api() {
    let manifest = serde_json::json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "layers": []});
    for body in [manifest.to_string(), "<html>welcome</html>".to_string()] {
        let (outcome, sent) = list(None, |req| {
            if req.url.path_and_query.contains("/referrers/") {
                Ok(response(
                    200,
                    &[("Content-Type", "text/html")],
                    body.as_bytes(),
                ))
            } else {
                not_found()
            }
        });
        let got = outcome.unwrap();
        assert_eq!(
            (got.source, got.manifests),
            (Source::Nothing, vec![]),
            "{body}"
        );
        assert_eq!(paths(&sent), [api_path(), tag_path()]);
    }
}

#[test]
fn a_fallback_tag_that_holds_no_index_is_no_referrers_and_says_what_it_holds() {
    let manifest = serde_json::json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "layers": []});
    let (outcome, _) = list(None, |req| {
        if req.url.path_and_query.contains("/referrers/") {
            not_found()
        } else {
            Ok(response(
                200,
                &[("Content-Type", OCI_MANIFEST)],
                manifest.to_string().as_bytes(),
            ))
        }
    });
    let got = outcome.unwrap();
    assert_eq!(got.source, Source::NotAnIndex(OCI_MANIFEST.into()));
    assert!(got.manifests.is_empty());
}

#[test]
fn a_failing_registry_is_an_error_not_an_empty_list() {
    let (outcome, sent) = list(None, |_| Ok(response(500, &[], b"boom")));
    let e = outcome.unwrap_err().to_string();
    assert!(e.contains("500") && e.contains("team/app@sha256:"), "{e}");
    assert!(
        paths(&sent).iter().all(|p| p.contains("/referrers/")),
        "no fallback after a 500"
    );
    // The API's second page that is not an index: the registry broke its list.
    let mut n = 0;
    let (outcome, _) = list(None, |_| {
        n += 1;
        match n {
            1 => index(
                &[referrer(1, SIG)],
                &[("Link", &format!("<{}?last=a>; rel=\"next\"", api_path()))],
            ),
            _ => Ok(response(200, &[], b"{}")),
        }
    });
    assert!(outcome
        .unwrap_err()
        .to_string()
        .contains("a page of the referrers list is no image index"));
}

#[test]
fn lists_and_pages_past_their_limits_are_refused() {
    // A page is read up to its limit; past it, the driver says so.
    let (outcome, sent) = list(None, |_| {
        let mut too_large = response(200, &[("Content-Type", OCI_INDEX)], b"");
        too_large.body = ResponseBody::TooLarge;
        Ok(too_large)
    });
    assert_eq!(sent[0].body_mode, BodyMode::Buffer(PAGE_SIZE_LIMIT));
    let e = outcome.unwrap_err().to_string();
    assert!(
        e.contains(&format!("larger than {PAGE_SIZE_LIMIT} bytes")),
        "{e}"
    );

    // Within the page limit, but past the count over pages.
    let page: Vec<Descriptor> = (0..10_000).map(|n| referrer(n, SIG)).collect();
    let mut n = 0;
    let (outcome, sent) = list(None, |_| {
        n += 1;
        let link = format!("<{}?page={n}>; rel=\"next\"", api_path());
        index(&page, &[("Link", &link)])
    });
    let e = outcome.unwrap_err().to_string();
    assert!(
        e.contains(&format!("more than {MAX_REFERRERS} referrers")),
        "{e}"
    );
    assert_eq!(sent.len(), MAX_REFERRERS / 10_000 + 1);
}

#[test]
fn ten_thousand_referrers_over_ten_pages_are_all_listed() {
    let all: Vec<Descriptor> = (0..10_000).map(|n| referrer(n, SIG)).collect();
    let mut page = 0;
    let (outcome, sent) = list(None, |_| {
        let this = &all[page * 1000..(page + 1) * 1000];
        page += 1;
        let link = format!("<{}?page={page}>; rel=\"next\"", api_path());
        match page {
            10 => index(this, &[]),
            _ => index(this, &[("Link", &link)]),
        }
    });
    let got = outcome.unwrap();
    assert_eq!(got.manifests.len(), 10_000);
    assert_eq!(got.manifests, all);
    assert_eq!(sent.len(), 10);
}
