//! Members who left the practice (the IdP's directory no longer lists them as active):
//! what tasks does when it is told ([`crate::app::WorkspaceApp::member_deactivated`]).
//!
//! Access and mail already leave them out by construction (a deactivated member matches no
//! access row, is in no board's audience, cannot be assigned or mentioned, and gets no
//! reminder). On top of that, in one transaction:
//!
//! - **Their open cards lose them as assignee**, each with a history line "… hat die Praxis
//!   verlassen". A practice expects the work of someone who left to be picked up by the
//!   team: an open card still showing the leaver looks taken care of when nobody will do
//!   it, stays in no one's "Meine Aufgaben" and sends no reminder. Unassigned, it is plainly
//!   open again, and the history says whose it was. Done and archived cards keep their
//!   assignees: they record who did the work.
//! - **Their personal board shares are removed** (shares with the practice or a role stay;
//!   a leaver matches them no more). The sharing form no longer lists them, and access does
//!   not come back unnoticed if the account is enabled again: a returning colleague gets
//!   what the practice and their roles grant, personal shares are granted anew.
//! - **Routine series stop naming them** as assignee of their next cards.
//!
//! Their rows stay (names in history and comments).

use diesel::prelude::*;
use kollegium_tenants::UnixTime;
use serde_json::json;

use super::live::{Change, Event};
use super::{BoardId, CardId, cards};
use crate::members::MemberId;
use crate::schema::{task_board_access, task_card_assignees, task_cards, task_series};

/// History entry of an assignment removed because the member left (`actor` is the leaver).
pub const LEFT: &str = "left";

/// What tasks changed for members who left.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Cleared {
    /// Open cards that lost an assignee, by card.
    pub cards: Vec<(BoardId, CardId)>,
    /// Boards whose sharing named one of them.
    pub boards: Vec<BoardId>,
    /// Series that named one of them as assignee.
    pub series: usize,
}

