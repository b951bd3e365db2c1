//! The node's checks, one refusal at a time, and its read API.

use super::*;
use crate::broadcast::entry::tests::message;
use crate::broadcast::entry::{MessagePayload, RetractionPayload};
use crate::broadcast::key::OperatorKey;

struct Fixture {
    _dir: tempfile::TempDir,
    key: OperatorKey,
    feed: NodeFeed,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let key = OperatorKey::generate();
    let feed = NodeFeed::open(dir.path(), key.public()).unwrap();
    Fixture {
        _dir: dir,
        key,
        feed,
    }
}

fn json(e: &Entry) -> serde_json::Value {
    serde_json::to_value(e).unwrap()
}

fn signed(key: &OperatorKey, p: &Payload) -> serde_json::Value {
    json(&Entry::sign(key, p).unwrap())
}

fn id_of(p: &Payload) -> MessageId {
    match &p.item {
        Item::Message(m) => m.id.clone(),
        Item::Retraction(r) => r.retracts.clone(),
    }
}

fn retraction(seq: i64, of: &MessageId) -> Payload {
    Payload {
        seq,
        item: Item::Retraction(RetractionPayload {
            retracts: of.clone(),
            published_at: 1_800_000_500,
        }),
    }
}

impl Fixture {
    /// Offers one entry to the node and returns the refusal's text, asserting that nothing
    /// was stored and that the refusal is in the log.
    fn refused(&self, value: serde_json::Value) -> String {
        let before = self.feed.all().unwrap();
        let last = self.feed.last_seq();
        let done = self.feed.accept(vec![value], 1_000).unwrap();
        assert_eq!(done.stored, 0);
        let (_, why) = done.refused.expect("refused");
        assert_eq!(self.feed.all().unwrap(), before, "nothing stored");
        assert_eq!(self.feed.last_seq(), last);
        let log = self.feed.refusals().unwrap();
        assert!(
            log.iter().any(|r| r.reason == why.to_string()),
            "{why} recorded"
        );
        why.to_string()
    }
}

#[test]
fn verified_entries_are_stored_and_signalled() {
    let f = fixture();
    let mut changes = f.feed.changes();
    let a = message(1, Audience::default());
    let b = message(2, Audience::default());
    let done = f
        .feed
        .accept(vec![signed(&f.key, &a), signed(&f.key, &b)], 1_000)
        .unwrap();
    assert_eq!(
        done,
        Accepted {
            stored: 2,
            refused: None
        }
    );
    assert_eq!(f.feed.last_seq(), 2);
    assert!(changes.has_changed().unwrap());
    assert_eq!(*changes.borrow_and_update(), 2);
    let stored = f.feed.get(id_of(&a).as_str()).unwrap().unwrap();
    assert_eq!(stored.title, "Abrechnungstipp");
    assert_eq!(stored.seq, 1);
    assert!(f.feed.get("0123").unwrap().is_none());
    assert!(f.feed.refusals().unwrap().is_empty());
}

#[test]
fn a_bad_signature_is_refused() {
    let f = fixture();
    let mut e = Entry::sign(&f.key, &message(1, Audience::default())).unwrap();
    e.sig = Entry::sign(&f.key, &message(1, Audience::default()))
        .unwrap()
        .sig;
    assert!(f.refused(json(&e)).starts_with("bad signature"));
}

#[test]
fn an_entry_signed_by_another_key_is_refused() {
    let f = fixture();
    let other = OperatorKey::generate();
    let why = f.refused(signed(&other, &message(1, Audience::default())));
    assert!(why.starts_with("bad signature"), "{why}");
}

#[test]
fn a_replayed_entry_is_refused() {
    let f = fixture();
    let first = signed(&f.key, &message(1, Audience::default()));
    f.feed.accept(vec![first.clone()], 1_000).unwrap();
    let why = f.refused(first);
    assert!(why.starts_with("replayed entry: seq 1"), "{why}");
    // A fresh, validly signed entry that claims an old seq is a replay too.
    let why = f.refused(signed(&f.key, &message(1, Audience::default())));
    assert!(why.starts_with("replayed"), "{why}");
}

