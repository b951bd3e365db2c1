//! The command-line contract. Other tools rely on these names: keep them.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "kollegium", version, about = "Workspace for medical practices")]
pub struct Cli {
    /// Configuration file (default: ./kollegium.toml when present)
    #[arg(long, global = true, value_name = "FILE", env = "KOLLEGIUM_CONFIG")]
    pub config: Option<PathBuf>,
    /// Data directory (overrides `data_dir` / KOLLEGIUM_DATA_DIR)
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the main and the operator listener
    Serve,
    /// Create the demo practice if missing, print URLs and logins, serve
    Demo,
    /// Create and manage practices
    #[command(subcommand)]
    Practice(PracticeCommand),
    /// Inspect the configuration
    #[command(subcommand)]
    Config(ConfigCommand),
}

#[derive(Debug, Subcommand)]
pub enum PracticeCommand {
    /// Create a practice with its own identity provider and workspace
    Create {
        slug: String,
        /// Display name, e.g. "Praxis Dr. Müller"
        #[arg(long)]
        name: String,
        /// E-mail of the practice owner (first administrator)
        #[arg(long)]
        owner_email: String,
    },
    /// List all practices (deleted ones are shown as tombstones)
    List {
        #[arg(long)]
        json: bool,
    },
    /// Show one practice
    Show {
        slug: String,
        #[arg(long)]
        json: bool,
    },
    /// Print a new one-time setup link for the owner (only while the owner has not yet
    /// completed setup; earlier setup links stop working)
    SetupLink { slug: String },
    /// Suspend a practice: its pages answer "Praxis gesperrt"
    Suspend { slug: String },
    /// Resume a suspended practice
    Resume { slug: String },
    /// Delete a practice's data; the slug stays reserved
    Delete {
        slug: String,
        /// Repeat the slug to confirm
        #[arg(long)]
        confirm: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the effective configuration, secrets redacted
    Check,
}
