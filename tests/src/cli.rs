//! Runs the `ocirelay` binary the workspace built, in a clean environment:
//! its own compile cache and, unless a test gives them, an empty docker
//! config and no settings file.

use std::path::PathBuf;
use std::process::Command;

/// What a run printed and how it ended.
#[derive(Debug)]
pub struct Output {
    /// Exit code (-1 when killed by a signal).
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Output {
    /// Standard output parsed as a stream of JSON documents.
    pub fn json(&self) -> Vec<serde_json::Value> {
        serde_json::Deserializer::from_str(&self.stdout)
            .into_iter::<serde_json::Value>()
            .collect::<Result<_, _>>()
            .unwrap_or_else(|e| {
                panic!(
                    "stdout is not a JSON stream ({e}):\n{}\nstderr:\n{}",
                    self.stdout, self.stderr
                )
            })
    }

    /// Panics with the whole output unless the run exited 0.
    pub fn success(self) -> Self {
        assert_eq!(
            self.code, 0,
            "ocirelay failed:\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }
}

/// The `ocirelay` binary of the same build profile: beside this executable
/// (a binary of this crate) or one level up (a test in `deps/`).
pub fn binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let candidates: Vec<PathBuf> = exe
        .ancestors()
        .skip(1)
        .take(2)
        .map(|d| d.join("ocirelay"))
        .collect();
    candidates
        .iter()
        .find(|p| p.exists())
        .cloned()
        .unwrap_or_else(|| {
            panic!(
                "no ocirelay binary at {candidates:?}: `cargo test` (or `cargo build`) builds it"
            )
        })
}

/// A directory shared by the test processes of one build: the component's
/// compile cache (so each test does not JIT it anew) and the test CA.
pub fn cache_dir() -> PathBuf {
    let dir = binary()
        .parent()
        .map(|p| p.join("ocirelay-test-cache"))
        .expect("profile dir");
    let _ = std::fs::create_dir_all(&dir);
    dir
}

/// Runs `ocirelay ARGS` with an empty docker config, trusting the tests' CA.
pub fn ocirelay(args: &[&str]) -> Output {
    let empty = tempfile::tempdir().expect("temporary docker config");
    ocirelay_with(
        args,
        &[("DOCKER_CONFIG", empty.path().to_str().expect("utf-8 path"))],
    )
}

/// Runs `ocirelay ARGS` with extra environment variables, trusting the
/// tests' CA (as a user trusts a private one: `--ca-file`).
pub fn ocirelay_with(args: &[&str], env: &[(&str, &str)]) -> Output {
    let ca = crate::tls::ca_file().to_str().expect("utf-8 path");
    let args = [&["--ca-file", ca][..], args].concat();
    ocirelay_untrusting(&args, env)
}

/// Runs `ocirelay ARGS` with extra environment variables, trusting only
/// the system's CA certificates.
pub fn ocirelay_untrusting(args: &[&str], env: &[(&str, &str)]) -> Output {
    run(args, env, None)
}

/// Runs `ocirelay ARGS` as [`ocirelay`] does, with `input` on its stdin.
pub fn ocirelay_input(args: &[&str], input: &str) -> Output {
    let empty = tempfile::tempdir().expect("temporary docker config");
    let ca = crate::tls::ca_file().to_str().expect("utf-8 path");
    let args = [&["--ca-file", ca][..], args].concat();
    let config = empty.path().to_str().expect("utf-8 path");
    run(&args, &[("DOCKER_CONFIG", config)], Some(input))
}

/// The longest one `ocirelay` command of a test may take.
const RUN_LIMIT: &str = "600";

fn run(args: &[&str], env: &[(&str, &str)], input: Option<&str>) -> Output {
    use std::io::Write;
    use std::process::Stdio;
    // A command that hangs fails its test (coreutils' `timeout` stops it
    // and says 124) rather than stalling the suite.
    let mut cmd = Command::new("timeout");
    cmd.arg(RUN_LIMIT).arg(binary());
    // No settings file but the one a test gives.
    let no_settings = cache_dir().join("no-settings");
    cmd.args(args)
        .env_remove("RUST_LOG")
        .env_remove("DOCKER_CONFIG")
        .env_remove("OCIRELAY_CONFIG")
        .env("XDG_CONFIG_HOME", no_settings)
        .env("OCIRELAY_CACHE_DIR", cache_dir())
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("running ocirelay");
    if let (Some(input), Some(mut stdin)) = (input, child.stdin.take()) {
        stdin
            .write_all(input.as_bytes())
            .expect("writing ocirelay's stdin");
    }
    let out = child.wait_with_output().expect("running ocirelay");
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A docker config directory with `auths` for `host`.
pub fn docker_config(host: &str, user: &str, password: &str) -> tempfile::TempDir {
    use base64::Engine as _;
    let dir = tempfile::tempdir().expect("temporary docker config");
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let config = serde_json::json!({"auths": {host: {"auth": auth}}});
    std::fs::write(dir.path().join("config.json"), config.to_string())
        .expect("writing config.json");
    dir
}
