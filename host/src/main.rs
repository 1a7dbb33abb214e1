//! `ocirelay`: look up, copy and push OCI images between registries.
//!
//! A native wasmtime host around the ocirelay component: the component does
//! the registry work over wasi-http; this binary supplies credentials, the
//! outgoing-request policy, and the command line.

mod access_log;
mod adaptive;
mod chunk_check;
mod commands;
mod convert;
mod credentials;
mod error;
mod hooks;
mod idle;
mod layout;
mod lines;
mod malloc;
mod output;
mod policy;
mod pooled;
mod queries;
mod runtime;
mod serve;
mod settings;
mod tokens;
mod upload_checks;
mod verify;

use std::io::IsTerminal;

use clap::{Parser, Subcommand};

use tracing_subscriber::EnvFilter;

use error::HostError;
use runtime::{wit, Runtime};

/// Look up, copy and push OCI images between container registries.
///
/// Credentials come from the docker config ($DOCKER_CONFIG/config.json or
/// ~/.docker/config.json). DOCKERHUB_PUBLIC_PROXY (or _HOST) sends Docker
/// Hub reads to a read-through mirror. Registries on localhost and 127.0.0.1 are spoken
/// to over plain HTTP. Set RUST_LOG (e.g. RUST_LOG=debug) for logs on stderr.
/// Rates, insecure registries and CA files can also be set in a JSON settings
/// file: $OCIRELAY_CONFIG, else ~/.config/ocirelay/config.json (e.g.
/// {"rates": {"registry.example": "100/1m"}, "insecure": [], "ca-files": []}).
///
/// Exit codes: 0 success (including "not found", printed as null), 1 a
/// failed operation (registry, network, authentication, integrity), 2 bad
/// input, 3 an internal failure.
#[derive(Debug, Parser)]
#[command(name = "ocirelay", version)]
struct Cli {
    /// Also use plain HTTP for this registry host (repeatable).
    #[arg(long = "insecure", value_name = "HOST", global = true)]
    insecure: Vec<String>,
    /// Do not cache: ask the registry every time, even for objects already seen in this run.
    #[arg(long, global = true)]
    no_cache: bool,
    /// Requests kept in flight at most (an index's children and their
    /// blobs together), 1 to 1024. Each registry gets fewer while it
    /// answers 429 or 503 (halved, then one more per run of successes).
    #[arg(long, value_name = "N", default_value_t = 8, global = true,
          value_parser = clap::value_parser!(u32).range(1..=1024))]
    concurrency: u32,
    /// Limit requests to HOST to N per PERIOD (s, m or h), e.g.
    /// `registry.example=100/1m` (repeatable; Docker Hub: 300/1m by default).
    #[arg(long = "rate", value_name = "HOST=N/PERIOD", global = true)]
    rates: Vec<String>,
    /// Give up on a try (and retry it) when its upload, answer or download
    /// makes no progress for SECS seconds (1 to 86400): a trickle of a few
    /// bytes now and then is no progress.
    #[arg(long, value_name = "SECS", default_value_t = 60, global = true,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    idle_timeout: u64,
    /// Trust the CA certificates in this PEM file for HTTPS, besides the
    /// system's (repeatable).
    #[arg(long = "ca-file", value_name = "PEM", global = true)]
    ca_files: Vec<std::path::PathBuf>,
    /// Seconds a request may wait between its tries, in all (1 to 86400):
    /// "429 Too Many Requests" is waited out until then, and no wait a
    /// registry asks for goes past it, nor does a wait for a registry's
    /// stated budget (`ratelimit-remaining: 0`) to come back: past it,
    /// its requests fail at once. Server errors and connection failures
    /// get three tries in all.
    #[arg(long, value_name = "SECS", default_value_t = 300, global = true,
          value_parser = clap::value_parser!(u32).range(1..=86_400))]
    retry_deadline: u32,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Look references up and print one JSON document each: the synthesized
    /// index, the manifest, the blob (base64) or the descriptor, or null.
    Lookup(commands::lookup::LookupArgs),
    /// Print the synthesized index of each reference (platforms, bashbrew
    /// architectures, where each entry comes from).
    Index(commands::index::IndexArgs),
    /// Copy an image or index with all its children (or, with --blob, one
    /// blob) from SRC to DST and print the resulting descriptor.
    Copy(commands::copy::CopyArgs),
    /// List a repository's tags, one per line (or as JSON).
    Tags(commands::tags::TagsArgs),
    /// Push what a release pipeline computed: the deploy tool's input on
    /// stdin (blobs, manifests, copies, as JSON objects), and print how
    /// each ref ended.
    Deploy(commands::deploy::DeployArgs),
    /// Sync whole sets of repositories (skopeo sync's source file, tags by
    /// list, pattern or version range) to a registry, copying only what
    /// changed, going on past failures, and report what happened.
    Sync(commands::sync::SyncArgs),
    /// Serve the edge service: the lookup/index API and a read-through
    /// registry mirror, over HTTP, each request in a component instance
    /// of its own (kept for later requests), one log line per request.
    Serve(commands::service::ServeArgs),
    /// Write the edge service, composed with its configuration, as one
    /// component for any wasi:http host (`wasmtime serve`, Spin-style hosts).
    BuildService(commands::service::BuildServiceArgs),
}

