//! `tasks`: one board with many cards (issue 13). Two phases against a real server:
//!
//! 1. **render**: closed-loop `GET /tasks/boards/<id>` by several signed-in members; the
//!    board page's time (goal: p99 ≤ 50 ms with 2,000 cards) and the server's CPU per render.
//! 2. **moves**: closed-loop `POST /api/tasks/cards/<id>/move` by 16 members at once, each
//!    moving a random card to a random column and position (positions beyond the column's end
//!    included); moves per second, answer times, server CPU per move. Afterwards the driver
//!    reads the board from the database: every card exactly once, positions dense `0..n-1` in
//!    every column, or the run fails.
//!
//! The board and its cards are written in-process through the library (the same functions
//! the pages call) after the members signed in, since a card needs a member to be created by.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use diesel::prelude::*;
use kollegium_platform::members::MemberId;
use kollegium_platform::tasks::boards::{self, Access, Grantee};
use kollegium_platform::tasks::cards::{self, NewCard};
use kollegium_platform::tasks::{BoardId, Permission};
use serde_json::json;

use super::chat_client::{self, PASSWORD, Signed, Site, username};
use crate::conditions::Conditions;
use crate::fixtures::{self, Node};
use crate::load::{cpu_seconds, thread_cpu_delta, thread_cpu_seconds};
use crate::report::{Goal, Report};
use crate::server::{self, Listen, ServerProcess, Workdir};
use crate::stats::{Samples, Summary};

/// Goal: p99 of the board page with the scenario's cards.
const RENDER_P99_GOAL_MS: f64 = 50.0;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Cards on the board, spread over its three columns
    #[arg(long, default_value_t = 2000)]
    pub cards: usize,
    /// Members signed in (each renders and moves with its own session)
    #[arg(long, default_value_t = 16)]
    pub members: usize,
    /// Clients loading the board page for the goal's figure (one: the page's own time,
    /// without queueing behind other pages on two cores)
    #[arg(long, default_value_t = 1)]
    pub render_clients: usize,
    /// Clients loading the board page at once in the second render phase (throughput)
    #[arg(long, default_value_t = 8)]
    pub render_load_clients: usize,
    /// Seconds of board page loads
    #[arg(long, default_value_t = 10)]
    pub render_secs: u64,
    /// Concurrent clients moving cards
    #[arg(long, default_value_t = 16)]
    pub move_clients: usize,
    /// Seconds of card moves
    #[arg(long, default_value_t = 10)]
    pub move_secs: u64,
}

