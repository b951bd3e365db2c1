//! Domain tests of the chat on a real (temporary) `platform.sqlite`.

use diesel::SqliteConnection;

use super::messages::{self, mention_tokens};
use super::rooms::{self, Visibility};
use super::{Actor, ChatError, MessageId, RoomId};
use crate::PLATFORM_DB;
use crate::members::{self, MemberId};

use crate::test_support::{db, member};

fn actor(id: MemberId) -> Actor {
    Actor {
        id,
        is_admin: false,
    }
}

#[test]
fn private_rooms_are_invisible_to_non_members() {
    let (_d, mut c) = db();
    let (a, b, x) = (
        member(&mut c, "anna"),
        member(&mut c, "bernd"),
        member(&mut c, "xaver"),
    );
    let room =
        rooms::create_group(&mut c, a, "Labor", "", Visibility::Private, &[b], 1_000).unwrap();
    assert!(rooms::readable(&mut c, room, b, 1_001).is_ok());
    assert!(matches!(
        rooms::readable(&mut c, room, x, 1_001),
        Err(ChatError::RoomNotFound)
    ));
    assert!(matches!(
        rooms::readable(&mut c, RoomId(999), a, 1_001),
        Err(ChatError::RoomNotFound)
    ));
    assert!(
        rooms::list_for(&mut c, x)
            .unwrap()
            .iter()
            .all(|s| s.id != room)
    );
    // Open rooms are for everyone.
    let open =
        rooms::create_group(&mut c, a, "Team", "Alles", Visibility::Open, &[], 1_000).unwrap();
    assert!(rooms::readable(&mut c, open, x, 1_002).is_ok());
    assert!(
        rooms::list_for(&mut c, x)
            .unwrap()
            .iter()
            .any(|s| s.id == open)
    );
}

#[test]
fn posting_counts_unread_and_mentions_and_receipts() {
    let (_d, mut c) = db();
    let (a, b) = (member(&mut c, "anna"), member(&mut c, "bernd"));
    let room_id =
        rooms::create_group(&mut c, a, "Empfang", "", Visibility::Private, &[b], 1_000).unwrap();
    let room = rooms::by_id(&mut c, room_id).unwrap().unwrap();
    let (m1, notify) = messages::post(
        &mut c,
        &room,
        a,
        "Hallo @bernd, kannst du **heute**?",
        None,
        1_010,
    )
    .unwrap();
    assert_eq!(notify, vec![b]);
    messages::post(&mut c, &room, a, "Noch etwas", None, 1_011).unwrap();
    let list = rooms::list_for(&mut c, b).unwrap();
    let s = list.iter().find(|s| s.id == room_id).unwrap();
    assert_eq!((s.unread, s.mentions), (2, 1));
    assert_eq!(
        rooms::list_for(&mut c, a).unwrap()[0].unread,
        0,
        "own messages are read"
    );
    assert!(messages::read_by(&mut c, &m1).unwrap().is_empty());
    rooms::mark_read(&mut c, room_id, b, m1.message_id()).unwrap();
    assert_eq!(
        messages::read_by(&mut c, &m1).unwrap(),
        vec!["bernd Name".to_owned()]
    );
    members::set_preferences(&mut c, b, false, true, 900).unwrap();
    assert!(
        messages::read_by(&mut c, &m1).unwrap().is_empty(),
        "receipts can be switched off"
    );
    let page = messages::page(&mut c, room_id, None).unwrap();
    let views = messages::views(&mut c, &page, b).unwrap();
    assert!(
        views[0]
            .html
            .contains("<span class=\"mention\">@bernd</span>")
    );
    assert!(views[0].mentions_me && !views[1].mentions_me);
    // `@alle` mentions everyone but its author, on the page as live.
    messages::post(&mut c, &room, a, "Teamrunde @alle", None, 1_020).unwrap();
    let page = messages::page(&mut c, room_id, None).unwrap();
    let mut last = |who| messages::views(&mut c, &page, who).unwrap().pop().unwrap();
    assert!(last(b).mentions_me);
    assert!(
        !last(a).mentions_me,
        "the author is not mentioned by her own @alle"
    );
}

