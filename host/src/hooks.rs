//! The outgoing-request hook every request of the component passes: it
//! sends through one pooled HTTP client (keep-alive, TLS sessions reused,
//! system roots plus `--ca-file`), under the process-wide rate limits and
//! allow-list, checks every upload's bytes against its digest as they
//! pass ([`crate::verify`]), and answers a token request it has seen
//! answered before from what it kept ([`crate::tokens`]).

use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Empty};
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

use ocirelay_core::http::{
    BODY_CHECK, BODY_VERIFIED, DOWNLOAD_MISMATCH, RESUME_CHECK, VERIFY_BODY,
};
use ocirelay_core::Digest;

use crate::access_log::Calls;
use crate::adaptive::{Adaptive, Held};
use crate::chunk_check::ChunkChecks;
use crate::error::HostError;
use crate::idle::{self, Activity, IdleBody};
use crate::layout::Layouts;
use crate::policy::{Policy, Refused};
use crate::pooled::{client_error, pooled_client, Pooled};
use crate::tokens::{KeptBody, Tokens};
use crate::upload_checks::UploadChecks;
use crate::verify::{Partial, Unfinished, VerifyingBody};

/// Requests to one registry at once at most, unless set lower
/// (`--concurrency`).
const DEFAULT_CEILING: usize = 1024;

/// What went over the wire, for progress reports: counted here, in the
/// hook every request passes, so the component needs no progress API.
#[derive(Debug, Default)]
pub struct Traffic {
    /// Request body bytes sent (uploads).
    pub bytes_sent: AtomicU64,
    /// Objects written: answers 201 Created (blob uploads, mounts, manifests).
    pub objects_written: AtomicU64,
    /// Requests sent.
    pub requests: AtomicU64,
    /// Calls from the component into the host (WASI and wasi-http
    /// functions), counted only at `RUST_LOG=debug`: what a streamed copy's
    /// CPU goes to.
    pub host_calls: AtomicU64,
}

/// What the hooks of every instance in a process share: the pooled client,
/// the counters, the policy, and what is kept across instances (checks of
/// reads that broke off, token answers).
pub struct Outbound {
    client: Pooled,
    traffic: Arc<Traffic>,
    policy: Policy,
    /// How long a request may go without progress.
    idle_timeout: Duration,
    /// Checks of blob reads that broke off, for their resumed reads.
    unfinished: Arc<Unfinished>,
    /// Checks of chunked uploads, by session.
    chunks: Arc<ChunkChecks>,
    /// Token servers' answers, for the instances that ask again.
    tokens: Arc<Tokens>,
    /// The OCI layouts the command names, answered here as registries.
    layouts: Arc<Layouts>,
    /// How many requests each registry gets at once, learnt from its answers.
    adaptive: Arc<Adaptive>,
}

impl Outbound {
    /// Sending under `policy`, trusting the system's roots and `ca_files`
    /// for HTTPS, failing requests idle for `idle_timeout`.
    pub fn new(
        policy: Policy,
        ca_files: &[PathBuf],
        idle_timeout: Duration,
        layouts: Arc<Layouts>,
    ) -> Result<Arc<Self>, HostError> {
        Ok(Arc::new(Outbound {
            client: pooled_client(ca_files)?,
            traffic: Arc::default(),
            policy,
            idle_timeout,
            unfinished: Arc::default(),
            chunks: Arc::default(),
            tokens: Arc::default(),
            layouts,
            adaptive: Adaptive::new(DEFAULT_CEILING),
        }))
    }

    /// What every instance sent, for progress reports.
    pub fn traffic(&self) -> &Arc<Traffic> {
        &self.traffic
    }

    /// How many requests each registry gets at once.
    pub fn adaptive(&self) -> &Arc<Adaptive> {
        &self.adaptive
    }

    /// The OCI layouts answered here.
    pub fn layouts(&self) -> &Arc<Layouts> {
        &self.layouts
    }
}

/// Hooks stored per component instance.
pub struct Hooks {
    outbound: Arc<Outbound>,
    /// Whether upload bodies are checked against their digest here.
    pub verify_uploads: bool,
    /// Where the requests sent are recorded, for a request log.
    pub calls: Option<Arc<Calls>>,
    /// A lying host, for tests: every blob read's answer says it was
    /// checked, and none is (what a registry's own `BODY_VERIFIED` would
    /// say if a host passed it on).
    #[cfg(test)]
    pub forge_body_verified: bool,
}

impl Hooks {
    /// Hooks sending through what `outbound` holds for every instance.
    pub fn new(outbound: Arc<Outbound>) -> Self {
        Hooks {
            outbound,
            verify_uploads: true,
            calls: None,
            #[cfg(test)]
            forge_body_verified: false,
        }
    }
}

