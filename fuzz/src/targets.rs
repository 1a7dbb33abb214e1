//! The fuzz targets' bodies, one function each, so that tests replay
//! seeds and regressions through exactly what the fuzzer runs
//! (`fuzz_targets/*.rs` are one line each). Every function takes raw bytes
//! and panics when an invariant breaks.

use ocirelay_core::auth::{parse_token_response, Challenge, Credential};
use ocirelay_core::budget::{Budget, MAX_RESET};
use ocirelay_core::digest::{Algorithm, Verifier};
use ocirelay_core::docker_config::{parse_helper_answer, registry_host, DockerConfig};
use ocirelay_core::http::{Redirects, Scheme, Url};
use ocirelay_core::index::{config_platform, Index};
use ocirelay_core::manifest::ManifestChildren;
use ocirelay_core::platform::bashbrew_platform;
use ocirelay_core::rate_limit::{RateSpec, MAX_PERIOD};
use ocirelay_core::settings::Settings;
use ocirelay_core::{Digest, Platform, Reference};

/// A target's function by name, the operations target included.
pub fn by_name(name: &str) -> Option<fn(&[u8])> {
    Some(match name {
        "reference" => reference,
        "digest" => digest,
        "challenge" => challenge,
        "location" => location,
        "manifest" => manifest,
        "platform" => platform,
        "settings" => settings,
        "deploy" => deploy,
        "service" => service,
        "operations" => operations,
        "layout" => layout,
        "limits" => limits,
        _ => return None,
    })
}

/// Every core operation, driven by a hostile registry: no panic, an end
/// within bounds, no credential or upload sent where it does not belong,
/// and nothing reported pushed that the answers did not confirm
/// ([`crate::scenario`]).
pub fn operations(data: &[u8]) {
    crate::scenario::run(data);
}

/// The edge service's routing and the heads it answers with: never a
/// panic, whatever the method, request target and headers; every header
/// value built from a request (a `Link` with its `ns` and `last`, a
/// `Content-Range`, an error's) holds no control character, so nothing a
/// client sends splits a header.
pub fn service(data: &[u8]) {
    use ocirelay_core::http::Headers;
    use ocirelay_core::service::answer::refusal;
    use ocirelay_core::service::{Failure, FailureKind, Head, Request, Route, ServiceConfig};
    // Lines: method, request target, the next page's `last` (as an
    // upstream's Link may say it), then `name: value` headers.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut lines = text.split('\n');
    let method = lines.next().unwrap_or("GET");
    let target = lines.next().unwrap_or("/");
    let next = lines.next().unwrap_or("");
    let headers: Headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    let config = ServiceConfig::parse(
        r#"{"upstreams": [{"registry": "docker.io", "repositories": ["library/*"]},
                          {"registry": "127.0.0.1:5000", "repositories": ["*"]}]}"#,
    )
    .expect("a valid config");
    let heads: Vec<Head> = match Request::parse(method, target, &headers, &config) {
        Ok(request) => {
            let digest = Digest::sha256(data);
            let failure = Failure::new(FailureKind::NotFound, target);
            let mut heads = vec![
                request.content_head(&digest, "application/octet-stream", Some(7), &config),
                request.part_head(&digest, 1, 5, 7),
                request.json_head(3, &config),
                request.failure(&failure).0,
            ];
            heads.extend(request.not_modified(&digest, &config));
            if let Route::MirrorTags(page) = &request.route {
                heads.push(page.answer(&["a".into()], Some(next), &config).0);
            }
            heads
        }
        Err(failure) => vec![refusal(target, &failure).0],
    };
    for head in heads {
        for (name, value) in &head.headers {
            assert!(
                !value.chars().any(char::is_control),
                "{name}: {value:?} from {target:?}"
            );
        }
    }
}

