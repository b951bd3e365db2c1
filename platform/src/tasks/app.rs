//! Tasks as a workspace app: its entry in [`crate::app::APPS`].

use std::sync::Arc;

use actix_web::web;
use askama::Template;
use diesel::SqliteConnection;
use kollegium_tenants::UnixTime;
use kollegium_tenants::jobs::Handler as JobHandler;
use kollegium_tenants::provision::BoxError;
use kollegium_tenants::web::assets::Source;

use crate::app::{AppContext, AppExport, NavEntry, Node, SearchSource, Tile, WorkspaceApp};
use crate::members::MemberId;

/// The tasks app.
#[derive(Debug, Clone, Copy)]
pub struct Tasks;

const ASSETS: &[Source] = &[Source {
    name: "tasks.js",
    content_type: "text/javascript; charset=utf-8",
    body: include_bytes!("../../../templates/static/tasks.js"),
}];

#[derive(Template)]
#[template(path = "tasks/tile.html")]
struct TileView {
    open: i64,
    overdue: i64,
}

impl WorkspaceApp for Tasks {
    fn id(&self) -> &'static str {
        super::APP
    }

    fn nav(&self) -> Option<NavEntry> {
        Some(NavEntry {
            label: "Aufgaben",
            href: "/tasks",
            order: 20,
        })
    }

    fn configure(&self, cfg: &mut web::ServiceConfig) {
        // Fixed paths of the routines (`/tasks/templates`, ...) before the boards' `{id}` ones.
        super::routines::configure(cfg);
        // Fixed upload paths and `/api/tasks/...attachments` before the API's scope.
        super::attachment_routes::configure(cfg);
        super::api::configure(cfg);
        super::routes::configure(cfg);
    }

    fn assets(&self) -> &'static [Source] {
        ASSETS
    }

    fn tile(
        &self,
        conn: &mut SqliteConnection,
        member: MemberId,
        now: UnixTime,
    ) -> Result<Option<Tile>, BoxError> {
        let (open, overdue) = super::mine::counts(conn, member, now)?;
        Ok(Some(Tile {
            app: super::APP,
            html: TileView { open, overdue }.render()?,
        }))
    }

    fn job_kinds(&self, node: &Node<'_>) -> Vec<Arc<dyn JobHandler>> {
        super::routines::job_kinds(node)
    }

    fn search_source(&self) -> Option<&'static dyn SearchSource> {
        Some(&super::search::CARDS)
    }

    fn live_topics(&self) -> &'static [&'static str] {
        &["board"]
    }

    fn export(
        &self,
        _shared: &AppContext,
        conn: &mut SqliteConnection,
    ) -> Result<Option<AppExport>, BoxError> {
        super::export::export(conn).map(Some)
    }

    /// Members left: their open cards lose them (with a history line), their personal
    /// shares go, series stop naming them ([`super::leavers`]). Everything else keeps them
    /// out by construction: a deactivated member matches no access row
    /// ([`super::boards::permission`]), is in no board's live audience
    /// ([`super::boards::readers`]), cannot be assigned or mentioned, and is not mailed.
    fn member_deactivated(
        &self,
        shared: &AppContext,
        conn: &mut SqliteConnection,
        slug: &str,
        members: &[MemberId],
    ) -> Result<(), BoxError> {
        let (cleared, events) = super::leavers::members_left(conn, members, shared.now())?;
        for e in events {
            e.publish(shared, slug);
        }
        if !cleared.cards.is_empty() {
            // Their reminders were dropped and the cards. others rescheduled.
            shared.jobs.poke_str(slug, &crate::PLATFORM_DB);
        }
        tracing::info!(practice = %slug, cards = cleared.cards.len(),
            boards = cleared.boards.len(), series = cleared.series,
            "tasks: members who left were unassigned and unshared");
        Ok(())
    }
}
