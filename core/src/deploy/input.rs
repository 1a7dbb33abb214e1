//! One deploy input, normalized as the original's `NormalizeInput` does
//! (`cmd/deploy/input.go`): every ref parsed and given the object's digest,
//! `data` decoded (base64) or printed as `jq --tab` prints it, the object to
//! copy inferred from `lookup` when there is no `data`, and lookup entries
//! stripped to where children are found. Errors quote the original's words
//! and name the first ref.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde_json::{Map, Value};

use crate::deploy::jq;
use crate::error::{Error, Result};
use crate::{Digest, Reference};

/// What an input pushes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A manifest or index (ensure-manifest, copy-manifest).
    Manifest,
    /// A blob (ensure-blob, copy-blob).
    Blob,
}

impl Kind {
    /// As the input names it.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Manifest => "manifest",
            Kind::Blob => "blob",
        }
    }
}

/// An input, normalized.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Normalized {
    /// What it pushes.
    pub kind: Kind,
    /// Where: every ref carries the object's digest when it is known.
    pub refs: Vec<Reference>,
    /// Where children are found, by digest; `""` is the fallback.
    pub lookup: BTreeMap<String, Reference>,
    /// The bytes to push (exclusive with `copy_from`).
    pub data: Option<Vec<u8>>,
    /// The object to copy.
    pub copy_from: Option<Reference>,
    /// A pushed manifest's media type (from its own `mediaType`).
    pub media_type: Option<String>,
    /// A copied manifest brings what refers to it (ocirelay's own field,
    /// `"referrers": true`; the run's `--referrers` sets it for every copy).
    pub referrers: bool,
}

fn invalid(message: String) -> Error {
    Error::InvalidInput(message)
}

/// The refs, parsed, and the digest any of them carries (all must agree).
pub fn normalize_refs(kind: Kind, raw: &[String]) -> Result<(Vec<Reference>, Option<Digest>)> {
    let mut refs = Vec::with_capacity(raw.len());
    let mut common: Option<Digest> = None;
    for text in raw {
        let r = Reference::parse(text)
            .map_err(|e| invalid(format!("{text}: failed to parse ref: {e}")))?;
        if let Some(d) = &r.digest {
            match &common {
                None => common = Some(d.clone()),
                Some(c) if c != d => {
                    return Err(invalid(format!("refs digest mismatch in {r}: {c}")))
                }
                Some(_) => {}
            }
        }
        if kind == Kind::Blob && r.tag.is_some() {
            return Err(invalid(format!("cannot push blobs to a tag: {r}")));
        }
        refs.push(r);
    }
    Ok((refs, common))
}

/// Where the lookup says an object is: `None` when it does not single one
/// out, `Some("")` for a lone fallback with a tag or digest, else the key.
type LookupDigest = Option<String>;

/// The lookup table, parsed: keys are digests or `""` (the fallback), and
/// a by-digest entry's ref gets its key's digest.
pub fn normalize_lookup(
    raw: &[(String, String)],
) -> Result<(BTreeMap<String, Reference>, LookupDigest)> {
    let mut lookup = BTreeMap::new();
    for (key, text) in raw {
        if !key.is_empty() {
            Digest::parse(key).map_err(|e| invalid(format!("lookup key {key:?} invalid: {e}")))?;
        }
        let mut r = Reference::parse(text)
            .map_err(|e| invalid(format!("failed to parse lookup ref {text:?}: {e}")))?;
        if !key.is_empty() {
            let digest = Digest::parse(key)?;
            match &r.digest {
                None => r.digest = Some(digest),
                Some(d) if *d != digest => {
                    return Err(invalid(format!(
                        "digest on lookup ref should either be omitted or match key: {r} vs {key}"
                    )))
                }
                Some(_) => {}
            }
        }
        lookup.insert(key.clone(), r);
    }
    let single = match (lookup.len(), lookup.iter().next()) {
        // A lone fallback points at an object only with a tag or a digest.
        (1, Some((key, only)))
            if !key.is_empty() || only.digest.is_some() || only.tag.is_some() =>
        {
            Some(key.clone())
        }
        _ => None,
    };
    Ok((lookup, single))
}

/// The fields of a raw input object, as the original reads them.
struct Raw {
    kind: Kind,
    refs: Vec<String>,
    lookup: Vec<(String, String)>,
    data: Option<Value>,
    referrers: bool,
}

