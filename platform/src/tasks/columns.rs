//! Columns of a board: add, rename, mark as "done", reorder, delete when empty. Every
//! change needs `Manage` on a board that is not archived; positions stay dense `0..n-1`.

use diesel::prelude::*;
use kollegium_tenants::UnixTime;

use super::boards;
use super::{BoardId, ColumnId, MAX_COLUMNS, Permission, TaskError, check_title};
use crate::members::MemberId;
use crate::schema::{task_cards, task_columns};

/// A column row.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = task_columns)]
pub struct Column {
    pub id: i64,
    pub board_id: i64,
    pub title: String,
    pub position: i64,
    pub is_done: bool,
    pub created_at: i64,
}

pub fn by_id(conn: &mut SqliteConnection, column: ColumnId) -> QueryResult<Option<Column>> {
    task_columns::table
        .find(column.0)
        .select(Column::as_select())
        .first(conn)
        .optional()
}

/// The columns of a board, in order.
pub fn of_board(conn: &mut SqliteConnection, board: BoardId) -> QueryResult<Vec<Column>> {
    task_columns::table
        .filter(task_columns::board_id.eq(board.0))
        .order((task_columns::position, task_columns::id))
        .select(Column::as_select())
        .load(conn)
}

/// The column and its board, if `member` may manage the board ([`TaskError::ColumnNotFound`]
/// for a column of a board they may not read).
fn managed(
    conn: &mut SqliteConnection,
    column: ColumnId,
    member: MemberId,
) -> Result<Column, TaskError> {
    let col = by_id(conn, column)?.ok_or(TaskError::ColumnNotFound)?;
    match boards::writable(conn, BoardId(col.board_id), member, Permission::Manage) {
        Err(TaskError::BoardNotFound) => Err(TaskError::ColumnNotFound),
        Err(e) => Err(e),
        Ok(_) => Ok(col),
    }
}

/// Adds a column at the end of a board.
pub fn add(
    conn: &mut SqliteConnection,
    board: BoardId,
    member: MemberId,
    title: &str,
    is_done: bool,
    now: UnixTime,
) -> Result<ColumnId, TaskError> {
    boards::writable(conn, board, member, Permission::Manage)?;
    let title = check_title(title)?;
    let n: i64 = task_columns::table
        .filter(task_columns::board_id.eq(board.0))
        .count()
        .get_result(conn)?;
    if n >= MAX_COLUMNS {
        return Err(TaskError::TooMany);
    }
    let id = diesel::insert_into(task_columns::table)
        .values((
            task_columns::board_id.eq(board.0),
            task_columns::title.eq(title),
            task_columns::position.eq(n),
            task_columns::is_done.eq(is_done),
            task_columns::created_at.eq(now),
        ))
        .returning(task_columns::id)
        .get_result(conn)?;
    Ok(ColumnId(id))
}

/// Renames a column and sets whether cards in it count as done.
pub fn update(
    conn: &mut SqliteConnection,
    column: ColumnId,
    member: MemberId,
    title: &str,
    is_done: bool,
    now: UnixTime,
) -> Result<BoardId, TaskError> {
    let col = managed(conn, column, member)?;
    let title = check_title(title)?;
    diesel::update(task_columns::table.find(column.0))
        .set((
            task_columns::title.eq(title),
            task_columns::is_done.eq(is_done),
        ))
        .execute(conn)?;
    if is_done != col.is_done {
        // The cards in it become done (or open again) with the column.
        let cards = task_cards::table
            .filter(task_cards::column_id.eq(column.0))
            .filter(task_cards::archived_at.is_null());
        if is_done {
            diesel::update(cards.filter(task_cards::done_at.is_null()))
                .set(task_cards::done_at.eq(now))
                .execute(conn)?;
        } else {
            diesel::update(cards)
                .set(task_cards::done_at.eq(None::<i64>))
                .execute(conn)?;
        }
    }
    Ok(BoardId(col.board_id))
}

/// Moves a column to `to` (clamped to the board's columns).
pub fn reorder(
    conn: &mut SqliteConnection,
    column: ColumnId,
    member: MemberId,
    to: i64,
) -> Result<BoardId, TaskError> {
    let col = managed(conn, column, member)?;
    let mut ids: Vec<i64> = of_board(conn, BoardId(col.board_id))?
        .into_iter()
        .map(|c| c.id)
        .filter(|id| *id != col.id)
        .collect();
    let at = usize::try_from(to.max(0))
        .unwrap_or(usize::MAX)
        .min(ids.len());
    ids.insert(at, col.id);
    for (i, id) in ids.iter().enumerate() {
        diesel::update(task_columns::table.find(id))
            .set(task_columns::position.eq(i as i64))
            .execute(conn)?;
    }
    Ok(BoardId(col.board_id))
}

/// Deletes a column that holds no card (archived ones included) and is not the board's last.
pub fn delete(
    conn: &mut SqliteConnection,
    column: ColumnId,
    member: MemberId,
) -> Result<BoardId, TaskError> {
    let col = managed(conn, column, member)?;
    let cards: i64 = task_cards::table
        .filter(task_cards::column_id.eq(column.0))
        .count()
        .get_result(conn)?;
    if cards > 0 {
        return Err(TaskError::ColumnNotEmpty);
    }
    let n: i64 = task_columns::table
        .filter(task_columns::board_id.eq(col.board_id))
        .count()
        .get_result(conn)?;
    if n <= 1 {
        return Err(TaskError::LastColumn);
    }
    diesel::delete(task_columns::table.find(column.0)).execute(conn)?;
    diesel::update(
        task_columns::table
            .filter(task_columns::board_id.eq(col.board_id))
            .filter(task_columns::position.gt(col.position)),
    )
    .set(task_columns::position.eq(task_columns::position - 1))
    .execute(conn)?;
    Ok(BoardId(col.board_id))
}
