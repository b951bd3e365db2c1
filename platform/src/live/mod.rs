//! The one live channel of the workspace: every app's events reach the page over the one
//! WebSocket it holds.
//!
//! The hub keeps each practice's open connections by member. An app publishes an event
//! addressed by a [`Topic`] (its app id and an id of its own: a room, later a board or a
//! folder) to an [`Audience`] the app computed, with a [`Payload`] that knows how to render
//! itself. The event is queued only to the connections of that audience, each with a bounded
//! queue (a full one drops the event and tells the client to resynchronise), and rendered
//! once per kind of reader ([`Payload::reader_key`]), not once per connection. Nothing here
//! touches the database or knows an app's event kinds.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use bytestring::ByteString;
use kollegium_tenants::web::assets::Source;
use tokio::sync::mpsc;

/// The channel's script on every workspace page: it owns the page's one WebSocket, hands
/// the events to the apps' scripts and keeps the shell's live counts.
pub const SCRIPT: &str = "live.js";

/// The channel's static assets.
pub const ASSETS: &[Source] = &[Source {
    name: SCRIPT,
    content_type: "text/javascript; charset=utf-8",
    body: include_bytes!("../../../templates/static/live.js"),
}];

/// What an event is about: the publishing app and an id of that app's (room, board, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Topic {
    /// The app's id ([`crate::app::WorkspaceApp::id`]), or [`CONTROL`] for the channel's own.
    pub app: &'static str,
    pub id: i64,
}

/// The topic of the channel's own control events (a session ended).
pub const CONTROL: &str = "live";

/// Who may receive an event.
#[derive(Debug, Clone)]
pub enum Audience {
    /// Every member of the practice.
    Everyone,
    /// These members.
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

/// An app's event as the channel carries it: the app decides how it reads for a reader.
pub trait Payload: Send + Sync + 'static {
    /// What makes two readers' renderings differ; readers with the same key get the same
    /// text. `0` for events that read alike for everyone.
    fn reader_key(&self, _reader: i64) -> u64 {
        0
    }

    /// The frame `reader` receives, as JSON text (`None`: nothing for this reader).
    fn render(&self, topic: Topic, reader: i64) -> Option<String>;

    /// Whether a connection of the audience closes on this event (its session ended).
    fn ends_session(&self) -> bool {
        false
    }
}

/// The channel's own event: the session ended (logout), its connections close.
#[derive(Debug, Clone, Copy)]
pub struct SessionEnded;

impl Payload for SessionEnded {
    fn render(&self, _: Topic, _: i64) -> Option<String> {
        Some(r#"{"type":"session_ended"}"#.to_owned())
    }

    fn ends_session(&self) -> bool {
        true
    }
}

/// An event as the hub hands it to connections. One allocation per event: an app's
/// `Arc<Published<ItsPayload>>` becomes an `Arc<Published>` without copying.
pub struct Published<P: ?Sized = dyn Payload> {
    pub topic: Topic,
    pub audience: Audience,
    rendered: Mutex<Vec<(u64, ByteString)>>,
    pub payload: P,
}

impl<P: ?Sized> std::fmt::Debug for Published<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Published")
            .field("topic", &self.topic)
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

impl<P: Payload> Published<P> {
    pub fn new(topic: Topic, audience: Audience, payload: P) -> Self {
        Self {
            topic,
            audience,
            rendered: Mutex::new(Vec::new()),
            payload,
        }
    }
}

impl Published {
    /// The frame for this reader, or `None` if the event is not for them.
    pub fn text_for(&self, member: i64, session: i64) -> Option<ByteString> {
        if !self.audience.includes(member, session) {
            return None;
        }
        let key = self.payload.reader_key(member);
        let mut cache = self.rendered.lock().ok()?;
        if let Some((_, text)) = cache.iter().find(|(k, _)| *k == key) {
            return Some(text.clone());
        }
        let text = ByteString::from(self.payload.render(self.topic, member)?);
        cache.push((key, text.clone()));
        Some(text)
    }

    /// Whether `member`'s connection of `session` closes on this event.
    pub fn ends(&self, member: i64, session: i64) -> bool {
        self.payload.ends_session() && self.audience.includes(member, session)
    }

