//! `ocirelay sync`: the repositories a config file names (skopeo sync's
//! source YAML as it is, plus ocirelay's keys), each image HEADed at both
//! ends and copied when it changed, a failure reported and the rest done.

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};

use ocirelay_core::sync::SyncConfig;

use crate::commands::sync_progress::Progress;
use crate::error::HostError;
use crate::layout::{LayoutArg, Layouts};
use crate::output::write_json;
use crate::runtime::{wit, Runtime};

/// Arguments of `ocirelay sync`.
#[derive(Debug, clap::Args)]
#[command(after_long_help = "\
CONFIG is skopeo sync's source file (YAML, or the same as JSON):
  registry.example:
    images: {team/app: [v1, v2], team/base: []}      # [] is every tag
    images-by-tag-regex: {team/tool: '^1\\.2\\.'}
    images-by-semver: {team/lib: '>= 1.2, < 2'}
    tls-verify: true                                   # false: plain HTTP
    credentials: {username: u, password: p}
  ocirelay:                                            # ocirelay's own keys
    destination: mirror.internal:5000/mirror           # or DEST
    scoped: false          # true: DEST/registry.example/team/app, else DEST/app
    exclude-tags: ['-rc']  # regexes of tags never synced
    newest: 5              # of the versions selected, the newest 5
    referrers: true        # signatures and SBOMs travel with each image
    platforms: [linux/amd64, linux/arm64]   # each index cut down to these
CONFIG may also be oci:DIR, a directory of OCI image layouts (DIR/team/app
is repository team/app), every tag of each; DEST (or ocirelay.destination)
may be oci:DIR, each repository written to a layout of its own under it.
Each image costs a HEAD at each end when it is there already; a changed
one is copied (only what the destination lacks is sent). Progress on
stderr, a line per image (on a terminal, under them a bar of totals and
what is in flight); --report FILE writes every image's outcome as
JSON. Exit status: 0 all synced, 1 something failed (listed at the end,
the rest done), 2 a bad config or option.")]
pub struct SyncArgs {
    /// Only look (HEADs): which images would be copied.
    #[arg(long)]
    pub dry_run: bool,
    /// Only the repositories of shard K of N (K from 0 to N-1; a stable
    /// hash of each repository's name decides), so that N runs on N
    /// machines cover the config once: `--shard $JOB_COMPLETION_INDEX/N`.
    #[arg(long, value_name = "K/N", value_parser = parse_shard)]
    pub shard: Option<(u32, u32)>,
    /// Only these platforms (`os/arch[/variant]`, comma-separated or
    /// repeated; replaces the config's `ocirelay.platforms`): each index is
    /// cut down to them and pushed as an index of its own digest.
    #[arg(
        long = "platform",
        value_name = "OS/ARCH[/VARIANT]",
        value_delimiter = ','
    )]
    pub platforms: Vec<String>,
    /// Progress on stderr as JSON lines (`json`: one as each image starts
    /// and ends, for CI logs) instead of a line per image.
    #[arg(long, value_name = "FORMAT")]
    pub progress: Option<ProgressFormat>,
    /// Write what happened to each image as JSON to FILE (`-`: stdout).
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// The sync config (YAML or JSON), or `oci:DIR`: every layout under DIR.
    #[arg(value_name = "CONFIG")]
    pub config: PathBuf,
    /// Where to: a registry and repository prefix (`host[/prefix]`), or
    /// `oci:DIR` (a layout per repository); else the config's
    /// `ocirelay.destination`.
    #[arg(value_name = "DEST")]
    pub destination: Option<String>,
    /// The config as JSON, read before the command runs.
    #[arg(skip)]
    pub json: String,
}

/// How progress is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProgressFormat {
    /// A JSON line as each image starts and ends.
    Json,
}

fn parse_shard(text: &str) -> Result<(u32, u32), String> {
    let (k, n) = text.split_once('/').ok_or("give K/N, e.g. 0/3")?;
    let k: u32 = k
        .trim()
        .parse()
        .map_err(|_| format!("{k:?} is no number"))?;
    let n: u32 = n
        .trim()
        .parse()
        .map_err(|_| format!("{n:?} is no number"))?;
    if n == 0 || k >= n {
        return Err(format!("K must be from 0 to N-1 (N={n})"));
    }
    Ok((k, n))
}

