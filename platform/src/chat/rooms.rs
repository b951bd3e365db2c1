//! Rooms and who is in them.

use diesel::prelude::*;
use kollegium_tenants::UnixTime;
use kollegium_tenants::prepared::{FixedSql, Prepared};

use super::{Actor, ChatError, MessageId, RoomId};
use crate::markdown;
use crate::members::MemberId;
use crate::schema::{members, messages, room_members, rooms};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Visibility {
    /// Every member of the practice may read and write.
    Open,
    /// Only the room's members.
    Private,
}

impl Visibility {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Private => "private",
        }
    }
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = rooms)]
pub struct Room {
    pub id: i64,
    pub kind: String,
    pub name: String,
    pub topic: String,
    pub visibility: String,
    pub archived: bool,
    pub created_by: Option<i64>,
    pub created_at: i64,
    pub last_message_id: Option<i64>,
    /// The practice's general room ("Allgemein"): only admins may archive it.
    pub is_default: bool,
}

impl Room {
    pub fn room_id(&self) -> RoomId {
        RoomId(self.id)
    }
    pub fn is_open(&self) -> bool {
        self.kind == "group" && self.visibility == "open"
    }
    pub fn is_direct(&self) -> bool {
        self.kind == "direct"
    }
}

/// A room name as stored: trimmed, 1–80 characters, no control characters, bidirectional
/// controls neutralised (see [`markdown::neutralize_bidi`]).
fn check_name(name: &str) -> Result<String, ChatError> {
    let n = name.trim();
    if n.is_empty() || n.chars().count() > 80 || n.chars().any(char::is_control) {
        return Err(ChatError::RoomName);
    }
    Ok(markdown::neutralize_bidi(n).into_owned())
}

/// A topic as stored: trimmed, at most 300 characters, line breaks but no other control
/// characters, bidirectional controls neutralised.
fn check_topic(topic: &str) -> Result<String, ChatError> {
    let t = topic.trim();
    if t.chars().count() > 300 || t.chars().any(|c| c.is_control() && c != '\n') {
        return Err(ChatError::Topic);
    }
    Ok(markdown::neutralize_bidi(t).into_owned())
}

/// Adds a member to a room (created, invited): they start with everything older than now
/// marked read.
fn join(
    conn: &mut SqliteConnection,
    room: RoomId,
    member: MemberId,
    now: UnixTime,
) -> QueryResult<()> {
    let last: Option<i64> = rooms::table
        .find(room.0)
        .select(rooms::last_message_id)
        .first(conn)?;
    join_with_marker(conn, room, member, last.unwrap_or(0), now)
}

fn join_with_marker(
    conn: &mut SqliteConnection,
    room: RoomId,
    member: MemberId,
    last_read: i64,
    now: UnixTime,
) -> QueryResult<()> {
    diesel::insert_into(room_members::table)
        .values((
            room_members::room_id.eq(room.0),
            room_members::member_id.eq(member.0),
            room_members::joined_at.eq(now),
            room_members::last_read_id.eq(last_read),
        ))
        .on_conflict_do_nothing()
        .execute(conn)
        .map(|_| ())
}

/// The read marker of a member in an open room they have never opened.
///
/// Every member of the practice is the audience of an open room from their first sign-in
/// on (`members.created_at`): what was posted from then on counts as unread (and its
/// mentions as mentions, as the mention mails do), what was posted before counts as read.
/// Opening the room for the first time starts from the same marker; only reading moves
/// it. Times are seconds, so a message of the very second of the first sign-in counts as
/// unread.
pub fn open_room_marker(
    conn: &mut SqliteConnection,
    room: RoomId,
    member: MemberId,
) -> QueryResult<i64> {
    let Some(since) = members::table
        .find(member.0)
        .select(members::created_at)
        .first::<i64>(conn)
        .optional()?
    else {
        return Ok(0);
    };
    let before: Option<i64> = messages::table
        .filter(messages::room_id.eq(room.0))
        .filter(messages::created_at.lt(since))
        .select(diesel::dsl::max(messages::id))
        .first(conn)?;
    Ok(before.unwrap_or(0))
}

