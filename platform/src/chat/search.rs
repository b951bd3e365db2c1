//! Searching chat messages as one member: the index answers for the rooms the member may
//! read, and every hit is checked against the database again (room still readable,
//! message not deleted) before it is shown.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use diesel::prelude::*;
use kollegium_tenants::{Tenant, UnixTime};

use super::rooms;
use super::{MessageId, RoomId};
use crate::members::MemberId;
use crate::schema::{members, messages, room_members, rooms as rooms_t};
use crate::search::index::{ChatIndex, chat_dir};
use crate::search::{SearchError, SearchService};

/// Longest query, in characters.
pub const MAX_QUERY_CHARS: usize = 200;
/// Results shown at most.
pub const MAX_RESULTS: usize = 50;

/// A query as typed: trimmed, at most [`MAX_QUERY_CHARS`] characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchText(String);

/// Why a query was refused; the message is German and shown to the user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error("Der Suchbegriff ist zu lang (höchstens {MAX_QUERY_CHARS} Zeichen).")]
    TooLong,
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

/// One result.
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

/// Searches the practice's chat as `me`. Blocking (database and index).
pub fn find(
    tenant: &Tenant,
    search: &SearchService,
    me: MemberId,
    text: &SearchText,
    now: UnixTime,
) -> Result<Vec<Hit>, SearchError> {
    let mut conn = tenant.conn(&crate::PLATFORM_DB)?;
    let allowed = readable_rooms(&mut conn, me)?;
    let Some(index) = search.indexes().get(&chat_dir(tenant), false)? else {
        return Ok(Vec::new()); // nothing indexed yet
    };
    hits(&mut conn, &index, &allowed, me, text, now)
}

/// The hits of `text` among `allowed` rooms, checked against the database.
pub fn hits(
    conn: &mut SqliteConnection,
    index: &ChatIndex,
    allowed: &[i64],
    me: MemberId,
    text: &SearchText,
    now: UnixTime,
) -> Result<Vec<Hit>, SearchError> {
    let found = index.search(text.as_str(), allowed, MAX_RESULTS, now)?;
    if found.ids.is_empty() {
        return Ok(Vec::new());
    }
    let allowed: BTreeSet<i64> = allowed.iter().copied().collect();
    let rows: HashMap<i64, (i64, Option<i64>, String, i64)> = messages::table
        .filter(messages::id.eq_any(&found.ids))
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
    Ok(found
        .ids
        .iter()
        .filter_map(|id| {
            let (room, author, body, at) = rows.get(id)?;
            let (title, direct) = titles.get(room)?.clone();
            Some(Hit {
                id: MessageId(*id),
                room_id: RoomId(*room),
                room_title: title,
                direct,
                author: author
                    .and_then(|a| names.get(&a).cloned())
                    .unwrap_or_else(|| "Ehemaliges Mitglied".to_owned()),
                created_at: *at,
                snippet_html: found.snippet_html(body),
                url: format!("/chat/{room}#m{id}"),
            })
        })
        .collect())
}
