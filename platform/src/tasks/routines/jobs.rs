//! The routines' kinds of background job ([`kollegium_tenants::jobs`]):
//! - [`RECUR`] (`tasks.recur`, key = series id): creates a series' next instance
//!   ([`super::series::advance`]). `on_due` series queue it with `run_after` = the current
//!   instance's due time; `on_done` ones when an instance is done.
//! - [`REMINDER`] (`tasks.reminder`, key = `<card>:<member>`): mails an assignee that a
//!   card is due ([`super::reminders::deliver`]).
//!
//! Density (issue 13: 1,000 practices on a node must not each be opened per tick). Neither
//! kind needs a timer of its own or anything in the registry: a job row with `run_after` in
//! the practice's own `jobs` table is the practice's next due time. The node's one job
//! worker (`kollegium_tenants::jobs::worker`) learns it once, when it sweeps at start-up
//! (reading `min(run_after)` straight from the closed database file, without opening the
//! practice in the store) or when a round of the practice ends, keeps it in memory (its
//! `places` / `units` maps) and compares it with the clock each tick; the database is
//! opened again only when that time has come. Later sweeps look only at open practices
//! and those created since. So a practice whose weekly routine is due on Monday costs the
//! node nothing until Monday.

use std::sync::Arc;

use actix_web::web;
use diesel::prelude::*;
use kollegium_tenants::jobs::{BoxFuture, Handler, Job, Outcome, Outcomes};
use kollegium_tenants::web::WebContext;
use kollegium_tenants::{DbKind, Tenant, UnixTime};

use super::series::{self, SeriesId};
use crate::PLATFORM_DB;
use crate::app::AppContext;
use crate::directory::DirectorySync;
use crate::tasks::CardId;
use crate::tasks::cards;
use crate::tasks::live::{Change, Event};

/// Creates a series' next instance.
pub const RECUR: &str = "tasks.recur";
/// Mails a due-date reminder.
pub const REMINDER: &str = "tasks.reminder";

/// Queues the series' recur job, due at `at` (an earlier pending one stays earlier).
pub fn queue_recur(
    conn: &mut SqliteConnection,
    id: SeriesId,
    at: UnixTime,
    now: UnixTime,
) -> QueryResult<()> {
    kollegium_tenants::jobs::enqueue(conn, RECUR, &id.0.to_string(), None, 0, at, now)
}

/// Runs a blocking closure per job off the async threads and maps its result to outcomes.
fn per_job<F>(tenant: Tenant, jobs: Vec<Job>, f: F) -> BoxFuture<Outcomes>
where
    F: Fn(&mut SqliteConnection, &Tenant, &Job) -> Result<(), String> + Send + 'static,
{
    Box::pin(async move {
        let ids: Vec<i64> = jobs.iter().map(|j| j.id).collect();
        let done = tokio::task::spawn_blocking(move || -> Outcomes {
            let mut conn = match tenant.conn(&PLATFORM_DB) {
                Ok(c) => c,
                Err(e) => {
                    let e = e.to_string();
                    return jobs.iter().map(|j| (j.id, Outcome::retry(&e))).collect();
                }
            };
            jobs.iter()
                .map(|j| match f(&mut conn, &tenant, j) {
                    Ok(()) => (j.id, Outcome::Done),
                    Err(e) => (j.id, Outcome::retry(e)),
                })
                .collect()
        })
        .await;
        done.unwrap_or_else(|e| {
            ids.into_iter()
                .map(|id| (id, Outcome::retry(e.to_string())))
                .collect()
        })
    })
}

/// The `tasks.recur` kind.
pub struct RecurJobs {
    web: web::Data<WebContext>,
    shared: Arc<AppContext>,
}

impl RecurJobs {
    pub fn new(web: web::Data<WebContext>, shared: Arc<AppContext>) -> Arc<Self> {
        Arc::new(Self { web, shared })
    }
}

/// The live event of a card a series created: open pages of its board show it.
pub fn card_event(conn: &mut SqliteConnection, card: CardId) -> QueryResult<Option<Event>> {
    let Some(c) = cards::by_id(conn, card)? else {
        return Ok(None);
    };
    Event::new(conn, c.board(), Change::Card { card: card.0 }, 0).map(Some)
}

impl Handler for RecurJobs {
    fn kind(&self) -> &'static str {
        RECUR
    }

    fn run(&self, tenant: Tenant, _db: &'static DbKind, jobs: Vec<Job>) -> BoxFuture<Outcomes> {
        let (web, shared) = (self.web.clone(), self.shared.clone());
        let signal_slug = tenant.slug().as_str().to_owned();
        let fut = per_job(tenant, jobs, move |conn, tenant, job| {
            let Ok(id) = job.key.parse::<i64>() else {
                return Ok(());
            };
            let now = web.store.clock().now();
            let zone = tenant.time_zone().clone();
            let created = conn
                .immediate_transaction(|conn| series::advance(conn, SeriesId(id), &zone, now))
                .map_err(|e| e.to_string())?;
            if let Some(card) = created {
                tracing::info!(practice = %tenant.slug(), series = id, card = card.0,
                    "recurring card created");
                match card_event(conn, card) {
                    Ok(Some(e)) => e.publish(&shared, tenant.slug().as_str()),
                    Ok(None) => {}
                    // The card is committed; only open pages miss it until they reload.
                    Err(e) => tracing::warn!(error = %e, "live event of a recurring card"),
                }
            }
            Ok(())
        });
        let signal = self.web.jobs.clone();
        Box::pin(async move {
            let out = fut.await;
            // The new cards' search documents and reminders.
            signal.poke_str(&signal_slug, &PLATFORM_DB);
            out
        })
    }
}

/// The `tasks.reminder` kind.
pub struct ReminderJobs {
    web: web::Data<WebContext>,
    directory: Arc<DirectorySync>,
}

impl ReminderJobs {
    pub fn new(web: web::Data<WebContext>, directory: Arc<DirectorySync>) -> Arc<Self> {
        Arc::new(Self { web, directory })
    }
}

impl Handler for ReminderJobs {
    fn kind(&self) -> &'static str {
        REMINDER
    }

    fn run(&self, tenant: Tenant, _db: &'static DbKind, jobs: Vec<Job>) -> BoxFuture<Outcomes> {
        let (web, directory) = (self.web.clone(), self.directory.clone());
        Box::pin(async move {
            // Nobody whose account was disabled meanwhile is mailed.
            if let Err(e) = directory.sync(&web, &tenant).await {
                let e = format!("member directory unreadable: {e}");
                return jobs.iter().map(|j| (j.id, Outcome::retry(&e))).collect();
            }
            let origin = web.settings.practice_origin(tenant.slug().as_str());
            let practice = tenant.display_name().to_owned();
            let slug = tenant.slug().as_str().to_owned();
            let now = web.store.clock().now();
            let out = per_job(tenant, jobs, move |conn, _t, job| {
                super::reminders::deliver(conn, job, &origin, &practice, now)
                    .map_err(|e| e.to_string())
            })
            .await;
            web.jobs
                .poke_kind(&slug, &PLATFORM_DB, kollegium_tenants::mail::JOB_KIND);
            out
        })
    }
}
