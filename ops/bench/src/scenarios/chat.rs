//! `chat`: live chat under load on one practice.
//!
//! Members are created in-process in the practice's IdP database (one password hash, with
//! the server's default argon2 parameters, shared by all accounts), the server is started,
//! and every member signs in over HTTP the way a browser does (`/auth/login` → the IdP's
//! authorize endpoint → the login form → `/auth/callback`), then opens the chat WebSocket
//! with its session cookie and the practice's `Origin`. Rooms are private, so each event
//! goes to exactly the room's members.
//!
//! Phases, all against the same server:
//!
//! 1. **latency**: open-loop posting at a fixed rate over the JSON API, each post from the
//!    next member in turn (so every member stays far below the posting limit); the body
//!    carries a sequence number, and every socket timestamps the `message` event it
//!    receives. Latency = POST sent → event received, per member socket.
//! 2. **sustained**: closed-loop posting by many concurrent clients for a fixed time, as
//!    fast as the server answers; posts/s, per core and per second of server CPU.
//! 3. **room page**: `GET /chat/{room}` (≥ 50 messages in the room) by concurrent
//!    signed-in clients.
//!
//! Beside it, the raw SQLite commit rate: single-row insert transactions on a fresh
//! database in the same data directory, opened with the server's own `open_connection`
//! (same pragmas), measured before the server starts and again after it stopped.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use futures_util::StreamExt;
use reqwest::cookie::CookieStore;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use serde_json::json;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_tungstenite::client_async_with_config;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::fixtures::{self, Node};
use crate::report::{Goal, Report};
use crate::server::{self, Listen, Resources, ServerProcess, Workdir};
use crate::stats::Samples;

/// Goal: p99 of post → delivered at 100 messages/s.
const LATENCY_P99_GOAL_MS: f64 = 50.0;
/// Goal: sustained posts/s at least this share of the raw commit rate.
const SUSTAINED_SHARE_GOAL: f64 = 0.8;
/// The password of every benchmark member.
const PASSWORD: &str = "Bench-Sonnenblume-Kaffee-42";
/// Time the sockets get to deliver the last events of a phase.
const GRACE: Duration = Duration::from_secs(5);
/// Read buffer of a member socket (tungstenite zeroes it before each read).
const READ_BUFFER_BYTES: usize = 8 * 1024;
/// Linux reports process CPU time in these units (USER_HZ, fixed at 100 in the ABI).
const CLOCK_TICKS_PER_SEC: f64 = 100.0;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Rooms (private, each with its own members)
    #[arg(long, default_value_t = 10)]
    pub rooms: usize,
    /// Members per room; each has one WebSocket open
    #[arg(long, default_value_t = 20)]
    pub members_per_room: usize,
    /// Posts per second in the latency phase (open loop)
    #[arg(long, default_value_t = 100)]
    pub rate: u32,
    /// Seconds of posting before the latency measurement starts
    #[arg(long, default_value_t = 5)]
    pub warmup: u64,
    /// Seconds of measured posting in the latency phase
    #[arg(long, default_value_t = 40)]
    pub duration: u64,
    /// Seconds of closed-loop posting in the sustained phase
    #[arg(long, default_value_t = 10)]
    pub sustained: u64,
    /// The server's per-member posting burst (`limits.chat_post_burst`). Raised from the
    /// production 20 (then 1/s), which would cap 200 members at about 200 × (20 + t) / t
    /// posts/s over t seconds: the phase measures the server, not the limiter.
    /// 20 measures with the production limit.
    #[arg(long, default_value_t = 1_000_000.0)]
    pub post_burst: f64,
    /// Posts in flight in the sustained phase
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// Concurrent clients loading the room page
    #[arg(long, default_value_t = 32)]
    pub page_clients: usize,
    /// Seconds of room page loads
    #[arg(long, default_value_t = 10)]
    pub page_secs: u64,
    /// Seconds of each raw SQLite commit measurement
    #[arg(long, default_value_t = 4)]
    pub commit_secs: u64,
}

pub fn run(args: &Args) -> anyhow::Result<Report> {
    ensure!(
        args.rooms > 0 && args.members_per_room > 0,
        "need rooms and members"
    );
    ensure!(
        args.rate > 0 && args.duration > 0,
        "need a rate and a duration"
    );
    // Sockets and posting run on two threads, like the server's two workers; the machine
    // has two cores for both, which the report states.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(run_async(args))
}

/// Resolves `localhost` and `*.localhost` to 127.0.0.1, so cookies are kept per practice
/// host as in a browser.
#[derive(Debug, Clone, Copy)]
struct LocalhostResolver;

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

/// A signed-in member with its own browser-like client.
struct Person {
    username: String,
    id: i64,
    room: usize,
    http: reqwest::Client,
    jar: Arc<reqwest::cookie::Jar>,
    csrf: String,
}

