//! Series of recurring cards: one open instance at a time.
//!
//! A series (`task_series`) holds what every instance gets (title, description, a checklist
//! that starts unticked, assignees, labels, column) and its rule. Creating a series creates
//! its first instance, due at the first occurrence from now on. The next instance comes:
//! - `on_done`: when the previous one is done (or archived). The card change calls
//!   [`super::card_changed`], which queues a [`super::jobs::RECUR`] job due at once; the job
//!   runs [`advance`]. Its due time is the first occurrence after the later of the
//!   previous due time and the moment it was done.
//! - `on_due`: when the previous one's due time passes: a [`super::jobs::RECUR`] job is
//!   queued in the same transaction as the instance, `run_after` its due time. The next due
//!   time is the first occurrence after both the previous due time and now, so a node that
//!   was down for weeks creates one card, not a card per missed week.
//!
//! [`advance`] is idempotent (jobs run at least once): it creates an instance only when the
//! latest one calls for it. A paused or ended series creates nothing; resuming queues the
//! job again so a series whose instance was done meanwhile continues.

use diesel::prelude::*;
use kollegium_tenants::UnixTime;
use kollegium_tenants::time::Zone;

use super::RoutineError;
use super::rule::{Recurrence, TimeOfDay};
use crate::members::MemberId;
use crate::schema::{members, task_cards, task_checklist_items, task_labels, task_series};
use crate::tasks::cards::{self, NewCard};
use crate::tasks::{BoardId, CardId, ColumnId, MAX_ITEM_CHARS, MAX_ITEMS, check_text, check_title};

/// Typed series id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct SeriesId(pub i64);

/// When the next instance is created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// When the previous instance is done.
    OnDone,
    /// When the previous instance's due time passes.
    OnDue,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::OnDone => "on_done",
            Mode::OnDue => "on_due",
        }
    }

    pub fn parse(s: &str) -> Option<Mode> {
        match s {
            "on_done" => Some(Mode::OnDone),
            "on_due" => Some(Mode::OnDue),
            _ => None,
        }
    }

    /// German, as the list shows it.
    pub fn label(self) -> &'static str {
        match self {
            Mode::OnDone => "nächste Karte, wenn erledigt",
            Mode::OnDue => "nächste Karte zum Fälligkeitstermin",
        }
    }
}

/// A series row.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = task_series)]
pub struct Series {
    pub id: i64,
    pub board_id: i64,
    pub column_id: Option<i64>,
    pub title: String,
    pub description: String,
    pub checklist: String,
    pub assignees: String,
    pub labels: String,
    pub rule: String,
    pub time_of_day: String,
    pub mode: String,
    pub paused_at: Option<i64>,
    pub ended_at: Option<i64>,
    pub next_due_at: Option<i64>,
    pub created_by: Option<i64>,
    pub created_at: i64,
}

impl Series {
    pub fn series_id(&self) -> SeriesId {
        SeriesId(self.id)
    }

    pub fn board(&self) -> BoardId {
        BoardId(self.board_id)
    }

    pub fn mode(&self) -> Mode {
        Mode::parse(&self.mode).unwrap_or(Mode::OnDone)
    }

    /// The rule and time of day as stored (checked again when read).
    pub fn schedule(&self) -> Result<(Recurrence, TimeOfDay), RoutineError> {
        Ok((
            Recurrence::from_json(&self.rule)?,
            TimeOfDay::parse(&self.time_of_day)?,
        ))
    }

    /// The rule in German (`monatlich am letzten Werktag um 08:00`).
    pub fn describe(&self) -> String {
        match self.schedule() {
            Ok((r, at)) => r.describe(at),
            Err(_) => "ungültige Regel".to_owned(),
        }
    }

    pub fn checklist_items(&self) -> Vec<String> {
        serde_json::from_str(&self.checklist).unwrap_or_default()
    }

    /// `aktiv`, `pausiert` or `beendet`.
    pub fn state_label(&self) -> &'static str {
        if self.ended_at.is_some() {
            "beendet"
        } else if self.paused_at.is_some() {
            "pausiert"
        } else {
            "aktiv"
        }
    }
}

/// A new series (see [`create`]).
#[derive(Debug, Clone)]
pub struct NewSeries {
    pub board: BoardId,
    pub column: Option<ColumnId>,
    pub title: String,
    pub description: String,
    pub checklist: Vec<String>,
    pub assignees: Vec<MemberId>,
    pub labels: Vec<i64>,
    pub recurrence: Recurrence,
    pub at: TimeOfDay,
    pub mode: Mode,
}

