//! Index tests on a real (temporary) `platform.sqlite` and a real on-disk index.

use diesel::SqliteConnection;
use diesel::prelude::*;

use super::index::{Change, ChatIndex};
use super::queue;
use crate::PLATFORM_DB;
use crate::chat::messages;
use crate::chat::rooms::{self, Visibility};
use crate::chat::search::{SearchText, hits, readable_rooms};
use crate::chat::{Actor, MessageId};
use crate::members::{self, Claims, MemberId};
use crate::schema::{messages as messages_t, reactions, rooms as rooms_t, search_queue};

fn db() -> (tempfile::TempDir, SqliteConnection) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("platform.sqlite");
    let mut conn = kollegium_tenants::db::open_connection(&path).unwrap();
    kollegium_tenants::db::migrate(&mut conn, &PLATFORM_DB, &path).unwrap();
    (dir, conn)
}

fn member(conn: &mut SqliteConnection, username: &str) -> MemberId {
    let c = Claims {
        sub: format!("sub-{username}"),
        preferred_username: username.into(),
        name: format!("{username} Name"),
        ..Claims::default()
    };
    members::upsert(conn, &c, 1_000).unwrap().id
}

fn index(dir: &tempfile::TempDir) -> ChatIndex {
    ChatIndex::open(&dir.path().join("index").join("chat"), true)
        .unwrap()
        .unwrap()
}

/// What the worker does per round, without a `Tenant`.
fn drain(conn: &mut SqliteConnection, idx: &ChatIndex) -> usize {
    let batch = queue::next_batch(conn, 500).unwrap();
    idx.apply(&batch).unwrap();
    queue::ack(conn, &batch).unwrap();
    batch.len()
}

fn post(c: &mut SqliteConnection, room: crate::chat::RoomId, who: MemberId, body: &str) -> i64 {
    let r = rooms::by_id(c, room).unwrap().unwrap();
    messages::post(c, &r, who, body, None, 2_000).unwrap().0.id
}

fn find(c: &mut SqliteConnection, idx: &ChatIndex, me: MemberId, q: &str) -> Vec<i64> {
    let allowed = readable_rooms(c, me).unwrap();
    let text = SearchText::parse(q).unwrap().unwrap();
    hits(c, idx, &allowed, me, &text, 3_000)
        .unwrap()
        .into_iter()
        .map(|h| h.id.0)
        .collect()
}

fn queued(c: &mut SqliteConnection) -> Vec<i64> {
    search_queue::table
        .select(search_queue::message_id)
        .order(search_queue::message_id)
        .load(c)
        .unwrap()
}

#[test]
fn finds_only_in_readable_rooms_and_folds_case_and_umlauts() {
    let (d, mut c) = db();
    let idx = index(&d);
    let (a, b, x) = (
        member(&mut c, "anna"),
        member(&mut c, "bernd"),
        member(&mut c, "xaver"),
    );
    let private =
        rooms::create_group(&mut c, a, "Labor", "", Visibility::Private, &[b], 1_000).unwrap();
    let open = rooms::create_group(&mut c, a, "Team", "", Visibility::Open, &[], 1_000).unwrap();
    let secret = post(&mut c, private, a, "Laborbefund von Frau Müller ist da");
    let public = post(
        &mut c,
        open,
        a,
        "Die Ärztin kommt um 9 Uhr, Befund Müller folgt",
    );
    assert_eq!(drain(&mut c, &idx), 2);
    assert!(queued(&mut c).is_empty());
    assert_eq!(idx.num_docs().unwrap(), 2);

    // Members of the private room find both; others only the open room's message.
    let mut both = find(&mut c, &idx, b, "müller");
    both.sort();
    assert_eq!(both, vec![secret, public]);
    assert_eq!(find(&mut c, &idx, x, "MULLER"), vec![public]);
    assert_eq!(find(&mut c, &idx, x, "laborbefund"), Vec::<i64>::new());
    // Case and umlauts are folded; every word must match.
    assert_eq!(find(&mut c, &idx, x, "ARZTIN"), vec![public]);
    assert_eq!(find(&mut c, &idx, a, "ärztin befund"), vec![public]);
    assert!(find(&mut c, &idx, a, "ärztin labor").is_empty());
}

