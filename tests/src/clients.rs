//! Real pull clients, run privately by the tests: a containerd daemon with
//! its own root, state and sockets in a temporary directory (driven by
//! `ctr`), podman with its own storage (vfs) and registries.conf, and the
//! README's mirror set-ups for both, used as written (only the addresses
//! put in).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::cli::Output;
use crate::registry::temp_dir;

/// The README's names for the registry mirrored and the mirror, which a
/// test replaces with real addresses.
pub const README_REGISTRY: &str = "registry.internal:5000";
/// See [`README_REGISTRY`].
pub const README_MIRROR: &str = "mirror.internal:8080";

/// The README's fenced toml block whose first line is `first_line`, as
/// written (less the indentation of a block inside a list item).
pub fn readme_block(first_line: &str) -> String {
    let readme = Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md");
    let text = std::fs::read_to_string(&readme).expect("reading README.md");
    let lines: Vec<&str> = text.lines().collect();
    let start = lines
        .windows(2)
        .position(|w| w[0].trim() == "```toml" && w[1].trim() == first_line)
        .unwrap_or_else(|| panic!("README.md has no toml block starting {first_line:?}"));
    let indent = lines[start].len() - lines[start].trim_start().len();
    let mut block = String::new();
    for line in &lines[start + 1..] {
        if line.trim() == "```" {
            return block;
        }
        block.push_str(line.get(indent..).unwrap_or_default());
        block.push('\n');
    }
    panic!("README.md: the block starting {first_line:?} never ends")
}

/// Runs `program` with `args`; what it printed and how it ended.
pub fn run(program: &str, args: &[&str], env: &[(&str, &Path)]) -> Output {
    let mut command = Command::new(program);
    command.args(args);
    for (name, value) in env {
        command.env(name, value);
    }
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("running {program}: {e} (scripts/setup installs it)"));
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A private containerd: root, state, sockets and log in a temporary
/// directory of its own, no CRI plugin; stopped (and waited for) on drop.
pub struct Containerd {
    child: Child,
    dir: tempfile::TempDir,
}