/// Checklist item texts as stored: each trimmed, 1..=[`MAX_ITEM_CHARS`] characters, at
/// most [`MAX_ITEMS`]; blank lines dropped.
pub fn check_checklist(items: &[String]) -> Result<Vec<String>, RoutineError> {
    let items: Vec<&String> = items.iter().filter(|s| !s.trim().is_empty()).collect();
    if items.len() as i64 > MAX_ITEMS {
        return Err(RoutineError::Task(crate::tasks::TaskError::TooMany));
    }
    items
        .into_iter()
        .map(|s| {
            check_text(s.trim(), MAX_ITEM_CHARS, true)
                .map(|t| t.replace(['\r', '\n'], " "))
                .map_err(RoutineError::from)
        })
        .collect()
}

/// Creates a series and its first instance (due at the first occurrence from `now` on).
/// No permission check: the caller checked `Edit` on the board.
pub fn create(
    conn: &mut SqliteConnection,
    new: &NewSeries,
    actor: MemberId,
    zone: &Zone,
    now: UnixTime,
) -> Result<(SeriesId, Option<CardId>), RoutineError> {
    let title = check_title(&new.title)?;
    let description = check_text(&new.description, crate::tasks::MAX_DESCRIPTION_CHARS, false)?;
    let checklist = check_checklist(&new.checklist)?;
    if let Some(c) = new.column {
        let board: Option<i64> = crate::schema::task_columns::table
            .find(c.0)
            .select(crate::schema::task_columns::board_id)
            .first(conn)
            .optional()?;
        if board != Some(new.board.0) {
            return Err(RoutineError::Task(crate::tasks::TaskError::ColumnNotFound));
        }
    }
    let json = |v: serde_json::Value| v.to_string();
    let id: i64 = diesel::insert_into(task_series::table)
        .values((
            task_series::board_id.eq(new.board.0),
            task_series::column_id.eq(new.column.map(|c| c.0)),
            task_series::title.eq(&title),
            task_series::description.eq(&description),
            task_series::checklist.eq(json(serde_json::json!(checklist))),
            task_series::assignees.eq(json(serde_json::json!(
                new.assignees.iter().map(|m| m.0).collect::<Vec<_>>()
            ))),
            task_series::labels.eq(json(serde_json::json!(new.labels))),
            task_series::rule.eq(new.recurrence.to_json()),
            task_series::time_of_day.eq(new.at.to_string()),
            task_series::mode.eq(new.mode.as_str()),
            task_series::created_by.eq(actor.0),
            task_series::created_at.eq(now),
        ))
        .returning(task_series::id)
        .get_result(conn)?;
    let card = advance(conn, SeriesId(id), zone, now)?;
    Ok((SeriesId(id), card))
}

pub fn by_id(conn: &mut SqliteConnection, id: SeriesId) -> QueryResult<Option<Series>> {
    task_series::table
        .find(id.0)
        .select(Series::as_select())
        .first(conn)
        .optional()
}

/// The series of a board, newest first.
pub fn of_board(conn: &mut SqliteConnection, board: BoardId) -> QueryResult<Vec<Series>> {
    task_series::table
        .filter(task_series::board_id.eq(board.0))
        .order(task_series::id.desc())
        .select(Series::as_select())
        .load(conn)
}

/// The series a card belongs to, if any.
pub fn of_card(conn: &mut SqliteConnection, card: CardId) -> QueryResult<Option<i64>> {
    Ok(task_cards::table
        .find(card.0)
        .select(task_cards::series_id)
        .first::<Option<i64>>(conn)
        .optional()?
        .flatten())
}

/// The latest instance of a series: (id, due, done, archived).
type Latest = (i64, Option<i64>, Option<i64>, Option<i64>);

fn latest(conn: &mut SqliteConnection, id: SeriesId) -> QueryResult<Option<Latest>> {
    task_cards::table
        .filter(task_cards::series_id.eq(id.0))
        .order(task_cards::id.desc())
        .select((
            task_cards::id,
            task_cards::due_at,
            task_cards::done_at,
            task_cards::archived_at,
        ))
        .first(conn)
        .optional()
}

