//! The lookup state machine against scripted registry answers: every
//! request it asks for is asserted exactly, no network involved.

use ocirelay_core::auth::Credential;
use ocirelay_core::http::{
    BodyMode, Headers, Method, Request, Response, ResponseBody, TransportError,
};
use ocirelay_core::media_type::{MANIFEST_ACCEPT, OCI_MANIFEST};
use ocirelay_core::ops::lookup::{Body, Found, Lookup, LookupKind, LookupOptions};
use ocirelay_core::{Client, ClientConfig, Digest, Error, Instant, Operation, Output, Reference};

mod common;
use common::{client, drive, drive_concurrently, drive_timed, manifest_ok, response, urls, Sent};

const MANIFEST: &[u8] = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}"#;

fn lookup(
    client: &mut Client,
    reference: &str,
    options: LookupOptions,
    answer: impl FnMut(&Request) -> Result<Response, TransportError>,
) -> (ocirelay_core::Result<Option<Found>>, Vec<Request>) {
    let reference = Reference::parse(reference).unwrap();
    let mut op = Lookup::new(reference, options).unwrap();
    drive(client, &mut op, answer)
}

const GET_MANIFEST: LookupOptions = LookupOptions {
    kind: LookupKind::Manifest,
    head: false,
};
const HEAD_MANIFEST: LookupOptions = LookupOptions {
    kind: LookupKind::Manifest,
    head: true,
};

#[test]
fn manifest_by_tag_with_all_four_accept_types_and_user_agent() {
    let mut c = client(&[]);
    let digest = Digest::sha256(MANIFEST).to_string();
    let (found, sent) = lookup(&mut c, "localhost:5000/foo:v1", GET_MANIFEST, |_| {
        Ok(manifest_ok(MANIFEST, Some(&digest)))
    });
    assert_eq!(
        urls(&sent),
        ["GET http://localhost:5000/v2/foo/manifests/v1"]
    );
    assert_eq!(sent[0].headers.get("accept"), Some(MANIFEST_ACCEPT));
    assert_eq!(sent[0].headers.get("user-agent"), Some("test-agent"));
    assert_eq!(sent[0].body_mode, BodyMode::Buffer(4 * 1024 * 1024));
    let found = found.unwrap().unwrap();
    assert_eq!(found.descriptor.digest.to_string(), digest);
    assert_eq!(found.descriptor.size, MANIFEST.len() as u64);
    assert_eq!(found.descriptor.media_type, OCI_MANIFEST);
    assert!(matches!(found.body, Body::Bytes(ref b) if b == MANIFEST));
}

#[test]
fn no_tag_means_latest_and_docker_hub_goes_to_its_api_host() {
    let mut c = client(&[]);
    let (found, sent) = lookup(&mut c, "hello-world", GET_MANIFEST, |_| {
        Ok(manifest_ok(MANIFEST, None))
    });
    assert_eq!(
        urls(&sent),
        ["GET https://registry-1.docker.io/v2/library/hello-world/manifests/latest"]
    );
    assert_eq!(
        found.unwrap().unwrap().descriptor.digest,
        Digest::sha256(MANIFEST),
        "computed when no header"
    );
}

#[test]
fn a_lying_registry_is_an_error_naming_the_reference() {
    let wanted = Digest::sha256(b"something else");
    let mut c = client(&[]);
    let r = format!("localhost:5000/foo@{wanted}");
    let (found, _) = lookup(&mut c, &r, GET_MANIFEST, |_| {
        Ok(manifest_ok(MANIFEST, None))
    });
    let err = found.unwrap_err();
    assert!(
        matches!(err, Error::Integrity { ref subject, .. } if *subject == r),
        "{err}"
    );

    // By tag: the body must hash to the digest the registry claims.
    let (found, _) = lookup(&mut c, "localhost:5000/foo:v1", GET_MANIFEST, |_| {
        Ok(manifest_ok(MANIFEST, Some(&wanted.to_string())))
    });
    assert!(matches!(found.unwrap_err(), Error::Integrity { .. }));

    // A short body against its Content-Length.
    let (found, _) = lookup(&mut c, "localhost:5000/foo:v1", GET_MANIFEST, |_| {
        Ok(response(
            200,
            &[("Content-Type", OCI_MANIFEST), ("Content-Length", "999")],
            MANIFEST,
        ))
    });
    assert!(matches!(found.unwrap_err(), Error::Integrity { .. }));

    // A HEAD claiming another digest than asked for.
    let (found, _) = lookup(&mut c, &r, HEAD_MANIFEST, |_| {
        Ok(manifest_ok(
            b"",
            Some(&Digest::sha256(MANIFEST).to_string()),
        ))
    });
    assert!(matches!(found.unwrap_err(), Error::Integrity { .. }));
}

#[test]
fn a_port_no_socket_can_have_is_refused_before_anything_is_sent() {
    // The grammar takes any run of digits as a port; a transport would
    // fall back to port 80 or 443 for one past 65535.
    for reference in ["registry.example:123456/app:v1", "127.0.0.1:0/app:v1"] {
        let mut c = client(&[]);
        let (found, sent) = lookup(&mut c, reference, HEAD_MANIFEST, |q| {
            panic!("sent {} {}", q.method.as_str(), q.url)
        });
        let err = found.unwrap_err();
        assert!(matches!(err, Error::InvalidInput(_)), "{err:?}");
        let host = reference.split('/').next().unwrap_or_default();
        assert!(
            err.to_string().contains(&format!("registry {host:?}")),
            "{err}"
        );
        assert!(sent.is_empty());
    }
    // The highest port is a port.
    let mut c = client(&[]);
    let (_, sent) = lookup(&mut c, "localhost:65535/app:v1", HEAD_MANIFEST, |_| {
        Ok(response(404, &[], b""))
    });
    assert_eq!(
        urls(&sent),
        ["HEAD http://localhost:65535/v2/app/manifests/v1"]
    );
}

#[test]
fn head_gives_the_descriptor_without_content() {
    let mut c = client(&[]);
    let digest = Digest::sha256(MANIFEST).to_string();
    let len = MANIFEST.len().to_string();
    let (found, sent) = lookup(&mut c, "localhost:5000/foo:v1", HEAD_MANIFEST, |_| {
        Ok(response(
            200,
            &[
                ("Content-Type", OCI_MANIFEST),
                ("Content-Length", &len),
                ("Docker-Content-Digest", &digest),
            ],
            b"",
        ))
    });
    assert_eq!(
        urls(&sent),
        ["HEAD http://localhost:5000/v2/foo/manifests/v1"]
    );
    let found = found.unwrap().unwrap();
    assert_eq!(found.descriptor.size, MANIFEST.len() as u64);
    assert!(matches!(found.body, Body::Empty));
}