type SendFuture = Box<
    dyn Future<
            Output = Result<
                (
                    http::Response<WasiBody>,
                    Box<dyn Future<Output = Result<(), Error>> + Send>,
                ),
                Error,
            >,
        > + Send,
>;

impl WasiHttpHooks for Hooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        _options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> SendFuture {
        let outbound = self.outbound.clone();
        let verify = self.verify_uploads;
        let calls = self.calls.clone();
        #[cfg(test)]
        let forge = self.forge_body_verified;
        let authority = request
            .uri()
            .authority()
            .map(|a| a.to_string())
            .unwrap_or_default();
        Box::new(async move {
            let (mut parts, body) = request.into_parts();
            // A token request answered before: nothing goes out.
            let token = outbound.tokens.key(&parts);
            let kept = token
                .as_ref()
                .and_then(|key| outbound.tokens.answer(key, Instant::now()));
            if let Some(answer) = kept {
                tracing::debug!(uri = %shown_uri(&parts.uri), "answered with a kept token");
                return Ok((token_response(answer), finished()));
            }
            // A layout has no rate and no allow-list: it is local.
            let layout = outbound.layouts.root(&authority).is_some();
            let (method, path) = (parts.method.as_str(), parts.uri.path());
            let admitted = match layout {
                true => Ok(()),
                false => outbound.policy.admit(&authority, method, path).await,
            };
            match admitted {
                Ok(()) => {}
                Err(Refused::NotAllowed) => {
                    tracing::warn!(host = %authority, "refused: not a registry this command names, nor one it was sent to");
                    return Err(Error::HttpRequestDenied);
                }
                // Answered here as the registry would: nothing is sent.
                Err(Refused::Exhausted(back)) => {
                    return Ok((budget_spent(&authority, back), finished()));
                }
            }
            // The component's ask to check a blob read (on from where the
            // check of a broken read stopped): ours, never sent on.
            let check_download = parts
                .headers
                .remove(VERIFY_BODY)
                .and_then(|v| Digest::parse(v.to_str().ok()?).ok());
            let resumed = parts
                .headers
                .remove(RESUME_CHECK)
                .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
                .and_then(|id| outbound.unfinished.take(id))
                .filter(|p| Some(&p.expected) == check_download.as_ref());
            // What it is as an upload: checked as it goes (the component's
            // mark taken off).
            let upload = UploadChecks::read(&mut parts, &authority, verify);
            upload.completion(&outbound.chunks)?;
            // GET, HEAD and zero-length writes carry no body: hand hyper a
            // finished one, so it neither frames it as chunked nor leaves a
            // pooled connection with a half-sent request.
            let empty = parts.method == http::Method::GET
                || parts.method == http::Method::HEAD
                || parts
                    .headers
                    .get(http::header::CONTENT_LENGTH)
                    .is_some_and(|v| v == "0");
            // Every frame of the upload is progress.
            let activity = Activity::new();
            let body = if empty {
                Empty::new().map_err(|never| match never {}).boxed_unsync()
            } else {
                let (counter, activity) = (outbound.traffic.clone(), activity.clone());
                let counted = body.map_frame(move |frame| {
                    if let Some(data) = frame.data_ref() {
                        counter
                            .bytes_sent
                            .fetch_add(data.len() as u64, Ordering::Relaxed);
                    }
                    activity.touch();
                    frame
                });
                upload.body(&outbound.chunks, counted)?
            };
            outbound.traffic.requests.fetch_add(1, Ordering::Relaxed);
            // Queries of signed CDN URLs and upload states carry secrets.
            let shown = shown_uri(&parts.uri);
            #[cfg(test)]
            let forged = forge
                .then(|| ocirelay_core::distribution::blob_digest(parts.uri.path()))
                .flatten();
            tracing::debug!(method = %parts.method, uri = %shown, "sending");
            let call = calls
                .as_ref()
                .map(|c| c.sent(parts.method.as_str(), &authority));
            let idle = outbound.idle_timeout;
            let response = match outbound.layouts.root(&authority) {
                // A layout: answered from its directory, nothing sent.
                Some(root) => outbound.layouts.answer(root, parts, body).await?,
                None => {
                    // A place among the registry's requests at once, held
                    // until the answer's body ends.
                    let permit = outbound.adaptive.acquire(&authority).await;
                    let request = http::Request::from_parts(parts, body);
                    let sent = outbound.client.request(request);
                    let Some(response) = idle::within(&activity, idle, sent).await else {
                        tracing::warn!(host = %authority, ?idle, "no progress; giving up on this try");
                        return Err(Error::ConnectionReadTimeout);
                    };
                    let response = response.map_err(client_error)?;
                    outbound
                        .adaptive
                        .answered(&permit, response.status().as_u16());
                    outbound.policy.learn(
                        &authority,
                        response.status().as_u16(),
                        response.headers(),
                    );
                    let (head, body) = response.into_parts();
                    let body = IdleBody::new(
                        body.map_err(Error::from),
                        idle,
                        Error::ConnectionReadTimeout,
                    );
                    let body = Held::new(body.boxed_unsync(), permit);
                    http::Response::from_parts(head, body.boxed_unsync())
                }
            };
            if let (Some(calls), Some(call)) = (&calls, call) {
                calls.answered(call, response.status().as_u16());
            }
            tracing::debug!(status = %response.status(), "answered");
            match response.status() {
                http::StatusCode::CREATED => {
                    let written = &outbound.traffic.objects_written;
                    written.fetch_add(1, Ordering::Relaxed);
                }
                http::StatusCode::UNAUTHORIZED => outbound.tokens.learn_realms(response.headers()),
                _ => {}
            }
            let (mut head, body) = response.into_parts();
            #[cfg(test)]
            if forge {
                if let Some(value) = forged.and_then(|d| d.to_string().parse().ok()) {
                    head.headers.insert(BODY_VERIFIED, value);
                    head.headers.insert(BODY_CHECK, http::HeaderValue::from(0));
                }
                return Ok((http::Response::from_parts(head, body), finished()));
            }
            let mismatch = |detail: String| {
                Error::InternalError(Some(format!("{DOWNLOAD_MISMATCH}: {detail}")))
            };
            let id = outbound.unfinished.id();
            let unfinished = outbound.unfinished.clone();
            let body = match vouch(check_download, resumed, &mut head, id) {
                Some(Vouch::Whole { digest, size }) => {
                    VerifyingBody::new(body, digest, size, mismatch)
                        .kept_in(unfinished, id)
                        .boxed_unsync()
                }
                Some(Vouch::Rest(partial)) => VerifyingBody::resumed(body, *partial, mismatch)
                    .kept_in(unfinished, id)
                    .boxed_unsync(),
                None => match token {
                    Some(key) if head.status == http::StatusCode::OK => {
                        KeptBody::new(body, outbound.tokens.clone(), key).boxed_unsync()
                    }
                    _ => body,
                },
            };
            Ok((http::Response::from_parts(head, body), finished()))
        })
    }
}

