//! `kollegium-bench`: the benchmark load driver.
//!
//! `cargo run --release -p kollegium-bench -- <scenario>` starts a real server (the release
//! `kollegium` binary, as its own process) on a fresh temporary data directory, drives it
//! over loopback HTTP, prints a summary and writes `bench-results/<scenario>.json`.
//! Set `KOLLEGIUM_BENCH_KEEP=1` to keep the data directory and server log for inspection.

mod browser;
mod fixtures;
mod http;
mod idp;
mod load;
mod report;
mod scenarios;
mod server;
mod stats;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "kollegium-bench",
    about = "Load driver for a real Kollegium server"
)]
struct Cli {
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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli.scenario) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(scenario: &Scenario) -> anyhow::Result<()> {
    let report = match scenario {
        Scenario::Provision(args) => scenarios::provision::run(args)?,
        Scenario::Density(args) => runtime()?.block_on(scenarios::density::run(args))?,
        Scenario::Login(args) => runtime()?.block_on(scenarios::login::run(args))?,
        Scenario::Token(args) => runtime()?.block_on(scenarios::token::run(args))?,
        Scenario::Chat(args) => scenarios::chat::run(args)?,
    };
    report.finish()?;
    Ok(())
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}
