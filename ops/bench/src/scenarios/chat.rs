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
//!    receives. Latency = the post's intended send time (start + i / rate) → event
//!    received, per member socket, so a post that waited to be sent counts its wait; the
//!    figure from the actual send is kept beside it.
//! 2. **sustained**: closed-loop posting by many concurrent clients for a fixed time, as
//!    fast as the server answers: server CPU per post delivered to a room's members, fsync
//!    calls per post (`perf stat` on the server's syscalls), group-commit batches per post
//!    (the server's `/metrics`).
//! 3. **room page**: `GET /chat/{room}` (≥ 50 messages in the room) by concurrent
//!    signed-in clients.
//!
//! Beside each phase, the fsync and CPU probes of `conditions`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use serde_json::{Value, json};
use tokio::sync::watch;

use super::chat_client::{
    self, Delivery, PASSWORD, Post, Poster, Signed, Site, delivery, open_socket, read_socket,
    username,
};
use crate::conditions::Conditions;
use crate::fixtures::{self, Node};
use crate::load::{cpu_seconds, thread_cpu_delta, thread_cpu_seconds};
use crate::report::{Goal, Report};
use crate::server::{self, Listen, Resources, ServerProcess, Workdir};
use crate::stats::{Samples, Summary};
use crate::syscalls::{self, FsyncCounter};

/// Goal: p99 of intended send → delivered at 100 messages/s.
const LATENCY_P99_GOAL_MS: f64 = 50.0;
/// Goal: server CPU per post delivered to a room's members (sustained phase).
const CPU_PER_POST_GOAL_US: f64 = 100.0;
/// Time the sockets get to deliver the last events of a phase.
const GRACE: Duration = Duration::from_secs(5);

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
}

pub fn run(args: &Args, cond: &Conditions) -> anyhow::Result<Report> {
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
    rt.block_on(run_async(args, cond))
}

/// A signed-in member of one room.
struct Person {
    username: String,
    id: i64,
    room: usize,
    signed: Signed,
}

impl Person {
    fn poster(&self) -> Poster<'_> {
        Poster {
            http: &self.signed.http,
            cookie: None,
            csrf: &self.signed.csrf,
            room: self.room,
        }
    }
}

struct Snapshot {
    label: &'static str,
    res: Resources,
}

/// Server counters of a phase: CPU, fsync calls, group-commit batches and their jobs.
#[derive(Debug, Clone, serde::Serialize)]
struct Costs {
    posts: usize,
    wall_s: f64,
    server_cpu_s: f64,
    driver_cpu_s: f64,
    /// `None`: perf could not count them.
    fsyncs: Option<u64>,
    group_commits: f64,
    group_commit_jobs: f64,
    /// Server CPU seconds by thread name (live threads at the end; see
    /// [`crate::load::thread_cpu_seconds`]), largest first.
    by_thread: Vec<(String, f64)>,
}

impl Costs {
    fn json(&self) -> Value {
        let per = |v: f64| v / self.posts.max(1) as f64;
        json!({
            "counters": self,
            "server_cpu_us_per_post": per(self.server_cpu_s) * 1e6,
            "driver_cpu_us_per_post": per(self.driver_cpu_s) * 1e6,
            "fsyncs_per_post": self.fsyncs.map(|f| per(f as f64)),
            "group_commits_per_post": per(self.group_commits),
            "jobs_per_group_commit": self.group_commit_jobs / self.group_commits.max(1.0),
            "posts_per_s": self.posts as f64 / self.wall_s.max(1e-9),
            "server_cpu_us_per_post_by_thread": self
                .by_thread
                .iter()
                .map(|(name, s)| (name.clone(), json!(per(*s) * 1e6)))
                .collect::<serde_json::Map<String, Value>>(),
        })
    }

    fn print(&self, label: &str) {
        let per = |v: f64| v / self.posts.max(1) as f64;
        let fsyncs = self
            .fsyncs
            .map_or("not counted (perf unavailable)".to_owned(), |f| {
                format!("{:.2}", per(f as f64))
            });
        println!(
            "    {label}: server CPU {:.0} µs per post (driver {:.0} µs); fsyncs per post {fsyncs}; \
             group commits per post {:.2} ({:.1} jobs each)",
            per(self.server_cpu_s) * 1e6,
            per(self.driver_cpu_s) * 1e6,
            per(self.group_commits),
            self.group_commit_jobs / self.group_commits.max(1.0),
        );
        let threads: Vec<String> = self
            .by_thread
            .iter()
            .take(8)
            .map(|(name, s)| format!("{name} {:.0}", per(*s) * 1e6))
            .collect();
        println!("      by thread (µs per post): {}", threads.join(", "));
    }
}

