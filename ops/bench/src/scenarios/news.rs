//! `news`: signed broadcasts reaching the nodes. An operator process (a `kollegium serve` of
//! its own with no practices, serving `/feed` on its operator listener) and `--nodes` node
//! processes with `--practices` practices each, every node syncing from that one feed on a
//! short interval. The driver publishes `--messages` messages through the library
//! (`OperatorFeed::publish` on the operator's `operator.sqlite`, signed with its
//! `operator.key`, as `kollegium news publish` does) and measures
//!
//! - the **time until every node has verified and stored all of them**, from the first
//!   publish until each node's `kollegium_broadcast_last_seq` on its `/metrics` shows the last
//!   seq (the gauge is set after the entries' transaction committed), polled every
//!   [`POLL`];
//! - the **node's CPU per verified entry**: the node process's CPU between the first publish
//!   and the moment its gauge showed the last seq (per thread, `/proc/<pid>/task/*/schedstat`,
//!   in ns), less what the node spends idle over the same time (measured right before, with
//!   the same polling and the same sync rounds), divided by the entries;
//! - in the same run, the driver's **raw Ed25519 verifications per CPU-second**
//!   (`ed25519-dalek`'s `verify_strict`, the node's crate and call, over the domain prefix and
//!   the payloads of messages of the same size), before and after the phase (a baseline that
//!   moved makes the run busy), and the library's whole check of an entry without the
//!   database (`Entry::verify`: signature, JSON, sizes, catalogue ids);
//! - the ratio of the two: CPU per verified entry ÷ CPU of one raw verification.
//!
//! The issue sets no numeric goal: the figures are reported as measured. The nodes' sync
//! interval is set to `--sync-interval` seconds (1, the least the configuration accepts;
//! the server's default is 60), and publishing starts right after a sync round of the first
//! node ended, so the time is mostly the wait for its next round: nearly one interval, a
//! message's worst case.
//!
//! Smoke run with a debug server: `KOLLEGIUM_BENCH_SERVER=target/debug/kollegium
//! target/debug/kollegium-bench --repeat 1 news --practices 50 --messages 20`.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use kollegium_tenants::broadcast::{MessageId, NodeFeed, OperatorFeed, OperatorKey, PublicKey};
use kollegium_tenants::{Clock, SystemClock};
use serde_json::json;

use super::news_raw::{RawRates, draft, raw_rates, sample_entries};
use crate::conditions::Conditions;
use crate::fixtures::{self, Node};
use crate::load::{cpu_ns_between, cpu_seconds, thread_cpu_ns};
use crate::report::{Goal, Report};
use crate::server::{self, Listen, ServerProcess, Workdir};

const DEFAULT_PRACTICES: usize = 1000;
const DEFAULT_MESSAGES: usize = 100;
const DEFAULT_BODY_BYTES: usize = 1500;
/// The nodes' sync interval in the run (the server's default is 60 s; 1 is its least).
const DEFAULT_SYNC_INTERVAL: u64 = 1;
/// How often the driver reads each node's `/metrics` while waiting.
const POLL: Duration = Duration::from_millis(50);
/// How often the driver reads the first node's rounds counter to start after a round.
const ALIGN_POLL: Duration = Duration::from_millis(10);
/// The longest wait for every node to store every message, beyond the sync interval.
const STORE_TIMEOUT: Duration = Duration::from_secs(120);
/// A node counts as settled after start when it spent less than this share of a core over
/// each of two [`SETTLE_SLICE`]s in a row (its start-up sweep of every practice is done).
const SETTLE_CPU_SHARE: f64 = 0.05;
const SETTLE_SLICE: Duration = Duration::from_millis(500);
const SETTLE_TIMEOUT: Duration = Duration::from_secs(120);
/// CPU time the driver spends on each raw verification rate.
const RAW_CPU: Duration = Duration::from_millis(1500);
/// The gauges the nodes expose.
const LAST_SEQ: &str = "kollegium_broadcast_last_seq";
const ROUNDS: &str = "kollegium_broadcast_sync_rounds_total";

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Practices on each node
    #[arg(long, default_value_t = DEFAULT_PRACTICES)]
    pub practices: usize,
    /// Node processes syncing from the one operator feed (each with `--practices`
    /// practices: copies of the first node's data directory)
    #[arg(long, default_value_t = 1)]
    pub nodes: usize,
    /// Messages the operator publishes
    #[arg(long, default_value_t = DEFAULT_MESSAGES)]
    pub messages: usize,
    /// Bytes of each message's Markdown body (at most 20,000)
    #[arg(long, default_value_t = DEFAULT_BODY_BYTES)]
    pub body_bytes: usize,
    /// The nodes' `broadcast.sync_interval_secs` (default of the server: 60; 1 is the least)
    #[arg(long, default_value_t = DEFAULT_SYNC_INTERVAL)]
    pub sync_interval: u64,
    /// Seconds of idle measurement before publishing (the nodes' CPU without new entries)
    #[arg(long, default_value_t = 4)]
    pub idle_secs: u64,
}

