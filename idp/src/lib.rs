//! # kollegium-idp — the practice identity provider
//!
//! Owns each practice's accounts, credentials, sessions, devices, user administration,
//! the OpenID Connect provider at `/id/` and the client registry, all stored in the
//! practice's own `idp.sqlite`.
//!
//! It must never import `kollegium-platform` or read `platform.sqlite`: the platform is a
//! relying party like any third-party tool. It must never write a password, token, code or
//! secret into a log line, an event or an e-mail.

pub mod provision;

use diesel_migrations::embed_migrations;
use kollegium_tenants::DbKind;

/// The practice's `idp.sqlite`.
pub static IDP_DB: DbKind = DbKind {
    name: "idp",
    file: "idp.sqlite",
    migrations: embed_migrations!("migrations"),
};

pub use provision::IdpProvisioner;