/// What wasi-http awaits once a response's body is handed over: nothing
/// more here (the body's own errors end it).
fn finished() -> Box<dyn Future<Output = Result<(), Error>> + Send> {
    Box::new(async { Ok(()) })
}

/// A token server's answer, given again from [`Tokens`].
fn token_response(answer: bytes::Bytes) -> http::Response<WasiBody> {
    let length = answer.len();
    let mut response = http::Response::new(
        http_body_util::Full::new(answer)
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    let length = http::HeaderValue::from(length);
    let json = http::HeaderValue::from_static("application/json");
    let headers = response.headers_mut();
    headers.insert(http::header::CONTENT_TYPE, json);
    headers.insert(http::header::CONTENT_LENGTH, length);
    response
}

/// The 429 a registry whose budget is spent would answer, said here
/// without asking it: `Retry-After` and a message say when it is back.
fn budget_spent(authority: &str, back: Duration) -> http::Response<WasiBody> {
    let secs = back.as_secs();
    let message = format!(
        "{authority} said its request budget is spent; it is back in {}h{:02}m \
         (past --retry-deadline, so not waited for)",
        secs / 3600,
        (secs % 3600) / 60
    );
    let body = serde_json::json!({"errors": [{"code": "TOOMANYREQUESTS", "message": message}]});
    let mut response = token_response(bytes::Bytes::from(body.to_string()));
    *response.status_mut() = http::StatusCode::TOO_MANY_REQUESTS;
    response
        .headers_mut()
        .insert(http::header::RETRY_AFTER, http::HeaderValue::from(secs));
    response
}

/// What the hook checks a response's body as.
#[derive(Debug)]
enum Vouch {
    /// The whole blob: `size` bytes hashing to `digest`.
    Whole { digest: Digest, size: u64 },
    /// The rest of a blob whose check broke off where this body starts.
    Rest(Box<Partial>),
}

/// Whether the hook checks this response's body, as the component asked
/// (`asked`; `resumed`: the check of the read that broke): a whole blob (a
/// 200) of a length said up front, or the rest of one (a 206 from where
/// `resumed` stopped). Then it says so (`BODY_VERIFIED`, and `BODY_CHECK`:
/// `id`); the registry never can: any such header it sent is removed.
fn vouch(
    asked: Option<Digest>,
    resumed: Option<Partial>,
    head: &mut http::response::Parts,
    id: u64,
) -> Option<Vouch> {
    head.headers.remove(BODY_VERIFIED);
    head.headers.remove(BODY_CHECK);
    let digest = asked?;
    let header = |name| head.headers.get(name).and_then(|v| v.to_str().ok());
    let length = header(http::header::CONTENT_LENGTH).and_then(|v| v.parse::<u64>().ok())?;
    let vouch = match (head.status, resumed) {
        (http::StatusCode::OK, _) => Vouch::Whole {
            digest: digest.clone(),
            size: length,
        },
        (http::StatusCode::PARTIAL_CONTENT, Some(p)) => {
            let range = ocirelay_core::distribution::rest_range(p.seen, p.size)?;
            let rest = header(http::header::CONTENT_RANGE).map(str::trim);
            if rest != Some(range.as_str()) || length != p.size - p.seen {
                return None;
            }
            Vouch::Rest(Box::new(p))
        }
        _ => return None,
    };
    let verified = http::HeaderValue::from_str(&digest.to_string()).ok()?;
    head.headers.insert(BODY_VERIFIED, verified);
    head.headers.insert(BODY_CHECK, http::HeaderValue::from(id));
    Some(vouch)
}

/// `uri` as logs show it: its query, if any, as `?…`.
fn shown_uri(uri: &http::Uri) -> String {
    let path = uri.path();
    let base = match (uri.scheme_str(), uri.authority()) {
        (Some(scheme), Some(authority)) => format!("{scheme}://{authority}{path}"),
        _ => path.to_string(),
    };
    match uri.query() {
        Some(_) => format!("{base}?…"),
        None => base,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A response head of `status` with `headers`.
    fn head(status: u16, headers: &[(&str, &str)]) -> http::response::Parts {
        let mut builder = http::Response::builder().status(status);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(()).expect("a response").into_parts().0
    }

    /// The check of a read of `blob` that broke after `seen` bytes.
    fn partial(blob: &[u8], seen: usize) -> Partial {
        let store = Arc::new(Unfinished::default());
        let id = store.id();
        let digest = Digest::sha256(blob);
        let size = blob.len() as u64;
        let mismatch = |e: String| e;
        let body = http_body_util::Full::new(bytes::Bytes::copy_from_slice(&blob[..seen]))
            .map_err(|never| match never {});
        let mut check = VerifyingBody::new(body, digest, size, mismatch).kept_in(store.clone(), id);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime");
        rt.block_on(async { while let Some(Ok(_)) = check.frame().await {} });
        drop(check);
        store.take(id).expect("kept")
    }

    #[test]
    fn only_the_hook_vouches_for_a_body_and_only_for_a_whole_one_or_its_rest() {
        let blob = b"blob";
        let d = Digest::sha256(blob);
        let forged = [(BODY_VERIFIED, "sha256:forged"), (BODY_CHECK, "7")];
        let with = |status, extra: &[(&str, &str)]| {
            let all: Vec<(&str, &str)> = extra.iter().chain(forged.iter()).copied().collect();
            head(status, &all)
        };
        // Asked, a 200 of a known length: checked, and said with the digest and an id.
        let mut h = with(200, &[("content-length", "4")]);
        let v = vouch(Some(d.clone()), None, &mut h, 9);
        assert!(matches!(v, Some(Vouch::Whole { size: 4, .. })), "{v:?}");
        assert_eq!(h.headers.get(BODY_VERIFIED).unwrap(), &d.to_string());
        assert_eq!(h.headers.get(BODY_CHECK).unwrap(), "9");
        // The rest of a read that broke after 1 byte: checked on.
        let rest = [("content-length", "3"), ("content-range", "bytes 1-3/4")];
        let mut h = with(206, &rest);
        let v = vouch(Some(d.clone()), Some(partial(blob, 1)), &mut h, 10);
        assert!(matches!(&v, Some(Vouch::Rest(p)) if p.seen == 1), "{v:?}");
        assert_eq!(h.headers.get(BODY_CHECK).unwrap(), "10");
        // Not checked (a part of something else or unknown, no length, not
        // asked): the registry's word is gone.
        let other_part = [("content-length", "2"), ("content-range", "bytes 2-3/4")];
        for (asked, resumed, mut h) in [
            (Some(d.clone()), None, with(206, &rest)),
            (
                Some(d.clone()),
                Some(partial(blob, 1)),
                with(206, &other_part),
            ),
            (Some(d.clone()), None, with(200, &[])),
            (None, None, with(200, &[("content-length", "4")])),
        ] {
            assert!(vouch(asked, resumed, &mut h, 11).is_none());
            assert!(h.headers.get(BODY_VERIFIED).is_none(), "{h:?}");
            assert!(h.headers.get(BODY_CHECK).is_none(), "{h:?}");
        }
    }
}
