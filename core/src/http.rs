//! Plain-data HTTP: what the core asks a driver to send and what the driver
//! hands back. No sockets here; a driver maps these onto its transport.

use std::fmt;

use bytes::Bytes;

use crate::digest::Digest;
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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
    /// Parses an absolute `http://` or `https://` URL (the scheme in any
    /// case); its path's dot segments are removed and a fragment dropped.
    pub fn parse(input: &str) -> Result<Self> {
        let bad = |reason: &str| Error::InvalidInput(format!("URL {input:?}: {reason}"));
        let scheme = scheme_of(input).ok_or_else(|| bad("scheme must be http or https"))?;
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "https" => Scheme::Https,
            "http" => Scheme::Http,
            _ => return Err(bad("scheme must be http or https")),
        };
        let rest = input[input.find(':').map_or(0, |i| i + 1)..]
            .strip_prefix("//")
            .ok_or_else(|| bad("missing //host"))?;
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let authority = &rest[..end];
        if authority.contains('@') {
            return Err(bad("user info in the host"));
        }
        if split_authority(authority).is_none() {
            return Err(bad("missing or malformed host or port"));
        }
        let reference = rest[end..].split('#').next().unwrap_or("");
        let (path, query) = match reference.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (reference, None),
        };
        Ok(Url {
            scheme,
            authority: authority.to_string(),
            path_and_query: with_query(&remove_dot_segments(path), query),
        })
    }

    /// Resolves a `Location` header against this URL, as RFC 3986 resolves
    /// references: absolute (HTTP or HTTPS only), scheme-relative,
    /// absolute-path, relative-path and query-only forms; dot segments
    /// removed, a fragment dropped.
    pub fn join(&self, location: &str) -> Result<Url> {
        let location = location.trim();
        if scheme_of(location).is_some() {
            return Url::parse(location);
        }
        if let Some(rest) = location.strip_prefix("//") {
            let scheme = match self.scheme {
                Scheme::Http => "http://",
                Scheme::Https => "https://",
            };
            return Url::parse(&format!("{scheme}{rest}"));
        }
        let reference = location.split('#').next().unwrap_or("");
        let (path, query) = match reference.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (reference, None),
        };
        let (base_path, base_query) = match self.path_and_query.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (self.path_and_query.as_str(), None),
        };
        let (path, query) = if path.is_empty() {
            (base_path.to_string(), query.or(base_query))
        } else if path.starts_with('/') {
            (path.to_string(), query)
        } else {
            let dir = &base_path[..base_path.rfind('/').map_or(0, |i| i + 1)];
            (format!("{dir}{path}"), query)
        };
        Ok(Url {
            scheme: self.scheme,
            authority: self.authority.clone(),
            path_and_query: with_query(&remove_dot_segments(&path), query),
        })
    }

    /// The URL with its query, if any, shown as `?…`: what errors and logs
    /// print of a URL a registry handed out (signed CDN URLs and upload
    /// states carry secrets there).
    pub fn redacted(&self) -> String {
        match self.path_and_query.split_once('?') {
            Some((path, _)) => {
                let scheme = match self.scheme {
                    Scheme::Http => "http",
                    Scheme::Https => "https",
                };
                format!("{scheme}://{}{path}?…", self.authority)
            }
            None => self.to_string(),
        }
    }

    /// An error naming the registry unless this URL's host and port can
    /// be reached. The reference grammar takes any run of digits as a port
    /// (`registry.example:123456`); such a URL is refused here rather than
    /// handed to a transport that would fall back to the scheme's port.
    pub fn reachable(&self) -> Result<()> {
        if reachable_authority(&self.authority) {
            return Ok(());
        }
        Err(Error::InvalidInput(format!(
            "registry {:?}: {PORT_RANGE}",
            self.authority
        )))
    }

    /// Where this URL's credentials belong.
    pub fn origin(&self) -> Origin {
        let (host, port) = split_authority(&self.authority).unwrap_or((&self.authority, None));
        let port = port.unwrap_or(match self.scheme {
            Scheme::Http => 80,
            Scheme::Https => 443,
        });
        Origin {
            scheme: self.scheme,
            host: host.to_ascii_lowercase(),
            port,
        }
    }
}

