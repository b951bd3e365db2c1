//! `login`: full password logins per second at the IdP against the raw argon2id hash rate of
//! the same parameters on the same machine, measured in the same run; then the server's
//! memory once every practice has had a login.
//!
//! A login is what a browser without cookies does: `GET /id/login` (form and CSRF cookie),
//! then `POST /id/login` with the form's CSRF token, user name and password. It counts only
//! if the IdP answered 303 to the start page and set its session cookie. Each client has
//! its own account (the throttle never sees a failure) and its own practice by default (so
//! the per-address throttle of one practice does not see parallel attempts from 127.0.0.1
//! either; `--practices 1` shows what it does to them).

use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, ensure};
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Version};
use kollegium_idp::passwords::{Argon2Params, Hasher};
use serde::Serialize;
use serde_json::json;

use crate::browser::Browser;
use crate::fixtures::{self, Node};
use crate::idp;
use crate::load::{CpuMeter, Parts, Phase, closed_loop, cpu_seconds};
use crate::report::{Goal, Report};
use crate::server::{self, Listen, ServerProcess, Workdir};

const DEFAULT_PRACTICES: usize = 100;
/// Goal: logins per second at least this share of the raw hash rate.
const RATIO_GOAL: f64 = 0.9;
/// Untimed logins before each level (connections open, caches warm).
const WARMUP: Duration = Duration::from_secs(3);
/// Clients at a time for the pass that signs in once at every practice.
const PASS_CONCURRENCY: usize = 32;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Practices to create; client i signs in at practice i mod N with its own account
    #[arg(long, default_value_t = DEFAULT_PRACTICES)]
    pub practices: usize,
    /// Concurrent clients, one level after the other
    #[arg(long, value_delimiter = ',', default_values_t = [8, 32])]
    pub clients: Vec<usize>,
    /// Measured seconds per level
    #[arg(long, default_value_t = 20)]
    pub seconds: u64,
    /// Seconds of raw hashing before the first level and after each
    #[arg(long, default_value_t = 10)]
    pub hash_seconds: u64,
}

/// Raw argon2id throughput in the driver, one thread per core.
#[derive(Debug, Clone, Copy, Serialize)]
struct RawRate {
    threads: usize,
    hashes: u64,
    seconds: f64,
    per_s: f64,
    /// Mean time of one hash on one thread.
    ms_per_hash: f64,
    /// CPU seconds the driver spent meanwhile (nearly all of it hashing), and hashes per
    /// CPU second: independent of how much CPU other processes left over.
    cpu_s: f64,
    per_cpu_s: f64,
}

/// Verifies a password against a stored argon2id hash of `params` on `threads` threads for
/// `seconds`: exactly the work of the IdP's password check (PHC string parsed, one hash).
fn raw_hash_rate(params: Argon2Params, threads: usize, seconds: f64) -> anyhow::Result<RawRate> {
    let p =
        argon2::Params::new(params.m_kib, params.t, params.p, None).map_err(|e| anyhow!("{e}"))?;
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, p);
    let password = b"Bench-Kennwort-fuer-die-Rohmessung";
    let stored = argon
        .hash_password(password, &SaltString::generate(&mut OsRng))
        .map_err(|e| anyhow!("{e}"))?
        .to_string();
    let cpu_before = cpu_seconds("self").unwrap_or(f64::NAN);
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(seconds);
    let counts = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| -> anyhow::Result<u64> {
                    let parsed = PasswordHash::new(&stored).map_err(|e| anyhow!("{e}"))?;
                    let mut n = 0;
                    while Instant::now() < deadline {
                        argon
                            .verify_password(password, &parsed)
                            .map_err(|e| anyhow!("{e}"))?;
                        n += 1;
                    }
                    Ok(n)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().map_err(|_| anyhow!("a hashing thread panicked"))?)
            .collect::<anyhow::Result<Vec<u64>>>()
    })?;
    let elapsed = started.elapsed().as_secs_f64();
    let cpu_s = cpu_seconds("self").unwrap_or(f64::NAN) - cpu_before;
    let hashes: u64 = counts.iter().sum();
    Ok(RawRate {
        cpu_s,
        per_cpu_s: hashes as f64 / cpu_s,
        threads,
        hashes,
        seconds: elapsed,
        per_s: hashes as f64 / elapsed,
        ms_per_hash: elapsed * 1000.0 * threads as f64 / hashes.max(1) as f64,
    })
}

