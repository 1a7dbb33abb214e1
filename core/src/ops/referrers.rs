//! Referrers: the manifests whose `subject` names a manifest (signatures,
//! SBOMs, attestations), as OCI 1.1 lists them. First the registry's
//! referrers API (`GET /v2/<name>/referrers/<digest>`: an image index,
//! paged with `Link`, filtered by `artifactType` where the registry says
//! so in `OCI-Filters-Applied`); a registry without it (a 404, or an
//! answer that is not an index) keeps the list as an index under the
//! fallback tag (`<alg>-<encoded>`, see [`fallback_tag`]), which writers
//! maintain; no such tag, or one that holds no index, is no referrers (as
//! the distribution spec says to read it).
//!
//! Bounded as the tag list is: a page's size, the pages followed (on the
//! registry's own origin and path, never back), and the referrers in all.

use crate::client::Client;
use crate::descriptor::Descriptor;
use crate::digest::Digest;
use crate::distribution::{absent, manifest_path, next_link, referrers_path};
use crate::error::{Error, Result};
use crate::http::{Response, ResponseBody};
use crate::media_type::{is_index, MANIFEST_ACCEPT, OCI_INDEX};
use crate::ops::exchange::{Exchange, ExchangeSpec, Exchanged};
use crate::ops::paging::Pages;
use crate::ops::{Operation, Output, Step};
use crate::reference::Reference;
use crate::{advance, ready};

/// The largest page (or fallback index) read: the distribution spec's
/// limit for a manifest.
pub const PAGE_SIZE_LIMIT: u64 = 4 * 1024 * 1024;
/// The most pages of the referrers API followed.
pub const MAX_PAGES: usize = 1_000;
/// The most referrers listed in all (about 15 MB of descriptors).
pub const MAX_REFERRERS: usize = 50_000;

/// The filter the referrers API takes.
pub const ARTIFACT_TYPE_FILTER: &str = "artifactType";

/// Where a list of referrers came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The registry's referrers API.
    Api,
    /// The index under the fallback tag.
    FallbackTag,
    /// Neither: no API and no fallback tag.
    Nothing,
    /// No API, and the fallback tag holds something else (its media type):
    /// not a list of referrers, so none are read from it.
    NotAnIndex(String),
}

/// The referrers of a subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Referrers {
    /// Their descriptors (with `artifactType` and `annotations`), in the
    /// registry's order, filtered by artifact type when one was asked.
    pub manifests: Vec<Descriptor>,
    /// Where the list came from.
    pub source: Source,
}

impl Referrers {
    /// The list as the referrers API gives it: an image index.
    pub fn index(&self) -> serde_json::Value {
        serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": self.manifests,
        })
    }
}

/// The tag under which a registry without the referrers API keeps the
/// referrers of `digest` (the distribution spec's referrers tag schema):
/// its algorithm, `-`, and its encoded part cut to 64 characters.
pub fn fallback_tag(digest: &Digest) -> String {
    let text = digest.to_string();
    let (algorithm, encoded) = text.split_once(':').unwrap_or((&text, ""));
    let cut = |s: &str, n: usize| s.chars().take(n).collect::<String>();
    let tag = format!("{}-{}", cut(algorithm, 32), cut(encoded, 64));
    tag.chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '_' | '.' | '-' => c,
            _ => '-',
        })
        .collect()
}

/// An index as a referrers list is one: its entries (a `mediaType`, when
/// given, must be an index's).
#[derive(serde::Deserialize)]
struct Index {
    #[serde(default, rename = "mediaType")]
    media_type: Option<String>,
    manifests: Vec<Descriptor>,
}

/// What a body is: an index's entries, or what else it says it is.
fn read_index(bytes: &[u8]) -> std::result::Result<Vec<Descriptor>, String> {
    #[derive(serde::Deserialize)]
    struct Typed {
        #[serde(default, rename = "mediaType")]
        media_type: Option<String>,
    }
    let what = || {
        serde_json::from_slice::<Typed>(bytes)
            .ok()
            .and_then(|t| t.media_type)
            .unwrap_or_else(|| "no image index".to_string())
    };
    match serde_json::from_slice::<Index>(bytes) {
        Ok(index) if index.media_type.as_deref().is_none_or(is_index) => Ok(index.manifests),
        _ => Err(what()),
    }
}

