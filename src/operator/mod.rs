//! The operator console on the operator listener: the provider's staff accounts (with a
//! one-time setup link, argon2id password and mandatory TOTP), their sessions, the
//! sign-in throttle (the IdP's), the audit log, and the console's pages (practices, the
//! audit log; the news pages build on the same layout and extractor).
//!
//! Domain logic is plain functions on a connection to `data/operator.sqlite` and a time
//! ([`accounts`], [`sessions`], [`signin`], [`audit`]); the CLI ([`cli`]) and the console's
//! pages call the same functions. The web layer ([`web`]) holds the console's state, the
//! guard every console request passes (own host, Origin, CSRF, body limit), the
//! [`web::Operator`] extractor and the page frame.

pub mod accounts;
pub mod audit;
pub mod cli;
pub mod news_pages;
pub mod pages;
pub mod practices;
pub mod schema;
pub mod sessions;
pub mod signin;
pub mod web;

#[cfg(test)]
mod domain_tests;

use std::path::Path;

use diesel::SqliteConnection;
use kollegium_tenants::broadcast::operator::OPERATOR_DB;
use kollegium_tenants::db;
use kollegium_tenants::secrets::NodeKey;
use zeroize::Zeroizing;

pub use web::{Console, ConsoleError, CsrfToken, Layout, Operator};

/// Opens (creating and migrating) `data/operator.sqlite`. Blocking.
pub fn open_db(data_dir: &Path) -> anyhow::Result<SqliteConnection> {
    let path = data_dir.join(OPERATOR_DB.file);
    kollegium_tenants::perms::create_dir_all(data_dir)?;
    let mut conn = db::open_connection(&path)?;
    db::migrate(&mut conn, &OPERATOR_DB, &path)?;
    Ok(conn)
}

/// The key operators' TOTP secrets are sealed with, derived from the node key.
pub fn totp_key(node: &NodeKey) -> Zeroizing<[u8; 32]> {
    node.derive("operator-console-totp")
}

/// Registers the console's routes (the guard is installed around the whole listener by
/// the composition, `server.rs`).
pub fn configure(cfg: &mut actix_web::web::ServiceConfig) {
    pages::configure(cfg);
    practices::configure(cfg);
    news_pages::configure(cfg);
}

/// The setup link for `token`: under `[operator] public_url` when configured, else
/// `http://<operator listener>`.
pub fn setup_url(base: &str, token: &str) -> String {
    format!("{}/setup/{token}", base.trim_end_matches('/'))
}
