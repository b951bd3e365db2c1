//! The chat as members' browsers use it: signing in through the real flow, the chat
//! WebSocket, posting over the JSON API, and the delivery figures of posts against what the
//! sockets received. Shared by the `chat` and `chat-node` scenarios.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use futures_util::StreamExt;
use reqwest::cookie::CookieStore;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::header::HeaderValue;
use serde_json::json;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_tungstenite::client_async_with_config;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::stats::Samples;

/// The password of every benchmark member.
pub const PASSWORD: &str = "Bench-Sonnenblume-Kaffee-42";
/// Read buffer of a member socket (tungstenite zeroes it before each read).
const READ_BUFFER_BYTES: usize = 8 * 1024;

/// Resolves `localhost` and `*.localhost` to 127.0.0.1, so cookies are kept per practice
/// host as in a browser.
#[derive(Debug, Clone, Copy)]
pub struct LocalhostResolver;

impl Resolve for LocalhostResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_ascii_lowercase();
        Box::pin(async move {
            if host == "localhost" || host.ends_with(".localhost") {
                let addrs: Addrs = Box::new(std::iter::once(SocketAddr::from(([127, 0, 0, 1], 0))));
                Ok(addrs)
            } else {
                Err(format!("bench resolver refuses {host}").into())
            }
        })
    }
}

/// The practice under test, as the driver reaches it.
#[derive(Clone)]
pub struct Site {
    pub slug: String,
    pub port: u16,
}

impl Site {
    pub fn origin(&self) -> String {
        format!("http://{}.localhost:{}", self.slug, self.port)
    }
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.origin())
    }
}

/// Creates `n` active accounts (`username(0..n)`) in the practice's IdP database (before
/// the server starts), each with the password hash `hash` of [`PASSWORD`].
pub fn create_users(
    data_dir: &std::path::Path,
    slug: &str,
    n: usize,
    hash: &str,
) -> anyhow::Result<Duration> {
    use kollegium_idp::users::{self, Profile};
    let started = Instant::now();
    let path = data_dir.join("tenants").join(slug).join("idp.sqlite");
    let mut conn = kollegium_tenants::db::open_connection(&path)?;
    let now = kollegium_tenants::Clock::now(&kollegium_tenants::SystemClock);
    conn.immediate_transaction(|c| -> anyhow::Result<()> {
        for i in 0..n {
            let username = username(i);
            let profile = Profile {
                email: format!("{username}@{slug}.example.org"),
                display_name: format!("Mitglied {i:03}"),
                username,
                is_admin: false,
                roles: vec!["mfa".into()],
                ..Profile::default()
            }
            .validate()?;
            let id = users::create_invited(c, &profile, false, now)??;
            users::set_password(c, id, hash, true, now)?;
        }
        Ok(())
    })?;
    Ok(started.elapsed())
}

pub fn username(i: usize) -> String {
    format!("mitglied{i:03}")
}

/// The `value` of the first `<input name="{name}" value="...">`, HTML entities decoded.
pub fn input_value(html: &str, name: &str) -> anyhow::Result<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .with_context(|| format!("no {name} field"))?
        + marker.len();
    let end = html[start..].find('"').context("unterminated value")? + start;
    Ok(decode_entities(&html[start..end]))
}

fn decode_entities(s: &str) -> String {
    s.replace("&#38;", "&")
        .replace("&amp;", "&")
        .replace("&#61;", "=")
        .replace("&#39;", "'")
        .replace("&#34;", "\"")
        .replace("&quot;", "\"")
}

/// The CSRF token of `<meta name="csrf-token" content="...">`.
pub fn meta_csrf(html: &str) -> anyhow::Result<String> {
    let marker = "name=\"csrf-token\" content=\"";
    let start = html.find(marker).context("page has no csrf-token meta")? + marker.len();
    let end = html[start..].find('"').context("unterminated meta")? + start;
    Ok(html[start..end].to_owned())
}

/// GETs `url` and follows redirects by hand; returns the final response.
async fn follow(
    client: &reqwest::Client,
    site: &Site,
    mut url: String,
) -> anyhow::Result<reqwest::Response> {
    for _ in 0..10 {
        let r = client.get(&url).send().await?;
        if !r.status().is_redirection() {
            return Ok(r);
        }
        let loc = r
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .context("redirect without Location")?
            .to_owned();
        url = if loc.starts_with('/') {
            site.url(&loc)
        } else {
            loc
        };
    }
    bail!("too many redirects at {url}")
}