#[derive(Debug)]
enum Stage {
    /// A page of the referrers API asked for.
    Api(Box<Exchange>),
    /// The fallback tag asked for.
    Tag(Box<Exchange>),
}

/// The referrers state machine.
#[derive(Debug)]
pub struct ListReferrers {
    reference: Reference,
    digest: Digest,
    artifact_type: Option<String>,
    subject: String,
    pages: Pages,
    manifests: Vec<Descriptor>,
    stage: Stage,
}

impl ListReferrers {
    /// Lists the referrers of `digest` in `reference`'s repository (its
    /// tag is not looked at), only those of `artifact_type` when given.
    pub fn new(
        client: &Client,
        reference: Reference,
        digest: Digest,
        artifact_type: Option<String>,
    ) -> Self {
        let subject = format!("{}/{}@{digest}", reference.host, reference.repository);
        let path = referrers_path(&reference.repository, &digest, None);
        let first = referrers_path(&reference.repository, &digest, artifact_type.as_deref());
        let pages = Pages::new(&reference.host, path, &first, MAX_PAGES);
        let exchange = read(client, &reference, first, OCI_INDEX);
        ListReferrers {
            reference,
            digest,
            artifact_type,
            subject,
            pages,
            manifests: Vec::new(),
            stage: Stage::Api(Box::new(exchange)),
        }
    }

    /// Lists them from the fallback tag alone: for a repository already
    /// known to have no referrers API (its first subject asked said so),
    /// one request fewer per subject.
    pub fn without_api(
        client: &Client,
        reference: Reference,
        digest: Digest,
        artifact_type: Option<String>,
    ) -> Self {
        let mut list = ListReferrers::new(client, reference, digest, artifact_type);
        list.stage = list.ask_tag(client);
        list
    }

    /// A page of the API answered: the next page, the end, or (the first
    /// page not being one) the fallback tag.
    fn api_answered(
        &mut self,
        client: &Client,
        answer: Result<Exchanged>,
    ) -> Result<Step<Stage, Referrers>> {
        let Exchanged { response, .. } = answer?;
        let first = self.pages.asked() == 1;
        let listed = match response.is_success() {
            true => read_index(
                self.body(&response, "a referrers page")?
                    .unwrap_or_default(),
            ),
            false => Err(String::new()),
        };
        let entries = match listed {
            Ok(entries) => entries,
            // No referrers API here: what a writer keeps under the tag.
            Err(_) if first && no_api(&response) => return Ok(Step::Next(self.ask_tag(client))),
            Err(_) if !response.is_success() => {
                return Err(Error::registry(&self.subject, &response))
            }
            Err(what) => {
                return Err(Error::protocol(
                    &self.subject,
                    format!("a page of the referrers list is {what}"),
                ))
            }
        };
        let filtered = applied_filters(&response).contains(&ARTIFACT_TYPE_FILTER);
        self.add(entries, !filtered)?;
        let Some(link) = next_link(response.headers.get_all("link")) else {
            return Ok(Step::Done(self.done(Source::Api)));
        };
        let next = self.pages.follow(client, link).map_err(|why| {
            Error::protocol(
                &self.subject,
                format!("the referrers list's next page {link:?} {why}; not followed"),
            )
        })?;
        let exchange = read(client, &self.reference, next, OCI_INDEX);
        Ok(Step::Next(Stage::Api(Box::new(exchange))))
    }

    /// The fallback tag answered: its index's entries, or none.
    fn tag_answered(&mut self, answer: Result<Exchanged>) -> Result<Step<Stage, Referrers>> {
        let Exchanged { response, .. } = answer?;
        if absent(&response) {
            return Ok(Step::Done(self.done(Source::Nothing)));
        }
        if !response.is_success() {
            return Err(Error::registry(&self.subject, &response));
        }
        let bytes = self
            .body(&response, "the fallback tag's index")?
            .unwrap_or_default();
        match read_index(bytes) {
            Ok(entries) => {
                self.add(entries, true)?;
                Ok(Step::Done(self.done(Source::FallbackTag)))
            }
            Err(what) => Ok(Step::Done(self.done(Source::NotAnIndex(what)))),
        }
    }

    fn ask_tag(&self, client: &Client) -> Stage {
        let path = manifest_path(&self.reference.repository, &fallback_tag(&self.digest));
        Stage::Tag(Box::new(read(
            client,
            &self.reference,
            path,
            MANIFEST_ACCEPT,
        )))
    }