#[test]
fn edits_and_deletes_reach_the_index_and_stale_hits_are_dropped() {
    let (d, mut c) = db();
    let idx = index(&d);
    let a = member(&mut c, "anna");
    let room = rooms::create_group(&mut c, a, "Team", "", Visibility::Open, &[], 1_000).unwrap();
    let id = post(&mut c, room, a, "Bitte Rezept für Herrn Schulz");
    drain(&mut c, &idx);
    assert_eq!(find(&mut c, &idx, a, "rezept"), vec![id]);

    let msg = messages::by_id(&mut c, MessageId(id)).unwrap().unwrap();
    let me = Actor {
        id: a,
        is_admin: false,
    };
    let r = rooms::by_id(&mut c, room).unwrap().unwrap();
    messages::edit(
        &mut c,
        &r,
        &msg,
        me,
        "Bitte Überweisung für Herrn Schulz",
        900,
        2_010,
    )
    .unwrap();
    drain(&mut c, &idx);
    assert!(find(&mut c, &idx, a, "rezept").is_empty());
    assert_eq!(find(&mut c, &idx, a, "uberweisung"), vec![id]);

    // Deleted, queue not yet processed: the database check already hides it.
    let msg = messages::by_id(&mut c, MessageId(id)).unwrap().unwrap();
    messages::delete(&mut c, &msg, me, 900, 2_020).unwrap();
    assert!(find(&mut c, &idx, a, "schulz").is_empty());
    drain(&mut c, &idx);
    assert_eq!(idx.num_docs().unwrap(), 0);
}

#[test]
fn a_change_made_while_indexing_keeps_its_queue_row() {
    let (d, mut c) = db();
    let idx = index(&d);
    let a = member(&mut c, "anna");
    let room = rooms::create_group(&mut c, a, "Team", "", Visibility::Open, &[], 1_000).unwrap();
    let id = post(&mut c, room, a, "erste Fassung");
    let batch = queue::next_batch(&mut c, 500).unwrap();
    // The author edits between the worker's read and its acknowledgement.
    let msg = messages::by_id(&mut c, MessageId(id)).unwrap().unwrap();
    let me = Actor {
        id: a,
        is_admin: false,
    };
    let r = rooms::by_id(&mut c, room).unwrap().unwrap();
    messages::edit(&mut c, &r, &msg, me, "zweite Fassung", 900, 2_000).unwrap();
    idx.apply(&batch).unwrap();
    assert_eq!(queue::ack(&mut c, &batch).unwrap(), 0);
    assert_eq!(queued(&mut c), vec![id]);
    drain(&mut c, &idx);
    assert!(queued(&mut c).is_empty());
    assert_eq!(find(&mut c, &idx, a, "zweite"), vec![id]);
    assert!(find(&mut c, &idx, a, "erste").is_empty());
}

#[test]
fn snippets_escape_everything_but_the_marks_and_odd_queries_are_words() {
    let (d, mut c) = db();
    let idx = index(&d);
    let a = member(&mut c, "anna");
    let room = rooms::create_group(&mut c, a, "Team", "", Visibility::Open, &[], 1_000).unwrap();
    post(
        &mut c,
        room,
        a,
        "<script>alert(1)</script> Befund & \"Termin\" <img src=x onerror=alert(2)>",
    );
    drain(&mut c, &idx);
    let allowed = readable_rooms(&mut c, a).unwrap();
    let text = SearchText::parse("befund").unwrap().unwrap();
    let h = hits(&mut c, &idx, &allowed, a, &text, 3_000).unwrap();
    assert_eq!(h.len(), 1);
    let s = &h[0].snippet_html;
    assert!(s.contains("<mark>Befund</mark>"), "{s}");
    assert!(
        s.contains("&lt;script&gt;") && !s.contains("<script"),
        "{s}"
    );
    assert!(
        !s.contains("<img") && s.contains("&amp;") && s.contains("&quot;"),
        "{s}"
    );
    assert_eq!(s.matches('<').count(), s.matches("<mark>").count() * 2);

    for q in [
        "\"befund",
        "befund AND (",
        "body:befund",
        "[1 TO",
        "*",
        "befund~2",
        "-befund",
        "+++",
        "\\",
        "ä ö ü ß",
    ] {
        let text = SearchText::parse(q).unwrap().unwrap();
        assert!(hits(&mut c, &idx, &allowed, a, &text, 3_000).is_ok(), "{q}");
    }
    assert_eq!(
        find(&mut c, &idx, a, "body:befund AND ("),
        Vec::<i64>::new()
    );
    assert_eq!(find(&mut c, &idx, a, "\"Befund\" (termin"), vec![1]);
    assert!(SearchText::parse(&"x".repeat(201)).is_err());
    assert_eq!(SearchText::parse("   ").unwrap(), None);
}