/// Signs a new browser-like client in through the real flow; returns it with its jar and
/// the CSRF token of the chat page.
pub async fn sign_in(
    site: &Site,
    user: &str,
) -> anyhow::Result<(reqwest::Client, Arc<reqwest::cookie::Jar>, String)> {
    let jar = Arc::new(reqwest::cookie::Jar::default());
    let http = reqwest::Client::builder()
        .no_proxy()
        .dns_resolver(Arc::new(LocalhostResolver))
        .cookie_provider(jar.clone())
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        // Below the server's keep-alive (actix-web: 5 s), so the driver never reuses a
        // connection the server is closing (a run once failed with "connection closed
        // before message completed" on a member's first post after the sign-ins).
        .pool_idle_timeout(Duration::from_secs(3))
        .build()?;
    let page = follow(&http, site, site.url("/auth/login")).await?;
    ensure!(
        page.url().path() == "/id/login",
        "sign-in did not reach the login form but {}",
        page.url()
    );
    let html = page.text().await?;
    let next = input_value(&html, "next")?;
    let token = input_value(&html, "csrf_token")?;
    let r = http
        .post(site.url("/id/login"))
        .form(&[
            ("csrf_token", token.as_str()),
            ("login", user),
            ("password", PASSWORD),
            ("next", next.as_str()),
        ])
        .send()
        .await?;
    ensure!(r.status() == 303, "login of {user} answered {}", r.status());
    let loc = r
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .context("login without Location")?
        .to_owned();
    let url = if loc.starts_with('/') {
        site.url(&loc)
    } else {
        loc
    };
    let done = follow(&http, site, url).await?;
    ensure!(
        done.status() == 200,
        "sign-in of {user} ended with {} at {}",
        done.status(),
        done.url()
    );
    let chat = http.get(site.url("/chat")).send().await?;
    ensure!(chat.status() == 200, "GET /chat answered {}", chat.status());
    let csrf = meta_csrf(&chat.text().await?)?;
    Ok((http, jar, csrf))
}

/// What one socket saw: `(sequence number, time received)` per message event.
#[derive(Default)]
pub struct SocketLog {
    pub received: Vec<(u64, Instant)>,
    pub resyncs: usize,
    /// Times the socket was opened again after the server closed it for a session check.
    pub reconnects: usize,
    pub other_events: usize,
    pub closed: Option<String>,
}

/// The fields of a socket event the driver reads (borrowed from the frame: no copies): a
/// `message` event carries one message, a `catchup` event several.
#[derive(serde::Deserialize)]
struct WsEvent<'a> {
    #[serde(rename = "type", borrow)]
    kind: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    message: Option<WsMessage<'a>>,
    #[serde(borrow, default)]
    messages: Vec<WsMessage<'a>>,
}

#[derive(serde::Deserialize)]
struct WsMessage<'a> {
    #[serde(default)]
    id: i64,
    #[serde(borrow)]
    body: std::borrow::Cow<'a, str>,
}

/// The `Cookie` header a browser sends to the practice (its session cookies).
pub fn cookie_header(site: &Site, jar: &reqwest::cookie::Jar) -> anyhow::Result<HeaderValue> {
    let url: reqwest::Url = site.url("/").parse()?;
    jar.cookies(&url).context("no session cookie in the jar")
}

/// Opens a member's chat socket with its `Cookie` header (handshake done when this returns).
pub async fn open_socket(
    site: &Site,
    cookie: &HeaderValue,
) -> anyhow::Result<tokio_tungstenite::WebSocketStream<TcpStream>> {
    let url = site.url("/api/chat/ws").replacen("http://", "ws://", 1);
    let mut req = url.into_client_request()?;
    req.headers_mut().insert("cookie", cookie.clone());
    req.headers_mut().insert("origin", site.origin().parse()?);
    let tcp = TcpStream::connect(("127.0.0.1", site.port)).await?;
    tcp.set_nodelay(true)?;
    // Events are small: tungstenite's default 128 KiB read buffer is zeroed on every read,
    // which made `memset` the driver's largest cost.
    let config = WebSocketConfig::default().read_buffer_size(READ_BUFFER_BYTES);
    let (ws, resp) = client_async_with_config(req, tcp, Some(config)).await?;
    ensure!(
        resp.status().as_u16() == 101,
        "socket handshake answered {}",
        resp.status()
    );
    Ok(ws)
}

/// What a member's page does when the server closes its socket for a session check (code
/// 4001, at the latest when the access token expires) or asks it to resync: a plain request
/// (which refreshes the session at the IdP), a new socket, and a subscription that catches
/// up from the last message it saw (`templates/static/chat.js`).
#[derive(Clone)]
pub struct Reconnect {
    pub site: Site,
    pub cookie: HeaderValue,
    pub http: reqwest::Client,
    pub room: i64,
}