    /// `entries` added, filtered by artifact type here when `filter` (the
    /// registry did not), within the limit.
    fn add(&mut self, entries: Vec<Descriptor>, filter: bool) -> Result<()> {
        let wanted = |d: &Descriptor| match (&self.artifact_type, filter) {
            (Some(t), true) => d.artifact_type.as_deref() == Some(t.as_str()),
            _ => true,
        };
        let entries: Vec<Descriptor> = entries.into_iter().filter(wanted).collect();
        if self.manifests.len() + entries.len() > MAX_REFERRERS {
            return Err(Error::protocol(
                &self.subject,
                format!("more than {MAX_REFERRERS} referrers; refused"),
            ));
        }
        self.manifests.extend(entries);
        Ok(())
    }

    fn done(&mut self, source: Source) -> Referrers {
        Referrers {
            manifests: std::mem::take(&mut self.manifests),
            source,
        }
    }

    /// The body read whole: `None` when there is none to read (an error
    /// answer's), an error past the limit.
    fn body<'r>(&self, response: &'r Response, what: &str) -> Result<Option<&'r [u8]>> {
        match &response.body {
            ResponseBody::Bytes(bytes) => Ok(Some(bytes)),
            ResponseBody::TooLarge => Err(Error::protocol(
                &self.subject,
                format!("{what} is larger than {PAGE_SIZE_LIMIT} bytes; refused"),
            )),
            ResponseBody::Held => Ok(None),
        }
    }
}

/// Whether an answer to the referrers API says the registry has none (the
/// spec's 404; and what registries without it answer an unknown route:
/// 400, 405, 406, 501, or a 401/403 that authentication did not lift, or
/// a 2xx that is no index).
fn no_api(response: &Response) -> bool {
    response.is_success() || matches!(response.status, 400 | 401 | 403 | 404 | 405 | 406 | 501)
}

/// The filters the registry says it applied (`OCI-Filters-Applied`).
fn applied_filters(response: &Response) -> Vec<&str> {
    response
        .headers
        .get_all("oci-filters-applied")
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect()
}

/// The exchange that reads `path_and_query` (a referrers page or the
/// fallback tag) whole.
fn read(
    client: &Client,
    reference: &Reference,
    path_and_query: String,
    accept: &'static str,
) -> Exchange {
    let spec = ExchangeSpec::get_whole(reference, "pull", path_and_query, accept, PAGE_SIZE_LIMIT);
    Exchange::new(client, spec)
}

impl Operation for ListReferrers {
    type Outcome = Result<Referrers>;

    fn poll_output(&mut self, client: &mut Client) -> Output<Self::Outcome> {
        loop {
            match &mut self.stage {
                Stage::Api(exchange) => {
                    let answer = ready!(exchange.poll_output(client));
                    advance!(self.stage, self.api_answered(client, answer));
                }
                Stage::Tag(exchange) => {
                    let answer = ready!(exchange.poll_output(client));
                    advance!(self.stage, self.tag_answered(answer));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fallback_tags_follow_the_spec_s_schema() {
        let sha256 = Digest::sha256(b"subject");
        let hex = sha256.to_string()[7..].to_string();
        assert_eq!(fallback_tag(&sha256), format!("sha256-{hex}"));
        let sha512 = Digest::parse(&format!("sha512:{}", "ab".repeat(64))).unwrap();
        assert_eq!(fallback_tag(&sha512), format!("sha512-{}", "ab".repeat(32)));
        assert!(crate::reference::is_valid_tag(&fallback_tag(&sha512)));
    }

    #[test]
    fn an_index_is_read_and_anything_else_named() {
        let d = Descriptor::new(crate::media_type::OCI_MANIFEST, Digest::sha256(b"x"), 1);
        let index =
            serde_json::json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [d]});
        assert_eq!(
            read_index(index.to_string().as_bytes()),
            Ok(vec![d.clone()])
        );
        let untyped = serde_json::json!({"manifests": []});
        assert_eq!(read_index(untyped.to_string().as_bytes()), Ok(vec![]));
        let manifest =
            serde_json::json!({"mediaType": crate::media_type::OCI_MANIFEST, "layers": []});
        assert_eq!(
            read_index(manifest.to_string().as_bytes()),
            Err(crate::media_type::OCI_MANIFEST.to_string())
        );
        assert_eq!(read_index(b"<html>"), Err("no image index".to_string()));
    }
}
