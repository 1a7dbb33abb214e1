//! Attach-referrer: lists a pushed manifest among its subject's referrers
//! where the registry keeps no list itself (its PUT answered without
//! `OCI-Subject`: no referrers API). The index under the subject's
//! fallback tag is read, the manifest's descriptor added when it is not
//! there, and the index written back.
//!
//! Two writers can race on that tag: both read, both write, and the first
//! write is lost. Registries do not honour `If-Match` on a manifest PUT
//! (distribution ignores it), so the check is reading after writing: a
//! list that lost ours is merged and written again, up to [`ATTEMPTS`]
//! times. Once ours is there it is read once more after [`SETTLE`]: a
//! writer that read before our write and writes after our first check
//! would otherwise drop ours unseen. Each writer re-adds its own, so
//! writers converge on a list holding every one of theirs; what is left
//! is a writer whose read-to-write takes longer than [`SETTLE`], which
//! only a registry with compare-and-set (or the referrers API) closes.
//! A tag that holds something other than an index is not overwritten: an
//! error names what it holds.

use bytes::Bytes;

use crate::auth::repository_scope;
use crate::client::Client;
use crate::descriptor::Descriptor;
use crate::distribution::{absent, manifest_path};
use crate::error::{Error, Result};
use crate::http::{BodyMode, Method, RequestBody, ResponseBody, SMALL_BODY_LIMIT};
use crate::media_type::{MANIFEST_ACCEPT, OCI_INDEX};
use crate::ops::exchange::{Exchange, ExchangeSpec, Exchanged, Target};
use crate::ops::referrers::{fallback_tag, PAGE_SIZE_LIMIT};
use crate::ops::{Operation, Output, Step};
use crate::reference::Reference;
use crate::time::Instant;
use crate::{advance, ready};

/// Writes of the fallback tag at most (each after a read that lost ours).
pub const ATTEMPTS: u8 = 5;

/// How long after ours is seen listed it is read once more.
pub const SETTLE: std::time::Duration = std::time::Duration::from_millis(500);

/// What a pushed manifest says of its subject: the subject, and what its
/// entry in a referrers list carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Referrer {
    /// The manifest it refers to.
    pub subject: Descriptor,
    /// The manifest's own entry: its media type, digest and size, its
    /// artifact type (its `artifactType`, else its config's media type, as
    /// the spec lists it) and its annotations.
    pub entry: Descriptor,
}

impl Referrer {
    /// The referrer `bytes` (a manifest pushed as `entry`) is, if it has a
    /// `subject`; anything unreadable has none.
    pub fn of(bytes: &[u8], entry: &Descriptor) -> Option<Referrer> {
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Fields {
            subject: Option<Descriptor>,
            #[serde(default)]
            artifact_type: Option<String>,
            #[serde(default)]
            config: Option<Descriptor>,
            #[serde(default)]
            annotations: std::collections::BTreeMap<String, String>,
        }
        let fields: Fields = serde_json::from_slice(bytes).ok()?;
        let subject = fields.subject?;
        let mut entry = Descriptor::new(&entry.media_type, entry.digest.clone(), entry.size);
        entry.artifact_type = fields
            .artifact_type
            .or_else(|| fields.config.map(|c| c.media_type))
            .filter(|t| !t.is_empty());
        entry.annotations = fields.annotations;
        Some(Referrer { subject, entry })
    }
}

#[derive(Debug)]
enum Stage {
    /// The tag read: before writing, after a write (`settled`: the second
    /// read after it, past [`SETTLE`]).
    Read {
        exchange: Box<Exchange>,
        wrote: u8,
        settled: bool,
    },
    /// Ours was listed after a write: waiting until this instant to read
    /// once more.
    Settle { until: Instant, wrote: u8 },
    /// The index written (a plain PUT: its entries are there, and what
    /// the client's cache remembers of the tag may be another writer's
    /// past).
    Write { exchange: Box<Exchange>, wrote: u8 },
}

/// The attach-referrer state machine.
#[derive(Debug)]
pub struct AttachReferrer {
    /// The fallback tag, in the pushed manifests' repository.
    tag: Reference,
    /// The entries to list (several referrers of one subject are listed
    /// in one write, and one wait).
    entries: Vec<Descriptor>,
    stage: Stage,
}

impl AttachReferrer {
    /// Lists `referrer`, pushed to `reference`'s repository, in the index
    /// under its subject's fallback tag there.
    pub fn new(client: &Client, reference: &Reference, referrer: Referrer) -> Self {
        Self::all(
            client,
            reference,
            &referrer.subject.digest,
            vec![referrer.entry],
        )
    }

    /// Lists `entries`, referrers of `subject` pushed to `reference`'s
    /// repository, in the index under its fallback tag there.
    pub fn all(
        client: &Client,
        reference: &Reference,
        subject: &crate::digest::Digest,
        entries: Vec<Descriptor>,
    ) -> Self {
        let mut tag = reference.clone();
        tag.tag = Some(fallback_tag(subject));
        tag.digest = None;
        let exchange = read(client, &tag);
        AttachReferrer {
            tag,
            entries,
            stage: Stage::Read {
                exchange: Box::new(exchange),
                wrote: 0,
                settled: false,
            },
        }
    }

