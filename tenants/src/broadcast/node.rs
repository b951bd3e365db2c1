//! The node side: `data/broadcasts.sqlite`, one verified copy of the feed for every practice
//! of the node, the checks that need it (the next seq, known messages), the refusal log,
//! and the read API the practice app builds on.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use diesel::prelude::*;
use diesel::sqlite::SqliteConnection;
use diesel_migrations::embed_migrations;
use serde::Serialize;
use tokio::sync::watch;

use super::BroadcastError;
use super::active::ActiveCache;
pub use super::active::Message;
use super::entry::{Audience, Entry, Item, MessageId, Payload, Refusal};
use super::key::PublicKey;
use crate::clock::UnixTime;
use crate::db::{self, DbKind};

pub mod schema {
    diesel::table! {
        entries (seq) {
            seq -> BigInt,
            payload -> Text,
            sig -> Text,
            received_at -> BigInt,
        }
    }

    diesel::table! {
        messages (id) {
            id -> Text,
            seq -> BigInt,
            published_at -> BigInt,
            valid_until -> Nullable<BigInt>,
            title -> Text,
            body -> Text,
            pinned -> Bool,
            specialties -> Text,
            roles -> Text,
            kv_regions -> Text,
            withdrawn_at -> Nullable<BigInt>,
            withdrawn_seq -> Nullable<BigInt>,
        }
    }

    diesel::table! {
        refusals (id) {
            id -> BigInt,
            seq -> BigInt,
            reason -> Text,
            at -> BigInt,
        }
    }

    diesel::allow_tables_to_appear_in_same_query!(entries, messages, refusals);
}

use schema::{entries, messages, refusals};

pub const NODE_DB: DbKind = DbKind {
    name: "broadcasts",
    file: "broadcasts.sqlite",
    migrations: embed_migrations!("migrations/broadcasts"),
};

#[derive(Queryable, Selectable)]
#[diesel(table_name = messages)]
struct MessageRow {
    id: String,
    seq: i64,
    published_at: i64,
    valid_until: Option<i64>,
    title: String,
    body: String,
    pinned: bool,
    specialties: String,
    roles: String,
    kv_regions: String,
    withdrawn_at: Option<i64>,
}

impl TryFrom<MessageRow> for Message {
    type Error = BroadcastError;
    fn try_from(r: MessageRow) -> Result<Self, BroadcastError> {
        let corrupt = |what: &str| BroadcastError::Corrupt(format!("message {}: {what}", r.id));
        let set = |text: &str| serde_json::from_str::<Vec<String>>(text);
        Ok(Self {
            id: MessageId::parse(&r.id).map_err(|_| corrupt("id"))?,
            audience: Audience {
                specialties: set(&r.specialties).map_err(|_| corrupt("specialties"))?,
                roles: set(&r.roles).map_err(|_| corrupt("roles"))?,
                kv_regions: set(&r.kv_regions).map_err(|_| corrupt("kv_regions"))?,
            },
            seq: r.seq,
            published_at: r.published_at,
            valid_until: r.valid_until,
            title: r.title,
            body: r.body,
            pinned: r.pinned,
            withdrawn_at: r.withdrawn_at,
        })
    }
}

/// A refusal as the node's log keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Serialize)]
pub struct RefusalRow {
    pub seq: i64,
    pub reason: String,
    pub at: UnixTime,
}

/// What one call of [`NodeFeed::accept`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Accepted {
    /// Entries verified and stored.
    pub stored: usize,
    /// The entry that stopped the batch and why (already recorded).
    pub refused: Option<(i64, Refusal)>,
}

/// The node's verified broadcasts. Its methods are blocking (call them off the async
/// threads); the change signal is not.
pub struct NodeFeed {
    path: PathBuf,
    key: PublicKey,
    conn: Mutex<SqliteConnection>,
    last: watch::Sender<i64>,
    /// The active messages in memory ([`super::active`]).
    active: ActiveCache,
}

