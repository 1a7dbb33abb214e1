//! The deploy input's `data` objects are pushed as the original tool pushes
//! them, which pipes its input through `jq --tab`: ocirelay prints them
//! itself (`ocirelay_core::deploy::jq`), byte for byte as Debian's `jq`
//! does, without needing jq installed. This compares the two on a corpus.

use std::io::Write;
use std::process::{Command, Stdio};

use ocirelay_core::deploy::jq;

/// What `jq --tab .` prints for `json`.
fn debian_jq(json: &str) -> String {
    let mut child = Command::new("jq")
        .args(["--tab", "."])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("running jq (scripts/setup installs it)");
    child
        .stdin
        .take()
        .expect("jq's stdin")
        .write_all(json.as_bytes())
        .expect("writing to jq");
    let out = child.wait_with_output().expect("jq's output");
    assert!(out.status.success(), "jq refused {json}");
    String::from_utf8(out.stdout).expect("jq prints UTF-8")
}

const CORPUS: &[&str] = &[
    r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:9ef42f1d602fb423fad935aac1caa0cfdbce1ad7edce64d080a4eb7b13f7cd9d","size":1165,"platform":{"architecture":"arm64","os":"linux","variant":"v8","os.features":[]}}],"annotations":{}}"#,
    r#"{"a":[],"b":{},"c":[[],[{}],[[[]]]],"d":{"e":{"f":{"g":{}}}}}"#,
    r#"[1,[2,[3,[4,[5]]]]]"#,
    r#"{"unicode":"héllo wörld ✓ 😀 日本語","escapes":"quote \" backslash \\ slash \/ \b\f\n\r\t","controls":"\u0000\u0001\u001f\u007f\u0080\u00a0\u2028"}"#,
    r#"{"numbers":[0,-0,1,-1,1.0,1.50,100,1e2,1E+2,1e5,1e6,1e15,1e16,1.5e16,1.5e17,1.23e17,1e17,1e20,1e-4,1e-5,0.1,0.001,123456789012345678,12345678901234567890,3.14159265358979323846,-2.5e-10,5e-324,1.7976931348623157e308,9007199254740993]}"#,
    r#"{"dup":1,"other":2,"dup":3}"#,
    // Found by fuzzing: a long literal must round like jq's strtod does.
    "[84444444444444444444444444444444444444444444444444444444444444444444444444444444444444444444444444444444444444444444444444444444444444444444444444444444444444444, 0.1000000000000000055511151231257827021181583404541015625, 2.2250738585072011e-308]",
    r#"{"nulls":null,"bools":[true,false],"nested":[{"k":null}]}"#,
    r#"{"key with \"quotes\" and \\":"v","":"empty key","ключ":"значение"}"#,
    r#"{}"#,
    r#"[]"#,
    r#""just a string""#,
    r#"42"#,
    r#"null"#,
];

#[test]
fn data_objects_print_as_debian_jq_prints_them() {
    for json in CORPUS {
        let value: serde_json::Value = serde_json::from_str(json).expect("corpus JSON");
        let ours = format!("{}\n", jq::tab(&value));
        assert_eq!(ours, debian_jq(json), "{json}");
    }
}

#[test]
fn pushed_bytes_end_as_the_original_tool_leaves_them() {
    // The tool reads jq's output with Go's decoder (which drops the final
    // newline) and puts one back only on text that spans lines.
    for json in CORPUS {
        let value: serde_json::Value = serde_json::from_str(json).expect("corpus JSON");
        let printed = debian_jq(json);
        let trimmed = printed.trim_end_matches('\n');
        let expected = if trimmed.contains('\n') {
            printed.clone()
        } else {
            trimmed.to_string()
        };
        assert_eq!(jq::data_bytes(&value), expected.as_bytes(), "{json}");
    }
}
