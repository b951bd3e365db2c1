//! `chat-node`: live chat at node scale. Many practices on one server, each with a private
//! room whose members all have the chat socket open, and posts spread over all of them at a
//! fixed rate for a long time: latency from the intended send time, events lost, and the
//! server's memory over time (at the end, and its growth over the last minutes).
//!
//! Defaults are the goal's: 500 practices × 10 sockets (5,000), 200 posts/s, 10 minutes.
//! Every size is an option, so a short smoke run is possible (`--practices 20
//! --sockets-per-practice 5 --rate 20 --duration 60 --growth-window 30`).
//!
//! Members sign in through the real flow (one argon2 hash with the default parameters,
//! shared by all accounts); posts go over the JSON API through one shared HTTP client that
//! sends each member's own cookies and CSRF token (keep-alive connections per practice
//! host, as many browsers behind one proxy would hold them); each post is from the next
//! member of the next practice in turn. A socket the server closes for a session check
//! (when the member's access token expires, after 5 minutes here) reconnects and catches up
//! as the chat page does; messages it receives in the catch-up count with the time they
//! arrived.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use reqwest::header::HeaderValue;
use serde_json::json;
use tokio::sync::watch;

use super::chat_client::{
    self, LocalhostResolver, PASSWORD, Post, Poster, Site, delivery, open_socket, read_socket,
    username,
};
use crate::conditions::Conditions;
use crate::fixtures::{self, Node};
use crate::load::cpu_seconds;
use crate::report::{Goal, Report};
use crate::server::{self, Listen, ServerProcess, Workdir};
use crate::stats::Samples;

/// Goal: p99 of intended send → delivered, per member socket.
const LATENCY_P99_GOAL_MS: f64 = 25.0;
/// Goal: server RSS at the end of the posting phase.
const RSS_GOAL_MB: f64 = 600.0;
/// Goal: RSS growth over the last window ("no growth"; RSS reads move by about this much).
const GROWTH_GOAL_MB: f64 = 5.0;
/// Time the sockets get to deliver the last events.
const GRACE: Duration = Duration::from_secs(5);

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Practices, each with one private room of all its members
    #[arg(long, default_value_t = 500)]
    pub practices: usize,
    /// Members (each with one open socket) per practice
    #[arg(long, default_value_t = 10)]
    pub sockets_per_practice: usize,
    /// Posts per second over all practices (open loop)
    #[arg(long, default_value_t = 200)]
    pub rate: u32,
    /// Seconds of posting before the measurement starts
    #[arg(long, default_value_t = 10)]
    pub warmup: u64,
    /// Seconds of measured posting
    #[arg(long, default_value_t = 600)]
    pub duration: u64,
    /// The last seconds of the posting over which RSS must not grow
    #[arg(long, default_value_t = 300)]
    pub growth_window: u64,
    /// Seconds between RSS samples
    #[arg(long, default_value_t = 10)]
    pub sample_secs: u64,
    /// Server setting `limits.max_open_practices` (default: the number of practices, so
    /// every practice stays open)
    #[arg(long)]
    pub max_open_practices: Option<usize>,
    /// Sign-ins at a time while setting up
    #[arg(long, default_value_t = 8)]
    pub sign_in_parallel: usize,
}

/// A signed-in member: its cookies and CSRF token.
struct Member {
    cookie: HeaderValue,
    csrf: String,
}

struct Measured {
    sign_in: Samples,
    posts: Vec<Post>,
    warmup_posts: usize,
    got: chat_client::Collected,
    rss_series: Vec<(f64, f64)>,
    at_end: crate::server::Resources,
    server_cpu_s: f64,
    posting_s: f64,
    sockets: usize,
}