/// Where credentials belong (RFC 6454): scheme, host and port, with the
/// host lower-cased and the scheme's default port made explicit. Nothing
/// meant for one origin goes to another; HTTPS and HTTP on the same host
/// and port are two origins.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Origin {
    scheme: Scheme,
    host: String,
    port: u16,
}

impl Origin {
    /// Whether it is reached over TLS.
    pub fn is_https(&self) -> bool {
        self.scheme == Scheme::Https
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match self.scheme {
            Scheme::Http => "http",
            Scheme::Https => "https",
        };
        write!(f, "{scheme}://{}:{}", self.host, self.port)
    }
}

/// The scheme of an absolute reference (`letter *( letter / digit / + / - / . )`
/// before a `:` that comes before any `/`, `?` or `#`).
fn scheme_of(reference: &str) -> Option<&str> {
    let colon = reference.find(':')?;
    let scheme = &reference[..colon];
    let mut bytes = scheme.bytes();
    let first = bytes.next()?;
    (first.is_ascii_alphabetic()
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.')))
    .then_some(scheme)
}

/// What a port must be, as errors say it.
pub(crate) const PORT_RANGE: &str = "the port must be a number from 1 to 65535";

/// Whether `host[:port]` names a host and, if any, a port from 1 to 65535.
pub(crate) fn reachable_authority(authority: &str) -> bool {
    split_authority(authority).is_some()
}

/// `host` and `port` of `host[:port]` or `[v6][:port]`; `None` when the
/// host is empty or the port not a number of 1 to 65535.
fn split_authority(authority: &str) -> Option<(&str, Option<u16>)> {
    let (host, port) = if authority.starts_with('[') {
        let end = authority.find(']')?;
        let (host, rest) = authority.split_at(end + 1);
        match rest {
            "" => (host, None),
            _ => (host, Some(rest.strip_prefix(':')?)),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return None;
    }
    let port = match port {
        Some(p) => Some(p.parse::<u16>().ok().filter(|p| *p != 0)?),
        None => None,
    };
    Some((host, port))
}

/// RFC 3986's remove_dot_segments, for a path (`.` and `..` never climb
/// above the root); the result starts with `/`.
fn remove_dot_segments(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path.split('/').collect();
    for (i, segment) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        match *segment {
            "." => {
                if last {
                    out.push("");
                }
            }
            ".." => {
                // Past the root this pops its empty segment, which the
                // leading `/` below puts back: nothing climbs above it.
                out.pop();
                if last {
                    out.push("");
                }
            }
            s => out.push(s),
        }
    }
    let joined = out.join("/");
    if joined.starts_with('/') {
        joined
    } else {
        format!("/{joined}")
    }
}

fn with_query(path: &str, query: Option<&str>) -> String {
    match query {
        Some(q) => format!("{path}?{q}"),
        None => path.to_string(),
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

/// Header fields in order; names compare case-insensitively. Their `Debug`
/// shows credentials as `<redacted>`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Headers(Vec<(String, String)>);

/// Header fields whose values are secrets.
const SECRET_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
];

impl fmt::Debug for Headers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut map = f.debug_map();
        for (name, value) in &self.0 {
            let secret = SECRET_HEADERS.iter().any(|s| name.eq_ignore_ascii_case(s));
            map.entry(name, if secret { &"<redacted>" } else { value });
        }
        map.finish()
    }
}

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

