//! `provision`: how long creating one practice takes, in-process through the library (the
//! same code path as `kollegium practice create`), with no server running.

use serde_json::json;

use crate::conditions::Conditions;
use crate::fixtures::{self, Node};
use crate::report::{Goal, Report};
use crate::server::{Listen, Workdir};
use crate::stats::Samples;

const DEFAULT_COUNT: usize = 200;
/// Goal: median time to create a practice (its RSA key made with `aws-lc-rs`).
const P50_GOAL_MS: f64 = 60.0;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Practices to create
    #[arg(long, default_value_t = DEFAULT_COUNT)]
    pub count: usize,
}

/// CPU time of the calling thread so far (`/proc/thread-self/schedstat`, nanoseconds).
fn thread_cpu() -> Option<std::time::Duration> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = text.split_whitespace().next()?.parse().ok()?;
    Some(std::time::Duration::from_nanos(ns))
}

pub fn run(args: &Args, cond: &Conditions) -> anyhow::Result<Report> {
    anyhow::ensure!(args.count > 0, "--count must be at least 1");
    let loadavg_before = super::loadavg();
    let workdir = Workdir::new()?;
    // No server runs; the origin only names a port in the practices' URLs.
    let node = Node::open(&workdir.data_dir(), Listen::pick()?.addr)?;
    println!(
        "Creating {} practices in-process in {}",
        args.count,
        workdir.data_dir().display()
    );
    let mut samples = Samples::with_capacity(args.count);
    // CPU time of this thread per creation (all of a creation runs on it): the figure a
    // busy machine does not inflate.
    let mut cpu = Samples::with_capacity(args.count);
    let before = cond.before("the creations");
    let fsyncs = crate::syscalls::FsyncCounter::attach(std::process::id());
    if fsyncs.is_some() {
        std::thread::sleep(crate::syscalls::ATTACH);
    }
    for i in 0..args.count {
        let cpu0 = thread_cpu();
        samples.push(node.create(&fixtures::slug(i))?);
        if let (Some(a), Some(b)) = (cpu0, thread_cpu()) {
            cpu.push(b.saturating_sub(a));
        }
        if (i + 1) % 50 == 0 {
            println!("  {} created", i + 1);
        }
    }
    let fsyncs = fsyncs.and_then(crate::syscalls::FsyncCounter::stop);
    let fsyncs_per = fsyncs.map(|n| n as f64 / args.count as f64);
    cond.after("the creations", &before);
    let summary = samples
        .summary()
        .ok_or_else(|| anyhow::anyhow!("no samples"))?;
    let tenants = workdir.data_dir().join("tenants");
    let disk_per_practice_kb = fixtures::disk_usage(&tenants)? as f64 / 1024.0 / args.count as f64;

    println!("\nprovision — create one practice (library, in-process, no server):");
    println!("  {summary}");
    let cpu = cpu.summary();
    if let Some(c) = &cpu {
        println!("  CPU time per creation (this thread): {c}");
    }
    match fsyncs_per {
        Some(f) => println!("  fsync + fdatasync calls per creation: {f:.1}"),
        None => println!("  fsync calls not counted (perf unavailable)"),
    }
    let trend = samples.trend(10);
    println!(
        "  mean per tenth of the run (ms): {}",
        super::fmt_ms(&trend)
    );
    println!("  disk per new practice: {disk_per_practice_kb:.0} KiB");

    let method = "In-process: kollegium::practices::create (all provisioning hooks) on a fresh \
                  temporary data directory, one creation at a time, no server running; the time \
                  covers the registry lock, directory, secrets, each app's database and the \
                  registry commit. CPU time per creation from /proc/thread-self/schedstat; fsync and \
                  fdatasync calls counted with perf stat."
        .to_owned();
    let figures = json!({
        "mode": "in-process library, no server",
        "practices": args.count,
        "create_ms": summary,
        "create_cpu_ms": cpu,
        "fsyncs_per_creation": fsyncs_per,
        "create_mean_ms_per_tenth": trend,
        "disk_per_practice_kib": disk_per_practice_kb,
        "loadavg_before": loadavg_before,
    });
    let variant = (args.count != DEFAULT_COUNT).then(|| format!("count-{}", args.count));
    let goals = vec![Goal::at_most(
        "create a practice, p50",
        summary.p50_ms,
        P50_GOAL_MS,
        "ms",
    )];
    Ok(Report::new("provision", method, figures, goals).variant(variant))
}
