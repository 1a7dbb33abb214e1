//! The line each request to the edge service leaves in the log: what was
//! asked, how it was answered (status, bytes, time), what it cost upstream
//! (each request made there and its status; none for an answer such as a
//! 304 given without asking), and what went wrong (an answer cut short, a
//! blob that failed its digest). As text for people (`key=value`, one
//! line per request) or as JSON lines for log pipelines.
//!
//! No line holds a secret: a query string is logged without its values
//! but `ns`, `n` and `last` (what the mirror's routes read), and upstream
//! requests by method, host and status only.

use std::time::Duration;

use serde::Serialize;

/// How the log is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// `key=value` pairs, one line per request.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "text" => Ok(Format::Text),
            "json" => Ok(Format::Json),
            other => Err(format!("{other:?}: the log format is text or json")),
        }
    }
}

/// One request made upstream while answering.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UpstreamCall {
    /// Its method.
    pub method: String,
    /// Where it went (`host:port`).
    pub host: String,
    /// The status answered; `None`: no answer (refused, broken, timed out).
    pub status: Option<u16>,
}

/// One request's line.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Line {
    /// The request's method.
    pub method: String,
    /// Its path and query, values the service does not read left out.
    pub path: String,
    /// The status answered.
    pub status: u16,
    /// Body bytes sent.
    pub bytes: u64,
    /// From the request's arrival to its answer's last byte, in ms.
    pub duration_ms: u64,
    /// Requests made upstream, in order.
    pub upstream: Vec<UpstreamCall>,
    /// Whether the body was sent to its end (else it was cut short: an
    /// upstream that broke or whose content failed its check, or a client
    /// that went away).
    pub complete: bool,
    /// What the service said went wrong, if anything.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// A line as JSON: its level first.
#[derive(Serialize)]
struct Json<'a> {
    level: &'static str,
    #[serde(flatten)]
    line: &'a Line,
}

impl Line {
    /// The line of a request (`method` on `path_and_query`) answered with
    /// `status`; nothing sent or spent yet, complete until said otherwise.
    pub fn new(method: &str, path_and_query: &str, status: u16) -> Self {
        Line {
            method: method.to_string(),
            path: loggable(path_and_query),
            status,
            bytes: 0,
            duration_ms: 0,
            upstream: Vec::new(),
            complete: true,
            warnings: Vec::new(),
        }
    }

    /// Sets how long it took.
    pub fn took(&mut self, duration: Duration) {
        self.duration_ms = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
    }

    /// `warn` when the answer was cut short or the service warned, else `info`.
    pub fn level(&self) -> &'static str {
        match self.complete && self.warnings.is_empty() {
            true => "info",
            false => "warn",
        }
    }

    /// The line as `format` writes it (no newline).
    pub fn render(&self, format: Format) -> String {
        match format {
            Format::Text => self.text(),
            // Strings, numbers and lists only: it always serializes.
            Format::Json => serde_json::to_string(&Json {
                level: self.level(),
                line: self,
            })
            .unwrap_or_default(),
        }
    }

    fn text(&self) -> String {
        let upstream = match self.upstream.is_empty() {
            true => "none".to_string(),
            false => self
                .upstream
                .iter()
                .map(|call| {
                    let status = call.status.map_or("failed".to_string(), |s| s.to_string());
                    format!("{}:{}:{status}", call.method, call.host)
                })
                .collect::<Vec<_>>()
                .join(","),
        };
        let mut line = format!(
            "level={} method={} path={} status={} bytes={} duration_ms={} upstream={upstream}",
            self.level(),
            self.method,
            quoted(&self.path),
            self.status,
            self.bytes,
            self.duration_ms
        );
        if !self.complete {
            line.push_str(" cut_short=true");
        }
        for warning in &self.warnings {
            line.push_str(&format!(" warning={}", quoted(warning)));
        }
        line
    }
}

/// A value for a `key=value` line: as it is when it has no space, quote
/// or control character, else quoted with escapes.
fn quoted(value: &str) -> String {
    let plain = !value.is_empty()
        && value
            .chars()
            .all(|c| !c.is_whitespace() && !c.is_control() && c != '"' && c != '\\');
    match plain {
        true => value.to_string(),
        false => serde_json::Value::String(value.to_string()).to_string(),
    }
}

/// Query parameters whose values are logged; any other's value is not
/// (it may be a secret a client sent by mistake).
const LOGGED_PARAMETERS: &[&str] = &["ns", "n", "last"];

