//! Index tests on a real (temporary) `platform.sqlite` and a real on-disk index.

use diesel::SqliteConnection;
use diesel::prelude::*;

use std::sync::Arc;
use std::time::Duration;

use super::index::{Change, Indexes, Scope, SearchIndex};
use super::{SearchError, queue};
use crate::chat::messages;
use crate::chat::rooms::{self, Visibility};
use crate::chat::search::{KIND, SearchText, hits, readable_rooms, room_key};
use crate::chat::{Actor, MessageId};
use crate::members::MemberId;
use crate::schema::{jobs, messages as messages_t, reactions, rooms as rooms_t};

use crate::test_support::{db, member};

fn index(dir: &tempfile::TempDir) -> SearchIndex {
    SearchIndex::open(&dir.path().join("index").join("search"), true)
        .unwrap()
        .unwrap()
}

/// What the worker does per round, without a `Tenant`.
fn drain(conn: &mut SqliteConnection, idx: &SearchIndex) -> usize {
    let batch = queue::next_batch(conn, 500).unwrap();
    idx.apply(&batch).unwrap();
    queue::ack(conn, &batch).unwrap();
    batch.len()
}

fn post(c: &mut SqliteConnection, room: crate::chat::RoomId, who: MemberId, body: &str) -> i64 {
    let r = rooms::by_id(c, room).unwrap().unwrap();
    messages::post(c, &r, who, body, None, 2_000).unwrap().0.id
}

fn find(c: &mut SqliteConnection, idx: &SearchIndex, me: MemberId, q: &str) -> Vec<i64> {
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
    let keys: Vec<_> = allowed.iter().map(|r| room_key(*r)).collect();
    let scope = Scope {
        kind: KIND,
        keys: &keys,
    };
    let found = idx.search("wort", &[scope], 5, 3_000).unwrap();
    let s = found.snippet_html("Ganz anderer Text ohne Treffer");
    assert_eq!(s, "Ganz anderer Text ohne Treffer");
}