/// Reference parsing (Docker Hub rules): never a panic; what parses prints
/// as a string that parses back to the same reference, in Rust and in JSON.
pub fn reference(data: &[u8]) {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(reference) = Reference::parse(input) else {
        return;
    };
    let shown = reference.to_string();
    match Reference::parse(&shown) {
        Ok(again) => assert_eq!(again, reference, "{input:?} shows as {shown:?}"),
        Err(e) => panic!("{input:?} shows as {shown:?}, which does not parse: {e}"),
    }
    let json = serde_json::to_string(&reference).expect("a reference serializes");
    let back: Reference = serde_json::from_str(&json).expect("its JSON parses back");
    assert_eq!(back, reference);
    if let Some(d) = &reference.digest {
        let short = reference.string_with_known_digest(d);
        assert!(!short.contains('@'), "{short:?} keeps the known digest");
    }
    let _ = reference.string_with_known_digest(&Digest::sha256(data));
    let _ = (reference.object(), reference.cache_namespace());
}

/// Digest parsing and the streaming verifier: never a panic; what parses
/// prints as itself; the verifier accepts content exactly when it hashes to
/// the digest with the size expected, however it is cut into chunks.
pub fn digest(data: &[u8]) {
    // First line: a digest to parse; the rest: content, cut where a byte
    // says.
    let (line, content) = match data.iter().position(|b| *b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let Ok(text) = std::str::from_utf8(line) else {
        return;
    };
    let Ok(digest) = Digest::parse(text) else {
        return;
    };
    assert_eq!(digest.to_string(), text, "a digest prints as given");
    assert_eq!(Digest::parse(&digest.to_string()), Ok(digest.clone()));
    let cut = content.first().map_or(1, |b| usize::from(*b).max(1));
    let expected_size = (content.len() % 3 != 0).then_some(content.len() as u64);
    let mut verifier = Verifier::new("fuzz", digest.clone(), expected_size);
    let mut fed = Ok(());
    for chunk in content.chunks(cut) {
        fed = fed.and_then(|()| verifier.update(chunk));
    }
    let verified = fed.and_then(|()| verifier.finish());
    let actual = Digest::of(digest.algorithm(), content);
    assert_eq!(
        verified.is_ok(),
        actual == digest,
        "verifier and hash disagree"
    );
    if digest.algorithm() == Algorithm::Sha256 {
        assert_eq!(actual, Digest::sha256(content));
    }
}

/// `WWW-Authenticate` challenges, the token requests made from them and
/// token answers: never a panic; a token request goes only to an
/// http(s) realm, and carries the refresh token only in its form body.
pub fn challenge(data: &[u8]) {
    // First line: a header value; the rest: a token service's answer.
    let (line, body) = match data.iter().position(|b| *b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let _ = parse_token_response("https://auth.example/token", body);
    let Ok(value) = std::str::from_utf8(line) else {
        return;
    };
    let Some(challenge) = Challenge::parse(value) else {
        return;
    };
    let scopes = ["repository:library/app:pull".to_string()];
    let credentials = [
        None,
        Some(Credential::Basic {
            username: "u".into(),
            password: "p".into(),
        }),
        Some(Credential::IdentityToken(REFRESH_SECRET.into())),
    ];
    for credential in &credentials {
        let Ok(request) = challenge.token_request(&scopes, credential.as_ref()) else {
            continue;
        };
        let realm = request.realm();
        assert!(
            realm.starts_with("https://") || realm.starts_with("http://"),
            "a token request to {realm:?}"
        );
        // The fuzzer may write the secret into the challenge itself.
        assert!(
            !request.url.to_string().contains(REFRESH_SECRET) || value.contains(REFRESH_SECRET),
            "the refresh token in the token request's URL"
        );
    }
}

/// URLs and `Location`s: never a panic; a parsed or joined URL has no dot
/// segments left and prints as a URL that parses back to itself; following
/// a redirect never goes from HTTPS down to plain HTTP.
pub fn location(data: &[u8]) {
    // First line: a base URL (a default when it does not parse); the rest:
    // a Location.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (base, location) = text.split_once('\n').unwrap_or(("", text));
    let base = match Url::parse(base) {
        Ok(url) => {
            check(&url, base);
            url
        }
        Err(_) => Url::parse("https://registry.example/v2/app/blobs/uploads/").expect("a URL"),
    };
    if let Ok(joined) = base.join(location) {
        check(&joined, location);
        let _ = (joined.origin(), joined.redacted());
    }
    if let Ok(next) = Redirects::default().follow(&base, location) {
        check(&next, location);
        assert!(
            !(base.scheme == Scheme::Https && next.scheme == Scheme::Http),
            "followed {base} down to {next}"
        );
    }
}

/// Manifests, indexes and image configs as registries serve them: never a
/// panic; an index that parses serializes to JSON that parses back to the
/// same index.
pub fn manifest(data: &[u8]) {
    let _ = ManifestChildren::parse(data);
    if let Ok(platform) = config_platform(data) {
        let _ = platform.normalized().bashbrew_arch();
    }
    if let Ok(index) = serde_json::from_slice::<Index>(data) {
        let json = serde_json::to_vec(&index).expect("an index serializes");
        let back: Index = serde_json::from_slice(&json).expect("its JSON parses back");
        assert_eq!(back, index);
    }
}

/// Platform normalization (containerd's, then bashbrew's arm64 rule):
/// never a panic, idempotent, and a bashbrew architecture found for a
/// platform names that same platform.
pub fn platform(data: &[u8]) {
    // os/architecture[/variant], as a platform is written on a command line.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut parts = text.splitn(3, '/');
    let os = parts.next().unwrap_or("");
    let architecture = parts.next().unwrap_or("");
    let variant = parts.next();
    let normalized = Platform::new(os, architecture, variant).normalized();
    assert_eq!(
        normalized.clone().normalized(),
        normalized,
        "{text:?}: normalizing twice changes it"
    );
    if let Some(arch) = normalized.bashbrew_arch() {
        let named = bashbrew_platform(arch).expect("a bashbrew architecture's platform");
        assert!(
            named.normalized().matches(&normalized),
            "{text:?} is not {arch}"
        );
    }
}

/// What a host reads from files and flags: the settings file, `--rate`
/// specs, docker's `config.json` and credential helpers' answers. Never a
/// panic; a rate that parses is usable (a host, a count, a period of at
/// most a day).
pub fn settings(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(rate) = RateSpec::parse(text) {
        check_rate(&rate);
    }
    if let Ok(settings) = Settings::parse(text) {
        settings.rates.iter().for_each(check_rate);
    }
    if let Ok(config) = DockerConfig::parse(text) {
        if let Ok(credentials) = config.credentials() {
            for (host, _) in credentials {
                assert!(!host.contains('/'), "{host:?} is not a host");
            }
        }
        let _ = config.helper_for("docker.io");
        let _ = config.helper_for("registry.example:5000");
    }
    let _ = parse_helper_answer("fuzz", data);
    let _ = registry_host(text);
    // Rate-limit headers, one `name: value` per line: a budget read from
    // them is within bounds whatever they say.
    let headers: Vec<(String, &str)> = text
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim()))
        .collect();
    let stated =
        Budget::from_headers(|name| headers.iter().find(|(n, _)| n == name).map(|(_, v)| *v));
    if let Some(b) = stated {
        assert!(b.resets_in <= MAX_RESET, "{b:?}");
        assert!(b.remaining <= 1_000_000_000, "{b:?}");
    }
}

