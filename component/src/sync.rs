//! `client.sync`: the core's sync operation, run by the one driver on a
//! client of its own (the caller's configuration, with the sync config's
//! registries' transport and credentials), its progress written to stderr
//! as images finish (when asked), its results as records.

use ocirelay_core::ops::copy_referrers::CopiedReferrers;
use ocirelay_core::ops::sync::{Event, Sync, SyncOptions, SyncResult};
use ocirelay_core::ops::sync_image::Synced;
use ocirelay_core::sync::SyncConfig;
use ocirelay_core::{Operation, Output};
use ocirelay_driver::Client;

use crate::bindings::exports::ocirelay::registry::registry as wit;

/// Runs the sync `config_json` describes, as `options` say.
pub fn sync(
    client: &Client,
    config_json: &str,
    options: wit::SyncOptions,
) -> Result<Vec<wit::SyncResult>, wit::Error> {
    let config = SyncConfig::parse(config_json)?;
    let own = Client::new(
        config.client_config(client.core().config()),
        client.send_options(),
    );
    let print = match (options.progress_json, options.progress) {
        (true, _) => Print::Json,
        (false, true) => Print::Lines,
        (false, false) => Print::Nothing,
    };
    let options = SyncOptions {
        destination: options.destination,
        shard: options.shard,
        dry_run: options.dry_run,
    };
    let mut op = Sync::new(&own.core(), config, options)?;
    let (done, _) = own.run(&mut WithProgress(&mut op, print))?;
    done?;
    Ok(op.into_results().into_iter().map(record).collect())
}

/// What progress to write on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Print {
    Nothing,
    /// A line as each image ends.
    Lines,
    /// A JSON line as each image starts and ends.
    Json,
}

/// The sync, printing its progress as `Print` says.
#[derive(Debug)]
struct WithProgress<'a>(&'a mut Sync, Print);

impl Operation for WithProgress<'_> {
    type Outcome = <Sync as Operation>::Outcome;

    fn poll_output(&mut self, client: &mut ocirelay_core::Client) -> Output<Self::Outcome> {
        let output = self.0.poll_output(client);
        let events: Vec<Event> = self.0.take_events().collect();
        for event in events {
            let (i, finished) = match event {
                Event::Started(i) => (i, false),
                Event::Finished(i) => (i, true),
            };
            let Some(result) = self.0.results().get(i) else {
                continue;
            };
            match self.1 {
                Print::Lines if finished => eprintln!("{}", line(result)),
                Print::Json => eprintln!("{}", json_line(result, finished)),
                _ => {}
            }
        }
        output
    }
}

/// `copied SRC -> DST (DIGEST)`, `unchanged …`, `failed SRC: why`.
fn line(result: &SyncResult) -> String {
    let to = result
        .destination
        .as_ref()
        .map_or(String::new(), |d| format!(" -> {d}"));
    let message = match &result.outcome {
        Ok((synced, _)) => {
            let word = match synced {
                Synced::Copied(_) => "copied",
                Synced::Unchanged(_) => "unchanged",
                Synced::WouldCopy(_) => "would copy",
            };
            format!(
                "{word} {}{to} ({})",
                result.source,
                synced.descriptor().digest
            )
        }
        Err(e) => format!("failed {}{to}: {e}", result.source),
    };
    ocirelay_core::error::printable(&message).into_owned()
}

/// `{"event": "started"|"finished", "source", "destination", "outcome",
/// "digest", "error", "requests", "bytes-sent"}`, one line.
fn json_line(result: &SyncResult, finished: bool) -> String {
    let mut line = serde_json::json!({
        "event": if finished { "finished" } else { "started" },
        "source": result.source.to_string(),
        "destination": result.destination.as_ref().map(ToString::to_string),
    });
    if finished {
        line["requests"] = result.traffic.requests.into();
        line["bytes-sent"] = result.traffic.bytes_sent.into();
        match &result.outcome {
            Ok((synced, _)) => {
                let word = match synced {
                    Synced::Copied(_) => "copied",
                    Synced::Unchanged(_) => "unchanged",
                    Synced::WouldCopy(_) => "would-copy",
                };
                line["outcome"] = word.into();
                line["digest"] = synced.descriptor().digest.to_string().into();
            }
            Err(e) => {
                line["outcome"] = "failed".into();
                line["error"] = ocirelay_core::error::printable(&e.to_string())
                    .into_owned()
                    .into();
            }
        }
    }
    line.to_string()
}

fn record(result: SyncResult) -> wit::SyncResult {
    let (outcome, referrers) = match result.outcome {
        Ok((synced, referrers)) => {
            let outcome = match &synced {
                Synced::Copied(d) => wit::SyncOutcome::Copied(d.into()),
                Synced::Unchanged(d) => wit::SyncOutcome::Unchanged(d.into()),
                Synced::WouldCopy(d) => wit::SyncOutcome::WouldCopy(d.into()),
            };
            (outcome, referrers.map(copied))
        }
        Err(e) => (wit::SyncOutcome::Failed(e.into()), None),
    };
    wit::SyncResult {
        source: result.source.to_string(),
        destination: result.destination.map(|d| d.to_string()),
        outcome,
        referrers,
        requests: result.traffic.requests,
        bytes_sent: result.traffic.bytes_sent,
    }
}

/// Referrers copied, as the WIT says them.
pub fn copied(c: CopiedReferrers) -> wit::CopiedReferrers {
    wit::CopiedReferrers {
        copied: c.copied.iter().map(Into::into).collect(),
        tags: c.tags,
        skipped: c.skipped,
    }
}
