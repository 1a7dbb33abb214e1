//! A minimal pusher for test registries (HTTPS or plain, no auth), for
//! what skopeo's OCI layout source will not take (Docker manifest lists):
//! one HTTP/1.1 request per connection.

use std::path::Path;

use ocirelay_core::manifest::ManifestChildren;
use ocirelay_core::Descriptor;

use crate::http1::{exchange, Answer};
use crate::registry::Registry;

/// Sends one request to `registry`; its answer, which must not be an error.
fn request(
    registry: &Registry,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: &[u8],
) -> Answer {
    let host = registry.host();
    let conn = crate::tls::connect(host, registry.is_tls());
    let headers: Vec<(&str, &str)> = content_type
        .map(|t| ("Content-Type", t))
        .into_iter()
        .collect();
    let answer = exchange(conn, host, method, path, &headers, body);
    assert!(
        answer.status < 300,
        "{method} {path}: {}: {}",
        answer.status,
        String::from_utf8_lossy(&answer.body)
    );
    answer
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
