//! `ocirelay lookup`: the original registry tooling's lookup command. Flags
//! apply to the reference after them; a reference without flags prints its
//! synthesized index. Beyond the original: `--type referrers`, the OCI 1.1
//! referrers of a manifest.

use ocirelay_core::ops::batch::Query;
use ocirelay_core::ops::lookup::{LookupKind, LookupOptions};
use ocirelay_core::Reference;

use crate::error::HostError;
use crate::queries::{self, Item};
use crate::runtime::{wit, Runtime};

/// What each reference's flags mean, shown by `ocirelay lookup --help`.
const FLAGS_HELP: &str = "\
Flags before a reference apply to that reference only:
  --type manifest   GET the manifest (by tag or digest) and print it as JSON
  --type blob       GET the blob (by digest) and print it base64-encoded
  --type referrers  print the manifests that refer to it (signatures, SBOMs,
                    attestations) as an image index, as the referrers API
                    gives it: from that API, else from the fallback tag
                    (sha256-<hex>) that registries without it keep
  --artifact-type T with --type referrers: only those of artifact type T
  --head            send HEAD instead and print the descriptor
                    (with --type blob, the blob's; otherwise the manifest's)
A reference with no flag before it prints its synthesized index (as
`ocirelay index` does). Each reference prints one JSON document, in input
order, or null when it does not exist. A tag defaults to `latest`.

Examples:
  ocirelay lookup hello-world:latest
  ocirelay lookup --parallel --head localhost:5000/a:v1 --type blob localhost:5000/a@sha256:…
  ocirelay lookup --type referrers --artifact-type application/spdx+json localhost:5000/a:v1";

/// Arguments of `ocirelay lookup`.
#[derive(Debug, clap::Args)]
#[command(after_long_help = FLAGS_HELP)]
pub struct LookupArgs {
    /// Look every reference up concurrently (output stays in input order).
    /// It applies to the whole command, so it comes before the first
    /// reference (as in the original tool).
    #[arg(long)]
    pub parallel: bool,
    /// References, each optionally preceded by `--type
    /// manifest|blob|referrers`, `--head` and `--artifact-type` (see below).
    #[arg(
        value_name = "[--type TYPE] [--head] REF",
        required = true,
        num_args = 1..,
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub items: Vec<String>,
}

/// The flags read before a reference.
#[derive(Default)]
struct Flags {
    kind: Option<String>,
    head: bool,
    artifact_type: Option<String>,
}

impl Flags {
    fn any(&self) -> bool {
        self.kind.is_some() || self.head || self.artifact_type.is_some()
    }

    /// What they ask of `reference`.
    fn item(self, reference: Reference) -> Result<Item, HostError> {
        let text = reference.to_string();
        match (self.kind.as_deref(), self.head, self.artifact_type) {
            (Some("referrers"), false, artifact_type) => {
                Ok(Item::Referrers(reference, artifact_type))
            }
            (Some("referrers"), true, _) => Err(HostError::Usage(format!(
                "--head does not apply to --type referrers ({text})"
            ))),
            (_, _, Some(_)) => Err(HostError::Usage(format!(
                "--artifact-type applies to --type referrers only ({text})"
            ))),
            (None, false, None) => Ok(Item::Query(Query::SynthesizeIndex(reference))),
            (kind, head, None) => {
                let kind = kind.unwrap_or_default().parse::<LookupKind>()?;
                Ok(Item::Query(Query::Lookup(
                    reference,
                    LookupOptions { kind, head },
                )))
            }
        }
    }
}

/// Turns `[--type T] [--head] [--artifact-type A] REF ...` into items; a
/// flag with no reference after it is an error.
pub fn parse_items(items: &[String]) -> Result<Vec<Item>, HostError> {
    let mut parsed = Vec::new();
    let mut flags = Flags::default();
    let mut args = items.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--type" => {
                let value = args.next().ok_or_else(|| {
                    HostError::Usage("--type needs a value: manifest, blob or referrers".into())
                })?;
                flags.kind = Some(value.clone());
            }
            "--artifact-type" => {
                let value = args.next().ok_or_else(|| {
                    HostError::Usage("--artifact-type needs a value: a media type".into())
                })?;
                flags.artifact_type = Some(value.clone());
            }
            "--head" => flags.head = true,
            "--parallel" => {
                return Err(HostError::Usage(
                    "--parallel applies to the whole command: put it before the first reference"
                        .into(),
                ))
            }
            flag if flag.starts_with("--") => {
                return Err(HostError::Usage(format!(
                    "unknown flag {flag:?} (before a reference: --type manifest|blob|referrers, \
                     --head, --artifact-type)"
                )))
            }
            text => {
                let reference = Reference::parse(text)?;
                parsed.push(std::mem::take(&mut flags).item(reference)?);
            }
        }
    }
    if flags.any() {
        return Err(HostError::Usage(
            "dangling --type, --head or --artifact-type: no reference follows it".into(),
        ));
    }
    Ok(parsed)
}

/// Runs the command, printing one JSON document per reference.
pub async fn run(
    runtime: &Runtime,
    config: wit::Config,
    args: LookupArgs,
) -> Result<(), HostError> {
    // Every reference and flag is checked before anything is sent.
    let items = parse_items(&args.items)?;
    queries::run(runtime, config, &items, args.parallel).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn flags_apply_to_the_next_reference_only() {
        let q = parse_items(&items("a --head b --type blob --head c@sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855 d --type manifest e --type referrers f --artifact-type x/y --type referrers g")).unwrap();
        let shapes: Vec<String> = q
            .iter()
            .map(|q| match q {
                Item::Query(Query::SynthesizeIndex(r)) => format!("index {r}"),
                Item::Query(Query::Lookup(r, o)) => {
                    format!("{:?} head={} {}", o.kind, o.head, r.repository)
                }
                Item::Referrers(r, t) => format!("referrers {t:?} {}", r.repository),
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
                "referrers None library/f",
                "referrers Some(\"x/y\") library/g",
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
            "--artifact-type x/y a",
            "--type referrers --head a",
            "a --artifact-type",
            "a --artifact-type x/y",
        ] {
            let e = parse_items(&items(bad))
                .err()
                .unwrap_or_else(|| panic!("{bad} parsed"));
            assert_eq!(e.exit_code(), 2, "{bad}: {e}");
        }
    }
}
