//! `sync`'s progress on a terminal: a line per image as it ends, printed
//! above a bar that keeps the run's totals (images by outcome, bytes
//! sent) and what is in flight. Read from the component's JSON progress
//! lines (`sync-options.progress-json`), so the component says what
//! happened and the host only shows it.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use crate::lines::LineStderr;
use crate::runtime::Runtime;

/// The images shown by name as in flight at most.
const SHOWN_IN_FLIGHT: usize = 3;

/// The run so far.
#[derive(Debug, Default)]
struct Tally {
    copied: u64,
    unchanged: u64,
    would_copy: u64,
    failed: u64,
    /// Images started and not ended, in the order they started.
    in_flight: Vec<String>,
}

impl Tally {
    /// Takes in one JSON progress event; the line to print for it, if any.
    fn event(&mut self, event: &Value) -> Option<String> {
        let text = |key: &str| event.get(key).and_then(Value::as_str).unwrap_or_default();
        let source = text("source").to_string();
        if text("event") == "started" {
            self.in_flight.push(source);
            return None;
        }
        if let Some(at) = self.in_flight.iter().position(|s| *s == source) {
            self.in_flight.remove(at);
        }
        let to = match text("destination") {
            "" => String::new(),
            d => format!(" -> {d}"),
        };
        let outcome = text("outcome");
        match outcome {
            "copied" => self.copied += 1,
            "unchanged" => self.unchanged += 1,
            "would-copy" => self.would_copy += 1,
            _ => self.failed += 1,
        }
        let line = match outcome {
            "failed" => format!("failed {source}{to}: {}", text("error")),
            "would-copy" => format!("would copy {source}{to} ({})", text("digest")),
            word => format!("{word} {source}{to} ({})", text("digest")),
        };
        Some(ocirelay_core::error::printable(&line).into_owned())
    }

    /// The bar's message: totals, bytes sent, what is in flight.
    fn message(&self, bytes_sent: u64) -> String {
        let done = self.copied + self.unchanged + self.would_copy + self.failed;
        let mut message = format!(
            "{done} images: {} copied, {} unchanged, {} failed · {} sent · {} in flight",
            self.copied + self.would_copy,
            self.unchanged,
            self.failed,
            indicatif::HumanBytes(bytes_sent),
            self.in_flight.len(),
        );
        if !self.in_flight.is_empty() {
            let shown: Vec<&str> = self
                .in_flight
                .iter()
                .take(SHOWN_IN_FLIGHT)
                .map(String::as_str)
                .collect();
            message.push_str(&format!(": {}", shown.join(", ")));
            if self.in_flight.len() > SHOWN_IN_FLIGHT {
                message.push_str(", …");
            }
        }
        message
    }
}

/// The progress bar of a sync on a terminal.
pub struct Progress {
    bar: indicatif::ProgressBar,
    ticker: tokio::task::JoinHandle<()>,
}

impl Progress {
    /// Starts the bar; the component's stderr to give its session, whose
    /// JSON progress lines it reads (other lines are printed as they are).
    pub fn start(runtime: &Runtime) -> (Progress, LineStderr) {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.set_style(
            indicatif::ProgressStyle::with_template("{spinner} {wide_msg} [{elapsed}]")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        let tally = Arc::new(Mutex::new(Tally::default()));
        let traffic = runtime.traffic().clone();
        let layouts = runtime.layouts().clone();
        let (shown, counts) = (bar.clone(), tally.clone());
        let sent = traffic.clone();
        let stderr = LineStderr::new(move |line| {
            let line = layouts.shown(line);
            let event = serde_json::from_str::<Value>(line.trim_end())
                .ok()
                .filter(|v| v.get("event").is_some());
            let Ok(mut tally) = counts.lock() else {
                return;
            };
            match event {
                Some(event) => {
                    if let Some(done) = tally.event(&event) {
                        shown.println(done);
                    }
                    shown.set_message(tally.message(sent.bytes_sent.load(Ordering::Relaxed)));
                }
                None => shown.println(line.trim_end()),
            }
        });
        let shown = bar.clone();
        let ticker = tokio::spawn(async move {
            loop {
                if let Ok(tally) = tally.lock() {
                    shown.set_message(tally.message(traffic.bytes_sent.load(Ordering::Relaxed)));
                }
                shown.tick();
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        (Progress { bar, ticker }, stderr)
    }

    /// Stops the bar and clears it (the summary follows).
    pub fn finish(self) {
        self.ticker.abort();
        self.bar.finish_and_clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_totals_follow_the_events_and_say_what_is_in_flight() {
        let mut tally = Tally::default();
        for source in ["r/a:1", "r/b:1", "r/c:1", "r/d:1"] {
            assert_eq!(
                tally.event(&json!({"event": "started", "source": source})),
                None
            );
        }
        let done = tally.event(&json!({"event": "finished", "source": "r/b:1",
            "destination": "m/b:1", "outcome": "copied", "digest": "sha256:x"}));
        assert_eq!(done.as_deref(), Some("copied r/b:1 -> m/b:1 (sha256:x)"));
        let failed = tally.event(&json!({"event": "finished", "source": "r/a:1",
            "outcome": "failed", "error": "r/a:1: not found"}));
        assert_eq!(failed.as_deref(), Some("failed r/a:1: r/a:1: not found"));
        assert_eq!(
            tally.message(2048),
            "2 images: 1 copied, 0 unchanged, 1 failed · 2.00 KiB sent · 2 in flight: r/c:1, r/d:1"
        );
        for source in ["r/e:1", "r/f:1"] {
            tally.event(&json!({"event": "started", "source": source}));
        }
        assert!(tally
            .message(0)
            .ends_with("4 in flight: r/c:1, r/d:1, r/e:1, …"));
    }
}
