//! One module per scenario. Each takes its clap `Args`, runs against a fresh data directory
//! and returns a [`Report`](crate::report::Report) that `main` prints and writes.
//!
//! To add a scenario (login, token, chat, ...): add a module with `Args` and `run`, start
//! the server with [`ServerProcess::start`](crate::server::ServerProcess::start), time
//! requests into [`Samples`](crate::stats::Samples), and add a variant in `main.rs`.

pub mod chat;
pub mod chat_client;
pub mod chat_node;
pub mod density;
pub mod login;
pub mod news;
pub mod news_raw;
pub mod provision;
pub mod tasks;
pub mod token;

/// The 1/5/15-minute load averages, to judge how quiet the machine was.
pub fn loadavg() -> Option<String> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    Some(
        text.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
    )
}

/// `1.23, 4.56, ...` for printing a list of milliseconds.
pub fn fmt_ms(values: &[f64]) -> String {
    values
        .iter()
        .map(|v| format!("{v:.2}"))
        .collect::<Vec<_>>()
        .join(", ")
}
