//! The node's active messages in memory: every page of every practice asks
//! [`super::NodeFeed::active`] (the app that shows them: its page, tile, search and badge), so a node
//! with 1,000 practices would read `broadcasts.sqlite` on every one of those page loads.
//! The snapshot is read once and kept until it can be wrong:
//!
//! - the feed stored entries (the last verified seq, the value of
//!   [`super::NodeFeed::changes`], differs from the one the snapshot was read at): a new
//!   message or a retraction;
//! - a message of the snapshot expired (`now` reached the earliest `valid_until`), so the
//!   expired one leaves memory too;
//! - the clock stands before the time the snapshot was read (an injected clock moved back:
//!   messages that had expired would be active again).
//!
//! The seq is taken before the database is read: an entry stored meanwhile makes the
//! snapshot look older than it is, never newer, so it is read again at the next call.

use std::sync::{Arc, Mutex};

use serde::Serialize;

use super::BroadcastError;
use super::entry::{Audience, MessageId};
use crate::clock::UnixTime;

/// A verified message as the practice app reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Message {
    pub id: MessageId,
    /// Its place in the feed: a higher seq arrived later.
    pub seq: i64,
    pub published_at: UnixTime,
    pub valid_until: Option<UnixTime>,
    pub title: String,
    /// Markdown.
    pub body: String,
    pub pinned: bool,
    pub audience: Audience,
    pub withdrawn_at: Option<UnixTime>,
}

impl Message {
    /// Not withdrawn and not expired at `now`.
    pub fn is_active(&self, now: UnixTime) -> bool {
        self.withdrawn_at.is_none() && self.valid_until.is_none_or(|t| t > now)
    }
}

/// The active messages as read at `read_at` with the feed at `seq`.
struct Snapshot {
    seq: i64,
    read_at: UnixTime,
    /// The earliest `valid_until` among them: the snapshot is stale from then on.
    expires_at: Option<UnixTime>,
    messages: Arc<[Message]>,
}

/// The cache (one per node feed) and how often it had to read the database.
#[derive(Default)]
pub(super) struct ActiveCache {
    snapshot: Mutex<Option<Snapshot>>,
    reads: std::sync::atomic::AtomicU64,
}

impl ActiveCache {
    /// The active messages at `now` with the feed at `seq`: the snapshot if it is still
    /// right, else `read()` (the database) once, kept for the next callers.
    pub(super) fn get(
        &self,
        seq: i64,
        now: UnixTime,
        read: impl FnOnce() -> Result<Vec<Message>, BroadcastError>,
    ) -> Result<Arc<[Message]>, BroadcastError> {
        let mut slot = self.snapshot.lock().map_err(|_| BroadcastError::Poisoned)?;
        if let Some(s) = slot.as_ref()
            && s.seq == seq
            && s.read_at <= now
            && s.expires_at.is_none_or(|t| now < t)
        {
            return Ok(s.messages.clone());
        }
        self.reads
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let messages: Arc<[Message]> = read()?.into();
        let expires_at = messages.iter().filter_map(|m| m.valid_until).min();
        *slot = Some(Snapshot {
            seq,
            read_at: now,
            expires_at,
            messages: messages.clone(),
        });
        Ok(messages)
    }

    /// How often the database was read (tests, metrics).
    pub(super) fn reads(&self) -> u64 {
        self.reads.load(std::sync::atomic::Ordering::Relaxed)
    }
}
