//! Errors of the host, each mapped to an exit code by who must act on it:
//! 2 the user (bad input), 1 the registry or the network (a failed
//! operation), 3 ourselves (a bug in ocirelay).

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
    /// Writing the output failed (a reader that went away is not reported).
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
    /// Another error, its message rewritten for the user (OCI layouts
    /// named as given), its exit code kept.
    #[error("{message}")]
    Shown {
        /// The message.
        message: String,
        /// The exit code of the error it was.
        exit_code: i32,
    },
    /// A bug in ocirelay outside the component.
    #[error("internal error (a bug in ocirelay): {0}")]
    Internal(String),
}

impl HostError {
    /// A `map_err` adapter for wasmtime errors.
    pub fn runtime(context: &'static str) -> impl FnOnce(wasmtime::Error) -> HostError {
        move |source| HostError::Runtime { context, source }
    }

    /// A file the user gave (`what` names it) that the core found wrong:
    /// bad input, saying what is wrong without the core's "invalid input".
    pub fn bad_file(what: impl std::fmt::Display, e: ocirelay_core::Error) -> HostError {
        let detail = match e {
            ocirelay_core::Error::InvalidInput(detail) => detail,
            other => other.to_string(),
        };
        HostError::Usage(format!("{what}: {detail}"))
    }

    /// The process exit code: 2 for input the user must fix, 1 for a failed
    /// operation (registry, network, authentication, integrity, not found),
    /// 3 for a failure of ocirelay itself.
    pub fn exit_code(&self) -> i32 {
        match self {
            HostError::Usage(_)
            | HostError::Component(wit::Error::InvalidReference(_) | wit::Error::InvalidInput(_)) => {
                2
            }
            HostError::Runtime { .. }
            | HostError::Internal(_)
            | HostError::Component(wit::Error::Internal(_)) => 3,
            HostError::Component(_) | HostError::Setup(_) | HostError::Output(_) => 1,
            HostError::Shown { exit_code, .. } => *exit_code,
        }
    }

    /// Whether this is a write to a reader that went away (`| head`):
    /// nothing is left to say to anyone.
    pub fn is_closed_output(&self) -> bool {
        matches!(self, HostError::Output(e) if e.kind() == std::io::ErrorKind::BrokenPipe)
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
            ocirelay_core::Error::Internal(_) => HostError::Internal(e.to_string()),
            other => HostError::Setup(other.to_string()),
        }
    }
}

pub(crate) fn component_message(e: &wit::Error) -> &str {
    match e {
        wit::Error::InvalidReference(m)
        | wit::Error::InvalidInput(m)
        | wit::Error::NotFound(m)
        | wit::Error::Authentication(m)
        | wit::Error::Registry(m)
        | wit::Error::Integrity(m)
        | wit::Error::Protocol(m)
        | wit::Error::Transport(m)
        | wit::Error::Timeout(m)
        | wit::Error::Internal(m) => m,
        wit::Error::RateLimited(r) => &r.message,
    }
}
