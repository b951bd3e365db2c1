//! `token`: the IdP's token endpoint under concurrent relying parties. Authorization-code
//! exchanges per second and refresh grants per second, with latency, and the authorization
//! requests that produce the codes measured on their own.
//!
//! Set-up: each client is a user signed in once at the IdP (session cookie) who consented
//! once to a confidential third-party client registered like `kollegium client add` does,
//! with a loopback redirect URI. Then, in rounds: every client fetches a batch of codes
//! (`GET /id/authorize` with PKCE S256, the code read from the 302, the redirect never
//! followed), then every client exchanges its codes (`POST /id/token`,
//! `client_secret_basic`) — codes live 60 s, so batches stay small. Last, every client runs
//! a chain of refresh grants (refresh tokens rotate; each answer carries the next one).
//!
//! Two groups of clients run one after the other against the same server: `spread` (client i
//! at practice i mod N, 32 practices by default) and `shared` (32 clients of ONE practice, so
//! every grant contends for that practice's `idp.sqlite`). The verdict is per second of
//! server CPU, which does not depend on what else runs on the machine.

use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use serde_json::json;

use crate::browser::Browser;
use crate::conditions::Conditions;
use crate::fixtures::{self, Node};
use crate::idp::{self, Code, RpClient};
use crate::load::{CpuMeter, Parts, Phase, Record, closed_loop};
use crate::report::{Goal, Report};
use crate::server::{self, Listen, ServerProcess, Workdir};

const DEFAULT_CLIENTS: usize = 32;
/// Goal: token grants per second of server CPU (RS256).
const PER_CPU_GOAL: f64 = 1000.0;
const REFRESH_WARMUP: Duration = Duration::from_secs(2);

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Practices to create; client i is a user at practice i mod N (each practice has its
    /// own client registration)
    #[arg(long, default_value_t = DEFAULT_CLIENTS)]
    pub practices: usize,
    /// Concurrent clients of the `spread` group
    #[arg(long, default_value_t = DEFAULT_CLIENTS)]
    pub clients: usize,
    /// Concurrent clients of the `shared` group, all of one practice (0: no such group)
    #[arg(long, default_value_t = DEFAULT_CLIENTS)]
    pub shared_clients: usize,
    /// Rounds of (fetch codes, exchange codes)
    #[arg(long, default_value_t = 4)]
    pub rounds: usize,
    /// Codes per client per round
    #[arg(long, default_value_t = 50)]
    pub codes: usize,
    /// Measured seconds of refresh grants
    #[arg(long, default_value_t = 15)]
    pub seconds: u64,
    /// Signing algorithm of the clients' tokens: RS256 (the default of every client) or
    /// ES256 (the per-client option)
    #[arg(long, default_value = "RS256")]
    pub signing_alg: String,
}

/// A user's browser and the relying party's back end, at one practice.
struct Client {
    browser: Browser,
    rp: Browser,
    registration: RpClient,
    codes: Vec<Code>,
    /// Codes to fetch in the current batch.
    want: usize,
    refresh_token: Option<String>,
}

async fn fetch_code(c: &mut Client) -> anyhow::Result<Option<Parts>> {
    if c.codes.len() >= c.want {
        return Ok(None);
    }
    let (code, took) = idp::authorize(&mut c.browser, &c.registration).await?;
    c.codes.push(code);
    Ok(Some(vec![("GET /id/authorize", took)]))
}

async fn exchange_code(c: &mut Client) -> anyhow::Result<Option<Parts>> {
    let Some(code) = c.codes.pop() else {
        return Ok(None);
    };
    let (tokens, took) = idp::exchange(&mut c.rp, &c.registration, &code).await?;
    c.refresh_token = Some(tokens.refresh_token);
    Ok(Some(vec![("POST /id/token code", took)]))
}

async fn refresh_once(c: &mut Client) -> anyhow::Result<Option<Parts>> {
    let current = c
        .refresh_token
        .clone()
        .context("no refresh token (no code exchange succeeded)")?;
    let (tokens, took) = idp::refresh(&mut c.rp, &c.registration, &current).await?;
    c.refresh_token = Some(tokens.refresh_token);
    Ok(Some(vec![("POST /id/token refresh", took)]))
}

