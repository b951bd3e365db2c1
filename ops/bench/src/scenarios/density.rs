//! `density`: many practices on one node. Creates the practices, starts the server, touches
//! each once over HTTP, then reads the server's memory and open descriptors and reports
//! cold vs warm latency.
//!
//! A touch is what an anonymous visitor's browser does on `http://<slug>.localhost/`: `GET
//! /` and the practice's own redirects up to the first page that is not a redirect (today
//! `/` -> `/auth/login` -> `/id/authorize` -> `/id/login`, the sign-in page). That opens the
//! practice's `idp.sqlite` (the workspace keeps a pending sign-in in a sealed cookie and
//! opens none of its databases for it).
//!
//! Memory is read at a defined quiet point: after the last touch the driver closes its
//! connections and waits for the server's keep-alive timeout until no TCP connection to the
//! server is left. Cold latency is reported twice: the first request to a closed practice
//! (`GET /`, alone) and the first page load (every request up to the sign-in page), each
//! with the fsync probes of the disk taken right before and after the pass.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::bail;
use reqwest::StatusCode;
use serde_json::json;

use crate::conditions::{Conditions, Probe};
use crate::fixtures::{self, Node};
use crate::http::PageLoad;
use crate::report::{Goal, Report};
use crate::server::{self, Listen, Resources, ServerProcess, Workdir};
use crate::stats::{Grouped, Samples};
use crate::syscalls::{self, FsyncCounter};

const DEFAULT_PRACTICES: usize = 1000;
/// Goal: resident memory of the server with 1,000 touched practices.
const RSS_GOAL_MB: f64 = 150.0;
/// Goal: p99 of the first page load of a practice since server start.
const COLD_P99_GOAL_MS: f64 = 20.0;
/// The server's default `limits.max_open_practices`.
const DEFAULT_MAX_OPEN: usize = 256;
/// The server's registry lookup cache trusts an entry this long (StoreSettings).
const REGISTRY_TTL: Duration = Duration::from_secs(2);
/// The server's keep-alive timeout (actix-web's default, 5 s; its own calls to itself
/// keep idle connections as long) and a margin: the least wait before the quiet point.
const KEEP_ALIVE_AND_MARGIN: Duration = Duration::from_secs(6);

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Practices to create and touch
    #[arg(long, default_value_t = DEFAULT_PRACTICES)]
    pub practices: usize,
    /// Most recently touched practices to load again after the registry cache expired
    /// (keep it below the server's open-practice cap so they are still open)
    #[arg(long, default_value_t = 200)]
    pub revisit: usize,
    /// Server setting `limits.max_open_practices` (default: the server's default, 256)
    #[arg(long)]
    pub max_open_practices: Option<usize>,
}

/// Latencies of a set of page loads: whole loads, their first request, and each request on
/// its own.
#[derive(Default)]
struct Loads {
    total: Samples,
    first: Samples,
    by_endpoint: Grouped,
}

impl Loads {
    fn add(&mut self, load: &PageLoad) {
        self.total.push(load.total());
        if let Some(hop) = load.hops.first() {
            self.first.push(hop.took);
        }
        for hop in &load.hops {
            self.by_endpoint.push(&hop.endpoint, hop.took);
        }
    }

    fn json(&self) -> serde_json::Value {
        json!({
            "page_load_ms": self.total.summary(),
            "first_request_ms": self.first.summary(),
            "per_request_ms": self.by_endpoint.summaries(),
        })
    }

    fn print(&self, label: &str) {
        let Some(total) = self.total.summary() else {
            return;
        };
        println!("  {label}, page load: {total}");
        if let Some(first) = self.first.summary() {
            println!("  {label}, first request alone: {first}");
        }
        for n in self.by_endpoint.summaries() {
            let s = n.summary;
            println!(
                "      {:<16} p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
                n.name, s.p50_ms, s.p99_ms, s.max_ms
            );
        }
    }
}

/// What one run measured while the server was up.
struct Measured {
    baseline: Resources,
    touched: Resources,
    /// At the quiet point, and how long it took to get there (connections left, if any).
    quiet: Resources,
    quiet_wait_s: f64,
    quiet_open_connections: usize,
    /// With `KOLLEGIUM_BENCH_HEAP_PROBE=1`: the allocator's view at the quiet point and the
    /// RSS after `malloc_trim(0)` (how much of the RSS is freed heap the allocator keeps).
    heap: Option<HeapProbe>,
    gauges: BTreeMap<String, f64>,
    chain: String,
    cold: Loads,
    warm: Loads,
    revisit: Loads,
    fsync_before: Probe,
    fsync_after: Probe,
    /// fsync + fdatasync calls of the server during the touch pass (each practice once cold,
    /// once warm), `None` without `perf`.
    server_fsyncs: Option<u64>,
}

