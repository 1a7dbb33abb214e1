//! Read-range against scripted registries: the `Range` sent, a 206 taken
//! as it comes, a registry that ignores the range skipped to the part, a
//! range covering the whole read as a checked whole, and a range past the
//! end a 416.

use ocirelay_core::client::Answer;
use ocirelay_core::http::{Request, ResponseBody};
use ocirelay_core::ops::lookup::Body;
use ocirelay_core::ops::read_range::{RangeRead, ReadRange};
use ocirelay_core::range::ByteRange;
use ocirelay_core::{Digest, Error, Reference};

mod common;
use common::{client, drive, response};

const BLOB: &[u8] = b"0123456789";

fn blob_ref() -> Reference {
    Reference::parse(&format!("localhost:5000/app@{}", Digest::sha256(BLOB))).unwrap()
}

/// A held answer (the driver streams the body).
fn held(status: u16, headers: &[(&str, &str)]) -> Answer {
    let mut r = response(status, headers, b"");
    r.body = ResponseBody::Held;
    Ok(r)
}

fn read(
    range: ByteRange,
    mut answer: impl FnMut(&Request) -> Answer,
) -> (ocirelay_core::Result<Option<RangeRead>>, Vec<Request>) {
    let mut c = client(&[]);
    let mut op = ReadRange::new(&c, blob_ref(), range).unwrap();
    drive(&mut c, &mut op, |q| answer(q))
}

#[test]
fn a_206_is_the_part_asked_for() {
    let (outcome, sent) = read(ByteRange::From(4), |_| {
        held(
            206,
            &[("Content-Range", "bytes 4-9/10"), ("Content-Length", "6")],
        )
    });
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].headers.get("range"), Some("bytes=4-"));
    assert_eq!(
        sent[0].url.path_and_query,
        format!("/v2/app/blobs/{}", Digest::sha256(BLOB))
    );
    let Some(RangeRead::Part(part)) = outcome.unwrap() else {
        panic!()
    };
    assert_eq!(
        (part.skip, part.first, part.last, part.length()),
        (0, 4, 9, 6)
    );
    assert_eq!(
        (part.descriptor.size, part.descriptor.digest.clone()),
        (10, Digest::sha256(BLOB))
    );
    // A registry may send less than asked; never other bytes.
    let (outcome, _) = read(ByteRange::Span(2, 8), |_| {
        held(206, &[("Content-Range", "bytes 2-5/10")])
    });
    let Some(RangeRead::Part(part)) = outcome.unwrap() else {
        panic!()
    };
    assert_eq!((part.first, part.last), (2, 5));
    for wrong in ["bytes 3-9/10", "bytes 2-9/10", "bytes 2-5/*", "nonsense"] {
        let (outcome, _) = read(ByteRange::Span(2, 8), |_| {
            held(206, &[("Content-Range", wrong)])
        });
        assert!(
            matches!(outcome, Err(Error::Protocol { .. })),
            "{wrong}: {outcome:?}"
        );
    }
    let (outcome, _) = read(ByteRange::From(4), |_| {
        held(
            206,
            &[("Content-Range", "bytes 4-9/10"), ("Content-Length", "5")],
        )
    });
    assert!(
        matches!(outcome, Err(Error::Protocol { .. })),
        "{outcome:?}"
    );
}

#[test]
fn a_registry_that_ignores_the_range_is_skipped_to_the_part() {
    let (outcome, _) = read(ByteRange::Suffix(3), |_| {
        held(200, &[("Content-Length", "10")])
    });
    let Some(RangeRead::Part(part)) = outcome.unwrap() else {
        panic!()
    };
    assert_eq!((part.skip, part.first, part.last), (7, 7, 9));
    let (outcome, _) = read(ByteRange::From(10), |_| {
        held(200, &[("Content-Length", "10")])
    });
    assert!(matches!(
        outcome.unwrap(),
        Some(RangeRead::Unsatisfiable { size: Some(10) })
    ));
    let (outcome, _) = read(ByteRange::From(1), |_| held(200, &[]));
    assert!(
        matches!(outcome, Err(Error::Protocol { .. })),
        "{outcome:?}"
    );
}

#[test]
fn a_range_over_the_whole_blob_is_a_checked_whole_read() {
    for (range, answer) in [
        (
            ByteRange::From(0),
            held(206, &[("Content-Range", "bytes 0-9/10")]),
        ),
        (
            ByteRange::Span(0, 99),
            held(200, &[("Content-Length", "10")]),
        ),
        (
            ByteRange::Suffix(10),
            held(206, &[("Content-Range", "bytes 0-9/10")]),
        ),
    ] {
        let (outcome, _) = read(range, |_| answer.clone());
        let Some(RangeRead::Whole(found)) = outcome.unwrap() else {
            panic!("{range:?}")
        };
        assert_eq!(found.descriptor.size, 10);
        let Body::Stream { mut verifier, .. } = found.body else {
            panic!()
        };
        verifier.update(b"0123456789").unwrap();
        verifier.finish().unwrap();
    }
}

#[test]
fn past_the_end_missing_or_lying_is_said() {
    let (outcome, _) = read(ByteRange::From(20), |_| {
        Ok(response(416, &[("Content-Range", "bytes */10")], b""))
    });
    assert!(matches!(
        outcome.unwrap(),
        Some(RangeRead::Unsatisfiable { size: Some(10) })
    ));
    let (outcome, _) = read(ByteRange::From(20), |_| Ok(response(416, &[], b"")));
    assert!(matches!(
        outcome.unwrap(),
        Some(RangeRead::Unsatisfiable { size: None })
    ));
    let unknown = br#"{"errors":[{"code":"BLOB_UNKNOWN"}]}"#;
    let (outcome, _) = read(ByteRange::From(1), |_| Ok(response(404, &[], unknown)));
    assert!(outcome.unwrap().is_none());
    let other = Digest::sha256(b"other").to_string();
    let (outcome, _) = read(ByteRange::From(1), |_| {
        held(
            206,
            &[
                ("Content-Range", "bytes 1-9/10"),
                ("Docker-Content-Digest", &other),
            ],
        )
    });
    assert!(
        matches!(outcome, Err(Error::Integrity { .. })),
        "{outcome:?}"
    );
    // The blob's own digest, or one of another algorithm, is no lie.
    let own = Digest::sha256(BLOB).to_string();
    let sha512 = Digest::of(ocirelay_core::digest::Algorithm::Sha512, BLOB).to_string();
    for claimed in [own, sha512] {
        let (outcome, _) = read(ByteRange::From(1), |_| {
            held(
                206,
                &[
                    ("Content-Range", "bytes 1-9/10"),
                    ("Docker-Content-Digest", &claimed),
                ],
            )
        });
        assert!(
            matches!(outcome, Ok(Some(RangeRead::Part(_)))),
            "{claimed}: {outcome:?}"
        );
    }
    let (outcome, _) = read(ByteRange::From(1), |_| Ok(response(503, &[], b"")));
    assert!(
        matches!(outcome, Err(Error::Registry { status: 503, .. })),
        "{outcome:?}"
    );
    let by_tag = Reference::parse("localhost:5000/app:v1").unwrap();
    let e = ReadRange::new(&client(&[]), by_tag, ByteRange::From(1)).unwrap_err();
    assert!(e.to_string().contains("needs the blob's digest"), "{e}");
}