#[test]
fn edit_and_delete_rules() {
    let (_d, mut c) = db();
    let (a, b) = (member(&mut c, "anna"), member(&mut c, "bernd"));
    let room_id = rooms::create_group(&mut c, a, "Team", "", Visibility::Open, &[], 1_000).unwrap();
    let room = rooms::by_id(&mut c, room_id).unwrap().unwrap();
    let (m, _) = messages::post(&mut c, &room, a, "Erste Fassung", None, 1_000).unwrap();
    assert!(matches!(
        messages::edit(&mut c, &room, &m, actor(b), "fremd", 600, 1_010),
        Err(ChatError::NotAuthor)
    ));
    assert!(matches!(
        messages::edit(&mut c, &room, &m, actor(a), "zu spät", 600, 1_700),
        Err(ChatError::WindowClosed)
    ));
    let e = messages::edit(&mut c, &room, &m, actor(a), "Zweite Fassung", 600, 1_100).unwrap();
    assert_eq!(e.body, "Zweite Fassung");
    assert!(matches!(
        messages::delete(&mut c, &e, actor(b), 600, 1_100),
        Err(ChatError::NotAuthor)
    ));
    messages::delete(
        &mut c,
        &e,
        Actor {
            id: b,
            is_admin: true,
        },
        600,
        5_000,
    )
    .unwrap();
    let gone = messages::by_id(&mut c, MessageId(e.id)).unwrap().unwrap();
    assert!(gone.deleted_at.is_some() && gone.body.is_empty());
}

#[test]
fn bad_input_is_refused() {
    let (_d, mut c) = db();
    let (a, b) = (member(&mut c, "anna"), member(&mut c, "bernd"));
    let r1 = rooms::create_group(&mut c, a, "Eins", "", Visibility::Open, &[], 1_000).unwrap();
    let r2 = rooms::create_group(&mut c, a, "Zwei", "", Visibility::Open, &[], 1_000).unwrap();
    let room1 = rooms::by_id(&mut c, r1).unwrap().unwrap();
    let room2 = rooms::by_id(&mut c, r2).unwrap().unwrap();
    assert!(matches!(
        messages::post(&mut c, &room1, a, "  \n ", None, 1),
        Err(ChatError::Empty)
    ));
    assert!(matches!(
        messages::post(&mut c, &room1, a, &"x".repeat(10_001), None, 1),
        Err(ChatError::TooLong)
    ));
    assert!(messages::post(&mut c, &room1, a, &"ü".repeat(10_000), None, 1).is_ok());
    let (m, _) = messages::post(&mut c, &room1, a, "hier", None, 1).unwrap();
    assert!(matches!(
        messages::post(&mut c, &room2, a, "dort", Some(m.message_id()), 1),
        Err(ChatError::ReplyElsewhere)
    ));
    assert!(matches!(
        messages::react(&mut c, &m, b, "🦄", true, 1),
        Err(ChatError::UnknownReaction)
    ));
    messages::react(&mut c, &m, b, "👍", true, 1).unwrap();
    messages::react(&mut c, &m, b, "👍", true, 1).unwrap();
    let v = messages::views(&mut c, std::slice::from_ref(&m), b).unwrap();
    assert_eq!(v[0].reactions, vec![("👍".to_owned(), 1, true)]);
    assert!(rooms::create_group(&mut c, a, "", "", Visibility::Open, &[], 1).is_err());
    assert!(rooms::create_group(&mut c, a, &"r".repeat(81), "", Visibility::Open, &[], 1).is_err());
    assert!(rooms::direct(&mut c, a, a, 1).is_err());
    assert!(rooms::direct(&mut c, a, MemberId(4242), 1).is_err());
    let d1 = rooms::direct(&mut c, a, b, 1).unwrap();
    assert_eq!(
        rooms::direct(&mut c, b, a, 2).unwrap(),
        d1,
        "one 1:1 room per pair"
    );
}

#[test]
fn mention_tokens_find_names_and_everyone() {
    assert_eq!(
        mention_tokens("@Anna und @bernd.k. sowie @alle"),
        (vec!["anna".into(), "bernd.k".into()], true)
    );
    assert_eq!(mention_tokens("a@b.de"), (vec![], false));
}