/// One node process and what was read from it.
struct NodeRun {
    server: ServerProcess,
    workdir: Workdir,
}

/// What one node did in the publishing phase.
#[derive(Debug, Clone, serde::Serialize)]
struct NodeResult {
    /// From the first publish until the gauge showed the last seq.
    stored_after_s: f64,
    /// Node CPU in that time (all threads, ns precision) and the idle share subtracted.
    cpu_ms: f64,
    idle_cpu_ms: f64,
    /// The same from `/proc/<pid>/stat` (10 ms ticks, includes threads that ended).
    cpu_ticks_ms: f64,
    net_cpu_us_per_entry: f64,
    sync_rounds: f64,
}

pub fn run(args: &Args, cond: &Conditions) -> anyhow::Result<Report> {
    ensure!(
        args.practices > 0 && args.nodes > 0 && args.messages > 0,
        "--practices, --nodes and --messages must be at least 1"
    );
    ensure!(
        (1..=86_400).contains(&args.sync_interval),
        "--sync-interval is 1 to 86400 seconds (the server's range)"
    );
    ensure!(
        (1..=kollegium_tenants::broadcast::entry::MAX_BODY_BYTES).contains(&args.body_bytes),
        "--body-bytes is 1 to {}",
        kollegium_tenants::broadcast::entry::MAX_BODY_BYTES
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    rt.block_on(run_async(args, cond))
}

async fn run_async(args: &Args, cond: &Conditions) -> anyhow::Result<Report> {
    let binary = server::build_server_binary().await?;

    // The operator: its key and feed database made by the driver before its server starts
    // (the server finds the key and derives the public key from it).
    let op_dir = Workdir::new()?;
    let key_path = OperatorKey::default_path(&op_dir.data_dir());
    let key = OperatorKey::load_or_create(&key_path)?;
    let public = key.public();
    let feed = OperatorFeed::open(&op_dir.data_dir())?;
    let operator = ServerProcess::start(
        &binary,
        &op_dir,
        Listen::pick()?,
        // Its own node role would verify the feed too; keep it out of the phase.
        &[("KOLLEGIUM_BROADCAST__SYNC_INTERVAL_SECS", "86400")],
    )
    .await?;
    cond.watch_pid(operator.pid());
    let feed_url = format!("http://{}/feed", operator.operator_addr);
    println!("Operator pid {} serving {feed_url}", operator.pid());

    let nodes = start_nodes(args, &binary, &feed_url, &public, cond).await;
    let outcome = match nodes {
        Ok(nodes) => {
            let measured = measure(args, &nodes, &operator, feed, key, cond).await;
            let mut stopped = Ok(());
            let mut checked = Ok(());
            for n in nodes {
                let dir = n.workdir;
                if let Err(e) = n.server.stop().await {
                    stopped = Err(e);
                }
                if let Ok(m) = &measured
                    && checked.is_ok()
                {
                    checked = check_stored(&dir.data_dir(), public, &m.published);
                }
            }
            measured.and_then(|m| {
                stopped?;
                checked?;
                Ok(m)
            })
        }
        Err(e) => Err(e),
    };
    let op_stopped = operator.stop().await;
    let m = outcome?;
    op_stopped?;
    report(args, &m)
}

/// Creates the practices (once; further nodes get copies of the first node's data
/// directory) and starts the nodes, settled and synced once with the empty feed.
async fn start_nodes(
    args: &Args,
    binary: &Path,
    feed_url: &str,
    public: &PublicKey,
    cond: &Conditions,
) -> anyhow::Result<Vec<NodeRun>> {
    let first = Workdir::new()?;
    let listen = Listen::pick()?;
    println!(
        "Creating {} practices in {}",
        args.practices,
        first.data_dir().display()
    );
    let started = Instant::now();
    {
        let (dir, n) = (first.data_dir(), args.practices);
        tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
            let node = Node::open(&dir, listen.addr)?;
            for i in 0..n {
                node.create(&fixtures::slug(i))?;
                if (i + 1) % 200 == 0 {
                    println!("  {} created", i + 1);
                }
            }
            Ok(())
        })
        .await??;
    }
    println!("  done in {:.1} s", started.elapsed().as_secs_f64());
    let mut dirs = vec![(first, listen)];
    for _ in 1..args.nodes {
        let copy = Workdir::new()?;
        copy_dir(&dirs[0].0.data_dir(), &copy.data_dir())?;
        dirs.push((copy, Listen::pick()?));
    }
    let interval = args.sync_interval.to_string();
    let key = public.to_base64();
    let env = [
        ("KOLLEGIUM_BROADCAST__FEED_URL", feed_url),
        ("KOLLEGIUM_BROADCAST__PUBLIC_KEY", key.as_str()),
        ("KOLLEGIUM_BROADCAST__SYNC_INTERVAL_SECS", interval.as_str()),
        // Every practice may stay open: the practices are not what is measured here.
        (
            "KOLLEGIUM_LIMITS__MAX_OPEN_PRACTICES",
            &args.practices.to_string(),
        ),
    ];
    let mut nodes = Vec::with_capacity(dirs.len());
    for (workdir, listen) in dirs {
        let server = ServerProcess::start(binary, &workdir, listen, &env).await?;
        cond.watch_pid(server.pid());
        println!("Node pid {} on {}", server.pid(), server.addr);
        nodes.push(NodeRun { server, workdir });
    }
    for n in &nodes {
        let waited = settle(n.server.pid()).await;
        let g = n.server.gauges().await?;
        let (Some(seq), Some(rounds)) = (g.get(LAST_SEQ), g.get(ROUNDS)) else {
            bail!(
                "node {} exposes no {LAST_SEQ} / {ROUNDS} on /metrics (a server binary from before the gauges?)",
                n.server.pid()
            );
        };
        ensure!(
            *seq == 0.0,
            "node {} starts at seq {seq}, not 0",
            n.server.pid()
        );
        ensure!(*rounds >= 1.0, "node {} has not synced yet", n.server.pid());
        println!(
            "  node {} settled after {:.1} s, {rounds} sync round(s)",
            n.server.pid(),
            waited.as_secs_f64()
        );
    }
    Ok(nodes)
}

