//! Plain-data HTTP: what the core asks a driver to send and what the driver
//! hands back. No sockets here; a driver maps these onto its transport.

use std::fmt;

use crate::error::{Error, Result};

/// Identifies one request a driver sent for an operation, so its response
/// can be handed back to the right place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(pub u64);

/// HTTP methods the distribution protocol uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// GET
    Get,
    /// HEAD
    Head,
    /// POST
    Post,
    /// PUT
    Put,
    /// PATCH
    Patch,
    /// DELETE
    Delete,
}

impl Method {
    /// The method's name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
        }
    }
}

/// `http` or `https`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// Plain HTTP (loopback and registries configured as insecure).
    Http,
    /// HTTP over TLS.
    Https,
}

/// An absolute URL split the way wasi-http wants it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    /// The scheme.
    pub scheme: Scheme,
    /// `host[:port]`.
    pub authority: String,
    /// Path and query, starting with `/`.
    pub path_and_query: String,
}

impl Url {
    /// Parses an absolute `http://` or `https://` URL.
    pub fn parse(input: &str) -> Result<Self> {
        let bad = |reason: &str| Error::InvalidInput(format!("URL {input:?}: {reason}"));
        let (scheme, rest) = if let Some(r) = input.strip_prefix("https://") {
            (Scheme::Https, r)
        } else if let Some(r) = input.strip_prefix("http://") {
            (Scheme::Http, r)
        } else {
            return Err(bad("scheme must be http or https"));
        };
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let authority = &rest[..end];
        if authority.is_empty() || authority.contains('@') {
            return Err(bad("missing host, or user info in it"));
        }
        let mut path = rest[end..].split('#').next().unwrap_or("").to_string();
        if !path.starts_with('/') {
            path.insert(0, '/');
        }
        Ok(Url {
            scheme,
            authority: authority.to_string(),
            path_and_query: path,
        })
    }

    /// Resolves a `Location` header against this URL (absolute, scheme-relative,
    /// absolute-path and relative-path forms).
    pub fn join(&self, location: &str) -> Result<Url> {
        if location.starts_with("http://") || location.starts_with("https://") {
            return Url::parse(location);
        }
        if let Some(rest) = location.strip_prefix("//") {
            let scheme = match self.scheme {
                Scheme::Http => "http://",
                Scheme::Https => "https://",
            };
            return Url::parse(&format!("{scheme}{rest}"));
        }
        let path = if location.starts_with('/') {
            location.to_string()
        } else {
            let base = self.path_and_query.split('?').next().unwrap_or("/");
            let dir = &base[..base.rfind('/').map_or(0, |i| i + 1)];
            format!("{dir}{location}")
        };
        Ok(Url {
            scheme: self.scheme,
            authority: self.authority.clone(),
            path_and_query: path,
        })
    }
}

impl fmt::Display for Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match self.scheme {
            Scheme::Http => "http",
            Scheme::Https => "https",
        };
        write!(f, "{scheme}://{}{}", self.authority, self.path_and_query)
    }
}

/// Header fields in order; names compare case-insensitively.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(Vec<(String, String)>);

impl Headers {
    /// No headers.
    pub fn new() -> Self {
        Headers(Vec::new())
    }

    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `name`, in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Replaces every value of `name` with `value`.
    pub fn set(&mut self, name: &str, value: impl Into<String>) {
        self.remove(name);
        self.0.push((name.to_string(), value.into()));
    }

    /// Appends a value.
    pub fn append(&mut self, name: &str, value: impl Into<String>) {
        self.0.push((name.to_string(), value.into()));
    }

    /// Removes every value of `name`.
    pub fn remove(&mut self, name: &str) {
        self.0.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
    }

    /// All fields in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// `Content-Length`, when present and numeric.
    pub fn content_length(&self) -> Option<u64> {
        self.get("content-length")?.trim().parse().ok()
    }
}

impl FromIterator<(String, String)> for Headers {
    fn from_iter<I: IntoIterator<Item = (String, String)>>(iter: I) -> Self {
        Headers(iter.into_iter().collect())
    }
}

