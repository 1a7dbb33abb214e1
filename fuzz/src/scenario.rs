//! One fuzz run of the operations target: the fuzzer's bytes choose an
//! operation, how the registries authenticate, which credentials the client
//! holds and what the destination already has; the rest of the bytes
//! twist the registries' answers. After the operation ends, its outcome is
//! held against what the answers said: found content matches its digest,
//! and nothing is reported pushed that the destination did not confirm.

use std::collections::BTreeMap;

use arbitrary::{Arbitrary, Unstructured};
use ocirelay_core::auth::Credential;
use ocirelay_core::ops::batch::{Answer, Batch, Query};
use ocirelay_core::ops::copy_blob::CopyBlob;
use ocirelay_core::ops::copy_manifest::CopyManifest;
use ocirelay_core::ops::ensure_blob::{BlobSource, EnsureBlob};
use ocirelay_core::ops::ensure_manifest::{ChildRefs, EnsureManifest};
use ocirelay_core::ops::list_tags::{ListTags, TagsOptions, MAX_TAGS};
use ocirelay_core::ops::lookup::{Body, Found, Lookup, LookupKind, LookupOptions};
use ocirelay_core::ops::push_blob::PushBlob;
use ocirelay_core::ops::read_range::{RangeRead, ReadRange};
use ocirelay_core::ops::referrers::{ListReferrers, MAX_REFERRERS};
use ocirelay_core::ops::resume_blob::ResumeBlob;
use ocirelay_core::ops::synthesize_index::SynthesizeIndex;
use ocirelay_core::range::ByteRange;
use ocirelay_core::reference::is_valid_tag;
use ocirelay_core::upload::{UploadRule, UploadRules};
use ocirelay_core::{Client, ClientConfig, Descriptor, Digest, Reference, Result};

use crate::harness::Harness;
use crate::world::{AuthMode, Images, Object, Registry, DST, DST_REPO, SRC, SRC_REPO};

/// What one run does.
#[derive(Debug, Clone, Arbitrary)]
pub struct Scenario {
    /// The operation.
    pub op: Op,
    /// How the source registry authenticates.
    pub src_auth: AuthMode,
    /// How the destination registry authenticates.
    pub dst_auth: AuthMode,
    /// The client's credential for the source.
    pub src_credential: CredentialPick,
    /// The client's credential for the destination.
    pub dst_credential: CredentialPick,
    /// Requests in flight: 1 + this % 8.
    pub concurrency: u8,
    /// Whether the client keeps no cache.
    pub no_cache: bool,
    /// Which fixture objects the destination has already (a bit each, in
    /// the order of [`Images::all`]).
    pub destination_has: u8,
    /// Whether the client applies a policy itself (as for an embedder):
    /// rates, stated budgets, requests at once adapting to 429s and 503s.
    pub policy: bool,
    /// Whether streamed blobs go up in chunks (of 4 KiB times 1 + this % 16;
    /// blobs over 1000 bytes), resumed where the session stands when one breaks.
    pub chunks: Option<u8>,
}

/// The operation, and its arguments (`big`: the streamed layer; `index`:
/// the index, else one image; `within`: a copy within the source registry).
#[derive(Debug, Clone, Copy, Arbitrary)]
#[allow(missing_docs)]
pub enum Op {
    Lookup {
        object: Pick,
        head: bool,
    },
    SynthesizeIndex {
        index: bool,
    },
    Batch,
    EnsureBlob {
        big: bool,
    },
    CopyBlob {
        big: bool,
        within: bool,
        known: bool,
    },
    EnsureManifest {
        index: bool,
        by_digest: bool,
    },
    CopyManifest {
        index: bool,
        within: bool,
    },
    ResumeBlob {
        big: bool,
        offset: u16,
    },
    PushBlob {
        big: bool,
        chunk: u16,
    },
    ListTags {
        page_size: u8,
        all_pages: bool,
    },
    ReadRange {
        big: bool,
        first: u16,
        len: u16,
        suffix: bool,
    },
    ListReferrers {
        filtered: bool,
    },
}

/// What to look up.
#[derive(Debug, Clone, Copy, Arbitrary)]
#[allow(missing_docs)]
pub enum Pick {
    IndexTag,
    ImageTag,
    ImageDigest,
    SmallBlob,
    BigBlob,
    MissingTag,
}

/// A credential the client holds for a registry.
#[derive(Debug, Clone, Copy, Arbitrary)]
#[allow(missing_docs)]
pub enum CredentialPick {
    None,
    Basic,
    Bearer,
    IdentityToken,
}