/// Creates the series' next instance if its latest one calls for it (none yet; `on_done`:
/// done or archived; `on_due`: its due time passed). Returns the new card. Idempotent.
pub fn advance(
    conn: &mut SqliteConnection,
    id: SeriesId,
    zone: &Zone,
    now: UnixTime,
) -> Result<Option<CardId>, RoutineError> {
    let Some(s) = by_id(conn, id)? else {
        return Ok(None);
    };
    if s.paused_at.is_some() || s.ended_at.is_some() {
        return Ok(None);
    }
    let (rule, at) = s.schedule()?;
    let after = match (s.mode(), latest(conn, id)?) {
        (_, None) => now - 1,
        (Mode::OnDue, Some((_, due, _, _))) => match due {
            Some(d) if d > now => {
                // Not yet: make sure the job waits for it (a resumed series).
                super::jobs::queue_recur(conn, id, d, now)?;
                return Ok(None);
            }
            Some(d) => d.max(now),
            None => now,
        },
        (Mode::OnDone, Some((_, due, done, archived))) => match done.or(archived) {
            None => return Ok(None),
            Some(finished) => due.unwrap_or(finished).max(finished),
        },
    };
    let Some(due) = rule.next_after(at, zone.time_zone(), after) else {
        return Ok(None);
    };
    instantiate(conn, &s, due, now).map(Some)
}

/// Creates an instance of `s` due at `due`: a fresh, unticked checklist; assignees who
/// left the practice and labels deleted from the board are left out.
fn instantiate(
    conn: &mut SqliteConnection,
    s: &Series,
    due: UnixTime,
    now: UnixTime,
) -> Result<CardId, RoutineError> {
    let wanted: Vec<i64> = serde_json::from_str(&s.assignees).unwrap_or_default();
    let assignees: Vec<MemberId> = members::table
        .filter(members::id.eq_any(&wanted))
        .filter(members::deactivated_at.is_null())
        .select(members::id)
        .load::<i64>(conn)?
        .into_iter()
        .map(MemberId)
        .collect();
    let wanted: Vec<i64> = serde_json::from_str(&s.labels).unwrap_or_default();
    let labels: Vec<i64> = task_labels::table
        .filter(task_labels::id.eq_any(&wanted))
        .filter(task_labels::board_id.eq(s.board_id))
        .select(task_labels::id)
        .load(conn)?;
    let card = cards::create_card(
        conn,
        s.board(),
        s.column_id.map(ColumnId),
        None,
        &NewCard {
            title: s.title.clone(),
            description: s.description.clone(),
            due: Some((due, false)),
            assignees,
            labels,
        },
        now,
    )?;
    diesel::update(task_cards::table.find(card.0))
        .set(task_cards::series_id.eq(s.id))
        .execute(conn)?;
    for (i, text) in s.checklist_items().iter().enumerate() {
        diesel::insert_into(task_checklist_items::table)
            .values((
                task_checklist_items::card_id.eq(card.0),
                task_checklist_items::position.eq(i as i64),
                task_checklist_items::text.eq(text),
            ))
            .execute(conn)?;
    }
    diesel::update(task_series::table.find(s.id))
        .set(task_series::next_due_at.eq(due))
        .execute(conn)?;
    if s.mode() == Mode::OnDue {
        super::jobs::queue_recur(conn, s.series_id(), due, now)?;
    }
    super::reminders::schedule(conn, card, now)?;
    Ok(card)
}

/// What to do with a series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Pause,
    Resume,
    End,
}

impl Action {
    pub fn parse(s: &str) -> Option<Action> {
        match s {
            "pause" => Some(Action::Pause),
            "resume" => Some(Action::Resume),
            "end" => Some(Action::End),
            _ => None,
        }
    }
}

/// Pauses, resumes or ends a series (an ended one stays ended). Resuming queues the recur
/// job at once, so the series catches up with an instance done meanwhile.
pub fn act(
    conn: &mut SqliteConnection,
    id: SeriesId,
    action: Action,
    now: UnixTime,
) -> Result<(), RoutineError> {
    let s = by_id(conn, id)?.ok_or(RoutineError::SeriesNotFound)?;
    if s.ended_at.is_some() {
        return Err(RoutineError::Ended);
    }
    let row = task_series::table.find(id.0);
    match action {
        Action::Pause => {
            diesel::update(row)
                .set(task_series::paused_at.eq(s.paused_at.unwrap_or(now)))
                .execute(conn)?;
        }
        Action::Resume => {
            diesel::update(row)
                .set(task_series::paused_at.eq(None::<i64>))
                .execute(conn)?;
            super::jobs::queue_recur(conn, id, now, now)?;
        }
        Action::End => {
            diesel::update(row)
                .set((
                    task_series::ended_at.eq(now),
                    task_series::next_due_at.eq(None::<i64>),
                ))
                .execute(conn)?;
        }
    }
    Ok(())
}