impl SyncArgs {
    /// Reads the config file (YAML or JSON) into its JSON form, checked;
    /// OCI layouts (`oci:DIR` as CONFIG, DEST or `ocirelay.destination`)
    /// named as registries `layouts` answers for.
    pub fn read_config(&mut self, layouts: &mut Layouts) -> Result<SyncConfig, HostError> {
        let mut value = match self.config.to_str().and_then(LayoutArg::parse) {
            Some(arg) => layout_source(&arg?, layouts)?,
            None => config_value(&self.config)?,
        };
        with_platforms(&mut value, &self.platforms);
        // A layout destination in the config: as if given as DEST.
        let own = value.get_mut(ocirelay_core::sync::config::OWN_KEY);
        if let Some(own) = own.and_then(|o| o.as_object_mut()) {
            let in_layout = own
                .get("destination")
                .and_then(|d| d.as_str())
                .is_some_and(|d| d.starts_with(crate::layout::PREFIX));
            if in_layout {
                let dest = own
                    .remove("destination")
                    .and_then(|d| d.as_str().map(str::to_string));
                self.destination = self.destination.take().or(dest);
            }
        }
        if let Some(arg) = self.destination.as_deref().and_then(LayoutArg::parse) {
            let arg = arg?;
            if arg.tag.is_some() || arg.digest.is_some() {
                return Err(HostError::Usage(format!(
                    "{}: a sync writes each repository to a layout of its own under DIR, \
                     each image under its tag: give oci:DIR",
                    self.destination.as_deref().unwrap_or_default()
                )));
            }
            self.destination = Some(layouts.tree(&arg.dir)?);
        }
        self.json = value.to_string();
        let config = SyncConfig::parse(&self.json)
            .map_err(|e| HostError::bad_file(self.config.display(), e))?;
        if self.destination.is_none() && config.destination.is_none() {
            return Err(HostError::Usage(format!(
                "{}: no destination: give DEST, or ocirelay.destination in the config",
                self.config.display()
            )));
        }
        if let Some(dest) = &self.destination {
            ocirelay_core::sync::config::check_destination(dest)
                .map_err(|why| HostError::Usage(format!("DEST: {why}")))?;
        }
        Ok(config)
    }

    /// The registries it reaches: the sources and the destination.
    pub fn hosts(&self) -> Result<Vec<String>, HostError> {
        let config = SyncConfig::parse(&self.json)?;
        let mut hosts: Vec<String> = config.registries.iter().map(|r| r.host.clone()).collect();
        let dest = self.destination.as_ref().or(config.destination.as_ref());
        if let Some(dest) = dest {
            let probe = ocirelay_core::Reference::parse(&format!("{dest}/probe"))?;
            hosts.push(probe.host);
        }
        Ok(hosts)
    }
}

/// A YAML (or JSON) file as JSON; a YAML error names its line.
fn config_value(path: &Path) -> Result<serde_json::Value, HostError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| HostError::Usage(format!("reading {}: {e}", path.display())))?;
    let value: serde_json::Value = serde_saphyr::from_str(&text)
        .map_err(|e| HostError::Usage(format!("{}: not YAML or JSON: {e}", path.display())))?;
    if !value.is_object() {
        return Err(HostError::Usage(format!(
            "{}: a sync config is a mapping of registries",
            path.display()
        )));
    }
    Ok(value)
}

/// The config of a sync from a directory of layouts: every tag of each.
fn layout_source(
    arg: &crate::layout::LayoutArg,
    layouts: &mut Layouts,
) -> Result<serde_json::Value, HostError> {
    if arg.tag.is_some() || arg.digest.is_some() {
        return Err(HostError::Usage(format!(
            "oci:{}: a sync reads every layout under a directory, every tag: give oci:DIR",
            arg.dir.display()
        )));
    }
    let (host, repositories) = layouts.repositories(&arg.dir)?;
    let images: serde_json::Map<String, serde_json::Value> = repositories
        .into_iter()
        .map(|r| (r, serde_json::json!([])))
        .collect();
    Ok(serde_json::json!({ host: { "images": images } }))
}

/// `platforms` (when given) put in the config's `ocirelay.platforms`.
fn with_platforms(value: &mut serde_json::Value, platforms: &[String]) {
    let Some(map) = value.as_object_mut() else {
        return;
    };
    if !platforms.is_empty() {
        let own = map
            .entry(ocirelay_core::sync::config::OWN_KEY)
            .or_insert_with(|| serde_json::json!({}));
        if let Some(own) = own.as_object_mut() {
            own.insert("platforms".into(), serde_json::json!(platforms));
        }
    }
}