/// Starts counting a phase's costs.
struct CostMeter {
    server_pid: u32,
    wall: Instant,
    server_cpu: f64,
    driver_cpu: f64,
    fsync: Option<FsyncCounter>,
    gauges: BTreeMap<String, f64>,
    threads: BTreeMap<String, f64>,
}

const BATCHES: &str = "kollegium_group_commit_batch_size_count";
const JOBS: &str = "kollegium_group_commit_batch_size_sum";

impl CostMeter {
    async fn start(server: &ServerProcess) -> anyhow::Result<Self> {
        let fsync = FsyncCounter::attach(server.pid());
        if fsync.is_some() {
            tokio::time::sleep(syscalls::ATTACH).await;
        }
        Ok(Self {
            server_pid: server.pid(),
            gauges: server.gauges().await?,
            threads: thread_cpu_seconds(server.pid()),
            wall: Instant::now(),
            server_cpu: cpu_seconds(&server.pid().to_string()).unwrap_or(f64::NAN),
            driver_cpu: cpu_seconds("self").unwrap_or(f64::NAN),
            fsync,
        })
    }

    async fn stop(self, server: &ServerProcess, posts: usize) -> anyhow::Result<Costs> {
        let wall_s = self.wall.elapsed().as_secs_f64();
        let server_cpu_s =
            cpu_seconds(&self.server_pid.to_string()).unwrap_or(f64::NAN) - self.server_cpu;
        let driver_cpu_s = cpu_seconds("self").unwrap_or(f64::NAN) - self.driver_cpu;
        let by_thread = thread_cpu_delta(&self.threads, &thread_cpu_seconds(self.server_pid));
        let fsyncs = self.fsync.and_then(FsyncCounter::stop);
        let after = server.gauges().await?;
        let delta = |k: &str| {
            after.get(k).copied().unwrap_or(0.0) - self.gauges.get(k).copied().unwrap_or(0.0)
        };
        Ok(Costs {
            posts,
            wall_s,
            server_cpu_s,
            driver_cpu_s,
            fsyncs,
            group_commits: delta(BATCHES),
            group_commit_jobs: delta(JOBS),
            by_thread,
        })
    }
}

async fn run_async(args: &Args, cond: &Conditions) -> anyhow::Result<Report> {
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
        tokio::task::spawn_blocking(move || {
            // The server's default (production) parameters: sign-in verifies a real-cost hash.
            let hasher = kollegium_idp::passwords::Hasher::new(Default::default())?;
            let hash = hasher.hash_blocking(PASSWORD)?;
            chat_client::create_users(&dir, &slug, n_members, &hash)
        })
        .await??
    };
    println!(
        "  {n_members} accounts in {:.1} s",
        users_took.as_secs_f64()
    );

    let burst = args.post_burst.to_string();
    let server = ServerProcess::start(
        &binary,
        &workdir,
        listen,
        &[("KOLLEGIUM_LIMITS__CHAT_POST_BURST", burst.as_str())],
    )
    .await?;
    cond.watch_pid(server.pid());
    println!("Server pid {} on {}", server.pid(), server.addr);
    let site = Site {
        slug: slug.clone(),
        port: server.addr.port(),
    };
    let outcome = measure(args, &server, &site, cond).await;
    let stopped = server.stop().await;
    let m = outcome?;
    let shutdown = stopped?;
    report(args, &m, users_took, shutdown)
}

