//! The workspace app seam: what an app (chat, and later tasks, files, vault, news)
//! contributes, and the one list of apps that drives routing, navigation, the start page,
//! workers, metrics, static assets, provisioning, export and the reactions to a member's
//! session ending or a member being deactivated.
//!
//! An app is one module under `platform/src/<app>/` with a type implementing
//! [`WorkspaceApp`] and one line in [`APPS`]. Every hook has a default that contributes
//! nothing, so an app implements only what it has. Apps share the [`AppContext`] (clock,
//! live channel, search service); what an app keeps for itself it builds in
//! [`WorkspaceApp::start`] and registers as its own `app_data`, which no other app reads.

use std::sync::Arc;
use std::time::Duration;

use actix_web::web;
use diesel::{QueryResult, SqliteConnection};
use kollegium_tenants::broadcast::NodeFeed;
use kollegium_tenants::provision::{BoxError, NewPractice};
use kollegium_tenants::time::Zone;
use kollegium_tenants::web::assets::Source;
use kollegium_tenants::web::metrics::Gauge;
use kollegium_tenants::web::{PathClass, WebContext};
use kollegium_tenants::worker::Worker;
use kollegium_tenants::{SharedClock, TenantStore, UnixTime};

use crate::PlatformSettings;
use crate::directory::DirectorySync;
use crate::members::MemberId;
use crate::search::index::Entry;
use crate::search::{Confirmed, Kind, PermKey, SearchService, Shown};
use kollegium_tenants::jobs::{Handler as JobHandler, JobSignal, Registry};

/// Every app of the workspace, in no particular order ([`NavEntry::order`] orders the
/// navigation). Adding an app is one line here.
pub static APPS: &[&dyn WorkspaceApp] = &[
    &crate::chat::app::Chat,
    &crate::tasks::app::Tasks,
    &crate::news::app::News,
];

/// The list of apps (see [`APPS`]).
pub fn apps() -> &'static [&'static dyn WorkspaceApp] {
    APPS
}

/// What the apps share, built once per node: time, the one live channel, the search
/// service. Registered with `app_data` as `web::Data<AppContext>`.
pub struct AppContext {
    pub clock: SharedClock,
    /// The one live channel: events of every app, by topic, over the page's WebSocket.
    pub live: crate::live::Hub,
    /// The practices' search indexes and the indexer's doorbell.
    pub search: Arc<SearchService>,
    /// The node's job signal: poke it with the practice after a transaction that queued
    /// background jobs (`kollegium_tenants::jobs`) committed.
    pub jobs: Arc<JobSignal>,
    /// The practice file store and its virus scanner (clamd).
    pub files: Arc<crate::filestore::FileService>,
    /// The node's verified broadcasts (`data/broadcasts.sqlite`), handed in by the
    /// composition; `None` where no node feed exists (unit tests).
    pub broadcasts: Option<Arc<NodeFeed>>,
}

impl AppContext {
    pub fn new(clock: SharedClock, jobs: Arc<JobSignal>) -> Self {
        Self {
            clock,
            live: crate::live::Hub::default(),
            search: Arc::new(SearchService::new(jobs.clone())),
            jobs,
            files: Arc::new(crate::filestore::FileService::new(Default::default())),
            broadcasts: None,
        }
    }

    /// The same with the node's broadcasts.
    pub fn with_broadcasts(mut self, feed: Option<Arc<NodeFeed>>) -> Self {
        self.broadcasts = feed;
        self
    }

    pub fn now(&self) -> UnixTime {
        self.clock.now()
    }

    /// After sessions ended: their live connections close, then every app reacts.
    pub fn sessions_ended(&self, slug: &str, sessions: &[i64]) {
        self.live.end_sessions(slug, sessions);
        for app in apps() {
            app.session_ended(self, slug, sessions);
        }
    }

    /// After members were deactivated (left the practice) and the mark committed: every app
    /// reacts on the practice's `platform.sqlite` (`conn`). An app that fails is logged with
    /// its cause and does not keep the others from reacting.
    pub fn members_deactivated(
        &self,
        conn: &mut SqliteConnection,
        slug: &str,
        members: &[MemberId],
    ) {
        for app in apps() {
            if let Err(e) = app.member_deactivated(self, conn, slug, members) {
                tracing::error!(app = app.id(), practice = %slug,
                    error = %crate::error::chain(e.as_ref()),
                    "an app failed to react to members who left");
            }
        }
    }
}

