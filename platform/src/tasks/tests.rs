//! Domain tests of tasks on a real (temporary) `platform.sqlite`.

use diesel::prelude::*;

use super::boards::{self, Access, Grantee};
use super::cards::{self, CardChange, NewCard};
use super::{BoardId, CardId, ColumnId, Permission, TaskError, board_view, columns, details};
use crate::PLATFORM_DB;
use crate::members::{self, Claims, MemberId};
use crate::schema::{task_card_events, task_cards};

pub(super) fn db() -> (tempfile::TempDir, SqliteConnection) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("platform.sqlite");
    let mut conn = kollegium_tenants::db::open_connection(&path).unwrap();
    kollegium_tenants::db::migrate(&mut conn, &PLATFORM_DB, &path).unwrap();
    (dir, conn)
}

pub(super) fn member(
    conn: &mut SqliteConnection,
    username: &str,
    roles: &[&str],
    admin: bool,
) -> MemberId {
    let c = Claims {
        sub: format!("sub-{username}"),
        preferred_username: username.into(),
        name: format!("{username} Name"),
        roles: roles.iter().map(|r| r.to_string()).collect(),
        is_admin: admin,
        ..Claims::default()
    };
    members::upsert(conn, &c, 1_000).unwrap().id
}

pub(super) fn board(conn: &mut SqliteConnection, owner: MemberId, access: &[Access]) -> BoardId {
    boards::create_board(
        conn,
        owner,
        "Praxis",
        "",
        boards::DEFAULT_COLUMNS,
        access,
        1_000,
    )
    .unwrap()
}

pub(super) fn cols(conn: &mut SqliteConnection, b: BoardId) -> Vec<ColumnId> {
    columns::of_board(conn, b)
        .unwrap()
        .into_iter()
        .map(|c| ColumnId(c.id))
        .collect()
}

pub(super) fn card(conn: &mut SqliteConnection, b: BoardId, col: ColumnId, title: &str) -> CardId {
    let new = NewCard {
        title: title.into(),
        ..NewCard::default()
    };
    cards::create_card(conn, b, Some(col), None, &new, 1_000).unwrap()
}

/// (column, position) of every live card, checked dense per column.
fn assert_dense(conn: &mut SqliteConnection, b: BoardId) {
    for col in cols(conn, b) {
        let mut pos: Vec<i64> = task_cards::table
            .filter(task_cards::column_id.eq(col.0))
            .filter(task_cards::archived_at.is_null())
            .select(task_cards::position)
            .load(conn)
            .unwrap();
        pos.sort_unstable();
        assert_eq!(
            pos,
            (0..pos.len() as i64).collect::<Vec<_>>(),
            "column {col:?}"
        );
    }
}

fn order(conn: &mut SqliteConnection, col: ColumnId) -> Vec<i64> {
    task_cards::table
        .filter(task_cards::column_id.eq(col.0))
        .filter(task_cards::archived_at.is_null())
        .order(task_cards::position)
        .select(task_cards::id)
        .load(conn)
        .unwrap()
}

#[test]
fn permission_is_the_highest_matching_row_and_admins_manage_everything() {
    let (_d, mut c) = db();
    let owner = member(&mut c, "olga", &[], false);
    let mfa = member(&mut c, "mia", &["mfa"], false);
    let doc = member(&mut c, "dora", &["arzt"], false);
    let admin = member(&mut c, "ines", &[], true);
    let b = board(
        &mut c,
        owner,
        &[
            Access::new(Grantee::Role("mfa".into()), Permission::View),
            Access::new(Grantee::Member(mfa), Permission::Edit),
        ],
    );
    let p = |c: &mut SqliteConnection, m| boards::permission(c, b, m).unwrap();
    assert_eq!(p(&mut c, owner), Some(Permission::Manage));
    assert_eq!(p(&mut c, mfa), Some(Permission::Edit));
    assert_eq!(
        p(&mut c, doc),
        None,
        "no row matches: the board does not exist for her"
    );
    assert_eq!(p(&mut c, admin), Some(Permission::Manage));
    assert_eq!(
        boards::permission(&mut c, BoardId(999), admin).unwrap(),
        None
    );
    assert!(matches!(
        boards::readable(&mut c, b, doc),
        Err(TaskError::BoardNotFound)
    ));
    let mut readers = boards::readers(&mut c, b).unwrap();
    readers.sort();
    assert_eq!(readers, vec![owner, mfa, admin]);
    // Whole practice, view: everyone reads, only the owner edits.
    boards::share(
        &mut c,
        b,
        owner,
        &[Access::new(Grantee::Practice, Permission::View)],
        1_001,
    )
    .unwrap();
    assert_eq!(p(&mut c, doc), Some(Permission::View));
    assert_eq!(p(&mut c, mfa), Some(Permission::View));
    let col = cols(&mut c, b)[0];
    let new = NewCard {
        title: "x".into(),
        ..NewCard::default()
    };
    let id = cards::create_card(&mut c, b, Some(col), Some(owner), &new, 1_002).unwrap();
    assert!(matches!(
        cards::update_card(&mut c, id, doc, &CardChange::default(), 1_003),
        Err(TaskError::ReadOnly)
    ));
    // A member who may not read the board gets "card not found", not "forbidden".
    boards::share(&mut c, b, owner, &[], 1_004).unwrap();
    assert!(matches!(
        cards::move_card(&mut c, id, doc, col, 0, 1_005),
        Err(TaskError::CardNotFound)
    ));
    assert!(matches!(
        cards::readable(&mut c, id, doc),
        Err(TaskError::CardNotFound)
    ));
}

