//! Chat changes as the web layer performs them (pages, JSON API, WebSocket): each checks
//! that the acting member may read the room, makes the change, and returns the live
//! events to publish once it is committed.

use diesel::prelude::*;
use kollegium_tenants::UnixTime;

use super::live::{self, Event, EventKind};
use super::messages::{self, Message};
use super::rooms::{self, Room};
use super::{Actor, ChatError, MessageId, RoomId};
use crate::members::MemberId;

/// What a message action changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageAction<'a> {
    Edit(&'a str),
    Delete,
    React { emoji: &'a str, on: bool },
}

/// The message `id` of `room`, which `who` may read.
fn message_in(
    conn: &mut SqliteConnection,
    room: &Room,
    id: MessageId,
) -> Result<Message, ChatError> {
    messages::by_id(conn, id)?
        .filter(|m| m.room_id == room.id)
        .ok_or(ChatError::MessageNotFound)
}

/// Posts a message; returns it with the events (the message, and the author's read marker).
pub fn post(
    conn: &mut SqliteConnection,
    room_id: RoomId,
    author: MemberId,
    body: &str,
    reply_to: Option<MessageId>,
    now: UnixTime,
) -> Result<(Message, Vec<Event>), ChatError> {
    let room = rooms::readable(conn, room_id, author, now)?;
    let (msg, _) = messages::post(conn, &room, author, body, reply_to, now)?;
    let ev = live::posted_event(conn, &room, &msg)?;
    Ok((msg, vec![ev]))
}

/// Edits, deletes or reacts to a message.
pub fn on_message(
    conn: &mut SqliteConnection,
    room_id: RoomId,
    id: MessageId,
    who: Actor,
    action: MessageAction<'_>,
    edit_window: i64,
    now: UnixTime,
) -> Result<(Message, Vec<Event>), ChatError> {
    let room = rooms::readable(conn, room_id, who.id, now)?;
    // An archived room is read-only; only an admin may still delete (moderation).
    if room.archived && !(who.is_admin && matches!(action, MessageAction::Delete)) {
        return Err(ChatError::Archived);
    }
    let msg = message_in(conn, &room, id)?;
    let make: fn(live::LiveMessage) -> EventKind = match action {
        MessageAction::Edit(body) => {
            messages::edit(conn, &room, &msg, who, body, edit_window, now)?;
            EventKind::Edited
        }
        MessageAction::Delete => {
            messages::delete(conn, &msg, who, edit_window, now)?;
            EventKind::Edited
        }
        MessageAction::React { emoji, on } => {
            messages::react(conn, &msg, who.id, emoji, on, now)?;
            EventKind::Reacted
        }
    };
    let ev = live::message_event(conn, &room, id, make)?;
    let msg = messages::by_id(conn, id)?.ok_or(ChatError::MessageNotFound)?;
    Ok((msg, vec![ev]))
}

/// Moves the member's read marker (never back) and announces it.
pub fn mark_read(
    conn: &mut SqliteConnection,
    room_id: RoomId,
    member: MemberId,
    upto: MessageId,
    now: UnixTime,
) -> Result<Vec<Event>, ChatError> {
    let room = rooms::readable(conn, room_id, member, now)?;
    // Only up to the newest message of this room: a marker past it would hide later ones.
    let newest = room.last_message_id.unwrap_or(0);
    let upto = MessageId(upto.0.min(newest));
    if upto.0 <= 0 {
        return Ok(Vec::new());
    }
    rooms::mark_read(conn, room.room_id(), member, upto)?;
    Ok(vec![live::read_event(conn, &room, member, upto)?])
}

/// Name, topic and archive state (and optionally one member added or removed).
pub fn update_room(
    conn: &mut SqliteConnection,
    room_id: RoomId,
    who: Actor,
    change: RoomChange<'_>,
    now: UnixTime,
) -> Result<Vec<Event>, ChatError> {
    conn.transaction(|conn| {
        let room = rooms::readable(conn, room_id, who.id, now)?;
        let before = live::audience(conn, &room)?;
        if let Some((name, topic, archived)) = change.details {
            rooms::update(conn, &room, who, name, topic, archived, now)?;
        }
        for (m, present) in change.members {
            if room.is_open() {
                return Err(ChatError::NotAllowed);
            }
            rooms::set_membership(conn, &room, who, *m, *present, now)?;
        }
        let room = rooms::by_id(conn, room_id)?.ok_or(ChatError::RoomNotFound)?;
        let after = live::audience(conn, &room)?;
        Ok(vec![live::room_event(&room, &before, &after)])
    })
}

/// Names a moderator of a room or takes that back.
pub fn set_moderator(
    conn: &mut SqliteConnection,
    room_id: RoomId,
    who: Actor,
    member: MemberId,
    on: bool,
    now: UnixTime,
) -> Result<Vec<Event>, ChatError> {
    conn.transaction(|conn| {
        let room = rooms::readable(conn, room_id, who.id, now)?;
        let before = live::audience(conn, &room)?;
        rooms::set_moderator(conn, &room, who, member, on, now)?;
        let after = live::audience(conn, &room)?;
        Ok(vec![live::room_event(&room, &before, &after)])
    })
}

/// A change of room settings.
#[derive(Debug, Default)]
pub struct RoomChange<'a> {
    /// New name, topic and archive flag.
    pub details: Option<(&'a str, &'a str, bool)>,
    /// Members to add (`true`) or remove (`false`).
    pub members: &'a [(MemberId, bool)],
}
