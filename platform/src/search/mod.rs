//! The one search of the workspace: full-text search over the documents of every app
//! (chat messages, task cards; files later). What is not the practice's own, such as the
//! operator's news, is found outside the index ([`crate::app::DirectSearch`]).
//!
//! Each practice has one tantivy index under `data/tenants/<slug>/index/search/` for all
//! its apps, so one practice's index can never answer for another; its documents carry
//! their kind and the permission key the owning app checks ([`doc`]). The index is a
//! cache of `platform.sqlite`: app code queues changed documents as jobs of kind `search`
//! in the practice's `jobs` table ([`queue`], same transaction as the change) and kicks the
//! [`SearchService`] (the node's job signal); the node's job worker hands them to
//! [`worker::SearchJobs`], which asks the owning app for the documents
//! ([`crate::app::SearchSource::documents`]), writes the index in batches and deletes the
//! jobs only after the index commit. An index of an earlier version (in `index/chat/`, or
//! of another schema) is rebuilt from the database. Searches ([`find`]) match only what
//! each app says the reader may read and have the app re-check every hit against the
//! database, so a stale index never shows a deleted message or a room the reader may not
//! read; the search page is [`page`].
//!
//! Open indexes are cached for a few practices only. An index that was written to keeps
//! its writer (the smallest heap tantivy allows, one indexing and one merge thread) for
//! the next batches; the writer is closed when the index leaves the cache (idle, pushed
//! out, rebuilt), after a failed batch, and when the worker stops. Searching never opens
//! a writer.

pub mod doc;
pub mod find;
pub mod index;
pub mod page;
pub mod queue;
pub mod snippet;
pub mod worker;

use std::sync::Arc;

use kollegium_tenants::Slug;
use kollegium_tenants::jobs::JobSignal;

use crate::PLATFORM_DB;

pub use doc::{Confirmed, DocRef, Kind, PermKey, Shown};
pub use index::{Indexes, SearchIndex};

/// Why indexing or searching failed (never shown to users as is).
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error("index: {0}")]
    Index(#[from] tantivy::TantivyError),
    #[error("index directory: {0}")]
    Directory(#[from] tantivy::directory::error::OpenDirectoryError),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error("database: {0}")]
    Db(#[from] diesel::result::Error),
    #[error("store: {0}")]
    Store(#[from] kollegium_tenants::store::StoreError),
    #[error("background task failed: {0}")]
    Join(String),
    /// tantivy's directory lock: another handle of the same index still holds its writer
    /// (it is being closed). Nothing was written; the changes stay queued.
    #[error("the search index is locked by another writer; the batch is retried later")]
    WriterBusy,
}

/// What request code and the indexer share: the doorbell (the node's job signal) and the
/// cache of open indexes.
#[derive(Debug)]
pub struct SearchService {
    jobs: Arc<JobSignal>,
    indexes: Indexes,
}

impl SearchService {
    pub fn new(jobs: Arc<JobSignal>) -> Self {
        Self {
            jobs,
            indexes: Indexes::new(index::CACHE_CAP),
        }
    }

    /// Wakes the job worker for the practice's queued index changes. Cheap and
    /// non-blocking; call it after the transaction that queued the change committed.
    pub fn kick(&self, slug: &Slug) {
        self.kick_str(slug.as_str());
    }

    /// Same as [`Self::kick`], for a slug already known to be valid (from a `Tenant`).
    pub fn kick_str(&self, slug: &str) {
        self.jobs.poke_kind(slug, &PLATFORM_DB, queue::JOB_KIND);
    }

    /// The cache of open indexes.
    pub fn indexes(&self) -> &Indexes {
        &self.indexes
    }
}

#[cfg(test)]
mod tests;
