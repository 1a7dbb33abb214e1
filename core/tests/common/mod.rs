//! The scripted world the core's tests run in: a client, canned responses,
//! scripted registries (a [`World`] of them by host), and drivers that run
//! an operation to its end on a test clock, recording every request.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap, VecDeque};

use ocirelay_core::auth::Credential;
use ocirelay_core::client::Answer;
use ocirelay_core::http::{Method, Request, RequestBody, RequestId, Response, ResponseBody};
use ocirelay_core::media_type::OCI_MANIFEST;
use ocirelay_core::{Client, ClientConfig, Digest, Instant, Operation, Output};

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
        body: ResponseBody::Bytes(body.to_vec().into()),
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

/// A request as the operation asked for it, and when (on the test's clock).
#[derive(Debug)]
pub struct Sent {
    /// When it was asked for.
    pub at: Instant,
    /// The request.
    pub request: Request,
}

/// Runs `op` to the end, answering each request at once with `answer`;
/// when the operation waits for a deadline (a retry's delay), the clock
/// moves on to it. Returns the outcome and every request asked for, in
/// order, with when it was asked for.
pub fn drive_timed<O: Operation>(
    client: &mut Client,
    op: &mut O,
    mut answer: impl FnMut(&Request) -> Answer,
) -> (O::Outcome, Vec<Sent>) {
    let mut sent = Vec::new();
    for _ in 0..200 {
        match op.poll_output(client) {
            Output::Send(id, request) => {
                let r = answer(&request);
                sent.push(Sent {
                    at: client.now(),
                    request,
                });
                client.handle_response(id, r);
            }
            Output::Wait(Some(deadline)) => {
                assert!(deadline > client.now(), "a deadline that has passed");
                client.set_now(deadline);
            }
            Output::Wait(None) => panic!("waiting with nothing in flight"),
            Output::Done(outcome) => return (outcome, sent),
        }
    }
    panic!("no outcome after 200 steps: {sent:#?}");
}

/// [`drive_timed`], without the times.
pub fn drive<O: Operation>(
    client: &mut Client,
    op: &mut O,
    answer: impl FnMut(&Request) -> Answer,
) -> (O::Outcome, Vec<Request>) {
    let (outcome, sent) = drive_timed(client, op, answer);
    (outcome, sent.into_iter().map(|s| s.request).collect())
}

/// Like [`drive`], but answers only when the operation waits, all at once:
/// how a concurrent driver sees it. Also returns the most requests that
/// were in flight together.
pub fn drive_concurrently<O: Operation>(
    client: &mut Client,
    op: &mut O,
    mut answer: impl FnMut(&Request) -> Answer,
) -> (O::Outcome, Vec<Request>, usize) {
    let mut sent = Vec::new();
    let mut in_flight: VecDeque<(RequestId, Request)> = VecDeque::new();
    let mut most = 0;
    for _ in 0..200 {
        match op.poll_output(client) {
            Output::Send(id, request) => {
                in_flight.push_back((id, request));
                most = most.max(in_flight.len());
            }
            Output::Wait(deadline) => {
                if in_flight.is_empty() {
                    let deadline = deadline.expect("waiting with nothing in flight");
                    client.set_now(deadline);
                }
                while let Some((id, request)) = in_flight.pop_front() {
                    let r = answer(&request);
                    sent.push(request);
                    client.handle_response(id, r);
                }
            }
            Output::Done(outcome) => return (outcome, sent, most),
        }
    }
    panic!("no outcome after 200 rounds");
}

/// Registries by host, each answering the requests sent to its authority:
/// the network a test's operations talk to.
#[derive(Default)]
pub struct World(HashMap<String, ScriptedRegistry>);

impl World {
    /// The registry at `host`, made on first use.
    pub fn reg(&mut self, host: &str) -> &mut ScriptedRegistry {
        self.0.entry(host.to_string()).or_default()
    }

    /// Answers `req` from the registry it is addressed to.
    pub fn serve(&mut self, req: &Request) -> Answer {
        self.reg(&req.url.authority.clone()).serve(req)
    }
}