#[test]
fn gaps_and_reordered_entries_are_refused() {
    let f = fixture();
    let why = f.refused(signed(&f.key, &message(2, Audience::default())));
    assert_eq!(why, "out of order: seq 2 where 1 was expected");
    // Two good entries served the wrong way round: the first one offered stops the batch.
    let one = signed(&f.key, &message(1, Audience::default()));
    let two = signed(&f.key, &message(2, Audience::default()));
    let done = f.feed.accept(vec![two, one.clone()], 1_000).unwrap();
    assert_eq!(done.stored, 0);
    // Served in order they are fine; the outer seq cannot be renumbered either.
    let mut three = Entry::sign(&f.key, &message(3, Audience::default())).unwrap();
    three.seq = 2;
    let done = f.feed.accept(vec![one, json(&three)], 1_000).unwrap();
    assert_eq!(done.stored, 1);
    assert_eq!(
        done.refused.unwrap().1,
        Refusal::SeqMismatch {
            entry: 2,
            payload: 3
        }
    );
}

#[test]
fn an_audience_altered_after_signing_is_refused() {
    let f = fixture();
    let mut e = Entry::sign(
        &f.key,
        &message(
            1,
            Audience {
                roles: vec!["abrechnung".into()],
                ..Audience::default()
            },
        ),
    )
    .unwrap();
    e.payload = e.payload.replace("abrechnung", "mfa");
    assert!(f.refused(json(&e)).starts_with("bad signature"));
}

#[test]
fn an_unknown_catalogue_id_is_refused() {
    let f = fixture();
    let why = f.refused(signed(
        &f.key,
        &message(
            1,
            Audience {
                kv_regions: vec!["kv-mond".into()],
                ..Audience::default()
            },
        ),
    ));
    assert!(why.contains("unknown kv_region id \"kv-mond\""), "{why}");
}

#[test]
fn an_oversized_body_is_refused() {
    let f = fixture();
    let mut p = message(1, Audience::default());
    if let Item::Message(MessagePayload { body, .. }) = &mut p.item {
        *body = "ä".repeat(MAX_BODY_BYTES_HALF + 1);
    }
    let why = f.refused(signed(&f.key, &p));
    assert!(why.contains("bytes; at most 20000"), "{why}");
}

const MAX_BODY_BYTES_HALF: usize = crate::broadcast::entry::MAX_BODY_BYTES / 2;

#[test]
fn malformed_json_is_refused() {
    let f = fixture();
    let why = f.refused(json(&Entry::sign_text(&f.key, 1, "{\"seq\":1,".into())));
    assert!(why.starts_with("malformed payload"), "{why}");
    let why = f.refused(serde_json::json!({"seq": 1, "payload": 5}));
    assert!(why.starts_with("malformed entry"), "{why}");
}

#[test]
fn a_retraction_must_name_a_known_message() {
    let f = fixture();
    let why = f.refused(signed(&f.key, &retraction(1, &MessageId::random())));
    assert!(why.starts_with("retraction of unknown message"), "{why}");
    // A message id used twice is refused as well.
    let m = message(1, Audience::default());
    f.feed.accept(vec![signed(&f.key, &m)], 1_000).unwrap();
    let mut again = message(2, Audience::default());
    if let Item::Message(x) = &mut again.item {
        x.id = id_of(&m);
    }
    assert!(
        f.refused(signed(&f.key, &again))
            .contains("was used before")
    );
}

#[test]
fn a_refusal_is_recorded_once_per_seq_and_reason() {
    let f = fixture();
    let other = OperatorKey::generate();
    let bad = signed(&other, &message(1, Audience::default()));
    for _ in 0..3 {
        f.feed.accept(vec![bad.clone()], 1_000).unwrap();
    }
    let log = f.feed.refusals().unwrap();
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!((log[0].seq, log[0].at), (1, 1_000));
    assert!(!f.feed.refuse(1, &Refusal::BadSignature, 2_000).unwrap());
    assert!(f.feed.refuse(1, &Refusal::Oversized, 2_000).unwrap());
}

