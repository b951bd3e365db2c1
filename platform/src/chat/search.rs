//! Chat messages in the one search: chat's [`SearchSource`] ([`MESSAGES`]: the documents
//! for the indexer, the rooms a member may read as permission keys, the re-check of hits
//! against the database, their rendering), and the chat-only results of
//! `/api/chat/search`, from the same index and the same re-check.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use diesel::prelude::*;
use kollegium_tenants::time::Zone;
use kollegium_tenants::{Tenant, UnixTime};

use super::rooms;
use super::{MessageId, RoomId};
use crate::app::SearchSource;
use crate::members::MemberId;
use crate::schema::{members, messages, room_members, rooms as rooms_t};
use crate::search::index::{Entry, Scope, SearchIndex};
use crate::search::{Confirmed, Kind, PermKey, SearchError, SearchService, Shown};

pub use crate::search::find::{MAX_QUERY_CHARS, MAX_RESULTS, QueryError, SearchText};

/// The kind of chat messages in the index.
pub const KIND: Kind = "chat-message";
/// What chat's permission keys name: a room (`room:<id>`).
pub const ROOM: &str = "room";
/// How the search page labels chat hits.
pub const LABEL: &str = "Chat";

/// A room as a permission key.
pub const fn room_key(room: i64) -> PermKey {
    PermKey::new(ROOM, room)
}

/// Chat messages as a source of the one search.
#[derive(Debug, Clone, Copy)]
pub struct Messages;

/// Chat's search source (in [`crate::app::APPS`] through the chat app).
pub static MESSAGES: Messages = Messages;

/// One result of `/api/chat/search`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Hit {
    pub id: MessageId,
    pub room_id: RoomId,
    pub room_title: String,
    pub direct: bool,
    pub author: String,
    pub created_at: UnixTime,
    /// Escaped text with the matched words in `<mark>`.
    pub snippet_html: String,
    /// Where the message is shown.
    pub url: String,
}

/// Rooms `me` may read: the rooms they belong to and every open group room.
pub fn readable_rooms(conn: &mut SqliteConnection, me: MemberId) -> QueryResult<Vec<i64>> {
    let mut ids: BTreeSet<i64> = room_members::table
        .filter(room_members::member_id.eq(me.0))
        .select(room_members::room_id)
        .load::<i64>(conn)?
        .into_iter()
        .collect();
    ids.extend(
        rooms_t::table
            .filter(rooms_t::kind.eq("group"))
            .filter(rooms_t::visibility.eq("open"))
            .select(rooms_t::id)
            .load::<i64>(conn)?,
    );
    Ok(ids.into_iter().collect())
}

/// A message the database confirmed for a reader.
#[derive(Debug, Clone)]
pub struct Checked {
    pub id: i64,
    pub room: i64,
    /// The room's name, or for a direct conversation the other person's.
    pub room_title: String,
    pub direct: bool,
    pub author: String,
    pub body: String,
    pub created_at: UnixTime,
}

impl Checked {
    /// The message in its room.
    pub fn url(&self) -> String {
        format!("/chat/{}#m{}", self.room, self.id)
    }
}

/// The re-check: of `ids`, the messages that exist, are not deleted and are now in one of
/// the `allowed` rooms, in the order of `ids`.
pub fn check(
    conn: &mut SqliteConnection,
    me: MemberId,
    allowed: &BTreeSet<i64>,
    ids: &[i64],
) -> QueryResult<Vec<Checked>> {
    if ids.is_empty() || allowed.is_empty() {
        return Ok(Vec::new());
    }
    let rows: HashMap<i64, (i64, Option<i64>, String, i64)> = messages::table
        .filter(messages::id.eq_any(ids))
        .filter(messages::deleted_at.is_null())
        .select((
            messages::id,
            messages::room_id,
            messages::author_id,
            messages::body,
            messages::created_at,
        ))
        .load::<(i64, i64, Option<i64>, String, i64)>(conn)?
        .into_iter()
        .filter(|(_, room, _, _, _)| allowed.contains(room))
        .map(|(id, room, author, body, at)| (id, (room, author, body, at)))
        .collect();
    let room_ids: BTreeSet<i64> = rows.values().map(|(r, ..)| *r).collect();
    let mut titles: BTreeMap<i64, (String, bool)> = BTreeMap::new();
    for r in room_ids {
        if let Some(room) = rooms::by_id(conn, RoomId(r))? {
            let title = if room.is_direct() {
                rooms::direct_title(conn, RoomId(r), me)?
            } else {
                room.name.clone()
            };
            titles.insert(r, (title, room.is_direct()));
        }
    }
    let authors: BTreeSet<i64> = rows.values().filter_map(|(_, a, ..)| *a).collect();
    let names: BTreeMap<i64, String> = members::table
        .filter(members::id.eq_any(authors))
        .select((members::id, members::display_name))
        .load::<(i64, String)>(conn)?
        .into_iter()
        .collect();
    let mut rows = rows;
    Ok(ids
        .iter()
        .filter_map(|id| {
            let (room, author, body, at) = rows.remove(id)?;
            let (room_title, direct) = titles.get(&room)?.clone();
            Some(Checked {
                id: *id,
                room,
                room_title,
                direct,
                author: author
                    .and_then(|a| names.get(&a).cloned())
                    .unwrap_or_else(|| "Ehemaliges Mitglied".to_owned()),
                body,
                created_at: at,
            })
        })
        .collect())
}

