//! Following a registry's pages (`Link: <…>; rel="next"`), as the tag list
//! and the referrers API page: a link is followed only where the pages come
//! from, on the same path, never back to a page already read, and not past
//! a number of pages.

use std::collections::HashSet;

use crate::client::Client;
use crate::http::Url;
use crate::reference::is_docker_hub;

/// The pages of one list on one registry: where they may be, and which
/// were asked for.
#[derive(Debug)]
pub struct Pages {
    host: String,
    /// The path every page keeps (its query varies).
    path: String,
    /// The path and query of every page asked for.
    asked: HashSet<String>,
    max: usize,
}

impl Pages {
    /// The pages of the list at `path` on `host`, the first being
    /// `first` (a path and query), `max` of them at most.
    pub fn new(host: &str, path: String, first: &str, max: usize) -> Self {
        Pages {
            host: host.to_string(),
            path,
            asked: HashSet::from([first.to_string()]),
            max,
        }
    }

    /// How many pages were asked for.
    pub fn asked(&self) -> usize {
        self.asked.len()
    }

    /// The path and query of the page `link` names, now asked for; else
    /// why it is not followed (a phrase: "is on another origin").
    pub fn follow(&mut self, client: &Client, link: &str) -> Result<String, String> {
        let registry = client.registry_url(&self.host, &self.path);
        let url = match Url::parse(link) {
            Ok(url) => url,
            Err(_) => registry.join(link).map_err(|_| "is no URL".to_string())?,
        };
        // A path stays where the pages come from (a Docker Hub proxy, for
        // Docker Hub); an absolute link must name that origin.
        if !link.starts_with('/') {
            let origin = match &client.config().docker_hub_proxy {
                Some(mirror) if is_docker_hub(&self.host) => mirror.origin(),
                _ => registry.origin(),
            };
            if url.origin() != origin {
                return Err("is on another origin".into());
            }
        }
        let path = url.path_and_query.split('?').next().unwrap_or_default();
        if path != self.path {
            return Err("is not on this list's path".into());
        }
        if self.asked.len() >= self.max {
            return Err(format!("runs past {} pages", self.max));
        }
        if !self.asked.insert(url.path_and_query.clone()) {
            return Err("is a page already read".into());
        }
        Ok(url.path_and_query)
    }
}