#[test]
fn moves_keep_positions_dense_and_clamp_out_of_range_positions() {
    let (_d, mut c) = db();
    let owner = member(&mut c, "olga", &[], false);
    let b = board(&mut c, owner, &[]);
    let [open, doing, done] = cols(&mut c, b)[..] else {
        panic!("three columns")
    };
    let ids: Vec<CardId> = (0..5)
        .map(|i| card(&mut c, b, open, &format!("Karte {i}")))
        .collect();
    // Within the column: the last to the top.
    let m = cards::move_card(&mut c, ids[4], owner, open, 0, 1_010).unwrap();
    assert_eq!(m.position, 0);
    assert_eq!(
        order(&mut c, open),
        vec![ids[4].0, ids[0].0, ids[1].0, ids[2].0, ids[3].0]
    );
    // A huge position lands at the end, a negative one at the top.
    let m = cards::move_card(&mut c, ids[0], owner, doing, i64::MAX, 1_011).unwrap();
    assert_eq!((m.to_column, m.position), (doing.0, 0));
    let m = cards::move_card(&mut c, ids[1], owner, doing, 1_000_000, 1_012).unwrap();
    assert_eq!(m.position, 1);
    let m = cards::move_card(&mut c, ids[2], owner, doing, -7, 1_013).unwrap();
    assert_eq!(m.position, 0);
    assert_eq!(order(&mut c, doing), vec![ids[2].0, ids[0].0, ids[1].0]);
    assert_dense(&mut c, b);
    // Into the "done" column: done; out again: open.
    cards::move_card(&mut c, ids[2], owner, done, 0, 1_014).unwrap();
    assert!(
        cards::by_id(&mut c, ids[2])
            .unwrap()
            .unwrap()
            .done_at
            .is_some()
    );
    cards::move_card(&mut c, ids[2], owner, open, 99, 1_015).unwrap();
    assert!(
        cards::by_id(&mut c, ids[2])
            .unwrap()
            .unwrap()
            .done_at
            .is_none()
    );
    // Archive takes it out of the order; restore puts it at the end.
    cards::set_archived(&mut c, ids[4], owner, true, 1_016).unwrap();
    assert_dense(&mut c, b);
    assert!(!order(&mut c, open).contains(&ids[4].0));
    cards::set_archived(&mut c, ids[4], owner, false, 1_017).unwrap();
    assert_eq!(order(&mut c, open).last(), Some(&ids[4].0));
    assert_dense(&mut c, b);
    let moves: i64 = task_card_events::table
        .filter(task_card_events::what.eq("moved"))
        .count()
        .get_result(&mut c)
        .unwrap();
    assert_eq!(moves, 5, "a history row for every move between columns");
}

#[test]
fn a_card_cannot_move_into_another_boards_column() {
    let (_d, mut c) = db();
    let owner = member(&mut c, "olga", &[], false);
    let (b1, b2) = (board(&mut c, owner, &[]), board(&mut c, owner, &[]));
    let col1 = cols(&mut c, b1)[0];
    let id = card(&mut c, b1, col1, "Karte");
    let foreign = cols(&mut c, b2)[0];
    assert!(matches!(
        cards::move_card(&mut c, id, owner, foreign, 0, 1_010),
        Err(TaskError::OtherBoard)
    ));
    let new = NewCard {
        title: "x".into(),
        ..NewCard::default()
    };
    assert!(matches!(
        cards::create_card(&mut c, b1, Some(foreign), None, &new, 1_010),
        Err(TaskError::OtherBoard)
    ));
    assert_eq!(
        cards::by_id(&mut c, id).unwrap().unwrap().board_id,
        b1.0,
        "nothing moved"
    );
}