#[test]
fn an_archived_room_is_read_only_but_admins_may_still_delete() {
    use super::actions::{self, MessageAction};
    let (_d, mut c) = db();
    let (a, b) = (member(&mut c, "anna"), member(&mut c, "bernd"));
    let id = rooms::create_group(&mut c, a, "Team", "", Visibility::Open, &[], 1_000).unwrap();
    let room = rooms::readable(&mut c, id, a, 1_001).unwrap();
    let (m1, _) = messages::post(&mut c, &room, b, "eins", None, 1_002).unwrap();
    let (m2, _) = messages::post(&mut c, &room, b, "zwei", None, 1_003).unwrap();
    rooms::update(&mut c, &room, actor(a), "Team", "", true, 1_004).unwrap();
    let on = |c: &mut SqliteConnection, m: MessageId, who: Actor, act: MessageAction<'_>| {
        actions::on_message(c, id, m, who, act, 600, 1_005).map(|_| ())
    };
    for act in [
        MessageAction::Edit("geändert"),
        MessageAction::Delete,
        MessageAction::React {
            emoji: "👍",
            on: true,
        },
    ] {
        assert!(matches!(
            on(&mut c, m1.message_id(), actor(b), act),
            Err(ChatError::Archived)
        ));
    }
    let admin = Actor {
        id: a,
        is_admin: true,
    };
    assert!(matches!(
        on(&mut c, m1.message_id(), admin, MessageAction::Edit("x")),
        Err(ChatError::Archived)
    ));
    on(&mut c, m2.message_id(), admin, MessageAction::Delete).unwrap();
    let gone = messages::by_id(&mut c, m2.message_id()).unwrap().unwrap();
    assert!(gone.deleted_at.is_some());
    let kept = messages::by_id(&mut c, m1.message_id()).unwrap().unwrap();
    assert_eq!(kept.body, "eins");
}

#[test]
fn an_edit_resolves_mentions_anew() {
    use crate::schema::mention_notices;
    use diesel::prelude::*;
    let (_d, mut c) = db();
    let (a, b, x) = (
        member(&mut c, "anna"),
        member(&mut c, "bernd"),
        member(&mut c, "xaver"),
    );
    let id = rooms::create_group(&mut c, a, "Team", "", Visibility::Open, &[], 1_000).unwrap();
    let room = rooms::by_id(&mut c, id).unwrap().unwrap();
    let (m, notify) = messages::post(&mut c, &room, a, "Hallo @bernd", None, 1_010).unwrap();
    assert_eq!(notify, vec![b]);
    let pending = |c: &mut SqliteConnection| -> Vec<(i64, Option<i64>)> {
        mention_notices::table
            .filter(mention_notices::message_id.eq(m.id))
            .order(mention_notices::id)
            .select((mention_notices::member_id, mention_notices::done_at))
            .load(c)
            .unwrap()
    };
    assert_eq!(pending(&mut c), vec![(b.0, None)]);
    // bernd out, xaver in: xaver gets the badge and a notice, bernd's notice is cancelled.
    let e = messages::edit(&mut c, &room, &m, actor(a), "Hallo @xaver", 600, 1_020).unwrap();
    assert_eq!(e.mentioned(), vec![x]);
    assert_eq!(pending(&mut c), vec![(b.0, Some(1_020)), (x.0, None)]);
    let page = messages::page(&mut c, id, None).unwrap();
    assert!(messages::views(&mut c, &page, x).unwrap()[0].mentions_me);
    assert!(!messages::views(&mut c, &page, b).unwrap()[0].mentions_me);
    // Editing again without changing who is named queues nothing new.
    messages::edit(&mut c, &room, &e, actor(a), "Hallo @xaver!", 600, 1_030).unwrap();
    assert_eq!(pending(&mut c).len(), 2);
}