impl CredentialPick {
    fn credential(self, host: &str) -> Option<Credential> {
        let name = host.split('.').next().unwrap_or(host);
        match self {
            CredentialPick::None => None,
            CredentialPick::Basic => Some(Credential::Basic {
                username: format!("user-{name}"),
                password: format!("password-{name}"),
            }),
            CredentialPick::Bearer => Some(Credential::Bearer(format!("bearer-{name}"))),
            CredentialPick::IdentityToken => {
                Some(Credential::IdentityToken(format!("refresh-{name}")))
            }
        }
    }
}

fn reference(
    host: &str,
    repository: &str,
    tag: Option<&str>,
    digest: Option<&Digest>,
) -> Reference {
    let mut r = Reference::parse(&format!("{host}/{repository}")).expect("a fixture reference");
    r.tag = tag.map(str::to_string);
    r.digest = digest.cloned();
    r
}

/// Runs the scenario the fuzzer's `data` describes, panicking on any broken
/// invariant.
pub fn run(data: &[u8]) {
    let mut u = Unstructured::new(data);
    if let Ok(scenario) = Scenario::arbitrary(&mut u) {
        play(&scenario, &mut u);
    }
}

/// Runs `scenario`, the registries' answers twisted as the rest of `u`
/// says (honest once it is used up); panics on any broken invariant.
/// Returns whether the operation succeeded.
pub fn play(scenario: &Scenario, u: &mut Unstructured<'_>) -> bool {
    let images = Images::get();
    let within = matches!(
        scenario.op,
        Op::CopyBlob { within: true, .. } | Op::CopyManifest { within: true, .. }
    );
    let target = if within {
        (SRC, DST_REPO)
    } else {
        (DST, DST_REPO)
    };

    let mut src = Registry::new(SRC, scenario.src_auth);
    src.tag(SRC_REPO, "multi", &images.index);
    src.tag(SRC_REPO, "single", &images.amd64);
    for o in images.all() {
        src.put(SRC_REPO, o);
    }
    let mut dst = Registry::new(DST, scenario.dst_auth);
    for (i, o) in images.all().into_iter().enumerate() {
        if scenario.destination_has & (1 << i) != 0 {
            if within {
                src.put(DST_REPO, o);
            } else {
                dst.put(DST_REPO, o);
            }
        }
    }

    let credentials: Vec<(&'static str, Credential)> = [
        (SRC, scenario.src_credential.credential(SRC)),
        (DST, scenario.dst_credential.credential(DST)),
    ]
    .into_iter()
    .filter_map(|(h, c)| Some((h, c?)))
    .collect();
    let client = Client::new(ClientConfig {
        user_agent: "fuzz".into(),
        credentials: credentials
            .iter()
            .map(|(h, c)| (h.to_string(), c.clone()))
            .collect::<BTreeMap<_, _>>(),
        cache: !scenario.no_cache,
        concurrency: 1 + usize::from(scenario.concurrency % 8),
        policy: scenario
            .policy
            .then(|| ocirelay_core::policy::HostPolicy::new(Vec::new())),
        uploads: UploadRules {
            default: match scenario.chunks {
                Some(n) => UploadRule {
                    chunk_size: 4096 * (1 + u64::from(n % 16)),
                    monolithic_up_to: 1000,
                },
                None => UploadRule::default(),
            },
            ..UploadRules::default()
        },
        ..ClientConfig::default()
    });
    let mut h = Harness::new(u, client, src, dst, target, &credentials);

    let source = |tag: Option<&str>, digest: Option<&Digest>| reference(SRC, SRC_REPO, tag, digest);
    let destination =
        |tag: Option<&str>, digest: Option<&Digest>| reference(target.0, target.1, tag, digest);
    let layer = |big: bool| {
        if big {
            &images.big_layer
        } else {
            &images.small_layer
        }
    };
    let manifest = |index: bool| if index { &images.index } else { &images.amd64 };

    let succeeded = match scenario.op {
        Op::Lookup { object, head } => {
            let (r, kind) = match object {
                Pick::IndexTag => (source(Some("multi"), None), LookupKind::Manifest),
                Pick::ImageTag => (source(Some("single"), None), LookupKind::Manifest),
                Pick::ImageDigest => (
                    source(None, Some(&images.arm64.digest)),
                    LookupKind::Manifest,
                ),
                Pick::SmallBlob => (
                    source(None, Some(&images.small_layer.digest)),
                    LookupKind::Blob,
                ),
                Pick::BigBlob => (
                    source(None, Some(&images.big_layer.digest)),
                    LookupKind::Blob,
                ),
                Pick::MissingTag => (source(Some("missing"), None), LookupKind::Manifest),
            };
            let asked = r.digest.clone();
            let mut op = Lookup::new(r, LookupOptions { kind, head }).expect("a lookup");
            match h.drive(&mut op) {
                Ok(Some(found)) => check_found(&mut h, found, asked.as_ref()),
                Ok(None) => true,
                Err(_) => false,
            }
        }
        Op::SynthesizeIndex { index } => {
            let tag = if index { "multi" } else { "single" };
            let mut op = SynthesizeIndex::new(source(Some(tag), None));
            matches!(h.drive(&mut op), Ok(Some(_)))
        }
        Op::Batch => {
            let queries = [
                Ok(Query::SynthesizeIndex(source(Some("multi"), None))),
                Ok(Query::Lookup(
                    source(Some("single"), None),
                    LookupOptions::default(),
                )),
                Ok(Query::Lookup(
                    source(None, Some(&images.small_layer.digest)),
                    LookupOptions {
                        kind: LookupKind::Blob,
                        head: false,
                    },
                )),
            ];
            let mut op = Batch::new(queries);
            let mut all = true;
            for outcome in h.drive(&mut op) {
                all &= match outcome {
                    Ok(Some(Answer::Found(found))) => check_found(&mut h, found, None),
                    Ok(Some(Answer::Index(_))) => true,
                    Ok(None) | Err(_) => false,
                };
            }
            all
        }
        Op::EnsureBlob { big } => {
            let o = layer(big);
            let r = destination(None, Some(&o.digest));
            let mut op = EnsureBlob::new(&h.client, r, BlobSource::Bytes(o.bytes.clone()))
                .expect("an ensure-blob");
            let outcome = h.drive(&mut op);
            check_pushed(&h, outcome, o)
        }
        Op::CopyBlob { big, known, .. } => {
            let o = layer(big);
            let known = known
                .then(|| Descriptor::new(o.media_type, o.digest.clone(), o.bytes.len() as u64));
            let mut op = CopyBlob::new(
                source(None, Some(&o.digest)),
                destination(None, None),
                known,
            )
            .expect("a copy-blob");
            let outcome = h.drive(&mut op);
            check_pushed(&h, outcome, o)
        }
        Op::EnsureManifest { index, by_digest } => {
            let o = manifest(index);
            let r = if by_digest {
                destination(None, Some(&o.digest))
            } else {
                destination(Some("v1"), None)
            };
            let children = ChildRefs {
                fallback: Some(source(None, None)),
                ..ChildRefs::default()
            };
            let mut op = EnsureManifest::new(r, o.bytes.clone(), o.media_type, children)
                .expect("an ensure-manifest");
            let outcome = h.drive(&mut op);
            check_pushed(&h, outcome, o)
        }
        Op::CopyManifest { index, .. } => {
            let tag = if index { "multi" } else { "single" };
            let mut op = CopyManifest::new(
                source(Some(tag), None),
                destination(Some("v1"), None),
                ChildRefs::default(),
            );
            match h.drive(&mut op) {
                Ok(d) => {
                    assert!(
                        h.confirmed(&d.digest),
                        "reported {} pushed, never confirmed",
                        d.digest
                    );
                    true
                }
                Err(_) => false,
            }
        }
        Op::ResumeBlob { big, offset } => {
            let o = layer(big);
            let size = o.bytes.len() as u64;
            let offset = u64::from(offset) % size;
            let r = source(None, Some(&o.digest));
            let mut op = ResumeBlob::new(&h.client, &r, offset, size).expect("a resume");
            match h.drive(&mut op) {
                Ok(resumed) => {
                    assert!(resumed.skip <= offset, "skips {} of {offset}", resumed.skip);
                    let rest = h.take_held(resumed.request);
                    let skip = usize::try_from(resumed.skip).unwrap_or(usize::MAX);
                    rest.get(skip..) == o.bytes.get(offset as usize..)
                }
                Err(_) => false,
            }
        }
        Op::ListTags {
            page_size,
            all_pages,
        } => {
            let options = TagsOptions {
                page_size: (page_size > 0).then_some(u32::from(page_size % 4) + 1),
                last: None,
                all_pages,
            };
            let mut op = ListTags::new(&h.client, source(None, None), options);
            match h.drive(&mut op) {
                Ok(Some(list)) => {
                    assert!(list.tags.len() <= MAX_TAGS, "{} tags", list.tags.len());
                    for tag in &list.tags {
                        assert!(is_valid_tag(tag), "listed {tag:?}, which is no tag");
                    }
                    !all_pages || list.next.is_none()
                }
                Ok(None) | Err(_) => false,
            }
        }
        Op::ListReferrers { filtered } => {
            let subject = layer(false).digest.clone();
            let filter = filtered.then(|| "application/spdx+json".to_string());
            let mut op = ListReferrers::new(&h.client, source(None, None), subject, filter);
            match h.drive(&mut op) {
                Ok(found) => {
                    assert!(
                        found.manifests.len() <= MAX_REFERRERS,
                        "{} referrers",
                        found.manifests.len()
                    );
                    true
                }
                Err(_) => false,
            }
        }
        Op::ReadRange {
            big,
            first,
            len,
            suffix,
        } => {
            let o = layer(big);
            let size = o.bytes.len() as u64;
            let first = u64::from(first) % (size + 2);
            let range = match suffix {
                true => ByteRange::Suffix(u64::from(len)),
                false => ByteRange::Span(first, first + u64::from(len)),
            };
            let r = source(None, Some(&o.digest));
            let mut op = ReadRange::new(&h.client, r, range).expect("a ranged read");
            match h.drive(&mut op) {
                Ok(Some(RangeRead::Whole(found))) => check_found(&mut h, found, Some(&o.digest)),
                Ok(Some(RangeRead::Part(part))) => {
                    let d = &part.descriptor;
                    assert_eq!(d.digest, o.digest, "a part of another blob");
                    assert!(
                        part.first <= part.last && part.last < d.size,
                        "bytes {}-{} of {}",
                        part.first,
                        part.last,
                        d.size
                    );
                    assert!(
                        part.first > 0 || part.last + 1 < d.size,
                        "a whole read as a part"
                    );
                    let (asked_first, asked_last) =
                        range.resolve(d.size).expect("a part asked for");
                    assert!(
                        part.first == asked_first && part.last <= asked_last,
                        "another part"
                    );
                    let body = h.take_held(part.request);
                    let skip = usize::try_from(part.skip).unwrap_or(usize::MAX);
                    let (from, to) = (part.first as usize, part.last as usize);
                    body.get(skip..skip + part.length() as usize) == o.bytes.get(from..=to)
                }
                Ok(Some(RangeRead::Unsatisfiable { .. })) => first >= size || len == 0,
                Ok(None) | Err(_) => false,
            }
        }
        Op::PushBlob { big, chunk } => {
            let o = layer(big);
            let r = destination(None, Some(&o.digest));
            let mut op = PushBlob::new(&h.client, r, o.bytes.len() as u64).expect("a push");
            // At most 32 chunks or so: a request each.
            let len = o.bytes.len();
            let chunk = (usize::from(chunk) % len).max(len / 32).max(1);
            let outcome = push_in_chunks(&mut h, &mut op, &o.bytes, chunk);
            check_pushed(&h, outcome, o)
        }
    };
    succeeded
}