/// An app's entry in the navigation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NavEntry {
    pub label: &'static str,
    pub href: &'static str,
    /// Position in the navigation, ascending; the start page is 0.
    pub order: u16,
}

/// A start-page tile as the app rendered it for one member (HTML from the app's own
/// askama template, escaped there).
#[derive(Debug, Clone)]
pub struct Tile {
    pub app: &'static str,
    pub html: String,
}

/// An app's part of a practice export: its data as JSON and a form a person can read.
#[derive(Debug, Clone)]
pub struct AppExport {
    pub app: &'static str,
    pub json: serde_json::Value,
    /// Plain text (UTF-8), one section of the practice's readable export.
    pub readable: String,
}

/// Hits an app finds outside the practice's index: documents that are not the practice's
/// own but the node's (the operator's news, kept once per node for every practice), so no
/// practice's index holds them. The search page asks each such source after the index,
/// with what is left of the page's hits, and its filter offers their kinds too. The source
/// itself decides what the member may see.
pub trait DirectSearch: Sync {
    /// The kind on its hits and in the search filter (`news`).
    fn kind(&self) -> &'static str;
    /// How the search page labels its hits ("Neuigkeiten").
    fn label(&self) -> &'static str;
    /// At most `max` hits of `query` that `member` may see at `now`, dates shown in `zone`.
    /// Blocking.
    fn find(
        &self,
        shared: &AppContext,
        member: &crate::members::Member,
        query: &str,
        now: UnixTime,
        zone: &Zone,
        max: usize,
    ) -> Result<Vec<Shown>, BoxError>;
}

/// An app's documents in the one search of the workspace ([`crate::search`]): one index per
/// practice holds the documents of every app, each with its kind and the permission key
/// the app checks. The indexer asks the app for its documents (a), a search asks which keys
/// the reader may read (b), has the app re-check the hits against its database (c) and
/// render them (d). Every method reads with the practice's connection and is blocking.
pub trait SearchSource: Sync {
    /// The kind its documents carry (`chat-message`); stored in the index, so stable.
    fn kind(&self) -> Kind;

    /// How the search page labels its hits and names it in the filter (German: `Chat`).
    fn label(&self) -> &'static str;

    /// (a) The documents of `ids` as they are now, for the indexer. An id without a
    /// document (deleted, purged, empty, never there) is removed from the index.
    fn documents(&self, conn: &mut SqliteConnection, ids: &[i64]) -> QueryResult<Vec<Entry>>;

    /// (b) The permission keys `member` may read now (chat: the rooms they may read). The
    /// query matches only documents of this kind with one of them.
    fn readable(&self, conn: &mut SqliteConnection, member: MemberId) -> QueryResult<Vec<PermKey>>;

    /// (c) Of `ids` (the index's hits of this kind, best first), those that exist and that
    /// `member` may read according to the database now, in the same order; `readable` is
    /// what [`Self::readable`] answered for this search. A stale index never shows a
    /// deleted document or one whose key the reader lost.
    fn confirm(
        &self,
        conn: &mut SqliteConnection,
        member: MemberId,
        readable: &[PermKey],
        ids: &[i64],
    ) -> QueryResult<Vec<Confirmed>>;

    /// (d) A confirmed hit as the search page shows it: title, snippet (`snippet_html`,
    /// escaped, matches marked), link and time in the practice's time zone `zone`.
    fn render(&self, hit: Confirmed, snippet_html: String, zone: &Zone) -> Shown;
}

/// Every app's search source.
pub fn search_sources() -> impl Iterator<Item = &'static dyn SearchSource> {
    apps().iter().filter_map(|a| a.search_source())
}

/// Every app's search outside the index, in the order of the app list.
pub fn direct_searches() -> impl Iterator<Item = &'static dyn DirectSearch> {
    apps().iter().filter_map(|a| a.direct_search())
}

/// The search source of documents of `kind`, if an app has one.
pub fn search_source(kind: &str) -> Option<&'static dyn SearchSource> {
    search_sources().find(|s| s.kind() == kind)
}

