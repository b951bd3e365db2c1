//! Live delivery: chat events fan out to the practice's open WebSocket connections.
//!
//! Each practice has one broadcast channel. An event carries its audience (the room's
//! members, every member for open rooms, or one session); each connection forwards only
//! the events whose audience includes its member, rendered for that member (mentions and
//! own reactions are per reader). Nothing here touches the database: events are built by
//! the handler that made the change, inside its transaction's connection.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use diesel::prelude::*;
use tokio::sync::broadcast;

use super::messages::{self, Message, View};
use super::rooms::{self, Room};
use crate::members::MemberId;
use crate::schema::{members, reactions};

/// Events buffered per practice before a slow connection is told to resynchronise.
const CHANNEL_CAPACITY: usize = 1024;

/// Who may receive an event.
#[derive(Debug, Clone)]
pub enum Audience {
    /// Every member of the practice (open rooms).
    Everyone,
    /// These members (private rooms and 1:1 conversations).
    Members(Vec<i64>),
    /// The connections of one platform session (control events such as logout).
    Session(i64),
}

impl Audience {
    pub fn includes(&self, member: i64, session: i64) -> bool {
        match self {
            Self::Everyone => true,
            Self::Members(ids) => ids.contains(&member),
            Self::Session(s) => *s == session,
        }
    }
}

/// A message as it goes out live: the reader-independent view plus what is needed to
/// render the reader-dependent parts.
#[derive(Debug, Clone)]
pub struct LiveMessage {
    pub view: View,
    pub mentions: Vec<i64>,
    pub mentions_all: bool,
    /// (emoji, members who gave it), in order of first use.
    pub reactors: Vec<(String, Vec<i64>)>,
}

impl LiveMessage {
    /// The message as `reader` sees it.
    pub fn for_reader(&self, reader: i64) -> View {
        let mut v = self.view.clone();
        v.mentions_me =
            v.author_id != Some(reader) && (self.mentions_all || self.mentions.contains(&reader));
        v.reactions = self
            .reactors
            .iter()
            .map(|(e, who)| (e.clone(), who.len() as i64, who.contains(&reader)))
            .collect();
        v
    }
}

#[derive(Debug, Clone)]
pub enum EventKind {
    /// A new message.
    Posted(LiveMessage),
    /// A message's text changed.
    Edited(LiveMessage),
    /// A message was deleted.
    Deleted { message: i64 },
    /// A message's reactions changed.
    Reacted(LiveMessage),
    /// A member read up to a message (to the room with the name if they send read
    /// receipts, else only to the member's own connections).
    Read {
        member: i64,
        name: Option<String>,
        upto: i64,
    },
    /// Name, topic, archive state or members changed: readers reload the room's details.
    RoomChanged,
    /// The session ended (logout): its connections close.
    SessionEnded,
}

#[derive(Debug, Clone)]
pub struct Event {
    pub room: i64,
    pub audience: Audience,
    pub kind: EventKind,
}

/// A reaction as sent to a reader.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ApiReaction {
    pub emoji: String,
    pub count: i64,
    pub mine: bool,
}

/// A message as the JSON API and the WebSocket send it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ApiMessage {
    pub id: i64,
    pub room_id: i64,
    pub author_id: Option<i64>,
    pub author: String,
    /// Safe HTML rendered from the Markdown body (empty when deleted).
    pub html: String,
    /// The Markdown source (empty when deleted).
    pub body: String,
    pub created_at: i64,
    pub edited: bool,
    pub deleted: bool,
    pub reply_to: Option<i64>,
    pub reply_author: Option<String>,
    pub reply_excerpt: Option<String>,
    pub reactions: Vec<ApiReaction>,
    pub mentions_me: bool,
}

impl From<View> for ApiMessage {
    fn from(v: View) -> Self {
        Self {
            id: v.id,
            room_id: v.room_id,
            author_id: v.author_id,
            author: v.author,
            html: v.html,
            body: v.body,
            created_at: v.created_at,
            edited: v.edited,
            deleted: v.deleted,
            reply_to: v.reply_to,
            reply_author: v.reply_author,
            reply_excerpt: v.reply_excerpt,
            reactions: v
                .reactions
                .into_iter()
                .map(|(emoji, count, mine)| ApiReaction { emoji, count, mine })
                .collect(),
            mentions_me: v.mentions_me,
        }
    }
}

