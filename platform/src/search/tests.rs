//! Index tests on a real (temporary) `platform.sqlite` and a real on-disk index.

use diesel::SqliteConnection;
use diesel::prelude::*;

use std::sync::Arc;
use std::time::Duration;

use super::index::{Change, ChatIndex, Indexes};
use super::{SearchError, queue};
use crate::PLATFORM_DB;
use crate::chat::messages;
use crate::chat::rooms::{self, Visibility};
use crate::chat::search::{SearchText, hits, readable_rooms};
use crate::chat::{Actor, MessageId};
use crate::members::{self, Claims, MemberId};
use crate::schema::{jobs, messages as messages_t, reactions, rooms as rooms_t};

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
    let keys: Vec<String> = jobs::table
        .filter(jobs::kind.eq(queue::JOB_KIND))
        .select(jobs::key)
        .load(c)
        .unwrap();
    let mut ids: Vec<i64> = keys
        .iter()
        .map(|k| k.strip_prefix("chat-message:").unwrap().parse().unwrap())
        .collect();
    ids.sort();
    ids
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

fn chat_dir(dir: &tempfile::TempDir) -> std::path::PathBuf {
    dir.path().join("index").join("chat")
}

#[test]
fn batches_reuse_one_writer_and_searches_open_none() {
    let (d, mut c) = db();
    let idx = index(&d);
    let a = member(&mut c, "anna");
    let room = rooms::create_group(&mut c, a, "Team", "", Visibility::Open, &[], 1_000).unwrap();
    assert!(!idx.has_writer());
    let mut ids = Vec::new();
    for (n, word) in ["alpha", "beta", "gamma", "delta"].into_iter().enumerate() {
        ids.push(post(&mut c, room, a, &format!("Nachricht {word}")));
        assert_eq!(drain(&mut c, &idx), 1);
        // Searchable right after each batch, the earlier ones still there.
        assert_eq!(idx.num_docs().unwrap(), n as u64 + 1);
        assert_eq!(find(&mut c, &idx, a, word), vec![ids[n]]);
        assert_eq!(find(&mut c, &idx, a, "nachricht").len(), n + 1);
    }
    // Edits and deletes go through the same writer.
    let msg = messages::by_id(&mut c, MessageId(ids[0])).unwrap().unwrap();
    let me = Actor {
        id: a,
        is_admin: false,
    };
    messages::delete(&mut c, &msg, me, 900, 2_020).unwrap();
    drain(&mut c, &idx);
    assert!(find(&mut c, &idx, a, "alpha").is_empty());
    assert_eq!(idx.num_docs().unwrap(), 3);
    assert_eq!(idx.writers_opened(), 1);
    assert!(idx.has_writer());

    // A second handle that only searches (the read path) opens no writer, so it does not
    // compete for the lock.
    let reader = ChatIndex::open(&chat_dir(&d), false).unwrap().unwrap();
    assert_eq!(find(&mut c, &reader, a, "beta"), vec![ids[1]]);
    assert_eq!(reader.writers_opened(), 0);
    assert!(!reader.has_writer());
    // Reopening the index after the writer closed shows everything committed.
    drop(idx);
    drop(reader);
    let again = ChatIndex::open(&chat_dir(&d), false).unwrap().unwrap();
    assert_eq!(again.num_docs().unwrap(), 3);
}

#[test]
fn a_second_writer_for_a_directory_is_a_clear_error_until_the_first_goes() {
    let (d, mut c) = db();
    let first = index(&d);
    let second = index(&d);
    let a = member(&mut c, "anna");
    let room = rooms::create_group(&mut c, a, "Team", "", Visibility::Open, &[], 1_000).unwrap();
    post(&mut c, room, a, "erste Nachricht");
    drain(&mut c, &first);
    let id = post(&mut c, room, a, "zweite Nachricht");
    let batch = queue::next_batch(&mut c, 500).unwrap();
    assert!(matches!(second.apply(&batch), Err(SearchError::WriterBusy)));
    assert_eq!(queued(&mut c), vec![id]);
    first.retire();
    assert!(!first.has_writer());
    drain(&mut c, &second);
    assert_eq!(find(&mut c, &second, a, "zweite"), vec![id]);
}

