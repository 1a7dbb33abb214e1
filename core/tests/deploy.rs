//! Deploy against scripted registries: inputs pushed children first, a
//! dry run after that only looks (HEADs) and finds nothing to do, the
//! parallel schedule never sends a parent before its children, and a
//! failure starts nothing new.

use ocirelay_core::deploy::normalize_stream;
use ocirelay_core::http::Method;
use ocirelay_core::ops::deploy::{Deploy, DeployOptions, Event, Report};
use ocirelay_core::Digest;

mod common;
use common::{client, drive, drive_concurrently, urls, World};

const A: &str = "localhost:5000";

/// A layer, a config, an image of them (tags v1 and latest) and an index
/// of the image, as a release pipeline writes them: children first.
fn stream() -> (String, Digest) {
    let layer = b"a layer";
    let config = br#"{"architecture":"amd64","os":"linux"}"#;
    let b64 = |b: &[u8]| {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(b)
    };
    let image = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": Digest::sha256(config).to_string(), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": Digest::sha256(layer).to_string(), "size": layer.len()}],
    });
    let image_digest = Digest::sha256(&ocirelay_core::deploy::jq::data_bytes(&image));
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "digest": image_digest.to_string(), "size": ocirelay_core::deploy::jq::data_bytes(&image).len()}],
    });
    let lines = [
        serde_json::json!({"type": "blob", "refs": [format!("{A}/app")], "data": b64(layer)}),
        serde_json::json!({"type": "blob", "refs": [format!("{A}/app")], "data": b64(config)}),
        serde_json::json!({"type": "manifest", "refs": [format!("{A}/app:v1"), format!("{A}/app:latest")], "data": image}),
        serde_json::json!({"type": "manifest", "refs": [format!("{A}/app:multi")], "data": index}),
    ];
    let text = lines
        .iter()
        .map(|l| format!("{l:#}"))
        .collect::<Vec<_>>()
        .join("\n");
    (text, image_digest)
}

#[test]
fn a_deploy_pushes_everything_and_a_dry_run_after_it_finds_nothing_to_do() {
    let (text, image) = stream();
    let mut world = World::default();
    let mut c = client(&[]);
    let mut op = Deploy::new(
        &c,
        normalize_stream(&text).unwrap(),
        DeployOptions::default(),
    );
    let (outcomes, sent) = drive(&mut c, &mut op, |q| world.serve(q));
    assert_eq!(outcomes.len(), 5, "one per ref");
    for o in &outcomes {
        assert!(matches!(o, Some(Ok(Report::Pushed(_)))), "{outcomes:?}");
    }
    // What a driver reports progress from: inputs, a job per ref, outcomes.
    assert_eq!(op.inputs().len(), 4);
    let refs: Vec<(usize, String)> = op
        .jobs()
        .iter()
        .map(|j| (j.input, j.reference.to_string()))
        .collect();
    assert_eq!(refs[2], (2, format!("{A}/app:v1@{image}")), "{refs:?}");
    assert_eq!(refs[3], (2, format!("{A}/app:latest@{image}")), "{refs:?}");
    assert!((0..5).all(|j| matches!(op.outcome(j), Some(Ok(Report::Pushed(_))))));
    assert!(world.reg(A).tagged("app", "v1", &image));
    assert!(world.reg(A).tagged("app", "latest", &image));
    let puts = urls(&sent)
        .into_iter()
        .filter(|u| u.starts_with("PUT"))
        .count();
    assert!(puts >= 5, "{:#?}", urls(&sent));

    let mut c = client(&[]);
    let options = DeployOptions {
        dry_run: true,
        parallel: true,
        ..DeployOptions::default()
    };
    let mut op = Deploy::new(&c, normalize_stream(&text).unwrap(), options);
    let (outcomes, sent, _) = drive_concurrently(&mut c, &mut op, |q| world.serve(q));
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, Some(Ok(Report::UpToDate)))),
        "{outcomes:?}"
    );
    assert!(
        sent.iter().all(|q| q.method == Method::Head),
        "{:#?}",
        urls(&sent)
    );
    assert_eq!(sent.len(), 5, "one HEAD per ref: {:#?}", urls(&sent));

    // A tag moved elsewhere is a change, found by the tag's HEAD.
    let other = world
        .reg(A)
        .put("app", "application/vnd.oci.image.manifest.v1+json", b"{}");
    world.reg(A).tag("app", "latest", &other);
    let mut c = client(&[]);
    let mut op = Deploy::new(&c, normalize_stream(&text).unwrap(), options);
    let (outcomes, _, _) = drive_concurrently(&mut c, &mut op, |q| world.serve(q));
    let changed: Vec<usize> = (0..outcomes.len())
        .filter(|i| matches!(outcomes[*i], Some(Ok(Report::WouldChange))))
        .collect();
    assert_eq!(changed, [3], "app:latest only: {outcomes:?}");

    // A ref by digest alone is looked at by its digest, wherever tags point.
    let by_digest = serde_json::json!({"type": "manifest", "refs": [format!("{A}/app@{image}")],
                                       "lookup": {"": format!("{A}/app:v1")}});
    let mut c = client(&[]);
    let inputs = normalize_stream(&by_digest.to_string()).unwrap();
    let mut op = Deploy::new(&c, inputs, options);
    let (outcomes, sent, _) = drive_concurrently(&mut c, &mut op, |q| world.serve(q));
    assert!(
        matches!(outcomes[0], Some(Ok(Report::UpToDate))),
        "{outcomes:?}"
    );
    assert_eq!(
        urls(&sent),
        [format!("HEAD http://{A}/v2/app/manifests/{image}")]
    );
}

