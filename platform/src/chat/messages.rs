//! Messages: post, edit, delete, page through, react, receipts.

use std::collections::BTreeMap;

use diesel::prelude::*;
use kollegium_tenants::UnixTime;
use kollegium_tenants::prepared::{FixedSql, Prepared};

use super::rooms::{self, Room};
use super::{Actor, ChatError, MAX_MESSAGE_CHARS, MessageId, PAGE_SIZE, REACTIONS, RoomId};
use crate::markdown;
use crate::members::MemberId;
use crate::schema::{members, mention_notices, messages, reactions, room_members};

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = messages)]
pub struct Message {
    pub id: i64,
    pub room_id: i64,
    pub author_id: Option<i64>,
    pub body: String,
    pub reply_to: Option<i64>,
    /// The members it mentions, as a JSON list of member ids (`[3,12]`).
    pub mentions: String,
    pub mentions_all: bool,
    pub created_at: i64,
    pub edited_at: Option<i64>,
    pub deleted_at: Option<i64>,
}

impl Message {
    pub fn message_id(&self) -> MessageId {
        MessageId(self.id)
    }
    pub fn mentioned(&self) -> Vec<MemberId> {
        parse_mentions(&self.mentions)
    }
}

/// The stored mentions (a JSON list of member ids) as member ids. Only this module writes
/// the column, so anything else is a broken row: logged, and read as no mentions.
pub fn parse_mentions(stored: &str) -> Vec<MemberId> {
    match serde_json::from_str::<Vec<i64>>(stored) {
        Ok(ids) => ids.into_iter().map(MemberId).collect(),
        Err(e) => {
            tracing::error!(error = %e, "unreadable messages.mentions");
            Vec::new()
        }
    }
}

/// The stored form of `mentioned` (a JSON list of member ids).
pub fn store_mentions(mentioned: &[MemberId]) -> String {
    let ids: Vec<String> = mentioned.iter().map(|m| m.0.to_string()).collect();
    format!("[{}]", ids.join(","))
}

/// A validated message body.
pub fn check_body(body: &str) -> Result<String, ChatError> {
    let b = body.trim_end();
    let b = b.trim_start_matches(['\n', '\r']);
    if b.trim().is_empty() {
        return Err(ChatError::Empty);
    }
    if b.chars().count() > MAX_MESSAGE_CHARS {
        return Err(ChatError::TooLong);
    }
    Ok(b.replace('\0', ""))
}

/// `@name` tokens in a body (lowercased), and whether `@alle` was used.
pub fn mention_tokens(body: &str) -> (Vec<String>, bool) {
    let mut names = Vec::new();
    let mut all = false;
    let bytes: Vec<char> = body.chars().collect();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == '@' && (i == 0 || !bytes[i - 1].is_alphanumeric()) {
            let word: String = bytes[i + 1..]
                .iter()
                .take_while(|c| c.is_alphanumeric() || **c == '.' || **c == '-' || **c == '_')
                .collect();
            let word = word.trim_end_matches('.').to_lowercase();
            if word == "alle" || word == "all" {
                all = true;
            } else if !word.is_empty() {
                names.push(word);
            }
            i += 1;
        } else {
            i += 1;
        }
    }
    names.sort();
    names.dedup();
    (names, all)
}

/// Resolves mention names to members who can read the room.
fn resolve_mentions(
    conn: &mut SqliteConnection,
    room: &Room,
    names: &[String],
) -> QueryResult<Vec<MemberId>> {
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let audience = rooms::audience(conn, room)?;
    let found: Vec<(i64, String)> = members::table
        .filter(members::id.eq_any(audience.iter().map(|m| m.0)))
        .select((members::id, members::username))
        .load(conn)?;
    Ok(found
        .into_iter()
        .filter(|(_, u)| names.contains(&u.to_lowercase()))
        .map(|(id, _)| MemberId(id))
        .collect())
}