/// A phase of fixed work: every client until it has none left.
async fn batch<F>(server: &ServerProcess, clients: &mut [Client], op: F) -> (Phase, Vec<Record>)
where
    F: AsyncFn(&mut Client) -> anyhow::Result<Option<Parts>>,
{
    let meter = CpuMeter::start(server.pid());
    let start = Instant::now();
    let records = closed_loop(clients, None, op).await;
    let cpu = meter.stop();
    let end = Phase::last_finish(&records).unwrap_or(start);
    (Phase::of(&records, start, end, cpu), records)
}

/// A group of clients and where they sign in.
struct Group {
    name: &'static str,
    /// (account index, practice index) per client.
    members: Vec<(usize, usize)>,
}

/// What one group measured.
struct GroupResult {
    name: &'static str,
    clients: usize,
    practices: usize,
    authorize: Phase,
    exchange: Phase,
    refresh: Phase,
}

pub async fn run(args: &Args, cond: &Conditions) -> anyhow::Result<Report> {
    ensure!(
        args.practices > 0 && args.clients > 0,
        "--practices and --clients must be positive"
    );
    ensure!(
        args.rounds > 0 && args.codes > 0,
        "--rounds and --codes must be positive"
    );
    let alg = kollegium_idp::oidc::jwt::Alg::parse(&args.signing_alg)
        .context("--signing-alg must be RS256 or ES256")?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let binary = server::build_server_binary().await?;
    let workdir = Workdir::new()?;
    let listen = Listen::pick()?;
    // Practices 0..N for the spread group, practice N for the shared one.
    let total_practices = args.practices + usize::from(args.shared_clients > 0);
    let slugs: Vec<String> = (0..total_practices).map(fixtures::slug).collect();
    let mut groups = vec![Group {
        name: "spread",
        members: (0..args.clients).map(|i| (i, i % args.practices)).collect(),
    }];
    if args.shared_clients > 0 {
        groups.push(Group {
            name: "shared",
            members: (0..args.shared_clients)
                .map(|i| (args.clients + i, args.practices))
                .collect(),
        });
    }
    let accounts: Vec<(usize, usize)> = groups.iter().flat_map(|g| g.members.clone()).collect();

    println!(
        "Creating {} practices, a client registration at each and {} accounts in {}",
        slugs.len(),
        accounts.len(),
        workdir.data_dir().display()
    );
    let mut registrations = Vec::new();
    {
        let node = Node::open(&workdir.data_dir(), listen.addr)?;
        let hasher = kollegium_idp::passwords::Hasher::new(
            kollegium_idp::passwords::Argon2Params::default(),
        )?;
        for slug in &slugs {
            node.create(slug)?;
            let (client_id, secret) =
                node.add_client(slug, "Bench-Werkzeug", idp::REDIRECT_URI, alg)?;
            registrations.push(RpClient { client_id, secret });
        }
        for (account, practice) in &accounts {
            let hash = hasher.hash_blocking(&password(*account))?;
            node.create_user(&slugs[*practice], &username(*account), &hash)?;
        }
    }

    let server = ServerProcess::start(&binary, &workdir, listen, &[]).await?;
    cond.watch_pid(server.pid());
    println!("Server pid {} on {}", server.pid(), server.addr);
    let outcome = measure(&server, args, &slugs, &registrations, &groups, cond).await;
    let stopped = server.stop().await;
    let m = outcome?;
    stopped?;

    println!(
        "\ntoken — {} tokens, {cores} cores (verdict per second of server CPU):",
        alg.as_str()
    );
    let mut goals = Vec::new();
    let mut groups_json = Vec::new();
    for g in &m.groups {
        println!(
            "  group {}: {} clients at {} practice(s)",
            g.name, g.clients, g.practices
        );
        g.authorize.print("authorization requests (codes)");
        g.exchange.print("code exchanges");
        g.refresh.print("refresh grants");
        for (what, p) in [
            ("code exchanges", &g.exchange),
            ("refresh grants", &g.refresh),
        ] {
            goals.push(Goal::at_least(
                format!(
                    "{what} per server CPU-second, {} ({} clients, {} practice(s), {})",
                    g.name,
                    g.clients,
                    g.practices,
                    alg.as_str()
                ),
                p.per_server_cpu_s,
                PER_CPU_GOAL,
                "/s",
            ));
        }
        groups_json.push(json!({
            "name": g.name,
            "clients": g.clients,
            "practices": g.practices,
            "authorize": g.authorize,
            "code_exchange": g.exchange,
            "refresh": g.refresh,
            "per_core_wall": {
                "code_exchange_per_s": g.exchange.per_s / cores as f64,
                "refresh_per_s": g.refresh.per_s / cores as f64,
            },
        }));
    }
    if let [spread, shared] = &m.groups[..] {
        println!(
            "  one practice against many: per server CPU-second {:.2} (exchange) / {:.2} (refresh), \
             wall {:.2} / {:.2}, p99 {:.1} / {:.1} ms against {:.1} / {:.1} ms",
            shared.exchange.per_server_cpu_s / spread.exchange.per_server_cpu_s,
            shared.refresh.per_server_cpu_s / spread.refresh.per_server_cpu_s,
            shared.exchange.per_s / spread.exchange.per_s,
            shared.refresh.per_s / spread.refresh.per_s,
            p99(&shared.exchange),
            p99(&shared.refresh),
            p99(&spread.exchange),
            p99(&spread.refresh),
        );
    }
    println!(
        "  server RSS after: {:.1} MB (baseline {:.1} MB)",
        m.after.rss_mb, m.baseline.rss_mb
    );
    let method = format!(
        "Real `kollegium serve` release binary (server defaults, log level warn) on a fresh data \
         directory: {} practices, each with a confidential client (redirect {}), accounts created \
         beforehand through the library. Group spread: {} clients, client i = an account at \
         practice i mod {}; group shared: {} clients, all at one practice. Each client signs in \
         once (IdP session cookie) and consents once through the real forms, then {} rounds of: \
         every client fetches {} codes (GET /id/authorize, scope `{}`, PKCE S256, code read from \
         the 302), then every client exchanges them (POST /id/token, client_secret_basic; \
         success = 200 with access, ID and refresh token). Throughput = operations / time until \
         the last client finished, summed over rounds. Refresh: a chain of refresh grants per \
         client for {} s (and the grants in flight then) after {} s warm-up. Verdict: operations per second of server CPU \
         (/proc/<pid>/stat); wall rates and per-core figures beside it.",
        slugs.len(),
        idp::REDIRECT_URI,
        args.clients,
        args.practices,
        args.shared_clients,
        args.rounds,
        args.codes,
        idp::SCOPE,
        args.seconds,
        REFRESH_WARMUP.as_secs(),
    );
    let figures = json!({
        "practices": slugs.len(),
        "signing_alg": alg.as_str(),
        "cores": cores,
        "rounds": args.rounds,
        "codes_per_client_per_round": args.codes,
        "groups": groups_json,
        "memory": { "baseline": m.baseline, "after": m.after },
    });
    let mut variant = Vec::new();
    if args.practices != DEFAULT_CLIENTS {
        variant.push(format!("practices-{}", args.practices));
    }
    if args.clients != DEFAULT_CLIENTS {
        variant.push(format!("clients-{}", args.clients));
    }
    if args.shared_clients != DEFAULT_CLIENTS {
        variant.push(format!("shared-{}", args.shared_clients));
    }
    if alg != kollegium_idp::oidc::jwt::Alg::Rs256 {
        variant.push(alg.as_str().to_ascii_lowercase());
    }
    let variant = (!variant.is_empty()).then(|| variant.join("-"));
    Ok(Report::new("token", method, figures, goals).variant(variant))
}

