//! Signed broadcasts: the operator's feed of messages to every practice, and each node's
//! verified copy of it.
//!
//! The operator (the provider's staff) publishes a message once; every node fetches the
//! feed, verifies each entry with the operator's public key and keeps what it verified once
//! for all its practices (`data/broadcasts.sqlite`). Which member a message is for is
//! decided inside each practice from the member's claims ([`Audience::matches`]); nothing
//! about who matched, read or dismissed anything goes back: the feed request carries no
//! practice or member identity and the feed answers everyone the same.
//!
//! ```text
//! CLI / console ─► operator::OperatorFeed::publish/withdraw ─► data/operator.sqlite (signed entries, seq order)
//!                                                                └► GET /feed?after=<seq>&limit=<n> (operator listener)
//! node: sync::SyncWorker (start + every sync interval) ─► GET /feed ─► node::NodeFeed::accept
//!        (verify: signature, seq = last + 1, schema, catalogue ids, sizes) ─► data/broadcasts.sqlite
//!        refusals ─► `refusals` table (once per seq and reason) + tracing::warn; the round stops there
//! practice apps ─► NodeFeed::active(now) / get(id) / changes() (a watch of the last seq)
//! ```
//!
//! # Entry format (version 1)
//!
//! A feed entry is JSON:
//!
//! ```json
//! {"seq": 7, "payload": "<JSON text>", "sig": "<base64 of 64 bytes>"}
//! ```
//!
//! - `sig` is the Ed25519 signature (standard base64 with padding) over the bytes
//!   `kollegium-broadcast-v1\n` ([`entry::DOMAIN`]) followed by the exact UTF-8 bytes of
//!   `payload`. The payload is signed as the text it is, so neither side canonicalises JSON;
//!   the domain prefix keeps a signature from meaning anything outside this feed.
//! - The payload is a JSON object that carries `seq` itself (signed, so whoever serves the
//!   feed cannot reorder, replay or renumber entries; it must equal the outer `seq`) and
//!   `kind`:
//!   - `"message"`: `id` (16 random bytes, 32 lowercase hex digits), `published_at` (Unix
//!     seconds), `valid_until` (Unix seconds or `null`), `title` (at most
//!     [`entry::MAX_TITLE_CHARS`] characters), `body` (Markdown, at most
//!     [`entry::MAX_BODY_BYTES`] bytes), `pinned` (bool), `audience`
//!     `{"specialties": [..], "roles": [..], "kv_regions": [..]}` with ids of
//!     [`crate::catalog`] (an empty set means any);
//!   - `"retraction"`: `retracts` (the id of an earlier message) and `published_at`.
//!
//!   Fields a node does not know are ignored (a later version may add some); a change of
//!   meaning takes a new domain prefix.
//! - Sequence numbers start at 1 and have no gaps. A node accepts exactly `last + 1`:
//!   an older or repeated seq is a replay, a higher one a gap; both are refused.
//!
//! A node refuses an entry that is not such JSON, whose signature does not verify with the
//! configured key, whose seq is not the next, whose payload does not parse or names an id
//! the catalogue does not know, whose body is too large, or that retracts a message the node
//! does not have. A refused entry stops the round; it is recorded once per (seq, reason).

mod active;
pub mod entry;
pub mod key;
pub mod node;
pub mod operator;
pub mod sync;

pub use entry::{Audience, Entry, Invalid, MessageId, Payload, Refusal};
pub use key::{OperatorKey, PublicKey};
pub use node::{Message, NodeFeed};
pub use operator::{Draft, OperatorFeed, PublishError};
pub use sync::{SyncSettings, SyncWorker, Syncer};

/// What can go wrong beside a refused entry: the databases, the key files.
#[derive(Debug, thiserror::Error)]
pub enum BroadcastError {
    #[error(transparent)]
    Db(#[from] crate::db::DbError),
    #[error("stored broadcast data is unreadable: {0}")]
    Corrupt(String),
    #[error("the broadcast database lock is poisoned")]
    Poisoned,
}

impl From<diesel::result::Error> for BroadcastError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Db(e.into())
    }
}
