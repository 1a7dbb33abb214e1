//! Queries and their answers, as `lookup` and `index` print them: one JSON
//! document per reference, in input order, or `null` when it does not exist.
//! The original tool's queries run side by side with `--parallel` (the
//! component's batch); referrers are asked one at a time, in their place.

use std::io::Write;

use base64::Engine as _;
use ocirelay_core::ops::batch::{Answer, Query};
use ocirelay_core::ops::lookup::{LookupKind, LookupOptions};
use ocirelay_core::Reference;

use crate::error::HostError;
use crate::output::write_json;
use crate::runtime::{wit, Reader, Runtime, Session};

/// One reference to look up, with what its flags ask.
#[derive(Debug, Clone)]
pub enum Item {
    /// A lookup or a synthesized index, as the original tool has them.
    Query(Query),
    /// The referrers of a manifest, those of an artifact type when given.
    Referrers(Reference, Option<String>),
}

impl Item {
    /// The reference looked up.
    pub fn reference(&self) -> &Reference {
        match self {
            Item::Query(q) => q.reference(),
            Item::Referrers(r, _) => r,
        }
    }
}

/// Runs the items one after another, or the queries among them all at
/// once with `parallel`; prints each answer in input order.
pub async fn run(
    runtime: &Runtime,
    config: wit::Config,
    items: &[Item],
    parallel: bool,
) -> Result<(), HostError> {
    let mut session = runtime.session(config).await?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut batched = match parallel {
        true => {
            let queries: Vec<Query> = items
                .iter()
                .filter_map(|item| match item {
                    Item::Query(query) => Some(query.clone()),
                    Item::Referrers(..) => None,
                })
                .collect();
            Some(session.batch(&queries).await?.into_iter())
        }
        false => None,
    };
    for item in items {
        match item {
            Item::Query(query) => {
                let answer = match batched.as_mut().and_then(Iterator::next) {
                    Some(answer) => answer?,
                    None => match query {
                        Query::Lookup(r, options) => {
                            session.lookup(r, *options).await?.map(Answer::Found)
                        }
                        Query::SynthesizeIndex(r) => {
                            session.synthesize_index(r).await?.map(Answer::Index)
                        }
                    },
                };
                print_answer(&mut session, &mut out, query, answer).await?;
            }
            Item::Referrers(subject, artifact_type) => {
                let found = session
                    .list_referrers(subject, artifact_type.as_deref())
                    .await?;
                print_referrers(&mut out, subject, found)?;
            }
        }
    }
    Ok(())
}

/// Referrers as the API lists them (an index), or `null` for a subject
/// that does not exist; a fallback tag that holds no index is said on
/// stderr.
fn print_referrers<W: Write>(
    out: &mut W,
    subject: &Reference,
    found: Option<wit::Referrers>,
) -> Result<(), HostError> {
    let Some(found) = found else {
        return write_json(out, &serde_json::Value::Null).map_err(HostError::from);
    };
    if let wit::ReferrersSource::NotAnIndex(what) = &found.source {
        // Debug-quoted: the registry's words, printed inert.
        eprintln!(
            "ocirelay: {subject}: its referrers tag holds {what:?}, not an index: \
             no referrers read from it"
        );
    }
    out.write_all(found.index_json.as_bytes())
        .map_err(HostError::from)
}

pub(crate) async fn print_answer<W: Write>(
    session: &mut Session,
    out: &mut W,
    query: &Query,
    answer: Option<Answer<Reader>>,
) -> Result<(), HostError> {
    match answer {
        None => write_json(out, &serde_json::Value::Null).map_err(HostError::from),
        Some(Answer::Index(index)) => write_json(out, &index).map_err(HostError::from),
        Some(Answer::Found(found)) => {
            let Query::Lookup(reference, options) = query else {
                return Err(HostError::Internal(
                    "an index query answered with an object".into(),
                ));
            };
            print_found(session, out, reference, *options, found).await
        }
    }
}

async fn print_found<W: Write>(
    session: &mut Session,
    out: &mut W,
    reference: &Reference,
    options: LookupOptions,
    found: Reader,
) -> Result<(), HostError> {
    if options.head {
        // The component's own JSON: it carries `data` when the object was
        // read earlier in this run, as the original prints it.
        let json = session.descriptor_json(&found).await?;
        session.close(found).await?;
        return out.write_all(json.as_bytes()).map_err(HostError::from);
    }
    match options.kind {
        LookupKind::Manifest => {
            let mut bytes = Vec::new();
            for_each_chunk(session, &found, |chunk| {
                bytes.extend_from_slice(chunk);
                Ok(())
            })
            .await?;
            session.close(found).await?;
            let json = ocirelay_core::json::manifest(&reference.to_string(), &bytes)
                .map_err(HostError::from)?;
            out.write_all(json.as_bytes()).map_err(HostError::from)
        }
        LookupKind::Blob => {
            // Streamed as base64 in 3-byte multiples so memory stays bounded;
            // a mismatch surfaces on the last read, before the closing quote.
            out.write_all(b"\"").map_err(HostError::from)?;
            let mut carry = Vec::new();
            for_each_chunk(session, &found, |chunk| {
                carry.extend_from_slice(chunk);
                let whole = carry.len() / 3 * 3;
                let encoded = base64::engine::general_purpose::STANDARD.encode(&carry[..whole]);
                out.write_all(encoded.as_bytes())?;
                carry.drain(..whole);
                Ok(())
            })
            .await?;
            let encoded = base64::engine::general_purpose::STANDARD.encode(&carry);
            out.write_all(encoded.as_bytes()).map_err(HostError::from)?;
            out.write_all(b"\"\n").map_err(HostError::from)?;
            session.close(found).await
        }
    }
}

/// Reads `found` to its end, a chunk at a time (the last read is where a
/// digest or size mismatch is reported).
async fn for_each_chunk(
    session: &mut Session,
    found: &Reader,
    mut each: impl FnMut(&[u8]) -> Result<(), HostError>,
) -> Result<(), HostError> {
    loop {
        let chunk = session.read(found, 1 << 20).await?;
        if chunk.is_empty() {
            return Ok(());
        }
        each(&chunk)?;
    }
}
