//! The deploy tool's input, as the original's (`cmd/deploy`) reads it: a
//! stream of `{type, refs, lookup, data}` objects, normalized ([`input`])
//! with `data` objects printed as `jq --tab` prints them ([`jq`]).

pub mod input;
pub mod jq;
pub mod schedule;

use std::collections::HashSet;

use crate::manifest::ManifestChildren;
use crate::ops::ensure_manifest::ChildRefs;
use crate::{Digest, Reference};

pub use input::{normalize, Kind, Normalized};
pub use schedule::{Locks, Schedule};

/// One ref of one input: what `deploy` ensures, one at a time or side by side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// The input it comes from (its index).
    pub input: usize,
    /// Where it pushes.
    pub reference: Reference,
    /// What it must wait for.
    pub locks: Locks,
}

/// `repo@digest`: what the schedule orders jobs by.
fn object_key(r: &Reference) -> Option<String> {
    let digest = r.digest.as_ref()?;
    Some(format!("{}/{}@{digest}", r.host, r.repository))
}

/// `repo:tag`: a tag a job writes or copies from.
fn tag_key(r: &Reference) -> Option<String> {
    let tag = r.tag.as_ref()?;
    Some(format!("{}/{}:{tag}", r.host, r.repository))
}

/// The jobs of `inputs`, in order, with what each writes and reads (as the
/// original locks them): the first ref of an input in a repository writes
/// its object and the rest read it; each reads the children its data names
/// (where it pushes, and where its lookup says they are), its lookup
/// entries and its copy source. Tags count too (the original orders by
/// digest only): a ref writes its tag, and a copy from a tag an earlier
/// input pushes waits for it.
pub fn jobs(inputs: &[Normalized]) -> Vec<Job> {
    let mut jobs = Vec::new();
    for (i, input) in inputs.iter().enumerate() {
        let children: Vec<Digest> = input
            .data
            .as_deref()
            .filter(|d| d.len() > 2)
            .and_then(|d| ManifestChildren::parse(d).ok())
            .map(|c| {
                c.manifests
                    .into_iter()
                    .chain(c.config)
                    .chain(c.layers)
                    .map(|d| d.digest)
                    .collect()
            })
            .unwrap_or_default();
        let mut written = HashSet::new();
        for r in &input.refs {
            let mut locks = Locks::default();
            match object_key(r) {
                Some(key) if written.insert(key.clone()) => locks.writes.push(key),
                Some(key) => locks.reads.push(key),
                None => {}
            }
            locks.writes.extend(tag_key(r));
            let mut reads: Vec<Reference> = Vec::new();
            for child in &children {
                reads.push(r.with_digest(child.clone()));
                if let Some(l) = input.lookup.get(&child.to_string()) {
                    reads.push(l.with_digest(child.clone()));
                }
                if let Some(l) = input.lookup.get("") {
                    reads.push(l.with_digest(child.clone()));
                }
            }
            for (key, l) in &input.lookup {
                reads.push(l.clone());
                if let Ok(d) = Digest::parse(key) {
                    reads.push(l.with_digest(d));
                }
            }
            reads.extend(input.copy_from.clone());
            let tags = input
                .copy_from
                .iter()
                .chain(input.lookup.values())
                .filter_map(tag_key);
            let mut seen: HashSet<String> = locks.reads.iter().cloned().collect();
            for key in reads.iter().filter_map(object_key).chain(tags) {
                if !locks.writes.contains(&key) && seen.insert(key.clone()) {
                    locks.reads.push(key);
                }
            }
            jobs.push(Job {
                input: i,
                reference: r.clone(),
                locks,
            });
        }
    }
    jobs
}

/// Where an input's children are found: its lookup, as copy and ensure
/// operations take it.
pub fn child_refs(input: &Normalized) -> ChildRefs {
    ChildRefs {
        by_digest: input
            .lookup
            .iter()
            .filter_map(|(k, r)| Digest::parse(k).ok().map(|d| (d.clone(), r.with_digest(d))))
            .collect(),
        fallback: input.lookup.get("").cloned(),
    }
}

