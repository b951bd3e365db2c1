//! IdP accounts: login, logout, sessions, self-service, administration.

use crate::harness::{TestApp, client, form_csrf};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_logout_and_the_account_page() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    app.create_user("praxis-a", "anna", "Sonnenblume-Kaffee-42", false)
        .await;
    let c = client();

    // Unauthenticated: sent to the login page, keeping where we wanted to go.
    let r = c
        .get(app.url("praxis-a", "/id/account"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/id/login?next=%2Fid%2Faccount");

    let r = app
        .login(&c, "praxis-a", "anna", "falsch-falsch-falsch")
        .await;
    assert_eq!(r.status(), 401);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("Benutzername oder Passwort ist falsch.")
    );

    let r = app
        .login(&c, "praxis-a", "anna", "Sonnenblume-Kaffee-42")
        .await;
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        cookie.starts_with("kollegium-id=")
            && cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );

    let page = c
        .get(app.url("praxis-a", "/id/account"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["cache-control"], "no-store");
    let html = page.text().await.unwrap();
    assert!(html.contains("anna@praxis-a.example"));
    assert!(html.contains("Meine Sitzungen"));

    // Logout ends the session server-side: the old cookie is worthless afterwards.
    let token = form_csrf(&html);
    let r = c
        .post(app.url("praxis-a", "/id/logout"))
        .form(&[("csrf_token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let replay = crate::harness::builder().build().unwrap();
    let session_value = cookie.split(';').next().unwrap().to_owned();
    let r = replay
        .get(app.url("praxis-a", "/id/account"))
        .header("cookie", session_value)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "a logged-out session must not come back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_of_practice_a_cannot_log_in_at_practice_b() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    app.create_practice("praxis-b").await;
    app.create_user("praxis-a", "anna", "Sonnenblume-Kaffee-42", false)
        .await;
    let c = client();
    let r = app
        .login(&c, "praxis-b", "anna", "Sonnenblume-Kaffee-42")
        .await;
    assert_eq!(r.status(), 401);
    let r = app
        .login(&c, "praxis-a", "anna", "Sonnenblume-Kaffee-42")
        .await;
    assert_eq!(r.status(), 303);
    // A's session cookie means nothing at B (host-only cookie, and B's database).
    let r = c
        .get(app.url("praxis-b", "/id/account"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
}
