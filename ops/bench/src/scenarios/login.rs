//! `login`: full password logins at the IdP against the raw argon2id rate of the IdP's own
//! hasher, per CPU-second; then the server's memory once every practice has had a login.
//!
//! A login is what a browser without cookies does: `GET /id/login` (form and CSRF cookie),
//! then `POST /id/login` with the form's CSRF token, user name and password. It counts only
//! if the IdP answered 303 to the start page and set its session cookie. Each client has
//! its own account (the throttle never sees a failure) and its own practice by default (so
//! the per-address throttle of one practice does not see parallel attempts from 127.0.0.1
//! either; `--practices 1` shows what it does to them).
//!
//! The raw rate runs the IdP's own `Hasher` in the driver (`kollegium_idp::passwords`: one
//! thread per core, each keeping its argon2 memory between hashes, verifying the stored hash
//! of the default parameters, exactly the server's check), alternating with the logins in
//! short slices, so both see the same machine. Each slice runs until its deadline and then
//! until the work in flight is done, so every hash or login counted had all its CPU time
//! inside the slice. The verdict compares logins per second of server CPU with hashes per
//! second of the driver's CPU: independent of what else runs on the cores.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use kollegium_idp::passwords::{Argon2Params, Hasher, Verified};
use serde::Serialize;
use serde_json::json;

use crate::browser::Browser;
use crate::conditions::Conditions;
use crate::fixtures::{self, Node};
use crate::idp;
use crate::load::{CpuMeter, CpuUse, Parts, Phase, Record, closed_loop, cpu_seconds};
use crate::report::{Goal, Report};
use crate::server::{self, Listen, ServerProcess, Workdir};

const DEFAULT_PRACTICES: usize = 100;
/// Goal: logins per server CPU-second at least this share of raw hashes per CPU-second.
const RATIO_GOAL: f64 = 0.9;
/// Untimed logins before each level (connections open, caches warm).
const WARMUP: Duration = Duration::from_secs(3);
/// Clients at a time for the pass that signs in once at every practice.
const PASS_CONCURRENCY: usize = 32;
/// The password of the raw hashing.
const RAW_PASSWORD: &str = "Bench-Kennwort-fuer-die-Rohmessung";

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Practices to create; client i signs in at practice i mod N with its own account
    #[arg(long, default_value_t = DEFAULT_PRACTICES)]
    pub practices: usize,
    /// Concurrent clients, one level after the other
    #[arg(long, value_delimiter = ',', default_values_t = [8, 32])]
    pub clients: Vec<usize>,
    /// Seconds of logins per level (in slices, each followed by a raw hashing slice)
    #[arg(long, default_value_t = 20)]
    pub seconds: u64,
    /// Length of one slice (logins or raw hashing), in milliseconds
    #[arg(long, default_value_t = 2000)]
    pub slice_ms: u64,
}

/// One slice of raw hashing in the driver.
#[derive(Debug, Clone, Copy, Serialize)]
struct RawSlice {
    hashes: u64,
    wall_s: f64,
    /// CPU seconds of the driver in the slice (nearly all of it hashing).
    cpu_s: f64,
}

/// Raw slices together.
#[derive(Debug, Clone, Copy, Serialize)]
struct RawRate {
    threads: usize,
    hashes: u64,
    wall_s: f64,
    cpu_s: f64,
    per_s: f64,
    per_cpu_s: f64,
}

impl RawRate {
    fn of(slices: &[RawSlice], threads: usize) -> Self {
        let hashes = slices.iter().map(|s| s.hashes).sum();
        let wall_s: f64 = slices.iter().map(|s| s.wall_s).sum();
        let cpu_s: f64 = slices.iter().map(|s| s.cpu_s).sum();
        Self {
            threads,
            hashes,
            wall_s,
            cpu_s,
            per_s: hashes as f64 / wall_s.max(1e-9),
            per_cpu_s: hashes as f64 / cpu_s.max(1e-9),
        }
    }
}

/// The IdP's hasher in the driver, with the stored hash it verifies.
struct Raw {
    hasher: Arc<Hasher>,
    stored: String,
    threads: usize,
}

impl Raw {
    fn new(params: Argon2Params) -> anyhow::Result<Self> {
        let hasher = Arc::new(Hasher::new(params)?);
        let stored = hasher.hash_blocking(RAW_PASSWORD)?;
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        Ok(Self {
            hasher,
            stored,
            threads,
        })
    }