pub fn run(args: &Args, cond: &Conditions) -> anyhow::Result<Report> {
    ensure!(
        args.cards > 0 && args.members > 0 && args.render_clients > 0 && args.move_clients > 0,
        "need cards, members and clients"
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(run_async(args, cond))
}

/// CPU and wall time of a phase, with the server's threads.
struct Phase {
    samples: Samples,
    failed: usize,
    wall_s: f64,
    server_cpu_s: f64,
    by_thread: Vec<(String, f64)>,
}

impl Phase {
    fn per_op_us(&self) -> f64 {
        self.server_cpu_s * 1e6 / self.samples.summary().map_or(1, |s| s.n.max(1)) as f64
    }

    fn rate(&self) -> f64 {
        self.samples.summary().map_or(0, |s| s.n) as f64 / self.wall_s.max(1e-9)
    }

    fn json(&self) -> serde_json::Value {
        json!({
            "latency": self.samples.summary(),
            "failed": self.failed,
            "wall_s": self.wall_s,
            "per_s": self.rate(),
            "server_cpu_us_per_op": self.per_op_us(),
            "server_cpu_s_by_thread": self.by_thread,
        })
    }
}

async fn run_async(args: &Args, cond: &Conditions) -> anyhow::Result<Report> {
    let binary = server::build_server_binary().await?;
    let workdir = Workdir::new()?;
    let listen = Listen::pick()?;
    let slug = fixtures::slug(0);
    println!(
        "Creating practice {slug} and {} members in {}",
        args.members,
        workdir.data_dir().display()
    );
    let node = Node::open(&workdir.data_dir(), listen.addr)?;
    node.create(&slug)?;
    drop(node);
    {
        let (dir, slug, n) = (workdir.data_dir(), slug.clone(), args.members);
        tokio::task::spawn_blocking(move || {
            let hasher = kollegium_idp::passwords::Hasher::new(Default::default())?;
            let hash = hasher.hash_blocking(PASSWORD)?;
            chat_client::create_users(&dir, &slug, n, &hash)
        })
        .await??;
    }
    let server = ServerProcess::start(&binary, &workdir, listen, &[]).await?;
    cond.watch_pid(server.pid());
    println!("Server pid {} on {}", server.pid(), server.addr);
    let site = Site {
        slug: slug.clone(),
        port: server.addr.port(),
    };
    let outcome = measure(args, &server, &site, &workdir, cond).await;
    let stopped = server.stop().await;
    let (render, moves, board) = outcome?;
    stopped?;
    report(args, &render, &moves, board)
}

async fn measure(
    args: &Args,
    server: &ServerProcess,
    site: &Site,
    workdir: &Workdir,
    cond: &Conditions,
) -> anyhow::Result<(Vec<Phase>, Phase, BoardId)> {
    println!("Signing in {} members", args.members);
    let who = (0..args.members)
        .map(|i| (site.clone(), username(i)))
        .collect();
    let signed = Arc::new(chat_client::sign_in_all(who, 4).await?);
    let ids = chat_client::member_ids(site, &signed[0].http, None).await?;
    let creator = *ids.get(&username(0)).context("member 0 has no id")?;

    println!("Creating a board with {} cards in-process", args.cards);
    let db = workdir
        .data_dir()
        .join("tenants")
        .join(&site.slug)
        .join("platform.sqlite");
    let n_cards = args.cards;
    let (board, columns, card_ids) = {
        let db = db.clone();
        tokio::task::spawn_blocking(move || fill_board(&db, MemberId(creator), n_cards)).await??
    };
    let url = site.url(&format!("/tasks/boards/{}", board.0));
    let first = signed[0].http.get(&url).send().await?;
    ensure!(
        first.status() == 200,
        "GET {url} answered {}",
        first.status()
    );
    let html = first.text().await?;
    ensure!(
        html.contains(&format!("Bench-Karte {}", n_cards - 1)),
        "the board page does not show its last card"
    );
    println!("  board page: {} KB", html.len() / 1024);

    let load_page = {
        let (signed, url) = (signed.clone(), url.clone());
        move |client: usize, _| {
            let (signed, url) = (signed.clone(), url.clone());
            async move {
                let s = &signed[client % signed.len()];
                let resp = s.http.get(&url).send().await?;
                let ok = resp.status() == 200;
                let body = resp.bytes().await?;
                Ok(ok && body.len() > 1000)
            }
        }
    };
    let mut render = Vec::new();
    for clients in [args.render_clients, args.render_load_clients] {
        println!(
            "Render phase: {clients} client(s) for {} s",
            args.render_secs
        );
        let name = format!("the render phase with {clients} client(s)");
        let before = cond.before(&name);
        render.push(phase(server, clients, args.render_secs, load_page.clone()).await?);
        cond.after(&name, &before);
    }

    println!(
        "Move phase: {} clients for {} s",
        args.move_clients, args.move_secs
    );
    let cards = Arc::new(card_ids);
    let columns = Arc::new(columns);
    let before = cond.before("the move phase");
    let moves = phase(server, args.move_clients, args.move_secs, {
        let (signed, site) = (signed.clone(), site.clone());
        move |client, i| {
            let (signed, site, cards, columns) =
                (signed.clone(), site.clone(), cards.clone(), columns.clone());
            async move {
                let s: &Signed = &signed[client % signed.len()];
                let r = mix(client as u64 * 1_000_003 + i as u64);
                let card = cards[(r % cards.len() as u64) as usize];
                let column = columns[((r >> 20) % columns.len() as u64) as usize];
                // Up to a third beyond a column's end: clamped by the server.
                let position = (r >> 32) % (n_cards as u64 / 2 + 1);
                let resp = s
                    .http
                    .post(site.url(&format!("/api/tasks/cards/{card}/move")))
                    .header("x-csrf-token", &s.csrf)
                    .header("accept", "application/json")
                    .json(&json!({"column": column, "position": position}))
                    .send()
                    .await?;
                let ok = resp.status() == 200;
                resp.bytes().await?;
                Ok(ok)
            }
        }
    })
    .await?;

    cond.after("the move phase", &before);
    let check = {
        let db = db.clone();
        tokio::task::spawn_blocking(move || consistent(&db, board, n_cards)).await?
    };
    check.context("the board after the moves")?;
    println!("  after the moves: every card once, positions dense in every column");
    Ok((render, moves, board))
}

/// Runs `op(client, i)` in a closed loop on `clients` clients for `secs` seconds.
async fn phase<F, Fut>(
    server: &ServerProcess,
    clients: usize,
    secs: u64,
    op: F,
) -> anyhow::Result<Phase>
where
    F: Fn(usize, usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = anyhow::Result<bool>> + Send,
{
    let pid = server.pid();
    let (cpu0, threads0) = (cpu_seconds(&pid.to_string()), thread_cpu_seconds(pid));
    let started = Instant::now();
    let until = started + Duration::from_secs(secs);
    let failed = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (op, failed) = (op.clone(), failed.clone());
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            let mut i = 0;
            while Instant::now() < until {
                let t = Instant::now();
                if op(c, i).await? {
                    out.push(t.elapsed());
                } else {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
                i += 1;
            }
            Ok::<_, anyhow::Error>(out)
        }));
    }
    let mut samples = Samples::with_capacity(1024);
    for t in tasks {
        for d in t.await?? {
            samples.push(d);
        }
    }
    let wall_s = started.elapsed().as_secs_f64();
    let server_cpu_s = cpu_seconds(&pid.to_string())
        .zip(cpu0)
        .map_or(f64::NAN, |(b, a)| b - a);
    let by_thread = thread_cpu_delta(&threads0, &thread_cpu_seconds(pid));
    Ok(Phase {
        samples,
        failed: failed.load(Ordering::Relaxed),
        wall_s,
        server_cpu_s,
        by_thread,
    })
}

