//! Cards: create, edit, assign, label, archive and restore, move (with dense positions),
//! done. Every change writes a row of the card's history (`task_card_events`) and queues
//! the card's search document, in the caller's transaction.
//!
//! Moves: positions within a column are dense `0..n-1` (archived cards have position -1 and
//! are in no order). A move takes the card out of its column (the cards below move up) and
//! puts it at `to_position` of the target (the cards from there move down). A position
//! outside the target column's range is clamped to it (a negative one to the top, a huge
//! one to the end), never an error: a script with a stale picture of the column still
//! lands the card somewhere sensible. Run moves inside a write transaction
//! (`Tenant::write`, `BEGIN IMMEDIATE`), so concurrent moves serialise.

use diesel::prelude::*;
use kollegium_tenants::UnixTime;
use serde_json::json;

use super::columns::{self, Column};
use super::{
    BoardId, CardId, ColumnId, MAX_CARDS_PER_COLUMN, MAX_DESCRIPTION_CHARS, Permission, TaskError,
    boards, check_text, check_title,
};
use crate::members::MemberId;
use crate::schema::{
    members, task_card_assignees, task_card_events, task_card_labels, task_cards, task_labels,
};

/// A card row.
#[derive(Debug, Clone, Queryable, Selectable, serde::Serialize)]
#[diesel(table_name = task_cards)]
pub struct Card {
    pub id: i64,
    pub board_id: i64,
    pub column_id: i64,
    pub position: i64,
    pub title: String,
    pub description: String,
    pub due_at: Option<i64>,
    pub due_all_day: bool,
    pub done_at: Option<i64>,
    pub archived_at: Option<i64>,
    pub created_by: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl Card {
    pub fn card_id(&self) -> CardId {
        CardId(self.id)
    }
    pub fn board(&self) -> BoardId {
        BoardId(self.board_id)
    }
    pub fn is_archived(&self) -> bool {
        self.archived_at.is_some()
    }
}

/// A new card (see [`create_card`]).
#[derive(Debug, Clone, Default)]
pub struct NewCard {
    pub title: String,
    pub description: String,
    /// Unix time and whether all day (stored as the start of the local day).
    pub due: Option<(UnixTime, bool)>,
    pub assignees: Vec<MemberId>,
    /// Label ids of the card's board.
    pub labels: Vec<i64>,
}

/// The search job of a card (its document in the one search is rewritten or removed).
pub fn queue_index(conn: &mut SqliteConnection, card: CardId, now: UnixTime) -> QueryResult<()> {
    let key = crate::search::DocRef::new(super::search::KIND, card.0).uid();
    kollegium_tenants::jobs::enqueue(
        conn,
        crate::search::queue::JOB_KIND,
        &key,
        None,
        0,
        now,
        now,
    )
}

/// Writes a row of the card's history.
pub fn record(
    conn: &mut SqliteConnection,
    card: CardId,
    actor: Option<MemberId>,
    what: &str,
    detail: serde_json::Value,
    now: UnixTime,
) -> QueryResult<()> {
    diesel::insert_into(task_card_events::table)
        .values((
            task_card_events::card_id.eq(card.0),
            task_card_events::actor_id.eq(actor.map(|a| a.0)),
            task_card_events::what.eq(what),
            task_card_events::detail.eq(detail.to_string()),
            task_card_events::at.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}

pub fn by_id(conn: &mut SqliteConnection, card: CardId) -> QueryResult<Option<Card>> {
    task_cards::table
        .find(card.0)
        .select(Card::as_select())
        .first(conn)
        .optional()
}

/// The card and `member`'s permission on its board, if they may read it
/// ([`TaskError::CardNotFound`] otherwise, also for a board they may not see).
pub fn readable(
    conn: &mut SqliteConnection,
    card: CardId,
    member: MemberId,
) -> Result<(Card, Permission), TaskError> {
    let c = by_id(conn, card)?.ok_or(TaskError::CardNotFound)?;
    let perm = boards::permission(conn, c.board(), member)?.ok_or(TaskError::CardNotFound)?;
    Ok((c, perm))
}

/// Like [`readable`], for a change: `Edit` on a board that is not archived.
pub fn editable(
    conn: &mut SqliteConnection,
    card: CardId,
    member: MemberId,
) -> Result<Card, TaskError> {
    let c = by_id(conn, card)?.ok_or(TaskError::CardNotFound)?;
    match boards::writable(conn, c.board(), member, Permission::Edit) {
        Err(TaskError::BoardNotFound) => Err(TaskError::CardNotFound),
        Err(e) => Err(e),
        Ok(_) => Ok(c),
    }
}

fn live_count(conn: &mut SqliteConnection, column: i64, except: i64) -> QueryResult<i64> {
    task_cards::table
        .filter(task_cards::column_id.eq(column))
        .filter(task_cards::archived_at.is_null())
        .filter(task_cards::id.ne(except))
        .count()
        .get_result(conn)
}

/// Checks assignees (active members) and labels (of `board`).
fn check_refs(
    conn: &mut SqliteConnection,
    board: BoardId,
    assignees: &[MemberId],
    labels: &[i64],
) -> Result<(), TaskError> {
    if assignees.len() > 100 || labels.len() > 100 {
        return Err(TaskError::TooMany);
    }
    let ids: Vec<i64> = assignees.iter().map(|m| m.0).collect();
    let n: i64 = members::table
        .filter(members::id.eq_any(&ids))
        .filter(members::deactivated_at.is_null())
        .count()
        .get_result(conn)?;
    let mut unique = ids.clone();
    unique.sort_unstable();
    unique.dedup();
    if n != unique.len() as i64 {
        return Err(TaskError::Invalid("Unbekannte Person."));
    }
    let mut l = labels.to_vec();
    l.sort_unstable();
    l.dedup();
    let n: i64 = task_labels::table
        .filter(task_labels::id.eq_any(&l))
        .filter(task_labels::board_id.eq(board.0))
        .count()
        .get_result(conn)?;
    if n != l.len() as i64 {
        return Err(TaskError::Invalid("Unbekanntes Label."));
    }
    Ok(())
}

/// Creates a card at the end of `column` (or of the board's first column that is not a
/// "done" one, else its first) with its assignees and labels, and records `created`.
///
/// No permission check: web handlers check `Edit` first ([`boards::writable`]); background
/// work (recurring cards) creates cards as the practice (`actor` `None`). Refuses a column
/// of another board.
pub fn create_card(
    conn: &mut SqliteConnection,
    board: BoardId,
    column: Option<ColumnId>,
    actor: Option<MemberId>,
    card: &NewCard,
    now: UnixTime,
) -> Result<CardId, TaskError> {
    let title = check_title(&card.title)?;
    let description = check_text(&card.description, MAX_DESCRIPTION_CHARS, false)?;
    let col: Column = match column {
        Some(c) => {
            let col = columns::by_id(conn, c)?.ok_or(TaskError::ColumnNotFound)?;
            if col.board_id != board.0 {
                return Err(TaskError::OtherBoard);
            }
            col
        }
        None => {
            let cols = columns::of_board(conn, board)?;
            cols.iter()
                .find(|c| !c.is_done)
                .or(cols.first())
                .cloned()
                .ok_or(TaskError::ColumnNotFound)?
        }
    };
    check_refs(conn, board, &card.assignees, &card.labels)?;
    let position = live_count(conn, col.id, 0)?;
    if position >= MAX_CARDS_PER_COLUMN {
        return Err(TaskError::TooMany);
    }
    let id: i64 = diesel::insert_into(task_cards::table)
        .values((
            task_cards::board_id.eq(board.0),
            task_cards::column_id.eq(col.id),
            task_cards::position.eq(position),
            task_cards::title.eq(&title),
            task_cards::description.eq(&description),
            task_cards::due_at.eq(card.due.map(|d| d.0)),
            task_cards::due_all_day.eq(card.due.is_some_and(|d| d.1)),
            task_cards::done_at.eq(col.is_done.then_some(now)),
            task_cards::created_by.eq(actor.map(|a| a.0)),
            task_cards::created_at.eq(now),
            task_cards::updated_at.eq(now),
        ))
        .returning(task_cards::id)
        .get_result(conn)?;
    let mut assignees = card.assignees.clone();
    assignees.sort_unstable();
    assignees.dedup();
    for m in &assignees {
        diesel::insert_into(task_card_assignees::table)
            .values((
                task_card_assignees::card_id.eq(id),
                task_card_assignees::member_id.eq(m.0),
            ))
            .execute(conn)?;
    }
    let mut labels = card.labels.clone();
    labels.sort_unstable();
    labels.dedup();
    for l in &labels {
        diesel::insert_into(task_card_labels::table)
            .values((
                task_card_labels::card_id.eq(id),
                task_card_labels::label_id.eq(l),
            ))
            .execute(conn)?;
    }
    record(
        conn,
        CardId(id),
        actor,
        "created",
        json!({"column": col.title}),
        now,
    )?;
    queue_index(conn, CardId(id), now)?;
    crate::tasks::routines::card_changed(conn, CardId(id), now)?;
    Ok(CardId(id))
}

/// A change of a card's fields; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct CardChange {
    pub title: Option<String>,
    pub description: Option<String>,
    /// `Some(None)` removes the due date.
    pub due: Option<Option<(UnixTime, bool)>>,
}

/// Changes a card's title, description or due date (`Edit`), one history row per field
/// that changed. Returns the card as it is now.
pub fn update_card(
    conn: &mut SqliteConnection,
    card: CardId,
    member: MemberId,
    change: &CardChange,
    now: UnixTime,
) -> Result<Card, TaskError> {
    let c = editable(conn, card, member)?;
    let who = Some(member);
    if let Some(t) = &change.title {
        let t = check_title(t)?;
        if t != c.title {
            diesel::update(task_cards::table.find(card.0))
                .set(task_cards::title.eq(&t))
                .execute(conn)?;
            record(
                conn,
                card,
                who,
                "title",
                json!({"from": c.title, "to": t}),
                now,
            )?;
        }
    }
    if let Some(d) = &change.description {
        let d = check_text(d, MAX_DESCRIPTION_CHARS, false)?;
        if d != c.description {
            diesel::update(task_cards::table.find(card.0))
                .set(task_cards::description.eq(&d))
                .execute(conn)?;
            record(conn, card, who, "description", json!({}), now)?;
        }
    }
    if let Some(due) = change.due {
        let old = c.due_at.map(|d| (d, c.due_all_day));
        if due != old {
            diesel::update(task_cards::table.find(card.0))
                .set((
                    task_cards::due_at.eq(due.map(|d| d.0)),
                    task_cards::due_all_day.eq(due.is_some_and(|d| d.1)),
                ))
                .execute(conn)?;
            record(
                conn,
                card,
                who,
                "due",
                json!({"at": due.map(|d| d.0), "all_day": due.is_some_and(|d| d.1)}),
                now,
            )?;
        }
    }
    touch(conn, card, now)?;
    by_id(conn, card)?.ok_or(TaskError::CardNotFound)
}

fn touch(conn: &mut SqliteConnection, card: CardId, now: UnixTime) -> QueryResult<()> {
    diesel::update(task_cards::table.find(card.0))
        .set(task_cards::updated_at.eq(now))
        .execute(conn)?;
    crate::tasks::routines::card_changed(conn, card, now)?;
    queue_index(conn, card, now)
}

/// Sets a card's assignees (`Edit`); records `assigned` / `unassigned` per member.
pub fn set_assignees(
    conn: &mut SqliteConnection,
    card: CardId,
    member: MemberId,
    assignees: &[MemberId],
    now: UnixTime,
) -> Result<(), TaskError> {
    let c = editable(conn, card, member)?;
    let old: Vec<i64> = task_card_assignees::table
        .filter(task_card_assignees::card_id.eq(card.0))
        .select(task_card_assignees::member_id)
        .load(conn)?;
    // Members already assigned may stay even if deactivated meanwhile? No: only active ones.
    check_refs(conn, c.board(), assignees, &[])?;
    let new: Vec<i64> = assignees.iter().map(|m| m.0).collect();
    for gone in old.iter().filter(|o| !new.contains(o)) {
        diesel::delete(
            task_card_assignees::table
                .filter(task_card_assignees::card_id.eq(card.0))
                .filter(task_card_assignees::member_id.eq(gone)),
        )
        .execute(conn)?;
        record(
            conn,
            card,
            Some(member),
            "unassigned",
            json!({"member": gone}),
            now,
        )?;
    }
    let mut added: Vec<i64> = new.iter().filter(|n| !old.contains(n)).copied().collect();
    added.sort_unstable();
    added.dedup();
    for m in added {
        diesel::insert_into(task_card_assignees::table)
            .values((
                task_card_assignees::card_id.eq(card.0),
                task_card_assignees::member_id.eq(m),
            ))
            .execute(conn)?;
        record(
            conn,
            card,
            Some(member),
            "assigned",
            json!({"member": m}),
            now,
        )?;
    }
    touch(conn, card, now)?;
    Ok(())
}

/// Sets a card's labels (`Edit`; labels of its board only).
pub fn set_labels(
    conn: &mut SqliteConnection,
    card: CardId,
    member: MemberId,
    labels: &[i64],
    now: UnixTime,
) -> Result<(), TaskError> {
    let c = editable(conn, card, member)?;
    check_refs(conn, c.board(), &[], labels)?;
    let mut l = labels.to_vec();
    l.sort_unstable();
    l.dedup();
    let old: Vec<i64> = task_card_labels::table
        .filter(task_card_labels::card_id.eq(card.0))
        .select(task_card_labels::label_id)
        .order(task_card_labels::label_id)
        .load(conn)?;
    if old == l {
        return Ok(());
    }
    diesel::delete(task_card_labels::table.filter(task_card_labels::card_id.eq(card.0)))
        .execute(conn)?;
    for id in &l {
        diesel::insert_into(task_card_labels::table)
            .values((
                task_card_labels::card_id.eq(card.0),
                task_card_labels::label_id.eq(id),
            ))
            .execute(conn)?;
    }
    let names: Vec<String> = task_labels::table
        .filter(task_labels::id.eq_any(&l))
        .select(task_labels::name)
        .load(conn)?;
    record(
        conn,
        card,
        Some(member),
        "labels",
        json!({"labels": names}),
        now,
    )?;
    touch(conn, card, now)?;
    Ok(())
}

/// Where a card went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Moved {
    pub card: i64,
    pub from_column: i64,
    pub to_column: i64,
    pub position: i64,
}

/// Moves a card (`Edit`) to `to_position` of `to_column` (same board; clamped, see the
/// module). Moving into a "done" column marks it done, out of one open again.
pub fn move_card(
    conn: &mut SqliteConnection,
    card: CardId,
    member: MemberId,
    to_column: ColumnId,
    to_position: i64,
    now: UnixTime,
) -> Result<Moved, TaskError> {
    let c = editable(conn, card, member)?;
    if c.is_archived() {
        return Err(TaskError::CardArchived);
    }
    place(conn, &c, Some(member), to_column, to_position, now)
}

/// Takes a live card out of its column's order (the cards below move up).
fn take_out(conn: &mut SqliteConnection, c: &Card) -> QueryResult<()> {
    diesel::update(
        task_cards::table
            .filter(task_cards::column_id.eq(c.column_id))
            .filter(task_cards::archived_at.is_null())
            .filter(task_cards::position.gt(c.position))
            .filter(task_cards::id.ne(c.id)),
    )
    .set(task_cards::position.eq(task_cards::position - 1))
    .execute(conn)?;
    Ok(())
}

fn place(
    conn: &mut SqliteConnection,
    c: &Card,
    actor: Option<MemberId>,
    to_column: ColumnId,
    to_position: i64,
    now: UnixTime,
) -> Result<Moved, TaskError> {
    let target = columns::by_id(conn, to_column)?.ok_or(TaskError::ColumnNotFound)?;
    if target.board_id != c.board_id {
        return Err(TaskError::OtherBoard);
    }
    let others = live_count(conn, target.id, c.id)?;
    if target.id != c.column_id && others >= MAX_CARDS_PER_COLUMN {
        return Err(TaskError::TooMany);
    }
    let position = to_position.clamp(0, others);
    if !c.is_archived() {
        if target.id == c.column_id && position == c.position {
            return Ok(Moved {
                card: c.id,
                from_column: c.column_id,
                to_column: target.id,
                position,
            });
        }
        take_out(conn, c)?;
    }
    diesel::update(
        task_cards::table
            .filter(task_cards::column_id.eq(target.id))
            .filter(task_cards::archived_at.is_null())
            .filter(task_cards::position.ge(position))
            .filter(task_cards::id.ne(c.id)),
    )
    .set(task_cards::position.eq(task_cards::position + 1))
    .execute(conn)?;
    let done_at = if target.is_done {
        Some(c.done_at.unwrap_or(now))
    } else {
        None
    };
    diesel::update(task_cards::table.find(c.id))
        .set((
            task_cards::column_id.eq(target.id),
            task_cards::position.eq(position),
            task_cards::done_at.eq(done_at),
            task_cards::updated_at.eq(now),
        ))
        .execute(conn)?;
    if target.id != c.column_id {
        let from: Option<String> = columns::by_id(conn, ColumnId(c.column_id))?.map(|x| x.title);
        record(
            conn,
            c.card_id(),
            actor,
            "moved",
            json!({"from": from, "to": target.title}),
            now,
        )?;
        if target.is_done != c.done_at.is_some() {
            record(
                conn,
                c.card_id(),
                actor,
                "done",
                json!({"done": target.is_done}),
                now,
            )?;
        }
    }
    crate::tasks::routines::card_changed(conn, c.card_id(), now)?;
    Ok(Moved {
        card: c.id,
        from_column: c.column_id,
        to_column: target.id,
        position,
    })
}

/// Marks a card done (moves it to the end of the board's first "done" column) or open
/// again (to the end of its first other column). Without such a column only `done_at`
/// changes.
pub fn set_done(
    conn: &mut SqliteConnection,
    card: CardId,
    member: MemberId,
    done: bool,
    now: UnixTime,
) -> Result<Option<Moved>, TaskError> {
    let c = editable(conn, card, member)?;
    if c.is_archived() {
        return Err(TaskError::CardArchived);
    }
    if c.done_at.is_some() == done {
        return Ok(None);
    }
    let cols = columns::of_board(conn, c.board())?;
    if let Some(col) = cols.iter().find(|x| x.is_done == done) {
        return place(conn, &c, Some(member), ColumnId(col.id), i64::MAX, now).map(Some);
    }
    diesel::update(task_cards::table.find(card.0))
        .set((
            task_cards::done_at.eq(done.then_some(now)),
            task_cards::updated_at.eq(now),
        ))
        .execute(conn)?;
    record(conn, card, Some(member), "done", json!({"done": done}), now)?;
    crate::tasks::routines::card_changed(conn, card, now)?;
    Ok(None)
}

/// Archives a card (it leaves its column's order) or restores it (to the end of its
/// column). `Edit`.
pub fn set_archived(
    conn: &mut SqliteConnection,
    card: CardId,
    member: MemberId,
    archived: bool,
    now: UnixTime,
) -> Result<(), TaskError> {
    let c = editable(conn, card, member)?;
    if c.is_archived() == archived {
        return Ok(());
    }
    if archived {
        take_out(conn, &c)?;
        diesel::update(task_cards::table.find(card.0))
            .set((
                task_cards::archived_at.eq(now),
                task_cards::position.eq(-1),
                task_cards::updated_at.eq(now),
            ))
            .execute(conn)?;
        record(conn, card, Some(member), "archived", json!({}), now)?;
    } else {
        let end = live_count(conn, c.column_id, c.id)?;
        diesel::update(task_cards::table.find(card.0))
            .set((
                task_cards::archived_at.eq(None::<i64>),
                task_cards::position.eq(end),
                task_cards::updated_at.eq(now),
            ))
            .execute(conn)?;
        record(conn, card, Some(member), "restored", json!({}), now)?;
    }
    crate::tasks::routines::card_changed(conn, card, now)?;
    queue_index(conn, card, now)?;
    Ok(())
}
