//! Chat rooms seen live: read markers without receipts, room settings and archiving over
//! the API and the socket, and an open room page in Chromium following a rename. Shares
//! the socket helpers of `chat_live`.

use std::time::Duration;

use serde_json::{Value, json};

use crate::apps::chat_api::*;
use crate::harness::TestApp;

use crate::harness::CHAT_PW as PW;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_read_receipts_a_read_marker_reaches_only_the_readers_own_sockets() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    let anna = person(&app, "praxis-a", "anna", false).await;
    let bernd = person(&app, "praxis-a", "bernd", false).await;
    let bernd_id = member_id(&app, &anna, "bernd").await;
    let room = new_room(&app, &anna, "Team", false, &[]).await;
    // Bernd switches read receipts off in his personal settings.
    let r = bernd
        .send_form(
            &app,
            "/chat/settings",
            &[("mention_mail", "on"), ("delay", "900")],
        )
        .await;
    assert_eq!(r.status(), 303);
    let msg = post(&app, &anna, room, "Bitte lesen").await;
    let mut a = member_socket(&app, &anna).await;
    let mut b1 = member_socket(&app, &bernd).await;
    let mut b2 = member_socket(&app, &bernd).await;

    send(
        &mut b1,
        json!({"type": "read", "room": room, "upto": msg["id"]}),
    )
    .await;
    // Bernd's own tabs hear it (their unread badges clear), without his name.
    for s in [&mut b1, &mut b2] {
        let ev = expect(s, "read").await;
        assert_eq!(ev["member"], bernd_id);
        assert_eq!(ev["upto"], msg["id"]);
        assert_eq!(ev["name"], Value::Null);
    }
    assert_eq!(unread(&app, &bernd, room).await, 0);
    // Anna hears nothing of it, neither his id nor how far he read: the next event on her
    // socket is her own next message.
    post(&app, &anna, room, "Danke").await;
    loop {
        let ev = next_event(&mut a, Duration::from_secs(1))
            .await
            .expect("anna's own message arrives");
        assert_ne!(ev["type"], "read", "a read marker leaked: {ev}");
        if ev["type"] == "message" {
            assert_eq!(ev["message"]["body"], "Danke");
            break;
        }
    }
    let id = msg["id"].as_i64().unwrap();
    let (_, by) = anna
        .api(
            &app,
            reqwest::Method::GET,
            &format!("/api/chat/rooms/{room}/messages/{id}/read-by"),
            None,
        )
        .await;
    assert_eq!(by["read_by"], json!([]));

    // With receipts on (anna's default), bernd does see anna's marker with her name.
    let reply = post(&app, &bernd, room, "Gern").await;
    send(
        &mut a,
        json!({"type": "read", "room": room, "upto": reply["id"]}),
    )
    .await;
    let ev = expect(&mut b2, "read").await;
    assert_eq!(ev["name"], "anna Test");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_settings_rename_and_archive_live_and_archived_rooms_refuse_posts() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    let anna = person(&app, "praxis-a", "anna", false).await;
    let bernd = person(&app, "praxis-a", "bernd", false).await;
    let room = new_room(&app, &anna, "Team", false, &[]).await;
    let mut b = member_socket(&app, &bernd).await;
    let settings_path = format!("/chat/{room}/settings");
    let settings = |fields: &'static [(&'static str, &'static str)]| {
        anna.send_form(&app, &settings_path, fields)
    };

    // Rename and set a topic through the room page's settings form.
    let r = settings(&[("name", "Empfang"), ("topic", "Dienstplan & Urlaub")]).await;
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], format!("/chat/{room}"));
    let ev = expect(&mut b, "room").await;
    assert_eq!(ev["room"], room);
    let (s, v) = bernd
        .api(
            &app,
            reqwest::Method::GET,
            &format!("/api/chat/rooms/{room}"),
            None,
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(v["title"], "Empfang");
    assert_eq!(v["topic"], "Dienstplan & Urlaub");
    let html = bernd.page(&app, &format!("/chat/{room}")).await;
    assert!(html.contains("<h1># Empfang</h1>"), "{html}");
    assert!(html.contains("Dienstplan &#38; Urlaub"), "{html}");
    let list = bernd.page(&app, "/chat").await;
    assert!(list.contains("# Empfang") && !list.contains("# Team"));
    // The JSON API renames too.
    let (s, v) = anna
        .api(
            &app,
            reqwest::Method::PATCH,
            &format!("/api/chat/rooms/{room}"),
            Some(json!({"topic": "Nur Dienstplan"})),
        )
        .await;
    assert_eq!(s, 204, "{v}");
    expect(&mut b, "room").await;
    let (_, v) = bernd
        .api(
            &app,
            reqwest::Method::GET,
            &format!("/api/chat/rooms/{room}"),
            None,
        )
        .await;
    assert_eq!(
        (v["title"].as_str(), v["topic"].as_str()),
        (Some("Empfang"), Some("Nur Dienstplan"))
    );

    // Archive: shown as archived, no send form, posting refused clearly on both paths.
    let before = post(&app, &bernd, room, "Vor dem Archiv").await;
    let before_id = before["id"].as_i64().unwrap();
    let r = settings(&[
        ("name", "Empfang"),
        ("topic", "Nur Dienstplan"),
        ("archived", "on"),
    ])
    .await;
    assert_eq!(r.status(), 303);
    expect(&mut b, "room").await;
    let html = bernd.page(&app, &format!("/chat/{room}")).await;
    assert!(html.contains("Dieser Raum ist archiviert."));
    assert!(!html.contains("id=\"composer\""));
    let list = bernd.page(&app, "/chat").await;
    assert!(list.contains("Archiviert"));
    let r = bernd
        .send_form(
            &app,
            &format!("/chat/{room}/messages"),
            &[("body", "Noch jemand da?")],
        )
        .await;
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("Der Raum ist archiviert."));
    let (s, v) = bernd
        .api(
            &app,
            reqwest::Method::POST,
            &format!("/api/chat/rooms/{room}/messages"),
            Some(json!({"body": "Noch jemand da?"})),
        )
        .await;
    assert_eq!(s, 403);
    assert_eq!(v["message"], "Der Raum ist archiviert.");
    let (_, v) = anna
        .api(
            &app,
            reqwest::Method::GET,
            &format!("/api/chat/rooms/{room}/messages"),
            None,
        )
        .await;
    assert!(!v.to_string().contains("Noch jemand da?"));
    // Read-only: no edits, reactions or deletions of one's own message either.
    let msg_path = format!("/api/chat/rooms/{room}/messages/{before_id}");
    let attempts = [
        (
            reqwest::Method::PATCH,
            msg_path.clone(),
            Some(json!({"body": "Geändert"})),
        ),
        (
            reqwest::Method::POST,
            format!("{msg_path}/reactions"),
            Some(json!({"emoji": "👍"})),
        ),
        (reqwest::Method::DELETE, msg_path.clone(), None),
    ];
    for (method, path, body) in attempts {
        let (s, v) = bernd.api(&app, method.clone(), &path, body).await;
        assert_eq!(s, 403, "{method} {path}: {v}");
        assert_eq!(v["message"], "Der Raum ist archiviert.");
    }
    let (_, v) = anna
        .api(
            &app,
            reqwest::Method::GET,
            &format!("/api/chat/rooms/{room}/messages"),
            None,
        )
        .await;
    let text = v.to_string();
    assert!(
        text.contains("Vor dem Archiv") && !text.contains("Geändert"),
        "{text}"
    );
    // Taking it out of the archive allows posting again.
    let (s, _) = anna
        .api(
            &app,
            reqwest::Method::PATCH,
            &format!("/api/chat/rooms/{room}"),
            Some(json!({"archived": false})),
        )
        .await;
    assert_eq!(s, 204);
    post(&app, &bernd, room, "Wieder offen").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_room_page_shows_a_new_name_and_topic_without_reload() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    let anna = person(&app, "praxis-a", "anna", false).await;
    let room = new_room(&app, &anna, "Team", false, &[]).await;
    app.create_user("praxis-a", "bernd", PW, false).await;
    let driver = crate::browser::driver().await;
    let b = crate::browser::browser(&driver, "bernd").await;
    crate::browser::sign_in(&b, &app, "bernd", &format!("/chat/{room}")).await;
    crate::browser::wait_live(&b).await;
    b.execute("window.__same = 'page'; return true;", vec![])
        .await
        .unwrap();
    let r = anna
        .send_form(
            &app,
            &format!("/chat/{room}/settings"),
            &[("name", "Empfang"), ("topic", "Dienstplan & Urlaub")],
        )
        .await;
    assert_eq!(r.status(), 303);
    let read = "var t = document.getElementById('room-topic'); \
        return [document.querySelector('.room-head h1').textContent, t.hidden ? null : t.textContent, window.__same];";
    let mut seen = Value::Null;
    for _ in 0..50 {
        seen = b.execute(read, vec![]).await.unwrap();
        if seen[1] == "Dienstplan & Urlaub" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(seen, json!(["# Empfang", "Dienstplan & Urlaub", "page"]));
    // Clearing the topic hides it again.
    let r = anna
        .send_form(
            &app,
            &format!("/chat/{room}/settings"),
            &[("name", "Empfang"), ("topic", "")],
        )
        .await;
    assert_eq!(r.status(), 303);
    for _ in 0..50 {
        seen = b.execute(read, vec![]).await.unwrap();
        if seen[1].is_null() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(seen, json!(["# Empfang", null, "page"]));
    let _ = b.close().await;
}