/// The deploy tool's input: never a panic; what normalizes is valid input
/// that normalizes to itself (`--dry-run` prints it for reuse), its refs
/// all carry one digest when any does, pushed data hashes to it, and the
/// jq printing of any JSON parses back to the same value.
pub fn deploy(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for value in serde_json::Deserializer::from_str(text)
        .into_iter::<serde_json::Value>()
        .map_while(Result::ok)
    {
        let printed = ocirelay_core::deploy::jq::tab(&value);
        let back: serde_json::Value = serde_json::from_str(&printed)
            .unwrap_or_else(|e| panic!("jq printing {value} gave {printed:?}: {e}"));
        assert!(same_json(&back, &value), "{value} printed as {printed:?}");
    }
    let Ok(inputs) = ocirelay_core::deploy::normalize_stream(text) else {
        return;
    };
    for input in &inputs {
        let digests: Vec<_> = input.refs.iter().map(|r| r.digest.clone()).collect();
        assert!(digests.windows(2).all(|w| w[0] == w[1]), "{digests:?}");
        if let (Some(bytes), Some(d)) = (&input.data, &digests[0]) {
            assert_eq!(
                Digest::of(d.algorithm(), bytes),
                *d,
                "data and refs disagree"
            );
        }
        let printed = input.to_json();
        let again = ocirelay_core::deploy::normalize(&printed)
            .unwrap_or_else(|e| panic!("{printed} does not normalize again: {e}"));
        assert_eq!(again.to_json(), printed, "normalizing is not idempotent");
    }
    let _ = ocirelay_core::deploy::jobs(&inputs);
}

