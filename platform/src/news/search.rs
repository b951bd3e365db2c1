//! Neuigkeiten in the workspace's one search. The messages are the node's, not a
//! practice's: they are in no practice's index (whose documents are the practice's own,
//! found by integer ids and re-checked against `platform.sqlite`), so the search page asks
//! this source directly, from the node's store: a message is a hit when it is active, its
//! audience matches the reader, and every word of the query occurs in its title or body
//! (case-insensitive). Hits follow the index's ones, in the news page's order. The app
//! offers it to the search page as its [`DirectSearch`].

use kollegium_tenants::UnixTime;
use kollegium_tenants::broadcast::NodeFeed;
use kollegium_tenants::time::Zone;

use kollegium_tenants::provision::BoxError;

use super::NewsError;
use crate::app::{AppContext, DirectSearch};
use crate::members::Member;
use crate::search::Shown;

/// The kind on search hits.
pub const KIND: &str = "news";
/// How the search page labels its hits.
pub const LABEL: &str = "Neuigkeiten";
/// Characters of a body the snippet shows at most.
const SNIPPET_CHARS: usize = 200;

/// The news app's search outside the index.
pub struct NewsSearch;

impl DirectSearch for NewsSearch {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn label(&self) -> &'static str {
        LABEL
    }

    /// No node feed handed in: no hits.
    fn find(
        &self,
        shared: &AppContext,
        member: &Member,
        query: &str,
        now: UnixTime,
        zone: &Zone,
        max: usize,
    ) -> Result<Vec<Shown>, BoxError> {
        match shared.broadcasts.as_deref() {
            Some(feed) => Ok(find(feed, member, query, now, zone, max)?),
            None => Ok(Vec::new()),
        }
    }
}

/// The messages `m` may see at `now` that match every word of `query`, as the search page
/// shows them (at most `max`). Blocking.
pub fn find(
    feed: &NodeFeed,
    m: &Member,
    query: &str,
    now: UnixTime,
    zone: &Zone,
    max: usize,
) -> Result<Vec<Shown>, NewsError> {
    let words: Vec<String> = query.split_whitespace().map(str::to_lowercase).collect();
    if words.is_empty() {
        return Ok(Vec::new());
    }
    Ok(feed
        .active_shared(now)?
        .iter()
        .filter(|msg| super::is_for(msg, m))
        .filter(|msg| {
            let text = format!("{}\n{}", msg.title, msg.body).to_lowercase();
            words.iter().all(|w| text.contains(w.as_str()))
        })
        .take(max)
        .cloned()
        .map(|msg| Shown {
            kind: KIND,
            label: LABEL,
            snippet_html: snippet(&msg.body, &words),
            link: format!("/news/{}", msg.id),
            when: zone.format_date(msg.published_at),
            title: msg.title,
            author: None,
        })
        .collect())
}

/// The start of `body`, escaped, with the words that contain a query word in `<mark>`.
fn snippet(body: &str, words: &[String]) -> String {
    let short: String = body.chars().take(SNIPPET_CHARS).collect();
    let mut out = String::with_capacity(short.len() + 16);
    for (i, token) in short.split_whitespace().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        let lower = token.to_lowercase();
        let hit = words.iter().any(|w| lower.contains(w.as_str()));
        if hit {
            out.push_str("<mark>");
        }
        crate::markdown::escape(token, &mut out);
        if hit {
            out.push_str("</mark>");
        }
    }
    if body.chars().count() > SNIPPET_CHARS {
        out.push_str(" …");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snippets_escape_and_mark_the_matched_words() {
        let words = vec!["frist".to_owned()];
        assert_eq!(
            snippet("Die <b>Abgabefrist</b> endet & so", &words),
            "Die <mark>&lt;b&gt;Abgabefrist&lt;/b&gt;</mark> endet &amp; so"
        );
        let long = "wort ".repeat(100);
        assert!(snippet(&long, &words).ends_with(" …"));
    }
}
