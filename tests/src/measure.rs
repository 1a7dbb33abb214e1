//! What a benchmark measures of one run of a tool: wall time, requests
//! the registries served meanwhile, and peak RSS (GNU time).

use std::process::Command;
use std::time::Instant;

use crate::Registry;

/// What one run cost.
pub struct Run {
    /// Wall time.
    pub wall_ms: f64,
    /// Requests the registries served.
    pub requests: usize,
    /// Peak resident set.
    pub peak_mib: f64,
}

/// Runs `command` under `/usr/bin/time -f %M` for its peak RSS, counting
/// the requests `registries` served meanwhile.
pub fn measured(mut command: Command, registries: &[&Registry]) -> Run {
    let before: Vec<usize> = registries.iter().map(|r| r.access_log().len()).collect();
    let rss = tempfile::NamedTempFile::new().expect("a temporary file");
    let started = Instant::now();
    let mut timed = Command::new("/usr/bin/time");
    timed.arg("-o").arg(rss.path()).arg("-f").arg("%M");
    timed.arg(command.get_program()).args(command.get_args());
    for (k, v) in command.get_envs() {
        if let Some(v) = v {
            timed.env(k, v);
        }
    }
    let out = timed.output().expect("running the sync");
    let wall_ms = started.elapsed().as_secs_f64() * 1000.0;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = &mut command;
    let requests = registries
        .iter()
        .zip(before)
        .map(|(r, b)| r.access_log().len() - b)
        .sum();
    let kib: f64 = std::fs::read_to_string(rss.path())
        .unwrap_or_default()
        .trim()
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or(0.0);
    Run {
        wall_ms,
        requests,
        peak_mib: kib / 1024.0,
    }
}

/// The middle of `values` (the upper one of an even count); a benchmark's
/// figure of its runs.
pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}