fn search_dir(dir: &tempfile::TempDir) -> std::path::PathBuf {
    dir.path().join("index").join("search")
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
    let reader = SearchIndex::open(&search_dir(&d), false).unwrap().unwrap();
    assert_eq!(find(&mut c, &reader, a, "beta"), vec![ids[1]]);
    assert_eq!(reader.writers_opened(), 0);
    assert!(!reader.has_writer());
    // Reopening the index after the writer closed shows everything committed.
    drop(idx);
    drop(reader);
    let again = SearchIndex::open(&search_dir(&d), false).unwrap().unwrap();
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
    let dir = search_dir(&d);
    let indexes = Indexes::new(1);
    let a = member(&mut c, "anna");
    let room = rooms::create_group(&mut c, a, "Team", "", Visibility::Open, &[], 1_000).unwrap();
    let write = |c: &mut SqliteConnection, word: &str| -> Arc<SearchIndex> {
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
    assert!(indexes.get(&search_dir(&other), true).unwrap().is_some());
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

/// An index as the version before the one search wrote it: chat's own schema, one
/// document that is not in the database.
fn legacy_index(dir: &std::path::Path, room: i64, body: &str) {
    use tantivy::doc;
    use tantivy::schema::{
        FAST, INDEXED, IndexRecordOption, Schema, TextFieldIndexing, TextOptions,
    };
    let mut b = Schema::builder();
    let id = b.add_u64_field("id", INDEXED | FAST);
    let room_f = b.add_u64_field("room", INDEXED | FAST);
    let author = b.add_u64_field("author", INDEXED | FAST);
    let body_f = b.add_text_field(
        "body",
        TextOptions::default().set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer(super::index::TOKENIZER)
                .set_index_option(IndexRecordOption::WithFreqsAndPositions),
        ),
    );
    let created = b.add_i64_field("created_at", INDEXED | FAST);
    std::fs::create_dir_all(dir).unwrap();
    let index = tantivy::Index::create_in_dir(dir, b.build()).unwrap();
    index
        .tokenizers()
        .register(super::index::TOKENIZER, super::index::analyzer());
    let mut w: tantivy::IndexWriter = index.writer(15_000_000).unwrap();
    w.add_document(doc!(
        id => 999u64,
        room_f => room as u64,
        author => 1u64,
        body_f => body,
        created => 2_000i64,
    ))
    .unwrap();
    w.commit().unwrap();
}

#[test]
fn an_index_of_an_earlier_version_is_rebuilt_from_the_database() {
    use super::index::{OnDisk, exists, on_disk};
    let (d, mut c) = db();
    let a = member(&mut c, "anna");
    let room = rooms::create_group(&mut c, a, "Team", "", Visibility::Open, &[], 1_000).unwrap();
    let kept = post(&mut c, room, a, "Befund aus der Datenbank");
    // The old place (`index/chat/`) and an index of the old schema in the new place.
    let old_place = d.path().join("index").join("chat");
    let dir = search_dir(&d);
    legacy_index(&old_place, room.0, "Phantom Befund im alten Index");
    legacy_index(&dir, room.0, "Phantom Befund im alten Index");
    assert_eq!(on_disk(&dir).unwrap(), OnDisk::Stale);
    assert!(!exists(&dir));
    assert_eq!(
        on_disk(&d.path().join("index").join("nothing")).unwrap(),
        OnDisk::Missing
    );
    // Searching neither uses nor trips over it.
    assert!(SearchIndex::open(&dir, false).unwrap().is_none());
    let indexes = Indexes::new(4);
    assert!(indexes.get(&dir, false).unwrap().is_none());

    // What the indexer does for an index that is not there: queue everything, create it.
    queue::requeue_all(&mut c, 3_000).unwrap();
    let idx = indexes.get(&dir, true).unwrap().unwrap();
    assert_eq!(on_disk(&dir).unwrap(), OnDisk::Current);
    assert!(exists(&dir));
    assert!(!old_place.exists(), "the old place is removed");
    assert_eq!(idx.num_docs().unwrap(), 0);
    drain(&mut c, &idx);
    assert_eq!(idx.num_docs().unwrap(), 1);
    assert_eq!(find(&mut c, &idx, a, "befund"), vec![kept]);
    assert!(find(&mut c, &idx, a, "phantom").is_empty());

    // A damaged metadata file counts as stale too.
    drop(idx);
    indexes.close_all();
    std::fs::write(dir.join("meta.json"), b"{ not json").unwrap();
    assert_eq!(on_disk(&dir).unwrap(), OnDisk::Stale);
    assert!(SearchIndex::open(&dir, false).unwrap().is_none());
}

#[test]
fn documents_carry_kind_and_key_and_stay_apart_from_other_kinds() {
    use super::doc::{DocRef, PermKey};
    use super::index::Entry;
    let (d, mut c) = db();
    let idx = index(&d);
    let a = member(&mut c, "anna");
    let room = rooms::create_group(&mut c, a, "Team", "", Visibility::Open, &[], 1_000).unwrap();
    let id = post(&mut c, room, a, "Impfstoff bestellen");
    drain(&mut c, &idx);
    // A document of another kind with the same id and words, found by its title too.
    let card = Entry {
        kind: "test-card",
        id,
        key: PermKey::new("board", 1),
        title: "Impfstoff".into(),
        body: "bestellen bis Freitag".into(),
        author: None,
        created_at: 2_000,
    };
    idx.apply(&[Change::Put(card)]).unwrap();
    assert_eq!(idx.num_docs().unwrap(), 2);

    let in_room = vec![room_key(room.0)];
    let board = vec![PermKey::new("board", 1)];
    fn chat(keys: &[PermKey]) -> Scope<'_> {
        Scope { kind: KIND, keys }
    }
    fn cards(keys: &[PermKey]) -> Scope<'_> {
        Scope {
            kind: "test-card",
            keys,
        }
    }
    let search = |scopes: &[Scope<'_>]| {
        idx.search("impfstoff bestellen", scopes, 10, 3_000)
            .unwrap()
            .docs
    };
    assert_eq!(search(&[chat(&in_room)]), vec![DocRef::new(KIND, id)]);
    assert_eq!(search(&[cards(&board)]), vec![DocRef::new("test-card", id)]);
    let mut both = search(&[chat(&in_room), cards(&board)]);
    both.sort();
    assert_eq!(
        both,
        vec![
            DocRef::new("chat-message", id),
            DocRef::new("test-card", id)
        ]
    );
    // A key opens only documents of its own kind, and only with the same key.
    assert!(search(&[cards(&in_room)]).is_empty());
    assert!(search(&[chat(&board)]).is_empty());
    assert!(search(&[chat(&[room_key(room.0 + 1)])]).is_empty());
    assert!(search(&[chat(&[])]).is_empty());
    assert!(search(&[]).is_empty());

    // Removing the message leaves the card with the same id.
    idx.apply(&[Change::Remove(DocRef::new(KIND, id))]).unwrap();
    assert_eq!(idx.num_docs().unwrap(), 1);
    assert_eq!(search(&[cards(&board)]), vec![DocRef::new("test-card", id)]);
    assert!(search(&[chat(&in_room)]).is_empty());
}