    /// Verifies on the hasher's threads (two jobs per thread in flight, so none idles) until
    /// `slice` has passed and the jobs in flight are done.
    async fn slice(&self, slice: Duration) -> anyhow::Result<RawSlice> {
        let cpu_before = cpu_seconds("self").unwrap_or(f64::NAN);
        let started = Instant::now();
        let deadline = started + slice;
        let workers = (0..self.threads * 2).map(|_| async {
            let mut n = 0u64;
            while Instant::now() < deadline {
                let got = self
                    .hasher
                    .verify(RAW_PASSWORD.to_owned(), Some(self.stored.clone()))
                    .await?;
                ensure!(got == Verified::Yes, "raw verification said {got:?}");
                n += 1;
            }
            Ok::<_, anyhow::Error>(n)
        });
        let counts = futures_util::future::try_join_all(workers).await?;
        Ok(RawSlice {
            hashes: counts.iter().sum(),
            wall_s: started.elapsed().as_secs_f64(),
            cpu_s: cpu_seconds("self").unwrap_or(f64::NAN) - cpu_before,
        })
    }
}

/// One simulated user at one practice.
struct Client {
    browser: Browser,
    user: String,
    password: String,
    /// Logins left (`None`: as many as the window allows).
    budget: Option<usize>,
}

async fn login_once(c: &mut Client) -> anyhow::Result<Option<Parts>> {
    match &mut c.budget {
        Some(0) => return Ok(None),
        Some(n) => *n -= 1,
        None => {}
    }
    let t = idp::login(&mut c.browser, &c.user, &c.password).await?;
    Ok(Some(vec![
        ("GET /id/login", t.form),
        ("POST /id/login", t.submit),
    ]))
}

fn username(i: usize) -> String {
    format!("bench-{i:04}")
}

fn password(i: usize) -> String {
    format!("Bench-Kennwort-{i:04}-Sonnenblume")
}

/// A measured level: warm-up, then slices of logins, each between two slices of raw
/// hashing. Returns the logins (all slices as one phase) and the raw slices.
async fn level(
    server: &ServerProcess,
    clients: &mut [Client],
    raw: &Raw,
    seconds: u64,
    slice: Duration,
) -> anyhow::Result<(Phase, Vec<RawSlice>)> {
    closed_loop(clients, Some(Instant::now() + WARMUP), login_once).await;
    let slices = (Duration::from_secs(seconds).as_millis() / slice.as_millis().max(1)).max(1);
    let mut raws = vec![raw.slice(slice).await?];
    let mut records: Vec<Record> = Vec::new();
    let mut cpu: Option<CpuUse> = None;
    for _ in 0..slices {
        // Until the deadline, then until the logins in flight are done: all of their server
        // CPU time falls inside the meter's window.
        let meter = CpuMeter::start(server.pid());
        records.extend(closed_loop(clients, Some(Instant::now() + slice), login_once).await);
        let used = meter.stop();
        cpu = Some(cpu.map_or(used, |c| c.add(used)));
        raws.push(raw.slice(slice).await?);
    }
    let cpu = cpu.context("no slices")?;
    // Clients of several slices are the same clients.
    let mut phase = Phase::complete(&records, cpu);
    phase.clients = clients.len();
    Ok((phase, raws))
}

