//! # kollegium-platform — the practice workspace
//!
//! Owns the practice's daily workspace at `<slug>.<base>/`: the start page (portal) and
//! the apps (chat, tasks, files, vault, news), support access and the activity stream,
//! stored in the practice's own `platform.sqlite`, `files/` and `index/`.
//!
//! It must never import `kollegium-idp` or read `idp.sqlite`: it learns who a user is from
//! ID tokens and userinfo of its practice's IdP, exactly as a third-party tool does. It
//! must never serve one practice's data on another practice's origin.

pub mod auth;
pub mod chat;
pub mod directory;
pub mod error;
pub mod markdown;
pub mod members;
pub mod notify;
pub mod portal;
pub mod provision;
pub mod schema;
pub mod search;

use actix_web::web;
use diesel_migrations::embed_migrations;
use kollegium_tenants::DbKind;

/// The practice's `platform.sqlite`.
pub static PLATFORM_DB: DbKind = DbKind {
    name: "platform",
    file: "platform.sqlite",
    migrations: embed_migrations!("migrations"),
};

pub use auth::{PlatformSettings, PlatformState};
pub use provision::PlatformProvisioner;

/// Paths POSTed without cookies (the IdP's back-channel logout).
pub const CSRF_EXEMPT: &[&str] = auth::routes::CSRF_EXEMPT;

/// Registers the workspace routes on a practice origin.
pub fn configure(cfg: &mut web::ServiceConfig) {
    auth::routes::configure(cfg);
    notify::configure(cfg);
    // Fixed chat paths before `/chat/{room}`.
    chat::search_routes::configure(cfg);
    chat::admin::configure(cfg);
    chat::api::configure(cfg);
    chat::routes::configure(cfg);
    portal::configure(cfg);
}