impl Containerd {
    /// Starts the daemon and waits until `ctr` reaches it.
    pub fn start() -> Containerd {
        // Short paths: a unix socket's path has a length limit.
        let dir = temp_dir("ctd-");
        let d = dir.path().display();
        let config = format!(
            "version = 2\nroot = \"{d}/root\"\nstate = \"{d}/state\"\n\
             disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
             [grpc]\n  address = \"{d}/c.sock\"\n[ttrpc]\n  address = \"{d}/t.sock\"\n\
             [debug]\n  address = \"{d}/d.sock\"\n[metrics]\n  address = \"\"\n"
        );
        let config_path = dir.path().join("config.toml");
        std::fs::write(&config_path, config).expect("writing containerd's config");
        let log = std::fs::File::create(dir.path().join("containerd.log")).expect("a log file");
        let child = Command::new("containerd")
            .arg("--config")
            .arg(&config_path)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("running containerd (scripts/setup installs it)");
        let mut daemon = Containerd { child, dir };
        let deadline = Instant::now() + Duration::from_secs(30);
        while daemon.ctr(&["version"]).code != 0 {
            if let Ok(Some(status)) = daemon.child.try_wait() {
                panic!("containerd exited ({status}):\n{}", daemon.log());
            }
            assert!(
                Instant::now() < deadline,
                "containerd never answered:\n{}",
                daemon.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        daemon
    }

    /// `ctr` against this daemon.
    pub fn ctr(&self, args: &[&str]) -> Output {
        let socket = self.dir.path().join("c.sock");
        let socket = socket.to_str().expect("a UTF-8 path");
        let mut all = vec!["--address", socket];
        all.extend_from_slice(args);
        run("ctr", &all, &[])
    }

    /// Whether this machine lets containerd unpack images (its overlayfs
    /// snapshotter loaded): else only content can be fetched.
    pub fn can_unpack(&self) -> bool {
        let plugins = self.ctr(&["plugins", "ls"]).stdout;
        plugins.lines().any(|l| {
            l.contains("io.containerd.snapshotter.v1")
                && l.contains("overlayfs")
                && l.trim_end().ends_with("ok")
        })
    }

    /// A directory for `ctr --hosts-dir`, with the README's `hosts.toml`
    /// for `registry` (its server `server`) and the mirror at `mirror`.
    pub fn hosts_dir(&self, registry: &str, server: &str, mirror: &str) -> PathBuf {
        let block = readme_block(&format!(
            "# /etc/containerd/certs.d/{README_REGISTRY}/hosts.toml"
        ));
        let text = block
            .replace(
                &format!("http://{README_REGISTRY}"),
                &format!("http://{server}"),
            )
            .replace(README_REGISTRY, registry)
            .replace(README_MIRROR, mirror);
        let dir = self.dir.path().join("certs.d").join(registry);
        std::fs::create_dir_all(&dir).expect("a hosts directory");
        std::fs::write(dir.join("hosts.toml"), text).expect("writing hosts.toml");
        self.dir.path().join("certs.d")
    }

    /// What the daemon logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("containerd.log")).unwrap_or_default()
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        // SIGTERM: it unmounts what it mounted and exits.
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Podman with storage of its own (vfs, no daemon), its own signature
/// policy and, when given, the README's registries.conf for a mirror.
pub struct Podman {
    dir: tempfile::TempDir,
    registries: Option<PathBuf>,
}

impl Podman {
    /// Podman with no registries.conf of its own.
    pub fn new() -> Podman {
        let dir = temp_dir("podman-");
        let policy = r#"{"default": [{"type": "insecureAcceptAnything"}]}"#;
        std::fs::write(dir.path().join("policy.json"), policy).expect("writing a policy");
        Podman {
            dir,
            registries: None,
        }
    }

    /// Podman whose registries.conf is the README's: `registry` mirrored
    /// at `mirror`.
    pub fn with_mirror(registry: &str, mirror: &str) -> Podman {
        let mut podman = Podman::new();
        let block = readme_block("# /etc/containers/registries.conf.d/mirror.conf");
        let text = block
            .replace(README_REGISTRY, registry)
            .replace(README_MIRROR, mirror);
        let path = podman.dir.path().join("registries.conf");
        std::fs::write(&path, text).expect("writing registries.conf");
        podman.registries = Some(path);
        podman
    }

    /// `podman` with this storage.
    pub fn run(&self, args: &[&str]) -> Output {
        let d = self.dir.path();
        let path = |name: &str| d.join(name).to_str().expect("a UTF-8 path").to_string();
        let (root, runroot, tmp) = (path("root"), path("run"), path("tmp"));
        std::fs::create_dir_all(&tmp).expect("a temporary directory for podman");
        let mut all = vec![
            "--root",
            &root,
            "--runroot",
            &runroot,
            "--tmpdir",
            &tmp,
            "--storage-driver",
            "vfs",
            "--events-backend",
            "file",
            "--cgroup-manager",
            "cgroupfs",
        ];
        all.extend_from_slice(args);
        let mut env: Vec<(&str, &Path)> = Vec::new();
        if let Some(registries) = &self.registries {
            env.push(("CONTAINERS_REGISTRIES_CONF", registries));
        }
        // Its own configuration only: nothing from /etc/containers/containers.conf.
        let empty = d.join("containers.conf");
        std::fs::write(&empty, "").expect("an empty containers.conf");
        env.push(("CONTAINERS_CONF", &empty));
        run("podman", &all, &env)
    }

    /// `podman pull` of `reference`, with this podman's own signature
    /// policy (accept anything: the images are the test's own).
    pub fn pull(&self, reference: &str, extra: &[&str]) -> Output {
        let policy = self.dir.path().join("policy.json");
        let policy = policy.to_str().expect("a UTF-8 path");
        let mut args = vec!["pull", "--signature-policy", policy];
        args.extend_from_slice(extra);
        args.push(reference);
        self.run(&args)
    }
}

impl Default for Podman {
    fn default() -> Self {
        Self::new()
    }
}
