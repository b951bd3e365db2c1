//! Chat's live events: what the chat publishes on the workspace's one live channel
//! ([`crate::live`]), addressed to the topic of a room (`Topic { app: "chat", id: room }`).
//!
//! An event carries its audience (the room's members, every member for open rooms) and is
//! rendered once per kind of reader (mentions and own reactions differ per reader), not once
//! per connection. Events are built by the handler that made the change, inside its
//! transaction's connection; rendering touches no database.

use diesel::prelude::*;

use super::messages::{self, Message, View};
use super::rooms::{self, Room};
use crate::members::MemberId;
use crate::schema::{members, reactions};

pub use crate::live::{Audience, Received, Subscription};
use crate::live::{Payload, Topic};

/// The app id chat publishes its topics under.
pub const APP: &str = "chat";

/// The live topic of a room.
pub fn topic(room: i64) -> Topic {
    Topic { app: APP, id: room }
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
}

#[derive(Debug, Clone)]
pub struct Event {
    pub room: i64,
    pub audience: Audience,
    pub kind: EventKind,
}

impl Event {
    /// Hands the event to the live channel, addressed to its room's topic.
    pub fn publish(self, hub: &crate::live::Hub, slug: &str) {
        hub.publish(slug, topic(self.room), self.audience, self.kind);
    }
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

/// One WebSocket frame, as the client reads it.
#[derive(serde::Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Frame<'a> {
    Message {
        room: i64,
        message: ApiMessage,
    },
    Edited {
        room: i64,
        message: ApiMessage,
    },
    Reactions {
        room: i64,
        message: ApiMessage,
    },
    Deleted {
        room: i64,
        message_id: i64,
    },
    Read {
        room: i64,
        member: i64,
        name: &'a Option<String>,
        upto: i64,
    },
    Room {
        room: i64,
    },
}

/// What a connection sends for an event, as JSON text; `None` if not for this reader.
pub fn render(ev: &Event, member: i64, session: i64) -> Option<String> {
    if !ev.audience.includes(member, session) {
        return None;
    }
    ev.kind.render(topic(ev.room), member)
}

impl Payload for EventKind {
    fn reader_key(&self, reader: i64) -> u64 {
        reader_key(self, reader)
    }

    fn render(&self, topic: Topic, member: i64) -> Option<String> {
        render_kind(self, topic.id, member)
    }
}

fn render_kind(kind: &EventKind, room: i64, member: i64) -> Option<String> {
    let frame = match kind {
        EventKind::Posted(m) => Frame::Message {
            room,
            message: m.for_reader(member).into(),
        },
        EventKind::Edited(m) => Frame::Edited {
            room,
            message: m.for_reader(member).into(),
        },
        EventKind::Reacted(m) => Frame::Reactions {
            room,
            message: m.for_reader(member).into(),
        },
        EventKind::Deleted { message } => Frame::Deleted {
            room,
            message_id: *message,
        },
        EventKind::Read {
            member: who,
            name,
            upto,
        } => Frame::Read {
            room,
            member: *who,
            name,
            upto: *upto,
        },
        EventKind::RoomChanged => Frame::Room { room },
    };
    serde_json::to_string(&frame).ok()
}

/// What makes two readers' renderings of an event differ: for message events whether it
/// mentions the reader and which reactions are the reader's own; nothing for the others.
fn reader_key(kind: &EventKind, reader: i64) -> u64 {
    let m = match kind {
        EventKind::Posted(m) | EventKind::Edited(m) | EventKind::Reacted(m) => m,
        _ => return 0,
    };
    let mentions_me =
        m.view.author_id != Some(reader) && (m.mentions_all || m.mentions.contains(&reader));
    let mut key = u64::from(mentions_me);
    for (i, (_, who)) in m.reactors.iter().enumerate().take(63) {
        if who.contains(&reader) {
            key |= 1 << (i + 1);
        }
    }
    key
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
    let reactors = reactors(conn, msg)?;
    with_reactors(conn, msg, reactors)
}

/// The event of a message just posted (`msg` as inserted: no reactions yet).
pub fn posted_event(conn: &mut SqliteConnection, room: &Room, msg: &Message) -> QueryResult<Event> {
    Ok(Event {
        room: room.id,
        audience: audience(conn, room)?,
        kind: EventKind::Posted(with_reactors(conn, msg, Vec::new())?),
    })
}

fn with_reactors(
    conn: &mut SqliteConnection,
    msg: &Message,
    reactors: Vec<(String, Vec<i64>)>,
) -> QueryResult<LiveMessage> {
    let view = messages::views(conn, std::slice::from_ref(msg), MemberId(0))?
        .pop()
        .ok_or(diesel::result::Error::NotFound)?;
    Ok(LiveMessage {
        view,
        mentions: msg.mentioned().into_iter().map(|m| m.0).collect(),
        mentions_all: msg.mentions_all,
        reactors,
    })
}

/// Who gave which reaction to `msg`: (emoji, members), in order of first use.
fn reactors(conn: &mut SqliteConnection, msg: &Message) -> QueryResult<Vec<(String, Vec<i64>)>> {
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
    Ok(reactors)
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
    }

    #[tokio::test]
    async fn chat_events_go_to_the_rooms_audience_rendered_once_per_kind_of_reader() {
        let hub = crate::live::Hub::default();
        let mut anna = hub.subscribe("praxis-a", 1, 10).unwrap();
        let mut anna_tab = hub.subscribe("praxis-a", 1, 10).unwrap();
        let mut bernd = hub.subscribe("praxis-a", 2, 20).unwrap();
        let mut carla = hub.subscribe("praxis-a", 3, 30).unwrap();
        posted(4, Audience::Members(vec![1, 2])).publish(&hub, "praxis-a");
        assert!(
            carla.try_recv().is_none(),
            "not queued to a non-member at all"
        );
        let (Some(Received::Event(p1)), Some(Received::Event(p2)), Some(Received::Event(p3))) =
            (anna.recv().await, anna_tab.recv().await, bernd.recv().await)
        else {
            panic!("members get the event");
        };
        assert_eq!(p1.topic, topic(4));
        assert!(
            std::sync::Arc::ptr_eq(&p1, &p3),
            "one event shared by all connections"
        );
        let (t1, t2) = (p1.text_for(1, 10).unwrap(), p2.text_for(1, 10).unwrap());
        assert_eq!(t1, t2);
        assert!(
            p3.text_for(3, 30).is_none(),
            "still refused to a non-member"
        );
        let t3 = p3.text_for(2, 20).unwrap();
        assert_ne!(t1, t3, "Bernd is mentioned, Anna reacted: different texts");
        assert_eq!(p1.renderings(), 2, "rendered once per kind of reader");
        let v: serde_json::Value = serde_json::from_str(&t3).unwrap();
        assert_eq!(v["type"], "message");
        assert_eq!(v["room"], 4);
        assert_eq!(v["message"]["mentions_me"], true);
    }
}
