//! Mail delivery end to end: a real SMTP server (aiosmtpd), the file outbox without one,
//! retries while the relay is down, and the one-time links the mails carry.

use std::time::{Duration, Instant};

use crate::harness::{TestApp, client, form_csrf, form_csrf_at, use_smtp};
use crate::smtp::{Mail, SmtpSink, parse_eml};

const ADMIN_PW: &str = "Verwaltung-Sicher-2026";
const NEW_PW: &str = "Kirschbaum-Laterne-77";

/// Sets a password through a one-time link's form; returns the form post's response.
pub async fn use_link(
    app: &TestApp,
    c: &reqwest::Client,
    slug: &str,
    path: &str,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    let page = c.get(app.url(slug, path)).send().await.unwrap();
    assert_eq!(page.status(), 200, "the link opens the form");
    let token = form_csrf(&page.text().await.unwrap());
    let mut form = vec![("csrf_token", token.as_str())];
    form.extend_from_slice(fields);
    c.post(app.url(slug, path))
        .form(&form)
        .send()
        .await
        .unwrap()
}

pub fn assert_no_secret(mail: &Mail, secrets: &[&str]) {
    for s in secrets {
        assert!(!mail.raw.contains(s), "mail must not carry {s:?}");
    }
    let lower = mail.text().to_lowercase();
    assert!(!lower.contains("passwort:"), "no password in the mail");
}