pub async fn run(args: &Args, cond: &Conditions) -> anyhow::Result<Report> {
    anyhow::ensure!(args.practices > 0, "--practices must be at least 1");
    let loadavg_before = super::loadavg();
    let binary = server::build_server_binary().await?;
    let workdir = Workdir::new()?;
    let slugs: Vec<String> = (0..args.practices).map(fixtures::slug).collect();

    println!(
        "Creating {} practices in {}",
        slugs.len(),
        workdir.data_dir().display()
    );
    let listen = Listen::pick()?;
    let created = create_all(&workdir, listen, &slugs)?;
    let create = created
        .summary()
        .ok_or_else(|| anyhow::anyhow!("no practices created"))?;
    println!("  done: {create}");

    let max_open = args.max_open_practices.map(|n| n.to_string());
    let mut env = Vec::new();
    if let Some(n) = &max_open {
        env.push(("KOLLEGIUM_LIMITS__MAX_OPEN_PRACTICES", n.as_str()));
    }
    let server = ServerProcess::start(&binary, &workdir, listen, &env).await?;
    cond.watch_pid(server.pid());
    println!(
        "Server pid {} on {} (operator {})",
        server.pid(),
        server.addr,
        server.operator_addr
    );
    let outcome = measure(&server, &slugs, args.revisit, cond).await;
    let stopped = server.stop().await;
    let m = outcome?;
    let shutdown = stopped?;

    let cold = m
        .cold
        .total
        .summary()
        .ok_or_else(|| anyhow::anyhow!("no cold samples"))?;
    let cap = args.max_open_practices.unwrap_or(DEFAULT_MAX_OPEN);
    println!(
        "\ndensity — {} practices, each touched once ({}):",
        slugs.len(),
        m.chain
    );
    println!(
        "  server RSS: baseline {:.1} MB -> {:.1} MB after touching (anon {:.1}, file {:.1}, \
         shmem {:.1}; peak {:.1} MB), {} threads",
        m.baseline.rss_mb,
        m.touched.rss_mb,
        m.touched.rss_anon_mb,
        m.touched.rss_file_mb,
        m.touched.rss_shmem_mb,
        m.touched.peak_rss_mb,
        m.touched.threads
    );
    println!(
        "  open fds:   baseline {} -> {} after touching {:?} (soft limit {:?})",
        m.baseline.fds, m.touched.fds, m.touched.fds_by_kind, m.touched.max_open_files
    );
    println!(
        "  quiet point ({:.1} s after the last touch, driver connections closed, {} connections \
         left): RSS {:.1} MB (anon {:.1}, file {:.1}, shmem {:.1}), {} fds {:?}",
        m.quiet_wait_s,
        m.quiet_open_connections,
        m.quiet.rss_mb,
        m.quiet.rss_anon_mb,
        m.quiet.rss_file_mb,
        m.quiet.rss_shmem_mb,
        m.quiet.fds,
        m.quiet.fds_by_kind
    );
    println!("  server gauges: {:?}", m.gauges);
    m.cold.print("cold (first visit since start)");
    for p in [&m.fsync_before, &m.fsync_after] {
        if let Some(f) = p.fsync {
            println!(
                "      fsync probe {}: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({:.0}/s)",
                p.label, f.p50_ms, f.p99_ms, f.max_ms, f.per_s
            );
        }
    }
    match m.server_fsyncs {
        Some(n) => println!(
            "      server fsync + fdatasync calls in the touch pass: {n} ({:.2} per practice, cold + warm load)",
            n as f64 / slugs.len().max(1) as f64
        ),
        None => println!("      server fsync calls in the touch pass: not counted (perf missing)"),
    }
    m.warm.print("warm, right after");
    m.revisit.print("warm, registry cache expired");
    println!("  shutdown after SIGTERM: {:.2} s", shutdown.as_secs_f64());

    let rss_goal = match slugs.len() {
        DEFAULT_PRACTICES => {
            format!("server RSS at the quiet point, 1,000 touched practices, at most {cap} open")
        }
        n => format!(
            "server RSS at the quiet point, {n} touched practices, at most {cap} open (goal is for 1,000)"
        ),
    };
    let goals = vec![
        Goal::at_most(rss_goal, m.quiet.rss_mb, RSS_GOAL_MB, "MB"),
        Goal::at_most(
            "cold first page load p99 (all requests)",
            cold.p99_ms,
            COLD_P99_GOAL_MS,
            "ms",
        ),
    ];
    let method = format!(
        "Real `kollegium serve` release binary as its own process (default settings, log level \
         warn) on a fresh temporary data directory; {} practices created beforehand through the \
         library; one keep-alive HTTP/1.1 connection over loopback (127.0.0.1 with `Host: \
         <slug>.localhost:<port>`), requests strictly sequential; a touch is an anonymous page \
         load: GET / and the practice's redirects until the first non-redirect ({}); cold = the \
         first load of a practice since server start (reported as the first request alone and \
         as the whole page load, with fsync probes of the data directory's disk right before and \
         after the pass), warm = the same load again right after; baseline = the server after \
         start with all practices registered and none touched; the goal's RSS (VmRSS, \
         /proc/<pid>) is read at the quiet point: the driver closed its connections, at least \
         {} s passed (the server's keep-alive timeout and a margin) and no TCP connection to the \
         server was left; at most {cap} practices open (limits.max_open_practices).",
        slugs.len(),
        m.chain,
        KEEP_ALIVE_AND_MARGIN.as_secs(),
    );
    let figures = json!({
        "practices": slugs.len(),
        "touch": m.chain,
        "server_settings": {
            "limits.max_open_practices": cap,
            "other": "defaults (workers = cores, db_pool_size 4, practice_idle_secs 300)",
        },
        "create_ms": create,
        "baseline": m.baseline,
        "after_touch_connections_open": m.touched,
        "quiet_point": m.quiet,
        "quiet_point_wait_s": m.quiet_wait_s,
        "quiet_point_connections_left": m.quiet_open_connections,
        "heap_probe": m.heap,
        "fsync_probe_before_cold": m.fsync_before.fsync,
        "fsync_probe_after_cold": m.fsync_after.fsync,
        "server_fsyncs_touch_pass": m.server_fsyncs,
        "server_fsyncs_per_practice_cold_and_warm": m
            .server_fsyncs
            .map(|n| n as f64 / slugs.len().max(1) as f64),
        "server_gauges_after_touch": m.gauges,
        "cold": m.cold.json(),
        "cold_page_load_mean_ms_per_tenth": m.cold.total.trend(10),
        "warm": m.warm.json(),
        "warm_registry_cache_expired": m.revisit.json(),
        "shutdown_s": shutdown.as_secs_f64(),
        "loadavg_before": loadavg_before,
    });
    let mut variant = Vec::new();
    if args.practices != DEFAULT_PRACTICES {
        variant.push(format!("practices-{}", args.practices));
    }
    if let Some(n) = &max_open {
        variant.push(format!("max-open-{n}"));
    }
    let variant = (!variant.is_empty()).then(|| variant.join("-"));
    Ok(Report::new("density", method, figures, goals).variant(variant))
}

