//! Blob writers: a blob pushed a chunk at a time (`client.push-blob`),
//! gathered into PATCHes of at least 1 MiB.

use std::cell::RefCell;
use std::rc::Rc;

use ocirelay_core::ops::push_blob::PushBlob;
use ocirelay_core::Client as CoreClient;

use ocirelay_core::{Descriptor, Error};

use crate::driver;
use crate::transport::SendOptions;

/// Written bytes are gathered up to this size before they go out as one
/// PATCH, so an embedder may write small pieces (cheaper for some bindings)
/// without a request each; a larger chunk goes out as it is.
const PATCH_SIZE: usize = 1 << 20;

/// A blob pushed a chunk at a time: each PATCH runs one step of the push on
/// the client's core, so at most a chunk (or `PATCH_SIZE`) is held here.
pub struct BlobWriter {
    core: Rc<RefCell<CoreClient>>,
    send: SendOptions,
    push: RefCell<PushBlob>,
    /// Written, not sent yet.
    pending: RefCell<Vec<u8>>,
}

impl BlobWriter {
    /// A writer for `push`, which has looked for the blob already.
    pub fn new(core: Rc<RefCell<CoreClient>>, send: SendOptions, push: PushBlob) -> Self {
        BlobWriter {
            core,
            send,
            push: RefCell::new(push),
            pending: RefCell::new(Vec::new()),
        }
    }
}

impl BlobWriter {
    /// Sends `bytes` as the push's next chunk (one PATCH).
    fn send(&self, push: &mut PushBlob, bytes: Vec<u8>) -> Result<(), Error> {
        push.write(&self.core.borrow(), bytes.into())?;
        let mut client = self.core.borrow_mut();
        let (outcome, _) = driver::run(&mut client, push, self.send);
        outcome??;
        Ok(())
    }

    /// Sends the next bytes of the blob; `false` when the registry has it
    /// already (nothing is sent).
    pub fn write(&self, chunk: Vec<u8>) -> Result<bool, Error> {
        let mut push = self.push.borrow_mut();
        if push.present().is_some() {
            return Ok(false);
        }
        let mut pending = self.pending.borrow_mut();
        if pending.is_empty() && chunk.len() >= PATCH_SIZE {
            self.send(&mut push, chunk)?;
        } else {
            pending.extend_from_slice(&chunk);
            if pending.len() >= PATCH_SIZE {
                self.send(&mut push, std::mem::take(&mut *pending))?;
            }
        }
        Ok(true)
    }

    /// Completes the push once every byte matched the digest.
    pub fn finish(&self) -> Result<Descriptor, Error> {
        let mut push = self.push.borrow_mut();
        if let Some(d) = push.present() {
            return Ok(d.clone());
        }
        let rest = std::mem::take(&mut *self.pending.borrow_mut());
        if !rest.is_empty() {
            self.send(&mut push, rest)?;
        }
        push.finish(&self.core.borrow())?;
        let mut client = self.core.borrow_mut();
        let (outcome, _) = driver::run(&mut client, &mut *push, self.send);
        outcome??.ok_or_else(|| Error::Internal("a completed push gave no descriptor".into()))
    }
}