/// Creates a group room; the creator is always a member.
pub fn create_group(
    conn: &mut SqliteConnection,
    creator: MemberId,
    name: &str,
    topic: &str,
    visibility: Visibility,
    invite: &[MemberId],
    now: UnixTime,
) -> Result<RoomId, ChatError> {
    let name = check_name(name)?;
    let topic = check_topic(topic)?;
    conn.immediate_transaction(|conn| {
        for m in invite {
            if !is_active(conn, *m)? {
                return Err(ChatError::NotAllowed);
            }
        }
        // The first open room named "Allgemein" is the practice's general room.
        let is_default = visibility == Visibility::Open
            && name == DEFAULT_ROOM_NAME
            && rooms::table
                .filter(rooms::is_default.eq(true))
                .count()
                .get_result::<i64>(conn)?
                == 0;
        let id: i64 = diesel::insert_into(rooms::table)
            .values((
                rooms::is_default.eq(is_default),
                rooms::kind.eq("group"),
                rooms::name.eq(&name),
                rooms::topic.eq(&topic),
                rooms::visibility.eq(visibility.as_str()),
                rooms::created_by.eq(creator.0),
                rooms::created_at.eq(now),
                rooms::updated_at.eq(now),
            ))
            .returning(rooms::id)
            .get_result(conn)?;
        for m in std::iter::once(&creator).chain(invite) {
            join(conn, RoomId(id), *m, now)?;
        }
        Ok(RoomId(id))
    })
}

/// Whether `m` is a member of this practice who was not disabled or deleted at the IdP.
fn is_active(conn: &mut SqliteConnection, m: MemberId) -> QueryResult<bool> {
    let n: i64 = members::table
        .filter(members::id.eq(m.0))
        .filter(members::deactivated_at.is_null())
        .count()
        .get_result(conn)?;
    Ok(n > 0)
}

/// The 1:1 conversation of two members, created on first use.
pub fn direct(
    conn: &mut SqliteConnection,
    a: MemberId,
    b: MemberId,
    now: UnixTime,
) -> Result<RoomId, ChatError> {
    if a == b {
        return Err(ChatError::NotAllowed);
    }
    if !is_active(conn, b)? {
        return Err(ChatError::NotAllowed);
    }
    let key = format!("{}:{}", a.0.min(b.0), a.0.max(b.0));
    conn.immediate_transaction(|conn| {
        if let Some(id) = rooms::table
            .filter(rooms::direct_key.eq(&key))
            .select(rooms::id)
            .first::<i64>(conn)
            .optional()?
        {
            return Ok(RoomId(id));
        }
        let id: i64 = diesel::insert_into(rooms::table)
            .values((
                rooms::kind.eq("direct"),
                rooms::name.eq(""),
                rooms::visibility.eq(Visibility::Private.as_str()),
                rooms::direct_key.eq(&key),
                rooms::created_by.eq(a.0),
                rooms::created_at.eq(now),
                rooms::updated_at.eq(now),
            ))
            .returning(rooms::id)
            .get_result(conn)?;
        join(conn, RoomId(id), a, now)?;
        join(conn, RoomId(id), b, now)?;
        Ok(RoomId(id))
    })
}

pub fn by_id(conn: &mut SqliteConnection, id: RoomId) -> QueryResult<Option<Room>> {
    rooms::table
        .find(id.0)
        .select(Room::as_select())
        .first(conn)
        .optional()
}

pub fn is_member(conn: &mut SqliteConnection, room: RoomId, m: MemberId) -> QueryResult<bool> {
    let n: i64 = room_members::table
        .filter(room_members::room_id.eq(room.0))
        .filter(room_members::member_id.eq(m.0))
        .count()
        .get_result(conn)?;
    Ok(n > 0)
}

/// The room if `member` may read it. Open rooms are joined on first access. An unknown room
/// and a room the member may not see are the same answer: not found.
pub fn readable(
    conn: &mut SqliteConnection,
    room: RoomId,
    member: MemberId,
    now: UnixTime,
) -> Result<Room, ChatError> {
    let r = by_id(conn, room)?.ok_or(ChatError::RoomNotFound)?;
    if is_member(conn, room, member)? {
        return Ok(r);
    }
    if r.is_open() {
        let marker = open_room_marker(conn, room, member)?;
        join_with_marker(conn, room, member, marker, now)?;
        return Ok(r);
    }
    Err(ChatError::RoomNotFound)
}