/// Runs the command.
pub async fn run(runtime: &Runtime, config: wit::Config, args: SyncArgs) -> Result<(), HostError> {
    // A registry's requests at once changed (it answered 429 or 503, or
    // took a window of successes): a JSON line too.
    if args.progress == Some(ProgressFormat::Json) {
        runtime.adaptive().announce_with(|host, limit| {
            let line =
                serde_json::json!({"event": "concurrency", "registry": host, "limit": limit});
            eprintln!("{line}");
        });
    }
    // On a terminal: a bar of totals, read from the JSON progress.
    let terminal = args.progress.is_none() && std::io::stderr().is_terminal();
    let (bar, stderr) = match terminal {
        true => {
            let (bar, stderr) = Progress::start(runtime);
            (Some(bar), Some(stderr))
        }
        false => (None, None),
    };
    let mut session = runtime.session_with_stderr(config, stderr).await?;
    let options = wit::SyncOptions {
        destination: args.destination.clone(),
        shard: args.shard,
        dry_run: args.dry_run,
        progress: true,
        progress_json: terminal || args.progress == Some(ProgressFormat::Json),
    };
    let results = session.sync(&args.json, options).await;
    drop(session);
    if let Some(bar) = bar {
        bar.finish();
    }
    let results = results?;
    let report = report(&results, runtime.layouts());
    match args.report.as_deref() {
        Some(path) if path == Path::new("-") => write_json(&mut std::io::stdout().lock(), &report)?,
        Some(path) => {
            let mut file = std::fs::File::create(path).map_err(|e| {
                HostError::Usage(format!("writing the report to {}: {e}", path.display()))
            })?;
            write_json(&mut file, &report)?;
        }
        None => {}
    }
    let failed: Vec<&wit::SyncResult> = results
        .iter()
        .filter(|r| matches!(r.outcome, wit::SyncOutcome::Failed(_)))
        .collect();
    let totals = &report["totals"];
    eprintln!(
        "ocirelay: {} images: {} copied, {} unchanged, {} would copy, {} failed",
        totals["images"],
        totals["copied"],
        totals["unchanged"],
        totals["would-copy"],
        totals["failed"]
    );
    if failed.is_empty() {
        return Ok(());
    }
    for r in &failed {
        if let wit::SyncOutcome::Failed(e) = &r.outcome {
            let why = HostError::Component(e.clone()).to_string();
            eprintln!(
                "  failed {}: {}",
                runtime.layouts().shown(&r.source),
                runtime.layouts().shown(&why)
            );
        }
    }
    Err(HostError::Component(wit::Error::Registry(format!(
        "{} of {} images failed",
        failed.len(),
        results.len()
    ))))
}

/// The run as data: each image's source, destination, digest and outcome
/// (with the error), its referrers, what it cost (requests, bytes sent),
/// and the totals.
fn report(results: &[wit::SyncResult], layouts: &Layouts) -> serde_json::Value {
    use serde_json::json;
    let mut totals = json!({"images": results.len(), "copied": 0, "unchanged": 0, "would-copy": 0,
                            "failed": 0, "requests": 0, "bytes-sent": 0});
    let images: Vec<serde_json::Value> = results
        .iter()
        .map(|r| {
            let (word, digest, error) = match &r.outcome {
                wit::SyncOutcome::Copied(d) => ("copied", Some(&d.digest), None),
                wit::SyncOutcome::Unchanged(d) => ("unchanged", Some(&d.digest), None),
                wit::SyncOutcome::WouldCopy(d) => ("would-copy", Some(&d.digest), None),
                wit::SyncOutcome::Failed(e) => ("failed", None, Some(e)),
            };
            for (key, n) in [(word, 1), ("requests", r.requests), ("bytes-sent", r.bytes_sent)] {
                totals[key] = json!(totals[key].as_u64().unwrap_or(0) + n);
            }
            let mut image = json!({"source": layouts.shown(&r.source),
                                   "destination": r.destination.as_deref().map(|d| layouts.shown(d)),
                                   "digest": digest, "outcome": word,
                                   "requests": r.requests, "bytes-sent": r.bytes_sent});
            if let Some(e) = error {
                let message = layouts.shown(crate::error::component_message(e));
                image["error"] = json!({"kind": kind(e), "message": message});
            }
            if let Some(refs) = &r.referrers {
                image["referrers"] = json!({"copied": refs.copied.len(), "tags": refs.tags,
                                            "skipped": refs.skipped});
            }
            image
        })
        .collect();
    json!({"images": images, "totals": totals})
}

/// The kind of error, as the packages name it.
fn kind(e: &wit::Error) -> &'static str {
    match e {
        wit::Error::InvalidReference(_) => "invalid-reference",
        wit::Error::InvalidInput(_) => "invalid-input",
        wit::Error::NotFound(_) => "not-found",
        wit::Error::Authentication(_) => "authentication",
        wit::Error::Registry(_) => "registry",
        wit::Error::Integrity(_) => "integrity",
        wit::Error::Protocol(_) => "protocol",
        wit::Error::Transport(_) => "transport",
        wit::Error::Timeout(_) => "timeout",
        wit::Error::RateLimited(_) => "rate-limited",
        wit::Error::Internal(_) => "internal",
    }
}
