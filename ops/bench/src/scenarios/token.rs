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

use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use serde_json::json;

use crate::browser::Browser;
use crate::fixtures::{self, Node};
use crate::idp::{self, Code, RpClient};
use crate::load::{CpuMeter, Parts, Phase, Record, closed_loop};
use crate::report::{Goal, Report};
use crate::server::{self, Listen, ServerProcess, Workdir};

const DEFAULT_CLIENTS: usize = 32;
/// Goal: token grants per second per core.
const PER_CORE_GOAL: f64 = 600.0;
const REFRESH_WARMUP: Duration = Duration::from_secs(2);

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Practices to create; client i is a user at practice i mod N (each practice has its
    /// own client registration)
    #[arg(long, default_value_t = DEFAULT_CLIENTS)]
    pub practices: usize,
    /// Concurrent clients
    #[arg(long, default_value_t = DEFAULT_CLIENTS)]
    pub clients: usize,
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

pub async fn run(args: &Args) -> anyhow::Result<Report> {
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
    let loadavg_before = super::loadavg();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let binary = server::build_server_binary().await?;
    let workdir = Workdir::new()?;
    let listen = Listen::pick()?;
    let slugs: Vec<String> = (0..args.practices).map(fixtures::slug).collect();

    println!(
        "Creating {} practices, a client registration at each and {} accounts in {}",
        slugs.len(),
        args.clients,
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
        for i in 0..args.clients {
            let hash = hasher.hash_blocking(&password(i))?;
            node.create_user(&slugs[i % slugs.len()], &username(i), &hash)?;
        }
    }

    let server = ServerProcess::start(&binary, &workdir, listen, &[]).await?;
    println!("Server pid {} on {}", server.pid(), server.addr);
    let outcome = measure(&server, args, &slugs, &registrations).await;
    let stopped = server.stop().await;
    let m = outcome?;
    stopped?;

    let per_core = |p: &Phase| p.per_s / cores as f64;
    println!(
        "\ntoken — {} clients over {} practices, {} tokens, {cores} cores:",
        args.clients,
        slugs.len(),
        alg.as_str()
    );
    m.authorize.print("authorization requests (codes)");
    m.exchange.print("code exchanges");
    m.refresh.print("refresh grants");
    println!(
        "  per core: code exchanges {:.1}/s, refresh grants {:.1}/s (authorize {:.1}/s)",
        per_core(&m.exchange),
        per_core(&m.refresh),
        per_core(&m.authorize)
    );
    println!(
        "  server RSS after: {:.1} MB (baseline {:.1} MB)",
        m.after.rss_mb, m.baseline.rss_mb
    );
    let goals = vec![
        Goal::at_least(
            format!("code exchanges/s per core ({} clients)", args.clients),
            per_core(&m.exchange),
            PER_CORE_GOAL,
            "/s",
        ),
        Goal::at_least(
            format!("refresh grants/s per core ({} clients)", args.clients),
            per_core(&m.refresh),
            PER_CORE_GOAL,
            "/s",
        ),
    ];
    let method = format!(
        "Real `kollegium serve` release binary (server defaults, log level warn) on a fresh data \
         directory: {} practices, each with a confidential client (redirect {}), {} accounts \
         (client i = account i at practice i mod {}), all created beforehand through the \
         library. Each client signs in once (IdP session cookie) and consents once through the \
         real forms, then {} rounds of: every client fetches {} codes (GET /id/authorize, scope \
         `{}`, PKCE S256, code read from the 302), then every client exchanges them (POST \
         /id/token, client_secret_basic; success = 200 with access, ID and refresh token). \
         Throughput = operations / time until the last client finished, summed over rounds. \
         Refresh: a chain of refresh grants per client for {} s after {} s warm-up. Per core = \
         throughput / {cores} cores; CPU of the server and of the driver (same machine) from \
         /proc.",
        slugs.len(),
        idp::REDIRECT_URI,
        args.clients,
        slugs.len(),
        args.rounds,
        args.codes,
        idp::SCOPE,
        args.seconds,
        REFRESH_WARMUP.as_secs(),
    );
    let figures = json!({
        "practices": slugs.len(),
        "clients": args.clients,
        "signing_alg": alg.as_str(),
        "cores": cores,
        "rounds": args.rounds,
        "codes_per_client_per_round": args.codes,
        "authorize": m.authorize,
        "code_exchange": m.exchange,
        "refresh": m.refresh,
        "per_core": {
            "authorize_per_s": per_core(&m.authorize),
            "code_exchange_per_s": per_core(&m.exchange),
            "refresh_per_s": per_core(&m.refresh),
        },
        "memory": { "baseline": m.baseline, "after": m.after },
        "loadavg_before": loadavg_before,
        "loadavg_after": super::loadavg(),
    });
    let mut variant = Vec::new();
    if args.practices != DEFAULT_CLIENTS {
        variant.push(format!("practices-{}", args.practices));
    }
    if args.clients != DEFAULT_CLIENTS {
        variant.push(format!("clients-{}", args.clients));
    }
    if alg != kollegium_idp::oidc::jwt::Alg::Rs256 {
        variant.push(alg.as_str().to_ascii_lowercase());
    }
    let variant = (!variant.is_empty()).then(|| variant.join("-"));
    Ok(Report::new("token", method, figures, goals).variant(variant))
}

fn username(i: usize) -> String {
    format!("bench-{i:04}")
}

fn password(i: usize) -> String {
    format!("Bench-Kennwort-{i:04}-Sonnenblume")
}

struct Measured {
    authorize: Phase,
    exchange: Phase,
    refresh: Phase,
    baseline: crate::server::Resources,
    after: crate::server::Resources,
}

async fn measure(
    server: &ServerProcess,
    args: &Args,
    slugs: &[String],
    registrations: &[RpClient],
) -> anyhow::Result<Measured> {
    tokio::time::sleep(Duration::from_millis(500)).await;
    let baseline = server.resources()?;
    let mut clients = Vec::new();
    for i in 0..args.clients {
        let p = i % slugs.len();
        let mut c = Client {
            browser: Browser::new(server.addr, &slugs[p])?,
            rp: Browser::new(server.addr, &slugs[p])?,
            registration: registrations[p].clone(),
            codes: Vec::new(),
            want: 0,
            refresh_token: None,
        };
        idp::login(&mut c.browser, &username(i), &password(i))
            .await
            .with_context(|| format!("login of {}", username(i)))?;
        idp::consent(&mut c.browser, &c.registration)
            .await
            .with_context(|| format!("consent of {}", username(i)))?;
        clients.push(c);
    }

    // Warm-up: a few codes per client through the whole flow, untimed.
    for c in &mut clients {
        c.want = 5;
    }
    closed_loop(&mut clients, None, fetch_code).await;
    closed_loop(&mut clients, None, exchange_code).await;

    println!(
        "{} rounds of {} codes per client: fetch, then exchange",
        args.rounds, args.codes
    );
    let (mut auth_phases, mut auth_records) = (Vec::new(), Vec::new());
    let (mut exch_phases, mut exch_records) = (Vec::new(), Vec::new());
    for _ in 0..args.rounds {
        for c in &mut clients {
            c.want = args.codes;
        }
        let (p, r) = batch(server, &mut clients, fetch_code).await;
        auth_phases.push(p);
        auth_records.extend(r);
        let (p, r) = batch(server, &mut clients, exchange_code).await;
        println!(
            "  round: authorize {:.0}/s, exchange {:.0}/s",
            auth_phases.last().map_or(0.0, |a| a.per_s),
            p.per_s
        );
        exch_phases.push(p);
        exch_records.extend(r);
    }
    let authorize = Phase::merge(&auth_phases, &auth_records).context("no authorize rounds")?;
    let exchange = Phase::merge(&exch_phases, &exch_records).context("no exchange rounds")?;

    println!("Refresh chains for {} s", args.seconds);
    closed_loop(
        &mut clients,
        Some(Instant::now() + REFRESH_WARMUP),
        refresh_once,
    )
    .await;
    let meter = CpuMeter::start(server.pid());
    let start = Instant::now();
    let end = start + Duration::from_secs(args.seconds);
    let (records, cpu) = tokio::join!(closed_loop(&mut clients, Some(end), refresh_once), async {
        tokio::time::sleep_until(end.into()).await;
        meter.stop()
    });
    let refresh = Phase::of(&records, start, end, cpu);
    let after = server.resources()?;
    Ok(Measured {
        authorize,
        exchange,
        refresh,
        baseline,
        after,
    })
}
