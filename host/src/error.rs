//! Errors of the host, each mapped to an exit code.

use crate::runtime::wit;

/// What can stop a command.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// Bad command-line input.
    #[error("{0}")]
    Usage(String),
    /// The component reported a failure.
    #[error("{}", component_message(.0))]
    Component(wit::Error),
    /// Set-up outside the component failed (credentials, TLS roots, ...).
    #[error("{0}")]
    Setup(String),
    /// Writing the output failed (a closed pipe is not reported).
    #[error("writing output: {0}")]
    Output(#[from] std::io::Error),
    /// The wasm runtime failed (a trap is a bug in ocirelay).
    #[error("{context}: {source:#}")]
    Runtime {
        /// What we were doing.
        context: &'static str,
        /// wasmtime's error.
        source: wasmtime::Error,
    },
}

impl HostError {
    /// A `map_err` adapter for wasmtime errors.
    pub fn runtime(context: &'static str) -> impl FnOnce(wasmtime::Error) -> HostError {
        move |source| HostError::Runtime { context, source }
    }

    /// The process exit code: 2 for input the user must fix, 1 for a failed
    /// operation (registry, network, authentication, integrity), 3 for a
    /// failure of ocirelay itself.
    pub fn exit_code(&self) -> i32 {
        match self {
            HostError::Usage(_) => 2,
            HostError::Component(wit::Error::InvalidReference(_) | wit::Error::InvalidInput(_)) => {
                2
            }
            HostError::Component(_) | HostError::Setup(_) | HostError::Output(_) => 1,
            HostError::Runtime { .. } => 3,
        }
    }
}

impl From<wit::Error> for HostError {
    fn from(e: wit::Error) -> Self {
        HostError::Component(e)
    }
}

impl From<ocirelay_core::Error> for HostError {
    fn from(e: ocirelay_core::Error) -> Self {
        match e {
            ocirelay_core::Error::InvalidReference { .. }
            | ocirelay_core::Error::InvalidDigest { .. }
            | ocirelay_core::Error::InvalidInput(_) => HostError::Usage(e.to_string()),
            other => HostError::Setup(other.to_string()),
        }
    }
}

fn component_message(e: &wit::Error) -> &str {
    match e {
        wit::Error::InvalidReference(m)
        | wit::Error::InvalidInput(m)
        | wit::Error::Authentication(m)
        | wit::Error::Registry(m)
        | wit::Error::Integrity(m)
        | wit::Error::Protocol(m)
        | wit::Error::Transport(m) => m,
    }
}
