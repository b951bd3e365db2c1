//! The query side of the one search: what a member typed, matched in the practice's index
//! against what every app says the member may read, re-checked and rendered by the apps.

use std::collections::HashMap;

use diesel::SqliteConnection;
use kollegium_tenants::{Tenant, UnixTime};

use super::doc::{Confirmed, DocRef, PermKey, Shown};
use super::index::{self, Found, Scope};
use super::{SearchError, SearchService};
use crate::app::{SearchSource, search_source, search_sources};
use crate::members::MemberId;

/// Longest query, in characters.
pub const MAX_QUERY_CHARS: usize = 200;
/// Results shown at most.
pub const MAX_RESULTS: usize = 50;

/// A query as typed: trimmed, at most [`MAX_QUERY_CHARS`] characters. Any text is a query:
/// quotes, colons, brackets and operators are just words (no query syntax, no parse
/// errors).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchText(String);

/// Why a query was refused; the message is German and shown to the user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error("Der Suchbegriff ist zu lang (höchstens {MAX_QUERY_CHARS} Zeichen).")]
    TooLong,
    #[error("Diesen Bereich gibt es in der Suche nicht. Bitte wählen Sie einen aus der Liste.")]
    UnknownKind,
}

impl SearchText {
    /// `None` for an empty query (nothing to search).
    pub fn parse(raw: &str) -> Result<Option<Self>, QueryError> {
        if raw.chars().count() > MAX_QUERY_CHARS {
            return Err(QueryError::TooLong);
        }
        let t = raw.trim();
        if t.is_empty() {
            return Ok(None);
        }
        Ok(Some(Self(t.to_owned())))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The apps a search covers: every app's source (`kind` empty), or the one of `kind`.
pub fn sources(kind: &str) -> Result<Vec<&'static dyn SearchSource>, QueryError> {
    if kind.is_empty() {
        return Ok(search_sources().collect());
    }
    search_source(kind)
        .map(|s| vec![s])
        .ok_or(QueryError::UnknownKind)
}

/// What the index found for a member, before the apps re-checked it.
pub struct Candidates {
    pub found: Found,
    /// Per source, the keys it said the member may read.
    pub readable: Vec<(&'static dyn SearchSource, Vec<PermKey>)>,
}

/// The index's hits of `text` among what `me` may read of `sources`. No index yet (a new
/// practice, or one being rebuilt): no hits. Blocking.
pub fn candidates(
    conn: &mut SqliteConnection,
    tenant: &Tenant,
    search: &SearchService,
    me: MemberId,
    text: &SearchText,
    sources: &[&'static dyn SearchSource],
    now: UnixTime,
) -> Result<Candidates, SearchError> {
    let mut readable = Vec::with_capacity(sources.len());
    for s in sources {
        readable.push((*s, s.readable(conn, me)?));
    }
    let found = match search.indexes().get(&index::dir(tenant), false)? {
        Some(index) => {
            let scopes: Vec<Scope<'_>> = readable
                .iter()
                .map(|(s, keys)| Scope {
                    kind: s.kind(),
                    keys,
                })
                .collect();
            index.search(text.as_str(), &scopes, MAX_RESULTS, now)?
        }
        None => {
            // No usable index (lost, of an earlier version, or never built since a
            // restart): queue its rebuild from the database, once, and answer without
            // hits meanwhile.
            if !super::queue::pending(conn)? {
                let queued = super::queue::requeue_all(conn, now)?;
                tracing::info!(practice = %tenant.slug(), queued, "search index missing; rebuilding");
            }
            search.kick_str(tenant.slug().as_str());
            Found::empty()
        }
    };
    Ok(Candidates { found, readable })
}

/// Searches the practice as `me` in `sources`: the index's hits, re-checked by their apps
/// against the database and rendered by them, best first. Blocking.
pub fn find(
    tenant: &Tenant,
    search: &SearchService,
    me: MemberId,
    text: &SearchText,
    sources: &[&'static dyn SearchSource],
    now: UnixTime,
) -> Result<Vec<Shown>, SearchError> {
    let mut conn = tenant.conn(&crate::PLATFORM_DB)?;
    let c = candidates(&mut conn, tenant, search, me, text, sources, now)?;
    let mut confirmed: HashMap<DocRef, (&'static dyn SearchSource, Confirmed)> = HashMap::new();
    for (source, keys) in &c.readable {
        let kind = source.kind();
        let ids: Vec<i64> = c
            .found
            .docs
            .iter()
            .filter(|d| d.kind == kind)
            .map(|d| d.id)
            .collect();
        if ids.is_empty() {
            continue;
        }
        for hit in source.confirm(&mut conn, me, keys, &ids)? {
            confirmed.insert(DocRef::new(kind, hit.id), (*source, hit));
        }
    }
    let zone = tenant.time_zone();
    Ok(c.found
        .docs
        .iter()
        .filter_map(|d| confirmed.remove(d))
        .map(|(source, hit)| {
            let snippet = c.found.snippet_html(&hit.text);
            source.render(hit, snippet, zone)
        })
        .collect())
}