/// Searches the practice's chat as `me` (`/api/chat/search`). Blocking (database and
/// index).
pub fn find(
    tenant: &Tenant,
    search: &SearchService,
    me: MemberId,
    text: &SearchText,
    now: UnixTime,
) -> Result<Vec<Hit>, SearchError> {
    let mut conn = tenant.conn(&crate::PLATFORM_DB)?;
    let allowed = readable_rooms(&mut conn, me)?;
    let Some(index) = search
        .indexes()
        .get(&crate::search::index::dir(tenant), false)?
    else {
        return Ok(Vec::new()); // nothing indexed yet
    };
    hits(&mut conn, &index, &allowed, me, text, now)
}

/// The hits of `text` among `allowed` rooms, checked against the database.
pub fn hits(
    conn: &mut SqliteConnection,
    index: &SearchIndex,
    allowed: &[i64],
    me: MemberId,
    text: &SearchText,
    now: UnixTime,
) -> Result<Vec<Hit>, SearchError> {
    let keys: Vec<PermKey> = allowed.iter().map(|r| room_key(*r)).collect();
    let scope = Scope {
        kind: KIND,
        keys: &keys,
    };
    let found = index.search(text.as_str(), &[scope], MAX_RESULTS, now)?;
    let ids: Vec<i64> = found
        .docs
        .iter()
        .filter(|d| d.kind == KIND)
        .map(|d| d.id)
        .collect();
    let allowed: BTreeSet<i64> = allowed.iter().copied().collect();
    Ok(check(conn, me, &allowed, &ids)?
        .into_iter()
        .map(|c| Hit {
            id: MessageId(c.id),
            room_id: RoomId(c.room),
            snippet_html: found.snippet_html(&c.body),
            url: c.url(),
            room_title: c.room_title,
            direct: c.direct,
            author: c.author,
            created_at: c.created_at,
        })
        .collect())
}

type MessageState = (i64, i64, Option<i64>, String, Option<i64>, i64);

impl SearchSource for Messages {
    fn kind(&self) -> Kind {
        KIND
    }

    fn label(&self) -> &'static str {
        LABEL
    }

    /// A message is indexed unless it is deleted or empty; its key is its room.
    fn documents(&self, conn: &mut SqliteConnection, ids: &[i64]) -> QueryResult<Vec<Entry>> {
        let rows: Vec<MessageState> = messages::table
            .filter(messages::id.eq_any(ids))
            .select((
                messages::id,
                messages::room_id,
                messages::author_id,
                messages::body,
                messages::deleted_at,
                messages::created_at,
            ))
            .load(conn)?;
        Ok(rows
            .into_iter()
            .filter(|(_, _, _, body, deleted_at, _)| {
                deleted_at.is_none() && !body.trim().is_empty()
            })
            .map(|(id, room, author, body, _, created_at)| Entry {
                kind: KIND,
                id,
                key: room_key(room),
                title: String::new(),
                body,
                author,
                created_at,
            })
            .collect())
    }

    fn readable(&self, conn: &mut SqliteConnection, member: MemberId) -> QueryResult<Vec<PermKey>> {
        Ok(readable_rooms(conn, member)?
            .into_iter()
            .map(room_key)
            .collect())
    }

    /// Messages that still exist, are not deleted, and sit in a room the member may read
    /// (read again from the database for this search).
    fn confirm(
        &self,
        conn: &mut SqliteConnection,
        member: MemberId,
        readable: &[PermKey],
        ids: &[i64],
    ) -> QueryResult<Vec<Confirmed>> {
        let allowed: BTreeSet<i64> = readable
            .iter()
            .filter(|k| k.scope == ROOM)
            .map(|k| k.id)
            .collect();
        Ok(check(conn, member, &allowed, ids)?
            .into_iter()
            .map(|c| Confirmed {
                id: c.id,
                title: format!("{} {}", if c.direct { "@" } else { "#" }, c.room_title),
                link: c.url(),
                author: Some(c.author),
                text: c.body,
                created_at: c.created_at,
            })
            .collect())
    }

    fn render(&self, hit: Confirmed, snippet_html: String, zone: &Zone) -> Shown {
        Shown {
            kind: KIND,
            label: LABEL,
            when: zone.format(hit.created_at),
            title: hit.title,
            author: hit.author,
            snippet_html,
            link: hit.link,
        }
    }
}
