//! The operator side: the feed database (`data/operator.sqlite`), publishing and withdrawing
//! (what the CLI and the operator console both call), and the pages `/feed` serves.
//!
//! The feed keeps no per-node or per-practice state and answers everyone the same: a page
//! is a function of `after` and `limit` only.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use diesel::prelude::*;
use diesel::sqlite::SqliteConnection;
use diesel_migrations::embed_migrations;
use serde::Serialize;

use super::BroadcastError;
use super::entry::{
    Audience, Entry, Invalid, Item, MessageId, MessagePayload, Payload, RetractionPayload,
};
use super::key::OperatorKey;
use crate::clock::UnixTime;
use crate::db::{self, DbKind};

pub mod schema {
    diesel::table! {
        feed (seq) {
            seq -> BigInt,
            kind -> Text,
            message_id -> Text,
            title -> Text,
            payload -> Text,
            sig -> Text,
            created_at -> BigInt,
        }
    }
}

use schema::feed;

pub const OPERATOR_DB: DbKind = DbKind {
    name: "operator",
    file: "operator.sqlite",
    migrations: embed_migrations!("migrations/operator"),
};

/// Entries per page of `/feed` unless the caller asks for fewer.
pub const PAGE_LIMIT: usize = 100;

/// A message as the operator writes it, before it has an id, a seq and a signature.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Draft {
    pub title: String,
    /// Markdown (the workspace's safe subset renders it).
    pub body: String,
    pub audience: Audience,
    pub valid_until: Option<UnixTime>,
    pub pinned: bool,
}

/// Why publishing or withdrawing was refused.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error(transparent)]
    Invalid(#[from] Invalid),
    #[error("valid until must be in the future")]
    ValidUntilPast,
    #[error("no message {0} has been published")]
    UnknownMessage(String),
    #[error("message {0} is already withdrawn")]
    AlreadyWithdrawn(MessageId),
    #[error(transparent)]
    Storage(#[from] BroadcastError),
    #[error("cannot encode the payload: {0}")]
    Encode(#[from] serde_json::Error),
}

impl From<diesel::result::Error> for PublishError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Storage(e.into())
    }
}

/// A date that is not `YYYY-MM-DD`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a date like 2027-03-31 (YYYY-MM-DD)")]
pub struct BadDate(pub String);

/// `YYYY-MM-DD` as a message's `valid_until`: valid through that whole day in `zone`, i.e.
/// until the following day begins there.
pub fn end_of_day(text: &str, zone: &crate::time::Zone) -> Result<UnixTime, BadDate> {
    let bad = || BadDate(text.chars().take(40).collect());
    let t = text.trim();
    if t.len() != 10 || t.as_bytes()[4] != b'-' || t.as_bytes()[7] != b'-' {
        return Err(bad());
    }
    let date: jiff::civil::Date = t.parse().map_err(|_| bad())?;
    let next = date.tomorrow().map_err(|_| bad())?;
    let start = next
        .to_zoned_datetime(zone.time_zone().clone())
        .map_err(|_| bad())?;
    Ok(start.timestamp().as_second())
}

/// One page of the feed, as `/feed` answers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct FeedPage {
    pub entries: Vec<Entry>,
    /// The `after` of the next page, when there is one.
    pub next: Option<i64>,
}

/// A published message as the operator lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Published {
    pub id: MessageId,
    pub seq: i64,
    pub title: String,
    pub published_at: UnixTime,
    pub valid_until: Option<UnixTime>,
    pub pinned: bool,
    pub audience: Audience,
    /// When it was withdrawn (the retraction's time).
    pub withdrawn_at: Option<UnixTime>,
}

/// The operator's feed database.
pub struct OperatorFeed {
    path: PathBuf,
    conn: Mutex<SqliteConnection>,
}

