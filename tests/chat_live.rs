//! Live chat over WebSocket and the chat JSON API, against the real server.

use std::sync::Arc;
use std::time::Duration;

use futures_util::SinkExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{self, Message};

use crate::apps::chat_api::*;
use crate::harness::TestApp;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_members_chat_live_over_the_websocket() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    let anna = person(&app, "praxis-a", "anna", false).await;
    let bernd = person(&app, "praxis-a", "bernd", false).await;
    let room = new_room(&app, &anna, "Team", false, &[]).await;
    let first = post(&app, &anna, room, "Vor der Verbindung").await;

    let mut a = member_socket(&app, &anna).await;
    let mut b = member_socket(&app, &bernd).await;
    // Reconnect catch-up: subscribing with the last seen id brings what was missed.
    send(
        &mut b,
        json!({"type": "subscribe", "room": room, "after": 0}),
    )
    .await;
    let catchup = expect(&mut b, "catchup").await;
    assert_eq!(catchup["messages"][0]["id"], first["id"]);
    assert_eq!(catchup["complete"], true);
    send(
        &mut a,
        json!({"type": "subscribe", "room": room, "after": first["id"]}),
    )
    .await;
    let catchup = expect(&mut a, "catchup").await;
    assert_eq!(catchup["messages"].as_array().unwrap().len(), 0);

    // A posts: B receives it within a second, with the mention badge for B.
    let msg = post(&app, &anna, room, "Hallo @bernd, **Teamsitzung** um 12").await;
    let ev = expect(&mut b, "message").await;
    assert_eq!(ev["room"], room);
    assert_eq!(ev["message"]["id"], msg["id"]);
    assert_eq!(ev["message"]["author"], "anna Test");
    assert!(
        ev["message"]["html"]
            .as_str()
            .unwrap()
            .contains("<strong>Teamsitzung</strong>")
    );
    assert_eq!(ev["message"]["mentions_me"], true);
    let own = expect(&mut a, "message").await;
    assert_eq!(own["message"]["mentions_me"], false);
    // Bernd was a member of the practice before both messages and has marked neither
    // read (catching up over the socket delivers, it does not read).
    assert_eq!(unread(&app, &bernd, room).await, 2);

    // B reads: the unread count drops and A sees the read receipt.
    send(
        &mut b,
        json!({"type": "read", "room": room, "upto": msg["id"]}),
    )
    .await;
    let read = expect(&mut a, "read").await;
    assert_eq!(read["name"], "bernd Test");
    assert_eq!(read["upto"], msg["id"]);
    assert_eq!(unread(&app, &bernd, room).await, 0);
    let id = msg["id"].as_i64().unwrap();
    let (_, by) = anna
        .api(
            &app,
            reqwest::Method::GET,
            &format!("/api/chat/rooms/{room}/messages/{id}/read-by"),
            None,
        )
        .await;
    assert_eq!(by["read_by"], json!(["bernd Test"]));

    // Edit, reaction and deletion arrive too.
    let (s, _) = anna
        .api(
            &app,
            reqwest::Method::PATCH,
            &format!("/api/chat/rooms/{room}/messages/{id}"),
            Some(json!({"body": "Teamsitzung um 13 Uhr"})),
        )
        .await;
    assert_eq!(s, 200);
    let ev = expect(&mut b, "edited").await;
    assert_eq!(ev["message"]["body"], "Teamsitzung um 13 Uhr");
    assert_eq!(ev["message"]["edited"], true);
    let (s, v) = bernd
        .api(
            &app,
            reqwest::Method::POST,
            &format!("/api/chat/rooms/{room}/messages/{id}/reactions"),
            Some(json!({"emoji": "👍"})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let ev = expect(&mut a, "reactions").await;
    assert_eq!(ev["message"]["reactions"][0]["emoji"], "👍");
    assert_eq!(ev["message"]["reactions"][0]["count"], 1);
    assert_eq!(ev["message"]["reactions"][0]["mine"], false);
    let ev = expect(&mut b, "reactions").await;
    assert_eq!(ev["message"]["reactions"][0]["mine"], true);
    let (s, _) = anna
        .api(
            &app,
            reqwest::Method::DELETE,
            &format!("/api/chat/rooms/{room}/messages/{id}"),
            None,
        )
        .await;
    assert_eq!(s, 200);
    let ev = expect(&mut b, "deleted").await;
    assert_eq!(ev["message_id"], id);

    // The server-rendered form path publishes as well.
    let page = anna
        .get(app.url("praxis-a", &format!("/chat/{room}")))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let r = anna
        .http
        .post(app.url("praxis-a", &format!("/chat/{room}/messages")))
        .form(&[("csrf_token", anna.csrf.as_str()), ("body", "Per Formular")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let ev = expect(&mut b, "message").await;
    assert_eq!(ev["message"]["body"], "Per Formular");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_socket_checks_origin_and_session() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    app.create_practice("praxis-b").await;
    let anna = person(&app, "praxis-a", "anna", false).await;
    let own = app.url("praxis-a", "");
    let cookie = anna.cookie(&app);
    let status = |e: tungstenite::Error| match e {
        tungstenite::Error::Http(r) => r.status().as_u16(),
        other => panic!("expected an HTTP refusal, got {other}"),
    };
    // Foreign, missing and look-alike origins are refused before the upgrade.
    for origin in [
        Some("http://evil.localhost:1"),
        Some(app.url("praxis-b", "").as_str()),
        Some(&format!("{own}.evil.example")),
        None,
    ] {
        let e = socket(&app, "praxis-a", &cookie, origin)
            .await
            .err()
            .unwrap();
        assert_eq!(status(e), 403, "{origin:?}");
    }
    // No session, or A's session presented at B: 401.
    let e = socket(&app, "praxis-a", "", Some(&own))
        .await
        .err()
        .unwrap();
    assert_eq!(status(e), 401);
    let b_origin = app.url("praxis-b", "");
    let e = socket(&app, "praxis-b", &cookie, Some(&b_origin))
        .await
        .err()
        .unwrap();
    assert_eq!(status(e), 401);

    // Logging out closes the socket at once.
    let mut s = member_socket(&app, &anna).await;
    send(&mut s, json!({"type": "ping"})).await;
    assert_eq!(expect(&mut s, "pong").await["type"], "pong");
    let metrics = reqwest::get(app.operator_url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("kollegium_live_connections 1"),
        "{metrics}"
    );
    let r = anna
        .http
        .post(app.url("praxis-a", "/auth/logout"))
        .form(&[("csrf_token", anna.csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(close_code(&mut s).await, Some(CloseCode::from(4001)));
    let e = socket(&app, "praxis-a", &cookie, Some(&own))
        .await
        .err()
        .unwrap();
    assert_eq!(status(e), 401, "the ended session opens no new socket");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_rooms_stay_private_on_every_channel() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    app.create_practice("praxis-b").await;
    let anna = person(&app, "praxis-a", "anna", false).await;
    let bernd = person(&app, "praxis-a", "bernd", false).await;
    let carl = person(&app, "praxis-a", "carl", false).await;
    let bernd_id = member_id(&app, &anna, "bernd").await;
    let secret = new_room(&app, &anna, "Geheim", true, &[bernd_id]).await;
    let open = new_room(&app, &anna, "Offen", false, &[]).await;
    let hidden = post(&app, &anna, secret, "Nur für Bernd").await;

    // Page, JSON API, read-by and messages: all 404 for a non-member.
    let r = carl
        .get(app.url("praxis-a", &format!("/chat/{secret}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert!(!r.text().await.unwrap().contains("Nur für Bernd"));
    for path in [
        format!("/api/chat/rooms/{secret}"),
        format!("/api/chat/rooms/{secret}/messages"),
        format!("/api/chat/rooms/{secret}/messages?after=0"),
        format!("/api/chat/rooms/{secret}/messages/{}/read-by", hidden["id"]),
        "/api/chat/rooms/999999/messages".to_owned(),
    ] {
        let (s, v) = carl.api(&app, reqwest::Method::GET, &path, None).await;
        assert_eq!(s, 404, "{path}");
        assert!(!v.to_string().contains("Nur für Bernd"));
    }
    let (s, _) = carl
        .api(
            &app,
            reqwest::Method::POST,
            &format!("/api/chat/rooms/{secret}/messages"),
            Some(json!({"body": "Darf ich rein?"})),
        )
        .await;
    assert_eq!(s, 404);
    let (_, list) = carl
        .api(&app, reqwest::Method::GET, "/api/chat/rooms", None)
        .await;
    assert!(!list.to_string().contains("Geheim"));

    // WebSocket: subscribing (or guessing the id) yields an error and no messages; live
    // events of the room never reach carl, while those of an open room do.
    let mut c = member_socket(&app, &carl).await;
    let mut b = member_socket(&app, &bernd).await;
    send(
        &mut c,
        json!({"type": "subscribe", "room": secret, "after": 0}),
    )
    .await;
    let ev = expect(&mut c, "error").await;
    assert_eq!(ev["error"], "not_found");
    send(
        &mut c,
        json!({"type": "read", "room": secret, "upto": hidden["id"]}),
    )
    .await;
    assert_eq!(expect(&mut c, "error").await["error"], "not_found");
    post(&app, &anna, secret, "Zweites Geheimnis").await;
    let seen = expect(&mut b, "message").await;
    assert_eq!(seen["message"]["body"], "Zweites Geheimnis");
    post(&app, &anna, open, "Für alle").await;
    let ev = expect(&mut c, "message").await;
    assert_eq!(
        ev["message"]["body"], "Für alle",
        "the private message never came first"
    );

    // Removing bernd from the room (form on the room page) cuts him off on every channel.
    let r = anna
        .send_form(
            &app,
            &format!("/chat/{secret}/members"),
            &[("remove", bernd_id.to_string().as_str())],
        )
        .await;
    assert_eq!(r.status(), 303);
    let ev = expect(&mut b, "room").await;
    assert_eq!(ev["room"], secret);
    post(&app, &anna, secret, "Nach dem Entfernen").await;
    post(&app, &anna, open, "Wieder für alle").await;
    let ev = expect(&mut b, "message").await;
    assert_eq!(ev["message"]["body"], "Wieder für alle");
    let (s, _) = bernd
        .api(
            &app,
            reqwest::Method::GET,
            &format!("/api/chat/rooms/{secret}/messages"),
            None,
        )
        .await;
    assert_eq!(s, 404);
    // Adding carl lets him in.
    let carl_id = member_id(&app, &anna, "carl").await;
    let r = anna
        .send_form(
            &app,
            &format!("/chat/{secret}/members"),
            &[("add", carl_id.to_string().as_str())],
        )
        .await;
    assert_eq!(r.status(), 303);
    let (s, v) = carl
        .api(
            &app,
            reqwest::Method::GET,
            &format!("/api/chat/rooms/{secret}/messages"),
            None,
        )
        .await;
    assert_eq!(s, 200);
    assert!(v.to_string().contains("Nach dem Entfernen"));

    // Practice B: its member reaches none of A's rooms by id, and hears nothing of A.
    let bea = person(&app, "praxis-b", "bea", false).await;
    let mut bs = member_socket(&app, &bea).await;
    for room in [secret, open] {
        let (s, _) = bea
            .api(
                &app,
                reqwest::Method::GET,
                &format!("/api/chat/rooms/{room}/messages"),
                None,
            )
            .await;
        assert_eq!(s, 404, "room {room} of A is unknown at B");
    }
    post(&app, &anna, open, "Nur in Praxis A").await;
    assert!(
        next_event(&mut bs, Duration::from_millis(500))
            .await
            .is_none(),
        "practice B hears nothing of A"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_oversized_frames_close_only_that_socket() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    let anna = person(&app, "praxis-a", "anna", false).await;
    let bernd = person(&app, "praxis-a", "bernd", false).await;
    let room = new_room(&app, &anna, "Team", false, &[]).await;
    let mut good = member_socket(&app, &bernd).await;

    let cases: Vec<(Message, CloseCode)> = vec![
        (Message::text("kein json"), CloseCode::Invalid),
        (Message::text(r#"{"type":"explode"}"#), CloseCode::Invalid),
        (
            Message::text(r#"{"type":"subscribe","room":"x"}"#),
            CloseCode::Invalid,
        ),
        (Message::text("x".repeat(20 * 1024)), CloseCode::Size),
        (Message::binary(vec![0u8, 1, 2]), CloseCode::Unsupported),
    ];
    for (frame, code) in cases {
        let mut bad = member_socket(&app, &bernd).await;
        bad.send(frame).await.unwrap();
        assert_eq!(close_code(&mut bad).await, Some(code));
    }
    post(&app, &anna, room, "Alle anderen laufen weiter").await;
    let ev = expect(&mut good, "message").await;
    assert_eq!(ev["message"]["body"], "Alle anderen laufen weiter");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_json_api_refuses_bad_input_clearly() {
    let clock = Arc::new(kollegium_tenants::clock::ManualClock::new(1_800_000_000));
    let app = TestApp::spawn_with_clock(clock.clone(), |_| {}).await;
    app.create_practice("praxis-a").await;
    app.create_practice("praxis-b").await;
    let anna = person(&app, "praxis-a", "anna", false).await;
    let bernd = person(&app, "praxis-a", "bernd", false).await;
    let chefin = person(&app, "praxis-a", "chefin", true).await;
    let room = new_room(&app, &anna, "Team", false, &[]).await;
    let msg = post(&app, &anna, room, "Original").await;
    let id = msg["id"].as_i64().unwrap();
    let messages = format!("/api/chat/rooms/{room}/messages");
    let one = format!("{messages}/{id}");
    use reqwest::Method as M;

    let cases: Vec<(M, String, Option<Value>, u16)> = vec![
        (
            M::POST,
            messages.clone(),
            Some(json!({"body": "x".repeat(10_001)})),
            413,
        ),
        (
            M::POST,
            messages.clone(),
            Some(json!({"body": "  \n "})),
            400,
        ),
        (
            M::POST,
            messages.clone(),
            Some(json!({"text": "falsches Feld"})),
            400,
        ),
        (M::POST, messages.clone(), Some(json!({"body": 5})), 400),
        (
            M::POST,
            "/api/chat/rooms/424242/messages".into(),
            Some(json!({"body": "hallo"})),
            404,
        ),
        (M::GET, "/api/chat/rooms/abc/messages".into(), None, 404),
        (M::GET, format!("{messages}?before=abc"), None, 400),
        (
            M::POST,
            format!("{one}/reactions"),
            Some(json!({"emoji": "🦄"})),
            400,
        ),
        (
            M::POST,
            format!("{messages}/999999/reactions"),
            Some(json!({"emoji": "👍"})),
            404,
        ),
        (
            M::POST,
            "/api/chat/rooms".into(),
            Some(json!({"name": ""})),
            400,
        ),
        (
            M::POST,
            "/api/chat/rooms".into(),
            Some(json!({"name": "x", "members": [999999]})),
            403,
        ),
        (
            M::PATCH,
            format!("/api/chat/rooms/{room}"),
            Some(json!({"name": "a".repeat(81)})),
            400,
        ),
    ];
    for (method, path, body, want) in cases {
        let (s, v) = anna.api(&app, method.clone(), &path, body).await;
        assert_eq!(s, want, "{method} {path}: {v}");
        assert!(
            v["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{path}: {v}"
        );
    }
    // Malformed JSON, wrong content type, oversized body.
    let raw = |body: &'static str, ct: &'static str| {
        anna.http
            .post(app.url("praxis-a", &messages))
            .header("x-csrf-token", &anna.csrf)
            .header("content-type", ct)
            .body(body)
    };
    assert_eq!(
        raw("{\"body\": ", "application/json")
            .send()
            .await
            .unwrap()
            .status(),
        400
    );
    assert_eq!(
        raw("body=hallo", "text/plain")
            .send()
            .await
            .unwrap()
            .status(),
        415
    );
    let huge = anna
        .http
        .post(app.url("praxis-a", &messages))
        .header("x-csrf-token", &anna.csrf)
        .json(&json!({"body": "y".repeat(300 * 1024)}))
        .send()
        .await
        .unwrap();
    assert_eq!(huge.status(), 413);

    // Someone else's message: neither edit nor delete (non-admin).
    let (s, v) = bernd
        .api(&app, M::PATCH, &one, Some(json!({"body": "Fremd"})))
        .await;
    assert_eq!(s, 403, "{v}");
    let (s, _) = bernd.api(&app, M::DELETE, &one, None).await;
    assert_eq!(s, 403);
    // After the edit window, the author can no longer edit; an admin can still delete.
    clock.advance(16 * 60);
    let (s, v) = anna
        .api(&app, M::PATCH, &one, Some(json!({"body": "Zu spät"})))
        .await;
    assert_eq!(s, 403, "{v}");
    assert!(v["message"].as_str().unwrap().contains("Zeitfenster"));
    let (s, v) = chefin.api(&app, M::DELETE, &one, None).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["deleted"], true);

    // No CSRF token, no session, or A's session at B: refused, nothing written.
    let r = anna
        .http
        .post(app.url("praxis-a", &messages))
        .json(&json!({"body": "ohne Token"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = crate::harness::raw_client()
        .get(app.url("praxis-a", "/api/chat/rooms"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "unauthorized");
    let r = anna
        .http
        .get(app.url("praxis-b", "/api/chat/rooms"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let (_, v) = anna.api(&app, M::GET, &messages, None).await;
    assert!(!v.to_string().contains("ohne Token"));
    assert!(!v.to_string().contains("Fremd"));

    // The posting rate limit gives a clear 429.
    let mut last = 0;
    for i in 0..30 {
        let (s, v) = bernd
            .api(
                &app,
                M::POST,
                &messages,
                Some(json!({"body": format!("Nr. {i}")})),
            )
            .await;
        last = s;
        if s == 429 {
            assert!(v["message"].as_str().unwrap().contains("zu schnell"));
            break;
        }
    }
    assert_eq!(last, 429);
}
