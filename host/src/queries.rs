//! Queries and their answers, as `lookup` and `index` print them: one JSON
//! document per reference, in input order, or `null` when it does not exist.

use std::io::Write;

use base64::Engine as _;
use ocirelay_core::ops::batch::{Answer, Query};
use ocirelay_core::ops::lookup::{LookupKind, LookupOptions};
use ocirelay_core::Reference;

use crate::error::HostError;
use crate::output::write_json;
use crate::runtime::{wit, Reader, Runtime, Session};

/// Runs queries one after another, or all at once with `parallel`.
pub async fn run(
    runtime: &Runtime,
    config: wit::Config,
    queries: &[Query],
    parallel: bool,
) -> Result<(), HostError> {
    let mut session = runtime.session(config).await?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if parallel {
        let answers = session.batch(queries).await?;
        for (query, answer) in queries.iter().zip(answers) {
            print_answer(&mut session, &mut out, query, answer?).await?;
        }
        return Ok(());
    }
    for query in queries {
        let answer = match query {
            Query::Lookup(r, options) => session.lookup(r, *options).await?.map(Answer::Found),
            Query::SynthesizeIndex(r) => session.synthesize_index(r).await?.map(Answer::Index),
        };
        print_answer(&mut session, &mut out, query, answer).await?;
    }
    Ok(())
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
