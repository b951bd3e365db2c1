//! Recurring practice routines: series of cards by rule, templates, reminders.
//!
//! - `holidays`, `rule`: the recurrence engine (pure; German public holidays per state).
//! - `series`: series and their instances; `templates`: card and checklist templates;
//!   `reminders`: due-date reminder mails per member.
//! - `jobs`: the kinds `tasks.recur` and `tasks.reminder` (and why they keep the node's
//!   density: no practice database is opened before its next job is due).
//! - `routes`: the pages under `/tasks/routines/...` and `/tasks/templates/...`.
//! - `demo`: the recurring cards of the demo board.
//!
//! The cards' side calls [`card_changed`] in the transaction of every change of a card
//! that matters to a series or a reminder (created, due date, assignees, done, archived).

use std::sync::Arc;

use actix_web::web;
use diesel::prelude::*;
use kollegium_tenants::UnixTime;
use kollegium_tenants::jobs::Handler as JobHandler;

use crate::app::Node;
use crate::tasks::{CardId, TaskError};

pub mod demo;
pub mod holidays;
pub mod jobs;
pub mod reminders;
mod routes;
pub mod rule;
pub mod series;
pub mod templates;

/// Why a routines action was refused; the message is German and shown to the user.
#[derive(Debug, thiserror::Error)]
pub enum RoutineError {
    #[error(transparent)]
    Rule(#[from] rule::RuleError),
    #[error(transparent)]
    Task(#[from] TaskError),
    #[error("Serie nicht gefunden.")]
    SeriesNotFound,
    #[error("Vorlage nicht gefunden.")]
    TemplateNotFound,
    #[error("Die Serie ist beendet.")]
    Ended,
    #[error("Eine Checklisten-Vorlage braucht mindestens einen Eintrag.")]
    EmptyChecklist,
    #[error("Bitte wählen Sie eine der angebotenen Vorlaufzeiten.")]
    Lead,
    #[error("Ungültige Eingabe: {0}")]
    Invalid(&'static str),
    #[error("mail: {0}")]
    Render(#[from] askama::Error),
    /// Something failed inside (the cause chain is logged where the answer is rendered).
    #[error(transparent)]
    Internal(#[from] crate::error::Internal),
}

impl From<diesel::result::Error> for RoutineError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Task(TaskError::Db(e))
    }
}

impl RoutineError {
    /// HTTP status for this refusal.
    pub fn status(&self) -> u16 {
        match self {
            Self::Task(t) => t.status(),
            Self::SeriesNotFound | Self::TemplateNotFound => 404,
            Self::Ended => 409,
            Self::Render(_) | Self::Internal(_) => 500,
            _ => 400,
        }
    }
}

/// A card changed (created, due date, assignees, done or reopened, archived or restored):
/// a done instance of an `on_done` series queues the series' next instance, and the card's
/// reminders are scheduled afresh. Call it in the change's transaction (the hook the cards'
/// side calls).
pub fn card_changed(conn: &mut SqliteConnection, card: CardId, now: UnixTime) -> QueryResult<()> {
    use crate::schema::{task_cards, task_series};
    let row: Option<(Option<i64>, Option<i64>, Option<i64>)> = task_cards::table
        .find(card.0)
        .select((
            task_cards::series_id,
            task_cards::done_at,
            task_cards::archived_at,
        ))
        .first(conn)
        .optional()?;
    if let Some((Some(series), done, archived)) = row
        && (done.is_some() || archived.is_some())
    {
        let on_done: i64 = task_series::table
            .find(series)
            .filter(task_series::mode.eq(series::Mode::OnDone.as_str()))
            .count()
            .get_result(conn)?;
        if on_done == 1 {
            jobs::queue_recur(conn, series::SeriesId(series), now, now)?;
        }
    }
    reminders::schedule(conn, card, now)
}

/// Registers the routines' routes (fixed paths under `/tasks/`).
pub fn configure(cfg: &mut web::ServiceConfig) {
    routes::configure(cfg);
}

/// The routines' kinds of background job (`tasks.*`).
pub fn job_kinds(node: &Node<'_>) -> Vec<Arc<dyn JobHandler>> {
    vec![
        jobs::RecurJobs::new(node.web.clone(), node.shared.clone()),
        jobs::ReminderJobs::new(node.web.clone(), node.directory.clone()),
    ]
}