/// The server's close code for "check the session and reconnect".
const SESSION_CHECK: u16 = 4001;
/// Reconnects in a row that may fail before the socket counts as closed.
const RECONNECT_TRIES: usize = 5;

impl Reconnect {
    async fn subscribe(
        &self,
        ws: &mut tokio_tungstenite::WebSocketStream<TcpStream>,
        after: i64,
    ) -> anyhow::Result<()> {
        use futures_util::SinkExt;
        let frame = json!({"type": "subscribe", "room": self.room, "after": after});
        ws.send(Message::Text(frame.to_string().into())).await?;
        Ok(())
    }

    async fn reopen(
        &self,
        after: i64,
    ) -> anyhow::Result<tokio_tungstenite::WebSocketStream<TcpStream>> {
        let r = self
            .http
            .get(self.site.url("/api/chat/rooms"))
            .header("cookie", self.cookie.clone())
            .header("accept", "application/json")
            .send()
            .await?;
        ensure!(
            r.status().is_success(),
            "session check answered {}",
            r.status()
        );
        let mut ws = open_socket(&self.site, &self.cookie).await?;
        self.subscribe(&mut ws, after).await?;
        Ok(ws)
    }
}

/// Reads a socket until `stop` flips, timestamping every message it receives (live or in
/// a catch-up). With `reconnect`, it behaves like the chat page when the server closes it for
/// a session check or asks it to resync; without, such a close ends it.
pub async fn read_socket(
    mut ws: tokio_tungstenite::WebSocketStream<TcpStream>,
    mut stop: watch::Receiver<bool>,
    reconnect: Option<Reconnect>,
) -> SocketLog {
    let mut log = SocketLog::default();
    let mut last_id = 0;
    loop {
        tokio::select! {
            msg = ws.next() => {
                let at = Instant::now();
                let why = match msg {
                    Some(Ok(Message::Text(t))) => {
                        match serde_json::from_str::<WsEvent<'_>>(t.as_str()) {
                            Ok(ev) if ev.kind == "message" || ev.kind == "catchup" => {
                                for m in ev.message.iter().chain(&ev.messages) {
                                    last_id = last_id.max(m.id);
                                    match m.body.strip_prefix("bench ").and_then(|s| s.parse().ok()) {
                                        Some(seq) => log.received.push((seq, at)),
                                        None => log.other_events += 1,
                                    }
                                }
                            }
                            Ok(ev) if ev.kind == "resync" => {
                                log.resyncs += 1;
                                if let Some(r) = &reconnect
                                    && let Err(e) = r.subscribe(&mut ws, last_id).await
                                {
                                    log.closed = Some(format!("resubscribe failed: {e:#}"));
                                    break;
                                }
                            }
                            _ => log.other_events += 1,
                        }
                        continue;
                    }
                    Some(Ok(Message::Close(frame))) => {
                        let check = frame.as_ref().is_some_and(|f| u16::from(f.code) == SESSION_CHECK);
                        if check && let Some(r) = &reconnect {
                            let mut tries = 0;
                            let reopened = loop {
                                tries += 1;
                                match r.reopen(last_id).await {
                                    Ok(ws) => break Ok(ws),
                                    Err(e) if tries >= RECONNECT_TRIES => break Err(e),
                                    Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
                                }
                            };
                            match reopened {
                                Ok(new) => {
                                    ws = new;
                                    log.reconnects += 1;
                                    continue;
                                }
                                Err(e) => format!("reconnect failed: {e:#}"),
                            }
                        } else {
                            format!("closed by server: {frame:?}")
                        }
                    }
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => format!("socket error: {e}"),
                    None => "socket ended".into(),
                };
                log.closed = Some(why);
                break;
            }
            _ = stop.changed() => {
                let _ = ws.close(None).await;
                break;
            }
        }
    }
    log
}

/// One post as the driver sent it.
pub struct Post {
    pub seq: u64,
    pub room: usize,
    pub scheduled: Instant,
    pub sent: Instant,
    pub answered: Instant,
    pub status: u16,
}

/// Who posts: a client (with the member's cookies in its jar, or `cookie` given) and the
/// member's CSRF token.
pub struct Poster<'a> {
    pub http: &'a reqwest::Client,
    pub cookie: Option<&'a HeaderValue>,
    pub csrf: &'a str,
    /// The room's index among the driver's rooms (its members' socket numbers follow).
    pub room: usize,
}

