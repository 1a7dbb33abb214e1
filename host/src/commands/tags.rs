//! `ocirelay tags`: a repository's tags, one per line (or as JSON), every
//! page of the registry's tag list followed.

use std::io::Write;

use ocirelay_core::Reference;

use crate::error::HostError;
use crate::output::write_json;
use crate::runtime::{wit, Runtime};

/// Arguments of `ocirelay tags`.
#[derive(Debug, clap::Args)]
#[command(after_long_help = "\
Prints the repository's tags in the registry's order, one per line, so that
`ocirelay tags REPO | grep` and `| head` work as pipelines expect; with
--json, `{\"name\": REPO, \"tags\": [...]}` as the registry's tag list says it
(tab-indented), or null when the repository does not exist. Without --json,
a repository that does not exist (or that the credentials may not see) is
an error (exit 1). Every page of the registry's list is read; a list that
loops, leaves the registry, or passes 250,000 tags is an error.")]
pub struct TagsArgs {
    /// Print JSON instead of a tag per line.
    #[arg(long)]
    pub json: bool,
    /// Tags to ask the registry for per page (its `n`; default: its own).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub page_size: Option<u32>,
    /// Only the tags after this one, in the registry's order (its `last`).
    #[arg(long, value_name = "TAG")]
    pub after: Option<String>,
    /// The repository, e.g. `alpine` or `registry.example/team/app`, or an
    /// OCI image layout, `oci:DIR` (the names its `index.json` gives).
    #[arg(value_name = "REPO")]
    pub repository: String,
}

impl TagsArgs {
    /// The repository; a tag or digest would say nothing here, so either
    /// is refused rather than ignored.
    pub fn reference(&self) -> Result<Reference, HostError> {
        let reference = Reference::parse(&self.repository)?;
        if reference.tag.is_some() || reference.digest.is_some() {
            return Err(HostError::Usage(format!(
                "{:?}: name a repository, without a tag or digest",
                self.repository
            )));
        }
        Ok(reference)
    }
}

/// Runs the command.
pub async fn run(runtime: &Runtime, config: wit::Config, args: TagsArgs) -> Result<(), HostError> {
    let reference = args.reference()?;
    let mut session = runtime.session(config).await?;
    let options = wit::TagsOptions {
        page_size: args.page_size,
        last: args.after.clone(),
        all_pages: true,
    };
    let list = session.list_tags(&reference, &options).await?;
    let mut out = std::io::stdout().lock();
    match (list, args.json) {
        (None, true) => write_json(&mut out, &serde_json::Value::Null)?,
        (None, false) => {
            return Err(HostError::Component(wit::Error::NotFound(format!(
                "{}/{}: no such repository (or not one these credentials may see)",
                reference.host, reference.repository
            ))))
        }
        (Some(list), true) => {
            let name = format!("{}/{}", reference.host, reference.repository);
            let name = runtime.layouts().shown(&name);
            write_json(
                &mut out,
                &serde_json::json!({"name": name, "tags": list.tags}),
            )?
        }
        (Some(list), false) => {
            let mut out = std::io::BufWriter::new(out);
            for tag in &list.tags {
                writeln!(out, "{tag}")?;
            }
            out.flush()?;
        }
    }
    Ok(())
}