fn p99(p: &Phase) -> f64 {
    p.latency_ms.map_or(f64::NAN, |l| l.p99_ms)
}

fn username(i: usize) -> String {
    format!("bench-{i:04}")
}

fn password(i: usize) -> String {
    format!("Bench-Kennwort-{i:04}-Sonnenblume")
}

struct Measured {
    groups: Vec<GroupResult>,
    baseline: crate::server::Resources,
    after: crate::server::Resources,
}

async fn measure(
    server: &ServerProcess,
    args: &Args,
    slugs: &[String],
    registrations: &[RpClient],
    groups: &[Group],
    cond: &Conditions,
) -> anyhow::Result<Measured> {
    tokio::time::sleep(Duration::from_millis(500)).await;
    let baseline = server.resources()?;
    let mut results = Vec::new();
    for g in groups {
        let mut clients = Vec::new();
        for &(account, p) in &g.members {
            let mut c = Client {
                browser: Browser::new(server.addr, &slugs[p])?,
                rp: Browser::new(server.addr, &slugs[p])?,
                registration: registrations[p].clone(),
                codes: Vec::new(),
                want: 0,
                refresh_token: None,
            };
            idp::login(&mut c.browser, &username(account), &password(account))
                .await
                .with_context(|| format!("login of {}", username(account)))?;
            idp::consent(&mut c.browser, &c.registration)
                .await
                .with_context(|| format!("consent of {}", username(account)))?;
            clients.push(c);
        }
        let mut practices: Vec<usize> = g.members.iter().map(|m| m.1).collect();
        practices.sort_unstable();
        practices.dedup();
        println!(
            "Group {}: {} clients at {} practice(s)",
            g.name,
            clients.len(),
            practices.len()
        );
        let (authorize, exchange, refresh) = cond
            .around_cpu(
                &format!("the {} group", g.name),
                measure_group(server, args, &mut clients),
            )
            .await?;
        results.push(GroupResult {
            name: g.name,
            clients: clients.len(),
            practices: practices.len(),
            authorize,
            exchange,
            refresh,
        });
    }
    let after = server.resources()?;
    Ok(Measured {
        groups: results,
        baseline,
        after,
    })
}

