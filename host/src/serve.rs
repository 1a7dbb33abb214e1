//! Serves the edge service component (`service/`, composed with its
//! settings) on our wasmtime host, with every outgoing request through
//! [`crate::hooks::Hooks`] (rate limits shared by all requests, the
//! allow-list, pooled connections, `--ca-file`).
//!
//! An instance serves one request at a time, as under `wasmtime serve`, but
//! is then kept for a later one (up to [`REUSES`] times; a trap ends it):
//! the service's registry client keeps its tokens and what registries'
//! challenges said, so a request to a token-auth upstream is one request
//! upstream, not a 401, a token request and the request again.
//!
//! Every request leaves a line in the log ([`crate::access_log`]): the
//! instance's hook records what it sent upstream, and the instance's
//! stderr, kept apart, carries the service's warnings.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use tokio::net::TcpListener;
use wasmtime::Store;
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::bindings::{Proxy, ProxyPre};
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::WasiHttpView;

use http_body_util::BodyExt;
use ocirelay_core::service::{log, Head};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;

use crate::access_log::{Calls, CountedBody, Pending, Sink};
use crate::error::HostError;
use crate::hooks::{Hooks, Outbound};
use crate::policy::Policy;
use crate::runtime::{proxy_world_pre, State};

/// Instances kept between requests at most; beyond, an instance whose
/// request ended is dropped.
const IDLE: usize = 16;
/// Requests an instance serves at most, bounding what a long life could
/// gather in its memory.
const REUSES: u32 = 1000;
/// What an instance may write on its stderr; one that has written half of
/// it is not kept.
const STDERR_CAPACITY: usize = 64 * 1024;

/// An instance between two requests.
struct Idle {
    store: Store<State>,
    proxy: Proxy,
    /// Requests it has served.
    served: u32,
    /// What its hook sends, for the log.
    calls: Arc<Calls>,
    /// Its stderr, and how much of it the log has read.
    stderr: MemoryOutputPipe,
    stderr_read: usize,
}

impl Idle {
    /// What the instance said on stderr since it was last asked.
    fn new_stderr(&mut self) -> String {
        let all = self.stderr.contents();
        let new = String::from_utf8_lossy(&all[self.stderr_read.min(all.len())..]).into_owned();
        self.stderr_read = all.len();
        new
    }
}

/// How many requests are served at once, and how long one beyond waits.
#[derive(Debug, Clone, Copy)]
pub struct Capacity {
    /// Requests served at once, each by an instance of its own (from a
    /// pool of instances this large).
    pub instances: u32,
    /// How long a request beyond waits for an instance before it is
    /// answered 503 with a `Retry-After`.
    pub queue_wait: Duration,
}

/// The service, ready to instantiate, and its instances between requests.
pub struct Server {
    pre: ProxyPre<State>,
    /// One permit per request being served, held until its instance is
    /// done with it (idle instances hold none).
    instances: Arc<tokio::sync::Semaphore>,
    /// What every request's hook shares: rate limits, the pooled client,
    /// and what instances that come and go keep for the next (checks of
    /// reads that broke off, token answers).
    outbound: Arc<Outbound>,
    /// Instances whose request ended, the latest last.
    idle: Arc<std::sync::Mutex<Vec<Idle>>>,
    /// Where each request's line goes.
    log: Arc<Sink>,
    capacity: Capacity,
}

