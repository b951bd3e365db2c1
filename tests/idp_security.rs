//! Login security: parallel brute force against the lockout, admin unlock, no user
//! enumeration (message and timing), session fixation, CSRF on every IdP form.

use std::time::Instant;

use reqwest::cookie::{CookieStore, Jar};

use crate::harness::{TestApp, client, form_csrf, raw_client, set_cookie};
use crate::idp_mfa::{PW, T0, logout};

const WRONG: &str = "Benutzername oder Passwort ist falsch.";

async fn event_count(app: &TestApp, slug: &str, kind: &'static str) -> i64 {
    app.idp_db(slug, move |c| {
        kollegium_idp::events::count_kind(c, kind).unwrap()
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_guessing_cannot_pass_the_lockout_and_an_admin_can_unlock() {
    let app = TestApp::spawn_with(|c| c.idp.max_delay_ms = 300).await;
    app.create_practice("praxis-a").await;
    let anna = app.create_user("praxis-a", "anna", PW, false).await;
    app.create_user("praxis-a", "chefin", PW, true).await;
    assert_eq!(app.config.idp.lockout_threshold, 5);

    let c = client();
    let page = c
        .get(app.url("praxis-a", "/id/login"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let token = form_csrf(&page);
    let attempts = (0..20).map(|i| {
        let (c, url, token) = (c.clone(), app.url("praxis-a", "/id/login"), token.clone());
        async move {
            c.post(url)
                .form(&[
                    ("csrf_token", token),
                    ("login", "anna".into()),
                    ("password", format!("falsch-geraten-{i}")),
                ])
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    });
    let statuses = futures_util::future::join_all(attempts).await;
    let checked = statuses.iter().filter(|s| **s == 401).count();
    let locked = statuses.iter().filter(|s| **s == 429).count();
    assert!(checked <= 5, "{statuses:?}");
    assert_eq!(checked + locked, 20, "{statuses:?}");
    assert!(event_count(&app, "praxis-a", "login_failed").await <= 5);
    assert_eq!(event_count(&app, "praxis-a", "lockout").await, 1);

    // Locked: even the right password is refused, with the lockout message.
    let r = app.login(&c, "praxis-a", "anna", PW).await;
    assert_eq!(r.status(), 429);
    assert!(r.text().await.unwrap().contains("Zu viele Fehlversuche"));

    // The admin unlocks; the right password works again.
    let admin = client();
    assert_eq!(
        app.login(&admin, "praxis-a", "chefin", PW).await.status(),
        303
    );
    let page = format!("/id/admin/users/{}", anna.0);
    let r = app
        .post_form(&admin, "praxis-a", &page, &format!("{page}/unlock"), &[])
        .await;
    assert_eq!(r.status(), 303);
    assert_eq!(event_count(&app, "praxis-a", "unlock").await, 1);
    assert_eq!(app.login(&c, "praxis-a", "anna", PW).await.status(), 303);
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_and_known_names_look_the_same() {
    let app = TestApp::spawn_with(|c| {
        // No lockout or delay in the way of the measurement; a hash that costs something.
        c.idp.lockout_threshold = 100_000;
        c.idp.address_lockout_threshold = 100_000;
        c.idp.delay_after = 100_000;
        c.idp.argon2.m_kib = 4096;
    })
    .await;
    app.create_practice("praxis-a").await;
    app.create_user("praxis-a", "anna", PW, false).await;
    let c = client();
    let page = c
        .get(app.url("praxis-a", "/id/login"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let token = form_csrf(&page);
    let attempt = |login: &'static str| {
        let (c, url, token) = (c.clone(), app.url("praxis-a", "/id/login"), token.clone());
        async move {
            let start = Instant::now();
            let r = c
                .post(url)
                .form(&[
                    ("csrf_token", token.as_str()),
                    ("login", login),
                    ("password", "falsch-falsch-1"),
                ])
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let body = r.text().await.unwrap();
            (
                start.elapsed().as_secs_f64(),
                status,
                body.replace(login, "NAME"),
            )
        }
    };
    for _ in 0..3 {
        attempt("anna").await;
        attempt("niemand").await;
    }
    let (mut known, mut unknown) = (Vec::new(), Vec::new());
    for _ in 0..30 {
        let (t1, s1, b1) = attempt("anna").await;
        let (t2, s2, b2) = attempt("niemand").await;
        assert_eq!((s1, s2), (401, 401));
        assert!(b1.contains(WRONG));
        assert_eq!(b1, b2, "same page for known and unknown names");
        known.push(t1);
        unknown.push(t2);
    }
    known.sort_by(f64::total_cmp);
    unknown.sort_by(f64::total_cmp);
    let (k25, k50, k75) = (
        quantile(&known, 0.25),
        quantile(&known, 0.5),
        quantile(&known, 0.75),
    );
    let (u25, u50, u75) = (
        quantile(&unknown, 0.25),
        quantile(&unknown, 0.5),
        quantile(&unknown, 0.75),
    );
    // The interquartile ranges overlap: the difference of the medians is within the noise.
    assert!(
        k25 <= u75 && u25 <= k75,
        "known {k25:.4}/{k50:.4}/{k75:.4} s vs unknown {u25:.4}/{u50:.4}/{u75:.4} s"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_planted_session_cookie_is_never_adopted() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    app.create_user("praxis-a", "anna", PW, false).await;
    app.create_user("praxis-a", "mallory", PW, false).await;

    // The attacker's own, valid session token, planted in the victim's browser.
    let attacker = client();
    let r = app.login(&attacker, "praxis-a", "mallory", PW).await;
    let planted = set_cookie(&r, "kollegium-id").unwrap();
    let jar = std::sync::Arc::new(Jar::default());
    let url: reqwest::Url = app.url("praxis-a", "/").parse().unwrap();
    jar.add_cookie_str(&format!("kollegium-id={planted}; Path=/"), &url);
    let victim = crate::harness::builder()
        .cookie_provider(jar.clone())
        .build()
        .unwrap();
    let page = victim.get(app.url("praxis-a", "/id/login")).send().await;
    // Signed in as mallory, the login page redirects; log in through a fresh form anyway.
    assert_eq!(page.unwrap().status(), 303);
    let token = form_csrf(&form_page(&app, &victim).await);
    let r = victim
        .post(app.url("praxis-a", "/id/login"))
        .form(&[
            ("csrf_token", token.as_str()),
            ("login", "anna"),
            ("password", PW),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let now = set_cookie(&r, "kollegium-id").unwrap();
    assert_ne!(now, planted);
    let cookies = jar.cookies(&url).unwrap();
    assert!(!cookies.to_str().unwrap().contains(&planted));
    // The victim is anna, and the planted token is dead (mallory is signed out there).
    let html = victim
        .get(app.url("praxis-a", "/id/account"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("anna@praxis-a.example") && !html.contains("mallory"));
    let r = raw_client()
        .get(app.url("praxis-a", "/id/account"))
        .header("cookie", format!("kollegium-id={planted}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);

    // An invented cookie value is not adopted either.
    let jar = std::sync::Arc::new(Jar::default());
    jar.add_cookie_str("kollegium-id=von-aussen-gesetzt; Path=/", &url);
    let c = crate::harness::builder()
        .cookie_provider(jar.clone())
        .build()
        .unwrap();
    let r = app.login(&c, "praxis-a", "anna", PW).await;
    assert_eq!(r.status(), 303);
    assert_ne!(
        set_cookie(&r, "kollegium-id").unwrap(),
        "von-aussen-gesetzt"
    );
}

/// A page with a form for a client that may be signed in (the account page) or not
/// (the login page).
async fn form_page(app: &TestApp, c: &reqwest::Client) -> String {
    let r = c
        .get(app.url("praxis-a", "/id/account"))
        .send()
        .await
        .unwrap();
    if r.status() == 200 {
        return r.text().await.unwrap();
    }
    c.get(app.url("praxis-a", "/id/login"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_idp_form_needs_its_csrf_token() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    let chefin = app.create_user("praxis-a", "chefin", PW, true).await;
    let c = client();
    assert_eq!(app.login(&c, "praxis-a", "chefin", PW).await.status(), 303);
    let id = chefin.0;
    let posts = [
        "/id/login".to_owned(),
        "/id/logout".into(),
        "/id/login/totp".into(),
        "/id/login/enroll".into(),
        "/id/setup/irgendein-token".into(),
        "/id/account/profile".into(),
        "/id/account/password".into(),
        "/id/account/sessions/1/end".into(),
        "/id/account/sessions/end-others".into(),
        "/id/account/totp/start".into(),
        "/id/account/totp/confirm".into(),
        "/id/account/totp/disable".into(),
        "/id/admin/users".into(),
        format!("/id/admin/users/{id}"),
        format!("/id/admin/users/{id}/unlock"),
        format!("/id/admin/users/{id}/disable"),
        format!("/id/admin/users/{id}/reset-totp"),
        "/id/admin/devices/1/approve".into(),
        "/id/admin/policies".into(),
    ];
    for path in &posts {
        for token in [None, Some("falsch")] {
            let mut form = vec![("display_name", "X"), ("code", "123456")];
            if let Some(t) = token {
                form.push(("csrf_token", t));
            }
            let r = c
                .post(app.url("praxis-a", path))
                .form(&form)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 403, "{path} with token {token:?}");
        }
    }
    // Still signed in as before: none of those did anything.
    assert_eq!(
        c.get(app.url("praxis-a", "/id/account"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    logout(&app, &c, "praxis-a").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_lockout_does_not_lock_the_account_that_tripped_it() {
    let app = TestApp::spawn_with(|c| {
        c.idp.address_lockout_threshold = 3;
        c.idp.max_delay_ms = 100;
    })
    .await;
    app.create_practice("praxis-a").await;
    let mut ids = Vec::new();
    for name in ["anna", "ben", "carla", "dora"] {
        ids.push(app.create_user("praxis-a", name, PW, false).await);
    }
    // Dora is signed in elsewhere (another address would be used in real life).
    let dora = client();
    assert_eq!(app.login(&dora, "praxis-a", "dora", PW).await.status(), 303);
    let c = client();
    for name in ["anna", "ben", "carla"] {
        assert_eq!(
            app.login(&c, "praxis-a", name, "falsch-falsch-1")
                .await
                .status(),
            401
        );
    }
    // The fourth failure from this address trips the address lock, on dora's name.
    assert_eq!(
        app.login(&c, "praxis-a", "dora", "falsch-falsch-1")
            .await
            .status(),
        429
    );
    assert!(app.user("praxis-a", ids[3]).await.locked_until.is_none());
    assert_eq!(event_count(&app, "praxis-a", "lockout").await, 1);
    // Dora's own session lives on; no "account locked" mail for her.
    assert_eq!(
        dora.get(app.url("praxis-a", "/id/account"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let mails: i64 = app
        .idp_db("praxis-a", |c| {
            use diesel::prelude::*;
            kollegium_idp::schema::mail_queue::table
                .filter(kollegium_idp::schema::mail_queue::kind.eq("account_locked"))
                .count()
                .get_result(c)
                .unwrap()
        })
        .await;
    assert_eq!(mails, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lockout_runs_out_and_refused_attempts_do_not_extend_it() {
    use diesel::prelude::*;
    use kollegium_idp::schema::mail_queue as q;

    let (app, clock) = {
        let clock = std::sync::Arc::new(kollegium_tenants::clock::ManualClock::new(T0));
        let app = TestApp::spawn_with_clock(clock.clone(), |c| c.idp.max_delay_ms = 50).await;
        (app, clock)
    };
    app.create_practice("praxis-a").await;
    let anna = app.create_user("praxis-a", "anna", PW, false).await;
    let lock = app.config.idp.lockout_secs;
    let c = client();
    let status = |pw: &'static str| {
        let (app, c) = (&app, &c);
        async move { app.login(c, "praxis-a", "anna", pw).await.status().as_u16() }
    };
    for _ in 0..5 {
        assert_eq!(status("falsch-geraten-1").await, 401);
    }
    assert_eq!(
        status("falsch-geraten-1").await,
        429,
        "the sixth attempt locks"
    );
    let until = app.user("praxis-a", anna).await.locked_until.unwrap();
    assert_eq!(until, T0 + lock);

    // A guess now and then during the lock (wrong or right) is refused, and neither
    // extends the lock nor locks again.
    for (wait, pw) in [
        (300, "falsch-geraten-2"),
        (300, PW),
        (lock - 601, "falsch-geraten-3"),
    ] {
        clock.advance(wait);
        assert_eq!(status(pw).await, 429);
    }
    assert_eq!(app.user("praxis-a", anna).await.locked_until, Some(until));

    // The lock has run out: the count starts afresh, and the right password works.
    clock.set(until);
    assert_eq!(
        status("falsch-geraten-4").await,
        401,
        "counted anew, not locked again"
    );
    assert_eq!(status(PW).await, 303);
    assert_eq!(event_count(&app, "praxis-a", "lockout").await, 1);
    let mails: i64 = app
        .idp_db("praxis-a", |c| {
            q::table
                .filter(q::kind.eq("account_locked"))
                .count()
                .get_result(c)
                .unwrap()
        })
        .await;
    assert_eq!(mails, 1, "one lockout, one mail");
}