/// Posts a message. Returns it and the members it mentions (for notifications).
pub fn post(
    conn: &mut SqliteConnection,
    room: &Room,
    author: MemberId,
    body: &str,
    reply_to: Option<MessageId>,
    now: UnixTime,
) -> Result<(Message, Vec<MemberId>), ChatError> {
    if room.archived {
        return Err(ChatError::Archived);
    }
    let body = check_body(body)?;
    kollegium_tenants::db::write_transaction(conn, |conn| {
        if let Some(r) = reply_to {
            let target: Option<i64> = messages::table
                .find(r.0)
                .select(messages::room_id)
                .first(conn)
                .optional()?;
            if target != Some(room.id) {
                return Err(ChatError::ReplyElsewhere);
            }
        }
        let (mentioned, all, mention_json) = mentions_in(conn, room, author, &body)?;
        let msg: Message = diesel::insert_into(messages::table)
            .values((
                messages::room_id.eq(room.id),
                messages::author_id.eq(author.0),
                messages::body.eq(&body),
                messages::reply_to.eq(reply_to.map(|r| r.0)),
                messages::mentions.eq(&mention_json),
                messages::mentions_all.eq(all),
                messages::created_at.eq(now),
            ))
            .returning(Message::as_returning())
            .get_result(conn)?;
        Prepared::<TouchRoom, 3>::new([msg.id, now, room.id]).execute(conn)?;
        // The author has read their own message.
        rooms::mark_read(conn, room.room_id(), author, msg.message_id())?;
        queue_index(conn, msg.message_id(), now)?;
        let notify = notified(conn, room, author, &mentioned, all)?;
        queue_notices(conn, room, msg.message_id(), &notify, now)?;
        Ok((msg, notify))
    })
}

/// The members `body` mentions in `room` (never its author), whether it says `@alle`, and
/// the mentions as stored (JSON list of member ids).
fn mentions_in(
    conn: &mut SqliteConnection,
    room: &Room,
    author: MemberId,
    body: &str,
) -> QueryResult<(Vec<MemberId>, bool, String)> {
    let (names, all) = mention_tokens(body);
    let mut mentioned = resolve_mentions(conn, room, &names)?;
    mentioned.retain(|m| *m != author);
    let json = store_mentions(&mentioned);
    Ok((mentioned, all, json))
}

/// Who a message with these mentions notifies: the members it names, with `@alle` everyone
/// who can read the room; never its author.
fn notified(
    conn: &mut SqliteConnection,
    room: &Room,
    author: MemberId,
    mentioned: &[MemberId],
    all: bool,
) -> QueryResult<Vec<MemberId>> {
    let mut notify = mentioned.to_vec();
    if all {
        notify = rooms::audience(conn, room)?;
        notify.retain(|m| *m != author);
    }
    Ok(notify)
}

/// Queues a mention mail per member who wants them, after the member's delay.
fn queue_notices(
    conn: &mut SqliteConnection,
    room: &Room,
    message: MessageId,
    members_: &[MemberId],
    now: UnixTime,
) -> QueryResult<()> {
    for m in members_ {
        let (wants, delay): (bool, i64) = members::table
            .find(m.0)
            .select((members::mention_mail, members::mention_mail_delay_secs))
            .first(conn)?;
        if wants {
            let notice: i64 = diesel::insert_into(mention_notices::table)
                .values((
                    mention_notices::member_id.eq(m.0),
                    mention_notices::room_id.eq(room.id),
                    mention_notices::message_id.eq(message.0),
                    mention_notices::due_at.eq(now + delay),
                ))
                .returning(mention_notices::id)
                .get_result(conn)?;
            crate::notify::worker::enqueue(conn, notice, now + delay, now)?;
        }
    }
    Ok(())
}

fn queue_index(conn: &mut SqliteConnection, id: MessageId, now: UnixTime) -> QueryResult<()> {
    crate::search::queue::enqueue(conn, id.0, now)
}

