//! The harness against honest registries: every operation succeeds, with
//! any authentication and credentials. Were one to fail here, the fuzzer's
//! invariants would only ever be checked on failures.

use arbitrary::Unstructured;
use ocirelay_fuzz::scenario::{play, CredentialPick, Op, Pick, Scenario};
use ocirelay_fuzz::world::AuthMode;

fn scenarios() -> Vec<Op> {
    let mut ops = Vec::new();
    for object in [
        Pick::IndexTag,
        Pick::ImageTag,
        Pick::ImageDigest,
        Pick::SmallBlob,
        Pick::BigBlob,
    ] {
        for head in [false, true] {
            ops.push(Op::Lookup { object, head });
        }
    }
    for flag in [false, true] {
        ops.push(Op::SynthesizeIndex { index: flag });
        ops.push(Op::EnsureBlob { big: flag });
        ops.push(Op::PushBlob {
            big: flag,
            chunk: 1000,
        });
        ops.push(Op::ResumeBlob {
            big: flag,
            offset: 7,
        });
        for other in [false, true] {
            ops.push(Op::EnsureManifest {
                index: flag,
                by_digest: other,
            });
            ops.push(Op::CopyManifest {
                index: flag,
                within: other,
            });
            for known in [false, true] {
                ops.push(Op::CopyBlob {
                    big: flag,
                    within: other,
                    known,
                });
            }
        }
    }
    ops.push(Op::Batch);
    ops
}

/// Registry authentication and a credential that satisfies it (a Basic
/// registry needs a password; a token service gives anyone a token).
fn logins() -> Vec<(AuthMode, CredentialPick)> {
    let any = [
        CredentialPick::None,
        CredentialPick::Basic,
        CredentialPick::Bearer,
        CredentialPick::IdentityToken,
    ];
    let mut out = vec![(AuthMode::Basic, CredentialPick::Basic)];
    for c in any {
        out.push((AuthMode::Open, c));
        out.push((AuthMode::Bearer, c));
    }
    out
}

#[test]
fn every_operation_succeeds_against_honest_registries() {
    let logins = logins();
    for op in scenarios() {
        for (i, (src_auth, src_credential)) in logins.iter().enumerate() {
            let (dst_auth, dst_credential) = logins[(i + 3) % logins.len()];
            for destination_has in [0, 0b0000_0101, 0xff] {
                let scenario = Scenario {
                    op,
                    src_auth: *src_auth,
                    dst_auth,
                    src_credential: *src_credential,
                    dst_credential,
                    concurrency: i as u8 * 3,
                    no_cache: i % 2 == 1,
                    destination_has,
                    policy: i % 3 != 1,
                    chunks: (i % 2 == 0).then_some(i as u8),
                };
                let mut honest = Unstructured::new(&[]);
                assert!(play(&scenario, &mut honest), "{scenario:?} failed");
            }
        }
    }
}
