//! Runs the embedded component: one engine per process, the component
//! compiled once and cached on disk, instances made from a pre-instantiated
//! handle, every outgoing request through [`crate::hooks::Hooks`].

use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use sha2::{Digest as _, Sha256};
use wasmtime::component::{Component, Linker, ResourceAny, ResourceTable};
use wasmtime::{Config, Engine, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use ocirelay_core::index::Index;
use ocirelay_core::ops::batch::{Answer, Query};
use ocirelay_core::ops::lookup::LookupOptions;
use ocirelay_core::{Descriptor, Reference};

use crate::error::HostError;
use crate::hooks::{Hooks, Outbound, Traffic};
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
    pub fn new(
        policy: Policy,
        ca_files: &[std::path::PathBuf],
        idle_timeout: std::time::Duration,
    ) -> Result<Self, HostError> {
        let (engine, pre) = proxy_world_pre(COMPONENT_WASM, None)?;
        let pre =
            RelayPre::new(pre).map_err(HostError::runtime("binding the component's exports"))?;
        Ok(Runtime {
            engine,
            pre,
            outbound: Outbound::new(policy, ca_files, idle_timeout)?,
            host_checks: true,
            #[cfg(test)]
            forging: false,
        })
    }

    /// What every instance of this runtime sent, for progress reports.
    pub fn traffic(&self) -> &Arc<Traffic> {
        self.outbound.traffic()
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
    pub async fn session(&self, mut config: wit::Config) -> Result<Session, HostError> {
        let mut hooks = Hooks::new(self.outbound.clone());
        hooks.verify_uploads = self.host_checks;
        #[cfg(test)]
        {
            hooks.forge_body_verified = self.forging;
        }
        config.uploads_verified_by_host = self.host_checks;
        config.downloads_verified_by_host = self.host_checks;
        let mut store = Store::new(&self.engine, State::new(hooks));
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

/// One component instance and its client.
pub struct Session {
    store: Store<State>,
    relay: Relay,
    client: ResourceAny,
}

/// A found object: a reader of its descriptor and content in the component
/// (checked against the digest as it is read).
pub struct Reader {
    resource: ResourceAny,
}

impl Session {
    /// What `reader` found, as JSON (`ocirelay lookup --head` prints it):
    /// its `data` included when the object was read earlier in this session.
    pub async fn descriptor_json(&mut self, reader: &Reader) -> Result<String, HostError> {
        self.relay
            .ocirelay_registry_registry()
            .blob_reader()
            .call_descriptor_json(&mut self.store, reader.resource)
            .await
            .map_err(HostError::runtime("reading a descriptor"))
    }

    /// Looks `reference` up; `None` when it does not exist.
    pub async fn lookup(
        &mut self,
        reference: &Reference,
        options: LookupOptions,
    ) -> Result<Option<Reader>, HostError> {
        let found = self
            .relay
            .ocirelay_registry_registry()
            .client()
            .call_lookup(
                &mut self.store,
                self.client,
                &reference.into(),
                options.into(),
            )
            .await
            .map_err(HostError::runtime("calling lookup"))??;
        match found {
            Some(resource) => Ok(Some(Reader { resource })),
            None => Ok(None),
        }
    }

    /// The synthesized index of `reference`; `None` when it does not exist.
    pub async fn synthesize_index(
        &mut self,
        reference: &Reference,
    ) -> Result<Option<Index>, HostError> {
        let index = self
            .relay
            .ocirelay_registry_registry()
            .client()
            .call_synthesize_index(&mut self.store, self.client, &reference.into())
            .await
            .map_err(HostError::runtime("calling synthesize-index"))??;
        index.as_ref().map(TryInto::try_into).transpose()
    }

    /// Runs `queries` side by side in the component; one outcome each, in order.
    pub async fn batch(
        &mut self,
        queries: &[Query],
    ) -> Result<Vec<Result<Option<Answer<Reader>>, HostError>>, HostError> {
        let queries: Vec<wit::Query> = queries.iter().map(Into::into).collect();
        let results = self
            .relay
            .ocirelay_registry_registry()
            .client()
            .call_batch(&mut self.store, self.client, &queries)
            .await
            .map_err(HostError::runtime("calling batch"))?;
        let mut out = Vec::with_capacity(results.len());
        for result in results {
            out.push(match result {
                Ok(Some(wit::Answer::Found(resource))) => {
                    Ok(Some(Answer::Found(Reader { resource })))
                }
                Ok(Some(wit::Answer::Index(index))) => {
                    (&index).try_into().map(|i| Some(Answer::Index(i)))
                }
                Ok(None) => Ok(None),
                Err(e) => Err(HostError::from(e)),
            });
        }
        Ok(out)
    }

    /// Copies manifest `src` (with all its children) to `dst`.
    pub async fn copy_manifest(
        &mut self,
        src: &Reference,
        dst: &Reference,
    ) -> Result<Descriptor, HostError> {
        let children = wit::ChildRefs {
            by_digest: Vec::new(),
            fallback: None,
        };
        let d = self
            .relay
            .ocirelay_registry_registry()
            .client()
            .call_copy_manifest(
                &mut self.store,
                self.client,
                &src.into(),
                &dst.into(),
                &children,
            )
            .await
            .map_err(HostError::runtime("calling copy-manifest"))??;
        (&d).try_into()
    }

    /// Runs a deploy input stream (see `client.deploy`): one result per ref.
    pub async fn deploy(
        &mut self,
        input: &str,
        options: wit::DeployOptions,
    ) -> Result<Vec<wit::DeployResult>, HostError> {
        Ok(self
            .relay
            .ocirelay_registry_registry()
            .client()
            .call_deploy(&mut self.store, self.client, input, options)
            .await
            .map_err(HostError::runtime("calling deploy"))??)
    }

    /// Copies blob `src` to `dst`.
    pub async fn copy_blob(
        &mut self,
        src: &Reference,
        dst: &Reference,
    ) -> Result<Descriptor, HostError> {
        let d = self
            .relay
            .ocirelay_registry_registry()
            .client()
            .call_copy_blob(&mut self.store, self.client, &src.into(), &dst.into())
            .await
            .map_err(HostError::runtime("calling copy-blob"))??;
        (&d).try_into()
    }

    /// The tags of `repository` (see `client.list-tags`); `None` when it
    /// does not exist.
    pub async fn list_tags(
        &mut self,
        repository: &Reference,
        options: &wit::TagsOptions,
    ) -> Result<Option<wit::TagList>, HostError> {
        Ok(self
            .relay
            .ocirelay_registry_registry()
            .client()
            .call_list_tags(&mut self.store, self.client, &repository.into(), options)
            .await
            .map_err(HostError::runtime("calling list-tags"))??)
    }

    /// Copies what refers to `src` into `dst`'s repository (see
    /// `client.copy-referrers`).
    pub async fn copy_referrers(
        &mut self,
        src: &Reference,
        dst: &Reference,
    ) -> Result<wit::CopiedReferrers, HostError> {
        Ok(self
            .relay
            .ocirelay_registry_registry()
            .client()
            .call_copy_referrers(&mut self.store, self.client, &src.into(), &dst.into())
            .await
            .map_err(HostError::runtime("calling copy-referrers"))??)
    }

    /// The referrers of `subject` (see `client.list-referrers`); `None`
    /// when its tag does not exist.
    pub async fn list_referrers(
        &mut self,
        subject: &Reference,
        artifact_type: Option<&str>,
    ) -> Result<Option<wit::Referrers>, HostError> {
        Ok(self
            .relay
            .ocirelay_registry_registry()
            .client()
            .call_list_referrers(&mut self.store, self.client, &subject.into(), artifact_type)
            .await
            .map_err(HostError::runtime("calling list-referrers"))??)
    }

    /// The next chunk of `reader`'s content; empty at the end (which is
    /// where a digest or size mismatch is reported).
    pub async fn read(&mut self, reader: &Reader, max: u64) -> Result<Vec<u8>, HostError> {
        Ok(self
            .relay
            .ocirelay_registry_registry()
            .blob_reader()
            .call_read(&mut self.store, reader.resource, max)
            .await
            .map_err(HostError::runtime("reading content"))??)
    }

    /// Releases `reader` in the component.
    pub async fn close(&mut self, reader: Reader) -> Result<(), HostError> {
        reader
            .resource
            .resource_drop_async(&mut self.store)
            .await
            .map_err(HostError::runtime("closing a reader"))
    }
}

/// An engine and `wasm` compiled and pre-instantiated against only the
/// `wasi:http/proxy` world, as an edge runtime offers it: what runs here
/// runs in any wasi-http host. With `pool`, instances come from a pool of
/// that many, their memories reserved once and reused: a server making an
/// instance per request then spends no mmap/munmap on each.
pub fn proxy_world_pre(
    wasm: &[u8],
    pool: Option<u32>,
) -> Result<(Engine, wasmtime::component::InstancePre<State>), HostError> {
    let mut config = Config::new();
    config.wasm_component_model(true);
    if let Some(instances) = pool {
        // The service is three core instances (its code, wit-component's
        // shim and fixups) and one memory; the margin is for a component
        // of another shape given to the same pool.
        let mut pooling = wasmtime::PoolingAllocationConfig::default();
        pooling
            .total_component_instances(instances)
            .total_core_instances(instances * 32)
            .total_memories(instances * 8)
            .total_tables(instances * 8)
            .total_stacks(instances);
        config.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pooling));
    }
    let engine = Engine::new(&config).map_err(HostError::runtime("creating the wasm engine"))?;
    let component = load_component(&engine, wasm)?;
    let mut linker = Linker::<State>::new(&engine);
    wasmtime_wasi_http::p2::add_to_linker_async(&mut linker)
        .map_err(HostError::runtime("linking the wasi:http/proxy world"))?;
    let pre = linker
        .instantiate_pre(&component)
        .map_err(HostError::runtime("pre-instantiating the component"))?;
    Ok((engine, pre))
}

/// Compiles `wasm`, or loads the copy compiled by an earlier run. The cache
/// key covers the component's bytes and everything about the engine that
/// makes compiled code incompatible.
fn load_component(engine: &Engine, wasm: &[u8]) -> Result<Component, HostError> {
    let Some(dir) = cache_dir() else {
        return Component::new(engine, wasm).map_err(HostError::runtime("compiling the component"));
    };
    let mut engine_hash = std::collections::hash_map::DefaultHasher::new();
    engine
        .precompile_compatibility_hash()
        .hash(&mut engine_hash);
    let wasm_hash = Sha256::digest(wasm);
    let name = format!(
        "component-{}-{:016x}.cwasm",
        wasm_hash
            .iter()
            .take(12)
            .map(|b| format!("{b:02x}"))
            .collect::<String>(),
        engine_hash.finish()
    );
    let path = dir.join(name);
    if path.exists() {
        // SAFETY: the file was written by `Component::serialize` of this very
        // component for an engine of the same compatibility hash, into a
        // directory only we write; a stale or foreign file fails wasmtime's
        // own header check and is replaced below.
        match unsafe { Component::deserialize_file(engine, &path) } {
            Ok(c) => return Ok(c),
            Err(e) => tracing::debug!("compiled component cache unusable ({e:#}); recompiling"),
        }
    }
    let component =
        Component::new(engine, wasm).map_err(HostError::runtime("compiling the component"))?;
    if let Ok(bytes) = component.serialize() {
        // Write then rename, so a concurrent run never maps a half-written file.
        let tmp = dir.join(format!(".tmp-{}", std::process::id()));
        let written = std::fs::create_dir_all(&dir)
            .and_then(|()| std::fs::write(&tmp, &bytes))
            .and_then(|()| std::fs::rename(&tmp, &path));
        if let Err(e) = written {
            tracing::debug!(
                "not caching the compiled component in {}: {e}",
                dir.display()
            );
            let _ = std::fs::remove_file(&tmp);
        }
    }
    Ok(component)
}

/// `$OCIRELAY_CACHE_DIR`, else `$XDG_CACHE_HOME/ocirelay`, else `~/.cache/ocirelay`.
fn cache_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("OCIRELAY_CACHE_DIR") {
        return Some(PathBuf::from(d));
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME") {
        return Some(PathBuf::from(d).join("ocirelay"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache").join("ocirelay"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A multi-threaded tokio runtime, as the CLI runs on.
    fn tokio_runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime")
    }

    /// A runtime trusting the tests' CA whose hook lets `hosts` through.
    fn runtime_for(hosts: &[&str]) -> Runtime {
        let policy = Policy::new(Vec::new(), hosts.iter().copied());
        let ca = [ocirelay_tests::tls::ca_file().to_path_buf()];
        let idle = std::time::Duration::from_secs(60);
        Runtime::new(policy, &ca, idle).expect("the runtime")
    }

    /// A session's config as the CLI gives it, defaults throughout.
    fn test_config() -> wit::Config {
        wit::Config {
            user_agent: "test".into(),
            credentials: Vec::new(),
            insecure_registries: Vec::new(),
            cache: true,
            concurrency: 0,
            retry_deadline_secs: 0,
            docker_hub_proxy: None,
            policy: None,
            uploads_verified_by_host: true,
            downloads_verified_by_host: true,
            request_timeout_secs: 0,
        }
    }

    /// An embedder whose hook applies no policy of its own (ours is told to
    /// let both hosts through) still gets the allow-list and the rate limit,
    /// from the component's configured policy.
    #[test]
    fn the_component_applies_its_own_policy_for_embedders() {
        use std::time::{Duration, Instant};
        let registry = ocirelay_tests::Registry::start(ocirelay_tests::Auth::None);
        let stranger = "127.0.0.1:1";
        let rt = tokio_runtime();
        rt.block_on(async {
            let hook_policy = Policy::new(Vec::new(), [registry.host(), stranger]);
            let idle = std::time::Duration::from_secs(60);
            let ca = [ocirelay_tests::tls::ca_file().to_path_buf()];
            let runtime = Runtime::new(hook_policy, &ca, idle).expect("the runtime");
            let config = wit::Config {
                user_agent: "embedder".into(),
                cache: false,
                policy: Some(wit::Policy {
                    allowed_hosts: vec![registry.host().to_string()],
                    rate_limits: vec![wit::RateLimit {
                        host: registry.host().to_string(),
                        requests: 2,
                        period_ms: 1000,
                    }],
                }),
                ..test_config()
            };
            let mut session = runtime.session(config.clone()).await.expect("a session");
            let head = LookupOptions {
                kind: ocirelay_core::ops::lookup::LookupKind::Manifest,
                head: true,
            };
            let elsewhere = ocirelay_core::Reference::parse(&format!("{stranger}/x:y")).unwrap();
            let err = session
                .lookup(&elsewhere, head)
                .await
                .err()
                .expect("refused");
            assert!(
                err.to_string().contains("not a host this client may reach"),
                "{err}"
            );
            // 6 requests at 2 per second, burst 2: at least 2 seconds.
            let started = Instant::now();
            for i in 0..6 {
                let r = ocirelay_core::Reference::parse(&registry.reference(&format!("app:t{i}")));
                let found = session.lookup(&r.unwrap(), head).await.expect("a lookup");
                assert!(found.is_none());
            }
            assert!(started.elapsed() >= Duration::from_secs(2));
            let sent = || {
                let requests = &runtime.traffic().requests;
                requests.load(std::sync::atomic::Ordering::Relaxed)
            };
            assert_eq!(sent(), 6, "the refused request never reached the hook");

            // A configuration the component cannot use: every call says why.
            let reference = ocirelay_core::Reference::parse(&registry.reference("app:v1"));
            let reference = reference.unwrap();
            let mut bad_proxy = config.clone();
            bad_proxy.docker_hub_proxy = Some("ftp://mirror.example".into());
            let mut zero_rate = config.clone();
            if let Some(p) = zero_rate.policy.as_mut() {
                p.rate_limits[0].requests = 0;
            }
            for (bad, named) in [(bad_proxy, "ftp://mirror.example"), (zero_rate, "rate 0")] {
                let mut session = runtime.session(bad).await.expect("a session");
                let err = session
                    .lookup(&reference, head)
                    .await
                    .err()
                    .expect("refused");
                assert!(err.to_string().contains(named), "{err}");
            }
            assert_eq!(sent(), 6, "nothing sent under a bad configuration");
        });
    }

    /// In a host that checks no upload, the component hashes what it
    /// streams itself, and abandons an upload whose bytes do not match
    /// before its last byte: nothing corrupt is completed at a destination
    /// that verifies nothing either.
    #[test]
    fn without_the_hooks_check_the_component_checks_uploads_itself() {
        use ocirelay_tests::fault_proxy::{Fault, FaultProxy};
        let src = ocirelay_tests::Registry::start_plain(ocirelay_tests::Auth::None);
        let layer = ocirelay_tests::bytes(8, 3 << 20);
        ocirelay_tests::push_image(&src, "app", "v1", &[&layer]);
        let digest = ocirelay_core::Digest::sha256(&layer);
        src.corrupt_blob(&digest, (3 << 20) - 1);
        let dst = ocirelay_tests::Registry::start_plain(ocirelay_tests::Auth::None);
        let front = FaultProxy::start(dst.host());
        let stored = vec![("Docker-Content-Digest".to_string(), digest.to_string())];
        let upload = format!("digest={digest}");
        front.add("PUT", &upload, Fault::Serve(201, stored, Vec::new()), 10);
        let rt = tokio_runtime();
        rt.block_on(async {
            let host_front = front.host();
            let policy = Policy::new(Vec::new(), [src.host(), host_front.as_str()]);
            let idle = std::time::Duration::from_secs(60);
            let runtime = Runtime::new(policy, &[], idle)
                .expect("the runtime")
                .without_host_checks();
            let config = test_config();
            let mut session = runtime.session(config).await.expect("a session");
            let from = Reference::parse(&src.reference(&format!("app@{digest}"))).unwrap();
            let to = Reference::parse(&format!("{host_front}/copy")).unwrap();
            let Err(err) = session.copy_blob(&from, &to).await else {
                panic!("a corrupt upload went through")
            };
            assert!(
                err.to_string().contains("does not match its digest"),
                "{err}"
            );
            assert_eq!(err.exit_code(), 1);
        });
        let completed = front
            .settled_log()
            .iter()
            .filter(|l| l.starts_with("PUT ") && !l.contains("body ended after"))
            .count();
        let cut = front
            .settled_log()
            .iter()
            .filter(|l| l.contains("body ended after"))
            .count();
        assert_eq!(
            completed,
            cut,
            "every PUT that arrived ended short: {:#?}",
            front.log()
        );
    }

    /// A streamed blob read is checked by the hook when the component is
    /// told it is, else by the component: either way a corrupt blob fails
    /// at its end. The words say who found it (the hook names the bytes'
    /// digest).
    #[test]
    fn a_corrupt_blob_read_fails_whoever_checks_it() {
        use ocirelay_core::ops::lookup::LookupKind;
        let src = ocirelay_tests::Registry::start(ocirelay_tests::Auth::None);
        // Larger than the 4 MiB read whole: streamed.
        let layer = ocirelay_tests::bytes(11, 6 << 20);
        ocirelay_tests::push_image(&src, "app", "v1", &[&layer]);
        let digest = ocirelay_core::Digest::sha256(&layer);
        src.corrupt_blob(&digest, layer.len() - 1);
        let blob = Reference::parse(&src.reference(&format!("app@{digest}"))).unwrap();
        let ca = src.ca_file().map(std::path::Path::to_path_buf);
        let rt = tokio_runtime();
        rt.block_on(async {
            // Checked by the host; by the component; by the component
            // whatever a host says, unless told to believe the host; and,
            // told to believe a host that lies, by no one: the corrupt blob
            // reads to its end (why only ocirelay's own host says so).
            for (host_checks, forging) in
                [(true, false), (false, false), (false, true), (true, true)]
            {
                let policy = Policy::new(Vec::new(), [src.host()]);
                let idle = std::time::Duration::from_secs(60);
                let mut runtime = Runtime::new(policy, ca.as_slice(), idle).expect("the runtime");
                if !host_checks {
                    runtime = runtime.without_host_checks();
                }
                if forging {
                    runtime = runtime.with_forging_hook();
                }
                let mut session = runtime.session(test_config()).await.expect("a session");
                let read = LookupOptions {
                    kind: LookupKind::Blob,
                    head: false,
                };
                let reader = session
                    .lookup(&blob, read)
                    .await
                    .expect("found")
                    .expect("there");
                let mut handed_out = 0;
                let err = loop {
                    match session.read(&reader, 1 << 20).await {
                        Ok(chunk) if chunk.is_empty() => break None,
                        Ok(chunk) => handed_out += chunk.len(),
                        Err(e) => break Some(e.to_string()),
                    }
                };
                let Some(err) = err else {
                    assert!(host_checks && forging, "a corrupt blob read to its end");
                    assert_eq!(handed_out, layer.len());
                    continue;
                };
                assert!(err.contains("content does not match"), "{err}");
                let by_hook = err.contains("the bytes are sha256:");
                assert_eq!(by_hook, host_checks, "{err}");
                // The hook withholds the last frame; the component hands
                // out every byte, then fails the read after the last.
                if host_checks {
                    assert!(handed_out < layer.len(), "{handed_out}");
                } else {
                    assert_eq!(handed_out, layer.len());
                }
            }
        });
    }

    /// Whatever the component asks for, our hook sends only to the hosts
    /// the command named (and those they sent it to).
    #[test]
    fn the_hook_refuses_hosts_outside_its_allow_list() {
        let named = ocirelay_tests::Registry::start(ocirelay_tests::Auth::None);
        let other = ocirelay_tests::Registry::start(ocirelay_tests::Auth::None);
        let rt = tokio_runtime();
        rt.block_on(async {
            let runtime = runtime_for(&[named.host()]);
            let config = test_config();
            let mut session = runtime.session(config).await.expect("a session");
            let head = LookupOptions {
                kind: ocirelay_core::ops::lookup::LookupKind::Manifest,
                head: true,
            };
            let elsewhere = Reference::parse(&other.reference("app:v1")).unwrap();
            let err = session
                .lookup(&elsewhere, head)
                .await
                .err()
                .expect("refused");
            assert!(
                err.to_string().contains(&format!(
                    "cannot reach {}: request denied by the host",
                    other.host()
                )),
                "{err}"
            );
            assert!(other.access_log().is_empty(), "nothing reached it");
            let here = Reference::parse(&named.reference("app:v1")).unwrap();
            assert!(session
                .lookup(&here, head)
                .await
                .expect("allowed")
                .is_none());
        });
    }

    /// What the CLI prints for `query` (as `lookup` and `index` do).
    async fn printed(session: &mut Session, query: &Query) -> Vec<u8> {
        let answer = match query {
            Query::Lookup(r, o) => session.lookup(r, *o).await.unwrap().map(Answer::Found),
            Query::SynthesizeIndex(r) => session
                .synthesize_index(r)
                .await
                .unwrap()
                .map(Answer::Index),
        };
        let mut out = Vec::new();
        crate::queries::print_answer(session, &mut out, query, answer)
            .await
            .expect("printed");
        out
    }

    /// Embedders get OCI JSON as the exact bytes the CLI prints: a
    /// synthesized index, a manifest (here an index) and a descriptor.
    #[test]
    fn the_json_functions_give_what_the_cli_prints() {
        use ocirelay_core::ops::lookup::LookupKind;
        use ocirelay_tests::{push_index, two_platforms, Flavour};
        let registry = ocirelay_tests::Registry::start(ocirelay_tests::Auth::None);
        push_index(&registry, "app", "v1", Flavour::Oci, &two_platforms());
        let rt = tokio_runtime();
        rt.block_on(async {
            let runtime = runtime_for(&[registry.host()]);
            let mut session = runtime.session(test_config()).await.expect("a session");
            let reference = Reference::parse(&registry.reference("app:v1")).unwrap();
            let get = LookupOptions {
                kind: LookupKind::Manifest,
                head: false,
            };
            let head = LookupOptions { head: true, ..get };
            let index = printed(&mut session, &Query::SynthesizeIndex(reference.clone())).await;
            let manifest = printed(&mut session, &Query::Lookup(reference.clone(), get)).await;
            let descriptor = printed(&mut session, &Query::Lookup(reference.clone(), head)).await;
            assert!(
                descriptor.starts_with(b"{\n\t\"mediaType\": "),
                "{descriptor:?}"
            );
            let found = session
                .lookup(&reference, head)
                .await
                .unwrap()
                .expect("found");

            let wit_ref = wit::Reference::from(&reference);
            let missing = Reference::parse(&registry.reference("app:v2")).unwrap();
            let missing = wit::Reference::from(&missing);
            let api = session.relay.ocirelay_registry_registry();
            let store = &mut session.store;
            let json = api
                .client()
                .call_synthesize_index_json(&mut *store, session.client, &wit_ref)
                .await
                .expect("called")
                .expect("an index");
            assert_eq!(json.map(String::into_bytes), Some(index));
            let json = api
                .client()
                .call_manifest_json(&mut *store, session.client, &wit_ref)
                .await
                .expect("called")
                .expect("a manifest");
            assert_eq!(json.map(String::into_bytes), Some(manifest));
            let json = api
                .blob_reader()
                .call_descriptor_json(&mut *store, found.resource)
                .await
                .expect("called");
            assert_eq!(json.into_bytes(), descriptor);
            let none = api
                .client()
                .call_manifest_json(&mut *store, session.client, &missing)
                .await
                .expect("called")
                .expect("no error");
            assert_eq!(none, None);
        });
    }

    /// An embedder streams a blob through the writer a chunk at a time to
    /// a real registry (HTTPS): it arrives whole; pushed again, nothing is
    /// sent; bytes that do not match never complete the upload.
    #[test]
    fn a_blob_written_a_chunk_at_a_time_arrives_whole() {
        use ocirelay_core::ops::lookup::LookupKind;
        let registry = ocirelay_tests::Registry::start(ocirelay_tests::Auth::None);
        let blob = ocirelay_tests::bytes(11, 5 * 1024 * 1024 + 17);
        let digest = ocirelay_core::Digest::sha256(&blob);
        let rt = tokio_runtime();
        rt.block_on(async {
            let runtime = runtime_for(&[registry.host()]);
            let mut session = runtime.session(test_config()).await.expect("a session");
            let reference =
                Reference::parse(&registry.reference(&format!("app@{digest}"))).unwrap();
            let wit_ref = wit::Reference::from(&reference);
            let size = blob.len() as u64;
            let api = session.relay.ocirelay_registry_registry();
            let store = &mut session.store;

            let writer = api
                .client()
                .call_push_blob(&mut *store, session.client, &wit_ref, size)
                .await
                .expect("called")
                .expect("a writer");
            for chunk in blob.chunks(1 << 20) {
                let more = api
                    .blob_writer()
                    .call_write(&mut *store, writer, chunk)
                    .await;
                assert!(more.expect("called").expect("written"), "more wanted");
            }
            let pushed = api.blob_writer().call_finish(&mut *store, writer).await;
            let pushed = pushed.expect("called").expect("pushed");
            assert_eq!(
                (pushed.digest.as_str(), pushed.size),
                (digest.to_string().as_str(), size)
            );

            // Pushed again: the registry has it, so nothing is sent.
            let writer = api
                .client()
                .call_push_blob(&mut *store, session.client, &wit_ref, size)
                .await
                .expect("called")
                .expect("a writer");
            let more = api
                .blob_writer()
                .call_write(&mut *store, writer, &blob[..10])
                .await;
            assert!(
                !more.expect("called").expect("no error"),
                "nothing more wanted"
            );
            let again = api.blob_writer().call_finish(&mut *store, writer).await;
            assert_eq!(again.expect("called").expect("there").digest, pushed.digest);

            // Other bytes of the same size under another digest: refused
            // before the upload completes.
            let other = ocirelay_core::Digest::sha256(b"not these bytes");
            let wrong = Reference::parse(&registry.reference(&format!("app@{other}"))).unwrap();
            let writer = api
                .client()
                .call_push_blob(&mut *store, session.client, &(&wrong).into(), size)
                .await
                .expect("called")
                .expect("a writer");
            for chunk in blob.chunks(1 << 20) {
                let more = api
                    .blob_writer()
                    .call_write(&mut *store, writer, chunk)
                    .await;
                more.expect("called").expect("written");
            }
            let refused = api.blob_writer().call_finish(&mut *store, writer).await;
            let Err(wit::Error::Integrity(message)) = refused.expect("called") else {
                panic!("an integrity error");
            };
            assert!(message.contains(&other.to_string()), "{message}");

            let head = LookupOptions {
                kind: LookupKind::Blob,
                head: true,
            };
            let there = session
                .lookup(&reference, head)
                .await
                .unwrap()
                .expect("pushed");
            let json = session.descriptor_json(&there).await.unwrap();
            let descriptor: Descriptor = serde_json::from_str(&json).unwrap();
            assert_eq!(descriptor.size, size);
            assert!(session.lookup(&wrong, head).await.unwrap().is_none());
        });
    }

    /// The embedded component imports nothing outside the proxy world (the
    /// runtime links only that world, so every test of a command also shows
    /// that it instantiates and runs there) and exports the registry.
    #[test]
    fn component_imports_only_the_proxy_world_and_exports_the_registry() {
        let exports = proxy_world::exports_of(COMPONENT_WASM);
        assert_eq!(exports, ["ocirelay:registry/registry@0.1.0"]);
        let idle = std::time::Duration::from_secs(1);
        let runtime = Runtime::new(Policy::new(Vec::new(), ["x"]), &[], idle);
        assert!(runtime.is_ok(), "a proxy-world linker instantiates it");
    }
}

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
