//! Neuigkeiten as a workspace app: its entry in [`crate::app::APPS`].

use std::sync::Arc;

use actix_web::web;
use askama::Template;
use diesel::SqliteConnection;
use kollegium_tenants::UnixTime;
use kollegium_tenants::jobs::Handler as JobHandler;
use kollegium_tenants::provision::BoxError;
use kollegium_tenants::web::assets::Source;

use crate::app::{AppContext, AppExport, DirectSearch, Job, NavEntry, Node, Tile, WorkspaceApp};
use crate::members::{self, MemberId};

/// The news app.
#[derive(Debug, Clone, Copy)]
pub struct News;

const ASSETS: &[Source] = &[Source {
    name: "news.js",
    content_type: "text/javascript; charset=utf-8",
    body: include_bytes!("../../../templates/static/news.js"),
}];

/// Its script on every signed-in page of the practice origin: the navigation's unread badge,
/// and on `/news` and the start page the live list and tile.
pub const SHELL_SCRIPTS: &[&str] = &["news.js"];

#[derive(Template)]
#[template(path = "news/tile.html")]
struct TileView {
    unread: usize,
    /// (id, title) of the newest unread ones.
    titles: Vec<(String, String)>,
}

impl WorkspaceApp for News {
    fn id(&self) -> &'static str {
        super::APP
    }

    fn nav(&self) -> Option<NavEntry> {
        Some(NavEntry {
            label: "Neuigkeiten",
            href: "/news",
            order: 30,
        })
    }

    fn configure(&self, cfg: &mut web::ServiceConfig) {
        super::routes::configure(cfg);
    }

    fn assets(&self) -> &'static [Source] {
        ASSETS
    }

    fn shell_scripts(&self) -> &'static [&'static str] {
        SHELL_SCRIPTS
    }

    fn tile_in(
        &self,
        shared: &AppContext,
        conn: &mut SqliteConnection,
        member: MemberId,
        now: UnixTime,
    ) -> Result<Option<Tile>, BoxError> {
        let Some(feed) = shared.broadcasts.as_ref() else {
            return Ok(None);
        };
        let Some(m) = members::by_id(conn, member)? else {
            return Ok(None);
        };
        let (unread, titles) = super::unread(feed, conn, &m, now)?;
        Ok(Some(Tile {
            app: super::APP,
            html: TileView { unread, titles }.render()?,
        }))
    }

    fn spawn_jobs(&self, node: &Node<'_>) -> Vec<(&'static str, Job)> {
        let mut jobs = Vec::new();
        if let Some(t) = super::live::spawn(node.shared.clone()) {
            jobs.push(("live", Job::Task(t)));
        }
        if let Some(t) = super::mail::watch(node.shared.clone(), node.store.clone()) {
            jobs.push(("mail", Job::Task(t)));
        }
        jobs
    }

    fn job_kinds(&self, node: &Node<'_>) -> Vec<Arc<dyn JobHandler>> {
        vec![super::mail::AnnounceJobs::new(
            node.web.clone(),
            node.shared.clone(),
            node.directory.clone(),
        )]
    }

    fn live_topics(&self) -> &'static [&'static str] {
        &["feed"]
    }

    fn direct_search(&self) -> Option<&'static dyn DirectSearch> {
        Some(&super::search::NewsSearch)
    }

    /// The members' read and hidden marks (the messages are the operator's, not the
    /// practice's); without the node's store at hand, messages are named by id.
    fn export(
        &self,
        shared: &AppContext,
        conn: &mut SqliteConnection,
    ) -> Result<Option<AppExport>, BoxError> {
        super::export::export(conn, shared.broadcasts.as_deref())
    }

    // Members deactivated: their rows stay and they sign in no more.
}
