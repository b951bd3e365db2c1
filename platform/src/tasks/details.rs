//! A card's details: the board's labels, the card's checklist and its comments (with
//! @-mentions). Every change needs `Edit` on a board that is not archived and writes the
//! card's history.

use diesel::prelude::*;
use kollegium_tenants::UnixTime;
use serde_json::json;

use super::cards::{self, queue_index, record};
use super::{
    BoardId, COLORS, CardId, MAX_COMMENT_CHARS, MAX_ITEM_CHARS, MAX_ITEMS, Permission, TaskError,
    boards, check_text, check_title,
};
use crate::members::MemberId;
use crate::schema::{members, task_checklist_items, task_comments, task_labels};

/// A label of a board.
#[derive(Debug, Clone, Queryable, Selectable, serde::Serialize)]
#[diesel(table_name = task_labels)]
pub struct Label {
    pub id: i64,
    pub board_id: i64,
    pub name: String,
    pub color: String,
}

/// The labels of a board, by name.
pub fn labels(conn: &mut SqliteConnection, board: BoardId) -> QueryResult<Vec<Label>> {
    task_labels::table
        .filter(task_labels::board_id.eq(board.0))
        .order((task_labels::name, task_labels::id))
        .select(Label::as_select())
        .load(conn)
}

/// Adds a label to a board (`Manage`); its colour is one of [`COLORS`].
pub fn add_label(
    conn: &mut SqliteConnection,
    board: BoardId,
    member: MemberId,
    name: &str,
    color: &str,
) -> Result<i64, TaskError> {
    boards::writable(conn, board, member, Permission::Manage)?;
    let name = check_title(name)?;
    if !COLORS.iter().any(|(c, _)| *c == color) {
        return Err(TaskError::Invalid("Unbekannte Farbe."));
    }
    let n: i64 = task_labels::table
        .filter(task_labels::board_id.eq(board.0))
        .count()
        .get_result(conn)?;
    if n >= 50 {
        return Err(TaskError::TooMany);
    }
    Ok(diesel::insert_into(task_labels::table)
        .values((
            task_labels::board_id.eq(board.0),
            task_labels::name.eq(name),
            task_labels::color.eq(color),
        ))
        .returning(task_labels::id)
        .get_result(conn)?)
}

/// Deletes a label of a board (`Manage`); cards lose it.
pub fn delete_label(
    conn: &mut SqliteConnection,
    board: BoardId,
    member: MemberId,
    label: i64,
) -> Result<(), TaskError> {
    boards::writable(conn, board, member, Permission::Manage)?;
    let n = diesel::delete(
        task_labels::table
            .filter(task_labels::id.eq(label))
            .filter(task_labels::board_id.eq(board.0)),
    )
    .execute(conn)?;
    if n == 0 {
        return Err(TaskError::ItemNotFound);
    }
    Ok(())
}

/// A checklist item.
#[derive(Debug, Clone, Queryable, Selectable, serde::Serialize)]
#[diesel(table_name = task_checklist_items)]
pub struct Item {
    pub id: i64,
    pub card_id: i64,
    pub position: i64,
    pub text: String,
    pub done_at: Option<i64>,
    pub done_by: Option<i64>,
}

/// The checklist of a card, in order.
pub fn checklist(conn: &mut SqliteConnection, card: CardId) -> QueryResult<Vec<Item>> {
    task_checklist_items::table
        .filter(task_checklist_items::card_id.eq(card.0))
        .order((task_checklist_items::position, task_checklist_items::id))
        .select(Item::as_select())
        .load(conn)
}

/// Adds checklist items at the end (one per non-empty line of `text`; at most
/// [`MAX_ITEMS`] on a card). `actor` `None`: the practice (recurring cards); the caller then
/// checked nothing, web handlers pass the member and `Edit` is checked.
pub fn add_items(
    conn: &mut SqliteConnection,
    card: CardId,
    actor: Option<MemberId>,
    text: &str,
    now: UnixTime,
) -> Result<usize, TaskError> {
    if let Some(m) = actor {
        cards::editable(conn, card, m)?;
    }
    let lines: Vec<String> = text
        .lines()
        .map(|l| l.trim().replace('\0', ""))
        .filter(|l| !l.is_empty())
        .collect();
    if lines.is_empty() {
        return Err(TaskError::Empty);
    }
    if lines.iter().any(|l| l.chars().count() > MAX_ITEM_CHARS) {
        return Err(TaskError::TooLong);
    }
    let n: i64 = task_checklist_items::table
        .filter(task_checklist_items::card_id.eq(card.0))
        .count()
        .get_result(conn)?;
    if n + lines.len() as i64 > MAX_ITEMS {
        return Err(TaskError::TooMany);
    }
    for (i, l) in lines.iter().enumerate() {
        diesel::insert_into(task_checklist_items::table)
            .values((
                task_checklist_items::card_id.eq(card.0),
                task_checklist_items::position.eq(n + i as i64),
                task_checklist_items::text.eq(l),
            ))
            .execute(conn)?;
    }
    record(
        conn,
        card,
        actor,
        "checklist",
        json!({"added": lines.len()}),
        now,
    )?;
    queue_index(conn, card, now)?;
    Ok(lines.len())
}

fn item_of(conn: &mut SqliteConnection, card: CardId, item: i64) -> Result<Item, TaskError> {
    task_checklist_items::table
        .filter(task_checklist_items::id.eq(item))
        .filter(task_checklist_items::card_id.eq(card.0))
        .select(Item::as_select())
        .first(conn)
        .optional()?
        .ok_or(TaskError::ItemNotFound)
}

