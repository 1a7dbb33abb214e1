//! `ocirelay lookup`: the seed's lookup tool. Flags apply to the reference
//! after them; a reference without flags prints its synthesized index.

use std::io::Write;

use base64::Engine as _;
use ocirelay_core::index::Index;
use ocirelay_core::ops::lookup::LookupKind;
use ocirelay_core::{Descriptor, Digest, Platform, Reference};

use crate::error::HostError;
use crate::output::write_json;
use crate::runtime::{wit, Answer, Found, Query, Runtime, Session};

/// What each reference's flags mean, shown by `ocirelay lookup --help`.
const FLAGS_HELP: &str = "\
Flags before a reference apply to that reference only:
  --type manifest   GET the manifest (by tag or digest) and print it as JSON
  --type blob       GET the blob (by digest) and print it base64-encoded
  --head            send HEAD instead and print the descriptor
                    (with --type blob, the blob's; otherwise the manifest's)
A reference with no flag before it prints its synthesized index (as
`ocirelay index` does). Each reference prints one JSON document, in input
order, or null when it does not exist. A tag defaults to `latest`.

Examples:
  ocirelay lookup hello-world:latest
  ocirelay lookup --parallel --head localhost:5000/a:v1 --type blob localhost:5000/a@sha256:…";

/// Arguments of `ocirelay lookup`.
#[derive(Debug, clap::Args)]
#[command(after_long_help = FLAGS_HELP)]
pub struct LookupArgs {
    /// Look every reference up concurrently (output stays in input order).
    /// Only recognized before the first reference, as in the seed's tool.
    #[arg(long)]
    pub parallel: bool,
    /// References, each optionally preceded by `--type manifest|blob` and
    /// `--head` (see below).
    #[arg(
        value_name = "[--type TYPE] [--head] REF",
        required = true,
        num_args = 1..,
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub items: Vec<String>,
}

/// Turns `[--type T] [--head] REF ...` into queries; a flag with no
/// reference after it is an error.
pub fn parse_items(items: &[String]) -> Result<Vec<Query>, HostError> {
    let mut queries = Vec::new();
    let mut kind: Option<LookupKind> = None;
    let mut head = false;
    let mut args = items.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--type" => {
                let value = args.next().ok_or_else(|| {
                    HostError::Usage("--type needs a value: manifest or blob".into())
                })?;
                kind = Some(value.parse::<LookupKind>()?);
            }
            "--head" => head = true,
            flag if flag.starts_with("--") => {
                return Err(HostError::Usage(format!(
                    "unknown flag {flag:?} (before a reference: --type manifest|blob, --head)"
                )))
            }
            text => {
                let reference = Reference::parse(text)?;
                queries.push(match (kind.take(), head) {
                    (None, false) => Query::Index(reference),
                    (kind, head) => {
                        let kind = match kind.unwrap_or_default() {
                            LookupKind::Manifest => wit::LookupKind::Manifest,
                            LookupKind::Blob => wit::LookupKind::Blob,
                        };
                        Query::Lookup(reference, wit::LookupOptions { kind, head })
                    }
                });
                head = false;
            }
        }
    }
    if kind.is_some() || head {
        return Err(HostError::Usage(
            "dangling --type or --head: no reference follows it".into(),
        ));
    }
    Ok(queries)
}

/// Runs the command, printing one JSON document per reference.
pub async fn run(
    runtime: &Runtime,
    config: wit::Config,
    args: LookupArgs,
) -> Result<(), HostError> {
    // Every reference and flag is checked before anything is sent.
    let queries = parse_items(&args.items)?;
    run_queries(runtime, config, &queries, args.parallel).await
}

/// Runs queries one after another, or all at once with `parallel`.
pub async fn run_queries(
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
            Query::Index(r) => session.synthesize_index(r).await?.map(Answer::Index),
        };
        print_answer(&mut session, &mut out, query, answer).await?;
    }
    Ok(())
}