/// Waits until process `pid` is nearly idle (see [`SETTLE_CPU_SHARE`]); returns the wait.
async fn settle(pid: u32) -> Duration {
    let started = Instant::now();
    let mut quiet = 0;
    let mut last = cpu_ns_total(pid);
    while quiet < 2 && started.elapsed() < SETTLE_TIMEOUT {
        tokio::time::sleep(SETTLE_SLICE).await;
        let now = cpu_ns_total(pid);
        let share = now.saturating_sub(last) as f64 / SETTLE_SLICE.as_nanos() as f64;
        quiet = if share < SETTLE_CPU_SHARE {
            quiet + 1
        } else {
            0
        };
        last = now;
    }
    started.elapsed()
}

fn cpu_ns_total(pid: u32) -> u64 {
    thread_cpu_ns(pid).values().sum()
}

/// What the publisher did: the seqs it got, the messages in the feed, its time.
struct Published {
    seqs: Vec<i64>,
    ids: Vec<MessageId>,
    took: Duration,
}

struct Measured {
    published: Vec<MessageId>,
    /// From the first publish until the last one returned.
    last_publish_s: f64,
    nodes: Vec<NodeResult>,
    raw_before: RawRates,
    raw_after: RawRates,
    operator_cpu_ms: f64,
    idle_window_s: f64,
    /// The wait for the end of a sync round before publishing.
    aligned_s: f64,
}

