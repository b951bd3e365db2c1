//! The search side of the practice's `jobs` table ([`kollegium_tenants::jobs`]): a changed
//! chat message is a job of kind [`JOB_KIND`] keyed `chat-message:<id>` (queued in the
//! transaction of the change), read back as the messages' current state ([`Change`]), and
//! acknowledged only after the index commit that covers it. Plain functions on a
//! connection.

use std::collections::HashMap;
use std::ops::Deref;

use diesel::prelude::*;
use diesel::sql_types::BigInt;
use kollegium_tenants::UnixTime;
use kollegium_tenants::jobs::{self, Job};
use kollegium_tenants::prepared::{FixedSql, Prepared};

use super::index::{Change, Entry};
use crate::schema::messages;

/// The kind of the search index's jobs.
pub const JOB_KIND: &str = "search";
/// The document kind of a chat message in job keys.
const MESSAGE: &str = "chat-message:";

/// The job key of a chat message.
pub fn key(id: i64) -> String {
    format!("{MESSAGE}{id}")
}

/// The chat message a job key names.
fn message_id(key: &str) -> Option<i64> {
    key.strip_prefix(MESSAGE)?.parse().ok()
}

/// Whether anything waits for the index.
pub fn pending(conn: &mut SqliteConnection) -> QueryResult<bool> {
    jobs::queue::pending(conn, JOB_KIND)
}

type MessageState = (i64, i64, Option<i64>, String, i64, Option<i64>);

fn states(conn: &mut SqliteConnection, ids: &[i64]) -> QueryResult<HashMap<i64, Change>> {
    let rows: Vec<MessageState> = messages::table
        .filter(messages::id.eq_any(ids))
        .select((
            messages::id,
            messages::room_id,
            messages::author_id,
            messages::body,
            messages::created_at,
            messages::deleted_at,
        ))
        .load(conn)?;
    let mut out: HashMap<i64, Change> = ids.iter().map(|id| (*id, Change::Remove(*id))).collect();
    for (id, room, author, body, created_at, deleted_at) in rows {
        if deleted_at.is_none() && !body.trim().is_empty() {
            out.insert(
                id,
                Change::Put(Entry {
                    id,
                    room,
                    author,
                    body,
                    created_at,
                }),
            );
        }
    }
    Ok(out)
}

/// Queued changes with the messages' current state: what the index applies, and the jobs
/// it acknowledges afterwards. Derefs to the changes.
#[derive(Debug, Default)]
pub struct Batch {
    /// The jobs read, each with the change it stands for (`None`: a key this version does
    /// not know; its job is acknowledged without a change).
    jobs: Vec<(Job, Option<i64>)>,
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
    let jobs: Vec<(Job, Option<i64>)> = jobs
        .into_iter()
        .map(|j| {
            let id = message_id(&j.key);
            (j, id)
        })
        .collect();
    let ids: Vec<i64> = jobs.iter().filter_map(|(_, id)| *id).collect();
    let mut state = states(conn, &ids)?;
    let changes = ids.iter().filter_map(|id| state.remove(id)).collect();
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
        let ids: Vec<i64> = applied.iter().map(Change::id).collect();
        let now = states(conn, &ids)?;
        let mut done = 0;
        for (job, id) in &applied.jobs {
            let unchanged = id.is_none_or(|id| {
                applied
                    .iter()
                    .find(|c| c.id() == id)
                    .is_some_and(|c| now.get(&id) == Some(c))
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
    #[test]
    fn keys_name_the_message() {
        assert_eq!(super::key(42), "chat-message:42");
        assert_eq!(super::message_id("chat-message:42"), Some(42));
        assert_eq!(super::message_id("file:42"), None);
        assert_eq!(super::JOB_KIND, "search");
    }
}
