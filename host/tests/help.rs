//! The help texts explain every flag (and building this test makes cargo
//! build the `ocirelay` binary that the end-to-end tests run).

use std::process::Command;

fn help(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_ocirelay"))
        .args(args)
        .output()
        .expect("running ocirelay");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn top_level_help_names_commands_exit_codes_and_credentials() {
    let text = help(&["--help"]);
    for needle in [
        "lookup",
        "Exit codes",
        "docker config",
        "--insecure",
        "RUST_LOG",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
}

#[test]
fn lookup_help_explains_every_flag() {
    let text = help(&["lookup", "--help"]);
    for needle in ["--type", "manifest", "blob", "--head", "descriptor", "REF"] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
}
