//! # kollegium-platform — the practice workspace
//!
//! Owns the practice's daily workspace at `<slug>.<base>/`: the start page (portal) and
//! the apps (chat, tasks, files, vault, news), support access and the activity stream,
//! stored in the practice's own `platform.sqlite`, `files/` and `index/`.
//!
//! It must never import `kollegium-idp` or read `idp.sqlite`: it learns who a user is from
//! ID tokens and userinfo of its practice's IdP, exactly as a third-party tool does. It
//! must never serve one practice's data on another practice's origin.

pub mod app;
pub mod auth;
pub mod chat;
pub mod directory;
pub mod error;
pub mod filestore;
pub mod live;
pub mod markdown;
pub mod members;
pub mod news;
pub mod notify;
pub mod portal;
pub mod provision;
pub mod schema;
pub mod search;
pub mod settings;
pub mod shell;
pub mod tasks;
#[cfg(test)]
mod test_support;

use std::sync::Arc;

use actix_web::web;
use diesel_migrations::embed_migrations;
use kollegium_tenants::web::metrics::{Gauge, GaugeKind};
use kollegium_tenants::{DbKind, SharedClock};

/// The practice's `platform.sqlite`.
pub static PLATFORM_DB: DbKind = DbKind {
    name: "platform",
    file: "platform.sqlite",
    migrations: embed_migrations!("migrations"),
};

pub use app::{AppContext, WorkspaceApp, apps};
pub use auth::SignIn;
pub use provision::PlatformProvisioner;
pub use settings::PlatformSettings;

/// Upload paths (exact): a larger body limit, and the CSRF token in the query (a multipart
/// form's body is not read by the CSRF check).
pub const UPLOAD_PATHS: &[&str] = tasks::attachment_routes::UPLOAD_PATHS;

/// Paths POSTed without cookies (the IdP's back-channel logout).
pub const CSRF_EXEMPT: &[&str] = auth::routes::CSRF_EXEMPT;

/// The workspace as the binary composes it, built once per node: the sign-in, the shared
/// context of the apps, and what each app of [`app::APPS`] keeps for itself. Creates
/// nothing per practice.
pub struct Platform {
    pub sign_in: web::Data<auth::SignIn>,
    pub shared: web::Data<AppContext>,
    apps: Vec<app::AppData>,
    gauges: Vec<Gauge>,
}

impl Platform {
    /// `jobs` is the node's job signal (`kollegium_tenants::jobs`), which the apps poke
    /// after queuing background jobs; `broadcasts` the node's verified broadcasts, which
    /// the news app shows.
    pub fn new(
        clock: SharedClock,
        http: reqwest::Client,
        settings: &PlatformSettings,
        jobs: Arc<kollegium_tenants::jobs::JobSignal>,
        broadcasts: Option<Arc<kollegium_tenants::broadcast::NodeFeed>>,
    ) -> Self {
        let mut context = AppContext::new(clock, jobs).with_broadcasts(broadcasts);
        context.files = Arc::new(filestore::FileService::new(settings.files.clone()));
        let shared = Arc::new(context);
        let sign_in = web::Data::new(auth::SignIn::new(
            shared.clone(),
            http,
            auth::SessionSettings::from(settings),
        ));
        let mut data = Vec::new();
        let mut gauges = Vec::new();
        for a in apps() {
            let started = a.start(&shared, settings);
            data.extend(started.data);
            gauges.extend(started.gauges);
        }
        Self {
            sign_in,
            shared: web::Data::from(shared),
            apps: data,
            gauges,
        }
    }

    /// Registers the states (`app_data`) and the workspace routes on a practice origin.
    pub fn configure(&self, cfg: &mut web::ServiceConfig) {
        cfg.app_data(self.sign_in.clone());
        cfg.app_data(self.shared.clone());
        for d in &self.apps {
            d.register(cfg);
        }
        configure(cfg);
    }

    /// The workspace's gauges for `/metrics`: the live channel's, the sign-in's and every
    /// app's. Call once per node (the apps' gauges move into the registry).
    pub fn take_gauges(&mut self) -> Vec<Gauge> {
        let shared = self.shared.clone();
        let sign_in = self.sign_in.clone();
        let mut gauges = vec![
            Gauge::new(
                "kollegium_live_connections",
                "Open live (WebSocket) connections of the workspace pages.",
                GaugeKind::Gauge,
                move || shared.live.connections() as i64,
            ),
            Gauge::new(
                "kollegium_idp_metadata_fetches_total",
                "Discovery and key-set fetches of the workspace from the practices' identity \
                 providers.",
                GaugeKind::Counter,
                move || i64::try_from(sign_in.metadata_fetches()).unwrap_or(i64::MAX),
            ),
        ];
        gauges.append(&mut self.gauges);
        gauges
    }

    /// The search service (index cache and the indexer's doorbell), for the node's worker.
    pub fn search(&self) -> Arc<search::SearchService> {
        self.shared.search.clone()
    }
}

/// Registers the workspace routes on a practice origin: the sign-in's, every app's (from
/// the app list), the one search page (`/search`), then the start page.
pub fn configure(cfg: &mut web::ServiceConfig) {
    auth::routes::configure(cfg);
    for a in apps() {
        a.configure(cfg);
    }
    search::page::configure(cfg);
    portal::configure(cfg);
}

/// The apps' path classes for metrics and logs (the rest of the workspace is `platform`).
pub fn path_classes() -> Vec<kollegium_tenants::web::PathClass> {
    apps()
        .iter()
        .flat_map(|a| a.path_classes().iter().copied())
        .collect()
}
