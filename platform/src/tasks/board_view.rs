//! A board as its page shows it: columns with their card tiles (labels, assignees, due
//! date, checklist progress). Loading it costs a fixed number of queries however many cards
//! the board holds (a unit test counts them).

use std::collections::HashMap;

use diesel::dsl::count_star;
use diesel::prelude::*;

use super::boards::{self, Board};
use super::columns::{self, Column};
use super::details::{self, Label};
use super::{BoardId, Permission, TaskError};
use crate::members::MemberId;
use crate::schema::{
    members, task_card_assignees, task_card_labels, task_cards, task_checklist_items, task_comments,
};

/// A card as its tile shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Tile {
    pub id: i64,
    pub column_id: i64,
    pub position: i64,
    pub title: String,
    pub due_at: Option<i64>,
    pub due_all_day: bool,
    pub done: bool,
    /// (name, colour) of its labels.
    pub labels: Vec<(String, String)>,
    /// (member id, name) of its assignees.
    pub assignees: Vec<(i64, String)>,
    /// Ticked and all checklist items.
    pub checklist: (i64, i64),
    pub comments: i64,
}

/// A column with its live cards in order.
#[derive(Debug, Clone)]
pub struct ColumnView {
    pub column: Column,
    pub cards: Vec<Tile>,
}

/// A board with what its page shows.
#[derive(Debug, Clone)]
pub struct BoardView {
    pub board: Board,
    pub permission: Permission,
    pub columns: Vec<ColumnView>,
    pub labels: Vec<Label>,
}

/// The board `member` may read, with its columns and live cards.
pub fn load(
    conn: &mut SqliteConnection,
    board: BoardId,
    member: MemberId,
) -> Result<BoardView, TaskError> {
    let (b, permission) = boards::readable(conn, board, member)?;
    let cols = columns::of_board(conn, board)?;
    type CardRow = (i64, i64, i64, String, Option<i64>, bool, Option<i64>);
    let rows: Vec<CardRow> = task_cards::table
        .filter(task_cards::board_id.eq(board.0))
        .filter(task_cards::archived_at.is_null())
        .order((task_cards::column_id, task_cards::position, task_cards::id))
        .select((
            task_cards::id,
            task_cards::column_id,
            task_cards::position,
            task_cards::title,
            task_cards::due_at,
            task_cards::due_all_day,
            task_cards::done_at,
        ))
        .load(conn)?;
    let labels = details::labels(conn, board)?;
    let live = task_cards::table
        .filter(task_cards::board_id.eq(board.0))
        .filter(task_cards::archived_at.is_null())
        .select(task_cards::id);
    let card_labels: Vec<(i64, i64)> = task_card_labels::table
        .filter(task_card_labels::card_id.eq_any(live))
        .select((task_card_labels::card_id, task_card_labels::label_id))
        .load(conn)?;
    let assignees: Vec<(i64, i64, String)> = task_card_assignees::table
        .inner_join(members::table)
        .filter(task_card_assignees::card_id.eq_any(live))
        .order(members::display_name)
        .select((
            task_card_assignees::card_id,
            members::id,
            members::display_name,
        ))
        .load(conn)?;
    let checklist: Vec<(i64, Option<i64>)> = task_checklist_items::table
        .filter(task_checklist_items::card_id.eq_any(live))
        .select((task_checklist_items::card_id, task_checklist_items::done_at))
        .load(conn)?;
    let comments: Vec<(i64, i64)> = task_comments::table
        .filter(task_comments::card_id.eq_any(live))
        .filter(task_comments::deleted_at.is_null())
        .group_by(task_comments::card_id)
        .select((task_comments::card_id, count_star()))
        .load(conn)?;
    let label_of: HashMap<i64, &Label> = labels.iter().map(|l| (l.id, l)).collect();
    let mut lab: HashMap<i64, Vec<(String, String)>> = HashMap::new();
    for (card, label) in card_labels {
        if let Some(l) = label_of.get(&label) {
            lab.entry(card)
                .or_default()
                .push((l.name.clone(), l.color.clone()));
        }
    }
    let mut who: HashMap<i64, Vec<(i64, String)>> = HashMap::new();
    for (card, id, name) in assignees {
        who.entry(card).or_default().push((id, name));
    }
    let mut progress: HashMap<i64, (i64, i64)> = HashMap::new();
    for (card, done) in checklist {
        let p = progress.entry(card).or_default();
        p.1 += 1;
        if done.is_some() {
            p.0 += 1;
        }
    }
    let comments: HashMap<i64, i64> = comments.into_iter().collect();
    let mut by_column: HashMap<i64, Vec<Tile>> = HashMap::new();
    for (id, column_id, position, title, due_at, due_all_day, done_at) in rows {
        let mut labels = lab.remove(&id).unwrap_or_default();
        labels.sort();
        by_column.entry(column_id).or_default().push(Tile {
            id,
            column_id,
            position,
            title,
            due_at,
            due_all_day,
            done: done_at.is_some(),
            labels,
            assignees: who.remove(&id).unwrap_or_default(),
            checklist: progress.get(&id).copied().unwrap_or_default(),
            comments: comments.get(&id).copied().unwrap_or_default(),
        });
    }
    let columns = cols
        .into_iter()
        .map(|c| ColumnView {
            cards: by_column.remove(&c.id).unwrap_or_default(),
            column: c,
        })
        .collect();
    Ok(BoardView {
        board: b,
        permission,
        columns,
        labels,
    })
}
