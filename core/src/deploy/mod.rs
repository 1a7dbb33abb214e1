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

/// The jobs of `inputs`, in order, with what each writes and reads (as the
/// original locks them): the first ref of an input in a repository writes
/// its object and the rest read it; each reads the children its data names
/// (where it pushes, and where its lookup says they are), its lookup
/// entries and its copy source.
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
            let own = object_key(r);
            match &own {
                Some(key) if written.insert(key.clone()) => locks.writes = Some(key.clone()),
                Some(key) => locks.reads.push(key.clone()),
                None => {}
            }
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
            let mut seen = HashSet::new();
            for key in reads.iter().filter_map(object_key) {
                if Some(&key) != locks.writes.as_ref() && seen.insert(key.clone()) {
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
        assert_eq!(jobs[0].locks.writes.as_deref(), Some(layer_key.as_str()));
        let image_digest = inputs[1].digest().unwrap();
        let app = format!("r.example/app@{image_digest}");
        let other = format!("r.example/other@{image_digest}");
        assert_eq!(jobs[1].locks.writes.as_deref(), Some(app.as_str()));
        assert_eq!(jobs[1].locks.reads, vec![layer_key.clone()]);
        assert_eq!(
            jobs[2].locks.writes, None,
            "the second tag in app reads what the first pushes"
        );
        assert_eq!(jobs[2].locks.reads, vec![app.clone(), layer_key]);
        assert_eq!(jobs[3].locks.writes.as_deref(), Some(other.as_str()));
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
                    crate::Error::InvalidInput(format!("{}: {e}", at(inputs.len() + 1)))
                })?;
                inputs.push(normalized);
            }
        }
    }
}

#[cfg(test)]
mod stream_tests {
    use super::*;

    #[test]
    fn a_stream_is_normalized_whole_or_refused_naming_the_input() {
        let good = "{\"type\": \"blob\", \"refs\": [\"r.example/a\"], \"data\": \"eA==\"}\n\n{\"type\": \"blob\", \"refs\": [\"r.example/b\"], \"data\": \"eQ==\"}";
        assert_eq!(normalize_stream(good).unwrap().len(), 2);
        assert_eq!(normalize_stream("  \n").unwrap(), vec![]);
        let bad_type = format!("{good}\n{{\"type\": \"image\", \"refs\": [\"x\"]}}");
        let e = normalize_stream(&bad_type).unwrap_err().to_string();
        assert!(
            e.contains("input 3 (line 4)") && e.contains("unknown type: image"),
            "{e}"
        );
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
}