/// Posts `bench <seq>` to room `room_id`; `scheduled` is when the post was meant to be sent.
pub async fn post(
    site: &Site,
    by: &Poster<'_>,
    room_id: i64,
    seq: u64,
    scheduled: Instant,
) -> anyhow::Result<Post> {
    let mut req = by
        .http
        .post(site.url(&format!("/api/chat/rooms/{room_id}/messages")))
        .header("x-csrf-token", by.csrf)
        .header("accept", "application/json")
        .json(&json!({ "body": format!("bench {seq}") }));
    if let Some(c) = by.cookie {
        req = req.header("cookie", c.clone());
    }
    let sent = Instant::now();
    let resp = req.send().await?;
    let status = resp.status().as_u16();
    resp.bytes().await?;
    Ok(Post {
        seq,
        room: by.room,
        scheduled,
        sent,
        answered: Instant::now(),
        status,
    })
}

/// Delivery figures of a set of posts against what the sockets received.
pub struct Delivery {
    /// Intended send time → event received, one sample per (post, member): what a user
    /// waits, including any time the post waited to be sent (no coordinated omission).
    pub per_member: Samples,
    /// POST sent → event received, one sample per (post, member).
    pub per_member_sent: Samples,
    /// Intended send time → event received by the last of the room's members, one per post.
    pub all_members: Samples,
    /// POST sent → event received by the last of the room's members, one per post.
    pub all_members_sent: Samples,
    pub expected: usize,
    pub delivered: usize,
    pub lost: usize,
    pub duplicates: usize,
}

/// Delivery of `posts` to the sockets of their rooms: room r's members are sockets
/// `r * members_per_room ..`.
pub fn delivery(
    posts: &[&Post],
    received: &HashMap<u64, Vec<(usize, Instant)>>,
    members_per_room: usize,
) -> Delivery {
    let n = posts.len();
    let mut d = Delivery {
        per_member: Samples::with_capacity(n * members_per_room),
        per_member_sent: Samples::with_capacity(n * members_per_room),
        all_members: Samples::with_capacity(n),
        all_members_sent: Samples::with_capacity(n),
        expected: 0,
        delivered: 0,
        lost: 0,
        duplicates: 0,
    };
    for p in posts {
        d.expected += members_per_room;
        let got = received.get(&p.seq).map(Vec::as_slice).unwrap_or(&[]);
        let mut seen = vec![false; members_per_room];
        let mut last: Option<Instant> = None;
        for (member, at) in got {
            let slot = member.wrapping_sub(p.room * members_per_room);
            match seen.get_mut(slot) {
                Some(s) if !*s => {
                    *s = true;
                    d.delivered += 1;
                    d.per_member.push(at.saturating_duration_since(p.scheduled));
                    d.per_member_sent.push(at.saturating_duration_since(p.sent));
                    last = Some(last.map_or(*at, |l| l.max(*at)));
                }
                _ => d.duplicates += 1,
            }
        }
        if seen.iter().all(|s| *s)
            && let Some(l) = last
        {
            d.all_members.push(l.saturating_duration_since(p.scheduled));
            d.all_members_sent.push(l.saturating_duration_since(p.sent));
        }
    }
    d.lost = d.expected - d.delivered;
    d
}

/// A signed-in member: its client (cookie jar inside), its `Cookie` header for sockets and
/// other clients, the CSRF token of the chat page, and how long the sign-in took.
pub struct Signed {
    pub http: reqwest::Client,
    pub cookie: HeaderValue,
    pub csrf: String,
    pub took: Duration,
}

/// Signs in every `(site, username)` through the real flow, `parallel` at a time (each
/// verifies a real argon2 hash at the IdP); in the order given.
pub async fn sign_in_all(who: Vec<(Site, String)>, parallel: usize) -> anyhow::Result<Vec<Signed>> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let who = Arc::new(who);
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..parallel.max(1) {
        let (who, next) = (Arc::clone(&who), Arc::clone(&next));
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((site, user)) = who.get(i) else {
                    return Ok::<_, anyhow::Error>(out);
                };
                let started = Instant::now();
                let (http, jar, csrf) = sign_in(site, user)
                    .await
                    .with_context(|| format!("sign-in of {user} at {}", site.slug))?;
                let cookie = cookie_header(site, &jar)?;
                out.push((
                    i,
                    Signed {
                        http,
                        cookie,
                        csrf,
                        took: started.elapsed(),
                    },
                ));
            }
        }));
    }
    let mut all: Vec<Option<Signed>> = (0..who.len()).map(|_| None).collect();
    for t in tasks {
        for (i, s) in t.await?? {
            if let Some(slot) = all.get_mut(i) {
                *slot = Some(s);
            }
        }
    }
    all.into_iter()
        .map(|s| s.context("a member did not sign in"))
        .collect()
}