#[test]
fn in_parallel_no_parent_goes_before_its_children() {
    let (text, image) = stream();
    let mut world = World::default();
    let mut c = client(&[]);
    let options = DeployOptions {
        parallel: true,
        ..DeployOptions::default()
    };
    let mut op = Deploy::new(&c, normalize_stream(&text).unwrap(), options);
    let (outcomes, sent, most) = drive_concurrently(&mut c, &mut op, |q| world.serve(q));
    assert!(
        outcomes.iter().all(|o| matches!(o, Some(Ok(_)))),
        "{outcomes:?}"
    );
    assert!(most >= 2, "independent blobs went side by side");
    let sent = urls(&sent);
    let position = |needle: &str| {
        sent.iter()
            .position(|u| u.starts_with("PUT") && u.contains(needle))
            .unwrap_or_else(|| panic!("no PUT of {needle}: {sent:#?}"))
    };
    let image_put = position("/manifests/v1");
    let blob_puts = sent
        .iter()
        .enumerate()
        .filter(|(_, u)| u.starts_with("PUT") && u.contains("digest="))
        .map(|(i, _)| i);
    assert!(blob_puts.max().unwrap() < image_put, "{sent:#?}");
    assert!(
        position("/manifests/v1") < position("/manifests/multi"),
        "{sent:#?}"
    );
    assert!(world.reg(A).tagged("app", "latest", &image));

    // The schedule's order: the blobs start together; the image's tags
    // only once both ended; the index once the image did.
    let events: Vec<Event> = op.take_events().collect();
    let at = |e: Event| {
        events
            .iter()
            .position(|x| *x == e)
            .unwrap_or_else(|| panic!("{e:?}: {events:?}"))
    };
    assert!(at(Event::Started(1)) < at(Event::Finished(0)), "{events:?}");
    for tag in [2, 3] {
        assert!(
            at(Event::Started(tag)) > at(Event::Finished(0)),
            "{events:?}"
        );
        assert!(
            at(Event::Started(tag)) > at(Event::Finished(1)),
            "{events:?}"
        );
    }
    assert!(
        at(Event::Started(3)) > at(Event::Finished(2)),
        "the second tag after the push"
    );
    assert!(at(Event::Started(4)) > at(Event::Finished(2)), "{events:?}");
}

#[test]
fn after_a_failure_nothing_new_starts() {
    let missing = "sha256:0000000000000000000000000000000000000000000000000000000000000000";
    let text = format!(
        "{{\"type\": \"blob\", \"refs\": [\"{A}/app\"], \"lookup\": {{\"{missing}\": \"{A}/elsewhere\"}}}}\n\
         {{\"type\": \"blob\", \"refs\": [\"{A}/app\"], \"data\": \"eA==\"}}"
    );
    let mut world = World::default();
    let mut c = client(&[]);
    let mut op = Deploy::new(
        &c,
        normalize_stream(&text).unwrap(),
        DeployOptions::default(),
    );
    let (outcomes, _) = drive(&mut c, &mut op, |q| world.serve(q));
    assert!(matches!(outcomes[0], Some(Err(_))), "{outcomes:?}");
    assert_eq!(outcomes[1], None, "not started");
    assert!(!world.reg(A).has("app", &Digest::sha256(b"x")));
}