#[test]
fn columns_are_deleted_only_when_empty_and_reorder_densely() {
    let (_d, mut c) = db();
    let owner = member(&mut c, "olga", &[], false);
    let b = board(&mut c, owner, &[]);
    let [open, doing, done] = cols(&mut c, b)[..] else {
        panic!("three columns")
    };
    let id = card(&mut c, b, doing, "Karte");
    assert!(matches!(
        columns::delete(&mut c, doing, owner),
        Err(TaskError::ColumnNotEmpty)
    ));
    cards::set_archived(&mut c, id, owner, true, 1_010).unwrap();
    assert!(
        matches!(
            columns::delete(&mut c, doing, owner),
            Err(TaskError::ColumnNotEmpty)
        ),
        "archived cards count"
    );
    columns::delete(&mut c, open, owner).unwrap();
    columns::reorder(&mut c, done, owner, 0).unwrap();
    let got: Vec<(i64, i64)> = columns::of_board(&mut c, b)
        .unwrap()
        .into_iter()
        .map(|x| (x.id, x.position))
        .collect();
    assert_eq!(got, vec![(done.0, 0), (doing.0, 1)]);
}

#[test]
fn edits_checklists_and_comments_write_history() {
    let (_d, mut c) = db();
    let owner = member(&mut c, "olga", &[], false);
    let mia = member(&mut c, "mia", &[], false);
    let stranger = member(&mut c, "xaver", &[], false);
    let b = board(
        &mut c,
        owner,
        &[Access::new(Grantee::Member(mia), Permission::Edit)],
    );
    let col0 = cols(&mut c, b)[0];
    let id = card(&mut c, b, col0, "Karte");
    let change = CardChange {
        title: Some("Neuer Titel".into()),
        description: Some("**fett**".into()),
        due: Some(Some((2_000, true))),
    };
    cards::update_card(&mut c, id, owner, &change, 1_010).unwrap();
    cards::set_assignees(&mut c, id, owner, &[mia], 1_011).unwrap();
    assert!(cards::set_assignees(&mut c, id, owner, &[MemberId(999)], 1_011).is_err());
    details::add_items(&mut c, id, Some(owner), "Eins\n\nZwei\nDrei", 1_012).unwrap();
    let items = details::checklist(&mut c, id).unwrap();
    assert_eq!(items.len(), 3);
    details::tick_item(&mut c, id, mia, items[1].id, true, 1_013).unwrap();
    let sent = details::add_comment(&mut c, id, owner, "Bitte @mia und @xaver", 1_014).unwrap();
    assert_eq!(
        sent.mentioned,
        vec![mia],
        "only readers of the board are mentioned"
    );
    let _ = stranger;
    let what: Vec<String> = task_card_events::table
        .filter(task_card_events::card_id.eq(id.0))
        .order(task_card_events::id)
        .select(task_card_events::what)
        .load(&mut c)
        .unwrap();
    assert_eq!(
        what,
        [
            "created",
            "title",
            "description",
            "due",
            "assigned",
            "checklist",
            "checklist",
            "comment"
        ]
    );
    let view = board_view::load(&mut c, b, mia).unwrap();
    let tile = &view.columns[0].cards[0];
    assert_eq!(tile.checklist, (1, 3));
    assert_eq!(tile.assignees, vec![(mia.0, "mia Name".to_owned())]);
    assert_eq!(tile.comments, 1);
    // 500 checklist items: refused beyond the limit, nothing half-written.
    let many = (0..500)
        .map(|i| format!("Punkt {i}"))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(matches!(
        details::add_items(&mut c, id, Some(owner), &many, 1_015),
        Err(TaskError::TooMany)
    ));
    assert_eq!(details::checklist(&mut c, id).unwrap().len(), 3);
}

/// Counts the statements a connection runs.
#[derive(Clone, Default)]
struct Counter(std::sync::Arc<std::sync::atomic::AtomicUsize>);

