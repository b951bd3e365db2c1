//! The search side of the practice's `jobs` table ([`kollegium_tenants::jobs`]): a changed
//! document is a job of kind [`JOB_KIND`] keyed `<document kind>:<id>` (queued in the
//! transaction of the change; chat's messages are `chat-message:<id>`), read back as the
//! owning app's current documents ([`Change`]), and acknowledged only after the index
//! commit that covers it. Plain functions on a connection.

use std::collections::HashMap;
use std::ops::Deref;

use diesel::prelude::*;
use diesel::sql_types::BigInt;
use kollegium_tenants::UnixTime;
use kollegium_tenants::jobs::{self, Job};
use kollegium_tenants::prepared::{FixedSql, Prepared};

use super::doc::DocRef;
use super::index::Change;
use crate::app;

/// The kind of the search index's jobs.
pub const JOB_KIND: &str = "search";

/// The job key of a document: its unique term in the index (`chat-message:17`).
pub fn key(doc: DocRef) -> String {
    doc.uid()
}

/// The document a job key names, if an app of this version owns its kind.
fn doc_of(key: &str) -> Option<DocRef> {
    let (kind, id) = key.rsplit_once(':')?;
    let source = app::search_source(kind)?;
    Some(DocRef::new(source.kind(), id.parse().ok()?))
}

/// Whether anything waits for the index.
pub fn pending(conn: &mut SqliteConnection) -> QueryResult<bool> {
    jobs::queue::pending(conn, JOB_KIND)
}

/// The changes that bring the index to the current state of `docs`: the owning apps'
/// documents, a removal for the others.
fn states(conn: &mut SqliteConnection, docs: &[DocRef]) -> QueryResult<HashMap<DocRef, Change>> {
    let mut out: HashMap<DocRef, Change> = docs.iter().map(|d| (*d, Change::Remove(*d))).collect();
    let mut by_kind: HashMap<&'static str, Vec<i64>> = HashMap::new();
    for d in docs {
        by_kind.entry(d.kind).or_default().push(d.id);
    }
    for (kind, ids) in by_kind {
        let Some(source) = app::search_source(kind) else {
            continue;
        };
        for entry in source.documents(conn, &ids)? {
            out.insert(entry.doc(), Change::Put(entry));
        }
    }
    Ok(out)
}

/// Queued changes with the messages' current state: what the index applies, and the jobs
/// it acknowledges afterwards. Derefs to the changes.
#[derive(Debug, Default)]
pub struct Batch {
    /// The jobs read, each with the document it stands for (`None`: a key this version
    /// does not know; its job is acknowledged without a change).
    jobs: Vec<(Job, Option<DocRef>)>,
    changes: Vec<Change>,
}

impl Deref for Batch {
    type Target = [Change];
    fn deref(&self) -> &[Change] {
        &self.changes
    }
}

impl Batch {
    /// The jobs of the batch.
    pub fn jobs(&self) -> impl Iterator<Item = &Job> {
        self.jobs.iter().map(|(j, _)| j)
    }
}

/// The changes `jobs` stand for, with the messages' current state.
pub fn changes_of(conn: &mut SqliteConnection, jobs: Vec<Job>) -> QueryResult<Batch> {
    let jobs: Vec<(Job, Option<DocRef>)> = jobs
        .into_iter()
        .map(|j| {
            let doc = doc_of(&j.key);
            (j, doc)
        })
        .collect();
    let docs: Vec<DocRef> = jobs.iter().filter_map(|(_, d)| *d).collect();
    let mut state = states(conn, &docs)?;
    let changes = docs.iter().filter_map(|d| state.remove(d)).collect();
    Ok(Batch { jobs, changes })
}

/// The next `limit` queued changes that are due, oldest first, with the messages' current
/// state.
pub fn next_batch(conn: &mut SqliteConnection, limit: i64) -> QueryResult<Batch> {
    let due = jobs::queue::due(conn, JOB_KIND, i64::MAX, limit)?;
    changes_of(conn, due)
}

/// Deletes the jobs of `applied` changes, after the index commit. A message that changed
/// again since it was read keeps its job (its state differs, and its job has a new
/// revision), so the next batch picks it up: nothing is lost to a race between an edit and
/// the worker. Returns how many jobs went.
pub fn ack(conn: &mut SqliteConnection, applied: &Batch) -> QueryResult<usize> {
    conn.immediate_transaction(|conn| {
        let docs: Vec<DocRef> = applied.iter().map(Change::doc).collect();
        let now = states(conn, &docs)?;
        let mut done = 0;
        for (job, doc) in &applied.jobs {
            let unchanged = doc.is_none_or(|doc| {
                applied
                    .iter()
                    .find(|c| c.doc() == doc)
                    .is_some_and(|c| now.get(&doc) == Some(c))
            });
            if unchanged && jobs::queue::complete(conn, job)? {
                done += 1;
            }
        }
        Ok(done)
    })
}

/// [`jobs::queue::ENQUEUE_SQL`] for a chat message, prepared once per connection: it runs
/// with every post (diesel prepares its upserts anew each time).
struct Enqueue;
impl FixedSql for Enqueue {
    const SQL: &'static str = "INSERT INTO jobs (kind, key, payload, priority, run_after, created_at) \
         VALUES ('search', 'chat-message:' || ?, NULL, 0, ?, ?) \
         ON CONFLICT (kind, key) WHERE failed_at IS NULL DO UPDATE SET \
         payload = excluded.payload, revision = revision + 1, \
         run_after = min(run_after, excluded.run_after), priority = excluded.priority";
}

/// Queues one message (new, edited, deleted or purged).
pub fn enqueue(conn: &mut SqliteConnection, id: i64, now: UnixTime) -> QueryResult<()> {
    Prepared::<Enqueue, 3>::new([id, now, now])
        .execute(conn)
        .map(|_| ())
}

/// Queues every live message, to build an index from scratch (a new or lost index).
pub fn requeue_all(conn: &mut SqliteConnection, now: UnixTime) -> QueryResult<usize> {
    diesel::sql_query(
        "INSERT INTO jobs (kind, key, run_after, created_at) \
         SELECT 'search', 'chat-message:' || id, ?, ? FROM messages WHERE deleted_at IS NULL \
         ON CONFLICT (kind, key) WHERE failed_at IS NULL DO NOTHING",
    )
    .bind::<BigInt, _>(now)
    .bind::<BigInt, _>(now)
    .execute(conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_name_the_document_and_only_known_kinds_are_read_back() {
        let doc = DocRef::new("chat-message", 42);
        assert_eq!(key(doc), "chat-message:42");
        assert_eq!(doc_of("chat-message:42"), Some(doc));
        assert_eq!(doc_of("file:42"), None, "no app of this version owns files");
        assert_eq!(doc_of("chat-message:x"), None);
        assert_eq!(JOB_KIND, "search");
    }
}