pub fn run(args: &Args, cond: &Conditions) -> anyhow::Result<Report> {
    ensure!(
        args.practices > 0 && args.sockets_per_practice > 0,
        "need practices and sockets"
    );
    ensure!(
        args.rate > 0 && args.duration > 0 && args.sample_secs > 0,
        "need a rate, a duration and a sample interval"
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(run_async(args, cond))
}

async fn run_async(args: &Args, cond: &Conditions) -> anyhow::Result<Report> {
    let binary = server::build_server_binary().await?;
    let workdir = Workdir::new()?;
    let listen = Listen::pick()?;
    let slugs: Vec<String> = (0..args.practices).map(fixtures::slug).collect();
    let k = args.sockets_per_practice;
    println!(
        "Creating {} practices with {k} members each in {}",
        slugs.len(),
        workdir.data_dir().display()
    );
    let created = {
        let (dir, slugs) = (workdir.data_dir(), slugs.clone());
        tokio::task::spawn_blocking(move || -> anyhow::Result<Duration> {
            let started = Instant::now();
            let hasher = kollegium_idp::passwords::Hasher::new(Default::default())?;
            let hash = hasher.hash_blocking(PASSWORD)?;
            let node = Node::open(&dir, listen.addr)?;
            for (i, slug) in slugs.iter().enumerate() {
                node.create(slug)?;
                chat_client::create_users(&dir, slug, k, &hash)?;
                if (i + 1) % 100 == 0 {
                    println!("  {} created", i + 1);
                }
            }
            Ok(started.elapsed())
        })
        .await??
    };
    println!("  done in {:.1} s", created.as_secs_f64());

    let cap = args
        .max_open_practices
        .unwrap_or(args.practices)
        .to_string();
    let server = ServerProcess::start(
        &binary,
        &workdir,
        listen,
        &[("KOLLEGIUM_LIMITS__MAX_OPEN_PRACTICES", cap.as_str())],
    )
    .await?;
    cond.watch_pid(server.pid());
    println!("Server pid {} on {}", server.pid(), server.addr);
    let outcome = measure(args, &server, &slugs, cond).await;
    let stopped = server.stop().await;
    let m = outcome?;
    stopped?;
    report(args, &m, &cap)
}

fn report(args: &Args, m: &Measured, cap: &str) -> anyhow::Result<Report> {
    let k = args.sockets_per_practice;
    let ok: Vec<&Post> = m.posts.iter().filter(|p| p.status == 201).collect();
    let non_201 = m.posts.len() - ok.len();
    let measured: Vec<&Post> = ok
        .iter()
        .copied()
        .filter(|p| p.seq as usize >= m.warmup_posts)
        .collect();
    let lat = delivery(&measured, &m.got.received, k);
    let whole = delivery(&ok, &m.got.received, k);
    // Posts that failed never reached anyone: their events count as lost too.
    let lost = whole.lost + non_201 * k;
    let per = lat.per_member.summary().context("no deliveries")?;
    let window_start = m
        .rss_series
        .last()
        .map_or(0.0, |(t, _)| t - args.growth_window as f64);
    let window: Vec<(f64, f64)> = m
        .rss_series
        .iter()
        .copied()
        .filter(|(t, _)| *t >= window_start)
        .collect();
    let growth = match (window.first(), window.last()) {
        (Some(a), Some(b)) => b.1 - a.1,
        _ => f64::NAN,
    };
    let window_s = match (window.first(), window.last()) {
        (Some(a), Some(b)) => b.0 - a.0,
        _ => 0.0,
    };
    let cpu_per_post_us = m.server_cpu_s * 1e6 / m.posts.len().max(1) as f64;

    println!(
        "\nchat-node — {} practices × {k} sockets ({} sockets), {} posts/s for {} s after {} s warm-up:",
        args.practices, m.sockets, args.rate, args.duration, args.warmup
    );
    if let Some(s) = m.sign_in.summary() {
        println!("  sign-in: {s}");
    }
    println!("  intended send -> delivered, per member: {per}");
    if let Some(s) = lat.per_member_sent.summary() {
        println!("  POST sent -> delivered, per member:     {s}");
    }
    println!(
        "  posts {} ({} non-201), events expected {} delivered {} lost {} (incl. failed posts), duplicates {}, resyncs {}, reconnects after a session check {}, sockets closed early {}",
        m.posts.len(),
        non_201,
        whole.expected + non_201 * k,
        whole.delivered,
        lost,
        whole.duplicates,
        m.got.resyncs,
        m.got.reconnects,
        m.got.closed.len()
    );
    println!(
        "  server: RSS at the end {:.1} MB (peak {:.1}), growth over the last {window_s:.0} s {growth:+.1} MB; CPU {:.0} µs per post ({:.2} cores)",
        m.at_end.rss_mb,
        m.at_end.peak_rss_mb,
        cpu_per_post_us,
        m.server_cpu_s / m.posting_s.max(1e-9)
    );
    let goals = vec![
        Goal::at_most(
            format!(
                "intended send -> delivered p99 per member, {} sockets at {}/s",
                m.sockets, args.rate
            ),
            per.p99_ms,
            LATENCY_P99_GOAL_MS,
            "ms",
        ),
        Goal::at_most("events lost", lost as f64, 0.0, "events"),
        Goal::at_most(
            "server RSS at the end of the posting",
            m.at_end.rss_mb,
            RSS_GOAL_MB,
            "MB",
        ),
        Goal::at_most(
            format!("server RSS growth over the last {window_s:.0} s of posting"),
            growth,
            GROWTH_GOAL_MB,
            "MB",
        ),
    ];
    let method = format!(
        "Real `kollegium serve` release binary (limits.max_open_practices {cap}, otherwise \
         defaults, log level warn) on a fresh data directory; {} practices created beforehand \
         through the library, {k} accounts each (one argon2id hash with the default parameters, \
         shared); every member signed in through the real flow, one private room per practice \
         with all its members, one chat WebSocket per member ({} in all). Open loop: one POST \
         /api/chat/rooms/R/messages every {:.2} ms through one shared HTTP client with each \
         member's cookies and CSRF token, post i from member (i / {}) mod {k} of practice i mod \
         {}, for {} s after {} s of warm-up. Latency = intended send time -> the socket task \
         read the event, per member socket (the figure from the actual send beside it); lost = \
         events not received by a member of the room within {} s of the end, over the whole \
         phase, failed posts included. RSS (VmRSS) sampled every {} s; growth = last sample - \
         first sample of the last {} s; the driver runs on the same cores (tokio, 2 threads).",
        args.practices,
        m.sockets,
        1000.0 / f64::from(args.rate),
        args.practices,
        args.practices,
        args.duration,
        args.warmup,
        GRACE.as_secs(),
        args.sample_secs,
        args.growth_window,
    );
    let figures = json!({
        "practices": args.practices,
        "sockets_per_practice": k,
        "sockets": m.sockets,
        "rate_per_s": args.rate,
        "warmup_s": args.warmup,
        "measured_s": args.duration,
        "max_open_practices": cap,
        "sign_in_ms": m.sign_in.summary(),
        "posts": m.posts.len(),
        "non_201": non_201,
        "intended_to_delivered_per_member_ms": per,
        "sent_to_delivered_per_member_ms": lat.per_member_sent.summary(),
        "intended_to_delivered_all_members_ms": lat.all_members.summary(),
        "events_expected": whole.expected + non_201 * k,
        "events_delivered": whole.delivered,
        "events_lost": lost,
        "events_duplicated": whole.duplicates,
        "resyncs": m.got.resyncs,
        "reconnects_after_session_check": m.got.reconnects,
        "sockets_closed_early": m.got.closed,
        "server_cpu_us_per_post": cpu_per_post_us,
        "server_cores_busy": m.server_cpu_s / m.posting_s.max(1e-9),
        "rss_at_end": m.at_end,
        "rss_growth_last_window_mb": growth,
        "rss_growth_window_s": window_s,
        "rss_series_s_mb": m.rss_series,
    });
    Ok(Report::new("chat-node", method, figures, goals))
}

async fn measure(
    args: &Args,
    server: &ServerProcess,
    slugs: &[String],
    cond: &Conditions,
) -> anyhow::Result<Measured> {
    let k = args.sockets_per_practice;
    let port = server.addr.port();
    let sites: Vec<Site> = slugs
        .iter()
        .map(|slug| Site {
            slug: slug.clone(),
            port,
        })
        .collect();
    println!("Signing in {} members through the IdPs", sites.len() * k);
    let who = sites
        .iter()
        .flat_map(|s| (0..k).map(move |j| (s.clone(), username(j))))
        .collect();
    let signed = chat_client::sign_in_all(who, args.sign_in_parallel).await?;
    let mut sign_in = Samples::with_capacity(signed.len());
    let members: Vec<Member> = signed
        .into_iter()
        .map(|s| {
            sign_in.push(s.took);
            Member {
                cookie: s.cookie,
                csrf: s.csrf,
            }
        })
        .collect();
    let shared = reqwest::Client::builder()
        .no_proxy()
        .dns_resolver(Arc::new(LocalhostResolver))
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        // Below the server's keep-alive (5 s): never reuse a connection it is closing.
        .pool_idle_timeout(Duration::from_secs(3))
        .build()?;

    println!("Creating a room per practice");
    let mut rooms = Vec::with_capacity(sites.len());
    for (p, site) in sites.iter().enumerate() {
        let owner = &members[p * k];
        let ids = chat_client::member_ids(site, &shared, Some(&owner.cookie)).await?;
        let others: Vec<i64> = (1..k)
            .map(|j| {
                ids.get(&username(j))
                    .copied()
                    .with_context(|| format!("{} is not a member at {}", username(j), site.slug))
            })
            .collect::<anyhow::Result<_>>()?;
        let poster = Poster {
            http: &shared,
            cookie: Some(&owner.cookie),
            csrf: &owner.csrf,
            room: p,
        };
        rooms.push(chat_client::create_room(site, &poster, "Team", &others).await?);
    }

    println!("Opening {} WebSockets", members.len());
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut readers = Vec::with_capacity(members.len());
    for (i, m) in members.iter().enumerate() {
        let ws = open_socket(&sites[i / k], &m.cookie)
            .await
            .with_context(|| format!("socket {i}"))?;
        let again = chat_client::Reconnect {
            site: sites[i / k].clone(),
            cookie: m.cookie.clone(),
            http: shared.clone(),
            room: rooms[i / k],
        };
        readers.push(tokio::spawn(read_socket(ws, stop_rx.clone(), Some(again))));
    }
    let sockets = readers.len();
    tokio::time::sleep(Duration::from_secs(1)).await;

    let (sites, members, rooms) = (Arc::new(sites), Arc::new(members), Arc::new(rooms));
    let period = Duration::from_secs_f64(1.0 / f64::from(args.rate));
    let total_posts = (u64::from(args.rate) * (args.warmup + args.duration)) as usize;
    let warmup_posts = (u64::from(args.rate) * args.warmup) as usize;
    println!(
        "Posting {} posts/s for {} s ({} s warm-up), RSS every {} s",
        args.rate,
        args.warmup + args.duration,
        args.warmup,
        args.sample_secs
    );
    let before = cond.before("the posting");
    let cpu0 = cpu_seconds(&server.pid().to_string()).unwrap_or(f64::NAN);
    let began = Instant::now();
    let (done_tx, done_rx) = watch::channel(false);
    let posting = async {
        let start = tokio::time::Instant::now() + Duration::from_millis(50);
        let mut tick = tokio::time::interval_at(start, period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let mut inflight = Vec::with_capacity(total_posts);
        for i in 0..total_posts {
            let scheduled = tick.tick().await.into_std();
            let p = i % args.practices;
            let member = p * k + (i / args.practices) % k;
            let (sites, members, rooms, http) = (
                sites.clone(),
                members.clone(),
                rooms.clone(),
                shared.clone(),
            );
            inflight.push(tokio::spawn(async move {
                let m = &members[member];
                let poster = Poster {
                    http: &http,
                    cookie: Some(&m.cookie),
                    csrf: &m.csrf,
                    room: p,
                };
                chat_client::post(&sites[p], &poster, rooms[p], i as u64, scheduled).await
            }));
        }
        let mut posts = Vec::with_capacity(total_posts);
        for t in inflight {
            posts.push(t.await??);
        }
        let _ = done_tx.send(true);
        Ok::<_, anyhow::Error>(posts)
    };
    let sampling = async {
        let mut series = Vec::new();
        let mut done = done_rx;
        let mut every = tokio::time::interval(Duration::from_secs(args.sample_secs));
        loop {
            tokio::select! {
                _ = every.tick() => {
                    if let Ok(r) = server.resources() {
                        series.push((began.elapsed().as_secs_f64(), r.rss_mb));
                    }
                }
                _ = done.changed() => break,
            }
        }
        series
    };
    let (posts, mut rss_series) = tokio::join!(posting, sampling);
    let posts = posts?;
    let posting_s = began.elapsed().as_secs_f64();
    let server_cpu_s = cpu_seconds(&server.pid().to_string()).unwrap_or(f64::NAN) - cpu0;
    let at_end = server.resources()?;
    rss_series.push((posting_s, at_end.rss_mb));
    cond.after("the posting", &before);
    tokio::time::sleep(GRACE).await;
    stop_tx.send(true)?;
    let got = chat_client::collect(readers).await?;
    Ok(Measured {
        sign_in,
        posts,
        warmup_posts,
        got,
        rss_series,
        at_end,
        server_cpu_s,
        posting_s,
        sockets,
    })
}