#[test]
fn head_without_docker_content_digest_falls_back_to_get() {
    let mut c = client(&[]);
    let len = MANIFEST.len().to_string();
    let (found, sent) = lookup(&mut c, "localhost:5000/foo:v1", HEAD_MANIFEST, |req| {
        Ok(match req.method {
            Method::Head => response(
                200,
                &[("Content-Type", OCI_MANIFEST), ("Content-Length", &len)],
                b"",
            ),
            _ => manifest_ok(MANIFEST, None),
        })
    });
    assert_eq!(
        urls(&sent),
        [
            "HEAD http://localhost:5000/v2/foo/manifests/v1",
            "GET http://localhost:5000/v2/foo/manifests/v1"
        ]
    );
    let found = found.unwrap().unwrap();
    assert_eq!(found.descriptor.digest, Digest::sha256(MANIFEST));
    assert!(
        matches!(found.body, Body::Empty),
        "a HEAD lookup returns no content even after a GET"
    );
}

#[test]
fn not_found_is_a_value() {
    let mut c = client(&[]);
    for (status, body) in [
        (404, &b""[..]),
        (401, b""),
        (403, b""),
        (
            400,
            br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"x"}]}"#,
        ),
        (400, br#"{"errors":[{"code":"NAME_UNKNOWN"}]}"#),
        (400, br#"{"errors":[{"code":"BLOB_UNKNOWN"}]}"#),
    ] {
        let (found, _) = lookup(&mut c, "localhost:5000/foo:v1", GET_MANIFEST, |_| {
            Ok(response(status, &[], body))
        });
        assert!(found.unwrap().is_none(), "{status}");
    }
    let (found, _) = lookup(&mut c, "localhost:5000/foo:v1", GET_MANIFEST, |_| {
        Ok(response(
            500,
            &[],
            br#"{"errors":[{"code":"UNKNOWN","message":"boom"}]}"#,
        ))
    });
    let err = found.unwrap_err();
    assert_eq!(
        err.to_string(),
        "localhost:5000/foo:v1: registry answered 500 UNKNOWN: boom"
    );
}

