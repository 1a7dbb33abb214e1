//! What a hostile registry does to an honest answer, as the fuzzer chooses:
//! another status, headers set to lies (digests of other objects, huge
//! numbers, Locations that climb out with `..`, point at another host, at
//! plain HTTP or at `file://`), bodies swapped, cut or flipped, challenges
//! naming other realms, throttling with any `Retry-After`, or no answer at
//! all.

use arbitrary::Arbitrary;
use bytes::Bytes;
use ocirelay_core::http::TransportError;

use crate::world::{Images, Raw, AUTH, CDN, DST, SRC};

/// One change to an answer.
#[derive(Debug, Arbitrary)]
pub enum Twist {
    /// Another status, headers and body kept.
    Status(Status),
    /// A header set to a chosen value.
    Set(Header, Value),
    /// A header removed.
    Drop(Header),
    /// Another body (`Content-Length` kept: it may now lie).
    Body(BodyPick),
    /// A redirect.
    Redirect(RedirectStatus, Place),
    /// A 401 with this challenge.
    Challenge(ChallengePick),
    /// Throttled or unavailable, with this `Retry-After`.
    Throttle(ThrottleStatus, Value),
    /// No HTTP answer.
    Fail(FailKind),
}

/// Statuses worth trying, and any other.
#[derive(Debug, Clone, Copy, Arbitrary)]
#[allow(missing_docs)]
pub enum Status {
    Ok,
    Created,
    Accepted,
    NoContent,
    Partial,
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    RangeNotSatisfiable,
    TooManyRequests,
    ServerError,
    Unavailable,
    Any(u16),
}

impl Status {
    fn code(self) -> u16 {
        match self {
            Status::Ok => 200,
            Status::Created => 201,
            Status::Accepted => 202,
            Status::NoContent => 204,
            Status::Partial => 206,
            Status::BadRequest => 400,
            Status::Unauthorized => 401,
            Status::Forbidden => 403,
            Status::NotFound => 404,
            Status::RangeNotSatisfiable => 416,
            Status::TooManyRequests => 429,
            Status::ServerError => 500,
            Status::Unavailable => 503,
            Status::Any(n) => n,
        }
    }
}

/// Headers the core reads.
#[derive(Debug, Clone, Copy, Arbitrary)]
#[allow(missing_docs)]
pub enum Header {
    DockerContentDigest,
    ContentLength,
    ContentType,
    Location,
    WwwAuthenticate,
    RetryAfter,
    ContentRange,
    Date,
    RateLimitRemaining,
    RateLimit,
    RateLimitPolicy,
}

impl Header {
    fn name(self) -> &'static str {
        match self {
            Header::DockerContentDigest => "Docker-Content-Digest",
            Header::ContentLength => "Content-Length",
            Header::ContentType => "Content-Type",
            Header::Location => "Location",
            Header::WwwAuthenticate => "WWW-Authenticate",
            Header::RetryAfter => "Retry-After",
            Header::ContentRange => "Content-Range",
            Header::Date => "Date",
            Header::RateLimitRemaining => "RateLimit-Remaining",
            Header::RateLimit => "RateLimit",
            Header::RateLimitPolicy => "RateLimit-Policy",
        }
    }
}

/// A fixture object, or the one the request asked for.
#[derive(Debug, Clone, Copy, Arbitrary)]
#[allow(missing_docs)]
pub enum ObjectPick {
    Asked,
    SmallLayer,
    BigLayer,
    Config,
    Image,
    Index,
}

impl ObjectPick {
    /// Its bytes and digest (`asked`: the digest in the request's path, if any).
    fn object(self, asked: Option<&str>) -> (Bytes, String) {
        let images = Images::get();
        let o = match self {
            ObjectPick::Asked => match asked.and_then(|d| images.by_digest(d)) {
                Some(o) => o,
                None => &images.amd64,
            },
            ObjectPick::SmallLayer => &images.small_layer,
            ObjectPick::BigLayer => &images.big_layer,
            ObjectPick::Config => &images.amd64_config,
            ObjectPick::Image => &images.arm64,
            ObjectPick::Index => &images.index,
        };
        (o.bytes.clone(), o.digest.to_string())
    }
}

