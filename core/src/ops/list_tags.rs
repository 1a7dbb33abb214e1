//! List-tags: a repository's tags, as the distribution API's tag list gives
//! them (`GET /v2/<name>/tags/list`), page by page (`n`, `last`, and the
//! registry's `Link: <…>; rel="next"`), to the end or one page at a time.
//!
//! Bounded against a registry that misbehaves: a `Link` is followed only on
//! the registry's own origin and tag-list path, never back to a page already
//! read; a page, the number of pages and the whole list have limits, each
//! error naming the one passed. Tags are checked against the tag grammar,
//! so what is printed one per line is one tag per line.

use crate::client::Client;
use crate::distribution::{absent, next_link, tags_path};
use crate::error::{Error, Result};
use crate::http::{Response, ResponseBody};
use crate::ops::exchange::{Exchange, ExchangeSpec, Exchanged};
use crate::ops::paging::Pages;
use crate::ops::{Operation, Output, Step};
use crate::reference::{is_valid_tag, Reference};
use crate::{advance, ready};

/// The largest page read (distribution sends every tag in one page when
/// not asked for fewer: about 60,000 tags of 100 bytes).
pub const PAGE_SIZE_LIMIT: u64 = 8 * 1024 * 1024;
/// The most pages followed.
pub const MAX_PAGES: usize = 10_000;
/// The most tags a list holds in all.
pub const MAX_TAGS: usize = 250_000;

/// Which tags to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TagsOptions {
    /// Tags per page asked of the registry (its `n`); `None`: its default.
    pub page_size: Option<u32>,
    /// Only the tags after this one (its `last`).
    pub last: Option<String>,
    /// Follow the registry's pages to the end; else read one page.
    pub all_pages: bool,
}

/// Tags listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagList {
    /// The tags, in the registry's order.
    pub tags: Vec<String>,
    /// Reading one page: where the next starts (its `last`), when the
    /// registry says there is one.
    pub next: Option<String>,
}

#[derive(serde::Deserialize)]
struct Page {
    #[serde(default)]
    tags: Option<Vec<String>>,
}

#[derive(Debug)]
enum Stage {
    /// A page asked for.
    Page(Box<Exchange>),
}

/// The list-tags state machine.
#[derive(Debug)]
pub struct ListTags {
    reference: Reference,
    options: TagsOptions,
    subject: String,
    /// The pages asked for, and where the next may be.
    pages: Pages,
    tags: Vec<String>,
    stage: Stage,
}

impl ListTags {
    /// Lists the tags of `reference`'s repository (its tag and digest, if
    /// any, are not looked at).
    pub fn new(client: &Client, reference: Reference, options: TagsOptions) -> Self {
        let subject = format!("{}/{}", reference.host, reference.repository);
        let path = tags_path(&reference.repository, None, None);
        let first = tags_path(
            &reference.repository,
            options.page_size,
            options.last.as_deref(),
        );
        let pages = Pages::new(&reference.host, path, &first, MAX_PAGES);
        let exchange = page_exchange(client, &reference, first);
        ListTags {
            reference,
            options,
            subject,
            pages,
            tags: Vec::new(),
            stage: Stage::Page(Box::new(exchange)),
        }
    }

    /// What a page's answer means: the end, the next page, or an error;
    /// a repository that is not there (or not ours to see) is `None`.
    fn answered(
        &mut self,
        client: &Client,
        answer: Result<Exchanged>,
    ) -> Result<Step<Stage, Option<TagList>>> {
        let Exchanged { response, .. } = answer?;
        if absent(&response) {
            return Ok(Step::Done(None));
        }
        if !response.is_success() {
            return Err(Error::registry(&self.subject, &response));
        }
        let page = self.page(&response)?;
        if self.tags.len() + page.len() > MAX_TAGS {
            return Err(Error::protocol(
                &self.subject,
                format!("the tag list has more than {MAX_TAGS} tags; refused"),
            ));
        }
        let last_of_page = page.last().cloned();
        self.tags.extend(page);
        let link = next_link(response.headers.get_all("link"));
        if !self.options.all_pages {
            let next = match link {
                None => None,
                Some(link) => Some(self.next_last(link, last_of_page)?),
            };
            let tags = std::mem::take(&mut self.tags);
            return Ok(Step::Done(Some(TagList { tags, next })));
        }
        let Some(link) = link else {
            let tags = std::mem::take(&mut self.tags);
            return Ok(Step::Done(Some(TagList { tags, next: None })));
        };
        let next = self.pages.follow(client, link).map_err(|why| {
            Error::protocol(
                &self.subject,
                format!("the tag list's next page {link:?} {why}; not followed"),
            )
        })?;
        let exchange = page_exchange(client, &self.reference, next);
        Ok(Step::Next(Stage::Page(Box::new(exchange))))
    }

    /// The tags of a page, each a valid tag.
    fn page(&self, response: &Response) -> Result<Vec<String>> {
        let bytes = match &response.body {
            ResponseBody::Bytes(bytes) => bytes,
            ResponseBody::TooLarge => {
                return Err(Error::protocol(
                    &self.subject,
                    format!("a tag list page is larger than {PAGE_SIZE_LIMIT} bytes; refused"),
                ))
            }
            ResponseBody::Held => {
                return Err(Error::Internal(format!(
                    "{}: a tag list page was held, not read",
                    self.subject
                )))
            }
        };
        let page: Page = serde_json::from_slice(bytes)
            .map_err(|e| Error::protocol(&self.subject, format!("the tag list is not one: {e}")))?;
        let tags = page.tags.unwrap_or_default();
        if let Some(bad) = tags.iter().find(|t| !is_valid_tag(t)) {
            return Err(Error::protocol(
                &self.subject,
                format!("the registry listed {bad:?}, which is no tag"),
            ));
        }
        Ok(tags)
    }

    /// The `last` of the page after this one, for a caller reading page by
    /// page: the `Link`'s own, else the last tag of this page.
    fn next_last(&self, link: &str, last_of_page: Option<String>) -> Result<String> {
        let query = link.split_once('?').map(|(_, q)| q).unwrap_or_default();
        let pairs = crate::percent::query_pairs(query)
            .map_err(|e| Error::protocol(&self.subject, format!("the next page's link: {e}")))?;
        pairs
            .into_iter()
            .find(|(name, _)| name == "last")
            .map(|(_, value)| value)
            .or(last_of_page)
            .ok_or_else(|| {
                Error::protocol(
                    &self.subject,
                    format!("the next page's link {link:?} says not where it starts"),
                )
            })
    }
}

/// The exchange that asks for the tag-list page at `path_and_query`.
fn page_exchange(client: &Client, reference: &Reference, path_and_query: String) -> Exchange {
    let accept = "application/json";
    let spec = ExchangeSpec::get_whole(reference, "pull", path_and_query, accept, PAGE_SIZE_LIMIT);
    Exchange::new(client, spec)
}

impl Operation for ListTags {
    type Outcome = Result<Option<TagList>>;

    fn poll_output(&mut self, client: &mut Client) -> Output<Self::Outcome> {
        loop {
            match &mut self.stage {
                Stage::Page(exchange) => {
                    let answer = ready!(exchange.poll_output(client));
                    advance!(self.stage, self.answered(client, answer));
                }
            }
        }
    }
}