/// Rounds of codes and exchanges, then refresh chains, for one group of clients.
async fn measure_group(
    server: &ServerProcess,
    args: &Args,
    clients: &mut [Client],
) -> anyhow::Result<(Phase, Phase, Phase)> {
    // Warm-up: a few codes per client through the whole flow, untimed.
    for c in clients.iter_mut() {
        c.want = 5;
    }
    closed_loop(clients, None, fetch_code).await;
    closed_loop(clients, None, exchange_code).await;

    println!(
        "  {} rounds of {} codes per client: fetch, then exchange",
        args.rounds, args.codes
    );
    let (mut auth_phases, mut auth_records) = (Vec::new(), Vec::new());
    let (mut exch_phases, mut exch_records) = (Vec::new(), Vec::new());
    for _ in 0..args.rounds {
        for c in clients.iter_mut() {
            c.want = args.codes;
        }
        let (p, r) = batch(server, clients, fetch_code).await;
        auth_phases.push(p);
        auth_records.extend(r);
        let (p, r) = batch(server, clients, exchange_code).await;
        println!(
            "    round: authorize {:.0}/s, exchange {:.0}/s ({:.0} per server CPU-second)",
            auth_phases.last().map_or(0.0, |a| a.per_s),
            p.per_s,
            p.per_server_cpu_s
        );
        exch_phases.push(p);
        exch_records.extend(r);
    }
    let authorize = Phase::merge(&auth_phases, &auth_records).context("no authorize rounds")?;
    let exchange = Phase::merge(&exch_phases, &exch_records).context("no exchange rounds")?;

    println!("  Refresh chains for {} s", args.seconds);
    closed_loop(clients, Some(Instant::now() + REFRESH_WARMUP), refresh_once).await;
    // Until the deadline, then until the grants in flight are done: every counted grant had
    // all of its server CPU inside the meter's window.
    let meter = CpuMeter::start(server.pid());
    let until = Instant::now() + Duration::from_secs(args.seconds);
    let records = closed_loop(clients, Some(until), refresh_once).await;
    let refresh = Phase::complete(&records, meter.stop());
    Ok((authorize, exchange, refresh))
}
