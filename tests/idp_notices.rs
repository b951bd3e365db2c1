//! Every action of the account and the administration says what it did (`?done=`, one
//! list of German notices), and destructive ones ask first ("Wirklich …?" as a page of its
//! own, so it works without JavaScript).

use crate::harness::{TestApp, client};

const PW: &str = "Sonnenblume-Kaffee-42";

async fn html(c: &reqwest::Client, app: &TestApp, path: &str) -> (u16, String) {
    let r = c.get(app.url("praxis-a", path)).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

async fn signed_in(app: &TestApp, user: &str) -> reqwest::Client {
    let c = client();
    assert_eq!(app.login(&c, "praxis-a", user, PW).await.status(), 303);
    c
}

/// Follows a 303 and returns the page it leads to.
async fn after(app: &TestApp, c: &reqwest::Client, r: reqwest::Response) -> String {
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap_or_default());
    let to = r.headers()["location"].to_str().unwrap().to_owned();
    let (status, page) = html(c, app, &to).await;
    assert_eq!(status, 200, "{to}");
    page
}

fn notice(page: &str) -> &str {
    page.split("class=\"notice ok\" role=\"status\">")
        .nth(1)
        .and_then(|p| p.split("</p>").next())
        .unwrap_or("")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_user_page_says_what_each_action_did() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    app.create_user("praxis-a", "chefin", PW, true).await;
    let anna = app.create_user("praxis-a", "anna", PW, false).await;
    let admin = signed_in(&app, "chefin").await;
    let page = format!("/id/admin/users/{}", anna.0);

    let r = app
        .post_form(&admin, "praxis-a", &page, &format!("{page}/reset"), &[])
        .await;
    assert!(notice(&after(&app, &admin, r).await).starts_with("Link gesendet"));

    let r = app
        .post_form(&admin, "praxis-a", &page, &format!("{page}/disable"), &[])
        .await;
    let shown = after(&app, &admin, r).await;
    assert!(notice(&shown).starts_with("Konto deaktiviert."), "{shown}");
    assert!(shown.contains("Deaktiviert"));

    let r = app
        .post_form(&admin, "praxis-a", &page, &format!("{page}/enable"), &[])
        .await;
    assert!(notice(&after(&app, &admin, r).await).starts_with("Konto aktiviert."));

    let fields = [
        ("display_name", "Anna Neu"),
        ("username", "anna"),
        ("email", "anna@praxis-a.example"),
        ("roles", "mfa"),
    ];
    let r = app
        .post_form(&admin, "praxis-a", &page, &page, &fields)
        .await;
    assert_eq!(notice(&after(&app, &admin, r).await), "Gespeichert.");

    // Codes that are not ours show nothing, and never the address's text.
    let (_, shown) = html(&admin, &app, &format!("{page}?done=%3Cb%3Eboom%3C%2Fb%3E")).await;
    assert_eq!(notice(&shown), "");
    assert!(!shown.contains("boom"));

    let r = app
        .post_form(
            &admin,
            "praxis-a",
            &page,
            &format!("{page}/delete"),
            &[("confirm", "anna")],
        )
        .await;
    assert_eq!(
        notice(&after(&app, &admin, r).await),
        "Das Konto wurde gelöscht."
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn account_devices_and_tools_confirm_their_actions() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    app.create_user("praxis-a", "chefin", PW, true).await;
    let admin = signed_in(&app, "chefin").await;

    let r = app
        .post_form(
            &admin,
            "praxis-a",
            "/id/account",
            "/id/account/profile",
            &[("display_name", "Dr. Chefin")],
        )
        .await;
    assert_eq!(
        notice(&after(&app, &admin, r).await),
        "Ihr Profil wurde gespeichert."
    );

    let r = app
        .post_form(
            &admin,
            "praxis-a",
            "/id/admin/devices",
            "/id/admin/policies",
            &[("device_policy", "approval"), ("mfa_policy", "optional")],
        )
        .await;
    assert_eq!(
        notice(&after(&app, &admin, r).await),
        "Die Einstellungen wurden gespeichert."
    );

    let id = new_tool(&app, &admin, "Dienstplan", "https://dienstplan.example/cb").await;
    let r = app
        .post_form(
            &admin,
            "praxis-a",
            "/id/admin/clients",
            &format!("/id/admin/clients/{id}/disable"),
            &[],
        )
        .await;
    assert!(notice(&after(&app, &admin, r).await).starts_with("Die Anwendung wurde deaktiviert."));
    let r = app
        .post_form(
            &admin,
            "praxis-a",
            "/id/admin/clients",
            &format!("/id/admin/clients/{id}/enable"),
            &[],
        )
        .await;
    assert_eq!(
        notice(&after(&app, &admin, r).await),
        "Die Anwendung wurde aktiviert."
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deactivating_an_account_and_renewing_a_secret_ask_first() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    let me = app.create_user("praxis-a", "chefin", PW, true).await;
    let anna = app.create_user("praxis-a", "anna", PW, false).await;
    let admin = signed_in(&app, "chefin").await;
    let page = format!("/id/admin/users/{}", anna.0);

    // The account's page leads to the question, not to the action.
    let (_, form) = html(&admin, &app, &page).await;
    assert!(form.contains(&format!("href=\"{page}/disable\"")), "{form}");
    assert!(!form.contains(&format!("action=\"{page}/disable\"")));
    let (status, ask) = html(&admin, &app, &format!("{page}/disable")).await;
    assert_eq!(status, 200);
    assert!(ask.contains("Konto deaktivieren?"));
    assert!(ask.contains("anna Test"), "names whom: {ask}");
    assert!(ask.contains(&format!("action=\"{page}/disable\"")));
    assert!(
        ask.contains(&format!("href=\"{page}\"")),
        "Abbrechen leads back"
    );
    // Looking at the question changed nothing.
    let (_, still) = html(&admin, &app, &page).await;
    assert!(!still.contains("<span class=\"chip\">Deaktiviert</span>"));
    // The question's own button does it.
    let r = app
        .post_form(
            &admin,
            "praxis-a",
            &format!("{page}/disable"),
            &format!("{page}/disable"),
            &[],
        )
        .await;
    assert!(notice(&after(&app, &admin, r).await).starts_with("Konto deaktiviert."));
    // A refused action says so before asking: one's own account.
    let (status, _) = html(&admin, &app, &format!("/id/admin/users/{}/disable", me.0)).await;
    assert_eq!(status, 400);

    // Renewing a tool's secret.
    let id = new_tool(&app, &admin, "Zeiterfassung", "https://zeit.example/cb").await;
    let rotate = format!("/id/admin/clients/{id}/rotate");
    let (_, list) = html(&admin, &app, "/id/admin/clients").await;
    assert!(list.contains(&format!("href=\"{rotate}\"")));
    assert!(!list.contains(&format!("action=\"{rotate}\"")));
    let (status, ask) = html(&admin, &app, &rotate).await;
    assert_eq!(status, 200);
    assert!(ask.contains("Geheimnis erneuern?"), "{ask}");
    assert!(ask.contains("Zeiterfassung"));
    assert!(ask.contains("gilt sofort nicht mehr"));
    let r = app
        .post_form(&admin, "praxis-a", &rotate, &rotate, &[])
        .await;
    assert_eq!(r.status(), 200);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("Dieses Geheimnis wird nur jetzt angezeigt")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_questions_are_for_admins_of_this_practice_only() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    app.create_practice("praxis-b").await;
    app.create_user("praxis-a", "chefin", PW, true).await;
    let anna = app.create_user("praxis-a", "anna", PW, false).await;
    app.create_user("praxis-b", "boss", PW, true).await;
    let disable = format!("/id/admin/users/{}/disable", anna.0);

    // Not signed in: to the login page.
    let r = client()
        .get(app.url("praxis-a", &disable))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert!(
        r.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with("/id/login")
    );
    // A colleague without admin rights.
    let c = signed_in(&app, "anna").await;
    assert_eq!(html(&c, &app, &disable).await.0, 403);
    assert_eq!(html(&c, &app, "/id/admin/devices/1/remove").await.0, 403);
    // An admin of another practice: its own session does not count here, and an id of
    // that practice's accounts is not one of this practice's.
    let b = client();
    assert_eq!(app.login(&b, "praxis-b", "boss", PW).await.status(), 303);
    let r = b.get(app.url("praxis-a", &disable)).send().await.unwrap();
    assert_eq!(r.status(), 303);
    let r = b.get(app.url("praxis-b", &disable)).send().await.unwrap();
    assert_eq!(r.status(), 404, "anna is not an account of praxis-b");
    // Malformed, unknown and oversized.
    let admin = signed_in(&app, "chefin").await;
    for path in [
        "/id/admin/users/abc/disable".to_owned(),
        format!("/id/admin/users/{}/explode", anna.0),
        "/id/admin/devices/999/remove".to_owned(),
        "/id/admin/devices/x/remove".to_owned(),
        "/id/admin/clients/unbekannt/rotate".to_owned(),
        format!("/id/admin/clients/{}/rotate", "x".repeat(5000)),
        "/id/account/sessions/999999/end".to_owned(),
        "/id/account/sessions/x/end".to_owned(),
    ] {
        assert_eq!(
            html(&admin, &app, &path).await.0,
            404,
            "{}",
            &path[..60.min(path.len())]
        );
    }
    // The action itself still needs the form's token.
    let r = admin
        .post(app.url("praxis-a", &disable))
        .form(&[("x", "1")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let (_, page) = html(&admin, &app, &format!("/id/admin/users/{}", anna.0)).await;
    assert!(!page.contains("<span class=\"chip\">Deaktiviert</span>"));
}

/// Registers a confidential tool through the admin form; returns its id from the list.
async fn new_tool(app: &TestApp, admin: &reqwest::Client, name: &str, redirect: &str) -> String {
    let r = app
        .post_form(
            admin,
            "praxis-a",
            "/id/admin/clients",
            "/id/admin/clients",
            &[
                ("name", name),
                ("kind", "confidential"),
                ("redirect_uris", redirect),
            ],
        )
        .await;
    let listed = r.text().await.unwrap();
    listed
        .split("href=\"/id/admin/clients/")
        .nth(1)
        .and_then(|p| p.split('"').next())
        .unwrap()
        .to_owned()
}