#[test]
fn retention_purges_old_messages_with_their_traces() {
    let (d, mut c) = db();
    let idx = index(&d);
    let a = member(&mut c, "anna");
    let room = rooms::create_group(&mut c, a, "Team", "", Visibility::Open, &[], 1_000).unwrap();
    let r = rooms::by_id(&mut c, room).unwrap().unwrap();
    let old = messages::post(&mut c, &r, a, "alte Nachricht", None, 10_000)
        .unwrap()
        .0;
    let reply = messages::post(
        &mut c,
        &r,
        a,
        "neue Antwort",
        Some(old.message_id()),
        10_000_000,
    )
    .unwrap()
    .0;
    messages::react(&mut c, &old, a, "👍", true, 10_001).unwrap();
    drain(&mut c, &idx);
    assert_eq!(idx.num_docs().unwrap(), 2);

    // No setting: nothing happens.
    assert_eq!(
        crate::chat::retention::purge(&mut c, 20_000_000).unwrap(),
        0
    );
    crate::chat::retention::set_months(&mut c, 1).unwrap();
    assert_eq!(
        crate::chat::retention::purge(&mut c, 12_000_000).unwrap(),
        1
    );
    assert!(messages::by_id(&mut c, old.message_id()).unwrap().is_none());
    let left: i64 = reactions::table.count().get_result(&mut c).unwrap();
    assert_eq!(left, 0);
    let reply_to: Option<i64> = messages_t::table
        .find(reply.id)
        .select(messages_t::reply_to)
        .first(&mut c)
        .unwrap();
    assert_eq!(reply_to, None);
    let last: Option<i64> = rooms_t::table
        .find(room.0)
        .select(rooms_t::last_message_id)
        .first(&mut c)
        .unwrap();
    assert_eq!(last, Some(reply.id));
    assert_eq!(queued(&mut c), vec![old.id]);
    drain(&mut c, &idx);
    assert_eq!(idx.num_docs().unwrap(), 1);
    assert!(find(&mut c, &idx, a, "alte").is_empty());

    // Everything old: the room has no last message any more.
    assert_eq!(
        crate::chat::retention::purge(&mut c, 10_000_000 + 40 * 86_400).unwrap(),
        1
    );
    let last: Option<i64> = rooms_t::table
        .find(room.0)
        .select(rooms_t::last_message_id)
        .first(&mut c)
        .unwrap();
    assert_eq!(last, None);
}

#[test]
fn separate_directories_are_separate_indexes() {
    let (d1, mut c1) = db();
    let (d2, mut c2) = db();
    let (i1, i2) = (index(&d1), index(&d2));
    let a = member(&mut c1, "anna");
    let o = member(&mut c2, "olga");
    let r1 = rooms::create_group(&mut c1, a, "Team", "", Visibility::Open, &[], 1_000).unwrap();
    let r2 = rooms::create_group(&mut c2, o, "Team", "", Visibility::Open, &[], 1_000).unwrap();
    post(&mut c1, r1, a, "Geheimnis der Praxis A");
    post(&mut c2, r2, o, "Alltag in Praxis B");
    drain(&mut c1, &i1);
    drain(&mut c2, &i2);
    // Same room and message ids in both practices, yet B's index knows nothing of A.
    assert!(find(&mut c2, &i2, o, "geheimnis").is_empty());
    assert_eq!(find(&mut c1, &i1, a, "geheimnis").len(), 1);
    assert!(matches!(
        queue::next_batch(&mut c1, 10).unwrap().first(),
        None | Some(Change::Put(_))
    ));
}

#[test]
fn long_messages_get_a_fragment_with_ellipses() {
    let (d, mut c) = db();
    let idx = index(&d);
    let a = member(&mut c, "anna");
    let room = rooms::create_group(&mut c, a, "Team", "", Visibility::Open, &[], 1_000).unwrap();
    let body = format!(
        "{} Kernspintomographie <b>{}",
        "Wort ".repeat(60),
        "Ende ".repeat(60)
    );
    post(&mut c, room, a, &body);
    drain(&mut c, &idx);
    let allowed = readable_rooms(&mut c, a).unwrap();
    let text = SearchText::parse("kernspintomographie").unwrap().unwrap();
    let h = hits(&mut c, &idx, &allowed, a, &text, 3_000).unwrap();
    let s = &h[0].snippet_html;
    assert!(s.starts_with('…') && s.ends_with('…'), "{s}");
    assert!(
        s.contains("Wort  <mark>Kernspintomographie</mark> &lt;b&gt;Ende Ende"),
        "{s}"
    );
    assert!(s.starts_with("…Wort ") && s.ends_with("Ende Ende…"), "{s}");
    assert!(s.chars().count() < 200, "{s}");
    // Without a match in the text (the index is behind an edit): the start.
    let found = idx.search("wort", &allowed, 5, 3_000).unwrap();
    let s = found.snippet_html("Ganz anderer Text ohne Treffer");
    assert_eq!(s, "Ganz anderer Text ohne Treffer");
}
