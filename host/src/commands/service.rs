//! `ocirelay serve` and `ocirelay build-service`: the edge service
//! (`service/`), composed with its configuration, served on our host or
//! written out for any wasi-http host (`wasmtime serve`, Spin-style hosts).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ocirelay_core::service::ServiceConfig;

use crate::error::HostError;
use crate::policy::Policy;
use crate::runtime::wit;
use crate::serve::{bind, Capacity, Server};
use ocirelay_componentize as componentize;

/// The service's core module (the registry client linked in), awaiting its
/// configuration: `componentize` settles it in and makes the component.
const SERVICE_MODULE: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/ocirelay_service_module.wasm"));

const CONFIG_HELP: &str = "\
CONFIG is a JSON file (default: Docker Hub's official images, library/*):
  {\"upstreams\": [{\"registry\": \"docker.io\", \"repositories\": [\"library/*\"],
                  \"redirect-blobs\": true},
                 {\"registry\": \"registry.example:5000\", \"repositories\": [\"team/*\"],
                  \"insecure\": false}],
   \"docker-hub-proxy\": null, \"tag-max-age\": 60, \"stale-if-error\": 86400,
   \"retry-deadline-secs\": 2}
The first upstream serves requests without `?ns=`; a repository pattern is
`*`, `prefix/*` or a name; `redirect-blobs` sends a client whose blob read
the upstream redirects to storage there too. Routes: GET /index/REF,
GET|HEAD /manifest/REF, GET /blob/REF@DIGEST, and the registry API's GET|HEAD
/v2/NAME/manifests/REF, /v2/NAME/blobs/DIGEST (ranges too),
/v2/NAME/tags/list and /v2/NAME/referrers/DIGEST (a read-through mirror).
`serve` writes a line per request on stdout: method, path, status, bytes
sent, duration, each request made upstream with its status, and warnings
(an answer cut short).";

/// Arguments of `ocirelay serve`.
#[derive(Debug, clap::Args)]
#[command(after_long_help = CONFIG_HELP)]
pub struct ServeArgs {
    /// Address to listen on (port 0: any free port; the one bound is printed on stderr).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,
    /// Requests served at once, each by a component instance of its own
    /// (1 to 4096); a request beyond waits for one.
    #[arg(long, value_name = "N", default_value_t = 128,
          value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub instances: u32,
    /// Seconds a request beyond --instances waits before it is answered
    /// 503 with a Retry-After (0 to 600).
    #[arg(long, value_name = "SECS", default_value_t = 5,
          value_parser = clap::value_parser!(u64).range(0..=600))]
    pub queue_wait: u64,
    /// How the request log on stdout is written: `text` (key=value pairs)
    /// or `json` (one object per line).
    #[arg(long, value_name = "FORMAT", default_value = "text")]
    pub log_format: ocirelay_core::service::log::Format,
    /// The service's configuration (JSON).
    #[arg(value_name = "CONFIG")]
    pub config: Option<PathBuf>,
}

/// Arguments of `ocirelay build-service`.
#[derive(Debug, clap::Args)]
#[command(after_long_help = CONFIG_HELP)]
pub struct BuildServiceArgs {
    /// Where to write the composed component (`.wasm`).
    #[arg(long, short, value_name = "FILE")]
    pub output: PathBuf,
    /// The service's configuration (JSON).
    #[arg(value_name = "CONFIG")]
    pub config: Option<PathBuf>,
}

/// The configuration's text and what it says; the default without a file.
pub fn load_config(path: Option<&Path>) -> Result<(String, ServiceConfig), HostError> {
    let text = match path {
        None => componentize::DEFAULT_CONFIG.to_string(),
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| HostError::Usage(format!("service config {}: {e}", path.display())))?,
    };
    let what = |p: Option<&Path>| match p {
        Some(p) => format!("service config {}", p.display()),
        None => "the default service config".to_string(),
    };
    let config = ServiceConfig::parse(&text).map_err(|e| HostError::bad_file(what(path), e))?;
    Ok((text, config))
}

/// The service with `config_text` settled in, told whether the host
/// verifies downloads (only ocirelay's own, in `serve`: a written `.wasm`
/// may run anywhere).
fn composed(config_text: &str, host_verifies: bool) -> Result<Vec<u8>, HostError> {
    let config = componentize::Config {
        json: config_text,
        host_verifies,
    };
    componentize::component(SERVICE_MODULE, Some(config)).map_err(HostError::Internal)
}