/// A header value.
#[derive(Debug, Arbitrary)]
pub enum Value {
    /// A fixture object's digest.
    Digest(ObjectPick),
    /// A number, any.
    Number(u64),
    /// A small number.
    Small(u8),
    /// Text, any.
    Text(String),
    /// A place ([`Place`]).
    Place(Place),
    /// A manifest media type.
    MediaType(u8),
}

impl Value {
    fn render(&self, asked: Option<&str>) -> String {
        match self {
            Value::Digest(o) => o.object(asked).1,
            Value::Number(n) => n.to_string(),
            Value::Small(n) => n.to_string(),
            Value::Text(t) => t.clone(),
            Value::Place(p) => p.render(),
            Value::MediaType(n) => {
                let types = [
                    ocirelay_core::media_type::OCI_MANIFEST,
                    ocirelay_core::media_type::OCI_INDEX,
                    ocirelay_core::media_type::DOCKER_MANIFEST,
                    ocirelay_core::media_type::DOCKER_LIST,
                    "application/json",
                    "text/html; charset=utf-8",
                ];
                types[usize::from(*n) % types.len()].to_string()
            }
        }
    }
}

/// Where a Location (or a realm) points.
#[derive(Debug, Arbitrary)]
pub enum Place {
    /// A path on the same origin.
    Path(String),
    /// A path that climbs with dot segments.
    DotSegments,
    /// The other registry.
    OtherRegistry,
    /// Blob storage, where fixture blobs are served by digest.
    Cdn(ObjectPick),
    /// The same host over plain HTTP.
    Downgrade,
    /// Another scheme.
    File,
    /// `//host/path`.
    SchemeRelative(String),
    /// The token service.
    Auth,
    /// Anything.
    Any(String),
}

impl Place {
    fn render(&self) -> String {
        match self {
            Place::Path(p) => format!("/{p}"),
            Place::DotSegments => "/v2/team/app/blobs/uploads/../../../../admin?x=1".into(),
            Place::OtherRegistry => format!("https://{SRC}/v2/library/app/blobs/uploads/x"),
            Place::Cdn(o) => format!("https://{CDN}/blobs/{}", o.object(None).1),
            Place::Downgrade => format!("http://{DST}/v2/team/app/blobs/uploads/y"),
            Place::File => "file:///etc/passwd".into(),
            Place::SchemeRelative(p) => format!("//{p}"),
            Place::Auth => format!("https://{AUTH}/token"),
            Place::Any(s) => s.clone(),
        }
    }
}

/// Another body.
#[derive(Debug, Arbitrary)]
pub enum BodyPick {
    /// None.
    Empty,
    /// A fixture object's bytes.
    Object(ObjectPick),
    /// The first bytes of one.
    Cut(ObjectPick, u16),
    /// One with a byte flipped.
    Flipped(ObjectPick, u16),
    /// A registry error with one of the codes the core reads.
    Error(u8),
    /// A token service's answer.
    Token(TokenPick),
    /// Anything.
    Bytes(Vec<u8>),
}

/// Token answers.
#[derive(Debug, Clone, Copy, Arbitrary)]
#[allow(missing_docs)]
pub enum TokenPick {
    Token,
    AccessToken,
    HugeExpiry,
    NegativeExpiry,
    Empty,
    NotJson,
}

/// Redirect statuses.
#[derive(Debug, Clone, Copy, Arbitrary)]
#[allow(missing_docs)]
pub enum RedirectStatus {
    Moved,
    Found,
    SeeOther,
    Temporary,
    Permanent,
}

/// Challenges.
#[derive(Debug, Arbitrary)]
#[allow(missing_docs)]
pub enum ChallengePick {
    Basic,
    Bearer(Place),
    BearerWithoutRealm,
    Any(String),
}

/// Throttling statuses.
#[derive(Debug, Clone, Copy, Arbitrary)]
#[allow(missing_docs)]
pub enum ThrottleStatus {
    TooMany,
    Unavailable,
    BadGateway,
}

/// Transport failures.
#[derive(Debug, Clone, Copy, Arbitrary)]
#[allow(missing_docs)]
pub enum FailKind {
    Transient,
    Permanent,
    Unresolved,
}

