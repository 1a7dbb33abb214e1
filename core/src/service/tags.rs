//! The mirror's tag list (`GET /v2/<name>/tags/list`): the page a client
//! asks for (`n`, `last`), passed on to the upstream, and the answer: the
//! upstream's tags under the name the client asked with, and the next
//! page's `Link` on the mirror's own path, with the same `?ns=`.

use crate::percent::encode_query_component;
use crate::reference::Reference;
use crate::service::config::ServiceConfig;
use crate::service::reply::{cache_control, Addressed, Failure, FailureKind, Head, API_VERSION};

/// A page of a tag list asked of the mirror.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagsPage {
    /// The upstream repository (no tag, no digest).
    pub repository: Reference,
    /// The name as the client asked for it (`alpine` for Docker Hub's
    /// `library/alpine`): what the answer and its `Link` say.
    pub name: String,
    /// The client's `?ns=`, kept in the next page's `Link`.
    pub ns: Option<String>,
    /// Tags per page (`n`).
    pub n: Option<u32>,
    /// Only tags after this one (`last`).
    pub last: Option<String>,
}

impl TagsPage {
    /// The page asked for; an `n` that is no count of tags is the
    /// client's error (400 `PAGINATION_NUMBER_INVALID`).
    pub fn new(
        repository: Reference,
        name: &str,
        ns: Option<&str>,
        n: Option<&str>,
        last: Option<&str>,
    ) -> Result<Self, Failure> {
        let n = match n {
            None => None,
            Some(n) => Some(n.parse::<u32>().map_err(|_| {
                Failure::new(
                    FailureKind::InvalidPagination,
                    format!(
                        "query parameter \"n\": {n:?} is not a number of tags (0 to 4294967295)"
                    ),
                )
            })?),
        };
        Ok(TagsPage {
            repository,
            name: name.to_string(),
            ns: ns.map(str::to_string),
            n,
            // `last=` says nothing: the list from its start.
            last: last.filter(|l| !l.is_empty()).map(str::to_string),
        })
    }

    /// Whether the upstream has to be asked: `n=0` is an empty page.
    pub fn asks_upstream(&self) -> bool {
        self.n != Some(0)
    }

    /// The answer: the page's tags under the client's name, the next
    /// page's `Link` (when the upstream has one: `next`, the tag it starts
    /// after), cached as a tag's answer is.
    pub fn answer(
        &self,
        tags: &[String],
        next: Option<&str>,
        config: &ServiceConfig,
    ) -> (Head, String) {
        let body = serde_json::json!({"name": self.name, "tags": tags});
        let body = format!("{body}\n");
        let mut head = Head::new(200)
            .with("Content-Type", "application/json")
            .with("Content-Length", body.len().to_string())
            .with("Cache-Control", cache_control(Addressed::ByTag, config))
            .with(API_VERSION.0, API_VERSION.1);
        if let Some(next) = next {
            head = head.with("Link", format!("<{}>; rel=\"next\"", self.next_path(next)));
        }
        (head, body)
    }

    /// The mirror's path for the page after `last`.
    fn next_path(&self, last: &str) -> String {
        let mut query = Vec::new();
        if let Some(n) = self.n {
            query.push(format!("n={n}"));
        }
        query.push(format!("last={}", encode_query_component(last)));
        if let Some(ns) = &self.ns {
            query.push(format!("ns={}", encode_query_component(ns)));
        }
        format!("/v2/{}/tags/list?{}", self.name, query.join("&"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(n: Option<&str>, last: Option<&str>, ns: Option<&str>) -> Result<TagsPage, Failure> {
        let r = Reference::parse("127.0.0.1:5700/team/app").unwrap();
        TagsPage::new(r, "team/app", ns, n, last)
    }

    fn config() -> ServiceConfig {
        ServiceConfig::parse(
            r#"{"upstreams": [{"registry": "127.0.0.1:5700", "repositories": ["*"]}], "tag-max-age": 30}"#,
        )
        .unwrap()
    }

    #[test]
    fn n_is_a_count_of_tags() {
        assert_eq!(page(Some("10"), None, None).unwrap().n, Some(10));
        assert!(!page(Some("0"), None, None).unwrap().asks_upstream());
        assert!(page(None, None, None).unwrap().asks_upstream());
        for bad in ["-1", "x", "", "1.5", "99999999999"] {
            let e = page(Some(bad), None, None).unwrap_err();
            assert_eq!(e.kind, FailureKind::InvalidPagination, "{bad:?}");
            assert!(e.message.contains("\"n\""), "{}", e.message);
        }
        assert_eq!(page(None, Some(""), None).unwrap().last, None);
    }

    #[test]
    fn the_next_link_is_the_mirrors_own_with_the_same_ns() {
        let p = page(Some("2"), Some("a"), Some("127.0.0.1:5700")).unwrap();
        let (head, body) = p.answer(&["b".into(), "c+d".into()], Some("c+d"), &config());
        assert_eq!(
            head.get("link"),
            Some("</v2/team/app/tags/list?n=2&last=c%2Bd&ns=127.0.0.1%3A5700>; rel=\"next\"")
        );
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"name": "team/app", "tags": ["b", "c+d"]})
        );
        assert_eq!(
            head.get("cache-control"),
            Some("public, max-age=30, stale-if-error=86400")
        );
        assert_eq!(
            head.get("docker-distribution-api-version"),
            Some("registry/2.0")
        );
        assert_eq!(
            head.get("content-length"),
            Some(body.len().to_string().as_str())
        );
        let (head, _) = page(None, None, None)
            .unwrap()
            .answer(&[], Some("z"), &config());
        assert_eq!(
            head.get("link"),
            Some("</v2/team/app/tags/list?last=z>; rel=\"next\"")
        );
        let (head, body) = page(None, None, None).unwrap().answer(&[], None, &config());
        assert_eq!(head.get("link"), None);
        assert!(body.contains(r#""tags":[]"#), "{body}");
    }
}
