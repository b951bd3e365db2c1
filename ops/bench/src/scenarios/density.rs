//! `density`: many practices on one node. Creates the practices, starts the server, touches
//! each once over HTTP (`GET /` opens its `platform.sqlite`), then reads the server's memory
//! and open descriptors and reports cold vs warm request latency.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::bail;
use reqwest::StatusCode;
use serde_json::json;

use crate::fixtures::{self, Node};
use crate::report::{Goal, Report};
use crate::server::{self, Listen, Resources, ServerProcess, Workdir};
use crate::stats::Samples;

const DEFAULT_PRACTICES: usize = 1000;
/// Goal: resident memory of the server with 1,000 touched practices.
const RSS_GOAL_MB: f64 = 150.0;
/// Goal: p99 of the first request to a practice since server start.
const COLD_P99_GOAL_MS: f64 = 20.0;
/// The registry lookup cache of the server trusts an entry this long (StoreSettings).
const REGISTRY_TTL: Duration = Duration::from_secs(2);

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Practices to create and touch
    #[arg(long, default_value_t = DEFAULT_PRACTICES)]
    pub practices: usize,
    /// Most recently touched practices to request again after the registry cache expired
    #[arg(long, default_value_t = 200)]
    pub revisit: usize,
    /// Server setting `limits.max_open_practices` (default: the server's default, 256)
    #[arg(long)]
    pub max_open_practices: Option<usize>,
}

/// What one run measured while the server was up.
struct Measured {
    baseline: Resources,
    touched: Resources,
    gauges: BTreeMap<String, f64>,
    cold: Samples,
    warm: Samples,
    revisit: Samples,
}

pub async fn run(args: &Args) -> anyhow::Result<Report> {
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
    let create_trend = created.trend(10);
    println!("  done: {create}");
    println!(
        "  mean per tenth of the run (ms): {}",
        super::fmt_ms(&create_trend)
    );

    let max_open = args.max_open_practices.map(|n| n.to_string());
    let mut env = Vec::new();
    if let Some(n) = &max_open {
        env.push(("KOLLEGIUM_LIMITS__MAX_OPEN_PRACTICES", n.as_str()));
    }
    let server = ServerProcess::start(&binary, &workdir, listen, &env).await?;
    println!(
        "Server pid {} on {} (operator {})",
        server.pid(),
        server.addr,
        server.operator_addr
    );
    let outcome = measure(&server, &slugs, args.revisit).await;
    let stopped = server.stop().await;
    let Measured {
        baseline,
        touched,
        gauges,
        cold,
        warm,
        revisit,
    } = outcome?;
    let shutdown = stopped?;

    let summary = |s: &Samples, what: &str| {
        s.summary()
            .ok_or_else(|| anyhow::anyhow!("no samples for {what}"))
    };
    let cold_trend = cold.trend(10);
    let cold = summary(&cold, "cold")?;
    let warm = summary(&warm, "warm")?;
    let revisit = revisit.summary();

    println!(
        "\ndensity — {} practices, each touched once (GET / = 200):",
        slugs.len()
    );
    println!(
        "  server RSS: baseline {:.1} MB -> {:.1} MB after touching (peak {:.1} MB), {} threads",
        baseline.rss_mb, touched.rss_mb, touched.peak_rss_mb, touched.threads
    );
    println!(
        "  open fds:   baseline {} -> {} after touching {:?} (soft limit {:?})",
        baseline.fds, touched.fds, touched.fds_by_kind, touched.max_open_files
    );
    println!("  server gauges: {gauges:?}");
    println!("  cold first request:          {cold}");
    println!(
        "  cold, mean per tenth (ms):   {}",
        super::fmt_ms(&cold_trend)
    );
    println!("  warm second request:         {warm}");
    if let Some(r) = &revisit {
        println!("  warm, registry cache expired: {r}");
    }
    println!("  shutdown after SIGTERM: {:.2} s", shutdown.as_secs_f64());

    let goals = vec![
        Goal::at_most(
            match slugs.len() {
                DEFAULT_PRACTICES => "server RSS, 1,000 touched practices".to_owned(),
                n => format!("server RSS, {n} touched practices (goal is for 1,000)"),
            },
            touched.rss_mb,
            RSS_GOAL_MB,
            "MB",
        ),
        Goal::at_most(
            "cold first request p99",
            cold.p99_ms,
            COLD_P99_GOAL_MS,
            "ms",
        ),
    ];
    let method = format!(
        "Real `kollegium serve` release binary as its own process (default settings, log level \
         warn) on a fresh temporary data directory; {} practices created beforehand through the \
         library; one keep-alive HTTP/1.1 connection over loopback (127.0.0.1 with `Host: \
         <slug>.localhost:<port>`), requests strictly sequential; cold = the first `GET /` of a \
         practice since server start, warm = the same request again right after; baseline = \
         the server after start with all practices registered and none touched; RSS (VmRSS) and \
         descriptors from /proc/<pid>.",
        slugs.len()
    );
    let figures = json!({
        "practices": slugs.len(),
        "server_settings": {
            "limits.max_open_practices": max_open.as_deref().unwrap_or("default (256)"),
            "other": "defaults (workers = cores, db_pool_size 4, practice_idle_secs 300)",
        },
        "create_ms": create,
        "create_mean_ms_per_tenth": create_trend,
        "baseline": baseline,
        "after_touch": touched,
        "server_gauges_after_touch": gauges,
        "cold_first_request_ms": cold,
        "cold_mean_ms_per_tenth": cold_trend,
        "warm_second_request_ms": warm,
        "warm_registry_cache_expired_ms": revisit,
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
    let mut cold = Samples::with_capacity(slugs.len());
    let mut warm = Samples::with_capacity(slugs.len());
    for (i, slug) in slugs.iter().enumerate() {
        cold.push(expect_ok(server, slug).await?);
        warm.push(expect_ok(server, slug).await?);
        if (i + 1) % 200 == 0 {
            println!("  {} touched", i + 1);
        }
    }
    let touched = server.resources()?;
    let gauges = server.gauges().await?;

    // Let every registry cache entry expire, then revisit the most recently touched practices
    // (still open: they are within the LRU cap).
    tokio::time::sleep(REGISTRY_TTL + Duration::from_millis(500)).await;
    let recent = &slugs[slugs.len().saturating_sub(revisit)..];
    let mut revisit = Samples::with_capacity(recent.len());
    for slug in recent {
        revisit.push(expect_ok(server, slug).await?);
    }
    Ok(Measured {
        baseline,
        touched,
        gauges,
        cold,
        warm,
        revisit,
    })
}

/// `GET /` on `slug`; anything but 200 ends the run.
async fn expect_ok(server: &ServerProcess, slug: &str) -> anyhow::Result<Duration> {
    let (status, took) = server.get_practice(slug, "/").await?;
    if status != StatusCode::OK {
        bail!(
            "GET / on {slug} answered {status}; server log:\n{}",
            server.log_tail()
        );
    }
    Ok(took)
}
