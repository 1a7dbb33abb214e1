//! Serves the edge service component (`service/`, composed with its
//! settings) on our wasmtime host: one instance per request, as `wasmtime
//! serve` and edge runtimes make them, with every outgoing request through
//! [`crate::hooks::Hooks`] (rate limits shared by all requests, the
//! allow-list, pooled connections, `--ca-file`).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use tokio::net::TcpListener;
use wasmtime::Store;
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::WasiHttpView;

use crate::error::HostError;
use crate::hooks::{Hooks, Outbound};
use crate::policy::Policy;
use crate::runtime::{proxy_world_pre, State};

/// Requests served at once: instances come from a pool of this many, and
/// a request beyond waits for one to end.
const INSTANCES: u32 = 128;

/// The service, ready to instantiate per request.
pub struct Server {
    pre: ProxyPre<State>,
    /// One permit per pooled instance, held for the instance's life.
    instances: Arc<tokio::sync::Semaphore>,
    /// What every request's hook shares: rate limits, the pooled client,
    /// and what instances that come and go keep for the next (checks of
    /// reads that broke off, token answers).
    outbound: Arc<Outbound>,
}

impl Server {
    /// Compiles `wasm` (a composed service) for the proxy world; HTTPS
    /// upstreams are trusted by the system's roots and `ca_files`.
    pub fn new(
        wasm: &[u8],
        policy: Policy,
        ca_files: &[std::path::PathBuf],
        idle_timeout: Duration,
    ) -> Result<Self, HostError> {
        let (_engine, pre) = proxy_world_pre(wasm, Some(INSTANCES))?;
        let pre = ProxyPre::new(pre).map_err(HostError::runtime(
            "binding the service's wasi:http/incoming-handler export",
        ))?;
        Ok(Server {
            pre,
            instances: Arc::new(tokio::sync::Semaphore::new(INSTANCES as usize)),
            outbound: Outbound::new(policy, ca_files, idle_timeout)?,
        })
    }

    /// Serves connections from `listener` until ctrl-c.
    pub async fn run(self: Arc<Self>, listener: TcpListener) -> Result<(), HostError> {
        loop {
            let (stream, peer) = tokio::select! {
                accepted = listener.accept() => accepted
                    .map_err(|e| HostError::Setup(format!("accepting a connection: {e}")))?,
                _ = tokio::signal::ctrl_c() => return Ok(()),
            };
            let server = self.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request| {
                    let server = server.clone();
                    async move { Ok::<_, Infallible>(server.handle(request).await) }
                });
                let served = http1::Builder::new()
                    .keep_alive(true)
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
                if let Err(e) = served {
                    tracing::debug!("connection from {peer}: {e}");
                }
            });
        }
    }

    /// One request, in an instance of its own.
    async fn handle(
        &self,
        request: hyper::Request<hyper::body::Incoming>,
    ) -> hyper::Response<HyperOutgoingBody> {
        let method = request.method().clone();
        let uri = request.uri().clone();
        match self.instance_answer(request).await {
            Ok(response) => {
                tracing::info!("{method} {uri} {}", response.status().as_u16());
                response
            }
            Err(e) => {
                tracing::warn!("{method} {uri}: the service failed: {e:#}");
                internal_error()
            }
        }
    }

    async fn instance_answer(
        &self,
        request: hyper::Request<hyper::body::Incoming>,
    ) -> wasmtime::Result<hyper::Response<HyperOutgoingBody>> {
        let hooks = Hooks::new(self.outbound.clone());
        let mut store = Store::new(self.pre.engine(), State::new(hooks));
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let request = store
            .data_mut()
            .http()
            .new_incoming_request(Scheme::Http, request)?;
        let out = store.data_mut().http().new_response_outparam(sender)?;
        let pre = self.pre.clone();
        let permit = self.instances.clone().acquire_owned().await?;
        // The instance goes on streaming the body after the head is sent.
        let task = tokio::spawn(async move {
            let _permit = permit;
            let proxy = pre.instantiate_async(&mut store).await?;
            proxy
                .wasi_http_incoming_handler()
                .call_handle(&mut store, request, out)
                .await
        });
        match receiver.await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(e)) => Err(e.into()),
            Err(_) => match task.await {
                Ok(Ok(())) => wasmtime::bail!("the service set no response"),
                Ok(Err(e)) => Err(e),
                Err(e) => Err(e.into()),
            },
        }
    }
}

/// A 500 with the service's JSON error shape, for an instance that trapped.
fn internal_error() -> hyper::Response<HyperOutgoingBody> {
    use http_body_util::BodyExt;
    let body = "{\"error\":{\"kind\":\"internal\",\"message\":\"the service failed (see the server's log)\"}}\n";
    let body = http_body_util::Full::new(bytes::Bytes::from_static(body.as_bytes()))
        .map_err(|never| match never {})
        .boxed_unsync();
    let mut response = hyper::Response::new(body);
    *response.status_mut() = hyper::StatusCode::INTERNAL_SERVER_ERROR;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}

/// Binds `addr`, saying where on stderr (port 0 picks a free one).
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, HostError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| HostError::Setup(format!("listening on {addr}: {e}")))?;
    let bound = listener
        .local_addr()
        .map_err(|e| HostError::Setup(format!("listening on {addr}: {e}")))?;
    eprintln!("ocirelay: serving on http://{bound}");
    Ok(listener)
}
