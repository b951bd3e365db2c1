//! The `kollegium` binary's library half: configuration, composition of the apps into one
//! server, and the practice lifecycle commands. `main.rs` only parses the command line
//! and calls into here; tests and the benchmark driver start the same server in-process.

pub mod cli;
pub mod config;
pub mod demo;
pub mod news;
pub mod operator;
pub mod practices;
pub mod roster;
pub mod server;

pub use config::Config;
pub use server::{RunningServer, start};