async fn print_answer<W: Write>(
    session: &mut Session,
    out: &mut W,
    query: &Query,
    answer: Option<Answer>,
) -> Result<(), HostError> {
    match answer {
        None => write_json(out, &serde_json::Value::Null).map_err(HostError::from),
        Some(Answer::Index(index)) => {
            write_json(out, &index_from_wit(&index)?).map_err(HostError::from)
        }
        Some(Answer::Found(found)) => {
            let Query::Lookup(reference, options) = query else {
                return Err(HostError::Setup(
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
    options: wit::LookupOptions,
    found: Found,
) -> Result<(), HostError> {
    if options.head {
        let descriptor = descriptor_from_wit(&found.descriptor)?;
        session.close(found).await?;
        return write_json(out, &descriptor).map_err(HostError::from);
    }
    match options.kind {
        wit::LookupKind::Manifest => {
            let mut bytes = Vec::new();
            loop {
                let chunk = session.read(&found, 1 << 20).await?;
                if chunk.is_empty() {
                    break;
                }
                bytes.extend_from_slice(&chunk);
            }
            session.close(found).await?;
            let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| {
                HostError::Setup(format!("{reference}: the manifest is not JSON: {e}"))
            })?;
            write_json(out, &value).map_err(HostError::from)
        }
        wit::LookupKind::Blob => {
            // Streamed as base64 in 3-byte multiples so memory stays bounded;
            // a mismatch surfaces on the last read, before the closing quote.
            out.write_all(b"\"").map_err(HostError::from)?;
            let mut carry = Vec::new();
            loop {
                let chunk = session.read(&found, 1 << 20).await?;
                if chunk.is_empty() {
                    break;
                }
                carry.extend_from_slice(&chunk);
                let whole = carry.len() / 3 * 3;
                let encoded = base64::engine::general_purpose::STANDARD.encode(&carry[..whole]);
                out.write_all(encoded.as_bytes()).map_err(HostError::from)?;
                carry.drain(..whole);
            }
            let encoded = base64::engine::general_purpose::STANDARD.encode(&carry);
            out.write_all(encoded.as_bytes()).map_err(HostError::from)?;
            out.write_all(b"\"\n").map_err(HostError::from)?;
            session.close(found).await
        }
    }
}

/// The component's descriptor as the core's serde type (OCI JSON shape).
pub fn descriptor_from_wit(d: &wit::Descriptor) -> Result<Descriptor, HostError> {
    let digest = Digest::parse(&d.digest)
        .map_err(|e| HostError::Setup(format!("component returned a bad digest: {e}")))?;
    let mut out = Descriptor::new(d.media_type.clone(), digest, d.size);
    out.urls = d.urls.clone();
    out.annotations = d.annotations.iter().cloned().collect();
    out.artifact_type = d.artifact_type.clone();
    out.platform = d.platform.as_ref().map(|p| Platform {
        architecture: p.architecture.clone(),
        os: p.os.clone(),
        os_version: p.os_version.clone(),
        os_features: p.os_features.clone(),
        variant: p.variant.clone(),
    });
    Ok(out)
}

/// The component's index as the core's serde type (OCI JSON shape).
pub fn index_from_wit(i: &wit::Index) -> Result<Index, HostError> {
    Ok(Index {
        schema_version: i.schema_version,
        media_type: (!i.media_type.is_empty()).then(|| i.media_type.clone()),
        artifact_type: i.artifact_type.clone(),
        manifests: i
            .manifests
            .iter()
            .map(descriptor_from_wit)
            .collect::<Result<_, _>>()?,
        subject: i.subject.as_ref().map(descriptor_from_wit).transpose()?,
        annotations: i.annotations.iter().cloned().collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn flags_apply_to_the_next_reference_only() {
        let q = parse_items(&items("a --head b --type blob --head c@sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855 d --type manifest e")).unwrap();
        let shapes: Vec<String> = q
            .iter()
            .map(|q| match q {
                Query::Index(r) => format!("index {r}"),
                Query::Lookup(r, o) => {
                    let kind = match o.kind {
                        wit::LookupKind::Manifest => "Manifest",
                        wit::LookupKind::Blob => "Blob",
                    };
                    format!("{kind} head={} {}", o.head, r.repository)
                }
            })
            .collect();
        assert_eq!(
            shapes,
            [
                "index a",
                "Manifest head=true library/b",
                "Blob head=true library/c",
                "index d",
                "Manifest head=false library/e",
            ]
        );
    }

    #[test]
    fn dangling_and_bad_flags_are_errors() {
        for bad in [
            "a --head",
            "--type blob",
            "a --type",
            "--type tarball a",
            "--frobnicate a",
            "Bad",
        ] {
            let e = parse_items(&items(bad))
                .err()
                .unwrap_or_else(|| panic!("{bad} parsed"));
            assert_eq!(e.exit_code(), 2, "{bad}: {e}");
        }
    }
}