    /// The tag read: done when ours is listed, else the list with ours
    /// written (again).
    fn read_answered(
        &self,
        client: &Client,
        answer: Result<Exchanged>,
        wrote: u8,
        settled: bool,
    ) -> Result<Step<Stage, ()>> {
        let Exchanged { response, .. } = answer?;
        let mut listed: Vec<serde_json::Value> = if absent(&response) {
            Vec::new()
        } else if !response.is_success() {
            return Err(Error::registry(self.tag.to_string(), &response));
        } else {
            let bytes = match &response.body {
                ResponseBody::Bytes(bytes) => bytes.as_ref(),
                _ => {
                    return Err(Error::protocol(
                        self.tag.to_string(),
                        format!("the referrers index is larger than {PAGE_SIZE_LIMIT} bytes"),
                    ))
                }
            };
            index_entries(bytes).map_err(|holds| {
                Error::protocol(
                    self.tag.to_string(),
                    format!("the referrers tag holds {holds}, not an index; not overwritten"),
                )
            })?
        };
        let is_listed = |e: &Descriptor| {
            listed
                .iter()
                .any(|d| d["digest"] == e.digest.to_string().as_str())
        };
        let missing: Vec<&Descriptor> = self.entries.iter().filter(|e| !is_listed(e)).collect();
        if missing.is_empty() {
            // Listed before we wrote anything, or still listed a while
            // after our write: done. Just written: look again later.
            return Ok(match wrote == 0 || settled {
                true => Step::Done(()),
                false => Step::Next(Stage::Settle {
                    until: client.now() + SETTLE,
                    wrote,
                }),
            });
        }
        if wrote >= ATTEMPTS {
            return Err(Error::protocol(
                self.tag.to_string(),
                format!(
                    "{} was written to the referrers index {ATTEMPTS} times and lost each time to another writer",
                    missing[0].digest
                ),
            ));
        }
        // Entries are kept as the registry had them (fields we do not know
        // included); ours are added at the end.
        let added = missing
            .iter()
            .map(serde_json::to_value)
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| Error::Internal(format!("a descriptor as JSON: {e}")))?;
        listed.extend(added);
        let index = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": listed,
        });
        Ok(Step::Next(Stage::Write {
            exchange: Box::new(write(client, &self.tag, Bytes::from(index.to_string()))),
            wrote: wrote + 1,
        }))
    }
}

impl AttachReferrer {
    /// The index written: read again, for another writer's list may have
    /// replaced it.
    fn written(
        &self,
        client: &Client,
        answer: Result<Exchanged>,
        wrote: u8,
    ) -> Result<Step<Stage, ()>> {
        let Exchanged { response, .. } = answer?;
        if !response.is_success() {
            return Err(Error::registry(self.tag.to_string(), &response));
        }
        Ok(Step::Next(Stage::Read {
            exchange: Box::new(read(client, &self.tag)),
            wrote,
            settled: false,
        }))
    }
}

/// The entries of an index, as JSON values; else what the body is.
fn index_entries(bytes: &[u8]) -> std::result::Result<Vec<serde_json::Value>, String> {
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|_| "no JSON".to_string())?;
    let media_type = value["mediaType"].as_str();
    match (media_type, value["manifests"].as_array()) {
        (None | Some(OCI_INDEX), Some(entries)) => Ok(entries.clone()),
        (Some(other), _) => Err(format!("{other:?}")),
        (None, None) => Err("no image index".to_string()),
    }
}

/// The exchange that writes `index` to the fallback tag.
fn write(client: &Client, tag: &Reference, index: Bytes) -> Exchange {
    let object = tag.tag.clone().unwrap_or_default();
    let spec = ExchangeSpec {
        registry: tag.host.clone(),
        scopes: vec![repository_scope(&tag.repository, "pull,push")],
        method: Method::Put,
        target: Target::Path(manifest_path(&tag.repository, &object)),
        accept: None,
        content_type: Some(OCI_INDEX.to_string()),
        body: RequestBody::Bytes(index),
        body_mode: BodyMode::Buffer(SMALL_BODY_LIMIT),
        range: None,
        content_range: None,
    };
    Exchange::new(client, spec)
}

/// The exchange that reads the fallback tag whole.
fn read(client: &Client, tag: &Reference) -> Exchange {
    let object = tag.tag.clone().unwrap_or_default();
    let path = manifest_path(&tag.repository, &object);
    let spec = ExchangeSpec::get_whole(tag, "pull,push", path, MANIFEST_ACCEPT, PAGE_SIZE_LIMIT);
    Exchange::new(client, spec)
}

impl Operation for AttachReferrer {
    type Outcome = Result<()>;

    fn poll_output(&mut self, client: &mut Client) -> Output<Self::Outcome> {
        loop {
            match &mut self.stage {
                Stage::Read {
                    exchange,
                    wrote,
                    settled,
                } => {
                    let (wrote, settled) = (*wrote, *settled);
                    let answer = ready!(exchange.poll_output(client));
                    advance!(
                        self.stage,
                        self.read_answered(client, answer, wrote, settled)
                    );
                }
                Stage::Settle { until, wrote } => {
                    if client.now() < *until {
                        return Output::Wait(Some(*until));
                    }
                    self.stage = Stage::Read {
                        exchange: Box::new(read(client, &self.tag)),
                        wrote: *wrote,
                        settled: true,
                    };
                }
                Stage::Write { exchange, wrote } => {
                    let wrote = *wrote;
                    let answer = ready!(exchange.poll_output(client));
                    advance!(self.stage, self.written(client, answer, wrote));
                }
            }
        }
    }
}