pub fn urls(sent: &[Request]) -> Vec<String> {
    sent.iter()
        .map(|r| format!("{} {}", r.method.as_str(), r.url))
        .collect()
}

/// A registry of scripted content: objects by digest and tags, per
/// repository, answered like the real thing, pushes and mounts included.
#[derive(Default)]
pub struct ScriptedRegistry {
    /// (repository, digest) -> (media type, bytes)
    objects: HashMap<(String, String), (String, Vec<u8>)>,
    tags: HashMap<(String, String), String>,
    /// Upload sessions: id -> repository, and the bytes PATCHed so far.
    uploads: HashMap<u32, (String, Vec<u8>)>,
    next_upload: u32,
    /// Mounts are refused (as registries that cannot see the source do).
    pub refuse_mounts: bool,
    /// Mounts open an upload session instead of mounting.
    pub mounts_open_sessions: bool,
    /// Blob GETs bigger than this are answered with a held body.
    pub hold_above: Option<u64>,
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

    pub fn tagged(&self, repository: &str, tag: &str, digest: &Digest) -> bool {
        self.tags.get(&(repository.into(), tag.into())) == Some(&digest.to_string())
    }

    /// The bytes `repository:tag` holds.
    pub fn tagged_bytes(&self, repository: &str, tag: &str) -> Option<Vec<u8>> {
        let digest = self.tags.get(&(repository.into(), tag.into()))?;
        let (_, bytes) = self.objects.get(&(repository.into(), digest.clone()))?;
        Some(bytes.clone())
    }

    /// The bytes stored under `digest` in `repository`.
    pub fn bytes(&self, repository: &str, digest: &Digest) -> Option<Vec<u8>> {
        let (_, bytes) = self.objects.get(&(repository.into(), digest.to_string()))?;
        Some(bytes.clone())
    }

    pub fn has(&self, repository: &str, digest: &Digest) -> bool {
        self.objects
            .contains_key(&(repository.into(), digest.to_string()))
    }