pub async fn run(args: &Args, cond: &Conditions) -> anyhow::Result<Report> {
    ensure!(args.practices > 0, "--practices must be at least 1");
    ensure!(
        !args.clients.is_empty() && args.clients.iter().all(|n| *n > 0),
        "--clients needs positive numbers"
    );
    ensure!(
        args.seconds > 0 && args.slice_ms > 0,
        "--seconds and --slice-ms must be positive"
    );
    let params = Argon2Params::default();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let max_clients = args.clients.iter().copied().max().unwrap_or(1);
    let binary = server::build_server_binary().await?;
    let workdir = Workdir::new()?;
    let listen = Listen::pick()?;
    let slugs: Vec<String> = (0..args.practices).map(fixtures::slug).collect();
    // Account i lives at practice i mod N: one per client, and one at every practice.
    let accounts = max_clients.max(args.practices);

    println!(
        "Creating {} practices and {accounts} accounts (argon2id m={} KiB t={} p={}) in {}",
        slugs.len(),
        params.m_kib,
        params.t,
        params.p,
        workdir.data_dir().display()
    );
    {
        let node = Node::open(&workdir.data_dir(), listen.addr)?;
        for slug in &slugs {
            node.create(slug)?;
        }
        let hasher = Hasher::new(params)?;
        for i in 0..accounts {
            let hash = hasher.hash_blocking(&password(i))?;
            node.create_user(&slugs[i % slugs.len()], &username(i), &hash)?;
        }
    }

    // Server defaults: no KOLLEGIUM_IDP__ARGON2__* setting, so the IdP hashes with
    // Argon2Params::default() (checked on the stored hashes after the run).
    let server = ServerProcess::start(&binary, &workdir, listen, &[]).await?;
    cond.watch_pid(server.pid());
    println!("Server pid {} on {}", server.pid(), server.addr);
    let outcome = measure(&server, args, &slugs, params, max_clients, cond).await;
    let stopped = server.stop().await;
    let m = outcome?;
    stopped?;

    // A server with other parameters would have re-hashed every password it checked.
    let node = Node::open(&workdir.data_dir(), listen.addr)?;
    let stored = node
        .password_hash(&slugs[0], &username(0))?
        .context("account 0 has no password hash")?;
    let expected = format!(
        "$argon2id$v=19$m={},t={},p={}$",
        params.m_kib, params.t, params.p
    );
    ensure!(
        stored.starts_with(&expected),
        "the server re-hashed with other parameters: {}",
        stored.split('$').take(4).collect::<Vec<_>>().join("$")
    );
    println!("  stored hash after the run still has the default parameters ({expected})");

    let mut goals = Vec::new();
    println!(
        "\nlogin — full password logins, argon2id m={} KiB t={} p={}, slices of {} ms:",
        params.m_kib, params.t, params.p, args.slice_ms
    );
    let mut levels = Vec::new();
    for (l, raws) in &m.levels {
        let raw = RawRate::of(raws, m.raw_threads);
        let ratio_cpu = l.per_server_cpu_s / raw.per_cpu_s;
        let ratio_wall = l.per_s / raw.per_s;
        l.print(&format!("{} clients", l.clients));
        println!(
            "      raw (IdP hasher, {} threads, {} slices): {:.2} hashes per CPU-second ({:.2}/s wall)",
            raw.threads,
            raws.len(),
            raw.per_cpu_s,
            raw.per_s
        );
        println!(
            "      per CPU-second: {:.2} logins (server) / {:.2} hashes (raw) = {ratio_cpu:.3}; \
             wall (not the verdict): {:.2}/s / {:.2}/s = {ratio_wall:.3}",
            l.per_server_cpu_s, raw.per_cpu_s, l.per_s, raw.per_s
        );
        goals.push(Goal::at_least(
            format!(
                "logins per server CPU-second / raw hashes per CPU-second, {} clients",
                l.clients
            ),
            ratio_cpu,
            RATIO_GOAL,
            "x",
        ));
        levels.push(json!({
            "clients": l.clients,
            "logins": l,
            "raw": raw,
            "raw_slices": raws,
            "ratio_per_cpu_s": ratio_cpu,
            "ratio_wall": ratio_wall,
        }));
    }
    m.pass.print("one login at every practice");
    println!(
        "  server RSS: baseline {:.1} MB, after the levels {:.1} MB, after a login at all {} \
         practices {:.1} MB (anon {:.1}, file {:.1}, shmem {:.1}; peak {:.1} MB), {} threads",
        m.baseline.rss_mb,
        m.after_levels.rss_mb,
        slugs.len(),
        m.after_pass.rss_mb,
        m.after_pass.rss_anon_mb,
        m.after_pass.rss_file_mb,
        m.after_pass.rss_shmem_mb,
        m.after_pass.peak_rss_mb,
        m.after_pass.threads
    );
    println!("  server gauges: {:?}", m.gauges);
    let failures: usize = m.levels.iter().map(|(l, _)| l.failures).sum::<usize>() + m.pass.failures;
    println!("  failed logins in all: {failures}");

    let method = format!(
        "Real `kollegium serve` release binary (server defaults: argon2id m={} KiB t={} p={}, \
         hashing on one thread per core, log level warn) on a fresh data directory with {} \
         practices and one account per client created beforehand through the library; each \
         client has its own keep-alive connection and signs in again and again as a browser \
         without cookies (GET /id/login, POST /id/login with the CSRF token; success = 303 to \
         /id/ with the IdP session cookie); client i uses account i at practice i mod {}; {} s \
         untimed warm-up per level, then {} s of logins in slices of {} ms, each slice between \
         two slices of raw hashing of the same length; every slice runs until its deadline and \
         then until the work in flight is done. Raw: the IdP's own Hasher (kollegium_idp::\
         passwords, one thread per core keeping its argon2 memory) in the driver, verifying a \
         stored hash of the default parameters with two jobs per thread in flight, server idle. \
         Verdict: logins per second of server CPU / hashes per second of driver CPU. Memory: \
         VmRSS of the server after one login at every practice ({} at a time).",
        params.m_kib,
        params.t,
        params.p,
        slugs.len(),
        slugs.len(),
        WARMUP.as_secs(),
        args.seconds,
        args.slice_ms,
        PASS_CONCURRENCY,
    );
    let figures = json!({
        "practices": slugs.len(),
        "accounts": accounts,
        "argon2": params,
        "cores": cores,
        "slice_ms": args.slice_ms,
        "levels": levels,
        "login_at_every_practice": m.pass,
        "memory": {
            "baseline": m.baseline,
            "after_levels": m.after_levels,
            "after_login_at_every_practice": m.after_pass,
            "server_gauges": m.gauges,
        },
        "stored_hash_prefix_after_run": expected,
        "failed_logins": failures,
    });
    let mut variant = Vec::new();
    if args.practices != DEFAULT_PRACTICES {
        variant.push(format!("practices-{}", args.practices));
    }
    if args.clients != [8, 32] {
        let c: Vec<String> = args.clients.iter().map(usize::to_string).collect();
        variant.push(format!("clients-{}", c.join("-")));
    }
    let variant = (!variant.is_empty()).then(|| variant.join("-"));
    Ok(Report::new("login", method, figures, goals).variant(variant))
}

