//! Runs the embedded component: one engine per process, the component
//! compiled once and cached on disk, instances made from a pre-instantiated
//! handle, every outgoing request through [`crate::hooks::Hooks`].

use std::sync::atomic::Ordering;
use std::sync::Arc;

use wasmtime::component::ResourceTable;
use wasmtime::{Engine, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::adaptive::Adaptive;
use crate::error::HostError;
use crate::hooks::{Hooks, Outbound, Traffic};
use crate::layout::Layouts;
use crate::lines::LineStderr;
use crate::policy::Policy;

wasmtime::component::bindgen!({
    path: "../wit",
    world: "relay",
    exports: { default: async },
    // `blob-reader.write-to` takes the streams wasmtime-wasi serves.
    with: { "wasi:io": wasmtime_wasi::p2::bindings::io },
});

pub use exports::ocirelay::registry::registry as wit;

/// The component this binary was built with.
const COMPONENT_WASM: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/ocirelay_component.wasm"));

/// Per-instance state: WASI, wasi-http, and our hooks.
pub struct State {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    hooks: Hooks,
}

impl State {
    /// WASI with stderr only (no files, environment or arguments: the
    /// proxy world has none), and `hooks` for outgoing requests.
    pub fn new(hooks: Hooks) -> Self {
        State::built(hooks, WasiCtx::builder().inherit_stderr().build())
    }

    /// [`State::new`], the component's stderr going to `stderr` instead of
    /// the process's.
    pub fn with_stderr(hooks: Hooks, stderr: wasmtime_wasi::p2::pipe::MemoryOutputPipe) -> Self {
        State::built(hooks, WasiCtx::builder().stderr(stderr).build())
    }

    fn built(hooks: Hooks, wasi: WasiCtx) -> Self {
        State {
            wasi,
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            hooks,
        }
    }
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for State {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

/// The engine, the ready-to-instantiate component and the pooled HTTP client.
pub struct Runtime {
    engine: Engine,
    pre: RelayPre<State>,
    /// What every instance's hook shares: the client, the counters, the
    /// rate limits and allowed hosts.
    outbound: Arc<Outbound>,
    /// Whether the hook checks uploads, and blob reads when asked (the
    /// component is told so).
    host_checks: bool,
    /// Whether the hook lies that it checked blob reads (tests).
    #[cfg(test)]
    forging: bool,
}

impl Runtime {
    /// Loads the component (from the compilation cache when possible);
    /// HTTPS trusts the system's roots and the certificates of `ca_files`.
    /// A try that makes no progress for `idle_timeout` fails (and is retried).
    #[cfg(test)]
    pub fn new(
        policy: Policy,
        ca_files: &[std::path::PathBuf],
        idle_timeout: std::time::Duration,
    ) -> Result<Self, HostError> {
        Runtime::with_layouts(policy, ca_files, idle_timeout, Arc::default())
    }

    /// [`Runtime::new`], answering requests to `layouts`' names from their
    /// directories.
    pub fn with_layouts(
        policy: Policy,
        ca_files: &[std::path::PathBuf],
        idle_timeout: std::time::Duration,
        layouts: Arc<Layouts>,
    ) -> Result<Self, HostError> {
        let (engine, pre) = proxy_world_pre(COMPONENT_WASM, None)?;
        let pre =
            RelayPre::new(pre).map_err(HostError::runtime("binding the component's exports"))?;
        Ok(Runtime {
            engine,
            pre,
            outbound: Outbound::new(policy, ca_files, idle_timeout, layouts)?,
            host_checks: true,
            #[cfg(test)]
            forging: false,
        })
    }

    /// What every instance of this runtime sent, for progress reports.
    pub fn traffic(&self) -> &Arc<Traffic> {
        self.outbound.traffic()
    }

    /// How many requests each registry gets at once (see [`Adaptive`]).
    pub fn adaptive(&self) -> &Arc<Adaptive> {
        self.outbound.adaptive()
    }

    /// The OCI layouts this runtime answers for: how to show their names.
    pub fn layouts(&self) -> &Arc<Layouts> {
        self.outbound.layouts()
    }

    /// Logs (at debug) the calls the component made into the host, per MiB
    /// it had sent: the figure that bounds a streamed copy's CPU.
    pub fn log_host_calls(&self) {
        let traffic = self.traffic();
        let calls = traffic.host_calls.load(Ordering::Relaxed);
        let sent = traffic.bytes_sent.load(Ordering::Relaxed);
        let mib = sent as f64 / (1024.0 * 1024.0);
        let per_mib = if mib >= 1.0 { calls as f64 / mib } else { 0.0 };
        tracing::debug!(
            host_calls = calls,
            bytes_sent = sent,
            requests = traffic.requests.load(Ordering::Relaxed),
            "guest-to-host calls: {calls} ({per_mib:.0} per MiB sent)"
        );
    }

    /// A runtime whose hook leaves uploads unchecked, and whose component
    /// is not told that blob reads can be, as another wasi-http host: the
    /// component must check them itself.
    #[cfg(test)]
    fn without_host_checks(mut self) -> Self {
        self.host_checks = false;
        self
    }

    /// A runtime whose hook says every blob read was checked, and checks
    /// none: what a registry's own say-so would be, passed on by a host.
    #[cfg(test)]
    fn with_forging_hook(mut self) -> Self {
        self.forging = true;
        self
    }

    /// A new instance with one client of the given configuration (the
    /// component is told whether this runtime's hook checks bodies).
    pub async fn session(&self, config: wit::Config) -> Result<Session, HostError> {
        self.session_with_stderr(config, None).await
    }

    /// [`Runtime::session`], the component's stderr lines handed to
    /// `stderr` when given (else written out, layouts named as given).
    pub async fn session_with_stderr(
        &self,
        mut config: wit::Config,
        stderr: Option<LineStderr>,
    ) -> Result<Session, HostError> {
        let mut hooks = Hooks::new(self.outbound.clone());
        hooks.verify_uploads = self.host_checks;
        #[cfg(test)]
        {
            hooks.forge_body_verified = self.forging;
        }
        config.uploads_verified_by_host = self.host_checks;
        config.downloads_verified_by_host = self.host_checks;
        let layouts = self.outbound.layouts().clone();
        let stderr = stderr.or_else(|| {
            // What the component says names layouts as the user did.
            let shown = move |line: &str| eprint!("{}", layouts.shown(line));
            (!self.outbound.layouts().is_empty()).then(|| LineStderr::new(shown))
        });
        let state = match stderr {
            None => State::new(hooks),
            Some(stderr) => State::built(hooks, WasiCtx::builder().stderr(stderr).build()),
        };
        let mut store = Store::new(&self.engine, state);
        if tracing::enabled!(tracing::Level::DEBUG) {
            let traffic = self.traffic().clone();
            store.call_hook(move |_, hook| {
                if matches!(hook, wasmtime::CallHook::CallingHost) {
                    traffic.host_calls.fetch_add(1, Ordering::Relaxed);
                }
                Ok(())
            });
        }
        let relay = self
            .pre
            .instantiate_async(&mut store)
            .await
            .map_err(HostError::runtime("instantiating the component"))?;
        let client = relay
            .ocirelay_registry_registry()
            .client()
            .call_constructor(&mut store, &config)
            .await
            .map_err(HostError::runtime("creating a client"))?;
        Ok(Session {
            store,
            relay,
            client,
        })
    }
}

mod compile;
mod session;
#[cfg(test)]
mod tests;

pub use compile::proxy_world_pre;
pub use session::{Reader, Session};

/// What tests check of a component meant for any wasi-http host.
#[cfg(test)]
pub(crate) mod proxy_world {
    use wasmtime::component::Component;
    use wasmtime::Engine;

    /// The exports of `wasm`, once its imports are shown to be the proxy
    /// world's (outgoing HTTP among them).
    pub fn exports_of(wasm: &[u8]) -> Vec<String> {
        let engine = Engine::default();
        let component = Component::new(&engine, wasm).expect("the component compiles");
        let ty = component.component_type();
        let imports: Vec<String> = ty
            .imports(&engine)
            .map(|(name, _)| name.to_string())
            .collect();
        for import in &imports {
            let (interface, version) = import.split_once('@').unwrap_or((import, ""));
            assert!(
                ocirelay_componentize::PROXY_WORLD.contains(&interface)
                    && version.starts_with("0.2."),
                "{import} is not in the wasi:http/proxy world: {imports:#?}"
            );
        }
        assert!(
            imports
                .iter()
                .any(|i| i.starts_with("wasi:http/outgoing-handler@")),
            "{imports:?}"
        );
        ty.exports(&engine)
            .map(|(name, _)| name.to_string())
            .collect()
    }
}
