//! Cards in the one search: a card's document is its title, description, checklist items,
//! comments and the names of its attachments; its permission key is its board
//! (`board:<id>`). Archived cards and cards of archived boards stay searchable for those who
//! may read the board; `confirm` re-checks the board's access against the database at every
//! search.

use std::collections::{HashMap, HashSet};

use diesel::prelude::*;
use kollegium_tenants::time::Zone;

use super::boards;
use crate::app::SearchSource;
use crate::members::MemberId;
use crate::schema::{task_boards, task_cards, task_checklist_items, task_comments};
use crate::search::index::Entry;
use crate::search::{Confirmed, Kind, PermKey, Shown};

/// The kind of cards in the index.
pub const KIND: Kind = "task-card";
/// What the permission keys of cards name: a board (`board:<id>`).
pub const BOARD: &str = "board";
/// How the search page labels card hits.
pub const LABEL: &str = "Aufgaben";

/// Cards as a source of the one search.
#[derive(Debug, Clone, Copy)]
pub struct Cards;

/// The tasks app's search source.
pub static CARDS: Cards = Cards;

type CardRow = (i64, i64, String, String, Option<i64>, i64);

fn card_rows(conn: &mut SqliteConnection, ids: &[i64]) -> QueryResult<Vec<CardRow>> {
    task_cards::table
        .filter(task_cards::id.eq_any(ids))
        .select((
            task_cards::id,
            task_cards::board_id,
            task_cards::title,
            task_cards::description,
            task_cards::created_by,
            task_cards::created_at,
        ))
        .load(conn)
}

impl SearchSource for Cards {
    fn kind(&self) -> Kind {
        KIND
    }

    fn label(&self) -> &'static str {
        LABEL
    }

    fn documents(&self, conn: &mut SqliteConnection, ids: &[i64]) -> QueryResult<Vec<Entry>> {
        let rows = card_rows(conn, ids)?;
        let mut extra: HashMap<i64, Vec<String>> = HashMap::new();
        let items: Vec<(i64, String)> = task_checklist_items::table
            .filter(task_checklist_items::card_id.eq_any(ids))
            .order((
                task_checklist_items::card_id,
                task_checklist_items::position,
            ))
            .select((task_checklist_items::card_id, task_checklist_items::text))
            .load(conn)?;
        let comments: Vec<(i64, String)> = task_comments::table
            .filter(task_comments::card_id.eq_any(ids))
            .filter(task_comments::deleted_at.is_null())
            .order(task_comments::id)
            .select((task_comments::card_id, task_comments::body))
            .load(conn)?;
        let files = super::attachments::names_of(conn, ids)?;
        for (card, text) in items.into_iter().chain(comments).chain(files) {
            extra.entry(card).or_default().push(text);
        }
        Ok(rows
            .into_iter()
            .map(|(id, board, title, description, author, created_at)| {
                let mut body = description;
                for t in extra.remove(&id).unwrap_or_default() {
                    body.push('\n');
                    body.push_str(&t);
                }
                Entry {
                    kind: KIND,
                    id,
                    key: PermKey::new(BOARD, board),
                    title,
                    body,
                    author,
                    created_at,
                }
            })
            .collect())
    }

    fn readable(&self, conn: &mut SqliteConnection, member: MemberId) -> QueryResult<Vec<PermKey>> {
        Ok(boards::readable_boards(conn, member)?
            .into_iter()
            .map(|(b, _)| PermKey::new(BOARD, b))
            .collect())
    }

    fn confirm(
        &self,
        conn: &mut SqliteConnection,
        member: MemberId,
        _readable: &[PermKey],
        ids: &[i64],
    ) -> QueryResult<Vec<Confirmed>> {
        // Re-read the boards the member may read now, not what the search started with.
        let allowed: HashSet<i64> = boards::readable_boards(conn, member)?
            .into_iter()
            .map(|(b, _)| b)
            .collect();
        let rows: HashMap<i64, CardRow> = card_rows(conn, ids)?
            .into_iter()
            .filter(|r| allowed.contains(&r.1))
            .map(|r| (r.0, r))
            .collect();
        let board_ids: Vec<i64> = rows.values().map(|r| r.1).collect();
        let titles: HashMap<i64, String> = task_boards::table
            .filter(task_boards::id.eq_any(&board_ids))
            .select((task_boards::id, task_boards::title))
            .load::<(i64, String)>(conn)?
            .into_iter()
            .collect();
        Ok(ids
            .iter()
            .filter_map(|id| {
                let (id, board, title, description, _, created_at) = rows.get(id)?.clone();
                Some(Confirmed {
                    id,
                    title: format!(
                        "{} · {}",
                        titles.get(&board).cloned().unwrap_or_default(),
                        title
                    ),
                    author: None,
                    text: if description.is_empty() {
                        title
                    } else {
                        description
                    },
                    link: format!("/tasks/cards/{id}"),
                    created_at,
                })
            })
            .collect())
    }

    fn render(&self, hit: Confirmed, snippet_html: String, zone: &Zone) -> Shown {
        Shown {
            kind: KIND,
            label: LABEL,
            when: zone.format(hit.created_at),
            title: hit.title,
            author: hit.author,
            snippet_html,
            link: hit.link,
        }
    }
}