impl std::fmt::Debug for OperatorFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OperatorFeed")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl OperatorFeed {
    /// Opens (creating and migrating) `data/operator.sqlite`. Blocking.
    pub fn open(data_dir: &Path) -> Result<Self, BroadcastError> {
        let path = data_dir.join(OPERATOR_DB.file);
        crate::perms::create_dir_all(data_dir).map_err(|e| {
            BroadcastError::Corrupt(format!("cannot create {}: {e}", data_dir.display()))
        })?;
        let mut conn = db::open_connection(&path)?;
        db::migrate(&mut conn, &OPERATOR_DB, &path)?;
        Ok(Self {
            path,
            conn: Mutex::new(conn),
        })
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&mut SqliteConnection) -> Result<T, PublishError>,
    ) -> Result<T, PublishError> {
        let mut conn = self.conn.lock().map_err(|_| BroadcastError::Poisoned)?;
        f(&mut conn)
    }

    /// Signs and appends a message. Refuses an empty or too long title or body, ids the
    /// catalogue does not know (naming the id) and a `valid_until` not after `now`.
    /// Blocking.
    pub fn publish(
        &self,
        key: &OperatorKey,
        draft: Draft,
        now: UnixTime,
    ) -> Result<Entry, PublishError> {
        if draft.valid_until.is_some_and(|t| t <= now) {
            return Err(PublishError::ValidUntilPast);
        }
        let message = MessagePayload {
            id: MessageId::random(),
            published_at: now,
            valid_until: draft.valid_until,
            title: draft.title.trim().to_owned(),
            body: draft.body,
            pinned: draft.pinned,
            audience: draft.audience,
        };
        message.check()?;
        let title = message.title.clone();
        let id = message.id.clone();
        self.append(key, Item::Message(message), "message", id, title, now)
    }

    /// Signs and appends the retraction of message `id`. Blocking.
    pub fn withdraw(
        &self,
        key: &OperatorKey,
        id: &str,
        now: UnixTime,
    ) -> Result<Entry, PublishError> {
        let id = MessageId::parse(id.trim())
            .map_err(|_| PublishError::UnknownMessage(id.chars().take(40).collect()))?;
        let item = Item::Retraction(RetractionPayload {
            retracts: id.clone(),
            published_at: now,
        });
        self.append(key, item, "retraction", id, String::new(), now)
    }

    /// Appends `item` as the next seq in one `BEGIN IMMEDIATE` transaction, so two
    /// publishers (the CLI and the console) never sign the same seq.
    fn append(
        &self,
        key: &OperatorKey,
        item: Item,
        kind: &'static str,
        message_id: MessageId,
        title: String,
        now: UnixTime,
    ) -> Result<Entry, PublishError> {
        self.with(|conn| {
            conn.immediate_transaction(|c| {
                let of_id = |k: &str, c: &mut SqliteConnection| -> QueryResult<bool> {
                    diesel::select(diesel::dsl::exists(
                        feed::table
                            .filter(feed::kind.eq(k))
                            .filter(feed::message_id.eq(message_id.as_str())),
                    ))
                    .get_result(c)
                };
                if kind == "retraction" {
                    if !of_id("message", c)? {
                        return Err(PublishError::UnknownMessage(message_id.to_string()));
                    }
                    if of_id("retraction", c)? {
                        return Err(PublishError::AlreadyWithdrawn(message_id.clone()));
                    }
                }
                let last: Option<i64> = feed::table.select(diesel::dsl::max(feed::seq)).first(c)?;
                let seq = last.unwrap_or(0) + 1;
                let entry = Entry::sign(key, &Payload { seq, item })?;
                diesel::insert_into(feed::table)
                    .values((
                        feed::seq.eq(seq),
                        feed::kind.eq(kind),
                        feed::message_id.eq(message_id.as_str()),
                        feed::title.eq(&title),
                        feed::payload.eq(&entry.payload),
                        feed::sig.eq(&entry.sig),
                        feed::created_at.eq(now),
                    ))
                    .execute(c)?;
                Ok(entry)
            })
        })
    }

    /// The entries after `after`, at most `limit` (capped at [`PAGE_LIMIT`]). Blocking.
    pub fn page(&self, after: i64, limit: usize) -> Result<FeedPage, PublishError> {
        let limit = limit.clamp(1, PAGE_LIMIT);
        self.with(|c| {
            let mut rows: Vec<(i64, String, String)> = feed::table
                .filter(feed::seq.gt(after))
                .order(feed::seq)
                .limit(limit as i64 + 1)
                .select((feed::seq, feed::payload, feed::sig))
                .load(c)?;
            let more = rows.len() > limit;
            rows.truncate(limit);
            let next = more.then(|| rows.last().map(|r| r.0)).flatten();
            Ok(FeedPage {
                entries: rows
                    .into_iter()
                    .map(|(seq, payload, sig)| Entry { seq, payload, sig })
                    .collect(),
                next,
            })
        })
    }

    /// Every published message, newest first, withdrawn ones marked. Blocking.
    pub fn list(&self) -> Result<Vec<Published>, PublishError> {
        let rows: Vec<(i64, String)> = self.with(|c| {
            Ok(feed::table
                .order(feed::seq.desc())
                .select((feed::seq, feed::payload))
                .load(c)?)
        })?;
        let mut withdrawn = std::collections::HashMap::new();
        let mut out = Vec::new();
        for (seq, text) in rows {
            let payload: Payload = serde_json::from_str(&text).map_err(|e| {
                BroadcastError::Corrupt(format!("feed entry {seq} does not parse: {e}"))
            })?;
            match payload.item {
                Item::Retraction(r) => {
                    withdrawn.insert(r.retracts, r.published_at);
                }
                Item::Message(m) => out.push(Published {
                    withdrawn_at: withdrawn.get(&m.id).copied(),
                    id: m.id,
                    seq,
                    title: m.title,
                    published_at: m.published_at,
                    valid_until: m.valid_until,
                    pinned: m.pinned,
                    audience: m.audience,
                }),
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft(title: &str) -> Draft {
        Draft {
            title: title.into(),
            body: "Neu ab Januar: **GOP 03230**.".into(),
            ..Draft::default()
        }
    }

    #[test]
    fn publishing_signs_consecutive_entries_and_pages_them() {
        let dir = tempfile::tempdir().unwrap();
        let feed = OperatorFeed::open(dir.path()).unwrap();
        let key = OperatorKey::generate();
        for i in 1..=5 {
            let e = feed
                .publish(&key, draft(&format!("Tipp {i}")), 100)
                .unwrap();
            assert_eq!(e.seq, i);
            let p = e.verify(&key.public()).unwrap();
            assert_eq!(p.seq, i);
        }
        let first = feed.page(0, 2).unwrap();
        assert_eq!(
            first.entries.iter().map(|e| e.seq).collect::<Vec<_>>(),
            [1, 2]
        );
        assert_eq!(first.next, Some(2));
        let last = feed.page(4, 2).unwrap();
        assert_eq!(last.entries.len(), 1);
        assert_eq!(last.next, None);
        assert!(feed.page(5, 100).unwrap().entries.is_empty());
        assert_eq!(feed.list().unwrap().len(), 5);
    }

    #[test]
    fn publishing_refuses_what_a_node_would_refuse() {
        let dir = tempfile::tempdir().unwrap();
        let feed = OperatorFeed::open(dir.path()).unwrap();
        let key = OperatorKey::generate();
        let unknown = Draft {
            audience: Audience {
                kv_regions: vec!["kv-nordrhein".into(), "kv-nirgendwo".into()],
                ..Audience::default()
            },
            ..draft("Tipp")
        };
        let err = feed.publish(&key, unknown, 100).unwrap_err().to_string();
        assert!(err.contains("\"kv-nirgendwo\""), "{err}");
        assert!(matches!(
            feed.publish(&key, draft("  "), 100),
            Err(PublishError::Invalid(Invalid::EmptyTitle))
        ));
        let past = Draft {
            valid_until: Some(100),
            ..draft("Tipp")
        };
        assert!(matches!(
            feed.publish(&key, past, 100),
            Err(PublishError::ValidUntilPast)
        ));
        assert!(
            feed.page(0, 100).unwrap().entries.is_empty(),
            "nothing half-written"
        );
    }

    #[test]
    fn a_date_is_valid_through_that_day_in_the_zone() {
        let berlin = crate::time::Zone::default();
        // 2027-03-31 24:00 in Berlin (summer time, UTC+2) is 22:00 UTC.
        assert_eq!(end_of_day("2027-03-31", &berlin), Ok(1_806_530_400));
        for bad in ["31.03.2027", "2027-3-31", "2027-02-30", "morgen", ""] {
            assert!(end_of_day(bad, &berlin).is_err(), "{bad}");
        }
    }

    #[test]
    fn withdrawing_needs_a_published_message_once() {
        let dir = tempfile::tempdir().unwrap();
        let feed = OperatorFeed::open(dir.path()).unwrap();
        let key = OperatorKey::generate();
        let e = feed.publish(&key, draft("Tipp"), 100).unwrap();
        let Item::Message(m) = e.verify(&key.public()).unwrap().item else {
            panic!("a message")
        };
        assert!(matches!(
            feed.withdraw(&key, &MessageId::random().to_string(), 200),
            Err(PublishError::UnknownMessage(_))
        ));
        assert!(matches!(
            feed.withdraw(&key, "kein-id", 200),
            Err(PublishError::UnknownMessage(_))
        ));
        let r = feed.withdraw(&key, m.id.as_str(), 200).unwrap();
        assert_eq!(r.seq, 2);
        assert!(matches!(
            feed.withdraw(&key, m.id.as_str(), 300),
            Err(PublishError::AlreadyWithdrawn(_))
        ));
        let listed = feed.list().unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].withdrawn_at, Some(200));
    }
}
