//! The runtime against real registries on loopback (the tests crate's harness).

use super::*;
use ocirelay_core::ops::batch::{Answer, Query};
use ocirelay_core::ops::lookup::LookupOptions;
use ocirelay_core::{Descriptor, Reference};

/// A multi-threaded tokio runtime, as the CLI runs on.
fn tokio_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// A runtime trusting the tests' CA whose hook lets `hosts` through.
fn runtime_for(hosts: &[&str]) -> Runtime {
    let policy = Policy::new(Vec::new(), hosts.iter().copied());
    let ca = [ocirelay_tests::tls::ca_file().to_path_buf()];
    let idle = std::time::Duration::from_secs(60);
    Runtime::new(policy, &ca, idle).expect("the runtime")
}

/// A session's config as the CLI gives it, defaults throughout.
fn test_config() -> wit::Config {
    wit::Config {
        user_agent: "test".into(),
        credentials: Vec::new(),
        insecure_registries: Vec::new(),
        cache: true,
        concurrency: 0,
        retry_deadline_secs: 0,
        docker_hub_proxy: None,
        policy: None,
        uploads_verified_by_host: true,
        downloads_verified_by_host: true,
        request_timeout_secs: 0,
        uploads: Vec::new(),
    }
}

/// An embedder whose hook applies no policy of its own (ours is told to
/// let both hosts through) still gets the allow-list and the rate limit,
/// from the component's configured policy.
#[test]
fn the_component_applies_its_own_policy_for_embedders() {
    use std::time::{Duration, Instant};
    let registry = ocirelay_tests::Registry::start(ocirelay_tests::Auth::None);
    let stranger = "127.0.0.1:1";
    let rt = tokio_runtime();
    rt.block_on(async {
        let hook_policy = Policy::new(Vec::new(), [registry.host(), stranger]);
        let idle = std::time::Duration::from_secs(60);
        let ca = [ocirelay_tests::tls::ca_file().to_path_buf()];
        let runtime = Runtime::new(hook_policy, &ca, idle).expect("the runtime");
        let config = wit::Config {
            user_agent: "embedder".into(),
            cache: false,
            policy: Some(wit::Policy {
                allowed_hosts: vec![registry.host().to_string()],
                rate_limits: vec![wit::RateLimit {
                    host: registry.host().to_string(),
                    requests: 2,
                    period_ms: 1000,
                }],
            }),
            ..test_config()
        };
        let mut session = runtime.session(config.clone()).await.expect("a session");
        let head = LookupOptions {
            kind: ocirelay_core::ops::lookup::LookupKind::Manifest,
            head: true,
        };
        let elsewhere = ocirelay_core::Reference::parse(&format!("{stranger}/x:y")).unwrap();
        let err = session
            .lookup(&elsewhere, head)
            .await
            .err()
            .expect("refused");
        assert!(
            err.to_string().contains("not a host this client may reach"),
            "{err}"
        );
        // 6 requests at 2 per second, burst 2: at least 2 seconds.
        let started = Instant::now();
        for i in 0..6 {
            let r = ocirelay_core::Reference::parse(&registry.reference(&format!("app:t{i}")));
            let found = session.lookup(&r.unwrap(), head).await.expect("a lookup");
            assert!(found.is_none());
        }
        assert!(started.elapsed() >= Duration::from_secs(2));
        let sent = || {
            let requests = &runtime.traffic().requests;
            requests.load(std::sync::atomic::Ordering::Relaxed)
        };
        assert_eq!(sent(), 6, "the refused request never reached the hook");

        // A configuration the component cannot use: every call says why.
        let reference = ocirelay_core::Reference::parse(&registry.reference("app:v1"));
        let reference = reference.unwrap();
        let mut bad_proxy = config.clone();
        bad_proxy.docker_hub_proxy = Some("ftp://mirror.example".into());
        let mut zero_rate = config.clone();
        if let Some(p) = zero_rate.policy.as_mut() {
            p.rate_limits[0].requests = 0;
        }
        for (bad, named) in [(bad_proxy, "ftp://mirror.example"), (zero_rate, "rate 0")] {
            let mut session = runtime.session(bad).await.expect("a session");
            let err = session
                .lookup(&reference, head)
                .await
                .err()
                .expect("refused");
            assert!(err.to_string().contains(named), "{err}");
        }
        assert_eq!(sent(), 6, "nothing sent under a bad configuration");
    });
}