/// Every input of a stream of JSON objects (whitespace-separated, as `jq`
/// writes them), normalized before anything is pushed; an error names the
/// input's position (its number and line) and what is wrong with it.
pub fn normalize_stream(text: &str) -> crate::Result<Vec<Normalized>> {
    let mut stream = serde_json::Deserializer::from_str(text).into_iter::<serde_json::Value>();
    let mut inputs = Vec::new();
    loop {
        let offset = stream.byte_offset();
        let line = 1
            + text[..offset].matches('\n').count()
            + text[offset..]
                .chars()
                .take_while(|c| c.is_whitespace())
                .filter(|c| *c == '\n')
                .count();
        let at = |n: usize| format!("input {n} (line {line})");
        match stream.next() {
            None => return Ok(inputs),
            Some(Err(e)) => {
                return Err(crate::Error::InvalidInput(format!(
                    "{}: not JSON: {e}",
                    at(inputs.len() + 1)
                )))
            }
            Some(Ok(value)) => {
                let normalized = normalize(&value).map_err(|e| {
                    // Said once: "invalid input: input 3 (line 4): unknown type".
                    let why = match e {
                        crate::Error::InvalidInput(why) => why,
                        other => other.to_string(),
                    };
                    crate::Error::InvalidInput(format!("{}: {why}", at(inputs.len() + 1)))
                })?;
                inputs.push(normalized);
            }
        }
    }
}