/// What a connection sends for an event, as JSON text; `None` if not for this reader.
pub fn render(ev: &Event, member: i64, session: i64) -> Option<String> {
    if !ev.audience.includes(member, session) {
        return None;
    }
    let v = match &ev.kind {
        EventKind::Posted(m) => serde_json::json!({
            "type": "message", "room": ev.room,
            "message": ApiMessage::from(m.for_reader(member)),
        }),
        EventKind::Edited(m) => serde_json::json!({
            "type": "edited", "room": ev.room,
            "message": ApiMessage::from(m.for_reader(member)),
        }),
        EventKind::Reacted(m) => serde_json::json!({
            "type": "reactions", "room": ev.room,
            "message": ApiMessage::from(m.for_reader(member)),
        }),
        EventKind::Deleted { message } => serde_json::json!({
            "type": "deleted", "room": ev.room, "message_id": message,
        }),
        EventKind::Read {
            member: who,
            name,
            upto,
        } => serde_json::json!({
            "type": "read", "room": ev.room, "member": who, "name": name, "upto": upto,
        }),
        EventKind::RoomChanged => serde_json::json!({"type": "room", "room": ev.room}),
        EventKind::SessionEnded => serde_json::json!({"type": "session_ended"}),
    };
    Some(v.to_string())
}

/// Who receives events of `room`.
pub fn audience(conn: &mut SqliteConnection, room: &Room) -> QueryResult<Audience> {
    if room.is_open() {
        return Ok(Audience::Everyone);
    }
    Ok(Audience::Members(
        rooms::audience(conn, room)?
            .into_iter()
            .map(|m| m.0)
            .collect(),
    ))
}

/// The live form of a message, read back from the database.
pub fn live_message(conn: &mut SqliteConnection, msg: &Message) -> QueryResult<LiveMessage> {
    let view = messages::views(conn, std::slice::from_ref(msg), MemberId(0))?
        .pop()
        .ok_or(diesel::result::Error::NotFound)?;
    let rows: Vec<(i64, String)> = reactions::table
        .filter(reactions::message_id.eq(msg.id))
        .order(reactions::created_at)
        .select((reactions::member_id, reactions::emoji))
        .load(conn)?;
    let mut reactors: Vec<(String, Vec<i64>)> = Vec::new();
    for (who, emoji) in rows {
        match reactors.iter_mut().find(|(e, _)| *e == emoji) {
            Some((_, ids)) => ids.push(who),
            None => reactors.push((emoji, vec![who])),
        }
    }
    Ok(LiveMessage {
        view,
        mentions: msg.mentioned().into_iter().map(|m| m.0).collect(),
        mentions_all: msg.mentions_all,
        reactors,
    })
}

/// An event about message `id` of `room` (re-read after the change).
pub fn message_event(
    conn: &mut SqliteConnection,
    room: &Room,
    id: super::MessageId,
    make: fn(LiveMessage) -> EventKind,
) -> QueryResult<Event> {
    let msg = messages::by_id(conn, id)?.ok_or(diesel::result::Error::NotFound)?;
    let kind = if msg.deleted_at.is_some() {
        EventKind::Deleted { message: msg.id }
    } else {
        make(live_message(conn, &msg)?)
    };
    Ok(Event {
        room: room.id,
        audience: audience(conn, room)?,
        kind,
    })
}

/// A read-marker event. With read receipts on, it goes to the room with the reader's
/// name ("Gelesen von …"); with them off, only to the reader's own connections (their
/// other tabs clear their unread badges), so nobody else learns who read how far.
pub fn read_event(
    conn: &mut SqliteConnection,
    room: &Room,
    member: MemberId,
    upto: super::MessageId,
) -> QueryResult<Event> {
    let (name, receipts): (String, bool) = members::table
        .find(member.0)
        .select((members::display_name, members::send_read_receipts))
        .first(conn)?;
    let (audience, name) = if receipts {
        (audience(conn, room)?, Some(name))
    } else {
        (Audience::Members(vec![member.0]), None)
    };
    Ok(Event {
        room: room.id,
        audience,
        kind: EventKind::Read {
            member: member.0,
            name,
            upto: upto.0,
        },
    })
}