/// JSON values equal as jq sees them: numbers as doubles.
fn same_json(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    use serde_json::Value;
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same_json(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|((ka, va), (kb, vb))| ka == kb && same_json(va, vb))
        }
        _ => a == b,
    }
}

/// The identity token the challenge target offers.
const REFRESH_SECRET: &str = "refresh-secret";

/// A URL as parsing or joining must leave it.
fn check(url: &Url, from: &str) {
    let path = url.path_and_query.split('?').next().unwrap_or("");
    assert!(path.starts_with('/'), "{from:?}: path {path:?}");
    assert!(
        !path.split('/').any(|s| s == "." || s == ".."),
        "{from:?}: dot segments left in {path:?}"
    );
    let shown = url.to_string();
    assert_eq!(
        Url::parse(&shown).as_ref(),
        Ok(url),
        "{from:?} shows as {shown:?}"
    );
}

/// A rate a host can apply.
fn check_rate(rate: &RateSpec) {
    assert!(!rate.host.is_empty() && rate.count > 0, "{rate:?}");
    assert!(
        !rate.period.is_zero() && rate.period <= MAX_PERIOD,
        "{rate:?}"
    );
}

/// An OCI layout's `index.json`, and the requests a host answering a
/// layout reads: never a panic; an index that parses writes back as
/// itself and gives only valid tags; a request's repository never climbs
/// out of the layout (no empty, `.` or `..` component, no leading `/`),
/// nor does an upload id. Input: `METHOD PATH[?QUERY]` on the first line,
/// the index after it.
pub fn layout(data: &[u8]) {
    use ocirelay_core::layout::{Ask, LayoutIndex};
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (first, rest) = text.split_once('\n').unwrap_or((text, ""));
    for bytes in [rest.as_bytes(), data] {
        if let Ok(mut index) = LayoutIndex::parse(bytes) {
            let again = LayoutIndex::parse(&index.to_json()).expect("written back, it parses");
            assert_eq!(again, index);
            for tag in index.tags() {
                assert!(ocirelay_core::reference::is_valid_tag(&tag), "{tag:?}");
                assert!(index.find(&tag).is_some());
            }
            let d = Digest::sha256(bytes);
            index.put(
                Some("fuzz"),
                "application/vnd.oci.image.index.v1+json",
                &d,
                1,
            );
            assert_eq!(index.find("fuzz").map(|e| &e.digest), Some(&d));
        }
    }
    let (method, target) = first.split_once(' ').unwrap_or(("GET", first));
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    let Ok(ask) = Ask::parse(method, path, query) else {
        return;
    };
    let names = |name: &str| {
        assert!(!name.starts_with('/') && !name.is_empty(), "{name:?}");
        for part in name.split('/') {
            assert!(!part.is_empty() && part != "." && part != "..", "{name:?}");
        }
    };
    match ask {
        Ask::Base => {}
        Ask::Manifest { name, .. }
        | Ask::PutManifest { name, .. }
        | Ask::Blob { name, .. }
        | Ask::StartUpload { name, .. }
        | Ask::Tags { name, .. }
        | Ask::Referrers { name, .. } => names(&name),
        Ask::Upload { name, id, .. } => {
            names(&name);
            assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{id:?}");
        }
    }
}