#[test]
fn evicted_forgotten_or_pushed_out_indexes_let_the_next_handle_write() {
    let (d, mut c) = db();
    let (other, _) = db();
    let dir = chat_dir(&d);
    let indexes = Indexes::new(1);
    let a = member(&mut c, "anna");
    let room = rooms::create_group(&mut c, a, "Team", "", Visibility::Open, &[], 1_000).unwrap();
    let write = |c: &mut SqliteConnection, word: &str| -> Arc<ChatIndex> {
        post(c, room, a, &format!("Wort {word}"));
        let idx = indexes.get(&dir, true).unwrap().unwrap();
        assert_eq!(drain(c, &idx), 1);
        assert!(idx.has_writer());
        idx
    };

    // Idle eviction while a search still holds the old handle.
    let old = write(&mut c, "eins");
    assert_eq!(indexes.evict_idle(Duration::ZERO), 1);
    assert!(!old.has_writer());
    let new = write(&mut c, "zwei");
    assert!(!Arc::ptr_eq(&old, &new));

    // Rebuild: forget.
    indexes.forget(&dir);
    assert!(!new.has_writer());
    let newer = write(&mut c, "drei");

    // Pushed out by the cache cap (another practice's index comes in).
    assert!(indexes.get(&chat_dir(&other), true).unwrap().is_some());
    assert_eq!(indexes.len(), 1);
    assert!(!newer.has_writer());

    // A batch through a handle retired meanwhile (the worker got it just before it was
    // pushed out) still works, and that handle keeps no writer afterwards, so the next
    // handle can write.
    post(&mut c, room, a, "Wort vier");
    assert_eq!(drain(&mut c, &newer), 1);
    assert!(!newer.has_writer());
    let newest = write(&mut c, "fuenf");
    post(&mut c, room, a, "Wort sechs");
    assert_eq!(drain(&mut c, &newest), 1);
    assert_eq!(newest.writers_opened(), 1);
    // Meanwhile a retired handle cannot take the lock: a clear error, nothing written.
    post(&mut c, room, a, "Wort sieben");
    let batch = queue::next_batch(&mut c, 500).unwrap();
    assert!(matches!(old.apply(&batch), Err(SearchError::WriterBusy)));
    assert_eq!(drain(&mut c, &newest), 1);
    for w in ["eins", "zwei", "drei", "vier", "fuenf", "sechs", "sieben"] {
        assert_eq!(find(&mut c, &newest, a, w).len(), 1, "{w}");
    }
    indexes.close_all();
    assert!(indexes.is_empty() && !newest.has_writer());
}

#[test]
fn a_failed_batch_stays_queued_and_the_next_one_starts_with_a_fresh_writer() {
    let (d, mut c) = db();
    let idx = index(&d);
    let a = member(&mut c, "anna");
    let room = rooms::create_group(&mut c, a, "Team", "", Visibility::Open, &[], 1_000).unwrap();
    let first = post(&mut c, room, a, "vor dem Fehler");
    drain(&mut c, &idx);
    let second = post(&mut c, room, a, "beim Fehler");
    let batch = queue::next_batch(&mut c, 500).unwrap();
    idx.fail_next_commit();
    assert!(idx.apply(&batch).is_err());
    // What the worker does: no acknowledgement, so the row stays.
    assert_eq!(queued(&mut c), vec![second]);
    assert!(!idx.has_writer());
    assert_eq!(idx.num_docs().unwrap(), 1);

    let third = post(&mut c, room, a, "nach dem Fehler");
    assert_eq!(drain(&mut c, &idx), 2);
    assert!(queued(&mut c).is_empty());
    assert_eq!(idx.writers_opened(), 2);
    // Nothing of the failed batch came twice.
    assert_eq!(idx.num_docs().unwrap(), 3);
    assert_eq!(find(&mut c, &idx, a, "fehler").len(), 3);
    assert_eq!(find(&mut c, &idx, a, "vor"), vec![first]);
    assert_eq!(find(&mut c, &idx, a, "nach"), vec![third]);
}
