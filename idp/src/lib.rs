//! # kollegium-idp — the practice identity provider
//!
//! Owns each practice's accounts, credentials, sessions, devices, user administration,
//! the OpenID Connect provider at `/id/` and the client registry, all stored in the
//! practice's own `idp.sqlite`.
//!
//! It must never import `kollegium-platform` or read `platform.sqlite`: the platform is a
//! relying party like any third-party tool. It must never write a password, token, code or
//! secret into a log line, an event or an e-mail, and never answer one practice's request
//! with another practice's data (every query runs on the requesting practice's database).

pub mod demo;
pub mod devices;
pub mod error;
pub mod events;
pub mod flow;
pub mod links;
pub mod lockout;
pub mod mail;
pub mod mfa;
pub mod oidc;
pub mod passwords;
pub mod policy;
pub mod provision;
pub mod routes;
pub mod schema;
pub mod sessions;
pub mod state;
pub mod throttle;
pub mod totp;
pub mod user_admin;
pub mod users;
pub mod views;

use actix_web::web;
use diesel_migrations::embed_migrations;
use kollegium_tenants::web::WebContext;
use kollegium_tenants::{DbKind, Tenant};

/// The practice's `idp.sqlite`.
pub static IDP_DB: DbKind = DbKind {
    name: "idp",
    file: "idp.sqlite",
    migrations: embed_migrations!("migrations"),
};

pub use provision::IdpProvisioner;
pub use state::{IdpSettings, IdpState};

/// Paths where POSTs authenticate without cookies (client credentials or bearer tokens).
///
/// `/id/authorize` and `/id/logout/end` accept cross-site form posts from relying parties
/// (OIDC allows POST for both); they change nothing the user has not confirmed: consent
/// and logout confirmation are separate, CSRF-protected forms.
pub const CSRF_EXEMPT: &[&str] = &[
    "/id/token",
    "/id/revoke",
    "/id/introspect",
    "/id/userinfo",
    "/id/authorize",
    "/id/logout/end",
];

/// The IdP's paths on a practice origin, counted as `class="idp"` in metrics and logs.
pub const PATH_CLASSES: &[kollegium_tenants::web::PathClass] =
    &[kollegium_tenants::web::PathClass {
        prefix: "/id",
        class: "idp",
    }];

/// Mail context of a practice as seen from a request.
pub fn mail_ctx(tenant: &Tenant, web: &WebContext) -> mail::MailCtx {
    mail::MailCtx {
        practice_name: tenant.display_name().to_owned(),
        origin: web.settings.practice_origin(tenant.slug().as_str()),
    }
}

/// Registers the IdP's routes (all under `/id`).
pub fn configure(cfg: &mut web::ServiceConfig) {
    routes::configure(cfg);
    oidc::configure(cfg);
}