/// A step of the `limits` target.
#[derive(Debug, arbitrary::Arbitrary)]
enum LimitStep {
    Acquire(u8),
    Release(u8),
    Answer(u8, u16),
    Budget(u8, String),
    Admit(u8, bool, bool),
    Advance(u16),
}

/// The rate and concurrency state a host keeps per registry, driven by
/// arbitrary requests, answers and stated budgets: never a panic; a limit
/// stays within 1 and the ceiling and nothing goes out past it; a spent
/// budget is back within a day, and is not spent once back.
pub fn limits(data: &[u8]) {
    use arbitrary::Arbitrary as _;
    use ocirelay_core::adaptive::{AdaptiveLimits, Place};
    use ocirelay_core::policy::{Admission, HostPolicy};
    use ocirelay_core::Instant;
    use std::time::Duration;
    let mut u = arbitrary::Unstructured::new(data);
    let ceiling = usize::from(u8::arbitrary(&mut u).unwrap_or(0) % 16) + 1;
    let mut limits = AdaptiveLimits::new(ceiling);
    let mut policy = HostPolicy::new(Vec::new());
    let mut places: Vec<(String, Place)> = Vec::new();
    let mut now = Instant::ZERO;
    let host =
        |n: u8| ["r.example", "docker.io", "registry-1.docker.io"][usize::from(n) % 3].to_string();
    for _ in 0..256 {
        let Ok(step) = LimitStep::arbitrary(&mut u) else {
            break;
        };
        match step {
            LimitStep::Acquire(h) => {
                let h = host(h);
                if let Some(place) = limits.try_acquire(&h) {
                    places.push((h, place));
                }
            }
            LimitStep::Release(i) if !places.is_empty() => {
                let (h, _) = places.swap_remove(usize::from(i) % places.len());
                limits.release(&h);
            }
            LimitStep::Release(_) => {}
            LimitStep::Answer(i, status) if !places.is_empty() => {
                let (h, place) = places.swap_remove(usize::from(i) % places.len());
                if let Some(limit) = limits.answered(&h, place, status) {
                    assert!((1..=ceiling).contains(&limit), "{limit} of {ceiling}");
                }
                limits.release(&h);
            }
            LimitStep::Answer(..) => {}
            LimitStep::Budget(h, text) => {
                let headers: Vec<(String, &str)> = text
                    .lines()
                    .filter_map(|l| l.split_once(':'))
                    .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim()))
                    .collect();
                let stated = Budget::from_headers(|name| {
                    headers.iter().find(|(n, _)| n == name).map(|(_, v)| *v)
                });
                if let Some(stated) = stated {
                    policy.learn_budget(&host(h), stated, now);
                }
            }
            LimitStep::Admit(h, get, manifest) => {
                let path = if manifest {
                    "/v2/a/manifests/1"
                } else {
                    "/v2/a/blobs/sha256:x"
                };
                let method = if get { "GET" } else { "HEAD" };
                match policy.admit_request(&host(h), method, path, now) {
                    Admission::Exhausted(at) => {
                        assert!(at > now && at.saturating_since(now) <= MAX_RESET, "{at:?}");
                        // Once back, it is not spent.
                        let back = policy.admit_request(&host(h), method, path, at);
                        assert!(!matches!(back, Admission::Exhausted(_)), "{back:?}");
                        now = at;
                    }
                    Admission::Wait(at) => assert!(at >= now),
                    Admission::Go | Admission::Refused => {}
                }
            }
            LimitStep::Advance(ms) => now = now + Duration::from_millis(u64::from(ms)),
        }
        for h in 0..3 {
            if let Some((limit, in_flight)) = limits.state(&host(h)) {
                assert!((1..=ceiling).contains(&limit), "{limit} of {ceiling}");
                let held = places.iter().filter(|(p, _)| *p == host(h)).count();
                assert_eq!(in_flight, held);
            }
        }
    }
}