fn create_all(workdir: &Workdir, listen: Listen, slugs: &[String]) -> anyhow::Result<Samples> {
    let node = Node::open(&workdir.data_dir(), listen.addr)?;
    let mut samples = Samples::with_capacity(slugs.len());
    for (i, slug) in slugs.iter().enumerate() {
        samples.push(node.create(slug)?);
        if (i + 1) % 200 == 0 {
            println!("  {} created", i + 1);
        }
    }
    Ok(samples)
}

async fn measure(
    server: &ServerProcess,
    slugs: &[String],
    revisit: usize,
    cond: &Conditions,
) -> anyhow::Result<Measured> {
    // Open the keep-alive connection on the node host (no practice lookup, nothing cached).
    let node_host = format!("localhost:{}", server.addr.port());
    for _ in 0..3 {
        server.get_host(&node_host, "/").await?;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let baseline = server.resources()?;

    println!(
        "Touching {} practices (cold, then warm), one request at a time",
        slugs.len()
    );
    let (mut cold, mut warm) = (Loads::default(), Loads::default());
    let mut chain = String::new();
    let fsync_before = cond.before("the touch pass");
    let counter = FsyncCounter::attach(server.pid());
    tokio::time::sleep(syscalls::ATTACH).await;
    for (i, slug) in slugs.iter().enumerate() {
        let first = touch(server, slug).await?;
        if i == 0 {
            chain = first.describe();
        }
        cold.add(&first);
        warm.add(&touch(server, slug).await?);
        if (i + 1) % 200 == 0 {
            println!("  {} touched", i + 1);
        }
    }
    let server_fsyncs = counter.and_then(FsyncCounter::stop);
    let touched = server.resources()?;
    let fsync_after = cond.after("the touch pass", &fsync_before);
    let gauges = server.gauges().await?;
    if gauges
        .get("kollegium_open_practices")
        .is_none_or(|n| *n < 1.0)
    {
        bail!("the touches opened no practice (gauges: {gauges:?})");
    }

    // The quiet point: no connection of the driver, idle ones of the server closed.
    let (waited, left) = server.quiet_point(KEEP_ALIVE_AND_MARGIN).await?;
    let quiet = server.resources()?;
    let heap = if std::env::var_os("KOLLEGIUM_BENCH_HEAP_PROBE").is_some() {
        Some(heap_probe(server)?)
    } else {
        None
    };

    // Let every registry cache entry expire, then load the most recently touched practices
    // again (still open while they are within the LRU cap).
    tokio::time::sleep(REGISTRY_TTL + Duration::from_millis(500)).await;
    let mut again = Loads::default();
    for slug in &slugs[slugs.len().saturating_sub(revisit)..] {
        again.add(&touch(server, slug).await?);
    }
    Ok(Measured {
        baseline,
        touched,
        quiet,
        quiet_wait_s: waited.as_secs_f64(),
        quiet_open_connections: left,
        heap,
        gauges,
        chain,
        cold,
        warm,
        revisit: again,
        fsync_before,
        fsync_after,
        server_fsyncs,
    })
}

/// An anonymous page load of `slug`'s start page; it must end in a 200 page.
async fn touch(server: &ServerProcess, slug: &str) -> anyhow::Result<PageLoad> {
    let load = server.page_load(slug, "/").await?;
    if load.status() != Some(StatusCode::OK) {
        bail!(
            "{slug}: page load ended with {}; server log:\n{}",
            load.describe(),
            server.log_tail()
        );
    }
    Ok(load)
}

/// The allocator's arenas at the quiet point (glibc's `malloc_stats`, which the server
/// prints to its log) and the RSS once the allocator gave back what it can
/// (`malloc_trim(0)`), both called in the server through gdb. A diagnosis, off by default:
/// it changes the process it measures, so it runs after the quiet-point reading.
#[derive(serde::Serialize)]
struct HeapProbe {
    /// Per arena: bytes taken from the system and bytes in use, summed over arenas.
    arenas: usize,
    system_mb: f64,
    in_use_mb: f64,
    rss_after_trim: Resources,
}

fn heap_probe(server: &ServerProcess) -> anyhow::Result<HeapProbe> {
    let before = std::fs::read_to_string(server.log_file())
        .unwrap_or_default()
        .len();
    let out = std::process::Command::new("gdb")
        .args(["-p", &server.pid().to_string(), "-batch", "-nx"])
        .args(["-ex", "call (void) malloc_stats()"])
        .args(["-ex", "call (int) malloc_trim(0)"])
        .output()
        .map_err(|e| anyhow::anyhow!("gdb (apt-get install gdb): {e}"))?;
    if !out.status.success() {
        bail!("gdb: {}", String::from_utf8_lossy(&out.stderr));
    }
    std::thread::sleep(Duration::from_millis(300));
    let text = std::fs::read_to_string(server.log_file()).unwrap_or_default();
    let stats = text.get(before..).unwrap_or_default();
    let (mut arenas, mut system, mut in_use) = (0usize, 0u64, 0u64);
    let mut in_total = false;
    for line in stats.lines() {
        let line = line.trim();
        if line.starts_with("Arena ") {
            arenas += 1;
            in_total = false;
        } else if line.starts_with("Total (incl. mmap)") {
            in_total = true;
        }
        if in_total {
            continue;
        }
        let num = |l: &str| {
            l.rsplit(' ')
                .next()
                .and_then(|n| n.trim().parse::<u64>().ok())
        };
        if line.starts_with("system bytes") {
            system += num(line).unwrap_or(0);
        } else if line.starts_with("in use bytes") {
            in_use += num(line).unwrap_or(0);
        }
    }
    let mb = |b: u64| b as f64 / (1024.0 * 1024.0);
    let probe = HeapProbe {
        arenas,
        system_mb: mb(system),
        in_use_mb: mb(in_use),
        rss_after_trim: server.resources()?,
    };
    println!(
        "  heap probe: {} arenas, {:.1} MB from the system, {:.1} MB in use; RSS after \
         malloc_trim {:.1} MB (anon {:.1})",
        probe.arenas,
        probe.system_mb,
        probe.in_use_mb,
        probe.rss_after_trim.rss_mb,
        probe.rss_after_trim.rss_anon_mb
    );
    Ok(probe)
}