/// What an app keeps for the node's lifetime, from [`WorkspaceApp::start`].
#[derive(Default)]
pub struct Started {
    /// Registers the app's own state with `app_data` on every worker's `App`.
    pub data: Option<AppData>,
    /// Gauges and counters shown on `/metrics`.
    pub gauges: Vec<Gauge>,
}

/// An app's state as the composition registers it, without knowing its type.
#[derive(Clone)]
pub struct AppData(Arc<dyn Fn(&mut web::ServiceConfig) + Send + Sync>);

impl AppData {
    pub fn new<T: Send + Sync + 'static>(data: web::Data<T>) -> Self {
        Self(Arc::new(move |cfg: &mut web::ServiceConfig| {
            cfg.app_data(data.clone());
        }))
    }

    pub(crate) fn register(&self, cfg: &mut web::ServiceConfig) {
        (self.0)(cfg);
    }
}

/// What the node gives an app's background work.
pub struct Node<'a> {
    pub store: &'a Arc<TenantStore>,
    pub web: &'a web::Data<WebContext>,
    pub shared: &'a Arc<AppContext>,
    pub directory: &'a Arc<DirectorySync>,
}

/// A running background job of an app.
pub enum Job {
    /// A worker with a doorbell ([`Jobs::kick`]), stopped after the work in hand.
    Worker(Worker),
    /// A periodic task, aborted at stop.
    Task(tokio::task::JoinHandle<()>),
}

/// The workspace app seam. Every method but [`Self::id`] has a default that contributes
/// nothing.
pub trait WorkspaceApp: Sync {
    /// Short, stable id (`chat`): live topics, job names, export sections, logs.
    fn id(&self) -> &'static str;

    /// Its entry in the navigation of every workspace page.
    fn nav(&self) -> Option<NavEntry> {
        None
    }

    /// Registers its routes (fixed paths before `{param}` ones of the same prefix).
    fn configure(&self, _cfg: &mut web::ServiceConfig) {}

    /// Its static assets (scripts, styles), served content-hashed and immutable-cached.
    fn assets(&self) -> &'static [Source] {
        &[]
    }

    /// Its assets ([`Self::assets`]) that every signed-in page of the practice origin loads,
    /// after the live channel's script: what keeps its count on the navigation current
    /// (news: the unread badge). Pages of its own need not add them again.
    fn shell_scripts(&self) -> &'static [&'static str] {
        &[]
    }

    /// Path prefixes of its own that metrics and logs count apart (`/dav` of a files app);
    /// everything else counts as `platform`.
    fn path_classes(&self) -> &'static [PathClass] {
        &[]
    }

    /// Builds what it keeps for the node's lifetime (its own state, its gauges); runs once
    /// per node at composition. Nothing per practice may be created here.
    fn start(&self, _shared: &Arc<AppContext>, _settings: &PlatformSettings) -> Started {
        Started::default()
    }

    /// Its start-page tile for one member at `now`, read with the practice's connection
    /// (`None`: no tile). An error leaves the tile out; the page still renders.
    fn tile(
        &self,
        _conn: &mut SqliteConnection,
        _member: MemberId,
        _now: UnixTime,
    ) -> Result<Option<Tile>, BoxError> {
        Ok(None)
    }

    /// Its tile with the shared context at hand (an app whose tile reads node-level state,
    /// such as the node's broadcasts, overrides this one); defaults to [`Self::tile`].
    fn tile_in(
        &self,
        _shared: &AppContext,
        conn: &mut SqliteConnection,
        member: MemberId,
        now: UnixTime,
    ) -> Result<Option<Tile>, BoxError> {
        self.tile(conn, member, now)
    }

    /// Its step when a practice is created, on the new `platform.sqlite` (its tables are
    /// created by the migrations; this is for rows it needs from the start).
    fn provision(
        &self,
        _conn: &mut SqliteConnection,
        _p: &NewPractice<'_>,
    ) -> Result<(), BoxError> {
        Ok(())
    }

    /// Starts its periodic background work of its own, named for [`Jobs::kick`]. Work that
    /// follows a change is a kind of job instead ([`Self::job_kinds`]).
    fn spawn_jobs(&self, _node: &Node<'_>) -> Vec<(&'static str, Job)> {
        Vec::new()
    }

    /// Its kinds of background job in `platform.sqlite`'s `jobs` table
    /// (`kollegium_tenants::jobs`): the composition registers them with the node's one job
    /// worker. Each kind's stored name starts with the app's id (`chat.mention`).
    fn job_kinds(&self, _node: &Node<'_>) -> Vec<Arc<dyn JobHandler>> {
        Vec::new()
    }

    /// Its documents in the shared search.
    fn search_source(&self) -> Option<&'static dyn SearchSource> {
        None
    }

    /// Its hits from outside the practice's index (node-level documents, such as the
    /// operator's news), for the same search page.
    fn direct_search(&self) -> Option<&'static dyn DirectSearch> {
        None
    }

    /// The kinds of things its live topics (`Topic { app: id(), id }`) name, e.g. `room`.
    fn live_topics(&self) -> &'static [&'static str] {
        &[]
    }

    /// Its part of the practice export (`None`: it keeps no data). `shared` is at hand for an
    /// app whose export names node-level state (news: the titles of the node's broadcasts).
    fn export(
        &self,
        _shared: &AppContext,
        _conn: &mut SqliteConnection,
    ) -> Result<Option<AppExport>, BoxError> {
        Ok(None)
    }

    /// Sessions of a practice ended (logout, back-channel logout, limits). The live
    /// connections of those sessions are closed by the channel already.
    fn session_ended(&self, _shared: &AppContext, _slug: &str, _sessions: &[i64]) {}

    /// Members of a practice were deactivated (the IdP's directory no longer lists them
    /// as active). Their rows stay; they must leave every audience. Called after the mark
    /// committed, with the practice's `platform.sqlite` connection: an app changes its own
    /// rows in its own transaction, then publishes its live events and pokes its jobs.
    fn member_deactivated(
        &self,
        _shared: &AppContext,
        _conn: &mut SqliteConnection,
        _slug: &str,
        _members: &[MemberId],
    ) -> Result<(), BoxError> {
        Ok(())
    }
}

