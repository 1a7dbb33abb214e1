//! ocirelay as a WebAssembly component: exports the `ocirelay:registry`
//! world and performs the core's requests over `wasi:http`. It imports only
//! standard WASI interfaces, so any wasi-http host can run it.

mod convert;
mod driver;
mod transport;

use std::cell::RefCell;

use ocirelay_core::digest::Verifier;
use ocirelay_core::ops::lookup::{Body, Lookup, LookupKind, LookupOptions};
use ocirelay_core::{Client as CoreClient, Reference};

use bindings::exports::ocirelay::registry::registry as wit;
use bindings::exports::ocirelay::registry::registry as wt;
use transport::BodyStream;

mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "relay",
    });
    use super::Component;
    export!(Component);
}

struct Component;

impl wit::Guest for Component {
    type Client = ClientResource;
    type BlobReader = BlobReader;

    fn parse_ref(text: String) -> Result<wt::Reference, wt::Error> {
        Reference::parse(&text)
            .map(|r| convert::reference_to_wit(&r))
            .map_err(convert::error)
    }
}

/// One client: the core's shared state (tokens; later the cache).
struct ClientResource {
    core: RefCell<CoreClient>,
}

impl wit::GuestClient for ClientResource {
    fn new(config: wit::Config) -> Self {
        ClientResource {
            core: RefCell::new(CoreClient::new(convert::config_from_wit(config))),
        }
    }

    fn lookup(
        &self,
        reference: wt::Reference,
        options: wit::LookupOptions,
    ) -> Result<Option<wit::BlobReader>, wt::Error> {
        let reference = convert::reference_from_wit(&reference).map_err(convert::error)?;
        let options = LookupOptions {
            kind: match options.kind {
                wit::LookupKind::Manifest => LookupKind::Manifest,
                wit::LookupKind::Blob => LookupKind::Blob,
            },
            head: options.head,
        };
        let mut client = self.core.borrow_mut();
        let mut op = Lookup::new(&client, reference, options).map_err(convert::error)?;
        let (outcome, mut held) = driver::run(&mut client, &mut op);
        let Some(found) = outcome.map_err(convert::error)? else {
            return Ok(None);
        };
        let content = match found.body {
            Body::Empty => Content::Bytes(Vec::new(), 0),
            Body::Bytes(bytes) => Content::Bytes(bytes, 0),
            Body::Stream { request, verifier } => match held.remove(&request) {
                Some(stream) => Content::Stream {
                    stream,
                    verifier: Some(verifier),
                },
                None => {
                    return Err(wt::Error::Protocol(
                        "blob body went missing in the driver".into(),
                    ))
                }
            },
        };
        Ok(Some(wit::BlobReader::new(BlobReader {
            descriptor: convert::descriptor_to_wit(&found.descriptor),
            content: RefCell::new(content),
        })))
    }
}

enum Content {
    /// Verified bytes and the read position.
    Bytes(Vec<u8>, usize),
    /// A body read straight from the registry; the verifier is taken at the end.
    Stream {
        stream: BodyStream,
        verifier: Option<Box<Verifier>>,
    },
}

/// A found object's descriptor and content, checked as it is read.
struct BlobReader {
    descriptor: wt::Descriptor,
    content: RefCell<Content>,
}

impl wit::GuestBlobReader for BlobReader {
    fn descriptor(&self) -> wt::Descriptor {
        self.descriptor.clone()
    }

    fn read(&self, max: u64) -> Result<Vec<u8>, wt::Error> {
        let max = max.clamp(1, 16 * 1024 * 1024);
        match &mut *self.content.borrow_mut() {
            Content::Bytes(bytes, pos) => {
                let end = (*pos + max as usize).min(bytes.len());
                let chunk = bytes[*pos..end].to_vec();
                *pos = end;
                Ok(chunk)
            }
            Content::Stream { stream, verifier } => {
                let Some(v) = verifier.as_mut() else {
                    return Ok(Vec::new());
                };
                let chunk = stream.read(max).map_err(|e| {
                    wt::Error::Transport(format!("{}: {}", self.descriptor.digest, e.message))
                })?;
                match chunk {
                    Some(chunk) => {
                        v.update(&chunk).map_err(convert::error)?;
                        Ok(chunk)
                    }
                    None => {
                        // The end: the whole must match before we say so.
                        if let Some(v) = verifier.take() {
                            v.finish().map_err(convert::error)?;
                        }
                        Ok(Vec::new())
                    }
                }
            }
        }
    }
}