#[test]
fn withdrawn_and_expired_messages_leave_the_active_list() {
    let f = fixture();
    let mut pinned_old = message(1, Audience::default());
    let mut expiring = message(2, Audience::default());
    let newest = message(3, Audience::default());
    if let Item::Message(m) = &mut pinned_old.item {
        m.pinned = true;
        m.published_at -= 100;
    }
    if let Item::Message(m) = &mut expiring.item {
        m.valid_until = Some(5_000);
        m.published_at += 5;
    }
    let entries = [&pinned_old, &expiring, &newest]
        .iter()
        .map(|p| signed(&f.key, p))
        .collect();
    assert_eq!(f.feed.accept(entries, 1_000).unwrap().stored, 3);
    let ids = |v: Vec<Message>| v.into_iter().map(|m| m.id).collect::<Vec<_>>();
    // Pinned first, then the newest.
    assert_eq!(
        ids(f.feed.active(4_999).unwrap()),
        [id_of(&pinned_old), id_of(&expiring), id_of(&newest)]
    );
    assert_eq!(
        ids(f.feed.active(5_000).unwrap()),
        [id_of(&pinned_old), id_of(&newest)]
    );
    let done = f
        .feed
        .accept(vec![signed(&f.key, &retraction(4, &id_of(&newest)))], 6_000)
        .unwrap();
    assert_eq!(done.stored, 1);
    assert_eq!(ids(f.feed.active(6_000).unwrap()), [id_of(&pinned_old)]);
    let gone = f.feed.get(id_of(&newest).as_str()).unwrap().unwrap();
    assert_eq!(gone.withdrawn_at, Some(1_800_000_500));
    assert!(!gone.is_active(0));
    assert_eq!(f.feed.all().unwrap().len(), 3);
}

#[test]
fn the_stored_state_survives_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let key = OperatorKey::generate();
    let feed = NodeFeed::open(dir.path(), key.public()).unwrap();
    feed.accept(vec![signed(&key, &message(1, Audience::default()))], 1)
        .unwrap();
    drop(feed);
    let again = NodeFeed::open(dir.path(), key.public()).unwrap();
    assert_eq!(again.last_seq(), 1);
    assert_eq!(again.active(1).unwrap().len(), 1);
}

#[test]
fn the_active_messages_are_read_once_until_the_feed_changes_or_one_expires() {
    let f = fixture();
    let mut expiring = message(1, Audience::default());
    if let Item::Message(m) = &mut expiring.item {
        m.valid_until = Some(5_000);
    }
    let lasting = message(2, Audience::default());
    f.feed
        .accept(
            vec![signed(&f.key, &expiring), signed(&f.key, &lasting)],
            1_000,
        )
        .unwrap();
    let ids = |v: Vec<Message>| v.into_iter().map(|m| m.id).collect::<Vec<_>>();
    let both = ids(f.feed.active(1_000).unwrap());
    assert_eq!(both.len(), 2);
    let reads = f.feed.active_reads();
    // Many page loads, one read: later times before the expiry, single lookups too.
    for now in [1_000, 1_001, 4_999] {
        assert_eq!(ids(f.feed.active(now).unwrap()), both);
    }
    assert!(
        f.feed
            .active_one(id_of(&lasting).as_str(), 2_000)
            .unwrap()
            .is_some()
    );
    assert_eq!(f.feed.active_reads(), reads, "answered from memory");

    // The expiry passes: read again, the expired message is gone.
    assert_eq!(ids(f.feed.active(5_000).unwrap()), [id_of(&lasting)]);
    assert_eq!(f.feed.active_reads(), reads + 1);
    assert!(
        f.feed
            .active_one(id_of(&expiring).as_str(), 5_000)
            .unwrap()
            .is_none()
    );
    assert_eq!(f.feed.active_reads(), reads + 1);

    // A retraction arrives (the watched seq changes): read again, the message is gone.
    let changes = f.feed.changes();
    f.feed
        .accept(
            vec![signed(&f.key, &retraction(3, &id_of(&lasting)))],
            5_001,
        )
        .unwrap();
    assert!(changes.has_changed().unwrap());
    assert!(f.feed.active(5_001).unwrap().is_empty());
    assert_eq!(f.feed.active_reads(), reads + 2);

    // A clock moved back is not answered from a snapshot read later.
    let fresh = message(4, Audience::default());
    f.feed.accept(vec![signed(&f.key, &fresh)], 5_002).unwrap();
    assert_eq!(ids(f.feed.active(5_002).unwrap()), [id_of(&fresh)]);
    assert_eq!(
        ids(f.feed.active(4_000).unwrap()),
        [id_of(&fresh), id_of(&expiring)],
        "before its expiry the expiring one shows again"
    );
}