/// Drives a push-blob step by step, `bytes` handed over `chunk` at a time.
fn push_in_chunks(
    h: &mut Harness<'_, '_>,
    op: &mut PushBlob,
    bytes: &[u8],
    chunk: usize,
) -> Result<Descriptor> {
    if let Some(d) = h.drive(op)? {
        return Ok(d);
    }
    for piece in bytes.chunks(chunk) {
        op.write(&h.client, bytes::Bytes::copy_from_slice(piece))?;
        if let Some(d) = h.drive(op)? {
            return Ok(d);
        }
    }
    op.finish(&h.client)?;
    h.drive(op)?.ok_or_else(|| {
        ocirelay_core::Error::Internal("a finished push without a descriptor".into())
    })
}

/// A push's outcome: the object asked for, and only when confirmed.
/// Returns whether it succeeded.
fn check_pushed(h: &Harness<'_, '_>, outcome: Result<Descriptor>, object: &Object) -> bool {
    let Ok(d) = outcome else { return false };
    assert_eq!(d.digest, object.digest, "reported another digest pushed");
    assert!(
        h.confirmed(&d.digest),
        "reported {} pushed, never confirmed",
        d.digest
    );
    true
}

/// Found content matches what the lookup says it is. Returns whether it
/// was handed out whole and verified.
fn check_found(h: &mut Harness<'_, '_>, found: Found, asked: Option<&Digest>) -> bool {
    let d = &found.descriptor;
    if let Some(asked) = asked {
        assert_eq!(&d.digest, asked, "asked for {asked}, found {}", d.digest);
    }
    match found.body {
        Body::Empty => true,
        // The fuzzed lookups never pass redirects on.
        Body::Redirect(to) => panic!("a redirect passed on unasked: {to}"),
        Body::Bytes(b) => {
            assert_eq!(
                Digest::sha256(&b),
                d.digest,
                "found bytes of another digest"
            );
            assert_eq!(b.len() as u64, d.size, "found bytes of another size");
            true
        }
        Body::Stream {
            request,
            mut verifier,
        } => {
            // As a driver streams it: every byte through the verifier.
            let held = h.take_held(request);
            let verified = verifier.update(&held).and_then(|()| verifier.finish());
            if verified.is_ok() {
                assert_eq!(
                    Digest::sha256(&held),
                    d.digest,
                    "verified a stream of another digest"
                );
                assert_eq!(
                    held.len() as u64,
                    d.size,
                    "verified a stream of another size"
                );
            }
            verified.is_ok()
        }
    }
}
