//! "Meine Sitzungen" tells sessions apart (a device name the member gives, browser and
//! system, last use), and ending the other sessions takes effect at once: the other
//! browser's live socket closes and its next post is refused.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::apps::chat_api::{Person, close_code, expect, member_socket, new_room, send};
use crate::harness::{CHAT_PW as PW, TestApp, client, meta_csrf};

const FIREFOX: &str =
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0";
const CHROME: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";

/// A browser with its own user agent and cookie jar, signed in to the workspace.
async fn browser(app: &TestApp, user: &str, agent: &str) -> Person {
    let jar = Arc::new(reqwest::cookie::Jar::default());
    let http = crate::harness::builder()
        .cookie_provider(jar.clone())
        .user_agent(agent)
        .build()
        .unwrap();
    app.sign_in(&http, "praxis-a", user, PW).await;
    let html = http
        .get(app.url("praxis-a", "/chat"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    Person {
        http,
        jar,
        csrf: meta_csrf(&html),
        slug: "praxis-a".into(),
    }
}

async fn account(app: &TestApp, c: &reqwest::Client) -> String {
    account_at(app, c, "/id/account").await
}

async fn account_at(app: &TestApp, c: &reqwest::Client, path: &str) -> String {
    let r = c.get(app.url("praxis-a", path)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    r.text().await.unwrap()
}

/// The ids of the sessions listed on the account page, this session's first.
fn session_ids(page: &str) -> Vec<String> {
    let mut rows: Vec<(bool, String)> = page
        .split("<tr")
        .filter_map(|row| {
            let id = row
                .split("action=\"/id/account/sessions/")
                .nth(1)?
                .split_once("/name\"")?
                .0
                .to_owned();
            Some((!row.contains("Diese Sitzung"), id))
        })
        .collect();
    rows.sort();
    rows.into_iter().map(|(_, id)| id).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_are_told_apart_by_device_name_browser_and_system() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    app.create_user("praxis-a", "anna", PW, false).await;
    app.create_user("praxis-a", "ben", PW, false).await;
    let reception = browser(&app, "anna", FIREFOX).await;
    let _laptop = browser(&app, "anna", CHROME).await;
    let page = account(&app, &reception).await;
    assert!(page.contains("Firefox 133 auf Windows"), "{page}");
    assert!(page.contains("Chrome 131 auf Linux"));
    assert_eq!(page.matches("Unbenanntes Gerät").count(), 2);
    let ids = session_ids(&page);
    assert_eq!(ids.len(), 2, "{page}");

    let name = |id: &str, name: &str| {
        let action = format!("/id/account/sessions/{id}/name");
        let name = name.to_owned();
        let (app, c) = (&app, &reception.http);
        async move {
            app.post_form(c, "praxis-a", "/id/account", &action, &[("name", &name)])
                .await
        }
    };
    let r = name(&ids[0], "  Empfang-PC ").await;
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/id/account?done=device-named");
    let page = account_at(&app, &reception, "/id/account?done=device-named").await;
    assert!(page.contains("Der Gerätename wurde gespeichert."));
    let mine = page
        .split("<tr")
        .find(|row| row.contains("Diese Sitzung"))
        .unwrap();
    assert!(mine.contains(">Empfang-PC</strong>"), "{mine}");
    assert!(mine.contains("Firefox 133 auf Windows"));
    assert!(mine.contains("Zuletzt aktiv") && mine.contains("class=\"when\""));
    assert_eq!(page.matches("Unbenanntes Gerät").count(), 1);

    // Too long: said in German, nothing stored.
    let r = name(&ids[1], &"x".repeat(61)).await;
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("höchstens 60 Zeichen"));
    // Someone else's session is not found; without the form's token nothing happens.
    let ben = client();
    assert_eq!(app.login(&ben, "praxis-a", "ben", PW).await.status(), 303);
    let r = app
        .post_form(
            &ben,
            "praxis-a",
            "/id/account",
            &format!("/id/account/sessions/{}/name", ids[1]),
            &[("name", "Fremd")],
        )
        .await;
    assert_eq!(r.status(), 404);
    let r = reception
        .post(app.url("praxis-a", &format!("/id/account/sessions/{}/name", ids[1])))
        .form(&[("name", "Ohne Token")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = client()
        .post(app.url("praxis-a", &format!("/id/account/sessions/{}/name", ids[1])))
        .form(&[("name", "Anonym")])
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        403,
        "no CSRF cookie, no session: refused before anything"
    );
    // Another practice's member names "the same" session id at her practice: not anna's.
    app.create_practice("praxis-b").await;
    app.create_user("praxis-b", "eve", PW, false).await;
    let eve = client();
    assert_eq!(app.login(&eve, "praxis-b", "eve", PW).await.status(), 303);
    let r = app
        .post_form(
            &eve,
            "praxis-b",
            "/id/account",
            &format!("/id/account/sessions/{}/name", ids[1]),
            &[("name", "Praxis B")],
        )
        .await;
    assert!(matches!(r.status().as_u16(), 303 | 404), "{}", r.status());
    let page = account(&app, &reception).await;
    for never in ["Fremd", "Ohne Token", "Anonym", "xxxxxxxxxx", "Praxis B"] {
        assert!(!page.contains(never), "{never}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ending_the_other_sessions_closes_their_socket_and_refuses_their_post_at_once() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    app.create_user("praxis-a", "anna", PW, false).await;
    let desk = browser(&app, "anna", FIREFOX).await;
    let phone = browser(&app, "anna", CHROME).await;
    let room = new_room(&app, &phone, "Labor", false, &[]).await;
    let mut socket = member_socket(&app, &phone).await;
    send(&mut socket, serde_json::json!({"type": "ping"})).await;
    expect(&mut socket, "pong").await;

    // The question first, then the answer.
    let ask = desk
        .get(app.url("praxis-a", "/id/account/sessions/end-others"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(ask.contains("Alle anderen Sitzungen beenden?"), "{ask}");
    let started = Instant::now();
    let r = app
        .post_form(
            &desk,
            "praxis-a",
            "/id/account/sessions/end-others",
            "/id/account/sessions/end-others",
            &[],
        )
        .await;
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/id/account?done=others-ended");
    // Once the page says so, the other browser's workspace session is over.
    let (status, _) = phone
        .api(
            &app,
            reqwest::Method::POST,
            &format!("/api/chat/rooms/{room}/messages"),
            Some(serde_json::json!({"body": "noch da?"})),
        )
        .await;
    assert_eq!(status, 401, "a post from the ended session is refused");
    let closed = tokio::time::timeout(Duration::from_secs(1), close_code(&mut socket)).await;
    assert_eq!(closed.ok().flatten(), Some(CloseCode::from(4001)));
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
    // This browser stays signed in, at the IdP and in the workspace.
    let page = account_at(&app, &desk, "/id/account?done=others-ended").await;
    assert!(page.contains("Alle anderen Sitzungen wurden beendet."));
    assert_eq!(session_ids(&page).len(), 1);
    let (status, _) = desk
        .api(
            &app,
            reqwest::Method::POST,
            &format!("/api/chat/rooms/{room}/messages"),
            Some(serde_json::json!({"body": "Ich bin noch da."})),
        )
        .await;
    assert_eq!(status, 201);
}