/// What a request carries. Its `Debug` shows a length, not the bytes (an
/// OAuth2 form carries a refresh token).
#[derive(Clone, PartialEq, Eq)]
pub enum RequestBody {
    /// Nothing.
    Empty,
    /// These bytes (manifests, small blobs), shared: a retry sends them
    /// again without a copy.
    Bytes(Bytes),
    /// The held body of an earlier response (a blob GET with
    /// [`BodyMode::Relay`]), streamed through by the driver without passing
    /// through the core: `size` bytes exactly, which must hash to `digest`.
    /// The driver (or the host under it) checks that as the bytes pass, and
    /// abandons the upload rather than send the last of them when they do
    /// not match ([`TransportErrorKind::Integrity`]).
    Transfer {
        /// The request whose held response body to send.
        from: RequestId,
        /// Its length, sent as `Content-Length`.
        size: u64,
        /// What it must hash to.
        digest: Digest,
    },
    /// The next `len` bytes of the body held for request `from` (a copy's
    /// source, or what an earlier chunk left of it): one `PATCH` of an
    /// upload sent in chunks. `skip` bytes are read and dropped first (a
    /// source read again whole when asked for a range). Unless `last`, the
    /// rest stays held under this request's id once it is answered 2xx,
    /// for the next chunk. The driver (or the host under it) hashes the
    /// chunks of a session as one ([`crate::upload_check`]).
    Chunk {
        /// The request whose held response body to take the bytes from.
        from: RequestId,
        /// Bytes to drop first.
        skip: u64,
        /// Bytes to send, as `Content-Length`.
        len: u64,
        /// What the whole blob must hash to (its algorithm hashes the session).
        digest: Digest,
        /// Whether this chunk ends the blob (nothing of the body is left).
        last: bool,
    },
}

impl fmt::Debug for RequestBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestBody::Empty => f.write_str("Empty"),
            RequestBody::Bytes(b) => write!(f, "Bytes(<{} bytes>)", b.len()),
            RequestBody::Transfer { from, size, digest } => f
                .debug_struct("Transfer")
                .field("from", from)
                .field("size", size)
                .field("digest", &digest.to_string())
                .finish(),
            RequestBody::Chunk {
                from,
                skip,
                len,
                last,
                ..
            } => f
                .debug_struct("Chunk")
                .field("from", from)
                .field("skip", skip)
                .field("len", len)
                .field("last", last)
                .finish(),
        }
    }
}

impl RequestBody {
    /// The body's length, when it has one.
    pub fn len(&self) -> Option<u64> {
        match self {
            RequestBody::Empty => None,
            RequestBody::Bytes(b) => Some(b.len() as u64),
            RequestBody::Transfer { size, .. } => Some(*size),
            RequestBody::Chunk { len, .. } => Some(*len),
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
    Bytes(Bytes),
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
    /// The connection was refused or reset: try again.
    Transient,
    /// No answer (or no progress) in time: try again; what a gateway
    /// reports as a timeout rather than a failure.
    TimedOut,
    /// Refused by the host's policy, an untrusted certificate, an unusable
    /// URL: no retry can mend it.
    Permanent,
    /// The host name does not resolve: no retry can mend it either.
    Unresolved,
    /// A streamed body did not match its digest or size: the upload was
    /// abandoned before its last byte, and trying again cannot mend it.
    Integrity,
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

    /// A streamed body that does not match its digest or size (`message`
    /// says what was expected and found).
    pub fn integrity(message: impl Into<String>) -> Self {
        TransportError {
            message: message.into(),
            kind: TransportErrorKind::Integrity,
        }
    }

    /// No answer or no progress in time (worth another try).
    pub fn timed_out(message: impl Into<String>) -> Self {
        TransportError {
            message: message.into(),
            kind: TransportErrorKind::TimedOut,
        }
    }

    /// Whether trying again cannot help.
    pub fn is_permanent(&self) -> bool {
        !matches!(
            self.kind,
            TransportErrorKind::Transient | TransportErrorKind::TimedOut
        )
    }
}

/// How a host that verifies streamed uploads for the driver starts the
/// message of its error when they do not match: the driver then reports
/// [`TransportErrorKind::Integrity`], not a broken connection.
pub const UPLOAD_MISMATCH: &str = "upload does not match its digest";

/// How a host that verifies downloads for the driver starts the message of
/// the error that replaces a body's last bytes when they do not match.
pub const DOWNLOAD_MISMATCH: &str = "download does not match its digest";

/// Request header (never sent on) by which a driver asks a host that
/// verifies downloads to check a by-digest body against this digest.
pub const VERIFY_BODY: &str = "ocirelay-verify-body";

/// Response header by which such a host says it checks the body against
/// this digest (it removes any the registry sent).
pub const BODY_VERIFIED: &str = "ocirelay-body-verified";

/// Response header with the id of such a check: named again in
/// [`RESUME_CHECK`] when the body breaks, the host checks on from there.
pub const BODY_CHECK: &str = "ocirelay-body-check";

/// Request header (never sent on) of a chunk of an upload
/// ([`RequestBody::Chunk`]) sent through a host that verifies uploads: the
/// digest the whole must have, for the host to hash the session's chunks
/// as one and check its completing `PUT` ([`crate::upload_check`]).
pub const CHUNK_OF: &str = "ocirelay-chunk-of";

/// Request header (never sent on) of a read resumed with `Range`: the id of
/// the check of the body that broke.
pub const RESUME_CHECK: &str = "ocirelay-resume-check";

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
                from.redacted(),
                format!("more than {MAX_REDIRECTS} redirects"),
            ));
        }
        let next = from
            .join(location)
            .map_err(|e| Error::protocol(from.redacted(), format!("bad redirect: {e}")))?;
        refuse_downgrade(from, &next, "a redirect")?;
        Ok(next)
    }
}