async fn measure(
    args: &Args,
    nodes: &[NodeRun],
    operator: &ServerProcess,
    feed: OperatorFeed,
    key: OperatorKey,
    cond: &Conditions,
) -> anyhow::Result<Measured> {
    let target = args.messages as f64;
    let samples = sample_entries(&key, args.messages.min(100), args.body_bytes)?;
    let public = key.public();

    // Idle: the nodes' CPU without new entries, with the same polling and sync rounds.
    let idle_window = Duration::from_secs(args.idle_secs);
    let before: Vec<_> = nodes
        .iter()
        .map(|n| thread_cpu_ns(n.server.pid()))
        .collect();
    let idle_start = Instant::now();
    while idle_start.elapsed() < idle_window {
        for n in nodes {
            n.server.gauges().await?;
        }
        tokio::time::sleep(POLL).await;
    }
    let idle_s = idle_start.elapsed().as_secs_f64();
    let idle_ns_per_s: Vec<f64> = nodes
        .iter()
        .zip(&before)
        .map(|(n, b)| cpu_ns_between(b, &thread_cpu_ns(n.server.pid())) as f64 / idle_s)
        .collect();

    let samples_for_raw = samples.clone();
    let raw_before =
        tokio::task::spawn_blocking(move || raw_rates(public, &samples_for_raw, RAW_CPU)).await??;
    let probe = cond.before("publishing");

    println!(
        "Publishing {} messages of {} body bytes; {} node(s) sync every {} s",
        args.messages, args.body_bytes, args.nodes, args.sync_interval
    );
    // Start right after a sync round of the first node ended: its next round is a whole
    // interval away, so the time includes nearly one interval (a message's worst case).
    let aligned = after_a_round(&nodes[0].server, args.sync_interval).await?;
    let rounds0 = rounds(nodes).await?;
    let op_cpu0 = thread_cpu_ns(operator.pid());
    let cpu0: Vec<_> = nodes
        .iter()
        .map(|n| thread_cpu_ns(n.server.pid()))
        .collect();
    let ticks0: Vec<_> = nodes
        .iter()
        .map(|n| cpu_seconds(&n.server.pid().to_string()).unwrap_or(f64::NAN))
        .collect();
    let t0 = Instant::now();
    let (count, body_bytes) = (args.messages, args.body_bytes);
    let publisher = tokio::task::spawn_blocking(move || -> anyhow::Result<Published> {
        let mut seqs = Vec::with_capacity(count);
        for i in 0..count {
            let entry = feed.publish(&key, draft(i, body_bytes), SystemClock.now())?;
            seqs.push(entry.seq);
        }
        let took = t0.elapsed();
        let ids = feed.list()?.into_iter().map(|p| p.id).collect();
        Ok(Published { seqs, ids, took })
    });
    let mut publisher = Some(publisher);
    let mut published = None;
    let mut done: Vec<Option<NodeResult>> = vec![None; nodes.len()];
    let deadline = Duration::from_secs(args.sync_interval) + STORE_TIMEOUT;
    while done.iter().any(Option::is_none) {
        if t0.elapsed() > deadline {
            bail!("not every node stored {target} entries within {deadline:?}");
        }
        // A publisher that failed ends the run at once.
        if let Some(p) = publisher.take_if(|p| p.is_finished()) {
            published = Some(p.await??);
        }
        for (i, n) in nodes.iter().enumerate() {
            if done[i].is_some() {
                continue;
            }
            let g = n.server.gauges().await?;
            if g.get(LAST_SEQ).is_some_and(|s| *s >= target) {
                let at = t0.elapsed().as_secs_f64();
                let pid = n.server.pid();
                let cpu_ns = cpu_ns_between(&cpu0[i], &thread_cpu_ns(pid)) as f64;
                let ticks = cpu_seconds(&pid.to_string()).unwrap_or(f64::NAN) - ticks0[i];
                let idle_ns = idle_ns_per_s[i] * at;
                done[i] = Some(NodeResult {
                    stored_after_s: at,
                    cpu_ms: cpu_ns / 1e6,
                    idle_cpu_ms: idle_ns / 1e6,
                    cpu_ticks_ms: ticks * 1e3,
                    net_cpu_us_per_entry: (cpu_ns - idle_ns) / 1e3 / target,
                    sync_rounds: g.get(ROUNDS).copied().unwrap_or(f64::NAN) - rounds0[i],
                });
            }
        }
        tokio::time::sleep(POLL).await;
    }
    let published = match (published, publisher) {
        (Some(p), _) => p,
        (None, Some(p)) => p.await??,
        (None, None) => bail!("the publisher's result is lost"),
    };
    let operator_cpu_ms = cpu_ns_between(&op_cpu0, &thread_cpu_ns(operator.pid())) as f64 / 1e6;
    cond.after("publishing", &probe);
    let raw_after =
        tokio::task::spawn_blocking(move || raw_rates(public, &samples, RAW_CPU)).await??;
    cond.baseline(
        "raw Ed25519 verifications per CPU-second",
        raw_before.ed25519.per_cpu_s,
        raw_after.ed25519.per_cpu_s,
    );
    ensure!(
        published.seqs == (1..=count as i64).collect::<Vec<_>>(),
        "the feed gave seqs {:?}",
        published.seqs
    );
    Ok(Measured {
        published: published.ids,
        last_publish_s: published.took.as_secs_f64(),
        nodes: done.into_iter().flatten().collect(),
        raw_before,
        raw_after,
        operator_cpu_ms,
        idle_window_s: idle_s,
        aligned_s: aligned.as_secs_f64(),
    })
}