pub async fn wait_rows(
    app: &TestApp,
    slug: &str,
    secs: u64,
    done: impl Fn(&[crate::harness::MailRow]) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let rows = app.mail_rows(slug).await;
        if done(&rows) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "mail queue never reached the state: {rows:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invitation_reaches_the_smtp_server_and_its_link_works_once() {
    let smtp = SmtpSink::start();
    let app = TestApp::spawn_with(|c| use_smtp(c, smtp.port)).await;
    app.create_practice("praxis-a").await;
    // The owner's setup mail (SMTP is configured at creation) goes out first.
    let owner = smtp.wait_for(1, 20).await;
    assert_eq!(
        owner[0].envelope_to,
        vec!["owner@praxis-a.example".to_owned()]
    );
    assert_eq!(
        owner[0].subject.as_deref(),
        Some("Zugang für Praxis praxis-a einrichten")
    );
    let owner_link = owner[0].setup_path();
    assert!(owner[0].html().contains(&owner_link));
    let r = client()
        .get(app.url("praxis-a", &owner_link))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        200,
        "the mailed owner link opens the setup form"
    );
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
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
    assert_eq!(r.headers()["location"], "/id/admin/users?done=invited");

    let mails = smtp.wait_for(2, 20).await;
    let m = &mails[1];
    assert_eq!(m.envelope_to, vec!["bernd@praxis-a.example".to_owned()]);
    assert_eq!(m.to.as_deref(), Some("bernd@praxis-a.example"));
    assert_eq!(
        m.from.as_deref(),
        Some("Kollegium <no-reply@kollegium.example>")
    );
    assert_eq!(m.subject.as_deref(), Some("Einladung zu Praxis praxis-a"));
    assert_eq!(m.content_type, "multipart/alternative");
    assert_eq!(m.auto_submitted.as_deref(), Some("auto-generated"));
    let path = m.setup_path();
    let link = app.url("praxis-a", &path);
    assert!(m.text().contains(&link), "plain part has the full link");
    assert!(
        m.html().contains(&format!("href=\"{link}\"")),
        "HTML part links it"
    );
    assert!(m.text().contains("Benutzername: bernd"));
    assert_no_secret(m, &[ADMIN_PW]);
    assert!(
        app.outbox("praxis-a").is_empty(),
        "with SMTP nothing goes to the outbox"
    );
    wait_rows(&app, "praxis-a", 10, |rows| {
        rows.iter().all(|r| r.sent_at.is_some() && r.attempts == 1)
    })
    .await;

    // The link sets the password once; the account then works.
    let c = client();
    let r = use_link(
        &app,
        &c,
        "praxis-a",
        &path,
        &[("password", NEW_PW), ("password_repeat", NEW_PW)],
    )
    .await;
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
    assert_eq!(r.headers()["location"], "/id/login?done=setup");
    assert_eq!(
        app.login(&c, "praxis-a", "bernd", NEW_PW).await.status(),
        303
    );

    // Used: the page and the form answer 410 and change nothing.
    let again = client();
    let r = again.get(app.url("praxis-a", &path)).send().await.unwrap();
    assert_eq!(r.status(), 410);
    let login_page = again
        .get(app.url("praxis-a", "/id/login"))
        .send()
        .await
        .unwrap();
    let token = form_csrf(&login_page.text().await.unwrap());
    let r = again
        .post(app.url("praxis-a", &path))
        .form(&[
            ("csrf_token", token.as_str()),
            ("password", "Anderes-Passwort-99"),
            ("password_repeat", "Anderes-Passwort-99"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 410);
    assert_eq!(
        app.login(&client(), "praxis-a", "bernd", NEW_PW)
            .await
            .status(),
        303
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_waits_while_smtp_is_down_and_goes_out_when_it_returns() {
    let mut smtp = SmtpSink::start();
    smtp.stop();
    let app = TestApp::spawn_with(|c| use_smtp(c, smtp.port)).await;
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
    assert_eq!(
        r.status(),
        303,
        "the invitation succeeds although mail is down"
    );

    // Both mails (owner setup, invitation) wait; attempts grow; nothing is lost.
    wait_rows(&app, "praxis-a", 30, |rows| {
        rows.len() == 2 && rows.iter().all(|r| r.sent_at.is_none() && r.attempts >= 2)
    })
    .await;
    let rows = app.mail_rows("praxis-a").await;
    assert!(
        rows.iter()
            .all(|r| r.last_error.is_some() && r.failed_at.is_none())
    );
    let kinds: Vec<_> = rows
        .iter()
        .map(|r| (r.id, r.kind.as_str(), r.recipient.as_str()))
        .collect();
    assert_eq!(
        kinds,
        vec![
            (1, "owner_setup", "owner@praxis-a.example"),
            (2, "invitation", "bernd@praxis-a.example")
        ]
    );
    assert!(
        app.outbox("praxis-a").is_empty(),
        "no fallback to the outbox"
    );
    // Each mail's job counted its failed attempts and waits for its retry.
    let jobs = app
        .idp_db("praxis-a", |c| {
            use diesel::prelude::*;
            use kollegium_idp::schema::jobs as j;
            j::table
                .filter(j::kind.eq(kollegium_tenants::mail::JOB_KIND))
                .order(j::key)
                .select((j::key, j::attempts, j::last_error, j::failed_at))
                .load::<(String, i64, Option<String>, Option<i64>)>(c)
                .unwrap()
        })
        .await;
    assert_eq!(
        jobs.iter().map(|j| j.0.as_str()).collect::<Vec<_>>(),
        ["1", "2"]
    );
    assert!(
        jobs.iter()
            .all(|(_, attempts, error, failed)| *attempts >= 1
                && error.is_some()
                && failed.is_none()),
        "{jobs:?}"
    );

    smtp.restart();
    let mails = smtp.wait_for(2, 30).await;
    let mut to: Vec<_> = mails.iter().map(|m| m.envelope_to[0].clone()).collect();
    to.sort();
    assert_eq!(to, vec!["bernd@praxis-a.example", "owner@praxis-a.example"]);
    for m in &mails {
        let id = m.message_id.as_deref().unwrap();
        assert!(
            id.starts_with('<') && id.ends_with("@kollegium.example>"),
            "{id}"
        );
    }
    wait_rows(&app, "praxis-a", 10, |rows| {
        rows.iter().all(|r| r.sent_at.is_some())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        smtp.messages().len(),
        2,
        "a delivered mail is not sent again"
    );
    // Delivered: the jobs are gone.
    let left = app
        .idp_db("praxis-a", |c| {
            use diesel::prelude::*;
            use kollegium_idp::schema::jobs as j;
            j::table
                .filter(j::kind.eq(kollegium_tenants::mail::JOB_KIND))
                .count()
                .get_result::<i64>(c)
                .unwrap()
        })
        .await;
    assert_eq!(left, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_reset_mail_sets_a_new_password_and_ends_old_sessions() {
    let smtp = SmtpSink::start();
    let app = TestApp::spawn_with(|c| use_smtp(c, smtp.port)).await;
    app.create_practice("praxis-a").await;
    smtp.wait_for(1, 20).await; // owner setup
    app.create_user("praxis-a", "chefin", ADMIN_PW, true).await;
    let bob_id = app
        .create_user("praxis-a", "bob", "Altes-Passwort-Bob-1", false)
        .await;
    let bob = client();
    assert_eq!(
        app.login(&bob, "praxis-a", "bob", "Altes-Passwort-Bob-1")
            .await
            .status(),
        303
    );
    let admin = client();
    assert_eq!(
        app.login(&admin, "praxis-a", "chefin", ADMIN_PW)
            .await
            .status(),
        303
    );

    let page = admin
        .get(app.url("praxis-a", &format!("/id/admin/users/{}", bob_id.0)))
        .send()
        .await
        .unwrap();
    let token = form_csrf(&page.text().await.unwrap());
    let r = admin
        .post(app.url("praxis-a", &format!("/id/admin/users/{}/reset", bob_id.0)))
        .form(&[("csrf_token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);

    let mails = smtp.wait_for(2, 20).await;
    let m = &mails[1];
    assert_eq!(m.envelope_to, vec!["bob@praxis-a.example".to_owned()]);
    assert_eq!(
        m.subject.as_deref(),
        Some("Neues Passwort für Praxis praxis-a")
    );
    assert_no_secret(m, &["Altes-Passwort-Bob-1", ADMIN_PW]);
    let path = m.setup_path();

    // Until the link is used, the old password still works (a reset request alone locks
    // nobody out); using the link replaces it and ends every session.
    let c = client();
    let r = use_link(
        &app,
        &c,
        "praxis-a",
        &path,
        &[("password", NEW_PW), ("password_repeat", NEW_PW)],
    )
    .await;
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
    let r = bob
        .get(app.url("praxis-a", "/id/account"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "the old session ended");
    assert_eq!(
        app.login(&client(), "praxis-a", "bob", "Altes-Passwort-Bob-1")
            .await
            .status(),
        401
    );
    assert_eq!(
        app.login(&client(), "praxis-a", "bob", NEW_PW)
            .await
            .status(),
        303
    );
    let r = client()
        .get(app.url("praxis-a", &path))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 410, "the reset link works once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_smtp_mail_lands_in_the_practice_outbox_and_only_there() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    app.create_practice("praxis-b").await;
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

    let deadline = Instant::now() + Duration::from_secs(20);
    while app.outbox("praxis-a").is_empty() {
        assert!(Instant::now() < deadline, "no .eml in the outbox");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let files = app.outbox("praxis-a");
    assert_eq!(
        files.len(),
        1,
        "only the invitation (no owner mail without SMTP): {files:?}"
    );
    let name = files[0].file_name().unwrap().to_str().unwrap().to_owned();
    assert!(name.ends_with(".eml") && !name.starts_with('.'), "{name}");
    assert!(name.contains("-idp-"), "{name}");
    let m = parse_eml(&files[0]);
    assert_eq!(m.to.as_deref(), Some("bernd@praxis-a.example"));
    assert_eq!(m.content_type, "multipart/alternative");
    assert!(m.raw.contains("\r\n"), "RFC 5322 line endings");
    let path = m.setup_path();
    assert!(m.html().contains(&path));

    // Isolation: B's outbox stays empty and no mail file exists anywhere else.
    assert!(app.outbox("praxis-b").is_empty());
    let all_eml: Vec<_> = crate::harness::files_under(&app.data_dir())
        .into_iter()
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy();
            n.ends_with(".eml") || n.starts_with(".tmp-")
        })
        .collect();
    assert_eq!(all_eml, files, "no stray or temporary mail files");
    let rows = app.mail_rows("praxis-a").await;
    assert_eq!(rows.len(), 1);
    assert!(rows[0].sent_at.is_some());
    assert!(app.mail_rows("praxis-b").await.is_empty());

    // While the account is disabled, its invitation link does nothing.
    let bernd = rows[0].recipient.clone();
    assert_eq!(bernd, "bernd@praxis-a.example");
    let list = admin
        .get(app.url("praxis-a", "/id/admin/users"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let token = form_csrf_at(&admin, app.url("praxis-a", "/id/admin/users/new")).await;
    let id = 3; // owner 1, chefin 2, bernd 3
    assert!(list.contains(&format!("/id/admin/users/{id}\"")), "{list}");
    let act = |what: &'static str| {
        let (admin, token) = (admin.clone(), token.clone());
        let url = app.url("praxis-a", &format!("/id/admin/users/{id}/{what}"));
        async move {
            let r = admin
                .post(url)
                .form(&[("csrf_token", token)])
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 303, "{what}");
        }
    };
    act("disable").await;
    let r = client()
        .get(app.url("praxis-a", &path))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 410, "a disabled account's link is refused");
    act("enable").await;

    // Practice B does not know the token; at A it works like a link from an SMTP mail.
    let r = client()
        .get(app.url("praxis-b", &path))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 410);
    let c = client();
    let r = use_link(
        &app,
        &c,
        "praxis-a",
        &path,
        &[("password", NEW_PW), ("password_repeat", NEW_PW)],
    )
    .await;
    assert_eq!(r.status(), 303);
    assert_eq!(
        app.login(&c, "praxis-a", "bernd", NEW_PW).await.status(),
        303
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lockout_and_waiting_device_mails_reach_the_smtp_server_without_secrets() {
    let smtp = SmtpSink::start();
    let app = TestApp::spawn_with(|c| {
        use_smtp(c, smtp.port);
        c.idp.max_delay_ms = 50;
    })
    .await;
    app.create_practice("praxis-a").await;
    smtp.wait_for(1, 20).await; // the owner's setup mail
    app.create_user("praxis-a", "chefin", ADMIN_PW, true).await;
    app.create_user("praxis-a", "anna", NEW_PW, false).await;
    app.create_user("praxis-a", "bernd", NEW_PW, false).await;
    let admin = client();
    assert_eq!(
        app.login(&admin, "praxis-a", "chefin", ADMIN_PW)
            .await
            .status(),
        303
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
    assert_eq!(r.status(), 303);

    // Anna's account is locked by guessing: she is told.
    let guess = "Geratenes-Passwort-13";
    let c = client();
    let mut last = 0;
    for _ in 0..6 {
        last = app
            .login(&c, "praxis-a", "anna", guess)
            .await
            .status()
            .as_u16();
    }
    assert_eq!(last, 429);
    let mails = smtp.wait_for(2, 20).await;
    let locked = &mails[1];
    assert_eq!(locked.envelope_to, vec!["anna@praxis-a.example".to_owned()]);
    assert_eq!(
        locked.subject.as_deref(),
        Some("Konto vorübergehend gesperrt – Praxis praxis-a")
    );
    assert!(locked.text().contains("anna Test"));
    assert!(locked.text().contains(&app.url("praxis-a", "/id/login")));
    assert_no_secret(locked, &[guess, NEW_PW]);
    assert!(!locked.text().contains(guess) && !locked.html().contains(guess));

    // Bernd signs in on a new browser: the active admins learn that a device waits.
    let b = client();
    let r = app.login(&b, "praxis-a", "bernd", NEW_PW).await;
    assert_eq!(r.headers()["location"], "/id/login/device?next=%2Fid%2F");
    let cookies: Vec<String> = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok()?.split(';').next()?.split_once('='))
        .map(|(_, v)| v.to_owned())
        .filter(|v| v.len() >= 16)
        .collect();
    assert!(!cookies.is_empty(), "session and device cookies");
    let mails = smtp.wait_for(3, 20).await;
    let waiting = &mails[2];
    assert_eq!(
        waiting.envelope_to,
        vec!["chefin@praxis-a.example".to_owned()]
    );
    assert_eq!(
        waiting.subject.as_deref(),
        Some("Ein Gerät wartet auf Freigabe – Praxis praxis-a")
    );
    let link = app.url("praxis-a", "/id/admin/devices");
    assert!(waiting.text().contains(&link) && waiting.html().contains(&link));
    let mut secrets: Vec<&str> = cookies.iter().map(String::as_str).collect();
    secrets.push(NEW_PW);
    assert_no_secret(waiting, &secrets);
    assert!(!waiting.text().contains("bernd"), "not even who it is");
    let rows = app.mail_rows("praxis-a").await;
    assert_eq!(
        rows.iter()
            .map(|r| r.kind.as_str())
            .filter(|k| *k != "owner_setup")
            .collect::<Vec<_>>(),
        ["account_locked", "device_waiting"]
    );
}