impl diesel::connection::Instrumentation for Counter {
    fn on_connection_event(&mut self, event: diesel::connection::InstrumentationEvent<'_>) {
        if let diesel::connection::InstrumentationEvent::StartQuery { .. } = event {
            self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

#[test]
fn a_board_renders_with_the_same_number_of_queries_for_10_and_200_cards() {
    let (_d, mut c) = db();
    let owner = member(&mut c, "olga", &[], false);
    let mia = member(&mut c, "mia", &[], false);
    let count_for = |c: &mut SqliteConnection, n: usize| {
        let b = board(
            c,
            owner,
            &[Access::new(Grantee::Practice, Permission::Edit)],
        );
        let label = details::add_label(c, b, owner, "Dringend", "rot").unwrap();
        let col = cols(c, b)[0];
        for i in 0..n {
            let new = NewCard {
                title: format!("Karte {i}"),
                assignees: vec![owner, mia],
                labels: vec![label],
                ..NewCard::default()
            };
            let id = cards::create_card(c, b, Some(col), None, &new, 1_000).unwrap();
            details::add_items(c, id, None, "a\nb", 1_000).unwrap();
            details::add_comment(c, id, owner, "Kommentar", 1_000).unwrap();
        }
        let counter = Counter::default();
        c.set_instrumentation(counter.clone());
        let view = board_view::load(c, b, mia).unwrap();
        c.set_instrumentation(Counter::default());
        assert_eq!(view.columns[0].cards.len(), n);
        assert!(view.columns[0].cards.iter().all(|t| t.checklist == (0, 2)
            && t.labels.len() == 1
            && t.assignees.len() == 2
            && t.comments == 1));
        counter.0.load(std::sync::atomic::Ordering::Relaxed)
    };
    let small = count_for(&mut c, 10);
    let large = count_for(&mut c, 200);
    assert_eq!(small, large, "queries do not grow with the cards");
    assert!(small <= 15, "{small} queries");
}

#[test]
fn the_export_holds_boards_cards_and_their_details() {
    let (_d, mut c) = db();
    let owner = member(&mut c, "olga", &[], false);
    let b = board(
        &mut c,
        owner,
        &[Access::new(Grantee::Practice, Permission::View)],
    );
    let col = cols(&mut c, b)[0];
    let id = card(&mut c, b, col, "Rezeptblock bestellen");
    details::add_items(&mut c, id, Some(owner), "Formular 16", 1_010).unwrap();
    details::add_comment(&mut c, id, owner, "Ist unterwegs", 1_011).unwrap();
    let out = super::export::export(&mut c).unwrap();
    let json = out.json.to_string();
    for text in [
        "Rezeptblock bestellen",
        "Formular 16",
        "Ist unterwegs",
        "Praxis",
    ] {
        assert!(json.contains(text), "{text}");
        assert!(out.readable.contains(text), "{text}");
    }
}

#[test]
fn my_cards_are_grouped_by_day_in_the_practice_zone() {
    let (_d, mut c) = db();
    let me = member(&mut c, "olga", &[], false);
    let b = board(&mut c, me, &[]);
    let zone = kollegium_tenants::time::Zone::default_zone();
    let at = |d: &str, t: &str| super::time::parse_due(&zone, d, t).unwrap();
    let now = at("2026-12-09", "10:00").unwrap().0;
    let col = cols(&mut c, b)[0];
    for (title, due) in [
        ("gestern", at("2026-12-08", "")),
        ("heute frueh", at("2026-12-09", "08:00")),
        ("heute abend", at("2026-12-09", "20:00")),
        ("heute ganztags", at("2026-12-09", "")),
        ("sonntag", at("2026-12-13", "23:00")),
        ("montag", at("2026-12-14", "")),
        ("ohne", None),
    ] {
        let new = NewCard {
            title: title.into(),
            due,
            assignees: vec![me],
            ..NewCard::default()
        };
        cards::create_card(&mut c, b, Some(col), None, &new, 1_000).unwrap();
    }
    let g = super::mine::group(super::mine::assigned(&mut c, me).unwrap(), &zone, now);
    let titles = |v: &[super::mine::Mine]| v.iter().map(|m| m.title.clone()).collect::<Vec<_>>();
    assert_eq!(titles(&g.overdue), ["gestern", "heute frueh"]);
    assert_eq!(titles(&g.today), ["heute ganztags", "heute abend"]);
    assert_eq!(titles(&g.week), ["sonntag"]);
    assert_eq!(titles(&g.later), ["montag", "ohne"]);
    assert_eq!(super::mine::counts(&mut c, me, now).unwrap(), (7, 2));
}