/// What comes back after the twists: an answer, or a transport failure.
#[derive(Debug)]
pub enum Twisted {
    /// An HTTP answer.
    Answer(Raw),
    /// None.
    Failed(TransportError),
}

impl Twist {
    /// Applies this twist to `raw` (`asked`: the digest the request named).
    pub fn apply(&self, raw: Twisted, asked: Option<&str>) -> Twisted {
        let Twisted::Answer(mut raw) = raw else {
            return raw;
        };
        match self {
            Twist::Status(s) => raw.status = s.code(),
            Twist::Set(h, v) => raw.set(h.name(), v.render(asked)),
            Twist::Drop(h) => raw.remove(h.name()),
            Twist::Body(b) => raw.body = body(b, asked),
            Twist::Redirect(s, place) => {
                raw.status = match s {
                    RedirectStatus::Moved => 301,
                    RedirectStatus::Found => 302,
                    RedirectStatus::SeeOther => 303,
                    RedirectStatus::Temporary => 307,
                    RedirectStatus::Permanent => 308,
                };
                raw.set("Location", place.render());
                raw.body = Bytes::new();
                raw.remove("Content-Length");
            }
            Twist::Challenge(c) => {
                raw.status = 401;
                let value = match c {
                    ChallengePick::Basic => "Basic realm=\"x\"".to_string(),
                    ChallengePick::Bearer(p) => {
                        format!("Bearer realm=\"{}\",service=\"s\"", p.render())
                    }
                    ChallengePick::BearerWithoutRealm => "Bearer service=\"s\"".to_string(),
                    ChallengePick::Any(s) => s.clone(),
                };
                raw.set("WWW-Authenticate", value);
            }
            Twist::Throttle(s, after) => {
                raw.status = match s {
                    ThrottleStatus::TooMany => 429,
                    ThrottleStatus::Unavailable => 503,
                    ThrottleStatus::BadGateway => 502,
                };
                raw.set("Retry-After", after.render(asked));
            }
            Twist::Fail(kind) => {
                return Twisted::Failed(match kind {
                    FailKind::Transient => TransportError::transient("connection reset"),
                    FailKind::Permanent => TransportError::permanent("certificate refused"),
                    FailKind::Unresolved => TransportError::unresolved("no such host"),
                })
            }
        }
        Twisted::Answer(raw)
    }
}

fn body(pick: &BodyPick, asked: Option<&str>) -> Bytes {
    match pick {
        BodyPick::Empty => Bytes::new(),
        BodyPick::Object(o) => o.object(asked).0,
        BodyPick::Cut(o, n) => {
            let bytes = o.object(asked).0;
            bytes.slice(..usize::from(*n).min(bytes.len()))
        }
        BodyPick::Flipped(o, n) => {
            let mut bytes = o.object(asked).0.to_vec();
            if !bytes.is_empty() {
                let i = usize::from(*n) % bytes.len();
                bytes[i] ^= 0x20;
            }
            bytes.into()
        }
        BodyPick::Error(n) => {
            let codes = [
                "BLOB_UNKNOWN",
                "MANIFEST_UNKNOWN",
                "NAME_UNKNOWN",
                "MANIFEST_BLOB_UNKNOWN",
                "MANIFEST_INVALID",
                "DIGEST_INVALID",
                "DENIED",
                "UNAUTHORIZED",
                "TOOMANYREQUESTS",
            ];
            let code = codes[usize::from(*n) % codes.len()];
            format!(r#"{{"errors":[{{"code":"{code}","message":"\u001b[2Jno"}}]}}"#).into()
        }
        BodyPick::Token(t) => match t {
            TokenPick::Token => r#"{"token":"t","expires_in":60}"#.into(),
            TokenPick::AccessToken => r#"{"access_token":"a"}"#.into(),
            TokenPick::HugeExpiry => r#"{"token":"t","expires_in":18446744073709551615}"#.into(),
            TokenPick::NegativeExpiry => r#"{"token":"t","expires_in":-1}"#.into(),
            TokenPick::Empty => r#"{"token":""}"#.into(),
            TokenPick::NotJson => "token".into(),
        },
        BodyPick::Bytes(b) => b.clone().into(),
    }
}