/// The compiler's crates: at `trace` they log every instruction, which
/// made compiling the component take minutes instead of seconds.
const COMPILER_CRATES: &[&str] = &[
    "wasmtime_internal_cranelift",
    "wasmtime_internal_environ",
    "cranelift_codegen",
    "cranelift_frontend",
    "regalloc2",
    "wasmparser",
];

/// wasmtime's generated WASI bindings: at `trace` they log every call with
/// its arguments, which carry secrets (headers, signed URLs, tokens).
const BINDING_TARGETS: &[&str] = &[
    "wasmtime_wasi_http::p2::bindings",
    "wasmtime_wasi::p2::bindings",
    "wasmtime_wasi_io::bindings",
];

/// `RUST_LOG`, else warnings only; the compiler and the WASI bindings stay
/// at `warn` unless `RUST_LOG` names them.
fn log_filter() -> EnvFilter {
    let given = std::env::var("RUST_LOG").unwrap_or_default();
    let mut filter = EnvFilter::try_new(&given)
        .ok()
        .filter(|_| !given.trim().is_empty())
        .unwrap_or_else(|| EnvFilter::new("warn,wasmtime_wasi_http=error"));
    let quiet = COMPILER_CRATES.iter().chain(BINDING_TARGETS);
    for name in quiet.filter(|c| !given.contains(*c)) {
        if let Ok(directive) = format!("{name}=warn").parse() {
            filter = filter.add_directive(directive);
        }
    }
    filter
}

fn main() {
    malloc::keep_freed_memory();
    tracing_subscriber::fmt()
        .with_env_filter(log_filter())
        .with_writer(std::io::stderr)
        // Colour codes only for a terminal, not for a pipe or a file.
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let matches = <Cli as clap::CommandFactory>::command().get_matches();
    let cli = match <Cli as clap::FromArgMatches>::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    let given = given_flags(&matches);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ocirelay: error: starting the async runtime: {e}");
            std::process::exit(3);
        }
    };
    match runtime.block_on(run(cli, given)) {
        Ok(()) => {}
        // The reader went away (`| head`): nothing left to say to anyone.
        Err(e) if e.is_closed_output() => {}
        Err(e) => {
            // Errors quote registries: printed inert, whoever made them.
            let message = e.to_string();
            eprintln!(
                "ocirelay: error: {}",
                ocirelay_core::error::printable(&message)
            );
            std::process::exit(e.exit_code());
        }
    }
}

/// The options every command takes, by id and as typed.
const GLOBAL_FLAGS: &[(&str, &str)] = &[
    ("insecure", "--insecure"),
    ("no_cache", "--no-cache"),
    ("concurrency", "--concurrency"),
    ("rates", "--rate"),
    ("idle_timeout", "--idle-timeout"),
    ("ca_files", "--ca-file"),
    ("retry_deadline", "--retry-deadline"),
];