async fn measure_raw(
    params: Argon2Params,
    threads: usize,
    seconds: u64,
) -> anyhow::Result<RawRate> {
    let r = tokio::task::spawn_blocking(move || raw_hash_rate(params, threads, seconds as f64))
        .await??;
    println!(
        "  raw argon2id: {} threads, {} hashes in {:.1} s = {:.2}/s ({:.1} ms per hash; \
         {:.2} per CPU-second)",
        r.threads, r.hashes, r.seconds, r.per_s, r.ms_per_hash, r.per_cpu_s
    );
    Ok(r)
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

/// A measured level: warm-up, then a window of `seconds` with CPU accounting.
async fn level(server: &ServerProcess, clients: &mut [Client], seconds: u64) -> Phase {
    closed_loop(clients, Some(Instant::now() + WARMUP), login_once).await;
    let meter = CpuMeter::start(server.pid());
    let start = Instant::now();
    let end = start + Duration::from_secs(seconds);
    let (records, cpu) = tokio::join!(closed_loop(clients, Some(end), login_once), async {
        tokio::time::sleep_until(end.into()).await;
        meter.stop()
    });
    Phase::of(&records, start, end, cpu)
}

pub async fn run(args: &Args) -> anyhow::Result<Report> {
    ensure!(args.practices > 0, "--practices must be at least 1");
    ensure!(
        !args.clients.is_empty() && args.clients.iter().all(|n| *n > 0),
        "--clients needs positive numbers"
    );
    let loadavg_before = super::loadavg();
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
    println!("Server pid {} on {}", server.pid(), server.addr);
    let outcome = measure(&server, args, &slugs, params, cores, max_clients).await;
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
        "\nlogin — full password logins, argon2id m={} KiB t={} p={}:",
        params.m_kib, params.t, params.p
    );
    for (k, l) in m.levels.iter().enumerate() {
        let raw = (m.raw[k].per_s + m.raw[k + 1].per_s) / 2.0;
        let ratio = l.per_s / raw;
        let raw_cpu = (m.raw[k].per_cpu_s + m.raw[k + 1].per_cpu_s) / 2.0;
        l.print(&format!("{} clients", l.clients));
        println!(
            "      raw hash rate around it {raw:.2}/s -> ratio {ratio:.3}; per CPU-second: \
             {:.2} logins (server) vs {raw_cpu:.2} hashes (driver) -> {:.3}",
            l.per_server_cpu_s,
            l.per_server_cpu_s / raw_cpu
        );
        goals.push(Goal::at_least(
            format!(
                "logins/s at {} clients / raw argon2id hashes/s ({cores} threads)",
                l.clients
            ),
            ratio,
            RATIO_GOAL,
            "x",
        ));
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
    let failures: usize = m.levels.iter().map(|l| l.failures).sum::<usize>() + m.pass.failures;
    println!("  failed logins in all: {failures}");

    let levels: Vec<_> = m
        .levels
        .iter()
        .enumerate()
        .map(|(k, l)| {
            let raw = (m.raw[k].per_s + m.raw[k + 1].per_s) / 2.0;
            let raw_cpu = (m.raw[k].per_cpu_s + m.raw[k + 1].per_cpu_s) / 2.0;
            json!({
                "clients": l.clients,
                "logins": l,
                "raw_hashes_per_s_before_after_mean": raw,
                "ratio_logins_to_raw": l.per_s / raw,
                "raw_hashes_per_cpu_s_before_after_mean": raw_cpu,
                "ratio_per_cpu_s_logins_server_to_raw": l.per_server_cpu_s / raw_cpu,
            })
        })
        .collect();
    let method = format!(
        "Real `kollegium serve` release binary (server defaults: argon2id m={} KiB t={} p={}, \
         hashing bounded to {cores} at a time, log level warn) on a fresh data directory with \
         {} practices and one account per client created beforehand through the library; each \
         client has its own keep-alive connection and signs in again and again as a browser \
         without cookies (GET /id/login, POST /id/login with the CSRF token; success = 303 to \
         /id/ with the IdP session cookie); client i uses account i at practice i mod {}; {} s \
         untimed warm-up, then {} s measured per level, logins finishing after the window not \
         counted. Raw rate: argon2 crate in the driver, same parameters, {cores} threads \
         verifying a password against a stored hash for {} s, before the first level and after \
         each (server idle); a level's ratio uses the mean of the raw rates just before and \
         after it. Memory: VmRSS of the server after one login at every practice ({} at a time).",
        params.m_kib,
        params.t,
        params.p,
        slugs.len(),
        slugs.len(),
        WARMUP.as_secs(),
        args.seconds,
        args.hash_seconds,
        PASS_CONCURRENCY,
    );
    let figures = json!({
        "practices": slugs.len(),
        "accounts": accounts,
        "argon2": params,
        "cores": cores,
        "levels": levels,
        "raw_hash_rates": m.raw,
        "login_at_every_practice": m.pass,
        "memory": {
            "baseline": m.baseline,
            "after_levels": m.after_levels,
            "after_login_at_every_practice": m.after_pass,
            "server_gauges": m.gauges,
        },
        "stored_hash_prefix_after_run": expected,
        "failed_logins": failures,
        "loadavg_before": loadavg_before,
        "loadavg_after": super::loadavg(),
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
    raw: Vec<RawRate>,
    levels: Vec<Phase>,
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
    cores: usize,
    max_clients: usize,
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

    println!(
        "Raw hash rate, then each level ({} s) and the raw rate again",
        args.seconds
    );
    let mut raw = vec![measure_raw(params, cores, args.hash_seconds).await?];
    let mut levels = Vec::new();
    for &n in &args.clients {
        let phase = level(server, &mut clients[..n], args.seconds).await;
        phase.print(&format!("{n} clients"));
        levels.push(phase);
        raw.push(measure_raw(params, cores, args.hash_seconds).await?);
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
        raw,
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

    #[test]
    fn raw_rate_counts_hashes() {
        let cheap = Argon2Params {
            m_kib: 64,
            t: 1,
            p: 1,
        };
        let r = raw_hash_rate(cheap, 2, 0.05).unwrap();
        assert_eq!(r.threads, 2);
        assert!(r.hashes >= 2);
        assert!(r.per_s > 0.0);
    }
}