impl std::fmt::Debug for NodeFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeFeed")
            .field("path", &self.path)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl NodeFeed {
    /// Opens (creating and migrating) `data/broadcasts.sqlite`; entries are verified with
    /// `key`. Blocking.
    pub fn open(data_dir: &Path, key: PublicKey) -> Result<Self, BroadcastError> {
        let path = data_dir.join(NODE_DB.file);
        let mut conn = db::open_connection(&path)?;
        db::migrate(&mut conn, &NODE_DB, &path)?;
        let last = last_seq(&mut conn)?;
        Ok(Self {
            path,
            key,
            conn: Mutex::new(conn),
            last: watch::Sender::new(last),
            active: ActiveCache::default(),
        })
    }

    fn conn(&self) -> Result<std::sync::MutexGuard<'_, SqliteConnection>, BroadcastError> {
        self.conn.lock().map_err(|_| BroadcastError::Poisoned)
    }

    /// The highest verified seq (0 before the first entry).
    pub fn last_seq(&self) -> i64 {
        *self.last.borrow()
    }

    /// Changes whenever entries were stored: the last verified seq. The practice app
    /// pushes live events from it.
    pub fn changes(&self) -> watch::Receiver<i64> {
        self.last.subscribe()
    }

    /// Verifies `raw` entries in order and stores every one up to the first refusal, which
    /// is recorded ([`NodeFeed::refuse`]) and ends the batch.
    pub fn accept(
        &self,
        raw: Vec<serde_json::Value>,
        now: UnixTime,
    ) -> Result<Accepted, BroadcastError> {
        let mut done = Accepted::default();
        let last = {
            let mut conn = self.conn()?;
            let mut last = last_seq(&mut conn)?;
            conn.immediate_transaction(|c| -> Result<(), BroadcastError> {
                for value in raw {
                    let checked = match Entry::from_json(value) {
                        Ok(entry) => self.check(c, entry, last)?,
                        Err(why) => Err((last + 1, why)),
                    };
                    match checked {
                        Ok((entry, payload)) => {
                            store(c, &entry, payload, now)?;
                            last = entry.seq;
                            done.stored += 1;
                        }
                        Err((seq, why)) => {
                            done.refused = Some((seq, why));
                            break;
                        }
                    }
                }
                Ok(())
            })?;
            last
        };
        if done.stored > 0 {
            self.last.send_replace(last);
            tracing::info!(
                stored = done.stored,
                last_seq = last,
                "broadcast entries verified"
            );
        }
        if let Some((seq, why)) = &done.refused {
            self.refuse(*seq, why, now)?;
        }
        Ok(done)
    }

    /// The checks of one entry against the stored state (`last` is the last verified seq):
    /// the inner `Err` is a refusal of the entry, the outer one a failing database.
    #[allow(clippy::type_complexity)]
    fn check(
        &self,
        c: &mut SqliteConnection,
        entry: Entry,
        last: i64,
    ) -> Result<Result<(Entry, Payload), (i64, Refusal)>, BroadcastError> {
        let seq = entry.seq;
        let refuse = |why: Refusal| Ok(Err((seq, why)));
        if seq <= last {
            return refuse(Refusal::Replayed { seq, last });
        }
        if seq != last + 1 {
            return refuse(Refusal::OutOfOrder {
                seq,
                expected: last + 1,
            });
        }
        let payload = match entry.verify(&self.key) {
            Ok(p) => p,
            Err(why) => return refuse(why),
        };
        let known = |id: &MessageId, c: &mut SqliteConnection| {
            diesel::select(diesel::dsl::exists(messages::table.find(id.as_str())))
                .get_result::<bool>(c)
        };
        match &payload.item {
            Item::Message(m) if known(&m.id, c)? => refuse(Refusal::DuplicateMessage(m.id.clone())),
            Item::Retraction(r) if !known(&r.retracts, c)? => {
                refuse(Refusal::UnknownMessage(r.retracts.clone()))
            }
            _ => Ok(Ok((entry, payload))),
        }
    }

    /// Records a refusal once per (seq, reason), with a warning in the log the first time.
    /// Returns whether it was new.
    pub fn refuse(&self, seq: i64, why: &Refusal, now: UnixTime) -> Result<bool, BroadcastError> {
        let reason = why.to_string();
        let n = diesel::insert_or_ignore_into(refusals::table)
            .values((
                refusals::seq.eq(seq),
                refusals::reason.eq(&reason),
                refusals::at.eq(now),
            ))
            .execute(&mut *self.conn()?)?;
        if n > 0 {
            tracing::warn!(seq, reason = %reason, "broadcast entry refused");
        } else {
            tracing::debug!(seq, reason = %reason, "broadcast entry refused again");
        }
        Ok(n > 0)
    }

    /// The refusal log, oldest first.
    pub fn refusals(&self) -> Result<Vec<RefusalRow>, BroadcastError> {
        Ok(refusals::table
            .order(refusals::id)
            .select((refusals::seq, refusals::reason, refusals::at))
            .load(&mut *self.conn()?)?)
    }

    /// The messages to show at `now`: not withdrawn, not expired; pinned first, then the
    /// newest. Every practice filters them by its members' claims ([`Audience::matches`]).
    /// Answered from memory while nothing changed ([`super::active`]): a page load costs
    /// no read of `broadcasts.sqlite`.
    pub fn active(&self, now: UnixTime) -> Result<Vec<Message>, BroadcastError> {
        Ok(self.active_shared(now)?.to_vec())
    }

    /// The same without copying the messages: the snapshot itself.
    pub fn active_shared(&self, now: UnixTime) -> Result<Arc<[Message]>, BroadcastError> {
        self.active
            .get(self.last_seq(), now, || self.read_active(now))
    }

    /// The active message `id` at `now`, from the same snapshot as [`Self::active`].
    pub fn active_one(&self, id: &str, now: UnixTime) -> Result<Option<Message>, BroadcastError> {
        Ok(self
            .active_shared(now)?
            .iter()
            .find(|m| m.id.as_str() == id)
            .cloned())
    }

    /// How often [`Self::active`] had to read the database.
    pub fn active_reads(&self) -> u64 {
        self.active.reads()
    }

    fn read_active(&self, now: UnixTime) -> Result<Vec<Message>, BroadcastError> {
        let rows: Vec<MessageRow> = messages::table
            .filter(messages::withdrawn_at.is_null())
            .filter(
                messages::valid_until
                    .is_null()
                    .or(messages::valid_until.gt(now)),
            )
            .order((
                messages::pinned.desc(),
                messages::published_at.desc(),
                messages::seq.desc(),
            ))
            .select(MessageRow::as_select())
            .load(&mut *self.conn()?)?;
        rows.into_iter().map(Message::try_from).collect()
    }

    /// Every stored message, withdrawn and expired ones too, in feed order.
    pub fn all(&self) -> Result<Vec<Message>, BroadcastError> {
        let rows: Vec<MessageRow> = messages::table
            .order(messages::seq)
            .select(MessageRow::as_select())
            .load(&mut *self.conn()?)?;
        rows.into_iter().map(Message::try_from).collect()
    }

    /// One message by id, withdrawn or expired ones too (the app decides what to show).
    pub fn get(&self, id: &str) -> Result<Option<Message>, BroadcastError> {
        let Ok(id) = MessageId::parse(id) else {
            return Ok(None);
        };
        messages::table
            .find(id.as_str())
            .select(MessageRow::as_select())
            .first(&mut *self.conn()?)
            .optional()?
            .map(Message::try_from)
            .transpose()
    }
}