/// The practice under test, as the driver reaches it.
#[derive(Clone)]
struct Site {
    slug: String,
    port: u16,
}

impl Site {
    fn origin(&self) -> String {
        format!("http://{}.localhost:{}", self.slug, self.port)
    }
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.origin())
    }
}

/// Server CPU time (user + system) in seconds, from `/proc/<pid>/stat`.
fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("odd /proc stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| -> anyhow::Result<f64> {
        Ok(fields.get(i).context("short /proc stat")?.parse::<f64>()?)
    };
    // `rest` starts at field 3 (state), so field n is at index n - 3.
    Ok((tick(11)? + tick(12)?) / CLOCK_TICKS_PER_SEC)
}

/// Single-row insert transactions per second on a fresh database in `dir`, opened with the
/// server's `open_connection` (WAL, synchronous=FULL, foreign_keys, busy_timeout).
fn raw_commit_rate(dir: &std::path::Path, secs: u64) -> anyhow::Result<f64> {
    let path = dir.join(format!("raw-commit-{}.sqlite", std::process::id()));
    let mut conn = kollegium_tenants::db::open_connection(&path)?;
    conn.batch_execute(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT NOT NULL, created_at INTEGER NOT NULL);",
    )?;
    let started = Instant::now();
    let until = started + Duration::from_secs(secs);
    let mut n: i64 = 0;
    while Instant::now() < until {
        conn.immediate_transaction(|c| {
            diesel::sql_query("INSERT INTO t (body, created_at) VALUES (?, ?)")
                .bind::<diesel::sql_types::Text, _>(format!("bench {n}"))
                .bind::<diesel::sql_types::BigInt, _>(n)
                .execute(c)
        })?;
        n += 1;
    }
    let rate = n as f64 / started.elapsed().as_secs_f64();
    drop(conn);
    for suffix in ["", "-wal", "-shm"] {
        let mut p = path.clone().into_os_string();
        p.push(suffix);
        let _ = std::fs::remove_file(p);
    }
    Ok(rate)
}

/// Creates `n` active accounts in the practice's IdP database (before the server starts).
fn create_users(data_dir: &std::path::Path, slug: &str, n: usize) -> anyhow::Result<Duration> {
    use kollegium_idp::passwords::{Argon2Params, Hasher};
    use kollegium_idp::users::{self, Profile};
    let started = Instant::now();
    // The server's default (production) parameters, so sign-in verifies a real-cost hash.
    let hasher = Hasher::new(Argon2Params::default())?;
    let hash = hasher.hash_blocking(PASSWORD)?;
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
            users::set_password(c, id, &hash, true, now)?;
        }
        Ok(())
    })?;
    Ok(started.elapsed())
}

fn username(i: usize) -> String {
    format!("mitglied{i:03}")
}