/// In a host that checks no upload, the component hashes what it
/// streams itself, and abandons an upload whose bytes do not match
/// before its last byte: nothing corrupt is completed at a destination
/// that verifies nothing either.
#[test]
fn without_the_hooks_check_the_component_checks_uploads_itself() {
    use ocirelay_tests::fault_proxy::{Fault, FaultProxy};
    let src = ocirelay_tests::Registry::start_plain(ocirelay_tests::Auth::None);
    let layer = ocirelay_tests::bytes(8, 3 << 20);
    ocirelay_tests::push_image(&src, "app", "v1", &[&layer]);
    let digest = ocirelay_core::Digest::sha256(&layer);
    src.corrupt_blob(&digest, (3 << 20) - 1);
    let dst = ocirelay_tests::Registry::start_plain(ocirelay_tests::Auth::None);
    let front = FaultProxy::start(dst.host());
    let stored = vec![("Docker-Content-Digest".to_string(), digest.to_string())];
    let upload = format!("digest={digest}");
    front.add("PUT", &upload, Fault::Serve(201, stored, Vec::new()), 10);
    let rt = tokio_runtime();
    rt.block_on(async {
        let host_front = front.host();
        let policy = Policy::new(Vec::new(), [src.host(), host_front.as_str()]);
        let idle = std::time::Duration::from_secs(60);
        let runtime = Runtime::new(policy, &[], idle)
            .expect("the runtime")
            .without_host_checks();
        let config = test_config();
        let mut session = runtime.session(config).await.expect("a session");
        let from = Reference::parse(&src.reference(&format!("app@{digest}"))).unwrap();
        let to = Reference::parse(&format!("{host_front}/copy")).unwrap();
        let Err(err) = session.copy_blob(&from, &to).await else {
            panic!("a corrupt upload went through")
        };
        assert!(
            err.to_string().contains("does not match its digest"),
            "{err}"
        );
        assert_eq!(err.exit_code(), 1);
    });
    let completed = front
        .settled_log()
        .iter()
        .filter(|l| l.starts_with("PUT ") && !l.contains("body ended after"))
        .count();
    let cut = front
        .settled_log()
        .iter()
        .filter(|l| l.contains("body ended after"))
        .count();
    assert_eq!(
        completed,
        cut,
        "every PUT that arrived ended short: {:#?}",
        front.log()
    );
}

/// A streamed blob read is checked by the hook when the component is
/// told it is, else by the component: either way a corrupt blob fails
/// at its end. The words say who found it (the hook names the bytes'
/// digest).
#[test]
fn a_corrupt_blob_read_fails_whoever_checks_it() {
    use ocirelay_core::ops::lookup::LookupKind;
    let src = ocirelay_tests::Registry::start(ocirelay_tests::Auth::None);
    // Larger than the 4 MiB read whole: streamed.
    let layer = ocirelay_tests::bytes(11, 6 << 20);
    ocirelay_tests::push_image(&src, "app", "v1", &[&layer]);
    let digest = ocirelay_core::Digest::sha256(&layer);
    src.corrupt_blob(&digest, layer.len() - 1);
    let blob = Reference::parse(&src.reference(&format!("app@{digest}"))).unwrap();
    let ca = src.ca_file().map(std::path::Path::to_path_buf);
    let rt = tokio_runtime();
    rt.block_on(async {
        // Checked by the host; by the component; by the component
        // whatever a host says, unless told to believe the host; and,
        // told to believe a host that lies, by no one: the corrupt blob
        // reads to its end (why only ocirelay's own host says so).
        for (host_checks, forging) in [(true, false), (false, false), (false, true), (true, true)] {
            let policy = Policy::new(Vec::new(), [src.host()]);
            let idle = std::time::Duration::from_secs(60);
            let mut runtime = Runtime::new(policy, ca.as_slice(), idle).expect("the runtime");
            if !host_checks {
                runtime = runtime.without_host_checks();
            }
            if forging {
                runtime = runtime.with_forging_hook();
            }
            let mut session = runtime.session(test_config()).await.expect("a session");
            let read = LookupOptions {
                kind: LookupKind::Blob,
                head: false,
            };
            let reader = session
                .lookup(&blob, read)
                .await
                .expect("found")
                .expect("there");
            let mut handed_out = 0;
            let err = loop {
                match session.read(&reader, 1 << 20).await {
                    Ok(chunk) if chunk.is_empty() => break None,
                    Ok(chunk) => handed_out += chunk.len(),
                    Err(e) => break Some(e.to_string()),
                }
            };
            let Some(err) = err else {
                assert!(host_checks && forging, "a corrupt blob read to its end");
                assert_eq!(handed_out, layer.len());
                continue;
            };
            assert!(err.contains("content does not match"), "{err}");
            let by_hook = err.contains("the bytes are sha256:");
            assert_eq!(by_hook, host_checks, "{err}");
            // The hook withholds the last frame; the component hands
            // out every byte, then fails the read after the last.
            if host_checks {
                assert!(handed_out < layer.len(), "{handed_out}");
            } else {
                assert_eq!(handed_out, layer.len());
            }
        }
    });
}

