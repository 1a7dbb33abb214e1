//! `ocirelay lookup`: what the seed's lookup tool prints for each reference.

use std::io::Write;

use base64::Engine as _;
use ocirelay_core::ops::lookup::LookupKind;
use ocirelay_core::{Descriptor, Digest, Platform, Reference};

use crate::error::HostError;
use crate::output::write_json;
use crate::runtime::{wit, Runtime, Session};

/// Arguments of `ocirelay lookup`.
#[derive(Debug, clap::Args)]
pub struct LookupArgs {
    /// What to look up: `manifest` (by tag or digest) or `blob` (by digest).
    #[arg(long = "type", value_name = "TYPE", default_value = "manifest")]
    pub kind: String,
    /// Send HEAD instead of GET and print the descriptor instead of the content.
    #[arg(long)]
    pub head: bool,
    /// References to look up, e.g. `hello-world:latest` or `localhost:5000/foo@sha256:…`.
    #[arg(value_name = "REF", required = true)]
    pub refs: Vec<String>,
}

/// Runs the command, printing one JSON document per reference.
pub async fn run(
    runtime: &Runtime,
    config: wit::Config,
    args: LookupArgs,
) -> Result<(), HostError> {
    let kind = match args.kind.parse::<LookupKind>()? {
        LookupKind::Manifest => wit::LookupKind::Manifest,
        LookupKind::Blob => wit::LookupKind::Blob,
    };
    // Every reference is checked before anything is sent.
    let refs = args
        .refs
        .iter()
        .map(|r| Reference::parse(r))
        .collect::<Result<Vec<_>, _>>()?;
    let mut session = runtime.session(config).await?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let options = wit::LookupOptions {
        kind,
        head: args.head,
    };
    for reference in &refs {
        print_one(&mut session, &mut out, reference, options).await?;
    }
    Ok(())
}

fn output_error(e: std::io::Error) -> HostError {
    HostError::Setup(format!("writing output: {e}"))
}

async fn print_one<W: Write>(
    session: &mut Session,
    out: &mut W,
    reference: &Reference,
    options: wit::LookupOptions,
) -> Result<(), HostError> {
    let Some(found) = session.lookup(reference, options).await? else {
        return write_json(out, &serde_json::Value::Null).map_err(output_error);
    };
    if options.head {
        let descriptor = descriptor_from_wit(&found.descriptor)?;
        session.close(found).await?;
        return write_json(out, &descriptor).map_err(output_error);
    }
    match options.kind {
        wit::LookupKind::Manifest => {
            let mut bytes = Vec::new();
            loop {
                let chunk = session.read(&found, 1 << 20).await?;
                if chunk.is_empty() {
                    break;
                }
                bytes.extend_from_slice(&chunk);
            }
            session.close(found).await?;
            let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| {
                HostError::Setup(format!("{reference}: the manifest is not JSON: {e}"))
            })?;
            write_json(out, &value).map_err(output_error)
        }
        wit::LookupKind::Blob => {
            // Streamed as base64 in 3-byte multiples so memory stays bounded;
            // a mismatch surfaces on the last read, before the closing quote.
            out.write_all(b"\"").map_err(output_error)?;
            let mut carry = Vec::new();
            loop {
                let chunk = session.read(&found, 1 << 20).await?;
                if chunk.is_empty() {
                    break;
                }
                carry.extend_from_slice(&chunk);
                let whole = carry.len() / 3 * 3;
                let encoded = base64::engine::general_purpose::STANDARD.encode(&carry[..whole]);
                out.write_all(encoded.as_bytes()).map_err(output_error)?;
                carry.drain(..whole);
            }
            let encoded = base64::engine::general_purpose::STANDARD.encode(&carry);
            out.write_all(encoded.as_bytes()).map_err(output_error)?;
            out.write_all(b"\"\n").map_err(output_error)?;
            session.close(found).await
        }
    }
}

/// The component's descriptor as the core's serde type (OCI JSON shape).
pub fn descriptor_from_wit(d: &wit::Descriptor) -> Result<Descriptor, HostError> {
    let digest = Digest::parse(&d.digest)
        .map_err(|e| HostError::Setup(format!("component returned a bad digest: {e}")))?;
    let mut out = Descriptor::new(d.media_type.clone(), digest, d.size);
    out.urls = d.urls.clone();
    out.annotations = d.annotations.iter().cloned().collect();
    out.artifact_type = d.artifact_type.clone();
    out.platform = d.platform.as_ref().map(|p| Platform {
        architecture: p.architecture.clone(),
        os: p.os.clone(),
        os_version: p.os_version.clone(),
        os_features: p.os_features.clone(),
        variant: p.variant.clone(),
    });
    Ok(out)
}