/// `path_and_query` with the values of parameters the service does not
/// read replaced by `…`.
fn loggable(path_and_query: &str) -> String {
    let Some((path, query)) = path_and_query.split_once('?') else {
        return path_and_query.to_string();
    };
    let pairs: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, _)) if !LOGGED_PARAMETERS.contains(&name) => format!("{name}=…"),
            _ => pair.to_string(),
        })
        .collect();
    format!("{path}?{}", pairs.join("&"))
}

/// The line the service writes on stderr when it cut an answer short
/// because `what` failed (a blob that did not match its digest names the
/// reference and digest): the host's log takes it in as a warning.
pub fn cut_short(what: &str, error: &str) -> String {
    format!("ocirelay-service: answer cut short: {what}: {error}")
}

/// The warnings among what the service wrote on stderr.
pub fn warnings(stderr: &str) -> Vec<String> {
    stderr
        .lines()
        .filter_map(|line| line.strip_prefix("ocirelay-service: "))
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(method: &str, status: Option<u16>) -> UpstreamCall {
        UpstreamCall {
            method: method.into(),
            host: "127.0.0.1:5700".into(),
            status,
        }
    }

    #[test]
    fn a_line_says_what_was_asked_answered_and_spent() {
        let mut line = Line::new("GET", "/v2/app/manifests/v1?ns=127.0.0.1%3A5700", 200);
        line.bytes = 1234;
        line.took(Duration::from_micros(5_600));
        line.upstream = vec![call("HEAD", Some(200)), call("GET", Some(200))];
        assert_eq!(
            line.render(Format::Text),
            "level=info method=GET path=/v2/app/manifests/v1?ns=127.0.0.1%3A5700 status=200 \
             bytes=1234 duration_ms=5 upstream=HEAD:127.0.0.1:5700:200,GET:127.0.0.1:5700:200"
        );
        let v: serde_json::Value = serde_json::from_str(&line.render(Format::Json)).unwrap();
        assert_eq!(v["level"], "info");
        assert_eq!(v["status"], 200);
        assert_eq!(v["bytes"], 1234);
        assert_eq!(v["duration_ms"], 5);
        assert_eq!(v["upstream"][1]["method"], "GET");
        assert_eq!(v["upstream"][1]["status"], 200);
        assert_eq!(v["complete"], true);
        assert!(v.get("warnings").is_none());
    }

    #[test]
    fn a_304_costs_nothing_upstream_and_a_cut_answer_warns() {
        let mut line = Line::new("GET", "/v2/a/manifests/sha256:x", 304);
        assert!(
            line.render(Format::Text).ends_with("upstream=none"),
            "{}",
            line.render(Format::Text)
        );
        assert_eq!(line.level(), "info");
        // Sent whole, yet warned of: a warning still.
        line.warnings.push("something to look at".into());
        assert_eq!(line.level(), "warn");
        let warning = cut_short("127.0.0.1:5700/a@sha256:abc", "content does not match");
        let mut line = Line::new("GET", "/v2/a/blobs/sha256:abc", 200);
        line.bytes = 99;
        line.upstream = vec![call("GET", None)];
        line.complete = false;
        line.warnings = warnings(&format!("noise\n{warning}\n"));
        let text = line.render(Format::Text);
        assert!(text.starts_with("level=warn "), "{text}");
        assert!(
            text.contains("upstream=GET:127.0.0.1:5700:failed"),
            "{text}"
        );
        assert!(
            text.ends_with(
                " cut_short=true warning=\"answer cut short: 127.0.0.1:5700/a@sha256:abc: content does not match\""
            ),
            "{text}"
        );
        let v: serde_json::Value = serde_json::from_str(&line.render(Format::Json)).unwrap();
        assert_eq!(v["complete"], false);
        assert_eq!(v["upstream"][0]["status"], serde_json::Value::Null);
        assert_eq!(
            v["warnings"][0],
            "answer cut short: 127.0.0.1:5700/a@sha256:abc: content does not match"
        );
    }

    #[test]
    fn query_values_the_service_does_not_read_are_left_out() {
        assert_eq!(
            loggable("/v2/a/tags/list?n=2&last=v1&token=secret&ns=x&flag"),
            "/v2/a/tags/list?n=2&last=v1&token=…&ns=x&flag"
        );
        assert_eq!(loggable("/v2/"), "/v2/");
        assert_eq!(quoted("a b"), "\"a b\"");
        assert_eq!(quoted(""), "\"\"");
        assert_eq!(quoted("a\"b"), "\"a\\\"b\"");
        assert_eq!(quoted("/v2/x"), "/v2/x");
    }

    #[test]
    fn formats_are_named() {
        assert_eq!("text".parse::<Format>(), Ok(Format::Text));
        assert_eq!("json".parse::<Format>(), Ok(Format::Json));
        assert!("xml".parse::<Format>().unwrap_err().contains("xml"));
    }
}
