//! Seed corpora: for each target, inputs of the shape real registries and
//! users give (the fixture images, references and answers the tests use),
//! so that fuzzing starts past the parsers' first rejections.

use arbitrary::{Arbitrary, Unstructured};

use crate::scenario::Scenario;
use crate::world::Images;

/// Seed inputs by target name.
pub fn all() -> Vec<(&'static str, Vec<Vec<u8>>)> {
    let images = Images::get();
    let digest = images.amd64.digest.to_string();
    let text = |items: &[String]| items.iter().map(|s| s.clone().into_bytes()).collect();
    let lines = |items: &[&str]| items.iter().map(|s| s.as_bytes().to_vec()).collect();

    let references: Vec<String> = [
        "hello-world",
        "hello-world:latest",
        "library/hello-world",
        "docker.io/library/hello-world:latest",
        "index.docker.io/library/hello-world",
        "registry-1.docker.io/library/hello-world",
        "registry.hub.docker.com/library/hello-world",
        "docker.io/tianon/true:oci",
        "localhost:5000/foo",
        "127.0.0.1:5000/team/app:v1.0",
        "[::1]:5000/app:1",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([
        format!("hello-world@{digest}"),
        format!("hello-world:latest@{digest}"),
        format!("localhost:5000/a/b:v1.0@{digest}"),
    ])
    .collect();

    let digests: Vec<Vec<u8>> = images
        .all()
        .iter()
        .map(|o| [o.digest.to_string().as_bytes(), b"\n", &o.bytes[..]].concat())
        .chain([b"sha512:00\nx".to_vec(), b"sha256:\n".to_vec()])
        .collect();

    let challenges = lines(&[
        "Basic realm=\"test-realm\"\n",
        "Bearer realm=\"https://auth.example/token\",service=\"test-service\"\n{\"token\":\"t\",\"expires_in\":300}",
        "Bearer realm=\"https://auth.example/token\",service=\"registry.docker.io\",scope=\"repository:library/app:pull\"\n{\"access_token\":\"a\",\"issued_at\":\"2026-01-01T00:00:00Z\"}",
        "bearer realm=https://auth.example/token, scope=\"a b\", error=\"insufficient_scope\"\n{\"token\":\"\"}",
        "Bearer realm=\"http://127.0.0.1:5001/token\",service=\"test-service\"\nnot json",
    ]);

    let locations = lines(&[
        "https://registry.example/v2/app/blobs/uploads/\n/v2/app/blobs/uploads/3f2a?_state=abc",
        "https://registry.example/v2/app/blobs/uploads/\nhttps://registry.example:443/v2/app/blobs/uploads/1",
        "http://127.0.0.1:5000/v2/app/blobs/sha256:00\nhttps://cdn.example/blobs/x?sig=1",
        "https://registry.example/v2/app/blobs/uploads/\n../../admin",
        "https://registry.example/v2/a/b/c?q\n?only=query",
        "https://registry.example/\n//other.example/path",
        "https://registry.example/\nhttp://registry.example/v2/",
        "https://registry.example/\nfile:///etc/passwd",
        "HTTPS://Registry.Example:8443/./v2/../v2/#frag\nx/./y/../z",
    ]);

    let manifests: Vec<Vec<u8>> = images
        .all()
        .iter()
        .map(|o| o.bytes.to_vec())
        .filter(|b| b.first() == Some(&b'{'))
        .collect();

    let platforms = lines(&[
        "linux/amd64",
        "linux/arm64/v8",
        "linux/arm64",
        "linux/aarch64/8",
        "linux/arm/v7",
        "linux/armhf",
        "linux/arm/5",
        "linux/i386",
        "linux/x86_64/v1",
        "windows/amd64",
        "MacOS/arm64",
        "linux/riscv64",
    ]);

    let settings = lines(&[
        "registry.example=100/1m",
        "docker.io=300/60s",
        "h=5/30s",
        r#"{"rates": {"registry.example": "100/1m"}, "insecure": ["10.0.0.5:5000"], "ca-files": ["/etc/ssl/ca.pem"]}"#,
        r#"{"auths": {"https://index.docker.io/v1/": {"auth": "dXNlcjpwYXNz"}, "r.example:5000": {"username": "u", "password": "p"}}}"#,
        r#"{"auths": {"a": {"identitytoken": "it"}, "b": {"registrytoken": "rt"}}, "credsStore": "pass", "credHelpers": {"r.example": "ecr-login"}}"#,
        r#"{"Username": "<token>", "Secret": "s"}"#,
    ]);

    vec![
        ("reference", text(&references)),
        ("digest", digests),
        ("challenge", challenges),
        ("location", locations),
        ("manifest", manifests),
        ("platform", platforms),
        ("settings", settings),
        ("operations", operations()),
    ]
}

/// One input per operation and argument choice, answers left honest: found
/// by trying short inputs (the bytes-to-choice mapping is `arbitrary`'s).
fn operations() -> Vec<Vec<u8>> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..20_000 {
        let input: Vec<u8> = (0..12)
            .map(|_| {
                // xorshift: deterministic, no dependency.
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        let Ok(scenario) = Scenario::arbitrary(&mut Unstructured::new(&input)) else {
            continue;
        };
        // The offset of a resume is no choice worth a seed of its own.
        let choice: String = format!("{:?}", scenario.op)
            .chars()
            .filter(|c| !c.is_ascii_digit())
            .collect();
        if seen.insert(choice) {
            out.push(input);
        }
    }
    out
}
