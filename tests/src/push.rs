//! A minimal pusher for test registries (HTTPS or plain, no auth), for
//! what skopeo's OCI layout source will not take (Docker manifest lists):
//! one HTTP/1.1 request per connection.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;

use ocirelay_core::manifest::ManifestChildren;
use ocirelay_core::Descriptor;

use crate::registry::Registry;

/// Status, headers and body of one answer.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn request(
    registry: &Registry,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: &[u8],
) -> Answer {
    let host = registry.host();
    let mut conn = crate::tls::connect(host, registry.is_tls());
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(t) = content_type {
        head.push_str(&format!("Content-Type: {t}\r\n"));
    }
    head.push_str("\r\n");
    conn.write_all(head.as_bytes())
        .and_then(|()| conn.write_all(body))
        .and_then(|()| conn.flush())
        .expect("sending a request");
    let mut reader = BufReader::new(conn);
    let mut status_line = String::new();
    reader
        .read_line(&mut status_line)
        .expect("reading the status line");
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((n, v)) = line.split_once(':') {
            headers.push((n.trim().to_string(), v.trim().to_string()));
        }
    }
    let mut rest = Vec::new();
    let _ = reader.read_to_end(&mut rest);
    assert!(
        status < 300,
        "{method} {path}: {status}: {}",
        String::from_utf8_lossy(&rest)
    );
    Answer { status, headers }
}

fn blob_bytes(layout: &Path, d: &Descriptor) -> Vec<u8> {
    std::fs::read(
        layout
            .join("blobs")
            .join(d.digest.algorithm().name())
            .join(d.digest.hex()),
    )
    .unwrap_or_else(|e| panic!("blob {} not in the layout: {e}", d.digest))
}

fn push_blob(registry: &Registry, repository: &str, layout: &Path, d: &Descriptor) {
    let start = request(
        registry,
        "POST",
        &format!("/v2/{repository}/blobs/uploads/"),
        None,
        b"",
    );
    assert_eq!(start.status, 202);
    let location = start.header("location").expect("upload Location");
    let path = location
        .split_once("://")
        .map(|(_, r)| &r[r.find('/').unwrap_or(0)..])
        .unwrap_or(location);
    let sep = if path.contains('?') { '&' } else { '?' };
    request(
        registry,
        "PUT",
        &format!("{path}{sep}digest={}", d.digest),
        Some("application/octet-stream"),
        &blob_bytes(layout, d),
    );
}

/// Pushes `d` (a manifest or index in the layout) and everything under it,
/// children first; `tag` names it, or its digest does.
pub fn push_tree(
    registry: &Registry,
    repository: &str,
    layout: &Path,
    d: &Descriptor,
    tag: Option<&str>,
) {
    let bytes = blob_bytes(layout, d);
    let children = ManifestChildren::parse(&bytes).expect("manifest JSON");
    for m in &children.manifests {
        push_tree(registry, repository, layout, m, None);
    }
    for b in children.config.iter().chain(children.layers.iter()) {
        push_blob(registry, repository, layout, b);
    }
    let name = tag
        .map(str::to_string)
        .unwrap_or_else(|| d.digest.to_string());
    request(
        registry,
        "PUT",
        &format!("/v2/{repository}/manifests/{name}"),
        Some(&d.media_type),
        &bytes,
    );
}