/// The id the start page has in the navigation.
pub const START: &str = "start";

/// The navigation of workspace pages: the start page, then every app's entry by order, each
/// with the id of its app ([`START`] for the start page). Built once.
pub fn navigation() -> &'static [(&'static str, NavEntry)] {
    static NAV: std::sync::LazyLock<Vec<(&'static str, NavEntry)>> =
        std::sync::LazyLock::new(|| {
            let start = NavEntry {
                label: "Start",
                href: "/",
                order: 0,
            };
            let mut nav = vec![(START, start)];
            nav.extend(apps().iter().filter_map(|a| a.nav().map(|e| (a.id(), e))));
            nav.sort_by_key(|(_, e)| e.order);
            nav
        });
    &NAV
}

/// The start-page tiles of `apps` for `member`; an app whose tile fails is left out (and
/// logged), the others still show.
pub fn tiles(
    apps: &[&dyn WorkspaceApp],
    shared: &AppContext,
    conn: &mut SqliteConnection,
    member: MemberId,
    now: UnixTime,
) -> Vec<Tile> {
    apps.iter()
        .filter_map(|app| match app.tile_in(shared, conn, member, now) {
            Ok(tile) => tile,
            Err(e) => {
                tracing::error!(app = app.id(), error = %e, "start-page tile failed; left out");
                None
            }
        })
        .collect()
}

/// The practice export of `apps` (each app's part; a failing app fails the export), with
/// the node's shared context.
pub fn export(
    apps: &[&dyn WorkspaceApp],
    shared: &AppContext,
    conn: &mut SqliteConnection,
) -> Result<Vec<AppExport>, BoxError> {
    let mut out = Vec::new();
    for app in apps {
        if let Some(part) = app.export(shared, conn)? {
            out.push(part);
        }
    }
    Ok(out)
}

/// Every app's static assets, for the node's asset registry.
pub fn assets() -> Vec<Source> {
    apps()
        .iter()
        .flat_map(|a| a.assets().iter().copied())
        .collect()
}

/// Registers the workspace's kinds of background job (the shared search index's and every
/// app's) for `platform.sqlite`.
pub fn register_job_kinds(
    registry: &mut Registry,
    node: &Node<'_>,
    search: crate::search::worker::WorkerSettings,
) {
    crate::search::worker::register(
        registry,
        crate::search::worker::SearchJobs::new(
            node.shared.search.clone(),
            node.shared.clock.clone(),
            search,
        ),
    );
    for app in apps() {
        for kind in app.job_kinds(node) {
            registry.register(&crate::PLATFORM_DB, kind);
        }
    }
}

/// The apps' running background jobs.
#[derive(Default)]
pub struct Jobs(Vec<(String, Job)>);

impl Jobs {
    /// Starts every app's jobs; each is named `<app>.<job>`.
    pub fn spawn(node: &Node<'_>) -> Self {
        let mut jobs = Vec::new();
        for app in apps() {
            for (name, job) in app.spawn_jobs(node) {
                jobs.push((format!("{}.{name}", app.id()), job));
            }
        }
        Self(jobs)
    }

    /// Rings the doorbell of job `name` (`chat.mentions`): it runs a round now. False if
    /// there is no such worker.
    pub fn kick(&self, name: &str) -> bool {
        match self.0.iter().find(|(n, _)| n == name) {
            Some((_, Job::Worker(w))) => {
                w.kick();
                true
            }
            _ => false,
        }
    }

    /// Stops every job: workers after the work in hand (aborted after `grace`), tasks at once.
    pub async fn stop(self, grace: Duration) {
        for (_, job) in self.0 {
            match job {
                Job::Worker(w) => w.stop(grace).await,
                Job::Task(t) => t.abort(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Broken;
    impl WorkspaceApp for Broken {
        fn id(&self) -> &'static str {
            "broken"
        }
        fn tile(
            &self,
            _: &mut SqliteConnection,
            _: MemberId,
            _: UnixTime,
        ) -> Result<Option<Tile>, BoxError> {
            Err("the tile's query failed".into())
        }
    }

    struct Fine;
    impl WorkspaceApp for Fine {
        fn id(&self) -> &'static str {
            "fine"
        }
        fn tile(
            &self,
            _: &mut SqliteConnection,
            m: MemberId,
            _: UnixTime,
        ) -> Result<Option<Tile>, BoxError> {
            Ok(Some(Tile {
                app: "fine",
                html: format!("<p>{}</p>", m.0),
            }))
        }
    }

    #[test]
    fn a_failing_tile_is_left_out_and_the_others_show() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("platform.sqlite");
        let mut conn = kollegium_tenants::db::open_connection(&path).unwrap();
        let shared = AppContext::new(
            Arc::new(kollegium_tenants::clock::ManualClock::new(1_000)),
            Arc::new(JobSignal::new()),
        );
        let shown = tiles(
            &[&Broken, &Fine, &Broken],
            &shared,
            &mut conn,
            MemberId(7),
            1_000,
        );
        assert_eq!(shown.len(), 1);
        assert_eq!((shown[0].app, shown[0].html.as_str()), ("fine", "<p>7</p>"));
    }

    #[test]
    fn every_search_kind_has_one_source_and_unknown_kinds_none() {
        let kinds: Vec<_> = search_sources().map(|s| s.kind()).collect();
        assert!(kinds.contains(&"chat-message"));
        let direct: Vec<_> = direct_searches().map(|d| d.kind()).collect();
        assert_eq!(direct, ["news"], "the news are found outside the index");
        // The search filter names a kind: one source for each, indexed or not.
        let mut unique: Vec<_> = kinds.iter().chain(&direct).copied().collect();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(
            unique.len(),
            kinds.len() + direct.len(),
            "search kinds are unique"
        );
        assert!(search_source("news").is_none());
        for kind in kinds {
            assert_eq!(search_source(kind).map(|s| s.kind()), Some(kind));
        }
        assert_eq!(
            search_source("chat-message").map(|s| s.label()),
            Some("Chat")
        );
        assert!(search_source("").is_none() && search_source("bogus").is_none());
    }

    #[test]
    fn the_navigation_starts_with_the_start_page_and_lists_every_app_once_in_order() {
        let nav = navigation();
        assert_eq!(
            nav[0],
            (
                START,
                NavEntry {
                    label: "Start",
                    href: "/",
                    order: 0
                }
            )
        );
        assert!(nav.windows(2).all(|w| w[0].1.order <= w[1].1.order));
        for app in apps() {
            if let Some(entry) = app.nav() {
                assert_eq!(nav.iter().filter(|e| **e == (app.id(), entry)).count(), 1);
            }
        }
        let mut ids: Vec<_> = apps().iter().map(|a| a.id()).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), apps().len(), "app ids are unique");
    }
}