/// The `value` of the first `<input name="{name}" value="...">`, HTML entities decoded.
fn input_value(html: &str, name: &str) -> anyhow::Result<String> {
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
fn meta_csrf(html: &str) -> anyhow::Result<String> {
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
async fn sign_in(
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
struct SocketLog {
    received: Vec<(u64, Instant)>,
    resyncs: usize,
    other_events: usize,
    closed: Option<String>,
}

/// The fields of a socket event the driver reads (borrowed from the frame: no copies).
#[derive(serde::Deserialize)]
struct WsEvent<'a> {
    #[serde(rename = "type", borrow)]
    kind: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    message: Option<WsMessage<'a>>,
}

#[derive(serde::Deserialize)]
struct WsMessage<'a> {
    #[serde(borrow)]
    body: std::borrow::Cow<'a, str>,
}

/// Opens member `p`'s chat socket (handshake done when this returns).
async fn open_socket(
    site: &Site,
    p: &Person,
) -> anyhow::Result<tokio_tungstenite::WebSocketStream<TcpStream>> {
    let url = site.url("/api/chat/ws").replacen("http://", "ws://", 1);
    let mut req = url.into_client_request()?;
    let cookie_url: reqwest::Url = site.url("/").parse()?;
    let cookie = p
        .jar
        .cookies(&cookie_url)
        .context("no session cookie in the jar")?;
    req.headers_mut().insert("cookie", cookie);
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

/// Reads a socket until `stop` flips, timestamping every message event.
async fn read_socket(
    mut ws: tokio_tungstenite::WebSocketStream<TcpStream>,
    mut stop: watch::Receiver<bool>,
) -> SocketLog {
    let mut log = SocketLog::default();
    loop {
        tokio::select! {
            msg = ws.next() => {
                let at = Instant::now();
                match msg {
                    Some(Ok(Message::Text(t))) => {
                        match serde_json::from_str::<WsEvent<'_>>(t.as_str()) {
                            Ok(ev) if ev.kind == "message" => {
                                let seq = ev
                                    .message
                                    .and_then(|m| m.body.strip_prefix("bench ").and_then(|s| s.parse().ok()));
                                match seq {
                                    Some(seq) => log.received.push((seq, at)),
                                    None => log.other_events += 1,
                                }
                            }
                            Ok(ev) if ev.kind == "resync" => log.resyncs += 1,
                            _ => log.other_events += 1,
                        }
                    }
                    Some(Ok(Message::Close(frame))) => {
                        log.closed = Some(format!("closed by server: {frame:?}"));
                        break;
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => {
                        log.closed = Some(format!("socket error: {e}"));
                        break;
                    }
                    None => {
                        log.closed = Some("socket ended".into());
                        break;
                    }
                }
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
struct Post {
    seq: u64,
    room: usize,
    scheduled: Instant,
    sent: Instant,
    answered: Instant,
    status: u16,
}

async fn post(
    site: &Site,
    p: &Person,
    room_id: i64,
    seq: u64,
    scheduled: Instant,
) -> anyhow::Result<Post> {
    let req = p
        .http
        .post(site.url(&format!("/api/chat/rooms/{room_id}/messages")))
        .header("x-csrf-token", &p.csrf)
        .header("accept", "application/json")
        .json(&json!({ "body": format!("bench {seq}") }));
    let sent = Instant::now();
    let resp = req.send().await?;
    let status = resp.status().as_u16();
    resp.bytes().await?;
    Ok(Post {
        seq,
        room: p.room,
        scheduled,
        sent,
        answered: Instant::now(),
        status,
    })
}

/// Delivery figures of a set of posts against what the sockets received.
struct Delivery {
    /// POST sent → event received, one sample per (post, member).
    per_member: Samples,
    /// POST sent → event received by the last of the room's members, one per post.
    all_members: Samples,
    expected: usize,
    delivered: usize,
    lost: usize,
    duplicates: usize,
}

fn delivery(
    posts: &[&Post],
    received: &HashMap<u64, Vec<(usize, Instant)>>,
    members_per_room: usize,
) -> Delivery {
    let mut per_member = Samples::with_capacity(posts.len() * members_per_room);
    let mut all_members = Samples::with_capacity(posts.len());
    let (mut expected, mut delivered, mut duplicates) = (0, 0, 0);
    for p in posts {
        expected += members_per_room;
        let got = received.get(&p.seq).map(Vec::as_slice).unwrap_or(&[]);
        let mut seen = vec![false; members_per_room];
        let mut last = None;
        for (member, at) in got {
            let slot = member.wrapping_sub(p.room * members_per_room);
            match seen.get_mut(slot) {
                Some(s) if !*s => {
                    *s = true;
                    delivered += 1;
                    let d = at.saturating_duration_since(p.sent);
                    per_member.push(d);
                    last = Some(last.map_or(d, |l: Duration| l.max(d)));
                }
                _ => duplicates += 1,
            }
        }
        if seen.iter().all(|s| *s)
            && let Some(l) = last
        {
            all_members.push(l);
        }
    }
    Delivery {
        per_member,
        all_members,
        expected,
        delivered,
        lost: expected - delivered,
        duplicates,
    }
}

struct Snapshot {
    label: &'static str,
    res: Resources,
}

async fn run_async(args: &Args) -> anyhow::Result<Report> {
    let loadavg_before = super::loadavg();
    let binary = server::build_server_binary().await?;
    let workdir = Workdir::new()?;
    let listen = Listen::pick()?;
    let slug = fixtures::slug(0);
    let n_members = args.rooms * args.members_per_room;

    println!(
        "Creating practice {slug} and {n_members} members in {}",
        workdir.data_dir().display()
    );
    let node = Node::open(&workdir.data_dir(), listen.addr)?;
    node.create(&slug)?;
    drop(node);
    let users_took = {
        let (dir, slug) = (workdir.data_dir(), slug.clone());
        tokio::task::spawn_blocking(move || create_users(&dir, &slug, n_members)).await??
    };
    println!(
        "  {n_members} accounts in {:.1} s",
        users_took.as_secs_f64()
    );

    println!(
        "Raw SQLite commit rate in the data directory ({} s)",
        args.commit_secs
    );
    let raw_before = {
        let (dir, secs) = (workdir.data_dir(), args.commit_secs);
        tokio::task::spawn_blocking(move || raw_commit_rate(&dir, secs)).await??
    };
    println!("  {raw_before:.0} commits/s");

    let burst = args.post_burst.to_string();
    let server = ServerProcess::start(
        &binary,
        &workdir,
        listen,
        &[("KOLLEGIUM_LIMITS__CHAT_POST_BURST", burst.as_str())],
    )
    .await?;
    println!("Server pid {} on {}", server.pid(), server.addr);
    let site = Site {
        slug: slug.clone(),
        port: server.addr.port(),
    };
    let outcome = measure(args, &server, &site, &workdir.data_dir()).await;
    let stopped = server.stop().await;
    let m = outcome?;
    let shutdown = stopped?;

    let raw_after = {
        let (dir, secs) = (workdir.data_dir(), args.commit_secs);
        tokio::task::spawn_blocking(move || raw_commit_rate(&dir, secs)).await??
    };
    println!("Raw SQLite commit rate after the server stopped: {raw_after:.0} commits/s");
    let loadavg_after = super::loadavg();
    // The bound: the mean of the two measurements right before and after the sustained
    // phase (nearest in time; the shared disk's fsync rate drifts a lot).
    let raw = (m.raw_pre + m.raw_post) / 2.0;
    let raw_all = [raw_before, m.raw_pre, m.raw_post, raw_after];
    let raw_max = raw_all.iter().copied().fold(0.0, f64::max);

    let lat = &m.latency;
    let per = lat
        .per_member
        .summary()
        .context("no deliveries in the latency phase")?;
    let all = lat.all_members.summary();
    let nproc = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let sustained_rate = m.sustained.ok as f64 / m.sustained.elapsed.as_secs_f64();
    let per_core = sustained_rate / nproc as f64;
    let per_cpu_second = m.sustained.ok as f64 / m.sustained.server_cpu_s.max(1e-9);
    let share = sustained_rate / raw;
    let page = m.page.summary().context("no room page loads")?;

    println!(
        "\nchat — {} rooms × {} members, one practice:",
        args.rooms, args.members_per_room
    );
    println!(
        "  sign-in (real flow, {} members): {}",
        n_members,
        m.sign_in
            .summary()
            .map(|s| s.to_string())
            .unwrap_or_default()
    );
    println!(
        "  latency phase: {} posts at {}/s over {} s after {} s warm-up, achieved {:.1} posts/s, {} non-201",
        m.posts_measured, args.rate, args.duration, args.warmup, m.latency_rate, m.latency_errors
    );
    println!("    post -> delivered, per member:   {per}");
    if let Some(a) = all {
        println!("    post -> delivered, all members:  {a}");
    }
    println!(
        "    events expected {} delivered {} lost {} duplicates {} (whole phase incl. warm-up: lost {}), resyncs {}, sockets closed early {}",
        lat.expected,
        lat.delivered,
        lat.lost,
        lat.duplicates,
        m.latency_all_lost,
        m.resyncs,
        m.closed.len()
    );
    if let Some(s) = m.post_answer.summary() {
        println!("    POST answer time: {s}");
    }
    if let Some(s) = m.schedule_lag.summary() {
        println!("    schedule lag (scheduled -> sent): {s}");
    }
    println!(
        "    server CPU {:.2} s per s of posting",
        m.latency_server_cpu_s / m.latency_elapsed.as_secs_f64()
    );
    println!(
        "  sustained: {} posts in {:.1} s = {:.1} posts/s ({:.1} per core of {nproc}); server CPU {:.1} s = {:.0} posts per CPU-second; {} refused (429: {})",
        m.sustained.ok,
        m.sustained.elapsed.as_secs_f64(),
        sustained_rate,
        per_core,
        m.sustained.server_cpu_s,
        per_cpu_second,
        m.sustained.failed,
        m.sustained.rate_limited
    );
    if let Some(s) = m.sustained.answer.summary() {
        println!("    POST answer time: {s}");
    }
    let per_post_us = |cpu: f64| cpu * 1e6 / (m.sustained.ok.max(1) as f64);
    let (server_us, driver_us) = (
        per_post_us(m.sustained.server_cpu_s),
        per_post_us(m.sustained.driver_cpu_s),
    );
    // What the cores allow at this cost per post, if server and driver had them all.
    let cpu_ceiling = nproc as f64 * 1e6 / (server_us + driver_us).max(1e-9);
    println!(
        "    CPU per post: server {server_us:.0} µs, driver {driver_us:.0} µs (driver CPU {:.1} s) -> the {nproc} cores allow at most {cpu_ceiling:.0} posts/s at this cost",
        m.sustained.driver_cpu_s
    );
    println!(
        "    deliveries: expected {} delivered {} lost {}",
        m.sustained_delivery.expected, m.sustained_delivery.delivered, m.sustained_delivery.lost
    );
    println!(
        "  raw SQLite commits/s: {raw_before:.0} before server start, {:.0} right before and {:.0} right after the sustained phase, {raw_after:.0} after stop -> bound {raw:.0}, sustained / bound = {share:.2} (against the highest, {raw_max:.0}: {:.2})",
        m.raw_pre,
        m.raw_post,
        sustained_rate / raw_max
    );
    println!("  room page ({} clients): {page}", args.page_clients);
    for s in &m.snapshots {
        println!(
            "  {}: RSS {:.1} MB (peak {:.1}), {} threads, {} fds {:?}",
            s.label, s.res.rss_mb, s.res.peak_rss_mb, s.res.threads, s.res.fds, s.res.fds_by_kind
        );
    }
    println!("  shutdown after SIGTERM: {:.2} s", shutdown.as_secs_f64());
    println!("  load average before {loadavg_before:?}, after {loadavg_after:?}");

    let mut goals = vec![Goal::at_most(
        format!("post -> delivered p99 per member at {}/s", args.rate),
        per.p99_ms,
        LATENCY_P99_GOAL_MS,
        "ms",
    )];
    if let Some(a) = all {
        goals.push(Goal::at_most(
            format!(
                "post -> delivered to all room members p99 at {}/s",
                args.rate
            ),
            a.p99_ms,
            LATENCY_P99_GOAL_MS,
            "ms",
        ));
    }
    goals.push(Goal::at_most(
        "lost events in the latency phase",
        lat.lost as f64,
        0.0,
        "events",
    ));
    goals.push(Goal {
        name: "sustained posts/s / raw commits/s".into(),
        goal: format!(">= {SUSTAINED_SHARE_GOAL}"),
        value: share,
        unit: "",
        met: share >= SUSTAINED_SHARE_GOAL,
    });

    let method = format!(
        "Real `kollegium serve` release binary as its own process (default settings, log level \
         warn) on a fresh temporary data directory; one practice, {n_members} accounts created \
         in-process in its IdP database (one argon2id hash with the default parameters, shared), \
         each signed in over HTTP through the real flow (/auth/login -> /id/authorize -> login \
         form -> /auth/callback), own cookie jar, then one WebSocket per member (session cookie, \
         Origin of the practice); {} private rooms of {} members created over the JSON API. \
         Latency phase: open loop, one POST /api/chat/rooms/R/messages every {:.1} ms, poster = \
         next member in turn (each member {:.2} posts/s), body `bench <seq>`; latency = POST \
         handed to the client -> the socket task read the event, per member socket, for posts \
         scheduled after {} s of warm-up over {} s. Sustained phase: {} clients post in a closed \
         loop for {} s (poster = next member in turn; per-member posting burst {}), sockets stay \
         open. Room page: {} \
         signed-in clients load GET /chat/R in a closed loop for {} s. Raw commit rate: \
         single-row INSERT transactions (BEGIN IMMEDIATE) on a fresh database in the data \
         directory through kollegium_tenants::db::open_connection, before server start, right \
         before and right after the sustained phase (server idle) and after stop; the bound is \
         the mean of the two around the sustained phase. The driver (tokio, 2 threads) runs on the same 2 \
         cores as the server.",
        args.rooms,
        args.members_per_room,
        1000.0 / f64::from(args.rate),
        f64::from(args.rate) / n_members as f64,
        args.warmup,
        args.duration,
        args.concurrency,
        args.sustained,
        args.post_burst,
        args.page_clients,
        args.page_secs,
    );
    let snapshots: serde_json::Map<String, serde_json::Value> = m
        .snapshots
        .iter()
        .map(|s| Ok((s.label.to_owned(), serde_json::to_value(&s.res)?)))
        .collect::<anyhow::Result<_>>()?;
    let figures = json!({
        "rooms": args.rooms,
        "members_per_room": args.members_per_room,
        "members": n_members,
        "accounts_created_s": users_took.as_secs_f64(),
        "sign_in_ms": m.sign_in.summary(),
        "latency_phase": {
            "rate_per_s": args.rate,
            "warmup_s": args.warmup,
            "measured_s": args.duration,
            "posts_measured": m.posts_measured,
            "achieved_posts_per_s": m.latency_rate,
            "non_201": m.latency_errors,
            "post_to_delivered_per_member_ms": per,
            "post_to_delivered_all_members_ms": all,
            "events_expected": lat.expected,
            "events_delivered": lat.delivered,
            "events_lost": lat.lost,
            "events_duplicated": lat.duplicates,
            "events_lost_incl_warmup": m.latency_all_lost,
            "resyncs": m.resyncs,
            "sockets_closed_early": m.closed,
            "post_answer_ms": m.post_answer.summary(),
            "schedule_lag_ms": m.schedule_lag.summary(),
            "server_cpu_s_per_s": m.latency_server_cpu_s / m.latency_elapsed.as_secs_f64(),
        },
        "sustained_phase": {
            "concurrency": args.concurrency,
            "seconds": m.sustained.elapsed.as_secs_f64(),
            "posts_ok": m.sustained.ok,
            "posts_refused": m.sustained.failed,
            "posts_rate_limited": m.sustained.rate_limited,
            "posts_per_s": sustained_rate,
            "cores": nproc,
            "posts_per_s_per_core": per_core,
            "server_cpu_s": m.sustained.server_cpu_s,
            "driver_cpu_s": m.sustained.driver_cpu_s,
            "posts_per_server_cpu_s": per_cpu_second,
            "post_answer_ms": m.sustained.answer.summary(),
            "events_expected": m.sustained_delivery.expected,
            "events_delivered": m.sustained_delivery.delivered,
            "events_lost": m.sustained_delivery.lost,
        },
        "raw_commits_per_s": {
            "before_server_start": raw_before,
            "before_sustained": m.raw_pre,
            "after_sustained": m.raw_post,
            "after_server_stop": raw_after,
            "bound_mean_around_sustained": raw,
            "max": raw_max,
        },
        "sustained_over_raw_max": sustained_rate / raw_max,
        "sustained_over_raw": share,
        "room_page": {
            "clients": args.page_clients,
            "messages_on_page": 50,
            "get_ms": page,
        },
        "resources": snapshots,
        "shutdown_s": shutdown.as_secs_f64(),
        "loadavg_before": loadavg_before,
        "loadavg_after": loadavg_after,
    });
    Ok(Report::new("chat", method, figures, goals))
}

struct Sustained {
    ok: usize,
    failed: usize,
    rate_limited: usize,
    elapsed: Duration,
    server_cpu_s: f64,
    /// CPU time of this driver process in the phase (it shares the cores).
    driver_cpu_s: f64,
    answer: Samples,
}

struct Measured {
    posts_measured: usize,
    sign_in: Samples,
    latency: Delivery,
    latency_all_lost: usize,
    latency_rate: f64,
    latency_errors: usize,
    latency_elapsed: Duration,
    latency_server_cpu_s: f64,
    post_answer: Samples,
    schedule_lag: Samples,
    resyncs: usize,
    closed: Vec<String>,
    sustained: Sustained,
    sustained_delivery: Delivery,
    raw_pre: f64,
    raw_post: f64,
    page: Samples,
    snapshots: Vec<Snapshot>,
}

async fn measure(
    args: &Args,
    server: &ServerProcess,
    site: &Site,
    data_dir: &std::path::Path,
) -> anyhow::Result<Measured> {
    let n_members = args.rooms * args.members_per_room;
    let mut snapshots = vec![Snapshot {
        label: "after start",
        res: server.resources()?,
    }];

    // Sign everyone in, a few at a time (each verifies a real argon2 hash).
    println!("Signing in {n_members} members through the IdP");
    let mut sign_ins = Samples::with_capacity(n_members);
    let mut people: Vec<Option<(reqwest::Client, Arc<reqwest::cookie::Jar>, String)>> =
        (0..n_members).map(|_| None).collect();
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (site, next) = (site.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n_members {
                    return Ok::<_, anyhow::Error>(out);
                }
                let started = Instant::now();
                let signed = sign_in(&site, &username(i)).await?;
                out.push((i, started.elapsed(), signed));
            }
        }));
    }
    for t in tasks {
        for (i, took, signed) in t.await?? {
            sign_ins.push(took);
            if let Some(slot) = people.get_mut(i) {
                *slot = Some(signed);
            }
        }
    }

    // Member ids (the platform knows members once they signed in).
    let (first_http, _, _) = people
        .first()
        .and_then(Option::as_ref)
        .context("nobody signed in")?;
    let list: serde_json::Value = first_http
        .get(site.url("/api/chat/members"))
        .header("accept", "application/json")
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let ids: HashMap<String, i64> = list["members"]
        .as_array()
        .context("no member list")?
        .iter()
        .filter_map(|m| Some((m["username"].as_str()?.to_owned(), m["id"].as_i64()?)))
        .collect();
    let mut persons = Vec::with_capacity(n_members);
    for (i, p) in people.into_iter().enumerate() {
        let (http, jar, csrf) = p.context("a member did not sign in")?;
        let username = username(i);
        let id = *ids
            .get(&username)
            .with_context(|| format!("{username} is not a member"))?;
        persons.push(Person {
            username,
            id,
            room: i / args.members_per_room,
            http,
            jar,
            csrf,
        });
    }
    let persons = Arc::new(persons);

    // Private rooms, created by their first member with the others invited.
    let mut rooms = Vec::with_capacity(args.rooms);
    for r in 0..args.rooms {
        let group = &persons[r * args.members_per_room..(r + 1) * args.members_per_room];
        let (owner, others) = group.split_first().context("empty room")?;
        let members: Vec<i64> = others.iter().map(|p| p.id).collect();
        let resp = owner
            .http
            .post(site.url("/api/chat/rooms"))
            .header("x-csrf-token", &owner.csrf)
            .header("accept", "application/json")
            .json(&json!({"name": format!("Raum {r:02}"), "private": true, "members": members}))
            .send()
            .await?;
        ensure!(
            resp.status() == 201,
            "room creation by {} answered {}",
            owner.username,
            resp.status()
        );
        let v: serde_json::Value = resp.json().await?;
        rooms.push(v["id"].as_i64().context("room without id")?);
    }
    let rooms = Arc::new(rooms);
    snapshots.push(Snapshot {
        label: "signed in, rooms created",
        res: server.resources()?,
    });

    // One socket per member.
    println!("Opening {n_members} WebSockets");
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut readers = Vec::with_capacity(n_members);
    for p in persons.iter() {
        let ws = open_socket(site, p)
            .await
            .with_context(|| format!("socket of {}", p.username))?;
        readers.push(tokio::spawn(read_socket(ws, stop_rx.clone())));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    snapshots.push(Snapshot {
        label: "sockets open, idle",
        res: server.resources()?,
    });

    // Phase 1: open-loop posting at a fixed rate.
    let period = Duration::from_secs_f64(1.0 / f64::from(args.rate));
    let total_posts = (u64::from(args.rate) * (args.warmup + args.duration)) as usize;
    let warmup_posts = (u64::from(args.rate) * args.warmup) as usize;
    println!(
        "Latency phase: {} posts/s for {} s ({} s warm-up)",
        args.rate,
        args.warmup + args.duration,
        args.warmup
    );
    let cpu0 = cpu_seconds(server.pid())?;
    let start = tokio::time::Instant::now() + Duration::from_millis(50);
    let mut tick = tokio::time::interval_at(start, period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut inflight = Vec::with_capacity(total_posts);
    for i in 0..total_posts {
        let scheduled = tick.tick().await.into_std();
        // Next member in turn, spread over the rooms: member i mod n, rooms interleaved.
        let member =
            (i % args.rooms) * args.members_per_room + (i / args.rooms) % args.members_per_room;
        let (persons, rooms, site) = (persons.clone(), rooms.clone(), site.clone());
        inflight.push(tokio::spawn(async move {
            let p = &persons[member];
            post(&site, p, rooms[p.room], i as u64, scheduled).await
        }));
    }
    let mut posts = Vec::with_capacity(total_posts);
    for t in inflight {
        posts.push(t.await??);
    }
    let latency_elapsed = start.elapsed();
    let latency_server_cpu_s = cpu_seconds(server.pid())? - cpu0;
    let latency_rate = posts.len() as f64
        / posts.last().map_or(1.0, |p| {
            p.sent
                .duration_since(start.into_std())
                .as_secs_f64()
                .max(1e-9)
        });
    snapshots.push(Snapshot {
        label: "end of latency phase (200 sockets)",
        res: server.resources()?,
    });
    // Let the last events arrive before the sustained phase adds more.
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Phase 2: closed loop, as fast as the server answers.
    let raw_pre = {
        let (dir, secs) = (data_dir.to_path_buf(), args.commit_secs);
        tokio::task::spawn_blocking(move || raw_commit_rate(&dir, secs)).await??
    };
    println!(
        "Sustained phase: {} posts in flight for {} s",
        args.concurrency, args.sustained
    );
    let seq0 = total_posts as u64;
    let counter = Arc::new(AtomicUsize::new(0));
    let cpu1 = cpu_seconds(server.pid())?;
    let driver1 = cpu_seconds(std::process::id())?;
    let began = Instant::now();
    let until = began + Duration::from_secs(args.sustained);
    let mut workers = Vec::new();
    for _ in 0..args.concurrency {
        let (persons, rooms, site, counter) = (
            persons.clone(),
            rooms.clone(),
            site.clone(),
            counter.clone(),
        );
        workers.push(tokio::spawn(async move {
            let mut out = Vec::new();
            while Instant::now() < until {
                let k = counter.fetch_add(1, Ordering::Relaxed);
                let member = k % persons.len();
                let p = &persons[member];
                out.push(post(&site, p, rooms[p.room], seq0 + k as u64, Instant::now()).await?);
            }
            Ok::<_, anyhow::Error>(out)
        }));
    }
    let mut sposts = Vec::new();
    for w in workers {
        sposts.extend(w.await??);
    }
    let elapsed = began.elapsed();
    let sustained_cpu = cpu_seconds(server.pid())? - cpu1;
    let sustained_driver_cpu = cpu_seconds(std::process::id())? - driver1;
    snapshots.push(Snapshot {
        label: "end of sustained phase",
        res: server.resources()?,
    });
    // Let the last events arrive before the server is left idle for the commit rate.
    tokio::time::sleep(GRACE).await;
    let raw_post = {
        let (dir, secs) = (data_dir.to_path_buf(), args.commit_secs);
        tokio::task::spawn_blocking(move || raw_commit_rate(&dir, secs)).await??
    };
    println!(
        "  raw commits/s (server idle) right before: {raw_pre:.0}, right after: {raw_post:.0}"
    );

    // Collect the sockets.
    stop_tx.send(true)?;
    let mut received: HashMap<u64, Vec<(usize, Instant)>> = HashMap::new();
    let (mut resyncs, mut closed) = (0, Vec::new());
    for (member, r) in readers.into_iter().enumerate() {
        let log = r.await?;
        resyncs += log.resyncs;
        if let Some(c) = log.closed {
            closed.push(format!("{}: {c}", username(member)));
        }
        for (seq, at) in log.received {
            received.entry(seq).or_default().push((member, at));
        }
    }

    let ok_posts: Vec<&Post> = posts.iter().filter(|p| p.status == 201).collect();
    let latency_errors = posts.len() - ok_posts.len();
    let measured: Vec<&Post> = ok_posts
        .iter()
        .copied()
        .filter(|p| p.seq as usize >= warmup_posts)
        .collect();
    let latency = delivery(&measured, &received, args.members_per_room);
    let latency_all_lost = delivery(&ok_posts, &received, args.members_per_room).lost;
    let mut post_answer = Samples::with_capacity(measured.len());
    let mut schedule_lag = Samples::with_capacity(measured.len());
    for p in &measured {
        post_answer.push(p.answered.duration_since(p.sent));
        schedule_lag.push(p.sent.saturating_duration_since(p.scheduled));
    }
    let s_ok: Vec<&Post> = sposts.iter().filter(|p| p.status == 201).collect();
    let sustained_delivery = delivery(&s_ok, &received, args.members_per_room);
    let mut answer = Samples::with_capacity(s_ok.len());
    for p in &s_ok {
        answer.push(p.answered.duration_since(p.sent));
    }
    let sustained = Sustained {
        ok: s_ok.len(),
        failed: sposts.len() - s_ok.len(),
        rate_limited: sposts.iter().filter(|p| p.status == 429).count(),
        elapsed,
        server_cpu_s: sustained_cpu,
        driver_cpu_s: sustained_driver_cpu,
        answer,
    };

    // Phase 3: the room page, by signed-in clients of several rooms.
    println!(
        "Room page: {} clients for {} s",
        args.page_clients, args.page_secs
    );
    let until = Instant::now() + Duration::from_secs(1 + args.page_secs);
    let measure_from = Instant::now() + Duration::from_secs(1);
    let mut loaders = Vec::new();
    for c in 0..args.page_clients {
        let (persons, rooms, site) = (persons.clone(), rooms.clone(), site.clone());
        loaders.push(tokio::spawn(async move {
            let p = &persons[(c * 7) % persons.len()];
            let url = site.url(&format!("/chat/{}", rooms[p.room]));
            let mut samples = Vec::new();
            while Instant::now() < until {
                let started = Instant::now();
                let resp = p.http.get(&url).send().await?;
                let status = resp.status();
                let body = resp.text().await?;
                let took = started.elapsed();
                ensure!(status == 200, "GET {url} answered {status}");
                ensure!(body.contains("bench "), "room page without messages");
                if started >= measure_from {
                    samples.push(took);
                }
            }
            Ok(samples)
        }));
    }
    let mut page = Samples::default();
    for l in loaders {
        for d in l.await?? {
            page.push(d);
        }
    }
    snapshots.push(Snapshot {
        label: "after room pages, sockets closed",
        res: server.resources()?,
    });

    Ok(Measured {
        posts_measured: measured.len(),
        sign_in: sign_ins,
        latency,
        latency_all_lost,
        latency_rate,
        latency_errors,
        latency_elapsed,
        latency_server_cpu_s,
        post_answer,
        schedule_lag,
        resyncs,
        closed,
        sustained,
        sustained_delivery,
        raw_pre,
        raw_post,
        page,
        snapshots,
    })
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
    fn counts_lost_and_duplicate_deliveries() {
        let t0 = Instant::now();
        let post = |seq, room| Post {
            seq,
            room,
            scheduled: t0,
            sent: t0,
            answered: t0,
            status: 201,
        };
        let (a, b) = (post(0, 0), post(1, 1));
        let at = |ms| t0 + Duration::from_millis(ms);
        let mut received = HashMap::new();
        // Room 0 = members 0, 1; room 1 = members 2, 3.
        received.insert(0, vec![(0, at(3)), (1, at(5)), (1, at(6))]);
        received.insert(1, vec![(2, at(4)), (0, at(9))]);
        let d = delivery(&[&a, &b], &received, 2);
        assert_eq!(d.expected, 4);
        assert_eq!(d.delivered, 3);
        assert_eq!(d.lost, 1);
        assert_eq!(d.duplicates, 2, "a repeat and a delivery to a non-member");
        assert_eq!(d.all_members.summary().unwrap().n, 1);
        assert!((d.all_members.summary().unwrap().max_ms - 5.0).abs() < 1e-9);
    }

    #[test]
    fn reads_cpu_time_of_this_process() {
        assert!(cpu_seconds(std::process::id()).unwrap() >= 0.0);
    }
}
