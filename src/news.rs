//! `kollegium news …`: the operator's broadcasts from the command line. The same library
//! functions as the operator console (`kollegium_tenants::broadcast::OperatorFeed`), so
//! both are tested once below them; this is only argument parsing and printing.

use std::io::Read;
use std::path::Path;

use kollegium_tenants::broadcast::operator::{Published, end_of_day};
use kollegium_tenants::broadcast::{
    Audience, Draft, Entry, MessageId, OperatorFeed, OperatorKey, PublishError,
    entry::MAX_BODY_BYTES,
};
use kollegium_tenants::{UnixTime, clock};

use crate::cli::NewsCommand;
use crate::config::Config;

/// A failure with its exit code: usage (2) or runtime (1).
#[derive(Debug)]
pub enum NewsError {
    Usage(String),
    Runtime(anyhow::Error),
}

impl From<PublishError> for NewsError {
    fn from(e: PublishError) -> Self {
        match e {
            PublishError::Storage(_) | PublishError::Encode(_) => Self::Runtime(e.into()),
            other => Self::Usage(other.to_string()),
        }
    }
}

fn runtime(e: impl Into<anyhow::Error>) -> NewsError {
    NewsError::Runtime(e.into())
}

/// The operator's signing key, as configured (`[broadcast] key_file`, default
/// `<data_dir>/operator.key`, created on first use).
pub fn operator_key(config: &Config) -> Result<OperatorKey, NewsError> {
    OperatorKey::load_or_create(&config.operator_key_path()).map_err(runtime)
}

/// Runs one `news` subcommand at time `now`.
pub fn run(cmd: NewsCommand, config: &Config, now: UnixTime) -> Result<(), NewsError> {
    match cmd {
        NewsCommand::PublicKey => {
            println!("{}", operator_key(config)?.public());
            Ok(())
        }
        NewsCommand::Publish {
            title,
            body_file,
            specialties,
            roles,
            kv_regions,
            valid_until,
            pinned,
        } => {
            let body = read_body(&body_file)?;
            let valid_until = valid_until
                .map(|d| end_of_day(&d, &kollegium_tenants::time::Zone::default()))
                .transpose()
                .map_err(|e| NewsError::Usage(format!("--valid-until: {e}")))?;
            let draft = Draft {
                title,
                body,
                audience: Audience {
                    specialties,
                    roles,
                    kv_regions,
                },
                valid_until,
                pinned,
            };
            let key = operator_key(config)?;
            warn_if_nodes_refuse(config, &key);
            let feed = OperatorFeed::open(&config.data_dir).map_err(runtime)?;
            let entry = feed.publish(&key, draft, now)?;
            let id = message_id(&key, &entry)
                .ok_or_else(|| runtime(anyhow::anyhow!("the signed entry does not verify")))?;
            audit(config, now, "news.publish", &id.to_string())?;
            println!("{id}");
            Ok(())
        }
        NewsCommand::Withdraw { id } => {
            let key = operator_key(config)?;
            let feed = OperatorFeed::open(&config.data_dir).map_err(runtime)?;
            let entry = feed.withdraw(&key, &id, now)?;
            audit(config, now, "news.withdraw", id.trim())?;
            println!(
                "Withdrew {}: every node removes it at its next sync (entry {}).",
                id.trim(),
                entry.seq
            );
            Ok(())
        }
        NewsCommand::List { json } => {
            let feed = OperatorFeed::open(&config.data_dir).map_err(runtime)?;
            let all = feed.list()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&all).map_err(runtime)?);
            } else {
                print_list(&all, now);
            }
            Ok(())
        }
    }
}

/// A news command in the operator audit log ("Kommandozeile"): the message id, never content.
fn audit(config: &Config, now: UnixTime, action: &str, id: &str) -> Result<(), NewsError> {
    crate::operator::audit::record_cli(&config.data_dir, now, action, id)
        .map_err(|e| runtime(e.context("cannot write the operator audit log")))
}

/// The id of the message `entry`, just signed with `key`, publishes (the CLI and the console
/// print and audit it).
pub fn message_id(key: &OperatorKey, entry: &Entry) -> Option<MessageId> {
    match entry.verify(&key.public()).ok()?.item {
        kollegium_tenants::broadcast::entry::Item::Message(m) => Some(m.id),
        kollegium_tenants::broadcast::entry::Item::Retraction(_) => None,
    }
}

/// The message's Markdown from a file or standard input, refused early when too large.
fn read_body(path: &Path) -> Result<String, NewsError> {
    let mut raw = Vec::new();
    let limit = MAX_BODY_BYTES as u64 + 1;
    let read = if path == Path::new("-") {
        std::io::stdin().take(limit).read_to_end(&mut raw)
    } else {
        std::fs::File::open(path).and_then(|f| f.take(limit).read_to_end(&mut raw))
    };
    read.map_err(|e| NewsError::Usage(format!("--body-file {}: {e}", path.display())))?;
    if raw.len() > MAX_BODY_BYTES {
        return Err(NewsError::Usage(format!(
            "--body-file {}: larger than {MAX_BODY_BYTES} bytes",
            path.display()
        )));
    }
    String::from_utf8(raw)
        .map_err(|_| NewsError::Usage(format!("--body-file {}: not UTF-8 text", path.display())))
}

/// A node configured with another public key would refuse what this key signs.
fn warn_if_nodes_refuse(config: &Config, key: &OperatorKey) {
    let Some(configured) = &config.broadcast.public_key else {
        return;
    };
    if configured.trim() != key.public().to_base64() {
        eprintln!(
            "warning: `broadcast.public_key` is not this operator key's public key ({}); \
             nodes configured with it refuse what this key signs",
            key.public()
        );
    }
}

fn print_list(all: &[Published], now: UnixTime) {
    if all.is_empty() {
        println!(
            "No messages yet. Publish one with: kollegium news publish --title T --body-file F.md"
        );
        return;
    }
    println!(
        "{:<32}  {:<20}  {:<11}  {:<30}  TITLE",
        "ID", "PUBLISHED", "STATUS", "AUDIENCE"
    );
    for m in all {
        let status = match (m.withdrawn_at, m.valid_until) {
            (Some(_), _) => "withdrawn",
            (None, Some(t)) if t <= now => "expired",
            _ if m.pinned => "active, pin",
            _ => "active",
        };
        println!(
            "{:<32}  {:<20}  {:<11}  {:<30}  {}",
            m.id,
            clock::format_utc(m.published_at),
            status,
            audience(&m.audience),
            m.title
        );
    }
}

fn audience(a: &Audience) -> String {
    let mut parts = Vec::new();
    for (name, ids) in [
        ("specialty", &a.specialties),
        ("role", &a.roles),
        ("kv", &a.kv_regions),
    ] {
        if !ids.is_empty() {
            parts.push(format!("{name}={}", ids.join(",")));
        }
    }
    if parts.is_empty() {
        "everyone".into()
    } else {
        parts.join(" ")
    }
}