    /// Answers reads and writes: uploads (POST, then PUT with `digest=`),
    /// mounts, and manifest PUTs, which need their children present.
    pub fn serve(&mut self, req: &Request) -> Answer {
        let path = req.url.path_and_query.clone();
        match req.method {
            Method::Get | Method::Head => self.answer(req),
            Method::Post => {
                let rest = path.trim_start_matches("/v2/");
                let (repo, query) = rest.split_once("/blobs/uploads/").expect("upload path");
                if let Some(q) = query.strip_prefix("?mount=") {
                    let (digest, from) = q.split_once("&from=").expect("mount query");
                    if self.refuse_mounts {
                        return Ok(response(404, &[], b""));
                    }
                    let key = (from.to_string(), digest.to_string());
                    let found = self.objects.get(&key).cloned();
                    if let (false, Some(obj)) = (self.mounts_open_sessions, found) {
                        self.objects.insert((repo.into(), digest.into()), obj);
                        return Ok(response(201, &[("Docker-Content-Digest", digest)], b""));
                    }
                }
                self.next_upload += 1;
                self.uploads
                    .insert(self.next_upload, (repo.into(), Vec::new()));
                let location = format!("/upload/{}?state=x", self.next_upload);
                Ok(response(202, &[("Location", &location)], b""))
            }
            Method::Patch if path.starts_with("/upload/") => {
                let id: u32 = path[8..].split('?').next().unwrap().parse().unwrap();
                let (_, received) = self.uploads.get_mut(&id).expect("an open session");
                let RequestBody::Bytes(chunk) = &req.body else {
                    panic!("chunks are sent whole")
                };
                // As distribution checks it: the chunk starts where the
                // upload is, and says how long it is.
                let range = req.headers.get("content-range").expect("Content-Range");
                let expected = format!("{}-{}", received.len(), received.len() + chunk.len() - 1);
                if range != expected {
                    return Ok(response(416, &[], b""));
                }
                received.extend_from_slice(chunk);
                let location = format!("/upload/{id}?state=after-{}", received.len());
                let range = format!("0-{}", received.len() - 1);
                Ok(response(
                    202,
                    &[("Location", &location), ("Range", &range)],
                    b"",
                ))
            }
            Method::Put if path.starts_with("/upload/") => {
                let id: u32 = path[8..].split('?').next().unwrap().parse().unwrap();
                let (repo, received) = self.uploads.remove(&id).expect("an open session");
                let digest = path
                    .split("digest=")
                    .nth(1)
                    .expect("digest= on the PUT")
                    .to_string();
                let bytes = match &req.body {
                    RequestBody::Bytes(b) => [&received[..], b].concat(),
                    // A streamed body: the scripted driver carries no bytes.
                    RequestBody::Transfer { size, .. } => vec![0; *size as usize],
                    RequestBody::Chunk { .. } => panic!("a PUT carries no chunk"),
                    RequestBody::Empty => received,
                };
                if !matches!(req.body, RequestBody::Transfer { .. })
                    && Digest::sha256(&bytes).to_string() != digest
                {
                    let e = br#"{"errors":[{"code":"DIGEST_INVALID"}]}"#;
                    return Ok(response(400, &[], e));
                }
                self.objects.insert(
                    (repo, digest.clone()),
                    ("application/octet-stream".into(), bytes),
                );
                Ok(response(201, &[("Docker-Content-Digest", &digest)], b""))
            }
            Method::Put => {
                let rest = path.trim_start_matches("/v2/");
                let (repo, object) = rest.rsplit_once("/manifests/").expect("manifest path");
                let RequestBody::Bytes(bytes) = &req.body else {
                    panic!("manifests are sent whole")
                };
                let children = ocirelay_core::manifest::ManifestChildren::parse(bytes).unwrap();
                let all = children
                    .manifests
                    .iter()
                    .chain(children.config.iter())
                    .chain(children.layers.iter());
                for c in all {
                    if c.urls.is_empty() && !self.has(repo, &c.digest) {
                        let e = br#"{"errors":[{"code":"MANIFEST_BLOB_UNKNOWN"}]}"#;
                        return Ok(response(400, &[], e));
                    }
                }
                let media_type = req
                    .headers
                    .get("content-type")
                    .unwrap_or_default()
                    .to_string();
                let d = self.put(repo, &media_type, bytes);
                if !object.starts_with("sha256:") {
                    self.tag(repo, object, &d);
                }
                Ok(response(
                    201,
                    &[("Docker-Content-Digest", &d.to_string())],
                    b"",
                ))
            }
            _ => Ok(response(405, &[], b"")),
        }
    }

    /// Answers GET/HEAD of `/v2/<repo>/(manifests|blobs)/<ref>`, and a
    /// repository's tag list (one page, sorted).
    pub fn answer(&self, req: &Request) -> Answer {
        let path = req.url.path_and_query.trim_start_matches("/v2/");
        if let Some((repo, _)) = path.split_once("/tags/list") {
            let mut tags: Vec<&str> = self
                .tags
                .keys()
                .filter(|(r, _)| r == repo)
                .map(|(_, t)| t.as_str())
                .collect();
            if tags.is_empty() {
                return Ok(response(
                    404,
                    &[],
                    br#"{"errors":[{"code":"NAME_UNKNOWN"}]}"#,
                ));
            }
            tags.sort_unstable();
            let body = serde_json::json!({"name": repo, "tags": tags}).to_string();
            return Ok(response(
                200,
                &[("Content-Type", "application/json")],
                body.as_bytes(),
            ));
        }
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
                let big = self.hold_above.is_some_and(|h| bytes.len() as u64 > h);
                if req.method == Method::Get && big {
                    let mut r = response(
                        200,
                        &[("Content-Length", &len), ("Docker-Content-Digest", &digest)],
                        b"",
                    );
                    r.body = ResponseBody::Held;
                    return Ok(r);
                }
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