/// Waits until `node`'s sync rounds counter moves (a round just ended); returns the wait.
async fn after_a_round(node: &ServerProcess, interval: u64) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let limit = Duration::from_secs(2 * interval + 5);
    let first = node.gauges().await?.get(ROUNDS).copied();
    loop {
        tokio::time::sleep(ALIGN_POLL).await;
        if node.gauges().await?.get(ROUNDS).copied() != first {
            return Ok(started.elapsed());
        }
        ensure!(started.elapsed() < limit, "no sync round within {limit:?}");
    }
}

async fn rounds(nodes: &[NodeRun]) -> anyhow::Result<Vec<f64>> {
    let mut out = Vec::with_capacity(nodes.len());
    for n in nodes {
        out.push(
            n.server
                .gauges()
                .await?
                .get(ROUNDS)
                .copied()
                .unwrap_or(f64::NAN),
        );
    }
    Ok(out)
}

/// After the node stopped: its `broadcasts.sqlite` holds exactly the published messages.
fn check_stored(data_dir: &Path, public: PublicKey, published: &[MessageId]) -> anyhow::Result<()> {
    let node = NodeFeed::open(data_dir, public)?;
    let stored: BTreeSet<MessageId> = node.all()?.into_iter().map(|m| m.id).collect();
    let want: BTreeSet<MessageId> = published.iter().cloned().collect();
    ensure!(
        stored == want,
        "{} stores {} messages, {} published ({} in common)",
        data_dir.display(),
        stored.len(),
        want.len(),
        stored.intersection(&want).count()
    );
    ensure!(
        node.refusals()?.is_empty(),
        "{} refused entries: {:?}",
        data_dir.display(),
        node.refusals()?
    );
    Ok(())
}

/// Copies a stopped node's data directory (files and directories, modes kept).
fn copy_dir(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        let kind = entry.file_type()?;
        if kind.is_dir() {
            copy_dir(&src, &dst)?;
        } else if kind.is_file() {
            std::fs::copy(&src, &dst).with_context(|| format!("cannot copy {}", src.display()))?;
        }
    }
    Ok(())
}

