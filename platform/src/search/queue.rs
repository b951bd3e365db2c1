//! The `search_queue` side of indexing: what to (re)index or remove, and acknowledging
//! what reached the index. Plain functions on a connection.

use std::collections::HashMap;

use diesel::prelude::*;
use diesel::sql_types::BigInt;
use kollegium_tenants::UnixTime;
use kollegium_tenants::prepared::{FixedSql, Prepared};

use super::doc::DocRef;
use super::index::Change;
use crate::app::SearchSource;
use crate::schema::search_queue;

/// Whether anything waits in the queue.
pub fn pending(conn: &mut SqliteConnection) -> QueryResult<bool> {
    search_queue::table
        .select(search_queue::message_id)
        .first::<i64>(conn)
        .optional()
        .map(|o| o.is_some())
}

/// The changes that bring the index to the current state of `ids` (chat messages, the only
/// kind `search_queue` holds): the owning app's documents, a removal for the others.
fn states(conn: &mut SqliteConnection, ids: &[i64]) -> QueryResult<HashMap<i64, Change>> {
    let source = &crate::chat::search::MESSAGES;
    let mut out: HashMap<i64, Change> = ids
        .iter()
        .map(|id| (*id, Change::Remove(DocRef::new(source.kind(), *id))))
        .collect();
    for entry in source.documents(conn, ids)? {
        out.insert(entry.id, Change::Put(entry));
    }
    Ok(out)
}

/// The next `limit` queued changes, oldest first, with the messages' current state.
pub fn next_batch(conn: &mut SqliteConnection, limit: i64) -> QueryResult<Vec<Change>> {
    let ids: Vec<i64> = search_queue::table
        .order((search_queue::queued_at, search_queue::message_id))
        .limit(limit)
        .select(search_queue::message_id)
        .load(conn)?;
    let mut state = states(conn, &ids)?;
    Ok(ids.iter().filter_map(|id| state.remove(id)).collect())
}

/// Deletes the queue rows of `applied` changes, after the index commit. A message that
/// changed again since it was read keeps its row, so the next batch picks it up: nothing
/// is lost to a race between an edit and the worker. Returns how many rows went.
pub fn ack(conn: &mut SqliteConnection, applied: &[Change]) -> QueryResult<usize> {
    conn.immediate_transaction(|conn| {
        let ids: Vec<i64> = applied.iter().map(Change::id).collect();
        let now = states(conn, &ids)?;
        let done: Vec<i64> = applied
            .iter()
            .filter(|c| now.get(&c.id()) == Some(*c))
            .map(Change::id)
            .collect();
        diesel::delete(search_queue::table.filter(search_queue::message_id.eq_any(&done)))
            .execute(conn)
    })
}

struct Enqueue;
impl FixedSql for Enqueue {
    const SQL: &'static str = "INSERT INTO search_queue (message_id, queued_at) VALUES (?, ?) \
         ON CONFLICT (message_id) DO UPDATE SET queued_at = excluded.queued_at";
}

/// Queues one message (new, edited, deleted or purged). Prepared once per connection: it
/// runs with every post (diesel prepares its upserts anew each time).
pub fn enqueue(conn: &mut SqliteConnection, id: i64, now: UnixTime) -> QueryResult<()> {
    Prepared::<Enqueue, 2>::new([id, now])
        .execute(conn)
        .map(|_| ())
}

/// Queues every live message, to build an index from scratch (a new or lost index).
pub fn requeue_all(conn: &mut SqliteConnection, now: UnixTime) -> QueryResult<usize> {
    diesel::sql_query(
        "INSERT INTO search_queue (message_id, queued_at) \
         SELECT id, ? FROM messages WHERE deleted_at IS NULL \
         ON CONFLICT (message_id) DO NOTHING",
    )
    .bind::<BigInt, _>(now)
    .execute(conn)
}