/// A new message is the room's last (prepared once per connection: it runs with every post).
struct TouchRoom;
impl FixedSql for TouchRoom {
    const SQL: &'static str = "UPDATE rooms SET last_message_id = ?, updated_at = ? WHERE id = ?";
}

pub fn by_id(conn: &mut SqliteConnection, id: MessageId) -> QueryResult<Option<Message>> {
    messages::table
        .find(id.0)
        .select(Message::as_select())
        .first(conn)
        .optional()
}

/// Edits one's own message within the practice's edit window. Its mentions are resolved
/// anew: members it now names for the first time get their badge and mention mail, members
/// it no longer names get no mail for it.
pub fn edit(
    conn: &mut SqliteConnection,
    room: &Room,
    msg: &Message,
    actor: Actor,
    body: &str,
    window_secs: i64,
    now: UnixTime,
) -> Result<Message, ChatError> {
    if msg.deleted_at.is_some() {
        return Err(ChatError::MessageNotFound);
    }
    if msg.author_id != Some(actor.id.0) {
        return Err(ChatError::NotAuthor);
    }
    if now - msg.created_at > window_secs {
        return Err(ChatError::WindowClosed);
    }
    let body = check_body(body)?;
    let before = notified(conn, room, actor.id, &msg.mentioned(), msg.mentions_all)?;
    let (mentioned, all, mention_json) = mentions_in(conn, room, actor.id, &body)?;
    let after = notified(conn, room, actor.id, &mentioned, all)?;
    let updated = diesel::update(messages::table.find(msg.id))
        .set((
            messages::body.eq(&body),
            messages::edited_at.eq(now),
            messages::mentions.eq(&mention_json),
            messages::mentions_all.eq(all),
        ))
        .returning(Message::as_returning())
        .get_result(conn)?;
    let dropped: Vec<i64> = before
        .iter()
        .filter(|m| !after.contains(m))
        .map(|m| m.0)
        .collect();
    diesel::update(
        mention_notices::table
            .filter(mention_notices::message_id.eq(msg.id))
            .filter(mention_notices::member_id.eq_any(&dropped))
            .filter(mention_notices::done_at.is_null()),
    )
    .set(mention_notices::done_at.eq(now))
    .execute(conn)?;
    let added: Vec<MemberId> = after.into_iter().filter(|m| !before.contains(m)).collect();
    queue_notices(conn, room, msg.message_id(), &added, now)?;
    queue_index(conn, msg.message_id(), now)?;
    Ok(updated)
}

/// Deletes a message: the author within the window, or a practice admin at any time.
pub fn delete(
    conn: &mut SqliteConnection,
    msg: &Message,
    actor: Actor,
    window_secs: i64,
    now: UnixTime,
) -> Result<(), ChatError> {
    if msg.deleted_at.is_some() {
        return Err(ChatError::MessageNotFound);
    }
    let own = msg.author_id == Some(actor.id.0);
    if !actor.is_admin {
        if !own {
            return Err(ChatError::NotAuthor);
        }
        if now - msg.created_at > window_secs {
            return Err(ChatError::WindowClosed);
        }
    }
    diesel::update(messages::table.find(msg.id))
        .set((messages::body.eq(""), messages::deleted_at.eq(now)))
        .execute(conn)?;
    diesel::delete(reactions::table.filter(reactions::message_id.eq(msg.id))).execute(conn)?;
    diesel::update(
        mention_notices::table
            .filter(mention_notices::message_id.eq(msg.id))
            .filter(mention_notices::done_at.is_null()),
    )
    .set(mention_notices::done_at.eq(now))
    .execute(conn)?;
    queue_index(conn, msg.message_id(), now)?;
    Ok(())
}