/// How the driver should treat a response body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyMode {
    /// Read it whole, up to this many bytes; past that, report
    /// [`ResponseBody::TooLarge`] without reading further.
    Buffer(u64),
    /// For a 2xx answer, keep the body unread for the caller to stream
    /// after the operation ([`ResponseBody::Held`]), unless its
    /// `Content-Length` is at most `buffer_up_to`: then read it whole (small
    /// blobs are cached). Any other answer is buffered (error bodies are small).
    Stream {
        /// Largest 2xx body read whole instead of held.
        buffer_up_to: u64,
    },
    /// For a 2xx answer, keep the body unread for the operation's next
    /// request to send on ([`RequestBody::Transfer`]): a copy's source. Until
    /// then it still counts as in flight (its connection is busy). Any other
    /// answer is buffered.
    Relay,
}

/// Largest error or token body the core reads.
pub const SMALL_BODY_LIMIT: u64 = 64 * 1024;

/// A request for a driver to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Method.
    pub method: Method,
    /// Absolute URL.
    pub url: Url,
    /// Headers, `User-Agent` and `Authorization` included.
    pub headers: Headers,
    /// The body.
    pub body: RequestBody,
    /// What to do with the response body.
    pub body_mode: BodyMode,
}

/// What a request carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestBody {
    /// Nothing.
    Empty,
    /// These bytes (manifests, small blobs).
    Bytes(Vec<u8>),
    /// The held body of an earlier response (a blob GET with
    /// [`BodyMode::Relay`]), streamed through by the driver without passing
    /// through the core: `size` bytes exactly.
    Transfer {
        /// The request whose held response body to send.
        from: RequestId,
        /// Its length, sent as `Content-Length`.
        size: u64,
    },
}

impl RequestBody {
    /// The body's length, when it has one.
    pub fn len(&self) -> Option<u64> {
        match self {
            RequestBody::Empty => None,
            RequestBody::Bytes(b) => Some(b.len() as u64),
            RequestBody::Transfer { size, .. } => Some(*size),
        }
    }

    /// Whether there is no body.
    pub fn is_empty(&self) -> bool {
        self.len().unwrap_or(0) == 0
    }
}

/// What a driver got back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// HTTP status.
    pub status: u16,
    /// Response headers.
    pub headers: Headers,
    /// The body, as the request's [`BodyMode`] asked.
    pub body: ResponseBody,
}

/// A response body as handed back by the driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResponseBody {
    /// The whole body.
    Bytes(Vec<u8>),
    /// Larger than the request's buffer limit: not read.
    TooLarge,
    /// A 2xx body of a [`BodyMode::Stream`] request, kept unread by the driver.
    Held,
}

impl Response {
    /// The buffered body, or nothing.
    pub fn bytes(&self) -> &[u8] {
        match &self.body {
            ResponseBody::Bytes(b) => b,
            _ => &[],
        }
    }

    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// The request got no HTTP answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransportError {
    /// The transport's description (connection refused, TLS, ...).
    pub message: String,
    /// Whether trying again can help.
    pub kind: TransportErrorKind,
}

/// Whether a transport failure is worth another try.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportErrorKind {
    /// The connection was refused, reset or timed out: try again.
    Transient,
    /// Refused by the host's policy, an untrusted certificate, an unusable
    /// URL: no retry can mend it.
    Permanent,
    /// The host name does not resolve: no retry can mend it either.
    Unresolved,
}

impl TransportError {
    /// A failure worth another try (reset, refused, timed out).
    pub fn transient(message: impl Into<String>) -> Self {
        TransportError {
            message: message.into(),
            kind: TransportErrorKind::Transient,
        }
    }

    /// A failure no retry can mend.
    pub fn permanent(message: impl Into<String>) -> Self {
        TransportError {
            message: message.into(),
            kind: TransportErrorKind::Permanent,
        }
    }

    /// A host name that does not resolve (`message`: the resolver's words).
    pub fn unresolved(message: impl Into<String>) -> Self {
        TransportError {
            message: message.into(),
            kind: TransportErrorKind::Unresolved,
        }
    }

    /// Whether trying again cannot help.
    pub fn is_permanent(&self) -> bool {
        self.kind != TransportErrorKind::Transient
    }
}