/// Whether `url`'s host is a loopback, private or link-local address (or
/// `localhost`): somewhere only a machine on that network reaches.
pub fn is_private_host(url: &Url) -> bool {
    let authority = url.authority.as_str();
    let host = match authority.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(rest),
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    if host.eq_ignore_ascii_case("localhost") || host.to_ascii_lowercase().ends_with(".localhost") {
        return true;
    }
    match host.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(ip)) => {
            ip.is_loopback() || ip.is_private() || ip.is_link_local() || ip.is_unspecified()
        }
        Ok(std::net::IpAddr::V6(ip)) => {
            let first = ip.segments()[0];
            ip.is_loopback()
                || ip.is_unspecified()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || ip
                    .to_ipv4_mapped()
                    .is_some_and(|v4| v4.is_loopback() || v4.is_private())
        }
        Err(_) => false,
    }
}

/// Nothing goes from HTTPS down to plain HTTP: an error naming both URLs
/// (`what` says what pointed there).
pub fn refuse_downgrade(from: &Url, to: &Url, what: &str) -> Result<()> {
    if from.scheme == Scheme::Https && to.scheme == Scheme::Http {
        return Err(Error::protocol(
            from.redacted(),
            format!(
                "refused {what} to {}: from HTTPS down to plain HTTP",
                to.redacted()
            ),
        ));
    }
    Ok(())
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
        assert_eq!(
            Url::parse("HTTPS://[::1]:5000/a/./b/../c")
                .unwrap()
                .to_string(),
            "https://[::1]:5000/a/c"
        );
        for bad in [
            "https://:5000/",
            "https://h:99999/",
            "https://h:0/",
            "https://h:x/",
            "https:h/",
        ] {
            assert!(Url::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn locations_resolve_as_rfc_3986_says() {
        let upload = Url::parse("https://r.example/v2/a/blobs/uploads/?x=1").unwrap();
        let cases = [
            ("../../admin", "https://r.example/v2/a/admin"),
            ("/v2/../../etc/./passwd", "https://r.example/etc/passwd"),
            (
                "uuid?_state=s",
                "https://r.example/v2/a/blobs/uploads/uuid?_state=s",
            ),
            ("?y=2", "https://r.example/v2/a/blobs/uploads/?y=2"),
            ("", "https://r.example/v2/a/blobs/uploads/?x=1"),
            ("./uuid#frag", "https://r.example/v2/a/blobs/uploads/uuid"),
            ("Https://CDN.example/b", "https://CDN.example/b"),
            // A first segment with a colon that cannot start a scheme is a path.
            (
                "9:session",
                "https://r.example/v2/a/blobs/uploads/9:session",
            ),
            // A last `.` or `..` keeps the path a directory.
            ("/v2/a/.", "https://r.example/v2/a/"),
            ("/v2/a/b/..", "https://r.example/v2/a/"),
        ];
        for (location, resolved) in cases {
            assert_eq!(
                upload.join(location).unwrap().to_string(),
                resolved,
                "{location}"
            );
        }
        // Another scheme is never a relative path.
        for other in [
            "file:///etc/passwd",
            "ftp://r.example/x",
            "javascript:alert(1)",
        ] {
            assert!(upload.join(other).is_err(), "{other}");
        }
    }

    #[test]
    fn an_origin_is_scheme_host_and_port() {
        let origin = |u: &str| Url::parse(u).unwrap().origin();
        assert_eq!(
            origin("https://R.example/x"),
            origin("https://r.example:443/y")
        );
        assert_eq!(origin("http://r.example/x"), origin("http://r.example:80/"));
        assert_ne!(
            origin("https://r.example/"),
            origin("http://r.example:443/")
        );
        assert_ne!(
            origin("https://r.example/"),
            origin("https://r.example:5000/")
        );
        assert_ne!(
            origin("https://r.example/"),
            origin("https://cdn.r.example/")
        );
        assert_eq!(
            origin("https://[::1]:5000/").to_string(),
            "https://[::1]:5000"
        );
        assert_eq!(origin("http://[::1]/v2/").to_string(), "http://[::1]:80");
        assert!(origin("https://r.example/").is_https());
    }

    #[test]
    fn nothing_is_redirected_down_to_plain_http() {
        let from = Url::parse("https://r.example:5000/v2/a/blobs/d").unwrap();
        let e = Redirects::default()
            .follow(&from, "http://r.example:5000/v2/a/blobs/d")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("https://r.example:5000/v2/a/blobs/d")
                && e.contains("refused a redirect to http://r.example:5000/v2/a/blobs/d")
                && e.contains("down to plain HTTP"),
            "{e}"
        );
        let signed = Redirects::default()
            .follow(&from, "http://cdn.example/b?X-Signature=s3cret")
            .unwrap_err()
            .to_string();
        assert!(
            signed.contains("http://cdn.example/b?…") && !signed.contains("s3cret"),
            "{signed}"
        );
        let plain = Url::parse("http://r.example/").unwrap();
        assert!(Redirects::default().follow(&plain, "http://cdn/x").is_ok());
        assert!(Redirects::default().follow(&from, "https://cdn/x").is_ok());
        assert!(Redirects::default()
            .follow(&from, "file:///etc/passwd")
            .is_err());
    }

    #[test]
    fn private_hosts_are_told_apart() {
        let private = |u: &str| is_private_host(&Url::parse(u).unwrap());
        for u in [
            "http://127.0.0.1:5000/",
            "http://10.1.2.3/",
            "https://192.168.0.9/",
            "https://172.16.0.1/",
            "https://169.254.169.254/latest",
            "http://localhost:8080/",
            "http://[::1]:5000/",
            "http://[fd00::1]/",
            "http://[fe80::1]/",
            "http://0.0.0.0/",
        ] {
            assert!(private(u), "{u}");
        }
        for u in [
            "https://production.cloudflare.docker.com/x",
            "https://8.8.8.8/",
            "https://172.32.0.1/",
            "https://[2001:db8::1]/",
        ] {
            assert!(!private(u), "{u}");
        }
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
    fn debug_output_shows_no_secret() {
        let mut headers = Headers::new();
        headers.append("Authorization", "Bearer s3cret-token");
        headers.append("Accept", "application/json");
        let request = Request {
            method: Method::Post,
            url: Url::parse("https://auth.example/token").unwrap(),
            headers,
            body: RequestBody::Bytes(Bytes::from_static(
                b"grant_type=refresh_token&refresh_token=s3cret",
            )),
            body_mode: BodyMode::Buffer(SMALL_BODY_LIMIT),
        };
        let shown = format!("{request:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(
            shown.contains(r#""Authorization": "<redacted>""#)
                && shown.contains(r#""Accept": "application/json""#)
                && shown.contains("Bytes(<45 bytes>)"),
            "{shown}"
        );
    }

    #[test]
    fn request_body_lengths() {
        assert_eq!(RequestBody::Empty.len(), None);
        assert!(RequestBody::Empty.is_empty());
        assert!(RequestBody::Bytes(Bytes::new()).is_empty());
        assert!(!RequestBody::Bytes(Bytes::from_static(&[1])).is_empty());
        let transfer = RequestBody::Transfer {
            from: RequestId(1),
            size: 7,
            digest: crate::Digest::sha256(b"seven b"),
        };
        assert_eq!(transfer.len(), Some(7));
        assert!(!transfer.is_empty());
    }
}