/// A well-mixed 64-bit value of `x` (splitmix64), for random cards, columns and positions.
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The board "Bench" (every member may edit) with `n` cards spread over its columns;
/// returns its id, its column ids and the card ids.
fn fill_board(
    db: &std::path::Path,
    creator: MemberId,
    n: usize,
) -> anyhow::Result<(BoardId, Vec<i64>, Vec<i64>)> {
    let mut conn = kollegium_tenants::db::open_connection(db)?;
    let now = kollegium_tenants::Clock::now(&kollegium_tenants::SystemClock);
    conn.immediate_transaction(|c| -> anyhow::Result<_> {
        let board = boards::create_board(
            c,
            creator,
            "Bench",
            "",
            boards::DEFAULT_COLUMNS,
            &[Access::new(Grantee::Practice, Permission::Edit)],
            now,
        )
        .map_err(|e| anyhow::anyhow!("creating the board: {e}"))?;
        let columns: Vec<i64> = kollegium_platform::tasks::columns::of_board(c, board)?
            .into_iter()
            .map(|col| col.id)
            .collect();
        let mut ids = Vec::with_capacity(n);
        for i in 0..n {
            let column = kollegium_platform::tasks::ColumnId(columns[i % columns.len()]);
            let card = NewCard {
                title: format!("Bench-Karte {i}"),
                description: format!("Beschreibung der Karte {i} mit **etwas** Text."),
                ..NewCard::default()
            };
            let id = cards::create_card(c, board, Some(column), Some(creator), &card, now)
                .map_err(|e| anyhow::anyhow!("creating card {i}: {e}"))?;
            ids.push(id.0);
        }
        Ok((board, columns, ids))
    })
}

