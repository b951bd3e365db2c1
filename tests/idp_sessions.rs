//! Sessions: idle and absolute timeout (injected clock), "Meine Sitzungen", password
//! change, a shared practice PC, disabled accounts.

use std::sync::Arc;

use kollegium_tenants::clock::ManualClock;

use crate::harness::{TestApp, client, raw_client, set_cookie};
use crate::idp_mfa::{PW, T0, app_at, logout};

async fn status(c: &reqwest::Client, app: &TestApp, path: &str) -> u16 {
    c.get(app.url("praxis-a", path))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Whether a bare session cookie value still opens the account page.
async fn alive(app: &TestApp, token: &str) -> bool {
    raw_client()
        .get(app.url("praxis-a", "/id/account"))
        .header("cookie", format!("kollegium-id={token}"))
        .send()
        .await
        .unwrap()
        .status()
        == 200
}

async fn signed_in(app: &TestApp, user: &str) -> (reqwest::Client, String) {
    let c = client();
    let r = app.login(&c, "praxis-a", user, PW).await;
    assert_eq!(r.status(), 303);
    let token = set_cookie(&r, "kollegium-id").unwrap();
    (c, token)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_absolute_timeouts_follow_the_clock() {
    let (app, clock): (TestApp, Arc<ManualClock>) = app_at(T0).await;
    app.create_practice("praxis-a").await;
    app.create_user("praxis-a", "anna", PW, false).await;
    let idle = app.config.idp.session_idle_secs;
    let absolute = app.config.idp.session_absolute_secs;

    let (c, _) = signed_in(&app, "anna").await;
    clock.advance(idle - 1);
    assert_eq!(
        status(&c, &app, "/id/account").await,
        200,
        "activity just in time"
    );
    clock.advance(idle - 1);
    assert_eq!(
        status(&c, &app, "/id/account").await,
        200,
        "activity moved the idle timer"
    );
    clock.advance(idle + 1);
    assert_eq!(status(&c, &app, "/id/account").await, 303, "idle too long");
    assert_eq!(
        status(&c, &app, "/id/account").await,
        303,
        "and it stays ended"
    );

    // Active all the time, still over after the absolute lifetime.
    let (c, token) = signed_in(&app, "anna").await;
    let started = T0 + 3 * idle - 1;
    let mut now = started;
    while now + idle / 2 < started + absolute {
        clock.advance(idle / 2);
        now += idle / 2;
        assert_eq!(status(&c, &app, "/id/account").await, 200);
    }
    clock.advance(idle / 2 + 1);
    assert_eq!(
        status(&c, &app, "/id/account").await,
        303,
        "absolute timeout"
    );
    assert!(!alive(&app, &token).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn my_sessions_can_be_ended_one_by_one_or_all_others() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    app.create_user("praxis-a", "anna", PW, false).await;
    let (c1, t1) = signed_in(&app, "anna").await;
    let (_c2, t2) = signed_in(&app, "anna").await;
    let (_c3, t3) = signed_in(&app, "anna").await;

    let html = c1
        .get(app.url("praxis-a", "/id/account"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let ids: Vec<String> = html
        .split("href=\"/id/account/sessions/")
        .skip(1)
        .filter_map(|p| p.split_once("/end\"").map(|(id, _)| id.to_owned()))
        .collect();
    assert_eq!(ids.len(), 3, "{html}");
    assert_eq!(html.matches("Diese Sitzung").count(), 1);
    // The current session is the one marked; end one of the others.
    let current_row = html
        .split("<tr>")
        .find(|r| r.contains("Diese Sitzung"))
        .unwrap();
    let other = ids
        .iter()
        .find(|id| !current_row.contains(&format!("/sessions/{id}/end")))
        .unwrap();
    let r = app
        .post_form(
            &c1,
            "praxis-a",
            "/id/account",
            &format!("/id/account/sessions/{other}/end"),
            &[],
        )
        .await;
    assert_eq!(r.status(), 303);
    assert!(alive(&app, &t1).await);
    assert_eq!(
        [alive(&app, &t2).await, alive(&app, &t3).await]
            .iter()
            .filter(|a| **a)
            .count(),
        1
    );

    // Someone else's session id is not found (and not ended).
    let (cb, tb) = {
        app.create_user("praxis-a", "ben", PW, false).await;
        signed_in(&app, "ben").await
    };
    let html_b = cb
        .get(app.url("praxis-a", "/id/account"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let ben_id = html_b
        .split("href=\"/id/account/sessions/")
        .nth(1)
        .unwrap()
        .split_once("/end\"")
        .unwrap()
        .0
        .to_owned();
    let r = app
        .post_form(
            &c1,
            "praxis-a",
            "/id/account",
            &format!("/id/account/sessions/{ben_id}/end"),
            &[],
        )
        .await;
    assert_eq!(r.status(), 404);
    assert!(alive(&app, &tb).await);

    let r = app
        .post_form(
            &c1,
            "praxis-a",
            "/id/account",
            "/id/account/sessions/end-others",
            &[],
        )
        .await;
    assert_eq!(r.status(), 303);
    assert!(alive(&app, &t1).await);
    assert!(!alive(&app, &t2).await && !alive(&app, &t3).await);
    assert!(alive(&app, &tb).await, "other users are not touched");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changing_the_password_ends_the_other_sessions() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    app.create_user("praxis-a", "anna", PW, false).await;
    let (c1, t1) = signed_in(&app, "anna").await;
    let (_c2, t2) = signed_in(&app, "anna").await;
    let new = "Neues-Passwort-Wiese-77";
    let r = app
        .post_form(
            &c1,
            "praxis-a",
            "/id/account",
            "/id/account/password",
            &[("current", PW), ("password", new), ("password_repeat", new)],
        )
        .await;
    assert_eq!(r.status(), 303);
    let t1_new = set_cookie(&r, "kollegium-id").unwrap();
    assert_ne!(t1_new, t1, "a fresh token after the change");
    assert_eq!(status(&c1, &app, "/id/account").await, 200);
    assert!(!alive(&app, &t1).await && !alive(&app, &t2).await);
    let c = client();
    assert_eq!(app.login(&c, "praxis-a", "anna", PW).await.status(), 401);
    assert_eq!(app.login(&c, "praxis-a", "anna", new).await.status(), 303);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_shared_practice_pc_nothing_of_the_previous_user_remains() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    app.create_user("praxis-a", "anna", PW, false).await;
    app.create_user("praxis-a", "ben", PW, false).await;
    let pc = client();
    let r = app.login(&pc, "praxis-a", "anna", PW).await;
    let anna_token = set_cookie(&r, "kollegium-id").unwrap();
    logout(&app, &pc, "praxis-a").await;
    let r = app.login(&pc, "praxis-a", "ben", PW).await;
    assert_eq!(r.status(), 303);
    for path in ["/id/account", "/id/account/apps", "/id/account/totp"] {
        let html = pc
            .get(app.url("praxis-a", path))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(html.contains("ben"), "{path}");
        assert!(!html.contains("anna"), "{path}: {html}");
    }
    assert!(!alive(&app, &anna_token).await);
    // Back in the browser's history: the login page, not anna's account.
    logout(&app, &pc, "praxis-a").await;
    assert_eq!(status(&pc, &app, "/id/account").await, 303);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabling_a_user_ends_their_sessions_at_once() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    app.create_user("praxis-a", "chefin", PW, true).await;
    let anna = app.create_user("praxis-a", "anna", PW, false).await;
    let (c, token) = signed_in(&app, "anna").await;
    let (admin, _) = signed_in(&app, "chefin").await;
    let page = format!("/id/admin/users/{}", anna.0);
    let r = app
        .post_form(&admin, "praxis-a", &page, &format!("{page}/disable"), &[])
        .await;
    assert_eq!(r.status(), 303);
    assert_eq!(status(&c, &app, "/id/account").await, 303);
    assert!(!alive(&app, &token).await);
    let r = app.login(&client(), "praxis-a", "anna", PW).await;
    assert_eq!(r.status(), 401);
    assert!(r.text().await.unwrap().contains("deaktiviert"));
}
