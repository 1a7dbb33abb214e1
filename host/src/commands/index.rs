//! `ocirelay index`: the synthesized index of each reference.

use ocirelay_core::ops::batch::Query;
use ocirelay_core::Reference;

use crate::error::HostError;
use crate::queries::{self, Item};
use crate::runtime::{wit, Runtime};

/// Arguments of `ocirelay index`.
#[derive(Debug, clap::Args)]
#[command(after_long_help = "\
Whatever a reference points at becomes an OCI index: an image manifest is a
one-entry index, an index or Docker manifest list is read as is. Entries get
their platform (read from the image config when missing, normalized), a
`com.docker.official-images.bashbrew.arch` annotation computed fresh, and an
`org.opencontainers.image.ref.name` annotation saying where they come from.
BuildKit attestations take their subject's arch or are dropped. Prints one
JSON document per reference, or null when it does not exist.")]
pub struct IndexArgs {
    /// Synthesize every index concurrently (output stays in input order).
    #[arg(long)]
    pub parallel: bool,
    /// References, e.g. `hello-world:latest` (a tag defaults to `latest`).
    #[arg(value_name = "REF", required = true)]
    pub refs: Vec<String>,
}

/// Runs the command.
pub async fn run(runtime: &Runtime, config: wit::Config, args: IndexArgs) -> Result<(), HostError> {
    let queries = args
        .refs
        .iter()
        .map(|r| Reference::parse(r).map(|r| Item::Query(Query::SynthesizeIndex(r))))
        .collect::<Result<Vec<_>, _>>()?;
    queries::run(runtime, config, &queries, args.parallel).await
}
