//! `ocirelay lookup`: the original registry tooling's lookup command. Flags
//! apply to the reference after them; a reference without flags prints its
//! synthesized index.

use ocirelay_core::ops::batch::Query;
use ocirelay_core::ops::lookup::{LookupKind, LookupOptions};
use ocirelay_core::Reference;

use crate::error::HostError;
use crate::queries;
use crate::runtime::{wit, Runtime};

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
    /// It applies to the whole command, so it comes before the first
    /// reference (as in the original tool).
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
            "--parallel" => {
                return Err(HostError::Usage(
                    "--parallel applies to the whole command: put it before the first reference"
                        .into(),
                ))
            }
            flag if flag.starts_with("--") => {
                return Err(HostError::Usage(format!(
                    "unknown flag {flag:?} (before a reference: --type manifest|blob, --head)"
                )))
            }
            text => {
                let reference = Reference::parse(text)?;
                queries.push(match (kind.take(), head) {
                    (None, false) => Query::SynthesizeIndex(reference),
                    (kind, head) => {
                        let kind = kind.unwrap_or_default();
                        Query::Lookup(reference, LookupOptions { kind, head })
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
    queries::run(runtime, config, &queries, args.parallel).await
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
                Query::SynthesizeIndex(r) => format!("index {r}"),
                Query::Lookup(r, o) => format!("{:?} head={} {}", o.kind, o.head, r.repository),
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
            "a --parallel b",
            "Bad",
        ] {
            let e = parse_items(&items(bad))
                .err()
                .unwrap_or_else(|| panic!("{bad} parsed"));
            assert_eq!(e.exit_code(), 2, "{bad}: {e}");
        }
    }
}