/// Ids of the members of a room (for delivery and mentions). Open rooms: every member
/// of the practice. Deactivated members (disabled or deleted at the IdP) are left out.
pub fn audience(conn: &mut SqliteConnection, room: &Room) -> QueryResult<Vec<MemberId>> {
    let ids: Vec<i64> = if room.is_open() {
        members::table
            .filter(members::deactivated_at.is_null())
            .select(members::id)
            .load(conn)?
    } else {
        room_members::table
            .inner_join(members::table)
            .filter(room_members::room_id.eq(room.id))
            .filter(members::deactivated_at.is_null())
            .select(room_members::member_id)
            .load(conn)?
    };
    Ok(ids.into_iter().map(MemberId).collect())
}

/// One member of a room's member list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomMember {
    pub id: MemberId,
    pub username: String,
    pub display_name: String,
    /// Labels of the member's roles (the shared catalogue), e.g. `["Ärzt:in"]`.
    pub roles: Vec<String>,
}

/// Members listed in a room (those who joined and are not deactivated).
pub fn member_list(conn: &mut SqliteConnection, room: RoomId) -> QueryResult<Vec<RoomMember>> {
    room_members::table
        .inner_join(members::table)
        .filter(room_members::room_id.eq(room.0))
        .filter(members::deactivated_at.is_null())
        .order(members::display_name)
        .select((
            members::id,
            members::username,
            members::display_name,
            members::roles,
        ))
        .load::<(i64, String, String, String)>(conn)
        .map(|v| {
            v.into_iter()
                .map(|(id, username, display_name, roles)| RoomMember {
                    id: MemberId(id),
                    username,
                    display_name,
                    roles: crate::members::role_labels_of(&roles),
                })
                .collect()
        })
}

/// One entry of the room list.
#[derive(Debug, Clone)]
pub struct Summary {
    pub id: RoomId,
    pub title: String,
    pub topic: String,
    pub direct: bool,
    pub private: bool,
    pub archived: bool,
    pub unread: i64,
    pub mentions: i64,
    pub last_message_id: Option<i64>,
    /// The newest message: author, a plain-text excerpt and when.
    pub last: Option<(String, String, i64)>,
}

/// A one-line plain-text excerpt of a Markdown body.
pub fn excerpt(body: &str, chars: usize) -> String {
    let flat: String = body
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .filter(|c| !matches!(c, '*' | '_' | '`' | '#' | '>'))
        .collect();
    if flat.chars().count() > chars {
        let mut s: String = flat.chars().take(chars).collect();
        s.push('…');
        s
    } else {
        flat
    }
}

