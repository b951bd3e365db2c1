//! One-time links and the user administration around mail: expiry, the owner's setup link
//! from the CLI, and every way a request to the admin endpoints must be refused.

use std::sync::Arc;
use std::time::{Duration, Instant};

use kollegium_tenants::clock::ManualClock;
use kollegium_tenants::{Clock, SharedClock, SystemClock};

use crate::harness::{TestApp, cli_in, client, form_csrf_at, meta_csrf, stderr, stdout};
use crate::mail::use_link;
use crate::smtp::parse_eml;

const ADMIN_PW: &str = "Verwaltung-Sicher-2026";
const NEW_PW: &str = "Kirschbaum-Laterne-77";

async fn outbox_mail(app: &TestApp, slug: &str, n: usize) -> crate::smtp::Mail {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let files = app.outbox(slug);
        if files.len() >= n {
            return parse_eml(&files[n - 1]);
        }
        assert!(
            Instant::now() < deadline,
            "outbox has {} of {n} mails",
            files.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn link_path(out: &str) -> String {
    let start = out.find("/id/setup/").expect("output has a setup link");
    let end = out[start..]
        .find(char::is_whitespace)
        .map_or(out.len(), |e| start + e);
    out[start..end].to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invitation_link_expires_after_72_hours() {
    let clock = Arc::new(ManualClock::new(SystemClock.now()));
    let shared: SharedClock = clock.clone();
    let app = TestApp::spawn_with_clock(shared, |_| {}).await;
    app.create_practice("praxis-a").await;
    app.create_user("praxis-a", "chefin", ADMIN_PW, true).await;
    let admin = client();
    assert_eq!(
        app.login(&admin, "praxis-a", "chefin", ADMIN_PW)
            .await
            .status(),
        303
    );
    let r = app
        .invite(&admin, "praxis-a", "bernd", "bernd@praxis-a.example")
        .await;
    assert_eq!(r.status(), 303);
    let m = outbox_mail(&app, "praxis-a", 1).await;
    assert!(m.text().contains("72 Stunden"));
    let path = m.setup_path();

    clock.advance(72 * 3600 - 60);
    let c = client();
    assert_eq!(
        c.get(app.url("praxis-a", &path))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    clock.advance(61);
    let page = c.get(app.url("praxis-a", &path)).send().await.unwrap();
    assert_eq!(page.status(), 410, "expired after 72 h");
    let token = form_csrf_at(&c, app.url("praxis-a", "/id/login")).await;
    let r = c
        .post(app.url("praxis-a", &path))
        .form(&[
            ("csrf_token", token.as_str()),
            ("password", NEW_PW),
            ("password_repeat", NEW_PW),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 410);
    assert_eq!(
        app.login(&client(), "praxis-a", "bernd", NEW_PW)
            .await
            .status(),
        401
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_owner_completes_setup_through_a_link_from_the_cli() {
    // Fast sweeps, so mail queued by the CLI (outside the server) goes out quickly.
    let app = TestApp::spawn_with(|c| {
        c.smtp.retry_initial_secs = 1;
        c.smtp.retry_max_secs = 2;
    })
    .await;
    let report = app.create_practice("praxis-a").await;
    let first = link_path(&report.values["owner_setup_link"]);
    let data = app.data_dir();

    let out = cli_in(&data, &["practice", "setup-link", "praxis-a"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let printed = stdout(&out);
    assert!(
        printed.contains("http://praxis-a.localhost:8080/id/setup/"),
        "{printed}"
    );
    let path = link_path(&printed);
    assert_ne!(path, first);
    let c = client();
    assert_eq!(
        c.get(app.url("praxis-a", &first))
            .send()
            .await
            .unwrap()
            .status(),
        410,
        "the earlier link is void"
    );

    // The owner chooses user name, display name and password.
    let r = use_link(
        &app,
        &c,
        "praxis-a",
        &path,
        &[
            ("username", "ina.haber"),
            ("display_name", "Dr. Ina Haber"),
            ("password", NEW_PW),
            ("password_repeat", NEW_PW),
        ],
    )
    .await;
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
    assert_eq!(
        app.login(&c, "praxis-a", "ina.haber", NEW_PW)
            .await
            .status(),
        303
    );
    let users = c
        .get(app.url("praxis-a", "/id/admin/users"))
        .send()
        .await
        .unwrap();
    assert_eq!(users.status(), 200, "the owner is an administrator");
    assert!(users.text().await.unwrap().contains("Dr. Ina Haber"));

    let out = cli_in(&data, &["practice", "setup-link", "praxis-a"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("already completed setup"),
        "{}",
        stderr(&out)
    );
    assert!(!stdout(&out).contains("/id/setup/"));
    let out = cli_in(&data, &["practice", "setup-link", "praxis-zz"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("no practice"), "{}", stderr(&out));
    let out = cli_in(&data, &["practice", "setup-link", "../etc"], &[]);
    assert_eq!(out.status.code(), Some(2));

    // `practice create` with SMTP configured queues the setup link as mail; the running
    // server (here without SMTP: outbox) finds it in its sweep of new practices.
    let out = cli_in(
        &data,
        &[
            "practice",
            "create",
            "praxis-c",
            "--name",
            "Praxis C",
            "--owner-email",
            "ina@praxis-c.example",
        ],
        &[
            ("KOLLEGIUM_SMTP__HOST", "127.0.0.1"),
            ("KOLLEGIUM_SMTP__TLS", "none"),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("mailed to the owner"),
        "{}",
        stdout(&out)
    );
    let m = outbox_mail(&app, "praxis-c", 1).await;
    assert_eq!(m.to.as_deref(), Some("ina@praxis-c.example"));
    assert_eq!(m.subject.as_deref(), Some("Zugang für Praxis C einrichten"));
    assert_eq!(link_path(m.text()), link_path(&stdout(&out)));
    assert!(
        app.outbox("praxis-a").is_empty(),
        "A had no SMTP at creation: no mail"
    );
}

/// The CSRF token of `c` at a practice (from the login page, or the account page when
/// signed in).
async fn csrf_of(c: &reqwest::Client, app: &TestApp, slug: &str) -> String {
    let r = c.get(app.url(slug, "/id/login")).send().await.unwrap();
    let r = if r.status() == 200 {
        r
    } else {
        c.get(app.url(slug, "/id/account")).send().await.unwrap()
    };
    meta_csrf(&r.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_user_endpoints_refuse_bad_requests() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    app.create_practice("praxis-b").await;
    app.create_user("praxis-a", "chefin", ADMIN_PW, true).await;
    let anna = app
        .create_user("praxis-a", "anna", "Anna-Passwort-Lang-1", false)
        .await;
    app.create_user("praxis-b", "boss", ADMIN_PW, true).await;
    let berta = app
        .create_user("praxis-b", "berta", "Berta-Passwort-Lang-1", false)
        .await;
    assert_eq!(anna.0, berta.0, "ids are per practice database");
    let users = |id: i64| format!("/id/admin/users/{id}");
    let invite = |token: &str, username: &str, email: &str| {
        vec![
            ("csrf_token", token.to_owned()),
            ("username", username.to_owned()),
            ("email", email.to_owned()),
            ("display_name", "X".to_owned()),
        ]
    };

    // Unauthenticated: sent to the login page, nothing created.
    let anon = client();
    let r = anon
        .get(app.url("praxis-a", "/id/admin/users"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let t = csrf_of(&anon, &app, "praxis-a").await;
    let r = anon
        .post(app.url("praxis-a", "/id/admin/users"))
        .form(&invite(&t, "eve", "eve@praxis-a.example"))
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
    let r = anon
        .post(app.url("praxis-a", &format!("{}/reset", users(anna.0))))
        .form(&[("csrf_token", t.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);

    // A member who is not an admin: 403 everywhere.
    let member = client();
    assert_eq!(
        app.login(&member, "praxis-a", "anna", "Anna-Passwort-Lang-1")
            .await
            .status(),
        303
    );
    for path in ["/id/admin/users", "/id/admin/users/new", &users(anna.0)] {
        let r = member.get(app.url("praxis-a", path)).send().await.unwrap();
        assert_eq!(r.status(), 403, "{path}");
    }
    let t = csrf_of(&member, &app, "praxis-a").await;
    let r = member
        .post(app.url("praxis-a", "/id/admin/users"))
        .form(&invite(&t, "eve", "eve@praxis-a.example"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = member
        .post(app.url("praxis-a", &format!("{}/reset", users(1))))
        .form(&[("csrf_token", t.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    // The admin, with bad input.
    let admin = client();
    assert_eq!(
        app.login(&admin, "praxis-a", "chefin", ADMIN_PW)
            .await
            .status(),
        303
    );
    let t = csrf_of(&admin, &app, "praxis-a").await;
    let post = |path: String, body: Vec<(&'static str, String)>| {
        let admin = admin.clone();
        let url = app.url("praxis-a", &path);
        async move {
            admin
                .post(url)
                .form(&body)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    let no_csrf = invite("", "eve", "eve@praxis-a.example")[1..].to_vec();
    assert_eq!(post("/id/admin/users".into(), no_csrf).await, 403);
    let r = admin
        .post(app.url("praxis-a", "/id/admin/users"))
        .header("x-csrf-token", &t)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("username=%zz%&&&email")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "malformed form");
    assert_eq!(
        post(
            "/id/admin/users".into(),
            invite(&t, "eve", "kein-at-zeichen")
        )
        .await,
        400
    );
    assert_eq!(
        post(
            "/id/admin/users".into(),
            invite(&t, "e v e", "eve@praxis-a.example")
        )
        .await,
        400
    );
    assert_eq!(
        post(
            "/id/admin/users".into(),
            invite(&t, "anna", "neu@praxis-a.example")
        )
        .await,
        400
    );
    let mut huge = invite(&t, "eve", "eve@praxis-a.example");
    huge.push(("work_areas", "x".repeat(200 * 1024)));
    assert_eq!(post("/id/admin/users".into(), huge).await, 413);
    let mut roles = invite(&t, "eve", "eve@praxis-a.example");
    roles.push(("roles", "chefarzt-ohne-katalog".into()));
    assert_eq!(post("/id/admin/users".into(), roles).await, 400);
    let csrf_only = || vec![("csrf_token", t.clone())];
    assert_eq!(
        post(format!("{}/reset", users(999_999)), csrf_only()).await,
        404
    );
    assert_eq!(
        post(format!("{}/frobnicate", users(anna.0)), csrf_only()).await,
        400,
        "an unknown action"
    );
    assert_eq!(
        post("/id/admin/users/abc/reset".into(), csrf_only()).await,
        404
    );
    assert_eq!(
        post(format!("{}/resend", users(anna.0)), csrf_only()).await,
        400,
        "anna is no longer invited"
    );
    let r = admin
        .get(app.url("praxis-a", &users(999_999)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    // Nothing was half-written: no new account, no queued mail.
    let list = admin
        .get(app.url("praxis-a", "/id/admin/users"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(list.contains("anna@praxis-a.example"));
    assert!(
        !list.contains("eve@praxis-a.example"),
        "no account was created"
    );
    assert!(app.mail_rows("praxis-a").await.is_empty());

    // Cross-practice: B's admin acting on "the same" id reaches B's user only.
    let b_admin = client();
    let b_login = app.login(&b_admin, "praxis-b", "boss", ADMIN_PW).await;
    assert_eq!(b_login.status(), 303);
    let tb = csrf_of(&b_admin, &app, "praxis-b").await;
    let r = b_admin
        .post(app.url("praxis-b", &format!("{}/disable", users(anna.0))))
        .form(&[("csrf_token", tb.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(
        app.login(&client(), "praxis-b", "berta", "Berta-Passwort-Lang-1")
            .await
            .status(),
        401,
        "B's user was disabled"
    );
    assert_eq!(
        app.login(&client(), "praxis-a", "anna", "Anna-Passwort-Lang-1")
            .await
            .status(),
        303,
        "A's user is untouched"
    );
    // B's token is worthless at A, and B's session cookie does not sign in at A.
    let r = admin
        .post(app.url("praxis-a", &format!("{}/disable", users(anna.0))))
        .form(&[("csrf_token", tb.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let b_session = b_login
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
        .find(|c| c.starts_with("kollegium-id="))
        .expect("B's session cookie");
    let bare = crate::harness::builder().build().unwrap();
    let at_b = bare
        .get(app.url("praxis-b", "/id/admin/users"))
        .header("cookie", &b_session)
        .send()
        .await
        .unwrap();
    assert_eq!(at_b.status(), 200, "the cookie is B's admin session");
    let at_a = bare
        .get(app.url("praxis-a", "/id/admin/users"))
        .header("cookie", &b_session)
        .send()
        .await
        .unwrap();
    assert_eq!(at_a.status(), 303, "B's session means nothing at A");
    assert!(app.mail_rows("praxis-b").await.is_empty());
}