/// Ticks (`done`) or unticks a checklist item (`Edit`).
pub fn tick_item(
    conn: &mut SqliteConnection,
    card: CardId,
    member: MemberId,
    item: i64,
    done: bool,
    now: UnixTime,
) -> Result<(), TaskError> {
    cards::editable(conn, card, member)?;
    let it = item_of(conn, card, item)?;
    if it.done_at.is_some() == done {
        return Ok(());
    }
    diesel::update(task_checklist_items::table.find(item))
        .set((
            task_checklist_items::done_at.eq(done.then_some(now)),
            task_checklist_items::done_by.eq(done.then_some(member.0)),
        ))
        .execute(conn)?;
    record(
        conn,
        card,
        Some(member),
        "checklist",
        json!({"item": it.text, "done": done}),
        now,
    )?;
    Ok(())
}

/// Deletes a checklist item (`Edit`); the items below move up.
pub fn delete_item(
    conn: &mut SqliteConnection,
    card: CardId,
    member: MemberId,
    item: i64,
    now: UnixTime,
) -> Result<(), TaskError> {
    cards::editable(conn, card, member)?;
    let it = item_of(conn, card, item)?;
    diesel::delete(task_checklist_items::table.find(item)).execute(conn)?;
    diesel::update(
        task_checklist_items::table
            .filter(task_checklist_items::card_id.eq(card.0))
            .filter(task_checklist_items::position.gt(it.position)),
    )
    .set(task_checklist_items::position.eq(task_checklist_items::position - 1))
    .execute(conn)?;
    record(
        conn,
        card,
        Some(member),
        "checklist",
        json!({"removed": it.text}),
        now,
    )?;
    queue_index(conn, card, now)?;
    Ok(())
}

/// A comment as shown.
#[derive(Debug, Clone)]
pub struct Comment {
    pub id: i64,
    pub author_id: Option<i64>,
    pub author: String,
    pub body: String,
    pub created_at: i64,
    pub deleted: bool,
}

/// The comments of a card, oldest first, with their authors' names.
pub fn comments(conn: &mut SqliteConnection, card: CardId) -> QueryResult<Vec<Comment>> {
    type Row = (i64, Option<i64>, Option<String>, String, i64, Option<i64>);
    let rows: Vec<Row> = task_comments::table
        .left_join(members::table.on(members::id.nullable().eq(task_comments::author_id)))
        .filter(task_comments::card_id.eq(card.0))
        .order(task_comments::id)
        .select((
            task_comments::id,
            task_comments::author_id,
            members::display_name.nullable(),
            task_comments::body,
            task_comments::created_at,
            task_comments::deleted_at,
        ))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(
            |(id, author_id, name, body, created_at, deleted_at)| Comment {
                id,
                author_id,
                author: name.unwrap_or_else(|| "(unbekannt)".into()),
                body: if deleted_at.is_some() {
                    String::new()
                } else {
                    body
                },
                created_at,
                deleted: deleted_at.is_some(),
            },
        )
        .collect())
}

/// A new comment and whom it mentions.
#[derive(Debug, Clone)]
pub struct Commented {
    pub id: i64,
    /// Readers of the board named with `@username` (not the author).
    pub mentioned: Vec<MemberId>,
}

/// Adds a comment (`Edit`); `@username` of members who may read the board mentions them.
pub fn add_comment(
    conn: &mut SqliteConnection,
    card: CardId,
    member: MemberId,
    body: &str,
    now: UnixTime,
) -> Result<Commented, TaskError> {
    let c = cards::editable(conn, card, member)?;
    let body = check_text(body, MAX_COMMENT_CHARS, true)?;
    let (names, _) = crate::chat::messages::mention_tokens(&body);
    let mentioned: Vec<MemberId> = if names.is_empty() {
        Vec::new()
    } else {
        let readers: Vec<i64> = boards::readers(conn, c.board())?
            .into_iter()
            .map(|m| m.0)
            .collect();
        members::table
            .filter(members::id.eq_any(&readers))
            .select((members::id, members::username))
            .load::<(i64, String)>(conn)?
            .into_iter()
            .filter(|(id, u)| *id != member.0 && names.contains(&u.to_lowercase()))
            .map(|(id, _)| MemberId(id))
            .collect()
    };
    let id: i64 = diesel::insert_into(task_comments::table)
        .values((
            task_comments::card_id.eq(card.0),
            task_comments::author_id.eq(member.0),
            task_comments::body.eq(&body),
            task_comments::mentions.eq(crate::chat::messages::store_mentions(&mentioned)),
            task_comments::created_at.eq(now),
        ))
        .returning(task_comments::id)
        .get_result(conn)?;
    record(
        conn,
        card,
        Some(member),
        "comment",
        json!({"comment": id}),
        now,
    )?;
    queue_index(conn, card, now)?;
    Ok(Commented { id, mentioned })
}

/// Deletes a comment: its author, or a member who manages the board.
pub fn delete_comment(
    conn: &mut SqliteConnection,
    card: CardId,
    member: MemberId,
    comment: i64,
    now: UnixTime,
) -> Result<(), TaskError> {
    let c = cards::editable(conn, card, member)?;
    let author: Option<Option<i64>> = task_comments::table
        .filter(task_comments::id.eq(comment))
        .filter(task_comments::card_id.eq(card.0))
        .filter(task_comments::deleted_at.is_null())
        .select(task_comments::author_id)
        .first(conn)
        .optional()?;
    let Some(author) = author else {
        return Err(TaskError::ItemNotFound);
    };
    if author != Some(member.0)
        && boards::permission(conn, c.board(), member)? < Some(Permission::Manage)
    {
        return Err(TaskError::NotManager);
    }
    diesel::update(task_comments::table.find(comment))
        .set((
            task_comments::deleted_at.eq(now),
            task_comments::body.eq(""),
        ))
        .execute(conn)?;
    queue_index(conn, card, now)?;
    Ok(())
}
