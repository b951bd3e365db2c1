//! "Meine Aufgaben" (`/tasks/mine`): the open cards assigned to me on the boards I may
//! read (archived boards left out), grouped by due date in the practice's time zone:
//! overdue, today, this week, later (and without due date). Also the start-page tile's
//! counts.

use actix_web::web;
use askama::Template;
use diesel::prelude::*;
use kollegium_tenants::UnixTime;
use kollegium_tenants::time::Zone;
use kollegium_tenants::web::{CsrfToken, Layout};

use super::boards;
use super::web::{PageResult, html, layout, read};
use crate::app::AppContext;
use crate::auth::Member;
use crate::members::MemberId;
use crate::schema::{task_boards, task_card_assignees, task_cards};

/// An open card assigned to me.
#[derive(Debug, Clone)]
pub struct Mine {
    pub id: i64,
    pub title: String,
    pub board: String,
    pub due_at: Option<i64>,
    pub due_all_day: bool,
}

/// My open cards on readable, not archived boards, by due date (none last).
pub fn assigned(conn: &mut SqliteConnection, me: MemberId) -> QueryResult<Vec<Mine>> {
    let readable: Vec<i64> = boards::readable_boards(conn, me)?
        .into_iter()
        .map(|(b, _)| b)
        .collect();
    let rows: Vec<(i64, String, String, Option<i64>, bool)> = task_cards::table
        .inner_join(task_card_assignees::table)
        .inner_join(task_boards::table)
        .filter(task_card_assignees::member_id.eq(me.0))
        .filter(task_cards::board_id.eq_any(&readable))
        .filter(task_cards::archived_at.is_null())
        .filter(task_cards::done_at.is_null())
        .filter(task_boards::archived_at.is_null())
        .order((
            task_cards::due_at.is_null(),
            task_cards::due_at,
            task_cards::id,
        ))
        .select((
            task_cards::id,
            task_cards::title,
            task_boards::title,
            task_cards::due_at,
            task_cards::due_all_day,
        ))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|(id, title, board, due_at, due_all_day)| Mine {
            id,
            title,
            board,
            due_at,
            due_all_day,
        })
        .collect())
}

/// My cards in the groups of the page.
#[derive(Debug, Default)]
pub struct Groups {
    pub overdue: Vec<Mine>,
    pub today: Vec<Mine>,
    pub week: Vec<Mine>,
    pub later: Vec<Mine>,
}

/// Groups `cards` at `now` in `zone`.
pub fn group(cards: Vec<Mine>, zone: &Zone, now: UnixTime) -> Groups {
    let (_, tomorrow, week_end) = super::time::day_and_week_end(zone, now);
    let mut g = Groups::default();
    for c in cards {
        match c.due_at {
            Some(d) if super::time::is_overdue(d, c.due_all_day, now) => g.overdue.push(c),
            Some(d) if d < tomorrow => g.today.push(c),
            Some(d) if d < week_end => g.week.push(c),
            _ => g.later.push(c),
        }
    }
    g
}

/// The tile's counts: my open cards, and of them the overdue ones.
pub fn counts(conn: &mut SqliteConnection, me: MemberId, now: UnixTime) -> QueryResult<(i64, i64)> {
    let all = assigned(conn, me)?;
    let overdue = all
        .iter()
        .filter(|c| {
            c.due_at
                .is_some_and(|d| super::time::is_overdue(d, c.due_all_day, now))
        })
        .count();
    Ok((all.len() as i64, overdue as i64))
}

#[derive(Template)]
#[template(path = "tasks/mine.html")]
struct MinePage {
    layout: Layout,
    groups: Vec<(&'static str, Vec<Mine>)>,
    zone: Zone,
    empty: bool,
}

impl MinePage {
    fn due(&self, c: &Mine) -> String {
        c.due_at
            .map(|d| super::time::due_label(&self.zone, d, c.due_all_day))
            .unwrap_or_default()
    }
}

pub async fn page(m: Member, csrf: CsrfToken, shared: web::Data<AppContext>) -> PageResult {
    let (me, now) = (m.id(), shared.now());
    let zone = m.tenant.time_zone().clone();
    let cards = read(&m, move |c| Ok(assigned(c, me)?)).await?;
    let empty = cards.is_empty();
    let g = group(cards, &zone, now);
    html(&MinePage {
        layout: layout(&m, &csrf),
        groups: vec![
            ("Überfällig", g.overdue),
            ("Heute", g.today),
            ("Diese Woche", g.week),
            ("Später oder ohne Datum", g.later),
        ],
        zone,
        empty,
    })
}
