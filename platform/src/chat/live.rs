//! Live delivery: chat events fan out to the practice's open WebSocket connections.
//!
//! The hub keeps each practice's open connections by member. An event carries its
//! audience (the room's members, every member for open rooms, or one session) and is
//! queued only to the connections of that audience; it is rendered once per kind of reader
//! (mentions and own reactions differ per reader), not once per connection. Nothing here
//! touches the database: events are built by the handler that made the change, inside its
//! transaction's connection.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use bytestring::ByteString;
use diesel::prelude::*;
use tokio::sync::mpsc;

use super::messages::{self, Message, View};
use super::rooms::{self, Room};
use crate::members::MemberId;
use crate::schema::{members, reactions};

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
    SessionEnded,
}

/// What a connection sends for an event, as JSON text; `None` if not for this reader.
pub fn render(ev: &Event, member: i64, session: i64) -> Option<String> {
    if !ev.audience.includes(member, session) {
        return None;
    }
    let room = ev.room;
    let frame = match &ev.kind {
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
        EventKind::SessionEnded => Frame::SessionEnded,
    };
    serde_json::to_string(&frame).ok()
}

/// What makes two readers' renderings of an event differ: for message events whether it
/// mentions the reader and which reactions are the reader's own; nothing for the others.
fn reader_key(ev: &Event, reader: i64) -> u64 {
    let m = match &ev.kind {
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

/// An event as the hub hands it to connections: rendered once per kind of reader (most
/// events read the same for every member of the room), not once per connection.
#[derive(Debug)]
pub struct Published {
    pub event: Event,
    rendered: Mutex<Vec<(u64, ByteString)>>,
}

impl Published {
    pub fn new(event: Event) -> Self {
        Self {
            event,
            rendered: Mutex::new(Vec::new()),
        }
    }

    /// The frame for this reader, or `None` if the event is not for them.
    pub fn text_for(&self, member: i64, session: i64) -> Option<ByteString> {
        if !self.event.audience.includes(member, session) {
            return None;
        }
        let key = reader_key(&self.event, member);
        let mut cache = self.rendered.lock().ok()?;
        if let Some((_, text)) = cache.iter().find(|(k, _)| *k == key) {
            return Some(text.clone());
        }
        let text = ByteString::from(render(&self.event, member, session)?);
        cache.push((key, text.clone()));
        Some(text)
    }
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

/// Events queued per connection before a slow one is told to resynchronise.
const QUEUE_CAPACITY: usize = 1024;

/// A connection as the hub knows it.
struct Conn {
    id: u64,
    session: i64,
    tx: mpsc::Sender<Arc<Published>>,
    lagged: Arc<AtomicBool>,
}

/// The open connections of one practice, by member.
#[derive(Default)]
struct Practice {
    by_member: HashMap<i64, Vec<Conn>>,
    count: usize,
}

impl Practice {
    fn deliver(&self, conn: &Conn, ev: &Arc<Published>) {
        if let Err(mpsc::error::TrySendError::Full(_)) = conn.tx.try_send(Arc::clone(ev)) {
            // The connection's queue is full: it drops this event and resynchronises.
            conn.lagged.store(true, Ordering::Relaxed);
        }
    }

    fn publish(&self, ev: &Arc<Published>) {
        match &ev.event.audience {
            Audience::Everyone => {
                for c in self.by_member.values().flatten() {
                    self.deliver(c, ev);
                }
            }
            Audience::Members(ids) => {
                for id in ids {
                    for c in self.by_member.get(id).into_iter().flatten() {
                        self.deliver(c, ev);
                    }
                }
            }
            Audience::Session(s) => {
                for c in self
                    .by_member
                    .values()
                    .flatten()
                    .filter(|c| c.session == *s)
                {
                    self.deliver(c, ev);
                }
            }
        }
    }
}

type Practices = Arc<RwLock<HashMap<String, Practice>>>;

/// The live connections of every practice. An event is queued only to the connections of
/// its audience, so a post to a room of 20 wakes 20 connections, not every connection of
/// the practice.
#[derive(Default)]
pub struct Hub {
    practices: Practices,
    next_id: AtomicU64,
}

/// What a connection receives next.
#[derive(Debug)]
pub enum Received {
    Event(Arc<Published>),
    /// Events were dropped because the connection was too slow: the client catches up.
    Lagged,
}

/// One connection's queue of events; leaves the hub when dropped.
pub struct Subscription {
    rx: mpsc::Receiver<Arc<Published>>,
    lagged: Arc<AtomicBool>,
    held: Option<Arc<Published>>,
    practices: Practices,
    slug: String,
    member: i64,
    id: u64,
}

impl Subscription {
    /// The next event for this connection (`None` once the hub is gone).
    pub async fn recv(&mut self) -> Option<Received> {
        if let Some(ev) = self.held.take() {
            return Some(Received::Event(ev));
        }
        let ev = self.rx.recv().await?;
        if self.lagged.swap(false, Ordering::Relaxed) {
            // Events after the ones still queued were dropped: tell the client first.
            self.held = Some(ev);
            return Some(Received::Lagged);
        }
        Some(Received::Event(ev))
    }

    /// The next event if one is queued already (never waits).
    pub fn try_recv(&mut self) -> Option<Received> {
        if let Some(ev) = self.held.take() {
            return Some(Received::Event(ev));
        }
        let ev = self.rx.try_recv().ok()?;
        if self.lagged.swap(false, Ordering::Relaxed) {
            self.held = Some(ev);
            return Some(Received::Lagged);
        }
        Some(Received::Event(ev))
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let Ok(mut map) = self.practices.write() else {
            return;
        };
        let Some(p) = map.get_mut(&self.slug) else {
            return;
        };
        if let Some(list) = p.by_member.get_mut(&self.member) {
            let before = list.len();
            list.retain(|c| c.id != self.id);
            p.count -= before - list.len();
            if list.is_empty() {
                p.by_member.remove(&self.member);
            }
        }
        if p.count == 0 {
            map.remove(&self.slug);
        }
    }
}

impl Hub {
    /// A queue of the practice's events for `member`'s connection of `session` (from now on).
    pub fn subscribe(&self, slug: &str, member: i64, session: i64) -> Option<Subscription> {
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        let lagged = Arc::new(AtomicBool::new(false));
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut map = self.practices.write().ok()?;
        let p = map.entry(slug.to_owned()).or_default();
        p.by_member.entry(member).or_default().push(Conn {
            id,
            session,
            tx,
            lagged: Arc::clone(&lagged),
        });
        p.count += 1;
        Some(Subscription {
            rx,
            lagged,
            held: None,
            practices: Arc::clone(&self.practices),
            slug: slug.to_owned(),
            member,
            id,
        })
    }

    /// Queues an event to its audience's connections (none listening: dropped).
    pub fn publish(&self, slug: &str, ev: Event) {
        let Ok(map) = self.practices.read() else {
            return;
        };
        if let Some(p) = map.get(slug) {
            p.publish(&Arc::new(Published::new(ev)));
        }
    }

    /// Open connections across all practices.
    pub fn connections(&self) -> usize {
        self.practices
            .read()
            .map(|m| m.values().map(|p| p.count).sum())
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

    fn room_of(ev: Option<Received>) -> Option<i64> {
        match ev {
            Some(Received::Event(p)) => Some(p.event.room),
            _ => None,
        }
    }

    #[tokio::test]
    async fn the_hub_delivers_per_practice_and_forgets_idle_practices() {
        let hub = Hub::default();
        let mut a = hub.subscribe("praxis-a", 1, 10).unwrap();
        let mut b = hub.subscribe("praxis-b", 1, 11).unwrap();
        hub.publish("praxis-a", posted(1, Audience::Everyone));
        assert_eq!(room_of(a.recv().await), Some(1));
        assert!(b.rx.try_recv().is_err(), "practice B hears nothing of A");
        assert_eq!(hub.connections(), 2);
        drop(a);
        assert_eq!(hub.connections(), 1);
        assert!(!hub.practices.read().unwrap().contains_key("praxis-a"));
        hub.publish("praxis-a", posted(1, Audience::Everyone));
        assert_eq!(hub.connections(), 1);
    }

    #[tokio::test]
    async fn events_are_queued_only_to_their_audience_and_rendered_once_per_kind_of_reader() {
        let hub = Hub::default();
        let mut anna = hub.subscribe("praxis-a", 1, 10).unwrap();
        let mut anna_tab = hub.subscribe("praxis-a", 1, 10).unwrap();
        let mut bernd = hub.subscribe("praxis-a", 2, 20).unwrap();
        let mut carla = hub.subscribe("praxis-a", 3, 30).unwrap();
        hub.publish("praxis-a", posted(4, Audience::Members(vec![1, 2])));
        assert!(
            carla.rx.try_recv().is_err(),
            "not queued to a non-member at all"
        );
        let (Some(Received::Event(p1)), Some(Received::Event(p2)), Some(Received::Event(p3))) =
            (anna.recv().await, anna_tab.recv().await, bernd.recv().await)
        else {
            panic!("members get the event");
        };
        assert!(Arc::ptr_eq(&p1, &p3), "one event shared by all connections");
        let (t1, t2) = (p1.text_for(1, 10).unwrap(), p2.text_for(1, 10).unwrap());
        assert_eq!(t1, t2);
        assert!(
            p3.text_for(3, 30).is_none(),
            "still refused to a non-member"
        );
        let t3 = p3.text_for(2, 20).unwrap();
        assert_ne!(t1, t3, "Bernd is mentioned, Anna reacted: different texts");
        assert_eq!(
            p1.rendered.lock().unwrap().len(),
            2,
            "rendered once per kind of reader"
        );
        let v: serde_json::Value = serde_json::from_str(&t3).unwrap();
        assert_eq!(v["type"], "message");
        assert_eq!(v["message"]["mentions_me"], true);
        hub.publish(
            "praxis-a",
            Event {
                room: 0,
                audience: Audience::Session(30),
                kind: EventKind::SessionEnded,
            },
        );
        assert_eq!(room_of(carla.recv().await), Some(0));
        assert!(
            bernd.rx.try_recv().is_err(),
            "another session's control event"
        );
    }

    #[tokio::test]
    async fn a_connection_that_falls_behind_is_told_to_resynchronise() {
        let hub = Hub::default();
        let mut slow = hub.subscribe("praxis-a", 1, 10).unwrap();
        for _ in 0..QUEUE_CAPACITY + 5 {
            hub.publish("praxis-a", posted(1, Audience::Everyone));
        }
        assert!(matches!(slow.recv().await, Some(Received::Lagged)));
        let mut n = 0;
        while let Ok(Some(Received::Event(_))) =
            tokio::time::timeout(std::time::Duration::from_millis(50), slow.recv()).await
        {
            n += 1;
        }
        assert_eq!(
            n, QUEUE_CAPACITY,
            "the queued events follow, the dropped ones do not"
        );
        hub.publish("praxis-a", posted(2, Audience::Everyone));
        assert_eq!(room_of(slow.recv().await), Some(2), "back to normal");
    }

    #[tokio::test]
    async fn queued_events_are_taken_without_waiting_in_order_with_the_resync_first() {
        let hub = Hub::default();
        let mut c = hub.subscribe("praxis-a", 1, 10).unwrap();
        assert!(c.try_recv().is_none(), "nothing queued: no wait, nothing");
        for room in [1, 2, 3] {
            hub.publish("praxis-a", posted(room, Audience::Everyone));
        }
        let rooms: Vec<_> = std::iter::from_fn(|| c.try_recv())
            .map(|r| room_of(Some(r)))
            .collect();
        assert_eq!(rooms, [Some(1), Some(2), Some(3)]);
        for _ in 0..QUEUE_CAPACITY + 1 {
            hub.publish("praxis-a", posted(4, Audience::Everyone));
        }
        assert!(matches!(c.try_recv(), Some(Received::Lagged)));
        let n = std::iter::from_fn(|| c.try_recv()).count();
        assert_eq!(n, QUEUE_CAPACITY, "then the queued events, none twice");
    }
}
