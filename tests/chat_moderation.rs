//! Who may rename and archive a room: its creator, the members it names as moderators and
//! the practice's admins; the practice's general room "Allgemein" only admins may archive.
//! Refused on the server (403 with a German message, forms and JSON alike), and the page
//! shows the controls only to those who may use them.

use reqwest::Method as M;
use serde_json::json;

use crate::apps::chat_api::{member_id, new_room, person};
use crate::harness::TestApp;

const NOT_MANAGER: &str = "Nur wer den Raum angelegt hat, seine Moderator:innen und die Praxisleitung können ihn umbenennen oder archivieren.";
const DEFAULT_ROOM: &str = "Den Raum „Allgemein“ kann nur die Praxisleitung archivieren.";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_creator_moderators_and_admins_rename_or_archive_a_room() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    let anna = person(&app, "praxis-a", "anna", false).await;
    let bernd = person(&app, "praxis-a", "bernd", false).await;
    let carla = person(&app, "praxis-a", "carla", false).await;
    let dora = person(&app, "praxis-a", "dora", true).await;
    let room = new_room(&app, &anna, "Team", false, &[]).await;
    let path = format!("/api/chat/rooms/{room}");
    let settings = format!("/chat/{room}/settings");

    // Bernd, a plain member, may neither rename nor archive: JSON and form refused, nothing changed.
    let (s, v) = bernd
        .api(&app, M::PATCH, &path, Some(json!({"name": "Meins"})))
        .await;
    assert_eq!((s, v["message"].as_str()), (403, Some(NOT_MANAGER)), "{v}");
    let (s, v) = bernd
        .api(&app, M::PATCH, &path, Some(json!({"archived": true})))
        .await;
    assert_eq!((s, v["message"].as_str()), (403, Some(NOT_MANAGER)), "{v}");
    let r = bernd
        .send_form(&app, &settings, &[("name", "Meins"), ("topic", "")])
        .await;
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains(NOT_MANAGER));
    let r = bernd
        .send_form(
            &app,
            &settings,
            &[("name", "Team"), ("topic", ""), ("archived", "on")],
        )
        .await;
    assert_eq!(r.status(), 403);
    let (_, v) = anna.api(&app, M::GET, &path, None).await;
    assert_eq!(
        (v["name"].as_str(), v["archived"].as_bool()),
        (Some("Team"), Some(false))
    );
    // The topic stays everyone's.
    let r = bernd
        .send_form(
            &app,
            &settings,
            &[("name", "Team"), ("topic", "Dienstplan")],
        )
        .await;
    assert_eq!(r.status(), 303);
    // His page offers no rename field and no archiving; Anna's does.
    let html = bernd.page(&app, &format!("/chat/{room}")).await;
    assert!(!html.contains("id=\"rname\"") && !html.contains("Raum archivieren"));
    assert!(!html.contains("Zur Moderation ernennen"));
    let html = anna.page(&app, &format!("/chat/{room}")).await;
    assert!(html.contains("id=\"rname\"") && html.contains("Raum archivieren"));

    // Carla cannot name herself moderator.
    let carla_id = member_id(&app, &anna, "carla").await;
    let bernd_id = member_id(&app, &anna, "bernd").await;
    let members = format!("/chat/{room}/members");
    let own = carla_id.to_string();
    let r = carla
        .send_form(&app, &members, &[("moderator", &own), ("on", "1")])
        .await;
    assert_eq!(r.status(), 403);
    // Anna, the creator, names Bernd moderator: now he may rename, and his page says so.
    let b = bernd_id.to_string();
    let r = anna
        .send_form(&app, &members, &[("moderator", &b), ("on", "1")])
        .await;
    assert_eq!(r.status(), 303);
    let (s, v) = bernd
        .api(&app, M::PATCH, &path, Some(json!({"name": "Empfang"})))
        .await;
    assert_eq!(s, 204, "{v}");
    let html = bernd.page(&app, &format!("/chat/{room}")).await;
    assert!(
        html.contains("id=\"rname\"") && html.contains("<span class=\"chip\">Moderation</span>")
    );
    // Taking it back ends it.
    let r = anna
        .send_form(&app, &members, &[("moderator", &b), ("on", "0")])
        .await;
    assert_eq!(r.status(), 303);
    let (s, _) = bernd
        .api(&app, M::PATCH, &path, Some(json!({"name": "Wieder"})))
        .await;
    assert_eq!(s, 403);
    // Carla as a plain member still cannot archive; Dora, an admin, can, and back.
    let (s, _) = carla
        .api(&app, M::PATCH, &path, Some(json!({"archived": true})))
        .await;
    assert_eq!(s, 403);
    let (s, v) = dora
        .api(&app, M::PATCH, &path, Some(json!({"archived": true})))
        .await;
    assert_eq!(s, 204, "{v}");
    let (_, v) = anna.api(&app, M::GET, &path, None).await;
    assert_eq!(
        (v["name"].as_str(), v["archived"].as_bool()),
        (Some("Empfang"), Some(true))
    );
    // The creator may take it out of the archive again.
    let (s, v) = anna
        .api(&app, M::PATCH, &path, Some(json!({"archived": false})))
        .await;
    assert_eq!(s, 204, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn naming_moderators_refuses_bad_input_strangers_forged_forms_and_other_practices() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    app.create_practice("praxis-b").await;
    let anna = person(&app, "praxis-a", "anna", false).await;
    let bernd = person(&app, "praxis-a", "bernd", false).await;
    let eve = person(&app, "praxis-b", "eve", true).await;
    let room = new_room(&app, &anna, "Team", true, &[]).await;
    let members = format!("/chat/{room}/members");
    let b = member_id(&app, &anna, "bernd").await.to_string();

    // Malformed and oversized ids, an unknown member: refused, nobody becomes moderator.
    for bad in ["abc", "99999999999999999999999", ""] {
        let r = anna
            .send_form(&app, &members, &[("moderator", bad), ("on", "1")])
            .await;
        assert_eq!(r.status(), 400, "{bad:?}");
    }
    let r = anna
        .send_form(&app, &members, &[("moderator", "999999"), ("on", "1")])
        .await;
    assert_eq!(r.status(), 403);
    // Bernd is no member of the private room: he cannot be named, nor name himself.
    let r = anna
        .send_form(&app, &members, &[("moderator", &b), ("on", "1")])
        .await;
    assert_eq!(r.status(), 403);
    let r = bernd
        .send_form(&app, &members, &[("moderator", &b), ("on", "1")])
        .await;
    assert_eq!(r.status(), 404, "a private room he cannot see");
    // Without a session: sent to sign in; without the CSRF token: refused.
    let anon = crate::harness::client();
    let r = anon
        .post(app.url("praxis-a", &members))
        .form(&[("moderator", b.as_str()), ("on", "1")])
        .send()
        .await
        .unwrap();
    assert!(
        r.status() == 303 || r.status() == 401 || r.status() == 403,
        "{}",
        r.status()
    );
    let r = anna
        .http
        .post(app.url("praxis-a", &members))
        .form(&[("moderator", b.as_str()), ("on", "1")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // Another practice's admin, with the same room id at her own address: not found there.
    let r = eve
        .send_form(&app, &members, &[("moderator", "1"), ("on", "1")])
        .await;
    assert_eq!(r.status(), 404);
    // Nobody of the above became moderator: Bernd, added as a member, still cannot rename.
    let r = anna.send_form(&app, &members, &[("add", &b)]).await;
    assert_eq!(r.status(), 303);
    let (s, _) = bernd
        .api(
            &app,
            M::PATCH,
            &format!("/api/chat/rooms/{room}"),
            Some(json!({"name": "Meins"})),
        )
        .await;
    assert_eq!(s, 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allgemein_is_archived_by_admins_only() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    let anna = person(&app, "praxis-a", "anna", false).await;
    let dora = person(&app, "praxis-a", "dora", true).await;
    // The practice's general room, created by a plain member (as the demo's owner would).
    let general = new_room(&app, &anna, "Allgemein", false, &[]).await;
    let path = format!("/api/chat/rooms/{general}");
    let (s, v) = anna
        .api(&app, M::PATCH, &path, Some(json!({"archived": true})))
        .await;
    assert_eq!((s, v["message"].as_str()), (403, Some(DEFAULT_ROOM)), "{v}");
    let r = anna
        .send_form(
            &app,
            &format!("/chat/{general}/settings"),
            &[("name", "Allgemein"), ("topic", ""), ("archived", "on")],
        )
        .await;
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains(DEFAULT_ROOM));
    let html = anna.page(&app, &format!("/chat/{general}")).await;
    assert!(
        !html.contains("Raum archivieren"),
        "no archive control for her"
    );
    let (_, v) = anna.api(&app, M::GET, &path, None).await;
    assert_eq!(v["archived"], false);
    // An admin may.
    let html = dora.page(&app, &format!("/chat/{general}")).await;
    assert!(html.contains("Raum archivieren"));
    let (s, v) = dora
        .api(&app, M::PATCH, &path, Some(json!({"archived": true})))
        .await;
    assert_eq!(s, 204, "{v}");
    // Another room of that name is not the general room: its creator archives it.
    let other = new_room(&app, &anna, "Allgemein", false, &[]).await;
    let (s, v) = anna
        .api(
            &app,
            M::PATCH,
            &format!("/api/chat/rooms/{other}"),
            Some(json!({"archived": true})),
        )
        .await;
    assert_eq!(s, 204, "{v}");
}