fn raw(input: &Value) -> Result<Raw> {
    let object = input
        .as_object()
        .ok_or_else(|| invalid("not a JSON object".into()))?;
    let field = |name: &str| object.get(name).filter(|v| !v.is_null());
    let kind = match field("type") {
        None => return Err(invalid("missing type".into())),
        Some(Value::String(t)) if t.is_empty() => return Err(invalid("missing type".into())),
        Some(Value::String(t)) if t == "manifest" => Kind::Manifest,
        Some(Value::String(t)) if t == "blob" => Kind::Blob,
        Some(Value::String(t)) => return Err(invalid(format!("unknown type: {t}"))),
        Some(other) => return Err(invalid(format!("type: not a string: {other}"))),
    };
    let refs = match field("refs") {
        None => return Err(invalid("missing refs entirely (JSON input glitch?)".into())),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| match v {
                Value::String(s) => Ok(s.clone()),
                other => Err(invalid(format!("refs: not a string: {other}"))),
            })
            .collect::<Result<Vec<_>>>()?,
        Some(other) => return Err(invalid(format!("refs: not a list: {other}"))),
    };
    if refs.is_empty() {
        return Err(invalid(
            "zero refs specified for pushing (need at least one)".into(),
        ));
    }
    let lookup = match field("lookup") {
        None => Vec::new(),
        Some(Value::Object(map)) => map
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k.clone(), s.clone())),
                other => Err(invalid(format!("lookup[{k:?}]: not a string: {other}"))),
            })
            .collect::<Result<Vec<_>>>()?,
        Some(other) => return Err(invalid(format!("lookup: not an object: {other}"))),
    };
    let referrers = match field("referrers") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(other) => return Err(invalid(format!("referrers: not a boolean: {other}"))),
    };
    Ok(Raw {
        kind,
        refs,
        lookup,
        data: field("data").cloned(),
        referrers,
    })
}

/// Normalizes one input object (see the module's docs).
pub fn normalize(input: &Value) -> Result<Normalized> {
    let raw = raw(input)?;
    let (mut refs, mut refs_digest) = normalize_refs(raw.kind, &raw.refs)?;
    let debug_id = refs[0].to_string();
    let at = |e: String| invalid(format!("{debug_id}: {e}"));
    let (mut lookup, mut lookup_digest) = normalize_lookup(&raw.lookup).map_err(|e| match e {
        Error::InvalidInput(m) => at(m),
        other => other,
    })?;

    let mut data = None;
    let mut copy_from = None;
    match &raw.data {
        None => {
            let by_refs = refs_digest.as_ref().map(ToString::to_string);
            let from = if let Some(r) = by_refs.as_ref().and_then(|d| lookup.get(d)) {
                lookup_digest = by_refs.clone();
                r.clone()
            } else if let Some(r) = lookup_digest.as_ref().and_then(|k| lookup.get(k)) {
                r.clone()
            } else if let (Some(d), Some(fallback)) = (&refs_digest, lookup.get("")) {
                lookup_digest = by_refs.clone();
                let mut r = fallback.clone();
                r.digest = Some(d.clone());
                r
            } else {
                return Err(at(
                    "missing data (and lookup is not a single item or fallback with digest or tag)"
                        .into(),
                ));
            };
            let mut found = lookup_digest.unwrap_or_default();
            if found.is_empty() {
                if let Some(d) = &from.digest {
                    found = d.to_string();
                }
            }
            lookup.entry(String::new()).or_insert_with(|| from.clone());
            match &refs_digest {
                None if !found.is_empty() => refs_digest = Some(Digest::parse(&found)?),
                Some(d) if !found.is_empty() && d.to_string() != found => {
                    return Err(at(format!("copy-by-digest mismatch: {d} vs {from}")))
                }
                _ => {}
            }
            copy_from = Some(from);
        }
        Some(value) => {
            let bytes = match value {
                Value::String(encoded) => base64::engine::general_purpose::STANDARD
                    .decode(encoded)
                    .map_err(|e| at(format!("failed to parse base64 data blob: {e}")))?,
                other => jq::data_bytes(other),
            };
            let digest = Digest::sha256(&bytes);
            match &refs_digest {
                None => refs_digest = Some(digest),
                Some(d) if *d != digest => {
                    return Err(at(format!(
                        "push-by-digest implied by refs, but data does not match: {d} vs {digest}"
                    )))
                }
                Some(_) => {}
            }
            data = Some(bytes);
        }
    }

    if let Some(d) = &refs_digest {
        for r in &mut refs {
            r.digest = Some(d.clone());
        }
        // Copying by digest: the tag it came from no longer matters.
        if let Some(from) = &mut copy_from {
            from.tag = None;
        }
    }
    // Lookup entries say where children are: tags and digests are spent.
    for (key, r) in lookup.iter_mut() {
        let keeps_tag = key.is_empty()
            && refs_digest.is_none()
            && r.tag.is_some()
            && copy_from.as_ref().is_some_and(|from| from.tag == r.tag);
        if !keeps_tag {
            r.tag = None;
            r.digest = None;
        }
    }

    let mut media_type = None;
    match (raw.kind, &copy_from, &data) {
        (Kind::Manifest, None, Some(bytes)) => {
            let parsed: Value = serde_json::from_slice(bytes)
                .map_err(|e| at(format!("failed to parse manifest data for mediaType: {e}")))?;
            let mt = match parsed.get("mediaType") {
                None | Some(Value::Null) => "",
                Some(Value::String(s)) => s.as_str(),
                Some(other) => {
                    return Err(at(format!(
                        "failed to parse manifest data for mediaType: not a string: {other}"
                    )))
                }
            };
            if mt.is_empty() {
                return Err(at("pushing manifest but missing 'mediaType'".into()));
            }
            media_type = Some(mt.to_string());
        }
        (Kind::Blob, Some(from), _) if from.digest.is_none() => {
            return Err(at(format!(
                "blobs are always by-digest, and thus need a digest: {from}"
            )))
        }
        _ => {}
    }

    if raw.referrers && (raw.kind != Kind::Manifest || copy_from.is_none()) {
        return Err(at(
            "referrers: only a manifest copied by lookup (no data) brings its referrers".into(),
        ));
    }
    Ok(Normalized {
        kind: raw.kind,
        refs,
        lookup,
        data,
        copy_from,
        media_type,
        referrers: raw.referrers,
    })
}