fn report(
    args: &Args,
    m: &Measured,
    users_took: Duration,
    shutdown: Duration,
) -> anyhow::Result<Report> {
    let n_members = args.rooms * args.members_per_room;
    let lat = &m.latency;
    let per = lat
        .per_member
        .summary()
        .context("no deliveries in the latency phase")?;
    let per_sent = lat.per_member_sent.summary();
    let all = lat.all_members.summary();
    let page = m.page.summary().context("no room page loads")?;
    let s = &m.sustained;
    let server_us = s.costs.server_cpu_s * 1e6 / s.costs.posts.max(1) as f64;

    println!(
        "\nchat — {} rooms × {} members, one practice:",
        args.rooms, args.members_per_room
    );
    let line = |s: Option<Summary>| s.map(|s| s.to_string()).unwrap_or_default();
    println!(
        "  sign-in (real flow, {n_members} members): {}",
        line(m.sign_in.summary())
    );
    println!(
        "  latency phase: {} posts at {}/s over {} s after {} s warm-up, achieved {:.1} posts/s, {} non-201",
        m.posts_measured, args.rate, args.duration, args.warmup, m.latency_rate, m.latency_errors
    );
    println!("    intended send -> delivered, per member:  {per}");
    println!(
        "    POST sent -> delivered, per member:      {}",
        line(per_sent)
    );
    println!("    intended send -> delivered, all members: {}", line(all));
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
    println!("    POST answer time: {}", line(m.post_answer.summary()));
    println!(
        "    schedule lag (intended -> sent): {}",
        line(m.schedule_lag.summary())
    );
    m.latency_costs.print("costs at this rate");
    println!(
        "  sustained: {} posts in {:.1} s = {:.1} posts/s; {} refused (429: {}); deliveries expected {} delivered {} lost {}",
        s.costs.posts,
        s.costs.wall_s,
        s.costs.posts as f64 / s.costs.wall_s.max(1e-9),
        s.failed,
        s.rate_limited,
        s.delivery.expected,
        s.delivery.delivered,
        s.delivery.lost
    );
    println!("    POST answer time: {}", line(s.answer.summary()));
    s.costs.print("costs");
    println!("  room page ({} clients): {page}", args.page_clients);
    for snap in &m.snapshots {
        let r = &snap.res;
        println!(
            "  {}: RSS {:.1} MB (peak {:.1}), {} threads, {} fds {:?}",
            snap.label, r.rss_mb, r.peak_rss_mb, r.threads, r.fds, r.fds_by_kind
        );
    }
    println!("  shutdown after SIGTERM: {:.2} s", shutdown.as_secs_f64());

    let mut goals = vec![Goal::at_most(
        format!(
            "intended send -> delivered p99 per member at {}/s",
            args.rate
        ),
        per.p99_ms,
        LATENCY_P99_GOAL_MS,
        "ms",
    )];
    if let Some(a) = all {
        goals.push(Goal::at_most(
            format!(
                "intended send -> delivered to all room members p99 at {}/s",
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
    goals.push(Goal::at_most(
        format!(
            "server CPU per post delivered to {} members (sustained)",
            args.members_per_room
        ),
        server_us,
        CPU_PER_POST_GOAL_US,
        "µs",
    ));

    let method = format!(
        "Real `kollegium serve` release binary as its own process (default settings, log level \
         warn) on a fresh temporary data directory; one practice, {n_members} accounts created \
         in-process in its IdP database (one argon2id hash with the default parameters, shared), \
         each signed in over HTTP through the real flow (/auth/login -> /id/authorize -> login \
         form -> /auth/callback), own cookie jar, then one WebSocket per member (session cookie, \
         Origin of the practice); {} private rooms of {} members created over the JSON API. \
         Latency phase: open loop, one POST /api/chat/rooms/R/messages every {:.1} ms, poster = \
         next member in turn (each member {:.2} posts/s), body `bench <seq>`; latency = the \
         post's intended send time (start + i × period) -> the socket task read the event, per \
         member socket (the figure from the actual send beside it), for posts scheduled after {} \
         s of warm-up over {} s. Sustained phase: {} clients post in a closed loop for {} s \
         (poster = next member in turn; per-member posting burst {}), sockets stay open; server \
         CPU per post = server CPU time of the phase / posts answered 201 (each delivered to its \
         room's members); fsyncs per post = fsync + fdatasync calls of the server process \
         (perf stat on the syscall tracepoints) / posts; group commits per post from the \
         server's /metrics (kollegium_group_commit_batch_size). Room page: {} signed-in clients \
         load GET /chat/R in a closed loop for {} s. Probes of the disk (fsync) and the CPU \
         before and after each phase. The driver (tokio, 2 threads) runs on the same cores as \
         the server.",
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
    let snapshots: serde_json::Map<String, Value> = m
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
            "intended_to_delivered_per_member_ms": per,
            "sent_to_delivered_per_member_ms": per_sent,
            "intended_to_delivered_all_members_ms": all,
            "sent_to_delivered_all_members_ms": lat.all_members_sent.summary(),
            "events_expected": lat.expected,
            "events_delivered": lat.delivered,
            "events_lost": lat.lost,
            "events_duplicated": lat.duplicates,
            "events_lost_incl_warmup": m.latency_all_lost,
            "resyncs": m.resyncs,
            "sockets_closed_early": m.closed,
            "post_answer_ms": m.post_answer.summary(),
            "schedule_lag_ms": m.schedule_lag.summary(),
            "costs": m.latency_costs.json(),
        },
        "sustained_phase": {
            "concurrency": args.concurrency,
            "posts_ok": s.costs.posts,
            "posts_refused": s.failed,
            "posts_rate_limited": s.rate_limited,
            "post_answer_ms": s.answer.summary(),
            "events_expected": s.delivery.expected,
            "events_delivered": s.delivery.delivered,
            "events_lost": s.delivery.lost,
            "costs": s.costs.json(),
        },
        "room_page": {
            "clients": args.page_clients,
            "messages_on_page": 50,
            "get_ms": page,
        },
        "resources": snapshots,
        "shutdown_s": shutdown.as_secs_f64(),
    });
    Ok(Report::new("chat", method, figures, goals))
}

struct Sustained {
    failed: usize,
    rate_limited: usize,
    answer: Samples,
    costs: Costs,
    delivery: Delivery,
}

struct Measured {
    posts_measured: usize,
    sign_in: Samples,
    latency: Delivery,
    latency_all_lost: usize,
    latency_rate: f64,
    latency_errors: usize,
    latency_costs: Costs,
    post_answer: Samples,
    schedule_lag: Samples,
    resyncs: usize,
    closed: Vec<String>,
    sustained: Sustained,
    page: Samples,
    snapshots: Vec<Snapshot>,
}

/// Signs every member in and creates the rooms.
async fn set_up(args: &Args, site: &Site) -> anyhow::Result<(Vec<Person>, Vec<i64>, Samples)> {
    let n_members = args.rooms * args.members_per_room;
    println!("Signing in {n_members} members through the IdP");
    let who = (0..n_members)
        .map(|i| (site.clone(), username(i)))
        .collect();
    let signed = chat_client::sign_in_all(who, 8).await?;
    let mut sign_in = Samples::with_capacity(n_members);
    for s in &signed {
        sign_in.push(s.took);
    }
    // Member ids (the platform knows members once they signed in).
    let first = signed.first().context("nobody signed in")?;
    let ids = chat_client::member_ids(site, &first.http, None).await?;
    let mut persons = Vec::with_capacity(n_members);
    for (i, signed) in signed.into_iter().enumerate() {
        let username = username(i);
        let id = *ids
            .get(&username)
            .with_context(|| format!("{username} is not a member"))?;
        persons.push(Person {
            username,
            id,
            room: i / args.members_per_room,
            signed,
        });
    }
    // Private rooms, created by their first member with the others invited.
    let mut rooms = Vec::with_capacity(args.rooms);
    for r in 0..args.rooms {
        let group = &persons[r * args.members_per_room..(r + 1) * args.members_per_room];
        let (owner, others) = group.split_first().context("empty room")?;
        let members: Vec<i64> = others.iter().map(|p| p.id).collect();
        let id = chat_client::create_room(site, &owner.poster(), &format!("Raum {r:02}"), &members)
            .await
            .with_context(|| format!("room of {}", owner.username))?;
        rooms.push(id);
    }
    Ok((persons, rooms, sign_in))
}

async fn measure(
    args: &Args,
    server: &ServerProcess,
    site: &Site,
    cond: &Conditions,
) -> anyhow::Result<Measured> {
    let n_members = args.rooms * args.members_per_room;
    let mut snapshots = vec![Snapshot {
        label: "after start",
        res: server.resources()?,
    }];
    let (persons, rooms, sign_in) = set_up(args, site).await?;
    let (persons, rooms) = (Arc::new(persons), Arc::new(rooms));
    snapshots.push(Snapshot {
        label: "signed in, rooms created",
        res: server.resources()?,
    });

    // One socket per member.
    println!("Opening {n_members} WebSockets");
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut readers = Vec::with_capacity(n_members);
    for p in persons.iter() {
        let ws = open_socket(site, &p.signed.cookie)
            .await
            .with_context(|| format!("socket of {}", p.username))?;
        readers.push(tokio::spawn(read_socket(ws, stop_rx.clone(), None)));
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
    let before = cond.before("the latency phase");
    let meter = CostMeter::start(server).await?;
    let start = tokio::time::Instant::now() + Duration::from_millis(50);
    let mut tick = tokio::time::interval_at(start, period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut inflight = Vec::with_capacity(total_posts);
    for i in 0..total_posts {
        // The tick's own deadline: the intended send time, however late the tick fires.
        let scheduled = tick.tick().await.into_std();
        // Next member in turn, spread over the rooms: member i mod n, rooms interleaved.
        let member =
            (i % args.rooms) * args.members_per_room + (i / args.rooms) % args.members_per_room;
        let (persons, rooms, site) = (persons.clone(), rooms.clone(), site.clone());
        inflight.push(tokio::spawn(async move {
            let p = &persons[member];
            chat_client::post(&site, &p.poster(), rooms[p.room], i as u64, scheduled).await
        }));
    }
    let mut posts = Vec::with_capacity(total_posts);
    for t in inflight {
        posts.push(t.await??);
    }
    let latency_costs = meter.stop(server, posts.len()).await?;
    cond.after("the latency phase", &before);
    let latency_rate = posts.len() as f64
        / posts.last().map_or(1.0, |p| {
            p.sent
                .duration_since(start.into_std())
                .as_secs_f64()
                .max(1e-9)
        });
    snapshots.push(Snapshot {
        label: "end of latency phase",
        res: server.resources()?,
    });
    // Let the last events arrive before the sustained phase adds more.
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Phase 2: closed loop, as fast as the server answers.
    println!(
        "Sustained phase: {} posts in flight for {} s",
        args.concurrency, args.sustained
    );
    let before = cond.before("the sustained phase");
    let seq0 = total_posts as u64;
    let counter = Arc::new(AtomicUsize::new(0));
    let meter = CostMeter::start(server).await?;
    let until = Instant::now() + Duration::from_secs(args.sustained);
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
                let p = &persons[k % persons.len()];
                let seq = seq0 + k as u64;
                out.push(
                    chat_client::post(&site, &p.poster(), rooms[p.room], seq, Instant::now())
                        .await?,
                );
            }
            Ok::<_, anyhow::Error>(out)
        }));
    }
    let mut sposts = Vec::new();
    for w in workers {
        sposts.extend(w.await??);
    }
    let s_ok: Vec<&Post> = sposts.iter().filter(|p| p.status == 201).collect();
    let costs = meter.stop(server, s_ok.len()).await?;
    cond.after("the sustained phase", &before);
    snapshots.push(Snapshot {
        label: "end of sustained phase",
        res: server.resources()?,
    });
    // Let the last events arrive before the sockets are stopped.
    tokio::time::sleep(GRACE).await;
    stop_tx.send(true)?;
    let got = chat_client::collect(readers).await?;

    let ok_posts: Vec<&Post> = posts.iter().filter(|p| p.status == 201).collect();
    let latency_errors = posts.len() - ok_posts.len();
    let measured: Vec<&Post> = ok_posts
        .iter()
        .copied()
        .filter(|p| p.seq as usize >= warmup_posts)
        .collect();
    let latency = delivery(&measured, &got.received, args.members_per_room);
    let latency_all_lost = delivery(&ok_posts, &got.received, args.members_per_room).lost;
    let mut post_answer = Samples::with_capacity(measured.len());
    let mut schedule_lag = Samples::with_capacity(measured.len());
    for p in &measured {
        post_answer.push(p.answered.duration_since(p.sent));
        schedule_lag.push(p.sent.saturating_duration_since(p.scheduled));
    }
    let mut answer = Samples::with_capacity(s_ok.len());
    for p in &s_ok {
        answer.push(p.answered.duration_since(p.sent));
    }
    let sustained = Sustained {
        failed: sposts.len() - s_ok.len(),
        rate_limited: sposts.iter().filter(|p| p.status == 429).count(),
        answer,
        costs,
        delivery: delivery(&s_ok, &got.received, args.members_per_room),
    };

    let page = room_pages(args, site, &persons, &rooms).await?;
    snapshots.push(Snapshot {
        label: "after room pages, sockets closed",
        res: server.resources()?,
    });

    Ok(Measured {
        posts_measured: measured.len(),
        sign_in,
        latency,
        latency_all_lost,
        latency_rate,
        latency_errors,
        latency_costs,
        post_answer,
        schedule_lag,
        resyncs: got.resyncs,
        closed: got.closed,
        sustained,
        page,
        snapshots,
    })
}

/// Phase 3: the room page, by signed-in clients of several rooms.
async fn room_pages(
    args: &Args,
    site: &Site,
    persons: &Arc<Vec<Person>>,
    rooms: &Arc<Vec<i64>>,
) -> anyhow::Result<Samples> {
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
                let resp = p.signed.http.get(&url).send().await?;
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
    Ok(page)
}