/// Whatever the component asks for, our hook sends only to the hosts
/// the command named (and those they sent it to).
#[test]
fn the_hook_refuses_hosts_outside_its_allow_list() {
    let named = ocirelay_tests::Registry::start(ocirelay_tests::Auth::None);
    let other = ocirelay_tests::Registry::start(ocirelay_tests::Auth::None);
    let rt = tokio_runtime();
    rt.block_on(async {
        let runtime = runtime_for(&[named.host()]);
        let config = test_config();
        let mut session = runtime.session(config).await.expect("a session");
        let head = LookupOptions {
            kind: ocirelay_core::ops::lookup::LookupKind::Manifest,
            head: true,
        };
        let elsewhere = Reference::parse(&other.reference("app:v1")).unwrap();
        let err = session
            .lookup(&elsewhere, head)
            .await
            .err()
            .expect("refused");
        assert!(
            err.to_string().contains(&format!(
                "cannot reach {}: request denied by the host",
                other.host()
            )),
            "{err}"
        );
        assert!(other.access_log().is_empty(), "nothing reached it");
        let here = Reference::parse(&named.reference("app:v1")).unwrap();
        assert!(session
            .lookup(&here, head)
            .await
            .expect("allowed")
            .is_none());
    });
}

/// What the CLI prints for `query` (as `lookup` and `index` do).
async fn printed(session: &mut Session, query: &Query) -> Vec<u8> {
    let answer = match query {
        Query::Lookup(r, o) => session.lookup(r, *o).await.unwrap().map(Answer::Found),
        Query::SynthesizeIndex(r) => session
            .synthesize_index(r)
            .await
            .unwrap()
            .map(Answer::Index),
    };
    let mut out = Vec::new();
    crate::queries::print_answer(session, &mut out, query, answer)
        .await
        .expect("printed");
    out
}

/// Embedders get OCI JSON as the exact bytes the CLI prints: a
/// synthesized index, a manifest (here an index) and a descriptor.
#[test]
fn the_json_functions_give_what_the_cli_prints() {
    use ocirelay_core::ops::lookup::LookupKind;
    use ocirelay_tests::{push_index, two_platforms, Flavour};
    let registry = ocirelay_tests::Registry::start(ocirelay_tests::Auth::None);
    push_index(&registry, "app", "v1", Flavour::Oci, &two_platforms());
    let rt = tokio_runtime();
    rt.block_on(async {
        let runtime = runtime_for(&[registry.host()]);
        let mut session = runtime.session(test_config()).await.expect("a session");
        let reference = Reference::parse(&registry.reference("app:v1")).unwrap();
        let get = LookupOptions {
            kind: LookupKind::Manifest,
            head: false,
        };
        let head = LookupOptions { head: true, ..get };
        let index = printed(&mut session, &Query::SynthesizeIndex(reference.clone())).await;
        let manifest = printed(&mut session, &Query::Lookup(reference.clone(), get)).await;
        let descriptor = printed(&mut session, &Query::Lookup(reference.clone(), head)).await;
        assert!(
            descriptor.starts_with(b"{\n\t\"mediaType\": "),
            "{descriptor:?}"
        );
        let found = session
            .lookup(&reference, head)
            .await
            .unwrap()
            .expect("found");

        let wit_ref = wit::Reference::from(&reference);
        let missing = Reference::parse(&registry.reference("app:v2")).unwrap();
        let missing = wit::Reference::from(&missing);
        let api = session.relay.ocirelay_registry_registry();
        let store = &mut session.store;
        let json = api
            .client()
            .call_synthesize_index_json(&mut *store, session.client, &wit_ref)
            .await
            .expect("called")
            .expect("an index");
        assert_eq!(json.map(String::into_bytes), Some(index));
        let json = api
            .client()
            .call_manifest_json(&mut *store, session.client, &wit_ref)
            .await
            .expect("called")
            .expect("a manifest");
        assert_eq!(json.map(String::into_bytes), Some(manifest));
        let json = api
            .blob_reader()
            .call_descriptor_json(&mut *store, found.resource)
            .await
            .expect("called");
        assert_eq!(json.into_bytes(), descriptor);
        let none = api
            .client()
            .call_manifest_json(&mut *store, session.client, &missing)
            .await
            .expect("called")
            .expect("no error");
        assert_eq!(none, None);
    });
}

