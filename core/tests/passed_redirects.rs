//! A blob GET whose redirect to storage is passed on (a mirror sends its
//! client there): which redirects are, against scripted answers.

use ocirelay_core::http::{Request, Response, ResponseBody, TransportError};
use ocirelay_core::ops::lookup::{Body, Found, Lookup, LookupKind, LookupOptions};
use ocirelay_core::{Client, Digest, Reference};

mod common;
use common::{client, drive, response, urls};

const BLOB: LookupOptions = LookupOptions {
    kind: LookupKind::Blob,
    head: false,
};

fn lookup(
    client: &mut Client,
    reference: &str,
    options: LookupOptions,
    answer: impl FnMut(&Request) -> Result<Response, TransportError>,
) -> (ocirelay_core::Result<Option<Found>>, Vec<Request>) {
    let reference = Reference::parse(reference).unwrap();
    let mut op = Lookup::new(reference, options).unwrap().passing_redirects();
    drive(client, &mut op, answer)
}

/// The registry at `registry` redirects every blob GET to `location`;
/// storage answers the content.
fn redirecting(
    registry: &'static str,
    location: &'static str,
) -> impl FnMut(&Request) -> Result<Response, TransportError> {
    move |req| {
        Ok(if req.url.authority == registry {
            response(307, &[("Location", location)], b"")
        } else {
            Response {
                status: 200,
                headers: [("Content-Length".to_string(), "4".to_string())]
                    .into_iter()
                    .collect(),
                body: ResponseBody::Held,
            }
        })
    }
}

#[test]
fn a_redirect_to_storage_is_the_answer_and_nothing_goes_there() {
    let digest = Digest::sha256(b"blob");
    let mut c = client(&[]);
    let reference = format!("r.example/team/app@{digest}");
    let (found, sent) = lookup(
        &mut c,
        &reference,
        BLOB,
        redirecting("r.example", "https://cdn.example/blob?sig=1"),
    );
    assert_eq!(
        urls(&sent),
        [format!("GET https://r.example/v2/team/app/blobs/{digest}")]
    );
    let found = found.unwrap().unwrap();
    let Body::Redirect(to) = found.body else {
        panic!("the redirect is the answer: {:?}", found.body)
    };
    assert_eq!(to.to_string(), "https://cdn.example/blob?sig=1");
    assert_eq!(found.descriptor.digest, digest);

    // A relative location is resolved against the registry.
    let (found, _) = lookup(
        &mut client(&[]),
        &reference,
        BLOB,
        redirecting("r.example", "/storage/blob"),
    );
    let Some(Found {
        body: Body::Redirect(to),
        ..
    }) = found.unwrap()
    else {
        panic!("a redirect")
    };
    assert_eq!(to.to_string(), "https://r.example/storage/blob");
}

#[test]
fn a_redirect_from_a_public_host_to_a_private_address_is_followed_here() {
    let digest = Digest::sha256(b"blob");
    let reference = format!("r.example/team/app@{digest}");
    for inside in ["https://10.0.0.5/blob", "https://169.254.169.254/latest"] {
        let mut c = client(&[]);
        let leaked: &'static str = Box::leak(inside.to_string().into_boxed_str());
        let (found, sent) = lookup(&mut c, &reference, BLOB, redirecting("r.example", leaked));
        assert_eq!(
            urls(&sent)[1],
            format!("GET {inside}"),
            "followed, not passed on"
        );
        let found = found.unwrap().unwrap();
        assert!(
            matches!(found.body, Body::Stream { .. }),
            "{:?}",
            found.body
        );
    }
    // A registry on a private address may send its clients to one.
    let (found, sent) = lookup(
        &mut client(&[]),
        &format!("127.0.0.1:5000/team/app@{digest}"),
        BLOB,
        redirecting("127.0.0.1:5000", "http://127.0.0.1:9000/blob"),
    );
    assert_eq!(sent.len(), 1);
    assert!(matches!(found.unwrap().unwrap().body, Body::Redirect(_)));
}

#[test]
fn a_redirect_down_to_plain_http_is_refused_as_without_passing() {
    let digest = Digest::sha256(b"blob");
    let (found, sent) = lookup(
        &mut client(&[]),
        &format!("r.example/team/app@{digest}"),
        BLOB,
        redirecting("r.example", "http://cdn.example/blob?sig=s3cret"),
    );
    let e = found.unwrap_err().to_string();
    assert!(
        e.contains("down to plain HTTP") && !e.contains("s3cret"),
        "{e}"
    );
    assert_eq!(sent.len(), 1);
}

#[test]
fn heads_and_manifests_follow_redirects_as_ever() {
    let digest = Digest::sha256(b"blob");
    let head = LookupOptions {
        kind: LookupKind::Blob,
        head: true,
    };
    let (found, sent) = lookup(
        &mut client(&[]),
        &format!("r.example/team/app@{digest}"),
        head,
        |req| {
            Ok(if req.url.authority == "r.example" {
                response(307, &[("Location", "https://cdn.example/blob")], b"")
            } else {
                let d = digest.to_string();
                response(
                    200,
                    &[("Content-Length", "4"), ("Docker-Content-Digest", &d)],
                    b"",
                )
            })
        },
    );
    assert_eq!(sent.len(), 2, "the HEAD followed its redirect");
    assert!(matches!(found.unwrap().unwrap().body, Body::Empty));
}