impl Normalized {
    /// As the original prints a normalized input (`deploy --dry-run`):
    /// compact JSON, fields in its order, lookup keys sorted, data base64.
    pub fn to_json(&self) -> Value {
        let mut out = Map::new();
        out.insert("type".into(), self.kind.name().into());
        let refs = self.refs.iter().map(|r| Value::String(r.to_string()));
        out.insert("refs".into(), Value::Array(refs.collect()));
        if !self.lookup.is_empty() {
            let lookup = self
                .lookup
                .iter()
                .map(|(k, r)| (k.clone(), Value::String(r.to_string())));
            out.insert("lookup".into(), Value::Object(lookup.collect()));
        }
        if let Some(data) = &self.data {
            let encoded = base64::engine::general_purpose::STANDARD.encode(data);
            out.insert("data".into(), encoded.into());
        }
        if let Some(from) = &self.copy_from {
            out.insert("copyFrom".into(), from.to_string().into());
        }
        if let Some(mt) = &self.media_type {
            out.insert("mediaType".into(), mt.clone().into());
        }
        // Ours, not the original's: printed only when asked for.
        if self.referrers {
            out.insert("referrers".into(), true.into());
        }
        Value::Object(out)
    }

    /// The object's digest, once known (a copy from a tag has none yet).
    pub fn digest(&self) -> Option<&Digest> {
        self.refs.first().and_then(|r| r.digest.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D1: &str = "sha256:9ef42f1d602fb423fad935aac1caa0cfdbce1ad7edce64d080a4eb7b13f7cd9d";
    const D2: &str = "sha256:0cb474919526d040392883b84e5babb65a149cc605b89b117781ab94e88a5e86";
    const D3: &str = "sha256:25be82253336f0b8c4347bc4ecbbcdc85d0e0f118ccf8dc2e119c0a47a0a486e";

    fn r(text: &str) -> Reference {
        Reference::parse(text).unwrap()
    }

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    // The original's TestNormalizeInputRefs.
    #[test]
    fn refs_parse_and_agree_on_their_digest() {
        let (refs, digest) = normalize_refs(
            Kind::Manifest,
            &strings(&[
                &format!("localhost:5000/foo@{D1}"),
                "localhost:5000/bar:some-tag",
                "localhost:5000/baz",
            ]),
        )
        .unwrap();
        assert_eq!(
            refs,
            vec![
                r(&format!("localhost:5000/foo@{D1}")),
                r("localhost:5000/bar:some-tag"),
                r("localhost:5000/baz")
            ]
        );
        assert_eq!(digest, Some(Digest::parse(D1).unwrap()));
        for (kind, refs, error) in [
            (
                Kind::Manifest,
                vec!["localhost:5000/foo@bad_digest".to_string()],
                "failed to parse ref:",
            ),
            (Kind::Manifest, strings(&["..."]), "failed to parse ref:"),
            (
                Kind::Manifest,
                strings(&["localhost:5000/foo:#"]),
                "failed to parse ref:",
            ),
            (
                Kind::Manifest,
                strings(&["localhost:5000/foo?test"]),
                "failed to parse ref:",
            ),
            (
                Kind::Manifest,
                vec![
                    format!("localhost:5000/foo@{D1}"),
                    format!("localhost:5000/foo@{}", D1.replace("9ef", "000")),
                ],
                "refs digest mismatch in ",
            ),
            (
                Kind::Blob,
                strings(&["localhost:5000/foo:tag"]),
                "cannot push blobs to a tag:",
            ),
        ] {
            let e = normalize_refs(kind, &refs).unwrap_err().to_string();
            assert!(e.contains(error), "{refs:?}: {e:?} should say {error:?}");
        }
    }

    // The original's TestNormalizeInputLookup.
    #[test]
    fn lookups_are_keyed_by_digest_or_fallback() {
        let pairs = |items: &[(&str, &str)]| -> Vec<(String, String)> {
            items
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let (lookup, digest) = normalize_lookup(&pairs(&[(D1, "example:foo")])).unwrap();
        assert_eq!(lookup[D1], r(&format!("example:foo@{D1}")));
        assert_eq!(digest.as_deref(), Some(D1));
        // A digest on the ref that matches its key is no conflict.
        let (lookup, _) = normalize_lookup(&pairs(&[(D1, &format!("example:foo@{D1}"))])).unwrap();
        assert_eq!(lookup[D1], r(&format!("example:foo@{D1}")));

        let (lookup, digest) = normalize_lookup(&pairs(&[
            (D1, "example:foo"),
            (D2, "foo/bar:baz"),
            (D3, "localhost:5000/example:bar"),
        ]))
        .unwrap();
        assert_eq!(lookup[D2], r(&format!("foo/bar:baz@{D2}")));
        assert_eq!(lookup[D3], r(&format!("localhost:5000/example:bar@{D3}")));
        assert_eq!(digest, None);

        let (lookup, digest) = normalize_lookup(&pairs(&[("", "example")])).unwrap();
        assert_eq!((lookup[""].clone(), digest), (r("example"), None));
        let (_, digest) = normalize_lookup(&pairs(&[("", &format!("example@{D3}"))])).unwrap();
        assert_eq!(digest.as_deref(), Some(""));
        let (_, digest) = normalize_lookup(&pairs(&[("", "example:tag")])).unwrap();
        assert_eq!(digest.as_deref(), Some(""));

        for (entries, error) in [
            (
                pairs(&[("invalid digest", "example:foo")]),
                r#"lookup key "invalid digest" invalid:"#,
            ),
            (pairs(&[(D1, "://#")]), "failed to parse lookup ref"),
            (
                pairs(&[(D1, &format!("example:foo@{}", D1.replace("9ef", "00f")))]),
                "digest on lookup ref should either be omitted or match key:",
            ),
        ] {
            let e = normalize_lookup(&entries).unwrap_err().to_string();
            assert!(e.contains(error), "{e:?} should say {error:?}");
        }
    }

    #[test]
    fn the_source_keeps_its_tag_only_while_no_digest_is_known() {
        // Refs without a digest: the copy's source is read by its tag.
        let by_tag =
            r#"{"type": "manifest", "refs": ["example:a"], "lookup": {"": "example:foo"}}"#;
        let v: Value = serde_json::from_str(&normalized(by_tag)).unwrap();
        assert_eq!(v["lookup"][""], "example:foo", "{v}");
        // A digest on the refs: the source is that digest, its tag spent.
        let by_digest = format!(
            r#"{{"type": "manifest", "refs": ["example:a@{D1}"], "lookup": {{"": "example:foo"}}}}"#
        );
        let v: Value = serde_json::from_str(&normalized(&by_digest)).unwrap();
        assert_eq!(v["lookup"][""], "example", "{v}");
    }

    fn normalized(raw: &str) -> String {
        let value: Value = serde_json::from_str(raw).unwrap();
        let out = normalize(&value).unwrap_or_else(|e| panic!("{raw}: {e}"));
        out.to_json().to_string()
    }

    // The original's TestNormalizeInput, data objects printed as `jq --tab`
    // prints them (the original's test feeds them raw; its tool does not).
    #[test]
    fn inputs_normalize_as_the_original_and_round_trip() {
        let index_jq =
            "ewoJIm1lZGlhVHlwZSI6ICJhcHBsaWNhdGlvbi92bmQub2NpLmltYWdlLmluZGV4LnYxK2pzb24iCn0K";
        let cases: Vec<(String, String)> = vec![
            (
                r#"{"type": "manifest", "refs": ["localhost:5000/example:test"],
                    "data": {"mediaType": "application/vnd.oci.image.index.v1+json"}}"#.into(),
                format!(r#"{{"type":"manifest","refs":["localhost:5000/example:test@sha256:cb0c6182f27e049a96767401b57a93e559dfa5d3088797317837cb7e1e88fa0e"],"data":"{index_jq}","mediaType":"application/vnd.oci.image.index.v1+json"}}"#),
            ),
            (
                r#"{"type": "manifest", "refs": ["localhost:5000/example"],
                    "data": "eyJtZWRpYVR5cGUiOiAiYXBwbGljYXRpb24vdm5kLm9jaS5pbWFnZS5pbmRleC52MStqc29uIn0="}"#.into(),
                r#"{"type":"manifest","refs":["localhost:5000/example@sha256:0ae6b7b9d0bc73ee36c1adef005deb431e94cf009c6a947718b31da3d668032d"],"data":"eyJtZWRpYVR5cGUiOiAiYXBwbGljYXRpb24vdm5kLm9jaS5pbWFnZS5pbmRleC52MStqc29uIn0=","mediaType":"application/vnd.oci.image.index.v1+json"}"#.into(),
            ),
            (
                format!(r#"{{"type": "manifest", "refs": ["localhost:5000/example:test"], "lookup": {{"{D1}": "tianon/true"}},
                    "data": {{"mediaType": "application/vnd.oci.image.index.v1+json","manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{D1}","size":1165}}],"schemaVersion":2}}}}"#),
                format!(r#"{{"type":"manifest","refs":["localhost:5000/example:test@sha256:085a714dd43c552b129e18065937c5478ea824f140d971a017701b8693153db6"],"lookup":{{"{D1}":"tianon/true"}},"data":"ewoJIm1lZGlhVHlwZSI6ICJhcHBsaWNhdGlvbi92bmQub2NpLmltYWdlLmluZGV4LnYxK2pzb24iLAoJIm1hbmlmZXN0cyI6IFsKCQl7CgkJCSJtZWRpYVR5cGUiOiAiYXBwbGljYXRpb24vdm5kLm9jaS5pbWFnZS5tYW5pZmVzdC52MStqc29uIiwKCQkJImRpZ2VzdCI6ICJzaGEyNTY6OWVmNDJmMWQ2MDJmYjQyM2ZhZDkzNWFhYzFjYWEwY2ZkYmNlMWFkN2VkY2U2NGQwODBhNGViN2IxM2Y3Y2Q5ZCIsCgkJCSJzaXplIjogMTE2NQoJCX0KCV0sCgkic2NoZW1hVmVyc2lvbiI6IDIKfQo=","mediaType":"application/vnd.oci.image.index.v1+json"}}"#),
            ),
            (
                r#"{"type": "blob", "refs": ["localhost:5000/example@sha256:1a51828d59323e0e02522c45652b6a7a44a032b464b06d574f067d2358b0e9f1"],
                    "data": "YnVmZnkgdGhlIHZhbXBpcmUgc2xheWVyCg=="}"#.into(),
                r#"{"type":"blob","refs":["localhost:5000/example@sha256:1a51828d59323e0e02522c45652b6a7a44a032b464b06d574f067d2358b0e9f1"],"data":"YnVmZnkgdGhlIHZhbXBpcmUgc2xheWVyCg=="}"#.into(),
            ),
            (
                "{\"type\": \"blob\", \"refs\": [\"localhost:5000/example\"], \"data\": {\n}}".into(),
                r#"{"type":"blob","refs":["localhost:5000/example@sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"],"data":"e30="}"#.into(),
            ),
            (
                format!(r#"{{"type": "manifest", "refs": ["localhost:5000/example"], "lookup": {{"{D1}": "tianon/true"}}}}"#),
                format!(r#"{{"type":"manifest","refs":["localhost:5000/example@{D1}"],"lookup":{{"":"tianon/true","{D1}":"tianon/true"}},"copyFrom":"tianon/true@{D1}"}}"#),
            ),
            (
                format!(r#"{{"type": "manifest", "refs": ["localhost:5000/example"], "lookup": {{"": "tianon/true@{D1}"}}}}"#),
                format!(r#"{{"type":"manifest","refs":["localhost:5000/example@{D1}"],"lookup":{{"":"tianon/true"}},"copyFrom":"tianon/true@{D1}"}}"#),
            ),
            (
                format!(r#"{{"type": "manifest", "refs": ["localhost:5000/example@{D1}"], "lookup": {{"": "tianon/true"}}}}"#),
                format!(r#"{{"type":"manifest","refs":["localhost:5000/example@{D1}"],"lookup":{{"":"tianon/true"}},"copyFrom":"tianon/true@{D1}"}}"#),
            ),
            (
                r#"{"type": "manifest", "refs": ["localhost:5000/example:test"], "lookup": {"": "tianon/true:oci"}}"#.into(),
                r#"{"type":"manifest","refs":["localhost:5000/example:test"],"lookup":{"":"tianon/true:oci"},"copyFrom":"tianon/true:oci"}"#.into(),
            ),
            (
                format!(r#"{{"type": "manifest", "refs": ["localhost:5000/example:test"], "lookup": {{"": "tianon/true:oci@{D1}"}}}}"#),
                format!(r#"{{"type":"manifest","refs":["localhost:5000/example:test@{D1}"],"lookup":{{"":"tianon/true"}},"copyFrom":"tianon/true@{D1}"}}"#),
            ),
            (
                format!(r#"{{"type": "blob", "refs": ["localhost:5000/example"], "lookup": {{"{D3}": "tianon/true"}}}}"#),
                format!(r#"{{"type":"blob","refs":["localhost:5000/example@{D3}"],"lookup":{{"":"tianon/true","{D3}":"tianon/true"}},"copyFrom":"tianon/true@{D3}"}}"#),
            ),
            (
                format!(r#"{{"type": "blob", "refs": ["localhost:5000/example"], "lookup": {{"": "tianon/true@{D3}"}}}}"#),
                format!(r#"{{"type":"blob","refs":["localhost:5000/example@{D3}"],"lookup":{{"":"tianon/true"}},"copyFrom":"tianon/true@{D3}"}}"#),
            ),
            (
                format!(r#"{{"type": "blob", "refs": ["localhost:5000/example@{D3}"], "lookup": {{"": "tianon/true"}}}}"#),
                format!(r#"{{"type":"blob","refs":["localhost:5000/example@{D3}"],"lookup":{{"":"tianon/true"}},"copyFrom":"tianon/true@{D3}"}}"#),
            ),
            (
                format!(r#"{{"type": "manifest", "refs": ["localhost:5000/foo@{D1}", "localhost:5000/bar", "localhost:5000/baz@{D1}"], "lookup": {{"": "tianon/true"}}}}"#),
                format!(r#"{{"type":"manifest","refs":["localhost:5000/foo@{D1}","localhost:5000/bar@{D1}","localhost:5000/baz@{D1}"],"lookup":{{"":"tianon/true"}},"copyFrom":"tianon/true@{D1}"}}"#),
            ),
            (
                format!(r#"{{"type": "manifest", "refs": ["localhost:5000/foo@{D1}", "localhost:5000/bar", "localhost:5000/baz@{D1}"], "lookup": {{"{D1}": "tianon/true", "{D3}": "tianon/true"}}}}"#),
                format!(r#"{{"type":"manifest","refs":["localhost:5000/foo@{D1}","localhost:5000/bar@{D1}","localhost:5000/baz@{D1}"],"lookup":{{"":"tianon/true","{D3}":"tianon/true","{D1}":"tianon/true"}},"copyFrom":"tianon/true@{D1}"}}"#),
            ),
        ];
        for (raw, expected) in cases {
            let got = normalized(&raw);
            assert_eq!(got, expected, "{raw}");
            // Normalized input is valid input, normalized to itself (--dry-run leans on it).
            assert_eq!(normalized(&got), expected, "round trip of {raw}");
        }
    }

    #[test]
    fn bad_inputs_say_what_is_wrong() {
        for (raw, error) in [
            (r#"{"refs": ["x"]}"#, "missing type"),
            (r#"{"type": "", "refs": ["x"]}"#, "missing type"),
            (r#"{"type": "image", "refs": ["x"]}"#, "unknown type: image"),
            (r#"{"type": "blob"}"#, "missing refs entirely"),
            (r#"{"type": "blob", "refs": []}"#, "zero refs specified"),
            (r#"{"type": "blob", "refs": "x"}"#, "refs: not a list"),
            (r#"[]"#, "not a JSON object"),
            (r#"{"type": "manifest", "refs": ["x"]}"#, "x: missing data"),
            (
                r#"{"type": "manifest", "refs": ["x"], "data": "!!"}"#,
                "failed to parse base64 data blob",
            ),
            (
                r#"{"type": "manifest", "refs": ["x"], "data": {"schemaVersion": 2}}"#,
                "missing 'mediaType'",
            ),
            (
                r#"{"type": "manifest", "refs": ["x"], "data": [1]}"#,
                "mediaType",
            ),
            (
                r#"{"type": "blob", "refs": ["x"], "lookup": {"": "y:tag"}}"#,
                "need a digest",
            ),
        ] {
            let value: Value = serde_json::from_str(raw).unwrap();
            let e = normalize(&value).unwrap_err().to_string();
            assert!(e.contains(error), "{raw}: {e:?} should say {error:?}");
        }
        let mismatch = format!(r#"{{"type": "blob", "refs": ["x@{D1}"], "data": "eA=="}}"#);
        let e = normalize(&serde_json::from_str(&mismatch).unwrap())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("push-by-digest implied by refs, but data does not match"),
            "{e}"
        );
        let copy =
            format!(r#"{{"type": "manifest", "refs": ["x@{D1}"], "lookup": {{"{D3}": "y"}}}}"#);
        let e = normalize(&serde_json::from_str(&copy).unwrap())
            .unwrap_err()
            .to_string();
        assert!(e.contains("copy-by-digest mismatch"), "{e}");
    }

    #[test]
    fn a_copy_may_ask_for_its_referrers_and_nothing_else_may() {
        let copy = serde_json::json!({"type": "manifest", "refs": ["dst.example/app:v1"],
            "lookup": {"": "src.example/app:v1"}, "referrers": true});
        let n = normalize(&copy).unwrap();
        assert!(n.referrers);
        assert_eq!(n.to_json()["referrers"], true);
        let plain = serde_json::json!({"type": "manifest", "refs": ["dst.example/app:v1"],
            "lookup": {"": "src.example/app:v1"}});
        let n = normalize(&plain).unwrap();
        assert!(!n.referrers);
        assert_eq!(
            n.to_json().get("referrers"),
            None,
            "the original's output unchanged"
        );
        let mut not_bool = copy.clone();
        not_bool["referrers"] = "yes".into();
        let e = normalize(&not_bool).unwrap_err().to_string();
        assert!(e.contains("referrers: not a boolean"), "{e}");
        let hello = crate::Digest::sha256(b"hello");
        let pushed = serde_json::json!({"type": "blob", "refs": [format!("dst.example/app@{hello}")],
            "data": "aGVsbG8=", "referrers": true});
        let e = normalize(&pushed).unwrap_err().to_string();
        assert!(e.contains("only a manifest copied by lookup"), "{e}");
    }
}
