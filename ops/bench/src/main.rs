//! `kollegium-bench`: the benchmark load driver.
//!
//! `cargo run --release -p kollegium-bench -- <scenario>` starts a real server (the release
//! `kollegium` binary, as its own process) on a fresh temporary data directory, drives it
//! over loopback HTTP, prints a summary and writes `bench-results/<scenario>.json`.
//! Every scenario runs `--repeat N` times (default 3); verdicts are taken on the median and
//! say "inconclusive: machine busy" when the machine was busy during a run (`conditions`).
//! Set `KOLLEGIUM_BENCH_KEEP=1` to keep the data directory and server log for inspection.

mod browser;
mod conditions;
mod fixtures;
mod http;
mod idp;
mod load;
mod repeat;
mod report;
mod scenarios;
mod server;
mod stats;
mod syscalls;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "kollegium-bench",
    about = "Load driver for a real Kollegium server"
)]
struct Cli {
    /// Runs of the scenario, each on a fresh server and data directory; verdicts on the median
    #[arg(long, global = true, default_value_t = 3)]
    repeat: usize,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Debug, Subcommand)]
enum Scenario {
    /// Time to create a practice (in-process through the library, no server)
    Provision(scenarios::provision::Args),
    /// Many practices on one server: memory, descriptors, cold vs warm first request
    Density(scenarios::density::Args),
    /// Full password logins/s at the IdP against the raw argon2id hash rate; RSS after logins
    Login(scenarios::login::Args),
    /// Token endpoint: authorization-code exchanges/s and refresh grants/s with latency
    Token(scenarios::token::Args),
    /// Live chat: post -> WebSocket delivery latency, sustained posts/s, room page
    Chat(scenarios::chat::Args),
    /// Live chat at node scale: many practices, thousands of sockets, a long steady stream
    ChatNode(scenarios::chat_node::Args),
    /// Tasks: a board with 2,000 cards: board page render time, card moves/s at 16 clients
    Tasks(scenarios::tasks::Args),
    /// Signed broadcasts: operator publishes, nodes with 1,000 practices verify and store;
    /// time, node CPU per entry beside the raw Ed25519 verification rate
    News(scenarios::news::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run_repeated(&cli.scenario, cli.repeat) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Pause between runs, so that one run's server and files are gone before the next starts.
const BETWEEN_RUNS: std::time::Duration = std::time::Duration::from_secs(2);

fn run_repeated(scenario: &Scenario, repeat: usize) -> anyhow::Result<()> {
    anyhow::ensure!(repeat > 0, "--repeat must be at least 1");
    let mut runs = Vec::with_capacity(repeat);
    for i in 1..=repeat {
        if i > 1 {
            std::thread::sleep(BETWEEN_RUNS);
        }
        println!("\n===== run {i} of {repeat} =====");
        let cond = conditions::Conditions::start(&std::env::temp_dir());
        let mut report = run(scenario, &cond)?;
        report.conditions = Some(cond.finish());
        report.print_run();
        runs.push(report);
    }
    repeat::Repeated::new(runs)?.finish()?;
    Ok(())
}

fn run(scenario: &Scenario, cond: &conditions::Conditions) -> anyhow::Result<report::Report> {
    Ok(match scenario {
        Scenario::Provision(args) => scenarios::provision::run(args, cond)?,
        Scenario::Density(args) => runtime()?.block_on(scenarios::density::run(args, cond))?,
        Scenario::Login(args) => runtime()?.block_on(scenarios::login::run(args, cond))?,
        Scenario::Token(args) => runtime()?.block_on(scenarios::token::run(args, cond))?,
        Scenario::Chat(args) => scenarios::chat::run(args, cond)?,
        Scenario::ChatNode(args) => scenarios::chat_node::run(args, cond)?,
        Scenario::Tasks(args) => scenarios::tasks::run(args, cond)?,
        Scenario::News(args) => scenarios::news::run(args, cond)?,
    })
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}