impl Server {
    /// Compiles `wasm` (a composed service) for the proxy world; HTTPS
    /// upstreams are trusted by the system's roots and `ca_files`.
    pub fn new(
        wasm: &[u8],
        policy: Policy,
        ca_files: &[std::path::PathBuf],
        idle_timeout: Duration,
        log: Arc<Sink>,
        capacity: Capacity,
    ) -> Result<Self, HostError> {
        let (_engine, pre) = proxy_world_pre(wasm, Some(capacity.instances))?;
        let pre = ProxyPre::new(pre).map_err(HostError::runtime(
            "binding the service's wasi:http/incoming-handler export",
        ))?;
        Ok(Server {
            pre,
            instances: Arc::new(tokio::sync::Semaphore::new(capacity.instances as usize)),
            outbound: Outbound::new(policy, ca_files, idle_timeout, Arc::default())?,
            idle: Arc::default(),
            log,
            capacity,
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

    /// One request, in an instance of its own; its line is written once
    /// its answer is sent.
    async fn handle(
        &self,
        request: hyper::Request<hyper::body::Incoming>,
    ) -> hyper::Response<HyperOutgoingBody> {
        let start = std::time::Instant::now();
        let target = request
            .uri()
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_string();
        let pending = Pending::new(self.log.clone(), request.method().as_str(), &target, start);
        // At capacity, a request waits for an instance, a while at most.
        let permit = self.instances.clone().acquire_owned();
        let response = match tokio::time::timeout(self.capacity.queue_wait, permit).await {
            Ok(Ok(permit)) => match self.instance_answer(request, permit, pending.clone()).await {
                Ok(response) => response,
                Err(e) => {
                    let warning = format!("the service failed: {e:#}");
                    pending.update(|line| line.warnings.push(warning));
                    internal_error()
                }
            },
            Ok(Err(_)) | Err(_) => self.at_capacity(&target),
        };
        let length = response
            .headers()
            .get(hyper::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse().ok());
        pending.answered(response.status().as_u16(), length);
        response.map(|body| CountedBody::new(body, pending).boxed_unsync())
    }

    /// Answers `request` with an idle instance, or a new one if none is;
    /// the instance is kept for a later request once done, unless it
    /// trapped, has served [`REUSES`], or has written much on stderr.
    /// What it sent upstream and warned of goes into `pending`.
    async fn instance_answer(
        &self,
        request: hyper::Request<hyper::body::Incoming>,
        permit: tokio::sync::OwnedSemaphorePermit,
        pending: Arc<Pending>,
    ) -> wasmtime::Result<hyper::Response<HyperOutgoingBody>> {
        let kept = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        let mut instance = match kept {
            Some(idle) => idle,
            None => {
                let calls = Arc::new(Calls::default());
                let mut hooks = Hooks::new(self.outbound.clone());
                hooks.calls = Some(calls.clone());
                let stderr = MemoryOutputPipe::new(STDERR_CAPACITY);
                let state = State::with_stderr(hooks, stderr.clone());
                let mut store = Store::new(self.pre.engine(), state);
                let proxy = self.pre.instantiate_async(&mut store).await?;
                Idle {
                    store,
                    proxy,
                    served: 0,
                    calls,
                    stderr,
                    stderr_read: 0,
                }
            }
        };
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let request = instance
            .store
            .data_mut()
            .http()
            .new_incoming_request(Scheme::Http, request)?;
        let out = instance
            .store
            .data_mut()
            .http()
            .new_response_outparam(sender)?;
        let idle = self.idle.clone();
        // The instance goes on streaming the body after the head is sent.
        let task = tokio::spawn(async move {
            let _permit = permit;
            let handler = instance.proxy.wasi_http_incoming_handler();
            let handled = handler.call_handle(&mut instance.store, request, out).await;
            let upstream = instance.calls.take();
            let warnings = log::warnings(&instance.new_stderr());
            pending.update(|line| {
                line.upstream = upstream;
                line.warnings.extend(warnings);
            });
            drop(pending);
            handled?;
            instance.served += 1;
            let quiet = instance.stderr_read < STDERR_CAPACITY / 2;
            if instance.served < REUSES && quiet {
                if let Ok(mut idle) = idle.lock() {
                    if idle.len() < IDLE {
                        idle.push(instance);
                    }
                }
            }
            Ok(())
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

impl Server {
    /// The answer when every instance stayed busy for the queue's wait:
    /// the core's 503, with a `Retry-After`, in the route's dialect.
    fn at_capacity(&self, target: &str) -> hyper::Response<HyperOutgoingBody> {
        use ocirelay_core::service::{answer::refusal, Failure, FailureKind};
        let failure = Failure {
            retry_after_secs: Some(1),
            ..Failure::new(
                FailureKind::Overloaded,
                format!(
                    "the service is at capacity ({} requests at once); try again",
                    self.capacity.instances
                ),
            )
        };
        let (head, body) = refusal(target, &failure);
        answer_of(head, bytes::Bytes::from(body))
    }
}

/// A 500 with the service's JSON error shape, for an instance that trapped.
fn internal_error() -> hyper::Response<HyperOutgoingBody> {
    let body = "{\"error\":{\"kind\":\"internal\",\"message\":\"the service failed (see the server's log)\"}}\n";
    let head = Head::new(500).with("Content-Type", "application/json");
    answer_of(head, bytes::Bytes::from_static(body.as_bytes()))
}

/// An answer the host gives itself, without an instance: `head` and `body`.
fn answer_of(head: Head, body: bytes::Bytes) -> hyper::Response<HyperOutgoingBody> {
    let body = http_body_util::Full::new(body)
        .map_err(|never| match never {})
        .boxed_unsync();
    let mut response = hyper::Response::new(body);
    *response.status_mut() = hyper::StatusCode::from_u16(head.status)
        .unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    for (name, value) in head.headers {
        if let (Ok(name), Ok(value)) = (
            hyper::header::HeaderName::from_bytes(name.as_bytes()),
            hyper::header::HeaderValue::from_str(&value),
        ) {
            response.headers_mut().append(name, value);
        }
    }
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