#[test]
fn token_auth_challenge_token_and_retry_then_token_reuse() {
    let mut c = client(&[(
        "r.example",
        Credential::Basic {
            username: "u".into(),
            password: "p".into(),
        },
    )]);
    let challenge =
        r#"Bearer realm="https://auth.example/token",service="reg",scope="repository:foo:pull""#;
    let mut answer = |req: &Request| -> Result<Response, TransportError> {
        Ok(if req.url.authority == "auth.example" {
            assert_eq!(
                req.headers.get("authorization"),
                Some("Basic dTpw"),
                "credentials go to the realm"
            );
            response(200, &[], br#"{"access_token":"tok"}"#)
        } else if req.headers.get("authorization") == Some("Bearer tok") {
            manifest_ok(MANIFEST, None)
        } else {
            response(401, &[("WWW-Authenticate", challenge)], b"")
        })
    };
    let (found, sent) = lookup(&mut c, "r.example/foo:v1", GET_MANIFEST, &mut answer);
    assert!(found.unwrap().is_some());
    assert_eq!(
        urls(&sent),
        [
            "GET https://r.example/v2/foo/manifests/v1",
            "GET https://auth.example/token?service=reg&scope=repository%3Afoo%3Apull",
            "GET https://r.example/v2/foo/manifests/v1",
        ]
    );
    assert_eq!(sent[0].headers.get("authorization"), None);
    assert_eq!(
        sent[1].body_mode,
        BodyMode::Buffer(64 * 1024),
        "a token answer is read up to 64 KiB, no more"
    );
    // The same scope again: the token is reused, one request.
    let (found, sent) = lookup(&mut c, "r.example/foo:v2", GET_MANIFEST, &mut answer);
    assert!(found.unwrap().is_some());
    assert_eq!(urls(&sent), ["GET https://r.example/v2/foo/manifests/v2"]);
}

#[test]
fn token_auth_refusals() {
    let challenge = r#"Bearer realm="http://127.0.0.1:9/token",service="reg""#;
    // Credentials refused by the token server: an authentication error.
    let mut c = client(&[(
        "localhost:5000",
        Credential::Basic {
            username: "u".into(),
            password: "bad".into(),
        },
    )]);
    let (found, _) = lookup(&mut c, "localhost:5000/foo:v1", GET_MANIFEST, |req| {
        Ok(if req.url.path_and_query.starts_with("/token") {
            response(401, &[], b"")
        } else {
            response(401, &[("WWW-Authenticate", challenge)], b"")
        })
    });
    let err = found.unwrap_err();
    assert!(matches!(err, Error::Authentication { .. }), "{err}");
    assert!(
        !err.to_string().contains("bad"),
        "no secret in errors: {err}"
    );

    // Anonymous and refused: the registry's 401 stands, i.e. not found.
    let mut c = client(&[]);
    let (found, sent) = lookup(&mut c, "localhost:5000/foo:v1", GET_MANIFEST, |req| {
        Ok(if req.url.path_and_query.starts_with("/token") {
            response(403, &[], b"")
        } else {
            response(401, &[("WWW-Authenticate", challenge)], b"")
        })
    });
    assert!(found.unwrap().is_none());
    assert_eq!(sent.len(), 2);

    // A fresh token that still gets 401 (insufficient scope): not found, no
    // loop. The client knows the challenge by now, so the token is asked for
    // ahead of the request.
    let (found, sent) = lookup(&mut c, "localhost:5000/foo:v1", GET_MANIFEST, |req| {
        Ok(if req.url.path_and_query.starts_with("/token") {
            response(200, &[], br#"{"token":"anon"}"#)
        } else {
            response(401, &[("WWW-Authenticate", challenge)], b"")
        })
    });
    assert!(found.unwrap().is_none());
    assert_eq!(
        urls(&sent),
        [
            "GET http://127.0.0.1:9/token?service=reg&scope=repository%3Afoo%3Apull",
            "GET http://localhost:5000/v2/foo/manifests/v1",
        ]
    );
    assert_eq!(sent[1].headers.get("authorization"), Some("Bearer anon"));
}

#[test]
fn basic_auth_challenge() {
    let basic = [("WWW-Authenticate", r#"Basic realm="test-realm""#)];
    let mut c = client(&[(
        "localhost:5000",
        Credential::Basic {
            username: "u".into(),
            password: "p".into(),
        },
    )]);
    let mut answer = |req: &Request| -> Result<Response, TransportError> {
        Ok(match req.headers.get("authorization") {
            Some("Basic dTpw") => manifest_ok(MANIFEST, None),
            _ => response(401, &basic, b""),
        })
    };
    let (found, sent) = lookup(&mut c, "localhost:5000/foo:v1", GET_MANIFEST, &mut answer);
    assert!(found.unwrap().is_some());
    assert_eq!(sent.len(), 2);
    let (_, sent) = lookup(&mut c, "localhost:5000/foo:v2", GET_MANIFEST, &mut answer);
    assert_eq!(
        sent.len(),
        1,
        "Basic is sent up front once the registry asked for it"
    );

    let mut wrong = client(&[(
        "localhost:5000",
        Credential::Basic {
            username: "u".into(),
            password: "nope".into(),
        },
    )]);
    let (found, sent) = lookup(
        &mut wrong,
        "localhost:5000/foo:v1",
        GET_MANIFEST,
        &mut answer,
    );
    assert!(matches!(found.unwrap_err(), Error::Authentication { .. }));
    assert_eq!(sent.len(), 2);

    let mut anonymous = client(&[]);
    let (found, _) = lookup(
        &mut anonymous,
        "localhost:5000/foo:v1",
        GET_MANIFEST,
        &mut answer,
    );
    assert!(found.unwrap().is_none());
}

#[test]
fn blob_get_streams_and_redirect_elsewhere_drops_authorization() {
    let digest = Digest::sha256(b"blob bytes");
    let mut c = client(&[("localhost:5000", Credential::Bearer("tok".into()))]);
    let challenge = r#"Bearer realm="http://localhost:5000/token",service="reg""#;
    let (found, sent) = lookup(
        &mut c,
        &format!("localhost:5000/foo@{digest}"),
        LookupOptions {
            kind: LookupKind::Blob,
            head: false,
        },
        |req| {
            Ok(if req.url.authority == "cdn.example" {
                Response {
                    status: 200,
                    headers: [("Content-Length".to_string(), "10".to_string())]
                        .into_iter()
                        .collect(),
                    body: ResponseBody::Held,
                }
            } else if req.headers.get("authorization") == Some("Bearer tok") {
                response(307, &[("Location", "https://cdn.example/blob?sig=1")], b"")
            } else {
                response(401, &[("WWW-Authenticate", challenge)], b"")
            })
        },
    );
    assert_eq!(
        urls(&sent),
        [
            format!("GET http://localhost:5000/v2/foo/blobs/{digest}"),
            format!("GET http://localhost:5000/v2/foo/blobs/{digest}"),
            "GET https://cdn.example/blob?sig=1".to_string(),
        ]
    );
    assert_eq!(
        sent[0].body_mode,
        BodyMode::Stream {
            buffer_up_to: 4 << 20
        }
    );
    assert_eq!(sent[1].headers.get("authorization"), Some("Bearer tok"));
    assert_eq!(
        sent[2].headers.get("authorization"),
        None,
        "credentials stay with their registry"
    );
    let found = found.unwrap().unwrap();
    assert_eq!(found.descriptor.size, 10);
    let Body::Stream { mut verifier, .. } = found.body else {
        panic!("a blob GET is streamed")
    };
    verifier.update(b"blob bytes").unwrap();
    verifier.finish().unwrap();
}

#[test]
fn an_https_registry_is_never_left_for_plain_http() {
    let digest = Digest::sha256(b"blob bytes");
    let blob = LookupOptions {
        kind: LookupKind::Blob,
        head: false,
    };
    let basic = Credential::Basic {
        username: "u".into(),
        password: "p".into(),
    };
    // A blob redirect down to plain HTTP on the same host and port, or to
    // a scheme that is not HTTP at all: an error, nothing sent there.
    for location in ["http://r.example:443/v2/foo/blobs/x", "file:///etc/passwd"] {
        let mut c = client(&[("r.example", basic.clone())]);
        let (found, sent) = lookup(&mut c, &format!("r.example/foo@{digest}"), blob, |_| {
            Ok(response(307, &[("Location", location)], b""))
        });
        let err = found.unwrap_err().to_string();
        assert!(
            err.contains(location) || err.contains("scheme"),
            "{location}: {err}"
        );
        assert_eq!(sent.len(), 1, "{:?}", urls(&sent));
    }

    // A realm on plain HTTP for an HTTPS registry: no token asked, no
    // credentials sent there.
    let mut c = client(&[("r.example", basic)]);
    let challenge = r#"Bearer realm="http://auth.example/token",service="reg""#;
    let (found, sent) = lookup(&mut c, "r.example/foo:v1", HEAD_MANIFEST, |_| {
        Ok(response(401, &[("WWW-Authenticate", challenge)], b""))
    });
    let err = found.unwrap_err().to_string();
    assert!(
        err.contains("refused the token realm http://auth.example/token")
            && err.contains("down to plain HTTP"),
        "{err}"
    );
    assert_eq!(urls(&sent), ["HEAD https://r.example/v2/foo/manifests/v1"]);
    // A plain-HTTP registry may have a plain-HTTP realm.
    let mut c = client(&[]);
    let challenge = r#"Bearer realm="http://127.0.0.1:9/token",service="reg""#;
    let (_, sent) = lookup(&mut c, "127.0.0.1:5000/foo:v1", HEAD_MANIFEST, |req| {
        Ok(if req.url.authority == "127.0.0.1:9" {
            response(200, &[], br#"{"token":"t"}"#)
        } else {
            response(401, &[("WWW-Authenticate", challenge)], b"")
        })
    });
    assert_eq!(sent[1].url.authority, "127.0.0.1:9");
}

#[test]
fn manifests_over_4_mib_are_refused_unread() {
    let mut c = client(&[]);
    let (found, _) = lookup(&mut c, "localhost:5000/foo:v1", GET_MANIFEST, |_| {
        Ok(Response {
            status: 200,
            headers: [("Content-Length".to_string(), (5 << 20).to_string())]
                .into_iter()
                .collect(),
            body: ResponseBody::TooLarge,
        })
    });
    let err = found.unwrap_err().to_string();
    assert!(err.contains("manifest of 5242880 bytes is larger"), "{err}");
    // Chunked, so no length said: still refused, without a made-up size.
    let (found, _) = lookup(&mut c, "localhost:5000/foo:v1", GET_MANIFEST, |_| {
        Ok(Response {
            status: 200,
            headers: Default::default(),
            body: ResponseBody::TooLarge,
        })
    });
    let err = found.unwrap_err().to_string();
    assert!(
        err.ends_with("manifest is larger than the 4194304-byte limit; refused unread"),
        "{err}"
    );
    let (found, _) = lookup(&mut c, "localhost:5000/foo:v1", HEAD_MANIFEST, |_| {
        let d = Digest::sha256(b"x").to_string();
        Ok(response(
            200,
            &[
                ("Content-Type", OCI_MANIFEST),
                ("Content-Length", "5242881"),
                ("Docker-Content-Digest", &d),
            ],
            b"",
        ))
    });
    assert!(found.unwrap_err().to_string().contains("refused unread"));
}

#[test]
fn the_manifest_limit_is_4_mib_exactly() {
    let limit = 4 * 1024 * 1024;
    let head = |size: usize| {
        let mut c = client(&[]);
        let d = Digest::sha256(b"x").to_string();
        let len = size.to_string();
        lookup(&mut c, "localhost:5000/foo:v1", HEAD_MANIFEST, |_| {
            Ok(response(
                200,
                &[
                    ("Content-Type", OCI_MANIFEST),
                    ("Content-Length", &len),
                    ("Docker-Content-Digest", &d),
                ],
                b"",
            ))
        })
        .0
    };
    assert_eq!(head(limit).unwrap().unwrap().descriptor.size, limit as u64);
    assert!(head(limit + 1).is_err());

    // A GET is asked to be read up to the limit, not one byte more.
    let mut c = client(&[]);
    let (_, sent) = lookup(&mut c, "localhost:5000/foo:v1", GET_MANIFEST, |_| {
        Ok(response(404, &[], b""))
    });
    assert_eq!(sent[0].body_mode, BodyMode::Buffer(limit as u64));
    // Read whole, exactly the limit is fine.
    let mut exact = br#"{"mediaType":"application/vnd.oci.image.manifest.v1+json"}"#.to_vec();
    exact.resize(limit, b' ');
    let (found, _) = lookup(&mut c, "localhost:5000/foo:v3", GET_MANIFEST, |_| {
        Ok(manifest_ok(&exact, None))
    });
    assert_eq!(found.unwrap().unwrap().descriptor.size, limit as u64);
    // A driver that reads past it anyway broke the contract: our bug.
    let big = vec![b' '; limit + 1];
    let (found, _) = lookup(&mut c, "localhost:5000/foo:v2", GET_MANIFEST, |_| {
        Ok(manifest_ok(&big, None))
    });
    assert!(matches!(found, Err(Error::Internal(_))), "{found:?}");
}

#[test]
fn a_manifest_without_a_useful_content_type_is_typed_by_its_media_type_field() {
    let mut c = client(&[]);
    for content_type in [None, Some("application/json"), Some("text/plain")] {
        let (found, _) = lookup(&mut c, "localhost:5000/foo:v1", GET_MANIFEST, |_| {
            let len = MANIFEST.len().to_string();
            let mut headers = vec![("Content-Length", len.as_str())];
            headers.extend(content_type.map(|t| ("Content-Type", t)));
            Ok(response(200, &headers, MANIFEST))
        });
        assert_eq!(
            found.unwrap().unwrap().descriptor.media_type,
            OCI_MANIFEST,
            "{content_type:?}"
        );
    }
    // Neither a Content-Type nor a mediaType: nothing says what it is.
    for body in [&br#"{"schemaVersion":2}"#[..], br#"{"mediaType":""}"#] {
        let (found, _) = lookup(&mut c, "localhost:5000/foo:v2", GET_MANIFEST, |_| {
            Ok(response(200, &[("Content-Type", "text/plain")], body))
        });
        let err = found.unwrap_err().to_string();
        assert!(err.contains("manifest has no media type"), "{err}");
    }
}

#[test]
fn a_get_answered_200_with_a_location_is_not_a_redirect() {
    let mut c = client(&[]);
    let (found, sent) = lookup(&mut c, "localhost:5000/foo:v1", GET_MANIFEST, |_| {
        let mut r = manifest_ok(MANIFEST, None);
        r.headers.append("Location", "http://elsewhere.example/x");
        Ok(r)
    });
    assert!(found.unwrap().is_some());
    assert_eq!(sent.len(), 1, "{:?}", urls(&sent));
}

#[test]
fn invalid_inputs_and_transport_errors() {
    let err = Lookup::new(
        Reference::parse("localhost:5000/foo:v1").unwrap(),
        LookupOptions {
            kind: LookupKind::Blob,
            head: false,
        },
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid input: localhost:5000/foo:v1: a blob lookup needs a digest"
    );
    let err = "tarball".parse::<LookupKind>().unwrap_err();
    assert!(err.to_string().contains("\"tarball\""));

    let mut c = client(&[]);
    let (found, _) = lookup(&mut c, "localhost:5000/foo:v1", GET_MANIFEST, |_| {
        Err(TransportError::transient("connection refused"))
    });
    assert_eq!(
        found.unwrap_err().to_string(),
        "cannot reach localhost:5000: connection refused"
    );
}

#[test]
fn requests_carry_no_body_and_headers_are_exact() {
    let mut c = client(&[]);
    let (_, sent) = lookup(&mut c, "localhost:5000/foo:v1", GET_MANIFEST, |_| {
        Ok(manifest_ok(MANIFEST, None))
    });
    let expected: Headers = [
        ("User-Agent".to_string(), "test-agent".to_string()),
        ("Accept".to_string(), MANIFEST_ACCEPT.to_string()),
    ]
    .into_iter()
    .collect();
    assert_eq!(sent[0].headers, expected);
    assert!(sent[0].body.is_empty());
}

#[test]
fn the_cache_answers_repeats_without_requests() {
    let mut c = client(&[]);
    let digest = Digest::sha256(MANIFEST);
    let mut count = 0;
    let mut answer = |_: &Request| {
        count += 1;
        Ok(manifest_ok(MANIFEST, Some(&digest.to_string())))
    };
    let (_, sent) = lookup(&mut c, "localhost:5000/foo:v1", GET_MANIFEST, &mut answer);
    assert_eq!(sent.len(), 1);
    // Same tag, same digest, a HEAD of either: all known now.
    for (r, options) in [
        ("localhost:5000/foo:v1", GET_MANIFEST),
        ("localhost:5000/foo:v1", HEAD_MANIFEST),
        (&format!("localhost:5000/foo@{digest}")[..], GET_MANIFEST),
        (&format!("localhost:5000/foo@{digest}")[..], HEAD_MANIFEST),
    ] {
        let (found, sent) = lookup(&mut c, r, options, &mut answer);
        assert!(
            sent.is_empty(),
            "{r} {options:?} sent {}",
            urls(&sent).join(", ")
        );
        let found = found.unwrap().unwrap();
        assert_eq!(found.descriptor.digest, digest);
        assert_eq!(matches!(found.body, Body::Empty), options.head);
    }
    // Another repository is not assumed to have it.
    let (_, sent) = lookup(
        &mut c,
        &format!("localhost:5000/bar@{digest}"),
        HEAD_MANIFEST,
        &mut answer,
    );
    assert_eq!(sent.len(), 1);
}

#[test]
fn a_head_result_is_upgraded_by_a_later_get() {
    let mut c = client(&[]);
    let digest = Digest::sha256(MANIFEST).to_string();
    let len = MANIFEST.len().to_string();
    let mut answer = |req: &Request| {
        Ok(match req.method {
            Method::Head => response(
                200,
                &[
                    ("Content-Type", OCI_MANIFEST),
                    ("Content-Length", &len),
                    ("Docker-Content-Digest", &digest),
                ],
                b"",
            ),
            _ => manifest_ok(MANIFEST, Some(&digest)),
        })
    };
    let (_, sent) = lookup(&mut c, "localhost:5000/foo:v1", HEAD_MANIFEST, &mut answer);
    assert_eq!(sent.len(), 1);
    let (found, sent) = lookup(&mut c, "localhost:5000/foo:v1", GET_MANIFEST, &mut answer);
    assert_eq!(
        urls(&sent),
        ["GET http://localhost:5000/v2/foo/manifests/v1"],
        "a descriptor has no bytes"
    );
    assert!(matches!(found.unwrap().unwrap().body, Body::Bytes(_)));
    let (_, sent) = lookup(&mut c, "localhost:5000/foo:v1", GET_MANIFEST, &mut answer);
    assert!(sent.is_empty());
}

#[test]
fn small_blobs_arrive_whole_verified_and_cached() {
    let mut c = client(&[]);
    let digest = Digest::sha256(b"{}");
    let blob = LookupOptions {
        kind: LookupKind::Blob,
        head: false,
    };
    let r = format!("localhost:5000/foo@{digest}");
    let (found, sent) = lookup(&mut c, &r, blob, |_| {
        Ok(response(200, &[("Content-Length", "2")], b"{}"))
    });
    assert_eq!(sent.len(), 1);
    assert!(matches!(found.unwrap().unwrap().body, Body::Bytes(ref b) if b[..] == b"{}"[..]));
    let (_, sent) = lookup(&mut c, &r, blob, |_| panic!("cached"));
    assert!(sent.is_empty());

    // A small blob that does not match its digest is refused, not cached.
    let mut c = client(&[]);
    let (found, _) = lookup(&mut c, &r, blob, |_| {
        Ok(response(200, &[("Content-Length", "2")], b"[]"))
    });
    assert!(matches!(found.unwrap_err(), Error::Integrity { .. }));
    let (_, sent) = lookup(&mut c, &r, blob, |_| Ok(response(404, &[], b"")));
    assert_eq!(sent.len(), 1);
}

#[test]
fn cache_off_asks_every_time() {
    let mut c = Client::new(ClientConfig {
        cache: false,
        ..ClientConfig::default()
    });
    for _ in 0..2 {
        let (_, sent) = lookup(&mut c, "localhost:5000/foo:v1", GET_MANIFEST, |_| {
            Ok(manifest_ok(MANIFEST, None))
        });
        assert_eq!(sent.len(), 1);
    }
}

#[test]
fn concurrent_lookups_of_one_key_share_one_request() {
    let mut c = client(&[]);
    let r = Reference::parse("localhost:5000/foo:v1").unwrap();
    let mut a = Lookup::new(r.clone(), GET_MANIFEST).unwrap();
    let mut b = Lookup::new(r, GET_MANIFEST).unwrap();
    let Output::Send(id, _) = a.poll_output(&mut c) else {
        panic!("a sends")
    };
    assert!(
        matches!(b.poll_output(&mut c), Output::Wait(None)),
        "b waits for a's answer"
    );
    c.handle_response(id, Ok(manifest_ok(MANIFEST, None)));
    assert!(matches!(a.poll_output(&mut c), Output::Done(Ok(Some(_)))));
    let Output::Done(Ok(Some(found))) = b.poll_output(&mut c) else {
        panic!("b answered from the cache")
    };
    assert!(matches!(found.body, Body::Bytes(ref x) if x == MANIFEST));
}

/// The waits between consecutive requests, in seconds.
fn waits(sent: &[Sent]) -> Vec<u64> {
    sent.windows(2)
        .map(|w| w[1].at.saturating_since(w[0].at).as_secs())
        .collect()
}

#[test]
fn server_errors_and_429_are_retried_not_before_the_delay() {
    let mut c = client(&[]);
    let mut answers = vec![
        response(503, &[], b""),
        response(429, &[("Retry-After", "3")], b""),
        manifest_ok(MANIFEST, None),
    ]
    .into_iter();
    let reference = Reference::parse("localhost:5000/foo:v1").unwrap();
    let mut op = Lookup::new(reference, GET_MANIFEST).unwrap();
    let (found, sent) = drive_timed(&mut c, &mut op, |_| Ok(answers.next().unwrap()));
    assert!(found.unwrap().is_some());
    assert_eq!(
        waits(&sent),
        [1, 3],
        "a second after the 503, Retry-After after the 429"
    );

    // Until the wait is over the lookup says until when, and sends nothing.
    let mut c = client(&[]);
    let reference = Reference::parse("localhost:5000/foo:v1").unwrap();
    let mut op = Lookup::new(reference, GET_MANIFEST).unwrap();
    let Output::Send(id, _) = op.poll_output(&mut c) else {
        panic!("sends")
    };
    c.handle_response(id, Ok(response(503, &[], b"")));
    let due = c.now() + std::time::Duration::from_secs(1);
    assert!(matches!(op.poll_output(&mut c), Output::Wait(Some(t)) if t == due));
    c.set_now(due);
    assert!(
        matches!(op.poll_output(&mut c), Output::Send(..)),
        "due now"
    );

    // A permanent 500: three tries in all, then the error, naming the reference.
    let (found, sent) = lookup(&mut c, "localhost:5000/foo:v2", GET_MANIFEST, |_| {
        Ok(response(500, &[], b""))
    });
    assert_eq!(sent.len(), 3);
    assert_eq!(
        found.unwrap_err().to_string(),
        "localhost:5000/foo:v2: registry answered 500"
    );

    // Connection failures are retried like 503.
    let mut failures = 0;
    let (found, sent) = lookup(&mut c, "localhost:5000/foo:v3", GET_MANIFEST, |_| {
        failures += 1;
        if failures < 3 {
            Err(TransportError::transient("connection reset"))
        } else {
            Ok(manifest_ok(MANIFEST, None))
        }
    });
    assert!(found.unwrap().is_some());
    assert_eq!(sent.len(), 3);
}

#[test]
fn a_mirror_is_authenticated_with_its_own_hosts_credentials() {
    let mut creds = std::collections::BTreeMap::new();
    creds.insert(
        "docker.io".to_string(),
        Credential::Bearer("hub-token".into()),
    );
    creds.insert(
        "127.0.0.1:7000".to_string(),
        Credential::Bearer("mirror-token".into()),
    );
    let mut c = Client::new(ClientConfig {
        credentials: creds,
        docker_hub_proxy: Some(
            ocirelay_core::client::parse_docker_hub_proxy("http://127.0.0.1:7000").unwrap(),
        ),
        ..ClientConfig::default()
    });
    let (found, sent) = lookup(&mut c, "hello-world", GET_MANIFEST, |q| {
        Ok(match q.headers.get("authorization") {
            Some("Bearer mirror-token") => manifest_ok(MANIFEST, None),
            _ => response(
                401,
                &[(
                    "WWW-Authenticate",
                    r#"Bearer realm="http://127.0.0.1:7000/token""#,
                )],
                b"",
            ),
        })
    });
    assert!(found.unwrap().is_some(), "{:?}", urls(&sent));
    let auth: Vec<Option<&str>> = sent
        .iter()
        .map(|q| q.headers.get("authorization"))
        .collect();
    assert_eq!(auth, [None, Some("Bearer mirror-token")]);
}

#[test]
fn docker_hub_reads_go_to_the_mirror_without_docker_hub_credentials() {
    let mut creds = std::collections::BTreeMap::new();
    creds.insert(
        "docker.io".to_string(),
        Credential::Bearer("hub-token".into()),
    );
    let mut c = Client::new(ClientConfig {
        credentials: creds,
        docker_hub_proxy: Some(
            ocirelay_core::client::parse_docker_hub_proxy("http://127.0.0.1:7000").unwrap(),
        ),
        ..ClientConfig::default()
    });
    let (found, sent) = lookup(&mut c, "hello-world", GET_MANIFEST, |_| {
        Ok(response(
            401,
            &[(
                "WWW-Authenticate",
                r#"Bearer realm="http://127.0.0.1:7000/token""#,
            )],
            b"",
        ))
    });
    assert!(found.unwrap().is_none(), "the mirror's 401 stands");
    // The mirror's challenge is answered at its own realm, anonymously
    // (no credentials for the mirror's host): Docker Hub's never go there.
    let sent_urls = urls(&sent);
    assert_eq!(
        sent_urls[0],
        "GET http://127.0.0.1:7000/v2/library/hello-world/manifests/latest"
    );
    assert!(
        sent_urls[1].starts_with("GET http://127.0.0.1:7000/token?"),
        "{sent_urls:?}"
    );
    assert_eq!(sent.len(), 2, "{sent_urls:?}");
    for q in &sent {
        assert_eq!(
            q.headers.get("authorization"),
            None,
            "Docker Hub's token stays with Docker Hub"
        );
    }
    // Other registries are not affected.
    let (_, sent) = lookup(&mut c, "localhost:5000/x:y", GET_MANIFEST, |_| {
        Ok(response(404, &[], b""))
    });
    assert_eq!(urls(&sent), ["GET http://localhost:5000/v2/x/manifests/y"]);

    // Docker Hub's challenge (from a write, which goes to Docker Hub) is
    // not a reason to get a token ahead for a read that goes to the mirror.
    let mut c = Client::new(ClientConfig {
        docker_hub_proxy: Some(
            ocirelay_core::client::parse_docker_hub_proxy("http://127.0.0.1:7000").unwrap(),
        ),
        ..ClientConfig::default()
    });
    let blob = b"to docker hub".to_vec();
    let d = Digest::sha256(&blob);
    let reference = Reference::parse(&format!("docker.io/library/app@{d}")).unwrap();
    let mut push = ocirelay_core::ops::ensure_blob::EnsureBlob::new(
        &c,
        reference,
        ocirelay_core::ops::ensure_blob::BlobSource::Bytes(blob.into()),
    )
    .unwrap();
    let hub = r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io""#;
    let (pushed, sent) = drive(&mut c, &mut push, |req| {
        Ok(match req.url.authority.as_str() {
            "auth.docker.io" => response(200, &[], br#"{"token":"t"}"#),
            _ if req.headers.get("authorization").is_none() => {
                response(401, &[("WWW-Authenticate", hub)], b"")
            }
            _ => response(403, &[], b""),
        })
    });
    assert!(pushed.is_err());
    assert_eq!(sent[0].url.authority, "registry-1.docker.io");
    let (_, sent) = lookup(&mut c, "busybox:latest", HEAD_MANIFEST, |_| {
        Ok(response(404, &[], b""))
    });
    assert_eq!(
        urls(&sent),
        ["HEAD http://127.0.0.1:7000/v2/library/busybox/manifests/latest"]
    );
}

#[test]
fn permanent_transport_failures_are_not_retried() {
    let mut c = client(&[]);
    let (found, sent) = lookup(&mut c, "localhost:5000/foo:v1", GET_MANIFEST, |_| {
        Err(TransportError::permanent("request denied by the host"))
    });
    assert_eq!(sent.len(), 1);
    assert_eq!(
        found.unwrap_err().to_string(),
        "cannot reach localhost:5000: request denied by the host"
    );
}

#[test]
fn an_expired_token_is_not_sent_and_a_new_one_is_fetched() {
    use std::time::Duration;
    let mut c = client(&[]);
    let challenge = r#"Bearer realm="https://auth.example/token",service="reg""#;
    let digest = Digest::sha256(MANIFEST).to_string();
    let mut issued = 0;
    let mut answer = |req: &Request| -> Result<Response, TransportError> {
        Ok(if req.url.authority == "auth.example" {
            issued += 1;
            let body = format!(r#"{{"token":"t{issued}","expires_in":300}}"#);
            response(200, &[], body.as_bytes())
        } else if req.headers.get("authorization") == Some(&format!("Bearer t{issued}")[..]) {
            manifest_ok(MANIFEST, Some(&digest))
        } else {
            response(401, &[("WWW-Authenticate", challenge)], b"")
        })
    };
    let at = |secs| Instant::from_origin(Duration::from_secs(secs));
    c.set_now(at(1000));
    let (_, sent) = lookup(&mut c, "r.example/foo:v1", HEAD_MANIFEST, &mut answer);
    assert_eq!(sent.len(), 3, "401, token, retry");
    c.set_now(at(1200));
    let (_, sent) = lookup(&mut c, "r.example/foo:v2", HEAD_MANIFEST, &mut answer);
    assert_eq!(sent.len(), 1, "still fresh");
    assert_eq!(sent[0].headers.get("authorization"), Some("Bearer t1"));
    c.set_now(at(1000 + 300));
    let (found, sent) = lookup(&mut c, "r.example/foo:v3", HEAD_MANIFEST, &mut answer);
    assert!(found.unwrap().is_some());
    // The expired token is not sent: a new one is asked for first, from the
    // challenge the registry sent before.
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[0].url.authority, "auth.example");
    assert_eq!(sent[1].headers.get("authorization"), Some("Bearer t2"));
}

#[test]
fn token_requests_are_retried_like_any_other() {
    let challenge = r#"Bearer realm="https://auth.example/token",service="reg""#;
    let digest = Digest::sha256(MANIFEST).to_string();
    let mut c = client(&[]);
    let mut token_tries = 0;
    let reference = Reference::parse("r.example/foo:v1").unwrap();
    let mut op = Lookup::new(reference, HEAD_MANIFEST).unwrap();
    let (found, sent) = drive_timed(&mut c, &mut op, |req| {
        if req.url.authority == "auth.example" {
            token_tries += 1;
            return match token_tries {
                1 => Ok(response(503, &[("Retry-After", "2")], b"")),
                2 => Err(TransportError::transient("connection reset")),
                _ => Ok(response(200, &[], br#"{"token":"t"}"#)),
            };
        }
        Ok(match req.headers.get("authorization") {
            Some("Bearer t") => manifest_ok(MANIFEST, Some(&digest)),
            _ => response(401, &[("WWW-Authenticate", challenge)], b""),
        })
    });
    assert!(found.unwrap().is_some());
    assert_eq!(
        waits(&sent),
        [0, 2, 1, 0],
        "401, token 503 (Retry-After: 2), token reset (1 s), token, HEAD"
    );

    // A token server that keeps failing ends in an error naming it.
    let mut c = client(&[]);
    let (found, sent) = lookup(&mut c, "r.example/foo:v1", HEAD_MANIFEST, |req| {
        Ok(if req.url.authority == "auth.example" {
            response(500, &[], b"")
        } else {
            response(401, &[("WWW-Authenticate", challenge)], b"")
        })
    });
    assert_eq!(
        found.unwrap_err().to_string(),
        "token server https://auth.example/token: registry answered 500"
    );
    assert_eq!(sent.len(), 4, "the 401, then three token tries");
}

#[test]
fn an_identity_token_is_traded_for_access_tokens_by_oauth2_post() {
    let challenge = r#"Bearer realm="https://auth.example/token",service="reg""#;
    let digest = Digest::sha256(MANIFEST).to_string();
    let refresh = "refresh-SECRET";
    let mut c = client(&[("r.example", Credential::IdentityToken(refresh.to_string()))]);
    let (found, sent) = lookup(&mut c, "r.example/foo/bar:v1", HEAD_MANIFEST, |req| {
        Ok(if req.url.authority == "auth.example" {
            response(200, &[], br#"{"access_token":"a","expires_in":300}"#)
        } else if req.headers.get("authorization") == Some("Bearer a") {
            manifest_ok(MANIFEST, Some(&digest))
        } else {
            response(401, &[("WWW-Authenticate", challenge)], b"")
        })
    });
    assert!(found.unwrap().is_some());
    let token = &sent[1];
    assert_eq!(token.method, Method::Post);
    assert_eq!(token.url.to_string(), "https://auth.example/token");
    assert_eq!(
        token.headers.get("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    let ocirelay_core::http::RequestBody::Bytes(form) = &token.body else {
        panic!("a form body: {:?}", token.body)
    };
    assert_eq!(
        String::from_utf8_lossy(form),
        "service=reg&scope=repository%3Afoo%2Fbar%3Apull&grant_type=refresh_token\
         &client_id=ocirelay&refresh_token=refresh-SECRET"
    );
    assert_eq!(token.headers.get("authorization"), None);

    // Refused (OAuth2 says 400 invalid_grant): an authentication error
    // that names the registry and keeps the token to itself.
    let mut c = client(&[("r.example", Credential::IdentityToken(refresh.to_string()))]);
    let (found, _) = lookup(&mut c, "r.example/foo/bar:v1", HEAD_MANIFEST, |req| {
        Ok(if req.url.authority == "auth.example" {
            response(400, &[], br#"{"error":"invalid_grant"}"#)
        } else {
            response(401, &[("WWW-Authenticate", challenge)], b"")
        })
    });
    let err = found.unwrap_err();
    assert!(matches!(err, Error::Authentication { .. }), "{err}");
    assert!(err.to_string().contains("r.example"), "{err}");
    assert!(!err.to_string().contains("SECRET"), "{err}");
    assert!(!format!("{c:?}").contains("SECRET"), "no secret in Debug");
}

#[test]
fn a_new_scope_gets_its_token_ahead_unless_the_registry_wants_more() {
    let challenge = |scope: &str| {
        format!(r#"Bearer realm="https://auth.example/token",service="reg",scope="{scope}""#)
    };
    let digest = Digest::sha256(MANIFEST).to_string();
    let mut c = client(&[]);
    // The registry insists on push for repository b (as some do for
    // mirrors): the token asked ahead for pull is not enough.
    let mut answer = |req: &Request| -> Result<Response, TransportError> {
        let auth = req.headers.get("authorization").unwrap_or("");
        Ok(if req.url.authority == "auth.example" {
            let scope = req.url.path_and_query.split("scope=").nth(1).unwrap_or("");
            let body = format!(r#"{{"token":"{scope}"}}"#);
            response(200, &[], body.as_bytes())
        } else if (req.url.path_and_query.starts_with("/v2/a/") && auth.contains("a%3Apull"))
            || (req.url.path_and_query.starts_with("/v2/b/") && auth.contains("b%3Apull%2Cpush"))
        {
            manifest_ok(MANIFEST, Some(&digest))
        } else if req.url.path_and_query.starts_with("/v2/b/") {
            let scope = challenge("repository:b:pull,push");
            return Ok(response(401, &[("WWW-Authenticate", &scope)], b""));
        } else {
            let scope = challenge("repository:a:pull");
            return Ok(response(401, &[("WWW-Authenticate", &scope)], b""));
        })
    };
    let (found, sent) = lookup(&mut c, "r.example/a:v1", HEAD_MANIFEST, &mut answer);
    assert!(found.unwrap().is_some());
    assert_eq!(sent.len(), 3, "the first time: 401, token, again");
    let (found, sent) = lookup(&mut c, "r.example/b:v1", HEAD_MANIFEST, &mut answer);
    assert!(found.unwrap().is_some());
    assert_eq!(
        urls(&sent),
        [
            "GET https://auth.example/token?service=reg&scope=repository%3Ab%3Apull",
            "HEAD https://r.example/v2/b/manifests/v1",
            "GET https://auth.example/token?service=reg&scope=repository%3Ab%3Apull%2Cpush",
            "HEAD https://r.example/v2/b/manifests/v1",
        ]
    );
}

#[test]
fn a_token_asked_ahead_and_refused_is_asked_once() {
    let challenge = |scope: &str| {
        format!(r#"Bearer realm="https://auth.example/token",service="reg",scope="{scope}""#)
    };
    let digest = Digest::sha256(MANIFEST).to_string();
    let mut c = client(&[]);
    // Anonymous callers may pull a, and nothing of b.
    let mut answer = |req: &Request| -> Result<Response, TransportError> {
        let path = req.url.path_and_query.as_str();
        Ok(if req.url.authority == "auth.example" {
            if path.contains("b%3Apull") {
                response(401, &[], b"")
            } else {
                response(200, &[], br#"{"token":"a"}"#)
            }
        } else if path.starts_with("/v2/a/") && req.headers.get("authorization").is_some() {
            manifest_ok(MANIFEST, Some(&digest))
        } else {
            let repo = if path.starts_with("/v2/a/") { "a" } else { "b" };
            let scope = challenge(&format!("repository:{repo}:pull"));
            response(401, &[("WWW-Authenticate", &scope)], b"")
        })
    };
    let (found, _) = lookup(&mut c, "r.example/a:v1", HEAD_MANIFEST, &mut answer);
    assert!(found.unwrap().is_some());
    let (found, sent) = lookup(&mut c, "r.example/b:v1", HEAD_MANIFEST, &mut answer);
    assert!(found.unwrap().is_none(), "this identity may not see b");
    assert_eq!(
        urls(&sent),
        [
            "GET https://auth.example/token?service=reg&scope=repository%3Ab%3Apull",
            "HEAD https://r.example/v2/b/manifests/v1",
        ],
        "refused ahead: asked without a token, and the registry's 401 stands"
    );
}

#[test]
fn a_token_asked_ahead_of_one_token_server_follows_the_registry_to_another() {
    let digest = Digest::sha256(MANIFEST).to_string();
    let mut c = client(&[]);
    // Each repository has a token server of its own: the token asked ahead
    // of a's server for b does not do, and b's 401 names b's server.
    let mut answer = |req: &Request| -> Result<Response, TransportError> {
        let path = req.url.path_and_query.as_str();
        let auth = req.headers.get("authorization").unwrap_or("");
        let repo = if path.starts_with("/v2/a/") { "a" } else { "b" };
        Ok(match req.url.authority.as_str() {
            server @ ("auth-a.example" | "auth-b.example") => {
                let body = format!(r#"{{"token":"{server}"}}"#);
                response(200, &[], body.as_bytes())
            }
            _ if auth == format!("Bearer auth-{repo}.example") => {
                manifest_ok(MANIFEST, Some(&digest))
            }
            _ => {
                let challenge = format!(
                    r#"Bearer realm="https://auth-{repo}.example/token",service="reg-{repo}",scope="repository:{repo}:pull""#
                );
                response(401, &[("WWW-Authenticate", &challenge)], b"")
            }
        })
    };
    let (found, _) = lookup(&mut c, "r.example/a:v1", HEAD_MANIFEST, &mut answer);
    assert!(found.unwrap().is_some());
    let (found, sent) = lookup(&mut c, "r.example/b:v1", HEAD_MANIFEST, &mut answer);
    assert!(found.unwrap().is_some(), "{:?}", urls(&sent));
    assert_eq!(
        urls(&sent),
        [
            "GET https://auth-a.example/token?service=reg-a&scope=repository%3Ab%3Apull",
            "HEAD https://r.example/v2/b/manifests/v1",
            "GET https://auth-b.example/token?service=reg-b&scope=repository%3Ab%3Apull",
            "HEAD https://r.example/v2/b/manifests/v1",
        ]
    );
    // Then the token from b's server is kept for b.
    let (found, sent) = lookup(&mut c, "r.example/b:v2", HEAD_MANIFEST, &mut answer);
    assert!(found.unwrap().is_some());
    assert_eq!(urls(&sent), ["HEAD https://r.example/v2/b/manifests/v2"]);
}

#[test]
fn a_broken_blob_read_resumes_with_a_range() {
    use ocirelay_core::ops::resume_blob::{ResumeBlob, Resumed};
    let digest = Digest::sha256(b"0123456789");
    let reference = Reference::parse(&format!("localhost:5000/foo@{digest}")).unwrap();
    let held = |status: u16, headers: &[(&str, &str)]| {
        let mut r = response(status, headers, b"");
        r.body = ResponseBody::Held;
        r
    };
    let resume = |c: &mut Client, answer: Response| {
        let mut op = ResumeBlob::new(c, &reference, 4, 10).unwrap();
        drive(c, &mut op, |_| Ok(answer.clone()))
    };

    // Honoured: the rest, nothing to skip.
    let mut c = client(&[]);
    let (out, sent) = resume(
        &mut c,
        held(
            206,
            &[("Content-Range", "bytes 4-9/10"), ("Content-Length", "6")],
        ),
    );
    assert_eq!(
        urls(&sent),
        [format!("GET http://localhost:5000/v2/foo/blobs/{digest}")]
    );
    assert_eq!(sent[0].headers.get("range"), Some("bytes=4-"));
    assert!(matches!(
        sent[0].body_mode,
        BodyMode::Stream { buffer_up_to: 0 }
    ));
    assert_eq!(out.unwrap().skip, 0);

    // Ignored: the whole blob again, its first 4 bytes to skip.
    let (out, _) = resume(&mut c, held(200, &[("Content-Length", "10")]));
    assert!(matches!(out, Ok(Resumed { skip: 4, .. })));

    // From the start: a plain GET (no Range), its whole body checkable.
    let mut op = ResumeBlob::new(&c, &reference, 0, 10).unwrap();
    let answer = held(200, &[("Content-Length", "10")]);
    let (out, sent) = drive(&mut c, &mut op, |_| Ok(answer.clone()));
    assert_eq!(sent[0].headers.get("range"), None);
    assert!(matches!(out, Ok(Resumed { skip: 0, .. })));

    // A range other than the one asked for, or another size: errors naming the blob.
    let (out, _) = resume(&mut c, held(206, &[("Content-Range", "bytes 0-9/10")]));
    let err = out.unwrap_err().to_string();
    assert!(
        err.contains(&digest.to_string()) && err.contains("Content-Range"),
        "{err}"
    );
    let (out, _) = resume(&mut c, held(200, &[("Content-Length", "11")]));
    assert!(matches!(out, Err(Error::Integrity { .. })));
    let (out, _) = resume(&mut c, response(404, &[], b""));
    assert!(out.unwrap_err().to_string().contains("404"));

    // A broken connection is worth resuming, three times; a refusal is not.
    use ocirelay_core::ops::resume_blob::resumable;
    assert!(resumable(&TransportError::transient("reset"), 2));
    assert!(!resumable(&TransportError::transient("reset"), 3));
    assert!(!resumable(&TransportError::permanent("denied"), 0));

    // Nothing left to resume, or no digest: refused before any request.
    assert!(ResumeBlob::new(&c, &reference, 10, 10).is_err());
    let no_digest = Reference::parse("localhost:5000/foo:v1").unwrap();
    assert!(ResumeBlob::new(&c, &no_digest, 0, 10).is_err());
}

/// As in the original, a HEAD of an object this client has read answers
/// from the cache with the object's bytes in the descriptor's `data`; one
/// it has only HEADed has none.
#[test]
fn a_head_of_an_object_already_read_carries_its_data() {
    let mut c = client(&[]);
    let (first, sent) = lookup(&mut c, "localhost:5000/foo:v1", GET_MANIFEST, |_| {
        Ok(manifest_ok(MANIFEST, None))
    });
    assert_eq!(sent.len(), 1);
    assert_eq!(first.unwrap().unwrap().descriptor.data, None);
    let (again, sent) = lookup(&mut c, "localhost:5000/foo:v1", HEAD_MANIFEST, |_| {
        panic!("answered from the cache")
    });
    assert!(sent.is_empty());
    use base64::Engine as _;
    assert_eq!(
        again.unwrap().unwrap().descriptor.data,
        Some(base64::engine::general_purpose::STANDARD.encode(MANIFEST))
    );
}

#[test]
fn a_read_redirected_off_the_registry_gets_no_token_ahead() {
    use ocirelay_core::ops::batch::{Batch, Query};
    // While a blob read is redirected to storage elsewhere, another query
    // learns the registry's challenge: the redirected read goes on to the
    // storage without a token asked for it (none would be sent there).
    let blob = b"public bytes";
    let digest = Digest::sha256(blob);
    let challenge = r#"Bearer realm="https://auth.example/token",service="reg""#;
    let blob_get = LookupOptions {
        kind: LookupKind::Blob,
        head: false,
    };
    let mut batch = Batch::new(vec![
        Ok(Query::Lookup(
            Reference::parse("r.example/private:v1").unwrap(),
            HEAD_MANIFEST,
        )),
        Ok(Query::Lookup(
            Reference::parse(&format!("r.example/public@{digest}")).unwrap(),
            blob_get,
        )),
    ]);
    let mut c = client(&[]);
    let (out, sent, _) = drive_concurrently(&mut c, &mut batch, |q| {
        Ok(match q.url.authority.as_str() {
            "auth.example" => response(200, &[], br#"{"token":"t"}"#),
            "cdn.example" => response(200, &[("Content-Length", "12")], blob),
            _ if q.url.path_and_query.starts_with("/v2/public/") => {
                response(307, &[("Location", "https://cdn.example/blob")], b"")
            }
            _ => response(401, &[("WWW-Authenticate", challenge)], b""),
        })
    });
    assert!(matches!(out[1], Ok(Some(_))), "{:?}", out[1]);
    assert_eq!(
        urls(&sent),
        [
            "HEAD https://r.example/v2/private/manifests/v1",
            &format!("GET https://r.example/v2/public/blobs/{digest}"),
            "GET https://auth.example/token?service=reg&scope=repository%3Aprivate%3Apull",
            "GET https://cdn.example/blob",
            "HEAD https://r.example/v2/private/manifests/v1",
        ]
    );
}
