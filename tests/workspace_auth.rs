//! Signing in to the workspace as a relying party of the practice IdP: token refresh under
//! concurrency and IdP faults.

use std::sync::Arc;

use diesel::prelude::*;
use futures_util::future::join_all;
use kollegium_tenants::clock::ManualClock;
use kollegium_tenants::{Clock, SystemClock};
use serde_json::Value;

use crate::chat_live::{new_room, person, post, socket};
use crate::harness::TestApp;

/// A server whose clock the test moves.
async fn manual_app() -> (TestApp, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(SystemClock.now()));
    let app = TestApp::spawn_with_clock(clock.clone(), |_| {}).await;
    (app, clock)
}

/// Seconds after which the IdP's access tokens (and so the workspace's copy) expire.
fn token_ttl(app: &TestApp) -> i64 {
    app.config.idp.access_token_ttl_secs
}

async fn status_of(c: &reqwest::Client, url: String) -> u16 {
    c.get(url).send().await.unwrap().status().as_u16()
}

/// Holds the write lock of a practice's `idp.sqlite` (as a long transaction or a stuck
/// backup would) until the returned sender is dropped.
fn lock_idp_database(app: &TestApp, slug: &str) -> std::sync::mpsc::Sender<()> {
    let path = app.data_dir().join("tenants").join(slug).join("idp.sqlite");
    let (release, released) = std::sync::mpsc::channel::<()>();
    let (locked, is_locked) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        let mut c = SqliteConnection::establish(path.to_str().unwrap()).unwrap();
        diesel::sql_query("BEGIN EXCLUSIVE")
            .execute(&mut c)
            .unwrap();
        locked.send(()).unwrap();
        let _ = released.recv();
        diesel::sql_query("ROLLBACK").execute(&mut c).unwrap();
    });
    is_locked.recv().unwrap();
    release
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_after_the_access_token_expired_keep_the_session() {
    let (app, clock) = manual_app().await;
    app.create_practice("praxis-a").await;
    let anna = person(&app, "praxis-a", "anna", false).await;
    let room = new_room(&app, &anna, "Team", false, &[]).await;
    post(&app, &anna, room, "Vor dem Ablauf").await;
    let cookie = anna.cookie(&app);
    let origin = app.url("praxis-a", "");
    // Several rounds: each refresh must store the rotated refresh token for the next one.
    for round in 0..3 {
        clock.advance(token_ttl(&app) + 1);
        // What a browser does at once: the page, chat.js's API calls and its WebSocket.
        let paths = [
            "/",
            "/chat",
            &format!("/chat/{room}") as &str,
            "/api/chat/rooms",
            &format!("/api/chat/rooms/{room}/messages"),
            "/api/chat/members",
        ];
        let requests = join_all(paths.iter().map(|p| {
            anna.http
                .get(app.url("praxis-a", p))
                .header("accept", "application/json")
                .send()
        }));
        let (responses, ws) =
            tokio::join!(requests, socket(&app, "praxis-a", &cookie, Some(&origin)));
        for (path, r) in paths.iter().zip(responses) {
            assert_eq!(r.unwrap().status(), 200, "round {round}: {path}");
        }
        assert!(ws.is_ok(), "round {round}: the socket opens");
        // The session is still valid afterwards.
        assert_eq!(status_of(&anna, app.url("praxis-a", "/")).await, 200);
    }
    let html = anna
        .get(app.url("praxis-a", &format!("/chat/{room}")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("Vor dem Ablauf"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idp_outage_during_refresh_answers_503_and_keeps_the_session() {
    let (app, clock) = manual_app().await;
    app.create_practice("praxis-a").await;
    let anna = person(&app, "praxis-a", "anna", false).await;
    clock.advance(token_ttl(&app) + 1);
    // The IdP cannot write (its token endpoint answers 500 server_error after its busy
    // timeout): a transient fault, not a refusal.
    let release = lock_idp_database(&app, "praxis-a");
    let (page, api) = tokio::join!(
        anna.get(app.url("praxis-a", "/")).send(),
        anna.get(app.url("praxis-a", "/api/chat/rooms"))
            .header("accept", "application/json")
            .send(),
    );
    drop(release);
    let page = page.unwrap();
    assert_eq!(page.status(), 503);
    assert!(page.headers().contains_key("retry-after"));
    let html = page.text().await.unwrap();
    assert!(html.contains("Anmeldedienst"), "{html}");
    let api = api.unwrap();
    assert_eq!(api.status(), 503);
    let v: Value = api.json().await.unwrap();
    assert_eq!(v["error"], "unavailable");
    assert!(v["message"].as_str().unwrap().contains("Anmeldedienst"));
    // Once the IdP is back, the same session continues without signing in again.
    assert_eq!(status_of(&anna, app.url("praxis-a", "/")).await, 200);
    clock.advance(token_ttl(&app) + 1);
    assert_eq!(status_of(&anna, app.url("praxis-a", "/chat")).await, 200);
}