/// The member ids of a practice by user name (`GET /api/chat/members` as a member).
pub async fn member_ids(
    site: &Site,
    http: &reqwest::Client,
    cookie: Option<&HeaderValue>,
) -> anyhow::Result<HashMap<String, i64>> {
    let mut req = http
        .get(site.url("/api/chat/members"))
        .header("accept", "application/json");
    if let Some(c) = cookie {
        req = req.header("cookie", c.clone());
    }
    let list: serde_json::Value = req.send().await?.error_for_status()?.json().await?;
    Ok(list["members"]
        .as_array()
        .context("no member list")?
        .iter()
        .filter_map(|m| Some((m["username"].as_str()?.to_owned(), m["id"].as_i64()?)))
        .collect())
}

/// Creates a private room `name` as `owner` with `members` invited; returns its id.
pub async fn create_room(
    site: &Site,
    owner: &Poster<'_>,
    name: &str,
    members: &[i64],
) -> anyhow::Result<i64> {
    let mut req = owner
        .http
        .post(site.url("/api/chat/rooms"))
        .header("x-csrf-token", owner.csrf)
        .header("accept", "application/json")
        .json(&json!({"name": name, "private": true, "members": members}));
    if let Some(c) = owner.cookie {
        req = req.header("cookie", c.clone());
    }
    let resp = req.send().await?;
    ensure!(
        resp.status() == 201,
        "room creation at {} answered {}",
        site.slug,
        resp.status()
    );
    let v: serde_json::Value = resp.json().await?;
    v["id"].as_i64().context("room without id")
}

/// What the sockets saw, once they were stopped.
pub struct Collected {
    /// Per sequence number: which socket (by number) received it, and when.
    pub received: HashMap<u64, Vec<(usize, Instant)>>,
    pub resyncs: usize,
    pub reconnects: usize,
    /// Sockets that ended early, and why.
    pub closed: Vec<String>,
}

/// Waits for the socket readers (numbered in order) after their stop signal.
pub async fn collect(
    readers: Vec<tokio::task::JoinHandle<SocketLog>>,
) -> anyhow::Result<Collected> {
    let mut c = Collected {
        received: HashMap::new(),
        resyncs: 0,
        reconnects: 0,
        closed: Vec::new(),
    };
    for (socket, r) in readers.into_iter().enumerate() {
        let log = r.await?;
        c.resyncs += log.resyncs;
        c.reconnects += log.reconnects;
        if let Some(why) = log.closed {
            c.closed.push(format!("socket {socket}: {why}"));
        }
        for (seq, at) in log.received {
            c.received.entry(seq).or_default().push((socket, at));
        }
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_form_fields_and_meta() {
        let html = r#"<meta name="csrf-token" content="abc"><input type="hidden" name="next" value="/id/authorize?a=1&amp;b&#61;2">"#;
        assert_eq!(meta_csrf(html).unwrap(), "abc");
        assert_eq!(input_value(html, "next").unwrap(), "/id/authorize?a=1&b=2");
        assert!(input_value(html, "csrf_token").is_err());
    }

    #[test]
    fn counts_lost_and_duplicate_deliveries_from_the_intended_send_time() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        // Post 0 was meant to go at 0 ms but was sent only at 2 ms.
        let post = |seq, room, sent| Post {
            seq,
            room,
            scheduled: t0,
            sent: at(sent),
            answered: at(sent),
            status: 201,
        };
        let (a, b) = (post(0, 0, 2), post(1, 1, 0));
        let mut received = HashMap::new();
        // Room 0 = sockets 0, 1; room 1 = sockets 2, 3.
        received.insert(0, vec![(0, at(3)), (1, at(5)), (1, at(6))]);
        received.insert(1, vec![(2, at(4)), (0, at(9))]);
        let d = delivery(&[&a, &b], &received, 2);
        assert_eq!(d.expected, 4);
        assert_eq!(d.delivered, 3);
        assert_eq!(d.lost, 1);
        assert_eq!(d.duplicates, 2, "a repeat and a delivery to a non-member");
        let all = d.all_members.summary().unwrap();
        assert_eq!(all.n, 1);
        assert!((all.max_ms - 5.0).abs() < 1e-9, "from the intended time");
        let sent = d.all_members_sent.summary().unwrap();
        assert!((sent.max_ms - 3.0).abs() < 1e-9, "from the send");
        assert!((d.per_member.summary().unwrap().max_ms - 5.0).abs() < 1e-9);
        assert!((d.per_member_sent.summary().unwrap().min_ms - 1.0).abs() < 1e-9);
    }
}