#[derive(QueryableByName)]
struct Slot {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    column_id: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    position: i64,
}

/// Every card of `board` once, and positions `0..n-1` in every column.
fn consistent(db: &std::path::Path, board: BoardId, cards: usize) -> anyhow::Result<()> {
    let mut conn = kollegium_tenants::db::open_connection(db)?;
    let slots: Vec<Slot> = diesel::sql_query(
        "SELECT column_id, position FROM task_cards WHERE board_id = ? \
         ORDER BY column_id, position",
    )
    .bind::<diesel::sql_types::BigInt, _>(board.0)
    .load(&mut conn)?;
    ensure!(
        slots.len() == cards,
        "{} cards on the board, {cards} created",
        slots.len()
    );
    let mut expected = 0;
    let mut column = None;
    for s in &slots {
        if column != Some(s.column_id) {
            column = Some(s.column_id);
            expected = 0;
        }
        ensure!(
            s.position == expected,
            "column {} has position {} where {expected} belongs",
            s.column_id,
            s.position
        );
        expected += 1;
    }
    Ok(())
}

fn report(args: &Args, render: &[Phase], moves: &Phase, board: BoardId) -> anyhow::Result<Report> {
    let r = render
        .first()
        .and_then(|p| p.samples.summary())
        .context("no board page loads")?;
    let m: Option<Summary> = moves.samples.summary();
    let threads = |p: &Phase| {
        p.by_thread
            .iter()
            .take(5)
            .map(|(name, s)| format!("{name} {:.2} s", s))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!("\ntasks — board {} with {} cards:", board.0, args.cards);
    for (p, clients) in render
        .iter()
        .zip([args.render_clients, args.render_load_clients])
    {
        println!(
            "  board page ({clients} client(s)): {}; {:.1} pages/s, {} failed; server CPU {:.1} ms per page ({})",
            p.samples
                .summary()
                .map(|s| s.to_string())
                .unwrap_or_default(),
            p.rate(),
            p.failed,
            p.per_op_us() / 1000.0,
            threads(p)
        );
    }
    println!(
        "  card moves ({} clients): {:.1} moves/s, {} refused; answer {}; server CPU {:.0} µs per move ({})",
        args.move_clients,
        moves.rate(),
        moves.failed,
        m.map(|s| s.to_string()).unwrap_or_default(),
        moves.per_op_us(),
        threads(moves)
    );
    let goals = vec![
        Goal::at_most(
            format!(
                "board page p99 with {} cards, {} client(s)",
                args.cards, args.render_clients
            ),
            r.p99_ms,
            RENDER_P99_GOAL_MS,
            "ms",
        ),
        Goal::at_most("refused card moves", moves.failed as f64, 0.0, "moves"),
    ];
    let method = format!(
        "Real `kollegium serve` release binary on a fresh data directory; one practice, {} \
         accounts signed in through the real flow; a board with {} cards over three columns \
         written in-process through the library; render: {} clients in a closed loop on GET \
         /tasks/boards/<id> for {} s, then {} clients at once for as long; moves: {} clients in a closed loop on POST \
         /api/tasks/cards/<id>/move (random card, column, position) for {} s, then the board is \
         read from the database: every card once, positions dense.",
        args.members,
        args.cards,
        args.render_clients,
        args.render_secs,
        args.render_load_clients,
        args.move_clients,
        args.move_secs
    );
    let variant = (args.cards != 2000).then(|| format!("{}-cards", args.cards));
    Ok(Report::new(
        "tasks",
        method,
        json!({
            "cards": args.cards,
            "render": render.first().map(Phase::json),
            "render_load": render.get(1).map(Phase::json),
            "moves": moves.json(),
            "moves_per_s": moves.rate(),
        }),
        goals,
    )
    .variant(variant))
}