    #[cfg(test)]
    pub(crate) fn renderings(&self) -> usize {
        self.rendered.lock().map(|r| r.len()).unwrap_or(0)
    }
}

/// Events queued per connection before a slow one is told to resynchronise.
pub const QUEUE_CAPACITY: usize = 1024;

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
        match &ev.audience {
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
/// the practice. A practice without open connections has no entry (nothing per practice
/// until a member opens a page with the live channel).
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

    /// Queues an event to its audience's connections (none listening: dropped, and
    /// nothing is allocated).
    pub fn publish<P: Payload>(&self, slug: &str, topic: Topic, audience: Audience, payload: P) {
        let Ok(map) = self.practices.read() else {
            return;
        };
        if let Some(p) = map.get(slug) {
            let ev: Arc<Published> = Arc::new(Published::new(topic, audience, payload));
            p.publish(&ev);
        }
    }

    /// Queues one event to every open connection of every practice of the node: for
    /// node-level changes that concern everyone (the node's broadcasts changed). The event
    /// must read alike for everyone and carry nothing of any practice.
    pub fn publish_everywhere<P: Payload>(&self, topic: Topic, payload: P) {
        let Ok(map) = self.practices.read() else {
            return;
        };
        if map.is_empty() {
            return;
        }
        let ev: Arc<Published> = Arc::new(Published::new(topic, Audience::Everyone, payload));
        for p in map.values() {
            p.publish(&ev);
        }
    }

    /// Closes the connections of `sessions` (they ended).
    pub fn end_sessions(&self, slug: &str, sessions: &[i64]) {
        for s in sessions {
            self.publish(
                slug,
                Topic {
                    app: CONTROL,
                    id: 0,
                },
                Audience::Session(*s),
                SessionEnded,
            );
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

    /// A payload of a made-up app: its text names the topic, and readers listed in
    /// `special` read it differently.
    struct Note {
        special: Vec<i64>,
    }

    impl Payload for Note {
        fn reader_key(&self, reader: i64) -> u64 {
            u64::from(self.special.contains(&reader))
        }
        fn render(&self, topic: Topic, reader: i64) -> Option<String> {
            Some(format!(
                r#"{{"type":"note","app":"{}","id":{},"special":{}}}"#,
                topic.app,
                topic.id,
                self.special.contains(&reader)
            ))
        }
    }

    fn topic(app: &'static str, id: i64) -> Topic {
        Topic { app, id }
    }

    fn note() -> Note {
        Note {
            special: Vec::new(),
        }
    }

    fn topic_of(ev: Option<Received>) -> Option<Topic> {
        match ev {
            Some(Received::Event(p)) => Some(p.topic),
            _ => None,
        }
    }

    #[tokio::test]
    async fn the_hub_delivers_per_practice_and_forgets_idle_practices() {
        let hub = Hub::default();
        let mut a = hub.subscribe("praxis-a", 1, 10).unwrap();
        let mut b = hub.subscribe("praxis-b", 1, 11).unwrap();
        hub.publish("praxis-a", topic("chat", 1), Audience::Everyone, note());
        assert_eq!(topic_of(a.recv().await), Some(topic("chat", 1)));
        assert!(b.rx.try_recv().is_err(), "practice B hears nothing of A");
        assert_eq!(hub.connections(), 2);
        drop(a);
        assert_eq!(hub.connections(), 1);
        assert!(!hub.practices.read().unwrap().contains_key("praxis-a"));
        hub.publish("praxis-a", topic("chat", 1), Audience::Everyone, note());
        assert_eq!(hub.connections(), 1);
    }

    #[tokio::test]
    async fn an_apps_event_reaches_only_the_audience_the_app_computed() {
        let hub = Hub::default();
        let mut anna = hub.subscribe("praxis-a", 1, 10).unwrap();
        let mut bernd = hub.subscribe("praxis-a", 2, 20).unwrap();
        // App "tasks" publishes about board 9 to Anna only; app "chat" to everyone.
        hub.publish(
            "praxis-a",
            topic("tasks", 9),
            Audience::Members(vec![1]),
            note(),
        );
        hub.publish("praxis-a", topic("chat", 4), Audience::Everyone, note());
        assert_eq!(topic_of(anna.recv().await), Some(topic("tasks", 9)));
        assert_eq!(topic_of(anna.recv().await), Some(topic("chat", 4)));
        let Some(Received::Event(p)) = bernd.try_recv() else {
            panic!("Bernd gets the chat event");
        };
        assert_eq!(p.topic, topic("chat", 4), "not the tasks event first");
        assert!(bernd.try_recv().is_none(), "nothing of board 9 for Bernd");
        // Even handed over, an event renders nothing for a reader outside its audience.
        let only_anna = Published::new(topic("tasks", 9), Audience::Members(vec![1]), note());
        let only_anna: Arc<Published> = Arc::new(only_anna);
        assert!(only_anna.text_for(2, 20).is_none());
        let text = only_anna.text_for(1, 10).unwrap();
        assert!(text.contains(r#""app":"tasks","id":9"#), "{text}");
    }

    #[tokio::test]
    async fn events_are_rendered_once_per_kind_of_reader_and_shared_by_connections() {
        let hub = Hub::default();
        let mut anna = hub.subscribe("praxis-a", 1, 10).unwrap();
        let mut anna_tab = hub.subscribe("praxis-a", 1, 10).unwrap();
        let mut bernd = hub.subscribe("praxis-a", 2, 20).unwrap();
        let mut carla = hub.subscribe("praxis-a", 3, 30).unwrap();
        hub.publish(
            "praxis-a",
            topic("chat", 4),
            Audience::Members(vec![1, 2, 3]),
            Note { special: vec![2] },
        );
        let (Some(Received::Event(p1)), Some(Received::Event(p2))) =
            (anna.recv().await, anna_tab.recv().await)
        else {
            panic!("Anna's connections get the event");
        };
        let (Some(Received::Event(p3)), Some(Received::Event(p4))) =
            (bernd.recv().await, carla.recv().await)
        else {
            panic!("Bernd and Carla get the event");
        };
        assert!(Arc::ptr_eq(&p1, &p3), "one event shared by all connections");
        assert_eq!(p1.text_for(1, 10), p2.text_for(1, 10));
        assert_eq!(
            p1.text_for(1, 10),
            p4.text_for(3, 30),
            "Anna and Carla alike"
        );
        assert_ne!(
            p1.text_for(1, 10),
            p3.text_for(2, 20),
            "Bernd reads it apart"
        );
        assert_eq!(p1.renderings(), 2, "rendered once per kind of reader");
    }

    #[tokio::test]
    async fn a_node_wide_event_reaches_every_practices_connections() {
        let hub = Hub::default();
        let mut a = hub.subscribe("praxis-a", 1, 10).unwrap();
        let mut b = hub.subscribe("praxis-b", 7, 70).unwrap();
        hub.publish_everywhere(topic("news", 0), note());
        assert_eq!(topic_of(a.recv().await), Some(topic("news", 0)));
        assert_eq!(topic_of(b.recv().await), Some(topic("news", 0)));
        drop((a, b));
        hub.publish_everywhere(topic("news", 0), note());
        assert_eq!(hub.connections(), 0);
    }

    #[tokio::test]
    async fn ended_sessions_close_only_their_own_connections() {
        let hub = Hub::default();
        let mut anna = hub.subscribe("praxis-a", 1, 10).unwrap();
        let mut bernd = hub.subscribe("praxis-a", 2, 20).unwrap();
        hub.end_sessions("praxis-a", &[10]);
        let Some(Received::Event(p)) = anna.recv().await else {
            panic!("Anna's connection hears that her session ended");
        };
        assert!(p.ends(1, 10));
        assert_eq!(
            p.text_for(1, 10).as_deref(),
            Some(r#"{"type":"session_ended"}"#)
        );
        assert!(
            bernd.try_recv().is_none(),
            "another session's control event"
        );
    }

    #[tokio::test]
    async fn a_connection_that_falls_behind_is_told_to_resynchronise() {
        let hub = Hub::default();
        let mut slow = hub.subscribe("praxis-a", 1, 10).unwrap();
        for _ in 0..QUEUE_CAPACITY + 5 {
            hub.publish("praxis-a", topic("chat", 1), Audience::Everyone, note());
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
        hub.publish("praxis-a", topic("chat", 2), Audience::Everyone, note());
        assert_eq!(
            topic_of(slow.recv().await),
            Some(topic("chat", 2)),
            "back to normal"
        );
    }

    #[tokio::test]
    async fn queued_events_are_taken_without_waiting_in_order_with_the_resync_first() {
        let hub = Hub::default();
        let mut c = hub.subscribe("praxis-a", 1, 10).unwrap();
        assert!(c.try_recv().is_none(), "nothing queued: no wait, nothing");
        for id in [1, 2, 3] {
            hub.publish("praxis-a", topic("chat", id), Audience::Everyone, note());
        }
        let ids: Vec<_> = std::iter::from_fn(|| c.try_recv())
            .map(|r| topic_of(Some(r)).map(|t| t.id))
            .collect();
        assert_eq!(ids, [Some(1), Some(2), Some(3)]);
        for _ in 0..QUEUE_CAPACITY + 1 {
            hub.publish("praxis-a", topic("chat", 4), Audience::Everyone, note());
        }
        assert!(matches!(c.try_recv(), Some(Received::Lagged)));
        let n = std::iter::from_fn(|| c.try_recv()).count();
        assert_eq!(n, QUEUE_CAPACITY, "then the queued events, none twice");
    }
}