/// Redirects one request follows before giving up.
pub const MAX_REDIRECTS: u8 = 5;

/// The redirects one request has followed: the one place redirects are judged.
#[derive(Debug, Clone, Copy, Default)]
pub struct Redirects(u8);

impl Redirects {
    /// Where the `location` of an answer to `from` leads: an error when it
    /// is one redirect too many, or not a usable URL.
    pub fn follow(&mut self, from: &Url, location: &str) -> Result<Url> {
        self.0 += 1;
        if self.0 > MAX_REDIRECTS {
            return Err(Error::protocol(
                from.to_string(),
                format!("more than {MAX_REDIRECTS} redirects"),
            ));
        }
        from.join(location)
            .map_err(|e| Error::protocol(from.to_string(), format!("bad redirect: {e}")))
    }
}

/// Percent-encodes a query component (RFC 3986 unreserved characters pass).
pub fn encode_query_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_parse_and_join() {
        let u = Url::parse("https://r.example:5000/v2/a/blobs/sha256:x?q=1#frag").unwrap();
        assert_eq!(u.scheme, Scheme::Https);
        assert_eq!(u.authority, "r.example:5000");
        assert_eq!(u.path_and_query, "/v2/a/blobs/sha256:x?q=1");
        assert_eq!(u.join("http://cdn/x").unwrap().to_string(), "http://cdn/x");
        assert_eq!(u.join("//cdn/y").unwrap().to_string(), "https://cdn/y");
        assert_eq!(
            u.join("/z?a=b").unwrap().to_string(),
            "https://r.example:5000/z?a=b"
        );
        assert_eq!(
            u.join("other").unwrap().to_string(),
            "https://r.example:5000/v2/a/blobs/other"
        );
        assert_eq!(Url::parse("http://h").unwrap().path_and_query, "/");
        assert!(Url::parse("ftp://h/").is_err());
        assert!(Url::parse("http://user@h/").is_err());
    }

    #[test]
    fn headers_are_case_insensitive() {
        let mut h = Headers::new();
        h.append("Content-Length", "12");
        h.append("X-A", "1");
        h.append("x-a", "2");
        assert_eq!(h.content_length(), Some(12));
        assert_eq!(h.get_all("X-a").collect::<Vec<_>>(), vec!["1", "2"]);
        assert_eq!(
            h.iter().collect::<Vec<_>>(),
            [("Content-Length", "12"), ("X-A", "1"), ("x-a", "2")],
            "every field, in order, names as given"
        );
        h.set("X-A", "3");
        assert_eq!(h.get_all("x-a").collect::<Vec<_>>(), vec!["3"]);
    }

    #[test]
    fn redirects_are_bounded() {
        let from = Url::parse("https://r.example/v2/a/blobs/x").unwrap();
        let mut redirects = Redirects::default();
        for _ in 0..MAX_REDIRECTS {
            assert_eq!(
                redirects
                    .follow(&from, "https://cdn.example/x")
                    .unwrap()
                    .authority,
                "cdn.example"
            );
        }
        let e = redirects.follow(&from, "/again").unwrap_err();
        assert!(e.to_string().contains("more than 5 redirects"), "{e}");
        let e = Redirects::default()
            .follow(&from, "https:///no-host")
            .unwrap_err();
        assert!(e.to_string().contains("bad redirect"), "{e}");
    }

    #[test]
    fn request_body_lengths() {
        assert_eq!(RequestBody::Empty.len(), None);
        assert!(RequestBody::Empty.is_empty());
        assert!(RequestBody::Bytes(Vec::new()).is_empty());
        assert!(!RequestBody::Bytes(vec![1]).is_empty());
        let transfer = RequestBody::Transfer {
            from: RequestId(1),
            size: 7,
        };
        assert_eq!(transfer.len(), Some(7));
        assert!(!transfer.is_empty());
    }

    #[test]
    fn query_encoding() {
        assert_eq!(
            encode_query_component("repository:a/b:pull,push"),
            "repository%3Aa%2Fb%3Apull%2Cpush"
        );
    }
}