/// Which SQL a connection ran, and which it prepared into its statement cache.
#[derive(Clone, Default)]
struct Recorder {
    ran: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    cached: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl diesel::connection::Instrumentation for Recorder {
    fn on_connection_event(&mut self, event: diesel::connection::InstrumentationEvent<'_>) {
        use diesel::connection::InstrumentationEvent as E;
        match event {
            E::StartQuery { query, .. } => self.ran.lock().unwrap().push(query.to_string()),
            E::CacheQuery { sql, .. } => self.cached.lock().unwrap().push(sql.to_owned()),
            _ => {}
        }
    }
}

#[test]
fn a_post_prepares_its_writes_once_per_connection() {
    use diesel::Connection;
    let (_d, mut c) = db();
    let (a, b) = (member(&mut c, "anna"), member(&mut c, "bernd"));
    let room_id =
        rooms::create_group(&mut c, a, "Empfang", "", Visibility::Private, &[b], 1_000).unwrap();
    let room = rooms::by_id(&mut c, room_id).unwrap().unwrap();
    let rec = Recorder::default();
    c.set_instrumentation(rec.clone());
    // As the group-commit writer runs them: inside a transaction, so each post's own write
    // transaction is a savepoint.
    c.immediate_transaction(|c| {
        for i in 0..3 {
            messages::post(c, &room, a, &format!("Nachricht {i}"), None, 1_010 + i).unwrap();
        }
        diesel::QueryResult::Ok(())
    })
    .unwrap();
    let count = |v: &std::sync::Mutex<Vec<String>>, prefix: &str| {
        v.lock()
            .unwrap()
            .iter()
            .filter(|s| s.starts_with(prefix))
            .count()
    };
    for prefix in [
        "UPDATE rooms",
        "UPDATE room_members",
        "INSERT INTO jobs (kind, key, payload, priority, run_after, created_at) VALUES ('search'",
        "SAVEPOINT kollegium_job",
        "RELEASE kollegium_job",
    ] {
        assert_eq!(count(&rec.ran, prefix), 3, "{prefix} runs with every post");
        assert_eq!(count(&rec.cached, prefix), 1, "{prefix} is prepared once");
    }
    assert_eq!(
        count(&rec.ran, "SAVEPOINT diesel"),
        0,
        "no savepoint as text"
    );
    // The writes took effect.
    let s = rooms::list_for(&mut c, b).unwrap();
    assert_eq!(s.iter().find(|s| s.id == room_id).unwrap().unread, 3);
    assert!(crate::search::queue::pending(&mut c).unwrap());
}

#[test]
fn the_edit_window_is_an_error_when_the_settings_cannot_be_read() {
    use super::routes::{DEFAULT_EDIT_WINDOW_SECS, edit_window};
    use diesel::connection::SimpleConnection;
    let (_d, mut c) = db();
    assert_eq!(edit_window(&mut c).unwrap(), DEFAULT_EDIT_WINDOW_SECS);
    kollegium_tenants::kv::set(&mut c, super::admin::EDIT_WINDOW_KEY, "60").unwrap();
    assert_eq!(edit_window(&mut c).unwrap(), 60);
    c.batch_execute("ALTER TABLE settings RENAME TO settings_gone")
        .unwrap();
    assert!(
        edit_window(&mut c).is_err(),
        "a database error is not the default window"
    );
}

/// The migration that turns stored mentions into integers, on a row written the old way
/// (member ids as JSON strings).
#[test]
fn mentions_written_as_strings_become_integers() {
    use diesel::connection::SimpleConnection;
    use diesel::migration::{Migration, MigrationConnection, MigrationSource};
    use diesel::prelude::*;
    use diesel::sqlite::Sqlite;
    use diesel_migrations::MigrationHarness;

    const NEW: &str = "2026-12-21-000001_mentions_as_integers";
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("platform.sqlite");
    let mut c = kollegium_tenants::db::open_connection(&path).unwrap();
    c.setup().unwrap();
    let all = MigrationSource::<Sqlite>::migrations(&PLATFORM_DB.migrations).unwrap();
    let (before, from_new): (Vec<_>, Vec<_>) = all
        .into_iter()
        .partition(|m| m.name().to_string().as_str() < NEW);
    assert!(
        from_new[0].name().to_string() == NEW,
        "{}",
        from_new[0].name()
    );
    for m in &before {
        c.run_migration(m.as_ref()).unwrap();
    }
    let (a, b, x) = (
        member(&mut c, "anna"),
        member(&mut c, "bernd"),
        member(&mut c, "xaver"),
    );
    // The schema of then: written as SQL (today's room functions know later columns).
    let room = RoomId(1);
    c.batch_execute(
        "INSERT INTO rooms (id, kind, name, topic, visibility, archived, created_at, updated_at) \
         VALUES (1, 'group', 'Labor', '', 'open', 0, 1000, 1000)",
    )
    .unwrap();
    c.batch_execute(&format!(
        "INSERT INTO messages (id, room_id, author_id, body, mentions, mentions_all, created_at) \
         VALUES (901, {r}, {a}, '@bernd @xaver', '[\"{x}\",\"{b}\"]', 0, 1001), \
                (902, {r}, {a}, 'ohne', '[]', 0, 1002)",
        r = room.0,
        a = a.0,
        b = b.0,
        x = x.0,
    ))
    .unwrap();
    for m in &from_new {
        c.run_migration(m.as_ref()).unwrap();
    }
    let stored: Vec<(i64, String)> = crate::schema::messages::table
        .select((
            crate::schema::messages::id,
            crate::schema::messages::mentions,
        ))
        .order(crate::schema::messages::id)
        .load(&mut c)
        .unwrap();
    assert_eq!(
        stored,
        vec![(901, format!("[{},{}]", x.0, b.0)), (902, "[]".to_owned())]
    );
    assert_eq!(messages::parse_mentions(&stored[0].1), vec![x, b]);
    // Read back as the room list counts them: bernd is mentioned once.
    let s = rooms::list_for(&mut c, b).unwrap();
    let labor = s.iter().find(|s| s.id == room).unwrap();
    assert_eq!(labor.mentions, 1);
}

#[test]
fn mentions_are_stored_as_a_json_list_of_integers() {
    let ids = [MemberId(3), MemberId(12)];
    assert_eq!(messages::store_mentions(&ids), "[3,12]");
    assert_eq!(messages::store_mentions(&[]), "[]");
    assert_eq!(messages::parse_mentions("[3,12]"), ids.to_vec());
    assert_eq!(messages::parse_mentions("kaputt"), Vec::<MemberId>::new());
}

#[test]
fn the_export_holds_every_room_with_members_and_messages_as_json_and_text() {
    let (_d, mut c) = db();
    let (a, b) = (member(&mut c, "anna"), member(&mut c, "bernd"));
    let team = rooms::create_group(
        &mut c,
        a,
        "Team",
        "Dienstplan",
        Visibility::Open,
        &[b],
        1_000,
    )
    .unwrap();
    let labor =
        rooms::create_group(&mut c, a, "Labor", "", Visibility::Private, &[], 1_000).unwrap();
    let team_room = rooms::readable(&mut c, team, a, 1_001).unwrap();
    messages::post(
        &mut c,
        &team_room,
        a,
        "Guten **Morgen**",
        None,
        1_795_000_000,
    )
    .unwrap();
    let (gone, _) =
        messages::post(&mut c, &team_room, b, "Geheimnis", None, 1_795_000_060).unwrap();
    messages::delete(&mut c, &gone, actor(b), 900, 1_795_000_100).unwrap();
    let labor_room = rooms::readable(&mut c, labor, a, 1_001).unwrap();
    messages::post(
        &mut c,
        &labor_room,
        a,
        "Proben sind da",
        None,
        1_795_000_200,
    )
    .unwrap();

    let shared = crate::app::AppContext::new(
        std::sync::Arc::new(kollegium_tenants::clock::ManualClock::new(1_795_000_300)),
        std::sync::Arc::new(kollegium_tenants::jobs::JobSignal::new()),
    );
    let part = crate::app::export(crate::app::apps(), &shared, &mut c)
        .unwrap()
        .into_iter()
        .find(|p| p.app == "chat")
        .unwrap();
    let rooms_json = part.json["rooms"].as_array().unwrap();
    assert_eq!(rooms_json.len(), 2);
    let t = &rooms_json[0];
    assert_eq!(
        (t["name"].as_str(), t["topic"].as_str()),
        (Some("Team"), Some("Dienstplan"))
    );
    assert_eq!(t["members"], serde_json::json!(["anna Name", "bernd Name"]));
    let msgs = t["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 2);
    assert_eq!(msgs[0]["author"], "anna Name");
    assert_eq!(msgs[0]["body"], "Guten **Morgen**");
    assert_eq!(msgs[0]["created_at"], 1_795_000_000);
    assert_eq!(msgs[1]["deleted"], true);
    assert_eq!(
        msgs[1]["body"], "",
        "a deleted message's text is not exported"
    );
    assert_eq!(rooms_json[1]["messages"][0]["body"], "Proben sind da");

    let text = &part.readable;
    assert!(
        text.contains("## Team\nThema: Dienstplan\nMitglieder: anna Name, bernd Name\n"),
        "{text}"
    );
    assert!(
        text.contains("[2026-11-18 11:06 UTC] anna Name: Guten **Morgen**\n"),
        "{text}"
    );
    assert!(
        text.contains("bernd Name: (gelöscht)\n") && !text.contains("Geheimnis"),
        "{text}"
    );
    assert!(text.contains("## Labor\n"), "{text}");
    assert!(text.contains("anna Name: Proben sind da\n"), "{text}");
}

#[test]
fn avatars_show_initials_without_titles() {
    use super::routes::initials;
    assert_eq!(initials("Dr. Ines Inhaber"), "II");
    assert_eq!(initials("anna Test"), "AT");
    assert_eq!(initials("Prof. Dr. med. Özlem Yılmaz-Berg"), "ÖY");
    assert_eq!(initials("mfa"), "M");
    assert_eq!(initials("  "), "?");
}

#[test]
fn reactions_read_in_words() {
    use super::{reaction_label, reaction_name, reaction_names_attr};
    assert_eq!(reaction_name("👍"), "Daumen hoch");
    assert_eq!(reaction_name("🦄"), "🦄");
    assert_eq!(
        reaction_label("👍", 2, true),
        "Daumen hoch, 2 Reaktionen, auch von Ihnen"
    );
    assert_eq!(
        reaction_label("👍", 1, true),
        "Daumen hoch, 1 Reaktion, von Ihnen"
    );
    assert_eq!(reaction_label("❤️", 3, false), "Herz, 3 Reaktionen");
    assert!(reaction_names_attr().starts_with("👍=Daumen hoch;❤️=Herz;"));
}
