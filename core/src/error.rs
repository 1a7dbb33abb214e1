//! The one error type of the core: every failure names the reference, host or
//! field it is about, so a user can act on it without a debugger. Who is at
//! fault decides the variant: the caller's input ([`Error::InvalidReference`],
//! [`Error::InvalidDigest`], [`Error::InvalidInput`]), the registry or the
//! network (the rest but [`Error::Internal`]), or ocirelay itself
//! ([`Error::Internal`]).

use crate::distribution::RegistryError;
use crate::http::{Response, TransportError, TransportErrorKind};

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
    /// What an operation needs does not exist (a copy's source, a child).
    /// A lookup says "not found" with a value instead.
    #[error("{subject}: not found")]
    NotFound {
        /// The reference that does not exist.
        subject: String,
    },
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
        /// How long the registry asked to wait (`Retry-After`), in seconds.
        retry_after_secs: Option<u64>,
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
    #[error("{}", transport_message(.host, .cause))]
    Transport {
        /// The host that could not be reached.
        host: String,
        /// What the transport said.
        cause: TransportError,
    },
    /// A bug in ocirelay (an operation that stalled, a body that went
    /// missing between the core and its driver): never the user's doing.
    #[error("internal error (a bug in ocirelay): {0}")]
    Internal(String),
}

impl Error {
    /// The registry's error answer to a request about `subject`, with the
    /// code and message of its error body.
    pub fn registry(subject: impl Into<String>, response: &Response) -> Self {
        let body = RegistryError::parse(response.bytes());
        let retry_after = response
            .headers
            .get("retry-after")
            .and_then(|value| crate::retry::parse_retry_after(value, response.headers.get("date")));
        Error::Registry {
            subject: subject.into(),
            status: response.status,
            code: body.code,
            message: body.message,
            retry_after_secs: retry_after.map(|d| d.as_secs()),
        }
    }

    /// An answer about `subject` that breaks the protocol.
    pub fn protocol(subject: impl Into<String>, detail: impl Into<String>) -> Self {
        Error::Protocol {
            subject: subject.into(),
            detail: detail.into(),
        }
    }

    /// Content for `subject` that does not match its digest or size.
    pub fn integrity(subject: impl Into<String>, detail: impl Into<String>) -> Self {
        Error::Integrity {
            subject: subject.into(),
            detail: detail.into(),
        }
    }

    /// `subject` does not exist.
    pub fn not_found(subject: impl Into<String>) -> Self {
        Error::NotFound {
            subject: subject.into(),
        }
    }

    /// No answer from `host`.
    pub fn transport(host: impl Into<String>, cause: TransportError) -> Self {
        Error::Transport {
            host: host.into(),
            cause,
        }
    }

    /// Whether trying the whole operation again may help: a connection
    /// that broke, not a refusal or a fault of the content.
    pub fn is_transient(&self) -> bool {
        matches!(self, Error::Transport { cause, .. } if !cause.is_permanent())
    }
}

fn code_and_message(code: &Option<String>, message: &Option<String>) -> String {
    match (code, message) {
        (Some(c), Some(m)) => format!(" {c}: {m}"),
        (Some(c), None) => format!(" {c}"),
        (None, Some(m)) => format!(": {m}"),
        (None, None) => String::new(),
    }
}

fn transport_message(host: &str, cause: &TransportError) -> String {
    match cause.kind {
        TransportErrorKind::Unresolved => format!("cannot resolve {host}"),
        TransportErrorKind::Integrity => format!("{host}: {}", cause.message),
        _ => format!("cannot reach {host}: {}", cause.message),
    }
}

/// Shorthand for results of the core.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// `text` fit to print: control characters (escape sequences, newlines, a
/// carriage return that would overwrite a line) shown as `\u{…}` escapes.
/// Error messages quote what registries say, and a terminal must not act
/// on it.
pub fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::{Headers, ResponseBody};

    #[test]
    fn registry_errors_quote_the_body() {
        let response = Response {
            status: 403,
            headers: Headers::new(),
            body: ResponseBody::Bytes(bytes::Bytes::from_static(
                br#"{"errors":[{"code":"DENIED","message":"no"}]}"#,
            )),
        };
        let e = Error::registry("r/x:v1", &response);
        assert_eq!(e.to_string(), "r/x:v1: registry answered 403 DENIED: no");
    }

    #[test]
    fn a_registry_error_keeps_its_retry_after() {
        let mut headers = Headers::new();
        headers.set("Retry-After", "17");
        let response = Response {
            status: 429,
            headers,
            body: ResponseBody::Bytes(bytes::Bytes::new()),
        };
        let e = Error::registry("r/x:v1", &response);
        assert!(
            matches!(
                e,
                Error::Registry {
                    retry_after_secs: Some(17),
                    ..
                }
            ),
            "{e:?}"
        );
    }

    #[test]
    fn what_a_registry_says_is_printed_inert() {
        let forged = "denied\u{1b}[2K\r\nocirelay: copied\u{7}";
        assert_eq!(
            printable(forged),
            "denied\\u{1b}[2K\\u{d}\\u{a}ocirelay: copied\\u{7}"
        );
        assert!(matches!(
            printable("plain text"),
            std::borrow::Cow::Borrowed(_)
        ));
    }

    #[test]
    fn transport_errors_name_the_host() {
        let e = Error::transport(
            "nowhere.invalid:5000",
            TransportError::unresolved("NXDOMAIN"),
        );
        assert_eq!(e.to_string(), "cannot resolve nowhere.invalid:5000");
        assert!(!e.is_transient());
        let e = Error::transport("h:1", TransportError::transient("connection reset"));
        assert_eq!(e.to_string(), "cannot reach h:1: connection reset");
        assert!(e.is_transient());
        assert!(!Error::transport("h", TransportError::permanent("denied")).is_transient());
        assert!(!Error::not_found("x").is_transient());
    }
}
