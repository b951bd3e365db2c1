//! The command-line contract. Other tools rely on these names: keep them.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// The demo roster tool's default port (`kollegium demo --roster-port`).
pub const DEMO_ROSTER_PORT: u16 = 9000;

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
    /// Create the demo practice if missing, print URLs and logins, serve (with the sample
    /// tool "Dienstplan (Demo)" on loopback)
    Demo {
        /// Port of the sample tool "Dienstplan (Demo)" on loopback (a free one if taken)
        #[arg(
            long,
            value_name = "PORT",
            env = "KOLLEGIUM_DEMO_ROSTER_PORT",
            default_value_t = DEMO_ROSTER_PORT
        )]
        roster_port: u16,
    },
    /// Create and manage practices
    #[command(subcommand)]
    Practice(PracticeCommand),
    /// Inspect the configuration
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Register relying parties (third-party tools) at a practice's identity provider
    #[command(subcommand)]
    Client(ClientCommand),
    /// Signed broadcasts ("Neuigkeiten") from the operator to every practice
    #[command(subcommand)]
    News(NewsCommand),
    /// Staff accounts of the operator console (the operator listener's web pages)
    #[command(subcommand)]
    Operator(OperatorCommand),
}

#[derive(Debug, Subcommand)]
pub enum OperatorCommand {
    /// Create an operator account; prints a one-time setup link (password and TOTP)
    Add {
        /// Sign-in name: lower-case letters, digits, '.', '-', '_'
        name: String,
        #[arg(long)]
        email: String,
    },
    /// List the operator accounts
    List {
        #[arg(long)]
        json: bool,
    },
    /// Suspend an operator: their sessions end at once, sign-in is refused
    Suspend { name: String },
    /// Resume a suspended operator
    Resume { name: String },
    /// Print a new one-time setup link (new password and TOTP); earlier links stop working
    SetupLink { name: String },
}

#[derive(Debug, Subcommand)]
pub enum NewsCommand {
    /// Sign and publish a message to every practice; prints its id. Without audience
    /// options it is for everyone; each option narrows it (a member must match every
    /// option given, and one of the values of each)
    Publish {
        #[arg(long)]
        title: String,
        /// Markdown file with the message's text (`-`: standard input)
        #[arg(long, value_name = "FILE")]
        body_file: PathBuf,
        /// Specialty id of the catalogue (e.g. allgemeinmedizin); repeat for several
        #[arg(long = "specialty", value_name = "ID")]
        specialties: Vec<String>,
        /// Role id of the catalogue (e.g. abrechnung); repeat for several
        #[arg(long = "role", value_name = "ID")]
        roles: Vec<String>,
        /// KV region id of the catalogue (e.g. kv-nordrhein); repeat for several
        #[arg(long = "kv-region", value_name = "ID")]
        kv_regions: Vec<String>,
        /// Last day the message is shown (Europe/Berlin), e.g. 2027-03-31
        #[arg(long, value_name = "YYYY-MM-DD")]
        valid_until: Option<String>,
        /// Show it above the others
        #[arg(long)]
        pinned: bool,
    },
    /// Withdraw a message everywhere with a signed retraction
    Withdraw { id: String },
    /// List the published messages, newest first
    List {
        #[arg(long)]
        json: bool,
    },
    /// Print the operator's public key (base64) for the nodes' `[broadcast] public_key`
    PublicKey,
}

#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Register a client; prints its id and, for confidential clients, the secret once
    Add {
        slug: String,
        #[arg(long)]
        name: String,
        /// Redirect URI (https, or http on localhost/loopback); repeat for several
        #[arg(long = "redirect-uri", required = true)]
        redirect_uris: Vec<String>,
        /// A public client (no secret; PKCE required)
        #[arg(long)]
        public: bool,
        /// Where the client may send users after logout; repeat for several
        #[arg(long = "post-logout-uri")]
        post_logout_uris: Vec<String>,
        /// Back-channel logout endpoint of the client
        #[arg(long)]
        backchannel_logout_uri: Option<String>,
        /// Start-page tile target
        #[arg(long)]
        launch_url: Option<String>,
        /// Third-party-initiated login endpoint (the tile starts the login there)
        #[arg(long)]
        initiate_login_uri: Option<String>,
        /// Algorithm of the client's ID, access and logout tokens: RS256 (default, what
        /// every OpenID Connect client supports) or ES256
        #[arg(long, default_value = "RS256")]
        signing_alg: String,
    },
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
    /// Set the practice's time zone (IANA name, default Europe/Berlin): every time its
    /// users see is shown in it
    SetTimeZone {
        slug: String,
        /// e.g. Europe/Berlin
        zone: String,
    },
    /// Add a new signing key; the old one stays published until its tokens have expired
    RotateKeys { slug: String },
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
