//! List-tags against scripted registries: pages followed to the end (or
//! one read), every request asserted, and a registry whose pages loop,
//! wander off, never end or lie about tags stopped with an error naming
//! what it did.

use ocirelay_core::client::Answer;
use ocirelay_core::http::{Request, Url};
use ocirelay_core::ops::list_tags::{
    ListTags, TagList, TagsOptions, MAX_PAGES, MAX_TAGS, PAGE_SIZE_LIMIT,
};
use ocirelay_core::{Client, ClientConfig, Error, Operation, Output, Reference};

mod common;
use common::{client, drive, response};

fn r(s: &str) -> Reference {
    Reference::parse(s).unwrap()
}

fn all() -> TagsOptions {
    TagsOptions {
        all_pages: true,
        ..TagsOptions::default()
    }
}

/// A page of `tags` with a `Link` to `next`, if any.
fn page(tags: &[&str], next: Option<&str>) -> Answer {
    let body = serde_json::json!({"name": "app", "tags": tags}).to_string();
    let link = next.map(|n| format!("<{n}>; rel=\"next\""));
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(link) = &link {
        headers.push(("Link", link.as_str()));
    }
    Ok(response(200, &headers, body.as_bytes()))
}

/// A registry that pages `tags` `n` at a time as distribution does
/// (sorted, after `last`, with a `Link` while more remain).
fn distribution<'a>(tags: &'a [&'a str], default_n: usize) -> impl FnMut(&Request) -> Answer + 'a {
    move |req| {
        let (path, query) = req
            .url
            .path_and_query
            .split_once('?')
            .unwrap_or((&req.url.path_and_query, ""));
        assert_eq!(path, "/v2/team/app/tags/list");
        let pairs = ocirelay_core::percent::query_pairs(query).unwrap();
        let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        let n: usize = get("n").map_or(default_n, |n| n.parse().unwrap());
        let after: Vec<&str> = match get("last") {
            Some(last) => tags
                .iter()
                .copied()
                .filter(|t| *t > last.as_str())
                .collect(),
            None => tags.to_vec(),
        };
        let this: Vec<&str> = after.iter().copied().take(n).collect();
        let next = (after.len() > n)
            .then(|| format!("/v2/team/app/tags/list?last={}&n={n}", this.last().unwrap()));
        page(&this, next.as_deref())
    }
}

fn list(
    options: TagsOptions,
    answer: impl FnMut(&Request) -> Answer,
) -> (ocirelay_core::Result<Option<TagList>>, Vec<String>) {
    let mut c = client(&[]);
    let mut op = ListTags::new(&c, r("localhost:5000/team/app:ignored"), options);
    let (outcome, sent) = drive(&mut c, &mut op, answer);
    (
        outcome,
        sent.iter().map(|q| q.url.path_and_query.clone()).collect(),
    )
}

#[test]
fn pages_are_followed_to_the_end() {
    let tags = ["a", "b", "c", "d", "e"];
    let (outcome, sent) = list(all(), distribution(&tags, 2));
    assert_eq!(
        outcome.unwrap().unwrap(),
        TagList {
            tags: tags.map(String::from).to_vec(),
            next: None
        }
    );
    assert_eq!(
        sent,
        [
            "/v2/team/app/tags/list",
            "/v2/team/app/tags/list?last=b&n=2",
            "/v2/team/app/tags/list?last=d&n=2",
        ]
    );
    // The page size asked for, and a start.
    let options = TagsOptions {
        page_size: Some(3),
        last: Some("a".into()),
        all_pages: true,
    };
    let (outcome, sent) = list(options, distribution(&tags, 2));
    assert_eq!(outcome.unwrap().unwrap().tags, ["b", "c", "d", "e"]);
    assert_eq!(
        sent,
        [
            "/v2/team/app/tags/list?n=3&last=a",
            "/v2/team/app/tags/list?last=d&n=3"
        ]
    );
}

#[test]
fn a_page_is_asked_for_as_json_and_read_up_to_its_limit() {
    let mut c = client(&[]);
    let mut op = ListTags::new(&c, r("localhost:5000/team/app"), all());
    let (_, sent) = drive(&mut c, &mut op, |_| page(&["a"], None));
    assert_eq!(sent[0].headers.get("accept"), Some("application/json"));
    assert_eq!(
        sent[0].body_mode,
        ocirelay_core::http::BodyMode::Buffer(8 << 20)
    );
    assert_eq!(PAGE_SIZE_LIMIT, 8 << 20);
}

#[test]
fn one_page_says_where_the_next_starts() {
    let tags = ["a", "b", "c"];
    let options = TagsOptions {
        page_size: Some(2),
        ..TagsOptions::default()
    };
    let (outcome, sent) = list(options, distribution(&tags, 2));
    assert_eq!(
        outcome.unwrap().unwrap(),
        TagList {
            tags: vec!["a".into(), "b".into()],
            next: Some("b".into())
        }
    );
    assert_eq!(sent, ["/v2/team/app/tags/list?n=2"]);
    // A link without `last` (an opaque one): the page's last tag.
    let (outcome, _) = list(TagsOptions::default(), |_| {
        page(&["x", "y"], Some("/v2/team/app/tags/list?page=2"))
    });
    assert_eq!(outcome.unwrap().unwrap().next.as_deref(), Some("y"));
    let (outcome, _) = list(TagsOptions::default(), |_| {
        page(&[], Some("/v2/team/app/tags/list?page=2"))
    });
    assert!(
        matches!(outcome, Err(Error::Protocol { .. })),
        "{outcome:?}"
    );
    // The last page.
    let (outcome, _) = list(TagsOptions::default(), |_| page(&["x"], None));
    assert_eq!(outcome.unwrap().unwrap().next, None);
}

#[test]
fn a_repository_that_is_not_there_is_none_and_null_tags_are_none() {
    let unknown = br#"{"errors":[{"code":"NAME_UNKNOWN","message":"repository name not known to registry"}]}"#;
    for status in [404, 401, 403] {
        let (outcome, _) = list(all(), |_| Ok(response(status, &[], unknown)));
        assert_eq!(outcome.unwrap(), None, "{status}");
    }
    let (outcome, _) = list(all(), |_| {
        Ok(response(200, &[], br#"{"name":"app","tags":null}"#))
    });
    assert_eq!(outcome.unwrap().unwrap().tags, Vec::<String>::new());
    let (outcome, _) = list(all(), |_| Ok(response(500, &[], b"")));
    assert!(
        matches!(outcome, Err(Error::Registry { status: 500, .. })),
        "{outcome:?}"
    );
}

#[test]
fn a_link_elsewhere_or_back_is_refused() {
    let cases = [
        (
            "http://elsewhere.example/v2/team/app/tags/list?last=b",
            "another origin",
        ),
        (
            "https://localhost:5000/v2/team/app/tags/list?last=b",
            "another origin",
        ),
        ("/v2/team/other/tags/list?last=b", "not on this list's path"),
        ("/v2/team/app/tags/list", "a page already read"),
    ];
    for (link, why) in cases {
        let (outcome, sent) = list(all(), |_| page(&["a"], Some(link)));
        let e = outcome.unwrap_err().to_string();
        assert!(
            e.contains(why) && e.contains("localhost:5000/team/app"),
            "{link}: {e}"
        );
        assert_eq!(sent.len(), 1, "{link}: nothing followed");
    }
    // The same origin, absolute, is followed.
    let mut n = 0;
    let (outcome, sent) = list(all(), |_| {
        n += 1;
        match n {
            1 => page(
                &["a"],
                Some("http://localhost:5000/v2/team/app/tags/list?last=a"),
            ),
            _ => page(&["b"], None),
        }
    });
    assert_eq!(outcome.unwrap().unwrap().tags, ["a", "b"]);
    assert_eq!(sent[1], "/v2/team/app/tags/list?last=a");
    // A loop over two pages.
    let (outcome, sent) = list(all(), |q| {
        let next = match q.url.path_and_query.contains("last=a") {
            true => "/v2/team/app/tags/list?last=b",
            false => "/v2/team/app/tags/list?last=a",
        };
        page(&["a"], Some(next))
    });
    assert!(outcome.unwrap_err().to_string().contains("already read"));
    assert_eq!(sent.len(), 3);
}

#[test]
fn what_is_not_a_tag_list_or_not_a_tag_is_an_error() {
    for (body, why) in [
        (&b"not json"[..], "is not one"),
        (br#"{"tags": "a"}"#, "is not one"),
        (br#"{"tags": ["ok", "two\nlines"]}"#, "which is no tag"),
        (br#"{"tags": ["-dash"]}"#, "which is no tag"),
    ] {
        let (outcome, _) = list(all(), |_| Ok(response(200, &[], body)));
        let e = outcome.unwrap_err().to_string();
        assert!(e.contains(why), "{e}");
    }
    let mut big = response(200, &[], b"");
    big.body = ocirelay_core::http::ResponseBody::TooLarge;
    let (outcome, _) = list(all(), |_| Ok(big.clone()));
    assert!(outcome
        .unwrap_err()
        .to_string()
        .contains(&PAGE_SIZE_LIMIT.to_string()));
}

/// Runs `op` to its end without a step limit, answering with `answer`.
fn run_long<O: Operation>(
    c: &mut Client,
    op: &mut O,
    mut answer: impl FnMut(&Request) -> Answer,
) -> (O::Outcome, usize) {
    let mut sent = 0;
    loop {
        match op.poll_output(c) {
            Output::Send(id, request) => {
                sent += 1;
                c.handle_response(id, answer(&request));
            }
            Output::Wait(_) => panic!("nothing waits here"),
            Output::Done(outcome) => return (outcome, sent),
        }
    }
}

#[test]
fn a_list_that_never_ends_or_grows_too_long_is_refused() {
    let mut c = client(&[]);
    let mut op = ListTags::new(&c, r("localhost:5000/team/app"), all());
    let mut i = 0u64;
    let (outcome, sent2) = run_long(&mut c, &mut op, |_| {
        i += 1;
        page(&[], Some(&format!("/v2/team/app/tags/list?last=p{i}")))
    });
    assert!(outcome
        .unwrap_err()
        .to_string()
        .contains(&format!("past {MAX_PAGES} pages")));
    assert_eq!(sent2, MAX_PAGES);

    let tags: Vec<String> = (0..10_000).map(|i| format!("t{i}")).collect();
    let mut c = client(&[]);
    let mut op = ListTags::new(&c, r("localhost:5000/team/app"), all());
    let mut i = 0u64;
    let (outcome, sent) = run_long(&mut c, &mut op, |_| {
        i += 1;
        let refs: Vec<&str> = tags.iter().map(String::as_str).collect();
        page(&refs, Some(&format!("/v2/team/app/tags/list?last=p{i}")))
    });
    assert!(outcome
        .unwrap_err()
        .to_string()
        .contains(&format!("more than {MAX_TAGS} tags")));
    assert_eq!(sent, MAX_TAGS / 10_000 + 1);
}

/// The tags of `repository` listed by a client with a Docker Hub proxy
/// (`mirror.example:5000`), from two pages, the first linking to `next`:
/// the tags, and the URLs asked.
fn through_a_proxy(repository: &str, tags: [&str; 2], next: &str) -> (Vec<String>, Vec<String>) {
    let mut c = Client::new(ClientConfig {
        docker_hub_proxy: Some(Url::parse("http://mirror.example:5000").unwrap()),
        ..ClientConfig::default()
    });
    let mut op = ListTags::new(&c, r(repository), all());
    let mut n = 0;
    let (outcome, sent) = drive(&mut c, &mut op, |_| {
        n += 1;
        match n {
            1 => page(&tags[..1], Some(next)),
            _ => page(&tags[1..], None),
        }
    });
    let urls = sent.iter().map(|q| q.url.to_string()).collect();
    (outcome.unwrap().unwrap().tags, urls)
}

#[test]
fn a_docker_hub_proxy_leaves_other_registries_their_own_links() {
    let next = "http://localhost:5000/v2/team/app/tags/list?last=a";
    let (tags, urls) = through_a_proxy("localhost:5000/team/app", ["a", "b"], next);
    assert_eq!(tags, ["a", "b"]);
    assert_eq!(urls[1], next);
}

#[test]
fn a_docker_hub_proxy_serves_the_pages() {
    let next = "http://mirror.example:5000/v2/library/alpine/tags/list?last=3.19";
    let (tags, urls) = through_a_proxy("alpine", ["3.19", "3.20"], next);
    assert_eq!(tags, ["3.19", "3.20"]);
    assert_eq!(
        urls,
        [
            "http://mirror.example:5000/v2/library/alpine/tags/list",
            next
        ]
    );
}