/// Rooms the member belongs to, plus open rooms, with unread counts (for open rooms never
/// opened, from [`open_room_marker`]); newest activity first.
pub fn list_for(conn: &mut SqliteConnection, me: MemberId) -> QueryResult<Vec<Summary>> {
    let mine: Vec<(i64, i64)> = room_members::table
        .filter(room_members::member_id.eq(me.0))
        .select((room_members::room_id, room_members::last_read_id))
        .load(conn)?;
    let open: Vec<i64> = rooms::table
        .filter(rooms::kind.eq("group"))
        .filter(rooms::visibility.eq("open"))
        .select(rooms::id)
        .load(conn)?;
    let mut ids: Vec<i64> = mine.iter().map(|(r, _)| *r).collect();
    ids.extend(open.iter().filter(|r| !mine.iter().any(|(m, _)| m == *r)));
    let all: Vec<Room> = rooms::table
        .filter(rooms::id.eq_any(&ids))
        .select(Room::as_select())
        .load(conn)?;
    let mut out = Vec::with_capacity(all.len());
    // Mentions are stored as a JSON list of member ids: `[3,5]`.
    let mentions_me = diesel::dsl::sql::<diesel::sql_types::Bool>(
        "EXISTS (SELECT 1 FROM json_each(messages.mentions) WHERE json_each.value = ",
    )
    .bind::<diesel::sql_types::BigInt, _>(me.0)
    .sql(")");
    for r in all {
        let last_read = match mine.iter().find(|(id, _)| *id == r.id) {
            Some((_, l)) => *l,
            None => open_room_marker(conn, r.room_id(), me)?,
        };
        let unread_q = messages::table
            .filter(messages::room_id.eq(r.id))
            .filter(messages::id.gt(last_read))
            .filter(messages::deleted_at.is_null())
            .filter(
                messages::author_id
                    .ne(me.0)
                    .or(messages::author_id.is_null()),
            );
        let unread: i64 = unread_q.count().get_result(conn)?;
        let mentions: i64 = if unread > 0 {
            messages::table
                .filter(messages::room_id.eq(r.id))
                .filter(messages::id.gt(last_read))
                .filter(messages::deleted_at.is_null())
                .filter(messages::author_id.ne(me.0))
                .filter(messages::mentions_all.eq(true).or(mentions_me.clone()))
                .count()
                .get_result(conn)?
        } else {
            0
        };
        let title = if r.is_direct() {
            direct_title(conn, r.room_id(), me)?
        } else {
            r.name.clone()
        };
        let last = match r.last_message_id {
            Some(id) => messages::table
                .left_join(members::table.on(members::id.nullable().eq(messages::author_id)))
                .filter(messages::id.eq(id))
                .select((
                    members::display_name.nullable(),
                    messages::body,
                    messages::deleted_at,
                    messages::created_at,
                ))
                .first::<(Option<String>, String, Option<i64>, i64)>(conn)
                .optional()?
                .map(|(who, body, deleted, at)| {
                    let text = if deleted.is_some() {
                        "Nachricht gelöscht.".to_owned()
                    } else {
                        excerpt(&body, 80)
                    };
                    (
                        who.unwrap_or_else(|| "Ehemaliges Mitglied".into()),
                        text,
                        at,
                    )
                }),
            None => None,
        };
        out.push(Summary {
            last,
            id: r.room_id(),
            title,
            topic: r.topic.clone(),
            direct: r.is_direct(),
            private: r.visibility == "private",
            archived: r.archived,
            unread,
            mentions,
            last_message_id: r.last_message_id,
        });
    }
    out.sort_by(|a, b| {
        a.archived
            .cmp(&b.archived)
            .then(b.last_message_id.cmp(&a.last_message_id))
    });
    Ok(out)
}

/// The other person's name in a 1:1 conversation.
pub fn direct_title(
    conn: &mut SqliteConnection,
    room: RoomId,
    me: MemberId,
) -> QueryResult<String> {
    room_members::table
        .inner_join(members::table)
        .filter(room_members::room_id.eq(room.0))
        .filter(room_members::member_id.ne(me.0))
        .select(members::display_name)
        .first(conn)
        .optional()
        .map(|o| o.unwrap_or_else(|| "Unterhaltung".into()))
}

/// The name of the practice's general room.
pub const DEFAULT_ROOM_NAME: &str = "Allgemein";

/// Whether `m` was named a moderator of the room.
pub fn is_moderator(conn: &mut SqliteConnection, room: RoomId, m: MemberId) -> QueryResult<bool> {
    let n: i64 = room_members::table
        .filter(room_members::room_id.eq(room.0))
        .filter(room_members::member_id.eq(m.0))
        .filter(room_members::moderator.eq(true))
        .count()
        .get_result(conn)?;
    Ok(n > 0)
}

/// Whether `actor` may rename or archive the room and name its moderators: the room's
/// creator, its moderators and the practice's admins (never for 1:1 conversations).
pub fn may_manage(conn: &mut SqliteConnection, room: &Room, actor: Actor) -> QueryResult<bool> {
    if room.is_direct() {
        return Ok(false);
    }
    if actor.is_admin || room.created_by == Some(actor.id.0) {
        return Ok(true);
    }
    is_moderator(conn, room.room_id(), actor.id)
}

/// Whether `actor` may archive the room (or take it out of the archive): as
/// [`may_manage`], and the general room only for admins.
pub fn may_archive(conn: &mut SqliteConnection, room: &Room, actor: Actor) -> QueryResult<bool> {
    if room.is_default {
        return Ok(actor.is_admin);
    }
    may_manage(conn, room, actor)
}

