//! `ocirelay deploy`: the original deploy tool's pipeline. Reads a stream
//! of `{type, refs, lookup, data}` JSON objects on stdin and makes every
//! ref so, printing a line per ref on stderr as the original does.

use std::io::{Read, Write};

use ocirelay_core::deploy::normalize_stream;

use crate::error::HostError;
use crate::runtime::{wit, Runtime};

/// Arguments of `ocirelay deploy`.
#[derive(Debug, clap::Args)]
#[command(after_long_help = "\
Input (stdin): JSON objects, whitespace-separated as jq writes them, children
first: {\"type\": \"manifest\"|\"blob\", \"refs\": [REF...], \"lookup\": {DIGEST-or-\"\": REF},
\"data\": ...}. A string `data` is base64 of the bytes to push; any other JSON
value is pushed as `jq --tab` prints it; without `data` the object is copied
from the lookup. The whole input is checked before anything is pushed.
Progress on stderr: ❔ started, ✅ done, ❌ failed (or, with --dry-run, would
change). Exit status: 0 all done, 1 a ref failed (no new ref starts after a
failure), 2 bad input.")]
pub struct DeployArgs {
    /// Only look (HEADs): print, for each ref that would change, its input
    /// alone (as the original prints it) on stdout, in input order.
    #[arg(long)]
    pub dry_run: bool,
    /// Refs side by side (up to --concurrency); an object still never goes
    /// out before the children earlier inputs push.
    #[arg(long)]
    pub parallel: bool,
    /// Every manifest copied (by `lookup`, without `data`) brings what
    /// refers to it: signatures, SBOMs, attestations, after it (as an
    /// input's own `"referrers": true` asks).
    #[arg(long)]
    pub referrers: bool,
    /// The input stream, read from stdin before the command runs.
    #[arg(skip)]
    pub input: String,
}

impl DeployArgs {
    /// Reads the input from stdin.
    pub fn read_input(&mut self) -> Result<(), HostError> {
        std::io::stdin()
            .read_to_string(&mut self.input)
            .map_err(|e| HostError::Usage(format!("reading the deploy input from stdin: {e}")))?;
        Ok(())
    }

    /// The registries the input names (its refs, lookups and sources).
    pub fn hosts(&self) -> Result<Vec<String>, HostError> {
        let inputs = normalize_stream(&self.input)?;
        Ok(inputs
            .iter()
            .flat_map(|i| {
                i.refs
                    .iter()
                    .chain(i.lookup.values())
                    .chain(i.copy_from.iter())
                    .map(|r| r.host.clone())
            })
            .collect())
    }
}

/// Runs the command.
pub async fn run(
    runtime: &Runtime,
    config: wit::Config,
    args: DeployArgs,
) -> Result<(), HostError> {
    let mut session = runtime.session(config).await?;
    let options = wit::DeployOptions {
        dry_run: args.dry_run,
        parallel: args.parallel,
        progress: true,
        referrers: args.referrers,
    };
    let results = session.deploy(&args.input, options).await?;
    let mut out = std::io::stdout().lock();
    let mut first_failure = None;
    for result in results {
        match result.outcome {
            wit::DeployOutcome::WouldChange(json) => writeln!(out, "{json}")?,
            wit::DeployOutcome::Failed(e) if first_failure.is_none() => first_failure = Some(e),
            _ => {}
        }
    }
    out.flush()?;
    match first_failure {
        Some(e) => Err(HostError::Component(e)),
        None => Ok(()),
    }
}