/// An event telling a room's readers (before and after a change) to reload its details.
pub fn room_event(room: &Room, before: &Audience, after: &Audience) -> Event {
    let audience = match (before, after) {
        (Audience::Members(a), Audience::Members(b)) => {
            let mut all = a.clone();
            all.extend(b.iter().filter(|x| !a.contains(x)));
            Audience::Members(all)
        }
        _ => Audience::Everyone,
    };
    Event {
        room: room.id,
        audience,
        kind: EventKind::RoomChanged,
    }
}

/// The per-practice broadcast channels.
#[derive(Default)]
pub struct Hub {
    channels: Mutex<HashMap<String, broadcast::Sender<Arc<Event>>>>,
}

impl Hub {
    /// A receiver of the practice's events (from now on).
    pub fn subscribe(&self, slug: &str) -> Option<broadcast::Receiver<Arc<Event>>> {
        let mut map = self.channels.lock().ok()?;
        let tx = map
            .entry(slug.to_owned())
            .or_insert_with(|| broadcast::channel(CHANNEL_CAPACITY).0);
        Some(tx.subscribe())
    }

    /// Sends an event to the practice's connections (none listening: dropped).
    pub fn publish(&self, slug: &str, ev: Event) {
        let Ok(mut map) = self.channels.lock() else {
            return;
        };
        if let Some(tx) = map.get(slug) {
            if tx.receiver_count() == 0 {
                map.remove(slug);
            } else {
                let _ = tx.send(Arc::new(ev));
            }
        }
    }

    /// Open connections across all practices.
    pub fn connections(&self) -> usize {
        self.channels
            .lock()
            .map(|m| m.values().map(broadcast::Sender::receiver_count).sum())
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn posted(room: i64, audience: Audience) -> Event {
        let view = View {
            id: 7,
            room_id: room,
            author_id: Some(1),
            author: "Anna".into(),
            html: "<p>hi @bernd</p>".into(),
            body: "hi @bernd".into(),
            created_at: 0,
            edited: false,
            deleted: false,
            reply_to: None,
            reply_author: None,
            reply_excerpt: None,
            reactions: Vec::new(),
            mentions_me: false,
        };
        Event {
            room,
            audience,
            kind: EventKind::Posted(LiveMessage {
                view,
                mentions: vec![2],
                mentions_all: false,
                reactors: vec![("👍".into(), vec![1, 3])],
            }),
        }
    }

    #[test]
    fn events_reach_only_their_audience_rendered_per_reader() {
        let ev = posted(4, Audience::Members(vec![1, 2]));
        assert!(render(&ev, 3, 30).is_none(), "not a member of the room");
        let bernd: serde_json::Value = serde_json::from_str(&render(&ev, 2, 20).unwrap()).unwrap();
        assert_eq!(bernd["message"]["mentions_me"], true);
        assert_eq!(bernd["message"]["reactions"][0]["count"], 2);
        assert_eq!(bernd["message"]["reactions"][0]["mine"], false);
        let anna: serde_json::Value = serde_json::from_str(&render(&ev, 1, 10).unwrap()).unwrap();
        assert_eq!(anna["message"]["mentions_me"], false);
        assert_eq!(anna["message"]["reactions"][0]["mine"], true);
        let open = posted(5, Audience::Everyone);
        assert!(render(&open, 3, 30).is_some());
        let end = Event {
            room: 0,
            audience: Audience::Session(20),
            kind: EventKind::SessionEnded,
        };
        assert!(render(&end, 2, 21).is_none());
        assert!(render(&end, 2, 20).is_some());
    }

    #[tokio::test]
    async fn the_hub_delivers_per_practice_and_forgets_idle_channels() {
        let hub = Hub::default();
        let mut a = hub.subscribe("praxis-a").unwrap();
        let mut b = hub.subscribe("praxis-b").unwrap();
        hub.publish("praxis-a", posted(1, Audience::Everyone));
        assert_eq!(a.recv().await.map(|e| e.room).ok(), Some(1));
        assert!(b.try_recv().is_err(), "practice B hears nothing of A");
        assert_eq!(hub.connections(), 2);
        drop(a);
        hub.publish("praxis-a", posted(1, Audience::Everyone));
        assert_eq!(hub.connections(), 1);
    }
}