fn last_seq(c: &mut SqliteConnection) -> Result<i64, BroadcastError> {
    let max: Option<i64> = entries::table
        .select(diesel::dsl::max(entries::seq))
        .first(c)?;
    Ok(max.unwrap_or(0))
}

fn json_set(ids: &[String]) -> String {
    serde_json::to_string(ids).unwrap_or_else(|_| "[]".into())
}

/// Stores a verified entry and what it says.
fn store(
    c: &mut SqliteConnection,
    entry: &Entry,
    payload: Payload,
    now: UnixTime,
) -> Result<(), BroadcastError> {
    diesel::insert_into(entries::table)
        .values((
            entries::seq.eq(entry.seq),
            entries::payload.eq(&entry.payload),
            entries::sig.eq(&entry.sig),
            entries::received_at.eq(now),
        ))
        .execute(c)?;
    match payload.item {
        Item::Message(m) => {
            diesel::insert_into(messages::table)
                .values((
                    messages::id.eq(m.id.as_str()),
                    messages::seq.eq(entry.seq),
                    messages::published_at.eq(m.published_at),
                    messages::valid_until.eq(m.valid_until),
                    messages::title.eq(&m.title),
                    messages::body.eq(&m.body),
                    messages::pinned.eq(m.pinned),
                    messages::specialties.eq(json_set(&m.audience.specialties)),
                    messages::roles.eq(json_set(&m.audience.roles)),
                    messages::kv_regions.eq(json_set(&m.audience.kv_regions)),
                ))
                .execute(c)?;
        }
        Item::Retraction(r) => {
            // A second retraction of the same message keeps the first one's time.
            diesel::update(
                messages::table
                    .find(r.retracts.as_str())
                    .filter(messages::withdrawn_at.is_null()),
            )
            .set((
                messages::withdrawn_at.eq(r.published_at),
                messages::withdrawn_seq.eq(entry.seq),
            ))
            .execute(c)?;
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "node_tests.rs"]
mod tests;
