//! Card and checklist templates of a board: "Neue Karte aus Vorlage" creates a card with the
//! template's title, description, labels and an unticked checklist; "Checkliste aus Vorlage
//! einfügen" appends a checklist template's items to a card.

use diesel::prelude::*;
use kollegium_tenants::UnixTime;

use super::RoutineError;
use super::series::check_checklist;
use crate::members::MemberId;
use crate::schema::{task_checklist_items, task_labels, task_templates};
use crate::tasks::cards::{self, NewCard};
use crate::tasks::{BoardId, CardId, MAX_DESCRIPTION_CHARS, MAX_ITEMS, check_text, check_title};

/// Most templates on one board.
pub const MAX_TEMPLATES: i64 = 100;

/// What a template makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Card,
    Checklist,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Card => "card",
            Kind::Checklist => "checklist",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        match s {
            "card" => Some(Kind::Card),
            "checklist" => Some(Kind::Checklist),
            _ => None,
        }
    }
}

/// A template row.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = task_templates)]
pub struct Template {
    pub id: i64,
    pub board_id: i64,
    pub kind: String,
    pub name: String,
    pub title: String,
    pub description: String,
    pub checklist: String,
    pub labels: String,
    pub created_by: Option<i64>,
    pub created_at: i64,
}

impl Template {
    pub fn items(&self) -> Vec<String> {
        serde_json::from_str(&self.checklist).unwrap_or_default()
    }

    pub fn is_card(&self) -> bool {
        self.kind == Kind::Card.as_str()
    }
}

/// A new template (see [`create`]).
#[derive(Debug, Clone)]
pub struct NewTemplate {
    pub board: BoardId,
    pub kind: Kind,
    pub name: String,
    pub title: String,
    pub description: String,
    pub checklist: Vec<String>,
    pub labels: Vec<i64>,
}

/// Stores a template. No permission check: the caller checked `Edit` on the board.
pub fn create(
    conn: &mut SqliteConnection,
    t: &NewTemplate,
    actor: MemberId,
    now: UnixTime,
) -> Result<i64, RoutineError> {
    let name = check_title(&t.name)?;
    let (title, description, labels) = match t.kind {
        Kind::Card => (
            check_title(&t.title)?,
            check_text(&t.description, MAX_DESCRIPTION_CHARS, false)?,
            t.labels.clone(),
        ),
        Kind::Checklist => (String::new(), String::new(), Vec::new()),
    };
    let checklist = check_checklist(&t.checklist)?;
    if t.kind == Kind::Checklist && checklist.is_empty() {
        return Err(RoutineError::EmptyChecklist);
    }
    let mut l = labels;
    l.sort_unstable();
    l.dedup();
    let known: i64 = task_labels::table
        .filter(task_labels::id.eq_any(&l))
        .filter(task_labels::board_id.eq(t.board.0))
        .count()
        .get_result(conn)?;
    if known != l.len() as i64 {
        return Err(RoutineError::Task(crate::tasks::TaskError::Invalid(
            "Unbekanntes Label.",
        )));
    }
    let count: i64 = task_templates::table
        .filter(task_templates::board_id.eq(t.board.0))
        .count()
        .get_result(conn)?;
    if count >= MAX_TEMPLATES {
        return Err(RoutineError::Task(crate::tasks::TaskError::TooMany));
    }
    Ok(diesel::insert_into(task_templates::table)
        .values((
            task_templates::board_id.eq(t.board.0),
            task_templates::kind.eq(t.kind.as_str()),
            task_templates::name.eq(name),
            task_templates::title.eq(title),
            task_templates::description.eq(description),
            task_templates::checklist.eq(serde_json::json!(checklist).to_string()),
            task_templates::labels.eq(serde_json::json!(l).to_string()),
            task_templates::created_by.eq(actor.0),
            task_templates::created_at.eq(now),
        ))
        .returning(task_templates::id)
        .get_result(conn)?)
}

/// The templates of a board, by name.
pub fn of_board(conn: &mut SqliteConnection, board: BoardId) -> QueryResult<Vec<Template>> {
    task_templates::table
        .filter(task_templates::board_id.eq(board.0))
        .order((
            task_templates::kind,
            task_templates::name,
            task_templates::id,
        ))
        .select(Template::as_select())
        .load(conn)
}

pub fn by_id(conn: &mut SqliteConnection, id: i64) -> QueryResult<Option<Template>> {
    task_templates::table
        .find(id)
        .select(Template::as_select())
        .first(conn)
        .optional()
}

pub fn delete(conn: &mut SqliteConnection, id: i64) -> QueryResult<usize> {
    diesel::delete(task_templates::table.find(id)).execute(conn)
}

/// Appends `items` to a card's checklist, unticked (at most [`MAX_ITEMS`] in all).
pub fn append_items(
    conn: &mut SqliteConnection,
    card: CardId,
    items: &[String],
) -> Result<(), RoutineError> {
    let n: i64 = task_checklist_items::table
        .filter(task_checklist_items::card_id.eq(card.0))
        .count()
        .get_result(conn)?;
    if n + items.len() as i64 > MAX_ITEMS {
        return Err(RoutineError::Task(crate::tasks::TaskError::TooMany));
    }
    let max: Option<i64> = task_checklist_items::table
        .filter(task_checklist_items::card_id.eq(card.0))
        .select(diesel::dsl::max(task_checklist_items::position))
        .first(conn)?;
    let start = max.map_or(0, |m| m + 1);
    for (i, text) in items.iter().enumerate() {
        diesel::insert_into(task_checklist_items::table)
            .values((
                task_checklist_items::card_id.eq(card.0),
                task_checklist_items::position.eq(start + i as i64),
                task_checklist_items::text.eq(text),
            ))
            .execute(conn)?;
    }
    Ok(())
}

/// "Neue Karte aus Vorlage": a card of the template's board with its title, description,
/// labels that still exist and a fresh checklist. `Edit` was checked by the caller.
pub fn new_card(
    conn: &mut SqliteConnection,
    t: &Template,
    actor: MemberId,
    now: UnixTime,
) -> Result<CardId, RoutineError> {
    let wanted: Vec<i64> = serde_json::from_str(&t.labels).unwrap_or_default();
    let labels: Vec<i64> = task_labels::table
        .filter(task_labels::id.eq_any(&wanted))
        .filter(task_labels::board_id.eq(t.board_id))
        .select(task_labels::id)
        .load(conn)?;
    let card = cards::create_card(
        conn,
        BoardId(t.board_id),
        None,
        Some(actor),
        &NewCard {
            title: t.title.clone(),
            description: t.description.clone(),
            due: None,
            assignees: Vec::new(),
            labels,
        },
        now,
    )?;
    append_items(conn, card, &t.items())?;
    Ok(card)
}