/// Removes `left`'s assignments on open cards (with a history line each), their personal
/// board shares and their place in series' assignees, in one transaction. Returns the live
/// events to publish after the commit.
pub fn members_left(
    conn: &mut SqliteConnection,
    left: &[MemberId],
    now: UnixTime,
) -> QueryResult<(Cleared, Vec<Event>)> {
    let ids: Vec<i64> = left.iter().map(|m| m.0).collect();
    conn.immediate_transaction(|conn| {
        let mut cleared = Cleared::default();
        let open: Vec<(i64, i64, i64)> = task_card_assignees::table
            .inner_join(task_cards::table)
            .filter(task_card_assignees::member_id.eq_any(&ids))
            .filter(task_cards::done_at.is_null())
            .filter(task_cards::archived_at.is_null())
            .order((task_cards::id, task_card_assignees::member_id))
            .select((
                task_cards::board_id,
                task_cards::id,
                task_card_assignees::member_id,
            ))
            .load(conn)?;
        for (board, card, member) in &open {
            diesel::delete(task_card_assignees::table.find((card, member))).execute(conn)?;
            cards::record(
                conn,
                CardId(*card),
                Some(MemberId(*member)),
                LEFT,
                json!({"member": member}),
                now,
            )?;
            let key = (BoardId(*board), CardId(*card));
            if !cleared.cards.contains(&key) {
                cleared.cards.push(key);
                diesel::update(task_cards::table.find(card))
                    .set(task_cards::updated_at.eq(now))
                    .execute(conn)?;
            }
        }
        for (_, card) in &cleared.cards {
            // Their reminders go with the assignment.
            super::routines::card_changed(conn, *card, now)?;
        }
        let shares: Vec<i64> = task_board_access::table
            .filter(task_board_access::kind.eq("member"))
            .filter(task_board_access::member_id.eq_any(&ids))
            .select(task_board_access::board_id)
            .distinct()
            .load(conn)?;
        diesel::delete(
            task_board_access::table
                .filter(task_board_access::kind.eq("member"))
                .filter(task_board_access::member_id.eq_any(&ids)),
        )
        .execute(conn)?;
        cleared.boards = shares.into_iter().map(BoardId).collect();
        let series: Vec<(i64, String)> = task_series::table
            .select((task_series::id, task_series::assignees))
            .load(conn)?;
        for (id, assignees) in series {
            let was: Vec<i64> = serde_json::from_str(&assignees).unwrap_or_default();
            let now_: Vec<i64> = was.iter().copied().filter(|a| !ids.contains(a)).collect();
            if now_.len() != was.len() {
                diesel::update(task_series::table.find(id))
                    .set(task_series::assignees.eq(json!(now_).to_string()))
                    .execute(conn)?;
                cleared.series += 1;
            }
        }
        let mut events = Vec::new();
        for (board, card) in &cleared.cards {
            events.push(Event::new(conn, *board, Change::Card { card: card.0 }, 0)?);
        }
        for board in &cleared.boards {
            events.push(Event::new(conn, *board, Change::Board, 0)?);
        }
        Ok((cleared, events))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::members::MemberId;
    use crate::schema::{members, task_card_events};
    use crate::tasks::boards::{self, Access, Grantee};
    use crate::tasks::routines::reminders::{self, Setting};
    use crate::tasks::tests::{board, card, cols, db, member};
    use crate::tasks::{Permission, cards::CardChange};
    use kollegium_tenants::jobs::schema::jobs;

    fn assignees(c: &mut SqliteConnection, card: CardId) -> Vec<i64> {
        task_card_assignees::table
            .filter(task_card_assignees::card_id.eq(card.0))
            .order(task_card_assignees::member_id)
            .select(task_card_assignees::member_id)
            .load(c)
            .unwrap()
    }

    fn reminder_keys(c: &mut SqliteConnection) -> Vec<String> {
        jobs::table
            .filter(jobs::kind.eq(crate::tasks::routines::jobs::REMINDER))
            .order(jobs::key)
            .select(jobs::key)
            .load(c)
            .unwrap()
    }

    #[test]
    fn a_leaver_loses_open_cards_and_personal_shares_but_done_cards_keep_them() {
        let (_d, mut c) = db();
        let olga = member(&mut c, "olga", &[], false);
        let bernd = member(&mut c, "bernd", &["mfa"], false);
        let carla = member(&mut c, "carla", &[], false);
        let b = board(
            &mut c,
            olga,
            &[
                Access::new(Grantee::Member(bernd), Permission::Edit),
                Access::new(Grantee::Member(carla), Permission::Edit),
                Access::new(Grantee::Role("mfa".into()), Permission::View),
            ],
        );
        let col = cols(&mut c, b);
        let (open, done) = (
            card(&mut c, b, col[0], "Offen"),
            card(&mut c, b, col[0], "Fertig"),
        );
        for k in [open, done] {
            cards::set_assignees(&mut c, k, olga, &[bernd, carla], 1_100).unwrap();
        }
        cards::set_done(&mut c, done, olga, true, 1_200).unwrap();
        // Bernd and Carla want reminders; the open card is due tomorrow.
        for m in [bernd, carla] {
            reminders::set(
                &mut c,
                m,
                Setting {
                    enabled: true,
                    lead_minutes: 60,
                },
                1_300,
            )
            .unwrap();
        }
        let change = CardChange {
            due: Some(Some((100_000, false))),
            ..CardChange::default()
        };
        cards::update_card(&mut c, open, olga, &change, 1_400).unwrap();
        let key = |m: MemberId| format!("{}:{}", open.0, m.0);
        assert_eq!(reminder_keys(&mut c), [key(bernd), key(carla)]);

        // Bernd leaves (the directory marked him), then tasks is told.
        diesel::update(members::table.find(bernd.0))
            .set(members::deactivated_at.eq(2_000))
            .execute(&mut c)
            .unwrap();
        let (cleared, events) = members_left(&mut c, &[bernd], 2_000).unwrap();
        assert_eq!(cleared.cards, [(b, open)]);
        assert_eq!(cleared.boards, [b]);
        assert_eq!(assignees(&mut c, open), [carla.0]);
        assert_eq!(
            assignees(&mut c, done),
            [bernd.0, carla.0],
            "done work keeps its names"
        );
        // The open card's history says why, in his name.
        let last: (Option<i64>, String) = task_card_events::table
            .filter(task_card_events::card_id.eq(open.0))
            .order(task_card_events::id.desc())
            .select((task_card_events::actor_id, task_card_events::what))
            .first(&mut c)
            .unwrap();
        assert_eq!(last, (Some(bernd.0), LEFT.to_owned()));
        // No reminder for him any more; Carla's stays.
        assert_eq!(reminder_keys(&mut c), [key(carla)]);
        // His personal share is gone, the role share and Carla's stay.
        let access = boards::access(&mut c, b).unwrap();
        assert!(!access.iter().any(|a| a.grantee == Grantee::Member(bernd)));
        assert!(access.iter().any(|a| a.grantee == Grantee::Member(carla)));
        assert!(
            access
                .iter()
                .any(|a| a.grantee == Grantee::Role("mfa".into()))
        );
        // Open board pages are told, and he is in no audience.
        assert_eq!(events.len(), 2);
        assert!(events.iter().all(|e| !e.audience.contains(&bernd.0)));
        assert!(events.iter().all(|e| e.audience.contains(&carla.0)));
        // Enabled again, he reads the board through his role only, and told twice,
        // tasks changes nothing more.
        diesel::update(members::table.find(bernd.0))
            .set(members::deactivated_at.eq(None::<i64>))
            .execute(&mut c)
            .unwrap();
        assert_eq!(
            boards::permission(&mut c, b, bernd).unwrap(),
            Some(Permission::View)
        );
        let (again, events) = members_left(&mut c, &[bernd], 3_000).unwrap();
        assert_eq!((again, events.len()), (Cleared::default(), 0));
    }
}