/// The global options given on the command line (not defaulted), as typed.
fn given_flags(matches: &clap::ArgMatches) -> Vec<&'static str> {
    GLOBAL_FLAGS
        .iter()
        .filter(|(id, _)| matches.value_source(id) == Some(clap::parser::ValueSource::CommandLine))
        .map(|(_, flag)| *flag)
        .collect()
}

/// Refuses the options among `given` that `command` does not apply
/// (`applied`): silently ignoring one would leave its user believing it
/// took effect.
fn refuse_unapplied(command: &str, given: &[&str], applied: &[&str]) -> Result<(), HostError> {
    let ignored: Vec<&str> = given
        .iter()
        .copied()
        .filter(|flag| !applied.contains(flag))
        .collect();
    match ignored.as_slice() {
        [] => Ok(()),
        flags => Err(HostError::Usage(format!(
            "{} {} not apply to `ocirelay {command}`{}",
            flags.join(", "),
            if flags.len() == 1 { "does" } else { "do" },
            match command {
                "serve" => ": the service's config sets insecure upstreams and retries",
                _ => ": the host that runs the written component applies its own",
            }
        ))),
    }
}

impl Command {
    /// The registries this command names: what credentials are looked up
    /// for and what the component may reach (besides where they send it).
    fn hosts(&self) -> Result<Vec<String>, HostError> {
        let refs: Vec<ocirelay_core::Reference> = match self {
            Command::Lookup(args) => commands::lookup::parse_items(&args.items)?
                .iter()
                .map(|item| item.reference().clone())
                .collect(),
            Command::Index(args) => args
                .refs
                .iter()
                .map(|r| ocirelay_core::Reference::parse(r))
                .collect::<Result<_, _>>()?,
            Command::Copy(args) => vec![
                ocirelay_core::Reference::parse(&args.src)?,
                ocirelay_core::Reference::parse(&args.dst)?,
            ],
            Command::Tags(args) => vec![args.reference()?],
            Command::Deploy(args) => return args.hosts().map(dedup),
            Command::Sync(args) => return args.hosts().map(dedup),
            Command::Serve(_) | Command::BuildService(_) => Vec::new(),
        };
        Ok(dedup(refs.into_iter().map(|r| r.host).collect()))
    }
}

/// `hosts` sorted, each once.
fn dedup(mut hosts: Vec<String>) -> Vec<String> {
    hosts.sort();
    hosts.dedup();
    hosts
}

/// `DOCKERHUB_PUBLIC_PROXY` (a URL) or `DOCKERHUB_PUBLIC_PROXY_HOST` (a
/// host, spoken to over HTTPS), validated: a bad value stops the command.
fn docker_hub_proxy() -> Result<Option<ocirelay_core::http::Url>, HostError> {
    use ocirelay_core::client::parse_docker_hub_proxy;
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let url = match (
        var("DOCKERHUB_PUBLIC_PROXY"),
        var("DOCKERHUB_PUBLIC_PROXY_HOST"),
    ) {
        (Some(url), _) => parse_docker_hub_proxy(&url)?,
        (None, Some(host)) => parse_docker_hub_proxy(&format!("https://{host}"))?,
        (None, None) => return Ok(None),
    };
    Ok(Some(url))
}