struct Measured {
    raw_threads: usize,
    /// Per level: the logins, and the raw slices around and between its slices.
    levels: Vec<(Phase, Vec<RawSlice>)>,
    pass: Phase,
    baseline: crate::server::Resources,
    after_levels: crate::server::Resources,
    after_pass: crate::server::Resources,
    gauges: std::collections::BTreeMap<String, f64>,
}

async fn measure(
    server: &ServerProcess,
    args: &Args,
    slugs: &[String],
    params: Argon2Params,
    max_clients: usize,
    cond: &Conditions,
) -> anyhow::Result<Measured> {
    tokio::time::sleep(Duration::from_millis(500)).await;
    let baseline = server.resources()?;
    let mut clients = (0..max_clients)
        .map(|i| {
            Ok(Client {
                browser: Browser::new(server.addr, &slugs[i % slugs.len()])?,
                user: username(i),
                password: password(i),
                budget: None,
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    // Every account signs in once before anything is timed: a failure here is a set-up error.
    for c in &mut clients {
        idp::login(&mut c.browser, &c.user, &c.password)
            .await
            .with_context(|| format!("first login of {}", c.user))?;
    }

    let raw = Raw::new(params)?;
    let slice = Duration::from_millis(args.slice_ms);
    println!(
        "Each level: {} s of logins in slices of {} ms, alternating with raw hashing",
        args.seconds, args.slice_ms
    );
    let mut levels = Vec::new();
    for &n in &args.clients {
        let (phase, raws) = level(server, &mut clients[..n], &raw, args.seconds, slice).await?;
        phase.print(&format!("{n} clients"));
        // The machine's speed for hashing, first half of the level against the second.
        let half = raws.len() / 2;
        let (a, b) = (
            RawRate::of(&raws[..half.max(1)], raw.threads),
            RawRate::of(&raws[half..], raw.threads),
        );
        cond.baseline(
            format!("raw hashes per CPU-second, first vs second half of the {n}-client level"),
            a.per_cpu_s,
            b.per_cpu_s,
        );
        levels.push((phase, raws));
    }
    let after_levels = server.resources()?;

    println!("One login at each of the {} practices", slugs.len());
    let start = Instant::now();
    let meter = CpuMeter::start(server.pid());
    let mut records = Vec::new();
    for chunk in (0..slugs.len())
        .collect::<Vec<_>>()
        .chunks(PASS_CONCURRENCY)
    {
        let mut pass = chunk
            .iter()
            .map(|&p| {
                Ok(Client {
                    browser: Browser::new(server.addr, &slugs[p])?,
                    user: username(p),
                    password: password(p),
                    budget: Some(1),
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        records.extend(closed_loop(&mut pass, None, login_once).await);
    }
    let end = Phase::last_finish(&records).unwrap_or(start);
    let pass = Phase::of(&records, start, end, meter.stop());
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after_pass = server.resources()?;
    let gauges = server.gauges().await?;
    Ok(Measured {
        raw_threads: raw.threads,
        levels,
        pass,
        baseline,
        after_levels,
        after_pass,
        gauges,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn raw_slices_count_verified_hashes_and_cpu() {
        let cheap = Argon2Params {
            m_kib: 64,
            t: 1,
            p: 1,
        };
        let raw = Raw::new(cheap).unwrap();
        let s = raw.slice(Duration::from_millis(50)).await.unwrap();
        assert!(s.hashes >= 2, "{s:?}");
        assert!(s.wall_s >= 0.05);
        let r = RawRate::of(&[s, s], raw.threads);
        assert_eq!(r.hashes, 2 * s.hashes);
        assert!(r.per_s > 0.0);
    }
}
