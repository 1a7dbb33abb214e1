//! The one error type of the core: every failure names the reference, host or
//! field it is about, so a user can act on it without a debugger.

/// What went wrong, with the offending input quoted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A reference string that the distribution grammar rejects.
    #[error("invalid reference {input:?}: {reason}")]
    InvalidReference {
        /// The string as given.
        input: String,
        /// Which rule it breaks.
        reason: String,
    },
    /// A digest string that is malformed or of an unsupported algorithm.
    #[error("invalid digest {input:?}: {reason}")]
    InvalidDigest {
        /// The string as given.
        input: String,
        /// Which rule it breaks.
        reason: String,
    },
    /// An argument that makes no sense for the operation (unknown lookup type, ...).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// Credentials were refused, or a token could not be obtained.
    #[error("authentication to {host} failed: {reason}")]
    Authentication {
        /// The registry (or token realm) that refused.
        host: String,
        /// What it said.
        reason: String,
    },
    /// The registry answered with an error status we cannot treat as "not found".
    #[error("{subject}: registry answered {status}{}", code_and_message(.code, .message))]
    Registry {
        /// The reference or URL the request was for.
        subject: String,
        /// The HTTP status.
        status: u16,
        /// The first `errors[].code` of the body, when there is one.
        code: Option<String>,
        /// The first `errors[].message` of the body, when there is one.
        message: Option<String>,
    },
    /// Content that does not match its digest or size: the registry lied or the data broke.
    #[error("{subject}: content does not match: {detail}")]
    Integrity {
        /// The reference the content was read for.
        subject: String,
        /// Expected versus found.
        detail: String,
    },
    /// A response that breaks the protocol (missing header, bad JSON, too large, ...).
    #[error("{subject}: {detail}")]
    Protocol {
        /// The reference or URL the response was for.
        subject: String,
        /// What is wrong with it.
        detail: String,
    },
    /// The request never got an HTTP answer (connection refused, DNS, TLS, ...).
    #[error("cannot reach {host}: {message}")]
    Transport {
        /// The host that could not be reached.
        host: String,
        /// The transport's own words.
        message: String,
        /// Whether trying again cannot help (refused by policy, unknown
        /// host, untrusted certificate), as opposed to a broken connection.
        permanent: bool,
    },
}

fn code_and_message(code: &Option<String>, message: &Option<String>) -> String {
    match (code, message) {
        (Some(c), Some(m)) => format!(" {c}: {m}"),
        (Some(c), None) => format!(" {c}"),
        (None, Some(m)) => format!(": {m}"),
        (None, None) => String::new(),
    }
}

/// Shorthand for results of the core.
pub type Result<T, E = Error> = std::result::Result<T, E>;