/// Adds or removes a reaction.
pub fn react(
    conn: &mut SqliteConnection,
    msg: &Message,
    member: MemberId,
    emoji: &str,
    on: bool,
    now: UnixTime,
) -> Result<(), ChatError> {
    if !REACTIONS.contains(&emoji) {
        return Err(ChatError::UnknownReaction);
    }
    if msg.deleted_at.is_some() {
        return Err(ChatError::MessageNotFound);
    }
    if on {
        diesel::insert_into(reactions::table)
            .values((
                reactions::message_id.eq(msg.id),
                reactions::member_id.eq(member.0),
                reactions::emoji.eq(emoji),
                reactions::created_at.eq(now),
            ))
            .on_conflict_do_nothing()
            .execute(conn)?;
    } else {
        diesel::delete(reactions::table.find((msg.id, member.0, emoji))).execute(conn)?;
    }
    Ok(())
}

/// A message as shown to a reader.
#[derive(Debug, Clone, serde::Serialize)]
pub struct View {
    pub id: i64,
    pub room_id: i64,
    pub author_id: Option<i64>,
    pub author: String,
    pub html: String,
    pub body: String,
    pub created_at: i64,
    pub edited: bool,
    pub deleted: bool,
    pub reply_to: Option<i64>,
    pub reply_author: Option<String>,
    pub reply_excerpt: Option<String>,
    /// (emoji, count, mine)
    pub reactions: Vec<(String, i64, bool)>,
    pub mentions_me: bool,
}

/// The rows of `query` whose `column` is one of `ids` (`?` on errors). No query for no id;
/// one id is asked with `=` rather than `IN (…)`, because SQLite keeps that statement
/// prepared (diesel does not cache lists of varying length), and a single message is the
/// common case (a post, an edit, a reaction).
macro_rules! load_by_ids {
    ($conn:expr, $query:expr, $column:expr, $ids:expr) => {
        match $ids.as_slice() {
            [] => Vec::new(),
            [one] => $query.filter($column.eq(*one)).load($conn)?,
            many => $query.filter($column.eq_any(many)).load($conn)?,
        }
    };
}

