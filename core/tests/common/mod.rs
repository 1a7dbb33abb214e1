//! Helpers shared by the scripted tests: a client, canned responses, a
//! scripted registry, and drivers that run an operation to its end.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap, VecDeque};

use ocirelay_core::auth::Credential;
use ocirelay_core::http::{Method, Request, RequestId, Response, ResponseBody, TransportError};
use ocirelay_core::media_type::OCI_MANIFEST;
use ocirelay_core::{Client, ClientConfig, Digest, Operation, Output};

pub fn client(credentials: &[(&str, Credential)]) -> Client {
    let credentials: BTreeMap<String, Credential> = credentials
        .iter()
        .map(|(h, c)| (h.to_string(), c.clone()))
        .collect();
    Client::new(ClientConfig {
        user_agent: "test-agent".into(),
        credentials,
        ..ClientConfig::default()
    })
}

pub fn response(status: u16, headers: &[(&str, &str)], body: &[u8]) -> Response {
    Response {
        status,
        headers: headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect(),
        body: ResponseBody::Bytes(body.to_vec()),
    }
}

pub fn manifest_ok(body: &[u8], digest_header: Option<&str>) -> Response {
    let len = body.len().to_string();
    let mut headers = vec![
        ("Content-Type", OCI_MANIFEST),
        ("Content-Length", len.as_str()),
    ];
    if let Some(d) = digest_header {
        headers.push(("Docker-Content-Digest", d));
    }
    response(200, &headers, body)
}

/// Runs `op` to the end, answering each request at once with `answer`;
/// returns the outcome and every request asked for, in order.
pub fn drive<O: Operation>(
    client: &mut Client,
    op: &mut O,
    mut answer: impl FnMut(&Request) -> Result<Response, TransportError>,
) -> (ocirelay_core::Result<O::Outcome>, Vec<Request>) {
    let mut sent = Vec::new();
    for _ in 0..200 {
        match op.poll_output(client) {
            Output::Send(id, request) => {
                let r = answer(&request);
                sent.push(request);
                op.handle_response(client, id, r);
            }
            Output::Wait => panic!("waiting with nothing in flight"),
            Output::Done(outcome) => return (outcome, sent),
        }
    }
    panic!("no outcome after 200 requests: {sent:#?}");
}

/// Like [`drive`], but answers only when the operation waits, all at once:
/// how a concurrent driver sees it. Also returns the most requests that
/// were in flight together.
pub fn drive_concurrently<O: Operation>(
    client: &mut Client,
    op: &mut O,
    mut answer: impl FnMut(&Request) -> Result<Response, TransportError>,
) -> (ocirelay_core::Result<O::Outcome>, Vec<Request>, usize) {
    let mut sent = Vec::new();
    let mut in_flight: VecDeque<(RequestId, Request)> = VecDeque::new();
    let mut most = 0;
    for _ in 0..200 {
        match op.poll_output(client) {
            Output::Send(id, request) => {
                in_flight.push_back((id, request));
                most = most.max(in_flight.len());
            }
            Output::Wait => {
                assert!(!in_flight.is_empty(), "waiting with nothing in flight");
                while let Some((id, request)) = in_flight.pop_front() {
                    let r = answer(&request);
                    sent.push(request);
                    op.handle_response(client, id, r);
                }
            }
            Output::Done(outcome) => return (outcome, sent, most),
        }
    }
    panic!("no outcome after 200 rounds");
}

pub fn urls(sent: &[Request]) -> Vec<String> {
    sent.iter()
        .map(|r| format!("{} {}", r.method.as_str(), r.url))
        .collect()
}

/// A registry of scripted content: objects by digest and tags, per
/// repository, answered like the real thing.
#[derive(Default)]
pub struct ScriptedRegistry {
    /// (repository, digest) -> (media type, bytes)
    objects: HashMap<(String, String), (String, Vec<u8>)>,
    tags: HashMap<(String, String), String>,
}

impl ScriptedRegistry {
    pub fn put(&mut self, repository: &str, media_type: &str, bytes: &[u8]) -> Digest {
        let d = Digest::sha256(bytes);
        self.objects.insert(
            (repository.into(), d.to_string()),
            (media_type.into(), bytes.to_vec()),
        );
        d
    }

    pub fn tag(&mut self, repository: &str, tag: &str, digest: &Digest) {
        self.tags
            .insert((repository.into(), tag.into()), digest.to_string());
    }

    /// Answers GET/HEAD of `/v2/<repo>/(manifests|blobs)/<ref>`.
    pub fn answer(&self, req: &Request) -> Result<Response, TransportError> {
        let path = req.url.path_and_query.trim_start_matches("/v2/");
        let split = path
            .rsplit_once("/manifests/")
            .or_else(|| path.rsplit_once("/blobs/"));
        let Some((repo, object)) = split else {
            return Ok(response(404, &[], b""));
        };
        let digest = self
            .tags
            .get(&(repo.into(), object.into()))
            .cloned()
            .unwrap_or_else(|| object.into());
        match self.objects.get(&(repo.into(), digest.clone())) {
            Some((media_type, bytes)) => {
                let len = bytes.len().to_string();
                let body = if req.method == Method::Head {
                    &[][..]
                } else {
                    bytes
                };
                Ok(response(
                    200,
                    &[
                        ("Content-Type", media_type),
                        ("Content-Length", &len),
                        ("Docker-Content-Digest", &digest),
                    ],
                    body,
                ))
            }
            None => Ok(response(
                404,
                &[],
                br#"{"errors":[{"code":"MANIFEST_UNKNOWN"}]}"#,
            )),
        }
    }
}
