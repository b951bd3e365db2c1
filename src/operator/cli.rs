//! `kollegium operator add|list|suspend|resume|setup-link`: argument handling and printing
//! around [`super::accounts`]; every action is in the audit log as "Kommandozeile".

use kollegium_tenants::UnixTime;
use kollegium_tenants::clock;

use super::accounts::{self, AccountError};
use super::audit::CLI;
use crate::cli::OperatorCommand;
use crate::config::Config;

/// Why an operator command failed: the user's mistake (exit 2) or the node's (exit 1).
#[derive(Debug)]
pub enum OperatorError {
    Usage(String),
    Runtime(anyhow::Error),
}

impl From<AccountError> for OperatorError {
    fn from(e: AccountError) -> Self {
        match e {
            AccountError::Db(e) => Self::Runtime(e.into()),
            other => Self::Usage(other.to_string()),
        }
    }
}

impl From<anyhow::Error> for OperatorError {
    fn from(e: anyhow::Error) -> Self {
        Self::Runtime(e)
    }
}

pub fn run(cmd: OperatorCommand, config: &Config, now: UnixTime) -> Result<(), OperatorError> {
    kollegium_tenants::perms::restrict_umask();
    let mut conn = super::open_db(&config.data_dir)?;
    let base = config
        .operator_base_url()
        .map_err(|e| OperatorError::Usage(e.to_string()))?;
    match cmd {
        OperatorCommand::Add { name, email } => {
            let token = accounts::add(&mut conn, now, CLI, &name, &email)?;
            let name = accounts::parse_name(&name)?;
            println!("Created operator {name:?}.");
            println!(
                "Setup link (valid 72 h, single use): {}",
                super::setup_url(&base, &token)
            );
            println!(
                "They choose a password and set up TOTP there; the console listens on {base}."
            );
        }
        OperatorCommand::List { json } => {
            let all = accounts::list(&mut conn).map_err(AccountError::from)?;
            if json {
                let rows: Vec<_> = all
                    .iter()
                    .map(|a| {
                        serde_json::json!({
                            "name": a.name,
                            "email": a.email,
                            "status": a.status,
                            "set_up": a.is_set_up(),
                            "created_at": a.created_at,
                        })
                    })
                    .collect();
                println!(
                    "{}",
                    serde_json::to_string_pretty(&rows).map_err(anyhow::Error::from)?
                );
                return Ok(());
            }
            if all.is_empty() {
                println!(
                    "No operators yet. Create one with: kollegium operator add <name> --email EMAIL"
                );
                return Ok(());
            }
            println!(
                "{:<32}  {:<10}  {:<8}  {:<20}  EMAIL",
                "NAME", "STATUS", "SET UP", "CREATED"
            );
            for a in all {
                println!(
                    "{:<32}  {:<10}  {:<8}  {:<20}  {}",
                    a.name,
                    a.status,
                    if a.is_set_up() { "yes" } else { "no" },
                    clock::format_utc(a.created_at),
                    a.email
                );
            }
        }
        OperatorCommand::Suspend { name } => {
            accounts::set_suspended(&mut conn, now, CLI, &name, true)?;
            println!(
                "Suspended operator {:?}; their sessions have ended.",
                name.trim().to_lowercase()
            );
        }
        OperatorCommand::Resume { name } => {
            accounts::set_suspended(&mut conn, now, CLI, &name, false)?;
            println!("Resumed operator {:?}.", name.trim().to_lowercase());
        }
        OperatorCommand::SetupLink { name } => {
            let token = accounts::new_setup_link(&mut conn, now, CLI, &name)?;
            println!(
                "Setup link (valid 72 h, single use): {}",
                super::setup_url(&base, &token)
            );
            println!(
                "Earlier setup links of this operator no longer work; completing this one sets a new password and TOTP secret."
            );
        }
    }
    Ok(())
}