fn report(args: &Args, m: &Measured) -> anyhow::Result<Report> {
    let n = m.nodes.len().max(1) as f64;
    let all_stored_s = m
        .nodes
        .iter()
        .map(|r| r.stored_after_s)
        .reduce(f64::max)
        .context("no node results")?;
    let cpu_us_per_entry = m.nodes.iter().map(|r| r.net_cpu_us_per_entry).sum::<f64>() / n;
    let gross_us_per_entry =
        m.nodes.iter().map(|r| r.cpu_ms).sum::<f64>() * 1e3 / n / args.messages as f64;
    let raw_per_cpu_s = (m.raw_before.ed25519.per_cpu_s + m.raw_after.ed25519.per_cpu_s) / 2.0;
    let raw_us = 1e6 / raw_per_cpu_s;
    let entry_verify_us =
        2e6 / (m.raw_before.entry_verify.per_cpu_s + m.raw_after.entry_verify.per_cpu_s);
    let ratio = cpu_us_per_entry / raw_us;

    println!(
        "\nnews — {} message(s) of {} body bytes to {} node(s) × {} practices, sync every {} s:",
        args.messages, args.body_bytes, args.nodes, args.practices, args.sync_interval
    );
    println!(
        "  published in {:.2} s; every node stored all after {all_stored_s:.2} s ({:.2} s after the last publish)",
        m.last_publish_s,
        all_stored_s - m.last_publish_s
    );
    for (i, r) in m.nodes.iter().enumerate() {
        println!(
            "  node {}: stored after {:.2} s in {} sync round(s); CPU {:.1} ms (ticks {:.0} ms), idle share {:.1} ms -> {:.1} µs per entry",
            i + 1,
            r.stored_after_s,
            r.sync_rounds,
            r.cpu_ms,
            r.cpu_ticks_ms,
            r.idle_cpu_ms,
            r.net_cpu_us_per_entry
        );
    }
    println!(
        "  raw Ed25519 verify_strict: {:.0} / {:.0} per CPU-second before / after ({raw_us:.1} µs each); \
         Entry::verify {entry_verify_us:.1} µs",
        m.raw_before.ed25519.per_cpu_s, m.raw_after.ed25519.per_cpu_s
    );
    println!(
        "  node CPU per verified entry ÷ raw verification: {ratio:.1} (gross, idle not subtracted: {:.1})",
        gross_us_per_entry / raw_us
    );
    println!(
        "  operator CPU while serving the feed: {:.1} ms",
        m.operator_cpu_ms
    );

    let goals = vec![
        Goal::measured(
            format!(
                "time until every node verified and stored all {} messages (sync interval {} s)",
                args.messages, args.sync_interval
            ),
            all_stored_s,
            "s",
        ),
        Goal::measured(
            "node CPU per verified entry (idle subtracted)",
            cpu_us_per_entry,
            "µs",
        ),
        Goal::measured(
            "raw Ed25519 verifications per CPU-second (driver, verify_strict)",
            raw_per_cpu_s,
            "/s",
        ),
        Goal::measured("node CPU per entry ÷ raw verification", ratio, "×"),
    ];
    let method = format!(
        "An operator process (`kollegium serve` on its own data directory, no practices, its \
         own sync off) serves `/feed`; {nodes} node process(es) (`kollegium serve`, each with \
         {p} practices created beforehand through the library{copies}) sync from it with \
         `broadcast.feed_url`, `broadcast.public_key` and `broadcast.sync_interval_secs = {iv}` \
         (the server's default is 60; 1 is the least it accepts). Once every node was idle \
         after start and had synced the empty feed, the driver measured the nodes' idle CPU \
         for {idle:.1} s while reading their `/metrics` every {poll} ms, then published {msgs} \
         messages ({body} body bytes, audiences in turn: everyone, a KV region, a role, a \
         specialty) through `OperatorFeed::publish` into the operator's `operator.sqlite` \
         (one transaction and signature each, as `kollegium news publish`), reading every \
         node's `kollegium_broadcast_last_seq` every {poll} ms. Publishing starts right after a \
         sync round of the first node ended (its rounds counter on `/metrics` moved, read \
         every {align} ms), so the first node's next round is nearly a whole interval away: \
         the time includes that wait, a message's worst case. Time: from the first publish \
         until a node's gauge showed the last seq (set after the entries' commit), the \
         slowest node. CPU per entry: the node process's CPU over that time (sum over its \
         threads of `/proc/<pid>/task/<tid>/schedstat`, ns) less its idle CPU rate times that \
         time, divided by the entries; mean over the nodes. Raw: the driver's \
         `ed25519_dalek::VerifyingKey::verify_strict` (the node's crate and call) over \
         `kollegium-broadcast-v1\\n` + payloads of the same size, single thread, {raw:.1} s \
         of its CPU each, before and after the phase (its CPU time from \
         `/proc/thread-self/schedstat`); ratio = CPU per entry ÷ CPU of one raw \
         verification. Afterwards every node's `broadcasts.sqlite` is checked to hold \
         exactly the published messages and no refusal.",
        nodes = args.nodes,
        p = args.practices,
        copies = if args.nodes > 1 {
            "; nodes 2.. run on copies of the first node's data directory"
        } else {
            ""
        },
        iv = args.sync_interval,
        idle = m.idle_window_s,
        poll = POLL.as_millis(),
        msgs = args.messages,
        body = args.body_bytes,
        raw = RAW_CPU.as_secs_f64(),
        align = ALIGN_POLL.as_millis(),
    );
    let figures = json!({
        "practices_per_node": args.practices,
        "nodes": args.nodes,
        "messages": args.messages,
        "body_bytes": args.body_bytes,
        "sync_interval_s": args.sync_interval,
        "publish_s": m.last_publish_s,
        "all_stored_s": all_stored_s,
        "all_stored_after_last_publish_s": all_stored_s - m.last_publish_s,
        "node_cpu_us_per_entry": cpu_us_per_entry,
        "node_cpu_us_per_entry_gross": gross_us_per_entry,
        "raw_ed25519_us": raw_us,
        "entry_verify_us": entry_verify_us,
        "ratio_cpu_per_entry_to_raw_verify": ratio,
        "raw_before": m.raw_before,
        "raw_after": m.raw_after,
        "per_node": m.nodes,
        "operator_cpu_ms": m.operator_cpu_ms,
        "idle_window_s": m.idle_window_s,
        "waited_for_a_round_s": m.aligned_s,
    });
    let mut variant = Vec::new();
    if args.practices != DEFAULT_PRACTICES {
        variant.push(format!("practices-{}", args.practices));
    }
    if args.nodes != 1 {
        variant.push(format!("nodes-{}", args.nodes));
    }
    if args.messages != DEFAULT_MESSAGES {
        variant.push(format!("messages-{}", args.messages));
    }
    if args.body_bytes != DEFAULT_BODY_BYTES {
        variant.push(format!("body-{}", args.body_bytes));
    }
    if args.sync_interval != DEFAULT_SYNC_INTERVAL {
        variant.push(format!("interval-{}", args.sync_interval));
    }
    let variant = (!variant.is_empty()).then(|| variant.join("-"));
    Ok(Report::new("news", method, figures, goals).variant(variant))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_a_data_directory() {
        let from = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(from.path().join("tenants/a")).unwrap();
        std::fs::write(from.path().join("registry.sqlite"), b"r").unwrap();
        std::fs::write(from.path().join("tenants/a/idp.sqlite"), b"i").unwrap();
        let to = tempfile::tempdir().unwrap();
        copy_dir(from.path(), &to.path().join("data")).unwrap();
        assert_eq!(
            std::fs::read(to.path().join("data/tenants/a/idp.sqlite")).unwrap(),
            b"i"
        );
        assert_eq!(
            std::fs::read(to.path().join("data/registry.sqlite")).unwrap(),
            b"r"
        );
    }
}
