//! ocirelay at the edge: a component in the `wasi:http/proxy` world that
//! answers each request with the registry client linked in
//! (`ocirelay_driver`) and its configuration settled in when it is built
//! (`ocirelay-componentize`), so that a request instantiates this one
//! component. What to do is the core's decision (`ocirelay_core::service`:
//! routes, allow-list, headers, the client's configuration); this crate
//! performs it. Of one request it keeps nothing for the next but its
//! parsed configuration (`CONFIG`) and registry client (`answer::CLIENT`):
//! edge hosts make an instance per request, `ocirelay serve` reuses them.

mod answer;
mod respond;

use std::cell::OnceCell;
use std::rc::Rc;

use ocirelay_core::http::Headers;
use ocirelay_core::service::answer::refusal;
use ocirelay_core::service::route::READ_HEADERS;
use ocirelay_core::service::{Failure, FailureKind, Request, ServiceConfig};

use bindings::ocirelay::registry::service_config;
use wasi::http::types::{IncomingRequest, Method, ResponseOutparam};

mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "service",
    });
}

struct Service;

impl wasi::exports::http::incoming_handler::Guest for Service {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let method = match request.method() {
            Method::Get => "GET".to_string(),
            Method::Head => "HEAD".to_string(),
            Method::Post => "POST".to_string(),
            Method::Put => "PUT".to_string(),
            Method::Delete => "DELETE".to_string(),
            Method::Patch => "PATCH".to_string(),
            Method::Options => "OPTIONS".to_string(),
            Method::Connect => "CONNECT".to_string(),
            Method::Trace => "TRACE".to_string(),
            Method::Other(name) => name,
        };
        let head_only = method == "HEAD";
        let path = request.path_with_query().unwrap_or_else(|| "/".to_string());
        let headers = conditions(&request);
        drop(request);

        let config = match config() {
            Ok(config) => config,
            Err(e) => {
                // Built with a configuration it cannot use: say so on every request.
                let failure = Failure::new(FailureKind::Internal, e);
                return respond::text(out, refusal(&path, &failure), head_only);
            }
        };
        let request = match Request::parse(&method, &path, &headers, &config) {
            Ok(request) => request,
            Err(failure) => return respond::text(out, refusal(&path, &failure), head_only),
        };
        let what = request
            .route
            .reference()
            .map(ToString::to_string)
            .unwrap_or_default();
        match answer::answer(&config, &request) {
            Ok(answer) => respond::answer(out, answer, head_only, &what),
            Err(failure) => respond::text(out, request.failure(&failure), head_only),
        }
    }
}

thread_local! {
    /// The configuration, parsed by an instance's first request: it is
    /// fixed when the service is built, and hosts that keep instances
    /// (`ocirelay serve`) then parse it once, not per request.
    static CONFIG: OnceCell<Result<Rc<ServiceConfig>, String>> = const { OnceCell::new() };
}

/// The service's configuration, or why it cannot be used.
fn config() -> Result<Rc<ServiceConfig>, String> {
    CONFIG.with(|cell| {
        cell.get_or_init(|| {
            ServiceConfig::parse(&service_config::config())
                .map(Rc::new)
                .map_err(|e| e.to_string())
        })
        .clone()
    })
}

/// The request headers the core reads of a request.
fn conditions(request: &IncomingRequest) -> Headers {
    READ_HEADERS
        .iter()
        .filter_map(|name| Some((name.to_string(), header(request, name)?)))
        .collect()
}

/// The first value of header `name`, if it is text.
fn header(request: &IncomingRequest, name: &str) -> Option<String> {
    let values = request.headers().get(name);
    values
        .into_iter()
        .next()
        .and_then(|v| String::from_utf8(v).ok())
}

wasi::http::proxy::export!(Service);
