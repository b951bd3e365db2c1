//! Failures inside the workspace fail closed: when its database cannot be used, the
//! answer is a 5xx (the cause logged), never a success, a "bad request" or a "not found"
//! that hides the fault: back-channel logout, workspace logout, the sign-in callback, and
//! the chat's edit window.

use diesel::connection::SimpleConnection;
use kollegium_idp::oidc::jwt;
use serde_json::json;

use crate::apps::chat_api::person;
use crate::harness::{TestApp, client};
use crate::workspace_auth::{logout_token_signer, status_of};

/// Runs `sql` on `slug`'s `platform.sqlite` (to break or repair it).
async fn platform_sql(app: &TestApp, slug: &str, sql: &'static str) {
    let t = app.tenant(slug);
    tokio::task::spawn_blocking(move || {
        let mut c = t.conn(&kollegium_platform::PLATFORM_DB).unwrap();
        c.batch_execute(sql).unwrap();
    })
    .await
    .unwrap();
}

/// A back-channel logout token for `user` of `slug`, signed as that practice's IdP signs it.
async fn logout_token(app: &TestApp, slug: &str, user: &str) -> String {
    let (signer, sub) = logout_token_signer(app, slug, user).await;
    let now = app.clock.now();
    let claims = json!({
        "iss": format!("{}/id", app.url(slug, "")), "aud": "platform",
        "iat": now, "exp": now + 120, "jti": "fail-closed-1", "sub": sub,
        "events": { "http://schemas.openid.net/event/backchannel-logout": {} },
    });
    jwt::sign(&signer, jwt::TYP_LOGOUT_TOKEN, &claims).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn back_channel_logout_answers_5xx_while_the_workspace_database_cannot_be_opened() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    let anna = person(&app, "praxis-a", "anna", false).await;
    let token = logout_token(&app, "praxis-a", "anna").await;
    let deliver = || {
        let (app, token) = (&app, token.clone());
        async move {
            client()
                .post(app.url("praxis-a", "/auth/backchannel-logout"))
                .form(&[("logout_token", token)])
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };

    // The practice's databases closed, and `platform.sqlite` replaced by a directory: it
    // cannot be opened (whoever runs the test, root included).
    let db = app.data_dir().join("tenants/praxis-a/platform.sqlite");
    app.server().store.close_all();
    let moved: Vec<_> = ["", "-wal", "-shm"]
        .iter()
        .map(|ext| {
            let from = std::path::PathBuf::from(format!("{}{ext}", db.display()));
            let to = std::path::PathBuf::from(format!("{}{ext}.aside", db.display()));
            (from, to)
        })
        .filter(|(from, _)| from.exists())
        .collect();
    for (from, to) in &moved {
        std::fs::rename(from, to).unwrap();
    }
    std::fs::create_dir(&db).unwrap();

    // The IdP must retry, not believe the session ended.
    let status = deliver().await;
    assert!(
        (500..600).contains(&status),
        "a database that cannot be opened is a 5xx, got {status}"
    );

    // Repaired: the session has lived on, and the retried delivery ends it.
    std::fs::remove_dir(&db).unwrap();
    for (from, to) in &moved {
        std::fs::rename(to, from).unwrap();
    }
    assert_eq!(status_of(&anna.http, app.url("praxis-a", "/")).await, 200);
    assert_eq!(deliver().await, 200);
    assert_eq!(status_of(&anna.http, app.url("praxis-a", "/")).await, 303);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn back_channel_logout_answers_5xx_when_the_sessions_cannot_be_ended() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    let anna = person(&app, "praxis-a", "anna", false).await;
    let token = logout_token(&app, "praxis-a", "anna").await;
    platform_sql(
        &app,
        "praxis-a",
        "CREATE TRIGGER sessions_stay BEFORE UPDATE OF ended_at ON sessions \
         BEGIN SELECT RAISE(ABORT, 'simulated disk failure'); END;",
    )
    .await;
    let post = || {
        client()
            .post(app.url("praxis-a", "/auth/backchannel-logout"))
            .form(&[("logout_token", token.clone())])
            .send()
    };
    assert_eq!(post().await.unwrap().status(), 503);
    assert_eq!(status_of(&anna.http, app.url("praxis-a", "/")).await, 200);
    platform_sql(&app, "praxis-a", "DROP TRIGGER sessions_stay;").await;
    assert_eq!(post().await.unwrap().status(), 200);
    assert_eq!(status_of(&anna.http, app.url("praxis-a", "/")).await, 303);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workspace_logout_that_cannot_end_the_session_says_so_and_keeps_the_cookie() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    let anna = person(&app, "praxis-a", "anna", false).await;
    platform_sql(
        &app,
        "praxis-a",
        "CREATE TRIGGER sessions_stay BEFORE UPDATE OF ended_at ON sessions \
         BEGIN SELECT RAISE(ABORT, 'simulated disk failure'); END;",
    )
    .await;
    let logout = || {
        anna.http
            .post(app.url("praxis-a", "/auth/logout"))
            .form(&[("csrf_token", anna.csrf.as_str())])
            .send()
    };
    let r = logout().await.unwrap();
    assert_eq!(r.status(), 503, "not a redirect that says signed out");
    assert!(
        crate::harness::set_cookie(&r, "kollegium-app").is_none(),
        "the cookie of a live session stays"
    );
    let body = r.text().await.unwrap();
    assert!(body.contains("noch angemeldet"), "{body}");
    // Told the truth: the session is still there.
    assert_eq!(status_of(&anna.http, app.url("praxis-a", "/")).await, 200);

    platform_sql(&app, "praxis-a", "DROP TRIGGER sessions_stay;").await;
    let r = logout().await.unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(status_of(&anna.http, app.url("praxis-a", "/")).await, 303);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_error_in_the_sign_in_callback_is_a_5xx_and_a_new_sign_in_then_works() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    app.create_user("praxis-a", "anna", crate::harness::CHAT_PW, false)
        .await;
    platform_sql(
        &app,
        "praxis-a",
        "CREATE TRIGGER no_sessions BEFORE INSERT ON sessions \
         BEGIN SELECT RAISE(ABORT, 'simulated disk failure'); END;",
    )
    .await;
    let browser = client();
    app.login(&browser, "praxis-a", "anna", crate::harness::CHAT_PW)
        .await;
    // The sign-in reaches the callback, which cannot write the session.
    let r = app
        .follow(&browser, "praxis-a", app.url("praxis-a", "/auth/login"))
        .await;
    assert_eq!(
        r.status(),
        500,
        "the sign-in was valid; the database failed"
    );
    assert!(crate::harness::set_cookie(&r, "kollegium-app").is_none());
    assert_eq!(status_of(&browser, app.url("praxis-a", "/")).await, 303);
    // Repaired, signing in again works.
    platform_sql(&app, "praxis-a", "DROP TRIGGER no_sessions;").await;
    let r = app
        .follow(&browser, "praxis-a", app.url("praxis-a", "/auth/login"))
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(status_of(&browser, app.url("praxis-a", "/")).await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chat_edit_window_that_cannot_be_read_refuses_the_edit() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    let anna = person(&app, "praxis-a", "anna", false).await;
    let room = crate::apps::chat_api::new_room(&app, &anna, "Team", false, &[]).await;
    let msg = crate::apps::chat_api::post(&app, &anna, room, "Erster Entwurf").await["id"].clone();
    let path = format!("/api/chat/rooms/{room}/messages/{msg}");
    let edit = || {
        anna.api(
            &app,
            reqwest::Method::PATCH,
            &path,
            Some(json!({"body": "Geändert"})),
        )
    };
    platform_sql(
        &app,
        "praxis-a",
        "ALTER TABLE settings RENAME TO settings_unreadable;",
    )
    .await;
    let (status, v) = edit().await;
    assert_eq!(status, 500, "not the default window: {v}");
    platform_sql(
        &app,
        "praxis-a",
        "ALTER TABLE settings_unreadable RENAME TO settings;",
    )
    .await;
    let (status, v) = edit().await;
    assert_eq!(status, 200, "{v}");
}