/// Where a job is, for its progress line.
#[derive(Debug, Clone, Copy)]
pub enum Progress<'a> {
    /// It starts.
    Started,
    /// It is there now, with this digest.
    Succeeded(&'a Digest),
    /// Dry run: nothing to do.
    UpToDate,
    /// Dry run: deploying would change it.
    WouldChange,
    /// It failed, with this message.
    Failed(&'a str),
}

/// The line the original deploy tool prints on stderr for `job` of `input`:
/// `❔` as it starts, `✅` when done (with `@digest` when the input had
/// none), `❌ … -- ERROR: …` when it failed; a dry run's change is `❌`.
pub fn progress_line(input: &Normalized, job: &Job, progress: Progress<'_>) -> String {
    let known = input.digest();
    let mut text = match known {
        Some(d) => job.reference.string_with_known_digest(d),
        None => job.reference.to_string(),
    };
    match (&input.copy_from, known) {
        (Some(from), _) => text.push_str(&format!(" 🤝 ({}) {from}", input.kind.name())),
        (None, Some(d)) => text.push_str(&format!(" 🦾 ({}) {d}", input.kind.name())),
        (None, None) => text.push_str(&format!(" 🦾 ({})", input.kind.name())),
    }
    match progress {
        Progress::Started => format!("❔ {text}"),
        Progress::Succeeded(digest) if job.reference.digest.is_none() && known.is_none() => {
            format!("✅ {text}@{digest}")
        }
        Progress::Succeeded(_) | Progress::UpToDate => format!("✅ {text}"),
        Progress::WouldChange => format!("❌ {text}"),
        Progress::Failed(message) => format!("❌ {text} -- ERROR: {message}"),
    }
}

/// What `deploy --dry-run` prints for a ref that would change: its input
/// with that ref alone, tab-indented as the original prints it.
pub fn dry_run_json(input: &Normalized, reference: &Reference) -> String {
    let mut one = input.clone();
    one.refs = vec![reference.clone()];
    jq::tab(&one.to_json())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_image_then_its_index_lock_what_they_push_and_need() {
        let layer = Digest::sha256(b"layer");
        let blob = r#"{"type": "blob", "refs": ["r.example/app"], "data": "bGF5ZXI="}"#;
        let image = serde_json::json!({
            "type": "manifest",
            "refs": ["r.example/app:v1", "r.example/app:latest", "r.example/other:v1"],
            "data": {"mediaType": "application/vnd.oci.image.manifest.v1+json",
                     "layers": [{"mediaType": "x", "digest": layer.to_string(), "size": 5}]},
        });
        let inputs = vec![
            normalize(&serde_json::from_str(blob).unwrap()).unwrap(),
            normalize(&image).unwrap(),
        ];
        let jobs = jobs(&inputs);
        let layer_key = format!("r.example/app@{layer}");
        assert_eq!(jobs[0].locks.writes, vec![layer_key.clone()]);
        let image_digest = inputs[1].digest().unwrap();
        let app = format!("r.example/app@{image_digest}");
        let other = format!("r.example/other@{image_digest}");
        assert_eq!(
            jobs[1].locks.writes,
            vec![app.clone(), "r.example/app:v1".to_string()]
        );
        assert_eq!(jobs[1].locks.reads, vec![layer_key.clone()]);
        assert_eq!(
            jobs[2].locks.writes,
            vec!["r.example/app:latest".to_string()],
            "the second tag in app reads what the first pushes"
        );
        assert_eq!(jobs[2].locks.reads, vec![app.clone(), layer_key]);
        assert_eq!(
            jobs[3].locks.writes,
            vec![other, "r.example/other:v1".to_string()]
        );
        let mut s = Schedule::new(&jobs.iter().map(|j| j.locks.clone()).collect::<Vec<_>>());
        assert_eq!(s.start_next(), Some(0));
        assert_eq!(
            s.start_next(),
            Some(3),
            "other repository: its layer is not ours to wait for"
        );
        assert_eq!(s.start_next(), None);
        s.finish(0);
        assert_eq!(s.start_next(), Some(1));
    }

    #[test]
    fn a_stream_is_normalized_whole_or_refused_naming_the_input() {
        let good = "{\"type\": \"blob\", \"refs\": [\"r.example/a\"], \"data\": \"eA==\"}\n\n{\"type\": \"blob\", \"refs\": [\"r.example/b\"], \"data\": \"eQ==\"}";
        assert_eq!(normalize_stream(good).unwrap().len(), 2);
        assert_eq!(normalize_stream("  \n").unwrap(), vec![]);
        let bad_type = format!("{good}\n{{\"type\": \"image\", \"refs\": [\"x\"]}}");
        let e = normalize_stream(&bad_type).unwrap_err().to_string();
        assert_eq!(e, "invalid input: input 3 (line 4): unknown type: image");
        let truncated =
            "{\"type\": \"blob\", \"refs\": [\"r.example/a\"], \"data\": \"eA==\"}\n{\"type\": ";
        let e = normalize_stream(truncated).unwrap_err().to_string();
        assert!(
            e.contains("input 2 (line 2)") && e.contains("not JSON"),
            "{e}"
        );
        let e = normalize_stream("nope").unwrap_err().to_string();
        assert!(e.contains("input 1 (line 1): not JSON"), "{e}");
    }

    #[test]
    fn progress_lines_read_as_the_original_prints_them() {
        let d = "sha256:9ef42f1d602fb423fad935aac1caa0cfdbce1ad7edce64d080a4eb7b13f7cd9d";
        let copy = normalize(&serde_json::json!({
            "type": "manifest", "refs": ["localhost:5000/example:test"], "lookup": {"": "tianon/true:oci"}
        }))
        .unwrap();
        let job = &jobs(std::slice::from_ref(&copy))[0];
        assert_eq!(
            progress_line(&copy, job, Progress::Started),
            "❔ localhost:5000/example:test 🤝 (manifest) tianon/true:oci"
        );
        let digest = Digest::parse(d).unwrap();
        assert_eq!(
            progress_line(&copy, job, Progress::Succeeded(&digest)),
            format!("✅ localhost:5000/example:test 🤝 (manifest) tianon/true:oci@{d}")
        );
        let blob = normalize(&serde_json::json!({
            "type": "blob", "refs": ["localhost:5000/example"], "data": "eA=="
        }))
        .unwrap();
        let job = &jobs(std::slice::from_ref(&blob))[0];
        let x = Digest::sha256(b"x");
        assert_eq!(
            progress_line(&blob, job, Progress::Failed("boom")),
            format!("❌ localhost:5000/example 🦾 (blob) {x} -- ERROR: boom")
        );
        assert_eq!(
            dry_run_json(&blob, &job.reference),
            format!("{{\n\t\"type\": \"blob\",\n\t\"refs\": [\n\t\t\"localhost:5000/example@{x}\"\n\t],\n\t\"data\": \"eA==\"\n}}")
        );
    }
}