async fn run(cli: Cli, given: Vec<&'static str>) -> Result<(), HostError> {
    let settings = settings::load()?;
    // The rates: the file's first, a flag for the same host replaces its rate.
    let mut rates = settings.rates;
    for r in &cli.rates {
        rates.push(ocirelay_core::rate_limit::RateSpec::parse(r)?);
    }
    let mut ca_files = settings.ca_files;
    ca_files.extend(cli.ca_files);
    let idle_timeout = std::time::Duration::from_secs(cli.idle_timeout);
    // OCI layouts the command names, answered by the hook.
    let mut layouts = layout::Layouts::default();
    // The service's own configuration says what it reaches and how.
    let command = match cli.command {
        Command::BuildService(args) => {
            refuse_unapplied("build-service", &given, &[])?;
            return commands::service::build(args);
        }
        Command::Deploy(mut args) => {
            args.read_input()?;
            Command::Deploy(args)
        }
        Command::Sync(mut args) => {
            args.read_config(&mut layouts)?;
            Command::Sync(args)
        }
        Command::Copy(mut args) => {
            args.use_layouts(&mut layouts)?;
            Command::Copy(args)
        }
        Command::Tags(mut args) => {
            if let Some(arg) = layout::LayoutArg::parse(&args.repository) {
                args.repository = layouts.repository(&arg?)?;
            }
            Command::Tags(args)
        }
        Command::Serve(args) => {
            refuse_unapplied("serve", &given, &["--rate", "--ca-file", "--idle-timeout"])?;
            return commands::service::serve(args, rates, &ca_files, idle_timeout).await;
        }
        other => other,
    };
    let mut hosts = command.hosts()?;
    // A layout has no credentials and no rate.
    hosts.retain(|h| layouts.root(h).is_none());
    let mirror = docker_hub_proxy()?;
    // The mirror is authenticated with its own host's credentials.
    hosts.extend(mirror.as_ref().map(|m| m.authority.clone()));
    let mut insecure = settings.insecure;
    insecure.extend(cli.insecure);
    let config = wit::Config {
        user_agent: format!("ocirelay/{}", env!("CARGO_PKG_VERSION")),
        credentials: credentials::load(&hosts)?,
        insecure_registries: insecure,
        cache: !cli.no_cache,
        concurrency: cli.concurrency,
        retry_deadline_secs: cli.retry_deadline,
        docker_hub_proxy: mirror.as_ref().map(ToString::to_string),
        // The hook applies the policy, shared by every instance.
        policy: None,
        // The hook checks every upload's bytes, and blob reads when asked,
        // at native speed.
        uploads_verified_by_host: true,
        downloads_verified_by_host: true,
        // The hook applies --idle-timeout to every request.
        request_timeout_secs: 0,
        uploads: settings
            .uploads
            .iter()
            .map(|u| wit::UploadRule {
                registry: u.registry.clone(),
                chunk_size: u.chunk_size,
                monolithic_up_to: u.monolithic_up_to,
            })
            .collect(),
    };
    let allowed = hosts
        .iter()
        .map(String::as_str)
        .chain(mirror.as_ref().map(|m| m.authority.as_str()));
    let deadline = std::time::Duration::from_secs(cli.retry_deadline.into());
    let policy = policy::Policy::new(rates, allowed).with_deadline(deadline);
    if let Some(m) = &mirror {
        policy.charge_to(&m.authority, ocirelay_core::reference::DOCKER_HUB);
    }
    let layouts = std::sync::Arc::new(layouts);
    let runtime = Runtime::with_layouts(policy, &ca_files, idle_timeout, layouts.clone())?;
    runtime.adaptive().set_ceiling(cli.concurrency as usize);
    let done = match command {
        Command::Lookup(args) => commands::lookup::run(&runtime, config, args).await,
        Command::Index(args) => commands::index::run(&runtime, config, args).await,
        Command::Copy(args) => commands::copy::run(&runtime, config, args).await,
        Command::Tags(args) => commands::tags::run(&runtime, config, args).await,
        Command::Deploy(args) => commands::deploy::run(&runtime, config, args).await,
        Command::Sync(args) => commands::sync::run(&runtime, config, args).await,
        Command::Serve(_) | Command::BuildService(_) => {
            unreachable!("served above, without the registry runtime")
        }
    };
    runtime.log_host_calls();
    // Errors name layouts as the user did.
    done.map_err(|e| match layouts.is_empty() {
        true => e,
        false => HostError::Shown {
            message: layouts.shown(&e.to_string()),
            exit_code: e.exit_code(),
        },
    })
}