/// Writes the composed service, saying on stderr how large it is and how
/// many core modules an instance of it instantiates (what a pooling host
/// counts against its limit of core instances).
pub fn build(args: BuildServiceArgs) -> Result<(), HostError> {
    let (text, _) = load_config(args.config.as_deref())?;
    let wasm = composed(&text, false)?;
    let modules = componentize::core_modules(&wasm).map_err(HostError::Internal)?;
    std::fs::write(&args.output, &wasm)
        .map_err(|e| HostError::Setup(format!("writing {}: {e}", args.output.display())))?;
    eprintln!(
        "ocirelay: wrote {} ({} KB, {modules} core modules per instance)",
        args.output.display(),
        wasm.len() / 1000
    );
    Ok(())
}

/// `text` with the docker config's credentials for the upstreams that it
/// gives none: composed in memory for `serve`, never written anywhere.
fn with_docker_credentials(text: &str, config: &ServiceConfig) -> Result<String, HostError> {
    use ocirelay_core::reference::is_docker_hub;
    use serde_json::{json, Value};
    let upstreams: Vec<String> = config
        .upstreams
        .iter()
        .map(|u| u.registry.clone())
        .collect();
    let found = crate::credentials::load(&upstreams)?;
    let mut value: Value = serde_json::from_str(text)
        .map_err(|e| HostError::Internal(format!("a parsed config is not JSON: {e}")))?;
    let Some(root) = value.as_object_mut() else {
        return Err(HostError::Internal(
            "a parsed config is not an object".into(),
        ));
    };
    let given = root.entry("credentials").or_insert_with(|| json!({}));
    let Some(given) = given.as_object_mut() else {
        return Err(HostError::Internal(
            "a parsed config's credentials are not an object".into(),
        ));
    };
    for upstream in &upstreams {
        let same = |h: &str| h == upstream || (is_docker_hub(h) && is_docker_hub(upstream));
        if config.credentials.iter().any(|(h, _)| same(h)) {
            continue;
        }
        let Some((_, credential)) = found.iter().find(|(h, _)| same(h)) else {
            continue;
        };
        let entry = match credential {
            wit::Credential::Basic((username, password)) => {
                json!({"username": username, "password": password})
            }
            wit::Credential::Bearer(token) => json!({"token": token}),
            wit::Credential::IdentityToken(token) => json!({"identity-token": token}),
        };
        given.insert(upstream.clone(), entry);
    }
    Ok(value.to_string())
}

/// Serves until ctrl-c, with the docker config's credentials for the
/// upstreams the configuration gives none. The policy's allow-list is the
/// configuration's upstreams (and Docker Hub proxy), whatever the
/// component asks.
pub async fn serve(
    args: ServeArgs,
    rates: Vec<ocirelay_core::rate_limit::RateSpec>,
    ca_files: &[PathBuf],
    idle_timeout: std::time::Duration,
) -> Result<(), HostError> {
    let (text, config) = load_config(args.config.as_deref())?;
    let reachable = config.reachable();
    let policy = Policy::new(rates, reachable.iter().map(String::as_str));
    if let Some(mirror) = &config.docker_hub_proxy {
        // The Docker Hub mirror spends Docker Hub's rate.
        policy.charge_to(&mirror.authority, ocirelay_core::reference::DOCKER_HUB);
    }
    let text = with_docker_credentials(&text, &config)?;
    let log = crate::access_log::Sink::new(args.log_format);
    let capacity = Capacity {
        instances: args.instances,
        queue_wait: std::time::Duration::from_secs(args.queue_wait),
    };
    let wasm = composed(&text, true)?;
    let server = Server::new(&wasm, policy, ca_files, idle_timeout, log, capacity)?;
    let listener = bind(args.addr).await?;
    Arc::new(server).run(listener).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::proxy_world;

    /// What `build-service` writes runs on any wasi-http host: it imports
    /// the proxy world only and exports its incoming handler (what
    /// `wasm-tools component targets --world wasi:http/proxy` checks).
    #[test]
    fn the_composed_service_is_a_proxy_world_component() {
        let (text, _) = load_config(None).expect("the default config parses");
        let wasm = composed(&text, false).expect("it composes");
        let exports = proxy_world::exports_of(&wasm);
        assert_eq!(exports.len(), 1, "{exports:?}");
        assert!(
            exports[0].starts_with("wasi:http/incoming-handler@0.2."),
            "{exports:?}"
        );
    }

    /// A request under a host that instantiates per request instantiates
    /// this many core modules: the service with the registry client and its
    /// configuration inside (3: its code, and wit-component's shim and
    /// fixups, which any component whose imports return lists has).
    /// Pooling hosts allow 1,000 core instances at once by default.
    #[test]
    fn the_service_instantiates_three_core_modules() {
        let (text, _) = load_config(None).expect("the default config parses");
        let modules = componentize::core_modules(&composed(&text, false).expect("it composes"));
        assert_eq!(modules, Ok(3));
    }
}