#[test]
fn the_chat_source_gives_documents_keys_a_recheck_and_a_rendering() {
    use crate::app::SearchSource;
    use crate::chat::search::MESSAGES;
    let (d, mut c) = db();
    let idx = index(&d);
    let (a, b) = (member(&mut c, "anna"), member(&mut c, "bernd"));
    let private =
        rooms::create_group(&mut c, a, "Labor", "", Visibility::Private, &[b], 1_000).unwrap();
    let id = post(&mut c, private, a, "Laborbefund Meier");

    // (a) the document of an id, nothing for an unknown one.
    let docs = MESSAGES.documents(&mut c, &[id, 999]).unwrap();
    assert_eq!(docs.len(), 1);
    assert_eq!(
        (docs[0].kind, docs[0].id, docs[0].title.as_str()),
        (KIND, id, "")
    );
    assert_eq!(docs[0].key.to_string(), format!("room:{}", private.0));
    assert_eq!(docs[0].body, "Laborbefund Meier");
    drain(&mut c, &idx);

    // (b) the rooms one may read.
    let keys_b = MESSAGES.readable(&mut c, b).unwrap();
    assert!(keys_b.contains(&room_key(private.0)));
    assert_eq!(
        MESSAGES.confirm(&mut c, b, &keys_b, &[id]).unwrap().len(),
        1
    );

    // (c) Bernd leaves the room: the index still holds the message, the re-check drops it.
    let r = rooms::by_id(&mut c, private).unwrap().unwrap();
    let anna = Actor {
        id: a,
        is_admin: false,
    };
    rooms::set_membership(&mut c, &r, anna, b, false, 2_000).unwrap();
    let keys_b = MESSAGES.readable(&mut c, b).unwrap();
    assert!(!keys_b.contains(&room_key(private.0)));
    assert!(
        MESSAGES
            .confirm(&mut c, b, &keys_b, &[id])
            .unwrap()
            .is_empty()
    );
    assert!(find(&mut c, &idx, b, "laborbefund").is_empty());
    let keys_a = MESSAGES.readable(&mut c, a).unwrap();
    let confirmed = MESSAGES.confirm(&mut c, a, &keys_a, &[id, 999]).unwrap();
    assert_eq!(confirmed.len(), 1);
    let hit = confirmed[0].clone();
    assert_eq!(hit.title, "# Labor");
    assert_eq!(hit.link, format!("/chat/{}#m{id}", private.0));
    assert_eq!(hit.author.as_deref(), Some("anna Name"));
    assert_eq!(hit.text, "Laborbefund Meier");

    // (d) rendered with the practice's time: 2,000 s after the epoch is 01:33 in Berlin.
    let zone = kollegium_tenants::time::Zone::parse("Europe/Berlin").unwrap();
    let shown = MESSAGES.render(hit, "<mark>Laborbefund</mark> Meier".into(), &zone);
    assert_eq!((shown.kind, shown.label), (KIND, "Chat"));
    assert_eq!(shown.when, "01.01.1970, 01:33");
    assert_eq!(shown.title, "# Labor");
    assert_eq!(shown.snippet_html, "<mark>Laborbefund</mark> Meier");

    // Deleted, index not yet updated: gone for everyone.
    let msg = messages::by_id(&mut c, MessageId(id)).unwrap().unwrap();
    messages::delete(&mut c, &msg, anna, 900, 2_100).unwrap();
    assert_eq!(idx.num_docs().unwrap(), 1);
    assert!(
        MESSAGES
            .confirm(&mut c, a, &keys_a, &[id])
            .unwrap()
            .is_empty()
    );
    assert!(MESSAGES.documents(&mut c, &[id]).unwrap().is_empty());
}