/// An embedder streams a blob through the writer a chunk at a time to
/// a real registry (HTTPS): it arrives whole; pushed again, nothing is
/// sent; bytes that do not match never complete the upload.
#[test]
fn a_blob_written_a_chunk_at_a_time_arrives_whole() {
    use ocirelay_core::ops::lookup::LookupKind;
    let registry = ocirelay_tests::Registry::start(ocirelay_tests::Auth::None);
    let blob = ocirelay_tests::bytes(11, 5 * 1024 * 1024 + 17);
    let digest = ocirelay_core::Digest::sha256(&blob);
    let rt = tokio_runtime();
    rt.block_on(async {
        let runtime = runtime_for(&[registry.host()]);
        let mut session = runtime.session(test_config()).await.expect("a session");
        let reference = Reference::parse(&registry.reference(&format!("app@{digest}"))).unwrap();
        let wit_ref = wit::Reference::from(&reference);
        let size = blob.len() as u64;
        let api = session.relay.ocirelay_registry_registry();
        let store = &mut session.store;

        let writer = api
            .client()
            .call_push_blob(&mut *store, session.client, &wit_ref, size)
            .await
            .expect("called")
            .expect("a writer");
        for chunk in blob.chunks(1 << 20) {
            let more = api
                .blob_writer()
                .call_write(&mut *store, writer, chunk)
                .await;
            assert!(more.expect("called").expect("written"), "more wanted");
        }
        let pushed = api.blob_writer().call_finish(&mut *store, writer).await;
        let pushed = pushed.expect("called").expect("pushed");
        assert_eq!(
            (pushed.digest.as_str(), pushed.size),
            (digest.to_string().as_str(), size)
        );

        // Pushed again: the registry has it, so nothing is sent.
        let writer = api
            .client()
            .call_push_blob(&mut *store, session.client, &wit_ref, size)
            .await
            .expect("called")
            .expect("a writer");
        let more = api
            .blob_writer()
            .call_write(&mut *store, writer, &blob[..10])
            .await;
        assert!(
            !more.expect("called").expect("no error"),
            "nothing more wanted"
        );
        let again = api.blob_writer().call_finish(&mut *store, writer).await;
        assert_eq!(again.expect("called").expect("there").digest, pushed.digest);

        // Other bytes of the same size under another digest: refused
        // before the upload completes.
        let other = ocirelay_core::Digest::sha256(b"not these bytes");
        let wrong = Reference::parse(&registry.reference(&format!("app@{other}"))).unwrap();
        let writer = api
            .client()
            .call_push_blob(&mut *store, session.client, &(&wrong).into(), size)
            .await
            .expect("called")
            .expect("a writer");
        for chunk in blob.chunks(1 << 20) {
            let more = api
                .blob_writer()
                .call_write(&mut *store, writer, chunk)
                .await;
            more.expect("called").expect("written");
        }
        let refused = api.blob_writer().call_finish(&mut *store, writer).await;
        let Err(wit::Error::Integrity(message)) = refused.expect("called") else {
            panic!("an integrity error");
        };
        assert!(message.contains(&other.to_string()), "{message}");

        let head = LookupOptions {
            kind: LookupKind::Blob,
            head: true,
        };
        let there = session
            .lookup(&reference, head)
            .await
            .unwrap()
            .expect("pushed");
        let json = session.descriptor_json(&there).await.unwrap();
        let descriptor: Descriptor = serde_json::from_str(&json).unwrap();
        assert_eq!(descriptor.size, size);
        assert!(session.lookup(&wrong, head).await.unwrap().is_none());
    });
}

/// The embedded component imports nothing outside the proxy world (the
/// runtime links only that world, so every test of a command also shows
/// that it instantiates and runs there) and exports the registry.
#[test]
fn component_imports_only_the_proxy_world_and_exports_the_registry() {
    let exports = proxy_world::exports_of(COMPONENT_WASM);
    assert_eq!(exports, ["ocirelay:registry/registry@0.1.0"]);
    let idle = std::time::Duration::from_secs(1);
    let runtime = Runtime::new(Policy::new(Vec::new(), ["x"]), &[], idle);
    assert!(runtime.is_ok(), "a proxy-world linker instantiates it");
}