/// Names `member` a moderator of the room or takes that back (for those who
/// [`may_manage`] it). In an open room, a member who never opened it joins it.
pub fn set_moderator(
    conn: &mut SqliteConnection,
    room: &Room,
    actor: Actor,
    member: MemberId,
    on: bool,
    now: UnixTime,
) -> Result<(), ChatError> {
    if !may_manage(conn, room, actor)? {
        return Err(ChatError::NotManager);
    }
    if !is_active(conn, member)? {
        return Err(ChatError::NotAllowed);
    }
    if !is_member(conn, room.room_id(), member)? {
        if !room.is_open() {
            return Err(ChatError::NotAllowed);
        }
        let marker = open_room_marker(conn, room.room_id(), member)?;
        join_with_marker(conn, room.room_id(), member, marker, now)?;
    }
    diesel::update(room_members::table.find((room.id, member.0)))
        .set(room_members::moderator.eq(on))
        .execute(conn)?;
    Ok(())
}

/// Changes name, topic and archive state (not for 1:1). Room members and admins may change
/// the topic; renaming and archiving are for those who [`may_manage`] the room, archiving
/// the general room for admins only.
pub fn update(
    conn: &mut SqliteConnection,
    room: &Room,
    actor: Actor,
    name: &str,
    topic: &str,
    archived: bool,
    now: UnixTime,
) -> Result<(), ChatError> {
    if room.is_direct() || !(actor.is_admin || is_member(conn, room.room_id(), actor.id)?) {
        return Err(ChatError::NotAllowed);
    }
    let name = check_name(name)?;
    let topic = check_topic(topic)?;
    if archived != room.archived && !may_archive(conn, room, actor)? {
        return Err(if room.is_default && may_manage(conn, room, actor)? {
            ChatError::DefaultRoom
        } else {
            ChatError::NotManager
        });
    }
    if name != room.name && !may_manage(conn, room, actor)? {
        return Err(ChatError::NotManager);
    }
    diesel::update(rooms::table.find(room.id))
        .set((
            rooms::name.eq(name),
            rooms::topic.eq(topic),
            rooms::archived.eq(archived),
            rooms::updated_at.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}

/// Adds or removes a member of a private group room.
pub fn set_membership(
    conn: &mut SqliteConnection,
    room: &Room,
    actor: Actor,
    member: MemberId,
    present: bool,
    now: UnixTime,
) -> Result<(), ChatError> {
    if room.is_direct() || !(actor.is_admin || is_member(conn, room.room_id(), actor.id)?) {
        return Err(ChatError::NotAllowed);
    }
    if present {
        if !is_active(conn, member)? {
            return Err(ChatError::NotAllowed);
        }
        join(conn, room.room_id(), member, now)?;
    } else {
        diesel::delete(room_members::table.find((room.id, member.0))).execute(conn)?;
    }
    Ok(())
}

/// The member's read marker in a room (0 if they never joined it).
pub fn last_read(conn: &mut SqliteConnection, room: RoomId, m: MemberId) -> QueryResult<i64> {
    room_members::table
        .find((room.0, m.0))
        .select(room_members::last_read_id)
        .first(conn)
        .optional()
        .map(Option::unwrap_or_default)
}

/// Ids of the room's moderators.
pub fn moderators(conn: &mut SqliteConnection, room: RoomId) -> QueryResult<Vec<i64>> {
    room_members::table
        .filter(room_members::room_id.eq(room.0))
        .filter(room_members::moderator.eq(true))
        .select(room_members::member_id)
        .load(conn)
}

/// Moves the member's read marker forward (never back).
pub fn mark_read(
    conn: &mut SqliteConnection,
    room: RoomId,
    member: MemberId,
    upto: MessageId,
) -> QueryResult<()> {
    // Prepared once per connection: it runs with every post (the author's own marker).
    Prepared::<MarkRead, 4>::new([upto.0, room.0, member.0, upto.0])
        .execute(conn)
        .map(|_| ())
}

struct MarkRead;
impl FixedSql for MarkRead {
    const SQL: &'static str = "UPDATE room_members SET last_read_id = ? \
         WHERE room_id = ? AND member_id = ? AND last_read_id < ?";
}