/// Renders messages for `me`: Markdown to safe HTML, author names, reply quotes, reactions.
pub fn views(
    conn: &mut SqliteConnection,
    list: &[Message],
    me: MemberId,
) -> QueryResult<Vec<View>> {
    // Usernames only matter for highlighting `@name`: load them only if a body has an `@`.
    let usernames: Vec<String> = if list.iter().any(|m| m.body.contains('@')) {
        members::table
            .select(members::username)
            .load::<String>(conn)?
            .into_iter()
            .map(|u| u.to_lowercase())
            .collect()
    } else {
        Vec::new()
    };
    let is_mention = |w: &str| {
        let w = w.to_lowercase();
        w == "alle" || w == "all" || usernames.contains(&w)
    };
    let ids: Vec<i64> = list.iter().map(|m| m.id).collect();
    let reacts: Vec<(i64, i64, String)> = load_by_ids!(
        conn,
        reactions::table.order(reactions::created_at).select((
            reactions::message_id,
            reactions::member_id,
            reactions::emoji,
        )),
        reactions::message_id,
        &ids
    );
    let reply_ids: Vec<i64> = list.iter().filter_map(|m| m.reply_to).collect();
    let replies: Vec<(i64, Option<i64>, String, Option<i64>)> = load_by_ids!(
        conn,
        messages::table.select((
            messages::id,
            messages::author_id,
            messages::body,
            messages::deleted_at,
        )),
        messages::id,
        &reply_ids
    );
    let replies: BTreeMap<i64, (Option<i64>, String, Option<i64>)> = replies
        .into_iter()
        .map(|(id, a, b, d)| (id, (a, b, d)))
        .collect();
    // Display names of the authors and the quoted authors only.
    let mut people_ids: Vec<i64> = list
        .iter()
        .filter_map(|m| m.author_id)
        .chain(replies.values().filter_map(|(a, _, _)| *a))
        .collect();
    people_ids.sort_unstable();
    people_ids.dedup();
    let people: Vec<(i64, String)> = load_by_ids!(
        conn,
        members::table.select((members::id, members::display_name)),
        members::id,
        &people_ids
    );
    let people: BTreeMap<i64, String> = people.into_iter().collect();
    let name = |id: Option<i64>| {
        id.and_then(|i| people.get(&i))
            .map_or_else(|| "Ehemaliges Mitglied".to_owned(), Clone::clone)
    };
    Ok(list
        .iter()
        .map(|m| {
            let mut grouped: Vec<(String, i64, bool)> = Vec::new();
            for (_, who, emoji) in reacts.iter().filter(|(mid, _, _)| *mid == m.id) {
                match grouped.iter_mut().find(|(e, _, _)| e == emoji) {
                    Some(g) => {
                        g.1 += 1;
                        g.2 |= *who == me.0;
                    }
                    None => grouped.push((emoji.clone(), 1, *who == me.0)),
                }
            }
            let reply = m.reply_to.and_then(|r| replies.get(&r));
            View {
                id: m.id,
                room_id: m.room_id,
                author_id: m.author_id,
                author: name(m.author_id),
                html: if m.deleted_at.is_some() {
                    String::new()
                } else {
                    markdown::render(&m.body, &is_mention)
                },
                body: if m.deleted_at.is_some() {
                    String::new()
                } else {
                    m.body.clone()
                },
                created_at: m.created_at,
                edited: m.edited_at.is_some(),
                deleted: m.deleted_at.is_some(),
                reply_to: m.reply_to,
                reply_author: reply.map(|(a, _, _)| name(*a)),
                reply_excerpt: reply.map(|(_, b, d)| {
                    if d.is_some() {
                        "(gelöscht)".to_owned()
                    } else {
                        b.chars().take(140).collect()
                    }
                }),
                reactions: grouped,
                // As live (`LiveMessage::for_reader`): one's own message mentions nobody
                // to oneself, `@alle` included.
                mentions_me: m.author_id != Some(me.0)
                    && (m.mentions_all || m.mentioned().contains(&me)),
            }
        })
        .collect())
}

/// A page of messages, oldest first: the newest `PAGE_SIZE`, or those before `before`.
pub fn page(
    conn: &mut SqliteConnection,
    room: RoomId,
    before: Option<MessageId>,
) -> QueryResult<Vec<Message>> {
    let mut q = messages::table
        .filter(messages::room_id.eq(room.0))
        .into_boxed();
    if let Some(b) = before {
        q = q.filter(messages::id.lt(b.0));
    }
    let mut list: Vec<Message> = q
        .order(messages::id.desc())
        .limit(PAGE_SIZE)
        .select(Message::as_select())
        .load(conn)?;
    list.reverse();
    Ok(list)
}

/// Messages after `after` (catch-up after a reconnect), oldest first, at most `limit`.
pub fn since(
    conn: &mut SqliteConnection,
    room: RoomId,
    after: MessageId,
    limit: i64,
) -> QueryResult<Vec<Message>> {
    messages::table
        .filter(messages::room_id.eq(room.0))
        .filter(messages::id.gt(after.0))
        .order(messages::id.asc())
        .limit(limit)
        .select(Message::as_select())
        .load(conn)
}

/// Who has read a message ("Gelesen von …"): members whose marker passed it and who send
/// read receipts, without the author.
pub fn read_by(conn: &mut SqliteConnection, msg: &Message) -> QueryResult<Vec<String>> {
    room_members::table
        .inner_join(members::table)
        .filter(room_members::room_id.eq(msg.room_id))
        .filter(room_members::last_read_id.ge(msg.id))
        .filter(members::send_read_receipts.eq(true))
        .filter(members::id.nullable().ne(msg.author_id))
        .order(members::display_name)
        .select(members::display_name)
        .load(conn)
}
