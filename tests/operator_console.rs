//! The operator console (issue 14, point 1): staff accounts with setup link, password and
//! mandatory TOTP, sign-in with throttling and lockout, sessions, the listener's
//! protection (security headers, CSRF, Origin, own host, body limits), the audit log, and
//! the practices pages.

use std::sync::Arc;

use kollegium::operator::{self, accounts, audit};
use kollegium_idp::totp;
use kollegium_tenants::Clock;
use kollegium_tenants::clock::ManualClock;

use crate::apps::operator::{
    OP_PW, OperatorClient, add_operator, choose_password, complete_setup, signed_in_operator,
};
use crate::harness::{
    TestApp, cli_in, client, client_with_jar, form_csrf, form_csrf_at, raw_client, stdout,
};

const T0: i64 = 1_796_000_000;

fn db(app: &TestApp) -> diesel::SqliteConnection {
    operator::open_db(&app.data_dir()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_setup_link_sets_password_and_totp_and_signs_in_once() {
    let app = TestApp::spawn().await;
    let link = add_operator(&app, "erika");
    let browser = client();
    let (secret, _, done) = complete_setup(&app, &browser, &link).await;
    assert_eq!(done.status(), 303);
    assert_eq!(done.headers()["location"], "/practices");
    let cookie = done
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("kollegium_operator="))
        .expect("a session cookie");
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attr), "{cookie}");
    }
    assert!(
        !cookie.to_lowercase().contains("domain="),
        "host-only: {cookie}"
    );

    // Signed in: the audit log shows the setup, under the operator's name.
    let page = browser
        .get(app.operator_url("/audit"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("Kollegium Betrieb") && html.contains("erika"));
    assert!(html.contains("Einrichtung abgeschlossen"));
    for nav in ["href=\"/practices\"", "href=\"/news\"", "href=\"/audit\""] {
        assert!(html.contains(nav), "{nav}");
    }

    // Signed in, the sign-in form leads on to the console.
    let r = browser
        .get(app.operator_url("/login"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/practices");

    // The secret is stored sealed, never as it is.
    let account = accounts::find(&mut db(&app), "erika").unwrap().unwrap();
    let stored = account.totp_secret.unwrap();
    assert!(stored.starts_with("kw1.") && !stored.contains(&totp::base32(&secret)));
    assert!(account.password_hash.unwrap().starts_with("$argon2id$"));

    // The link is used up.
    let again = client().get(&link).send().await.unwrap();
    assert_eq!(again.status(), 410);
    assert!(again.text().await.unwrap().contains("Link ungültig"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_session_pages_lead_to_the_sign_in_and_actions_are_refused() {
    let app = TestApp::spawn().await;
    let anon = client();
    for path in ["/", "/audit", "/practices", "/practices/new"] {
        let r = anon.get(app.operator_url(path)).send().await.unwrap();
        assert_eq!(r.status(), 303, "{path}");
        assert_eq!(r.headers()["location"], "/login", "{path}");
    }
    // With the console's CSRF token and Origin, but no session.
    let login = anon.get(app.operator_url("/login")).send().await.unwrap();
    let csrf = form_csrf(&login.text().await.unwrap());
    let r = anon
        .post(app.operator_url("/logout"))
        .header("origin", app.operator_url(""))
        .form(&[("csrf_token", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // A made-up session cookie is no session either.
    let r = raw_client()
        .get(app.operator_url("/audit"))
        .header(
            "cookie",
            "kollegium_operator=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_without_totp_cannot_sign_in() {
    let app = TestApp::spawn().await;
    let link = add_operator(&app, "max");
    let browser = client();
    // Only the password step of the setup: the TOTP secret is offered, not confirmed.
    let enrol = choose_password(&app, &browser, &link).await;
    assert_eq!(enrol.status(), 200);
    let secret = crate::idp_mfa::shown_secret(&enrol.text().await.unwrap());
    let account = accounts::find(&mut db(&app), "max").unwrap().unwrap();
    assert!(!account.is_set_up());

    // Neither the chosen password nor a code of the offered secret signs in.
    let code = totp::code_at(&secret, app.clock.now());
    let csrf = form_csrf_at(&browser, app.operator_url("/login")).await;
    let r = browser
        .post(app.operator_url("/login"))
        .header("origin", app.operator_url(""))
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("name", "max"),
            ("password", OP_PW),
            ("code", &code),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("Name, Passwort oder Code ist falsch.")
    );
    let r = browser
        .get(app.operator_url("/audit"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_needs_name_password_and_a_fresh_code_and_sign_out_ends_it() {
    let app = TestApp::spawn().await;
    let op = signed_in_operator(&app, "erika").await;
    let csrf = form_csrf(&op.page("/audit").await);
    let out = op.post_with("/logout", &csrf, &[]).await;
    assert_eq!(out.status(), 303);
    assert_eq!(out.headers()["location"], "/login?done=abgemeldet");
    assert_eq!(op.get("/audit").await.status(), 303);

    let now = app.clock.now();
    let try_login = |name: &'static str, password: &'static str, code: String| {
        let op = &op;
        async move {
            let csrf = form_csrf(&op.page("/login").await);
            let r = op
                .post_with(
                    "/login",
                    &csrf,
                    &[("name", name), ("password", password), ("code", &code)],
                )
                .await;
            let status = r.status();
            (status, r.text().await.unwrap())
        }
    };
    let wrong = "Name, Passwort oder Code ist falsch.";
    // Wrong password, unknown name, wrong code, the code used at setup: one answer.
    let (s, body) = try_login("erika", "Falsches-Passwort-123", op.fresh_code(now)).await;
    assert_eq!(s, 401);
    assert!(body.contains(wrong));
    let (s, body) = try_login("niemand", OP_PW, op.fresh_code(now)).await;
    assert_eq!(s, 401);
    assert!(body.contains(wrong));
    let (s, _) = try_login("erika", OP_PW, "000000".into()).await;
    assert_eq!(s, 401);
    let used = totp::code_for_step(&op.secret, totp::step_at(now));
    let (s, _) = try_login("erika", OP_PW, used).await;
    assert_eq!(s, 401, "the code used at setup works once");
    assert_eq!(op.get("/audit").await.status(), 303);

    // Right name (any case), password and a fresh code.
    let code = op.next_code(now);
    let csrf = form_csrf(&op.page("/login").await);
    let r = op
        .post_with(
            "/login",
            &csrf,
            &[("name", "Erika"), ("password", OP_PW), ("code", &code)],
        )
        .await;
    assert_eq!(r.status(), 303);
    assert_eq!(op.get("/audit").await.status(), 200);
    // That code works once.
    let r = op
        .post_with(
            "/login",
            &csrf,
            &[("name", "erika"), ("password", OP_PW), ("code", &code)],
        )
        .await;
    assert_eq!(r.status(), 401);
    let html = op.page("/audit").await;
    assert!(html.contains("Angemeldet") && html.contains("Abgemeldet"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suspended_operators_session_stops_working_at_once() {
    let app = TestApp::spawn().await;
    let op = signed_in_operator(&app, "erika").await;
    assert_eq!(op.get("/audit").await.status(), 200);
    let csrf = form_csrf(&op.page("/practices").await);
    accounts::set_suspended(&mut db(&app), app.clock.now(), audit::CLI, "erika", true).unwrap();
    assert_eq!(op.get("/audit").await.status(), 303);
    // Its forms are refused too.
    let r = op
        .post_with(
            "/practices/new",
            &csrf,
            &[
                ("slug", "praxis-z"),
                ("name", "Z"),
                ("owner_email", "z@z.example"),
            ],
        )
        .await;
    assert_eq!(r.status(), 401);
    assert!(!app.data_dir().join("tenants/praxis-z").exists());
    // Suspended: the right password and code do not sign in.
    assert_eq!(op.sign_in(app.clock.now()).await.status(), 401);
    // Resumed: the old session stays ended; a new sign-in works.
    accounts::set_suspended(&mut db(&app), app.clock.now(), audit::CLI, "erika", false).unwrap();
    assert_eq!(op.get("/audit").await.status(), 303);
    assert_eq!(op.sign_in(app.clock.now()).await.status(), 303);
    let html = op.page("/audit").await;
    assert!(html.contains("Betreiberkonto gesperrt") && html.contains("Betreiberkonto entsperrt"));
    assert!(html.contains("Kommandozeile"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_changing_requests_need_the_csrf_token_and_the_consoles_own_origin() {
    let app = TestApp::spawn().await;
    let op = signed_in_operator(&app, "erika").await;
    let csrf = form_csrf(&op.page("/audit").await);
    let logout = op.url("/logout");
    // No token.
    let r = op
        .client
        .post(&logout)
        .header("origin", &op.origin)
        .form(&[("x", "1")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("Formular abgelehnt"));
    // A wrong token.
    let r = op.post_with("/logout", "falsch", &[]).await;
    assert_eq!(r.status(), 403);
    // The right token from a foreign origin, from a practice origin, from nowhere.
    for origin in [
        Some("http://evil.example".to_owned()),
        Some(app.url("praxis-a", "")),
        Some(format!("http://localhost:{}", app.operator_port)),
        None,
    ] {
        let mut req = op
            .client
            .post(&logout)
            .form(&[("csrf_token", csrf.as_str())]);
        if let Some(o) = &origin {
            req = req.header("origin", o);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 403, "{origin:?}");
    }
    // A foreign Referer without Origin is refused, the console's own accepted.
    let r = op
        .client
        .post(&logout)
        .header("referer", "http://evil.example/x")
        .form(&[("csrf_token", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(op.get("/audit").await.status(), 200, "still signed in");
    let r = op
        .client
        .post(&logout)
        .header("referer", op.url("/audit"))
        .form(&[("csrf_token", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(op.get("/audit").await.status(), 303);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_public_url_forms_come_from_it_or_from_the_listeners_own_address() {
    let app = TestApp::spawn_with(|c| {
        c.operator.public_url = Some("http://betrieb.example".into());
    })
    .await;
    // Set up and signed in through the listener's own address (a tunnel to it): its forms
    // carry `Origin: http://127.0.0.1:<port>` and pass.
    let op = signed_in_operator(&app, "erika").await;
    let csrf = form_csrf(&op.page("/audit").await);
    let logout = op.url("/logout");
    let post = |origin: &str| {
        op.client
            .post(&logout)
            .header("origin", origin)
            .form(&[("csrf_token", csrf.as_str())])
            .send()
    };
    // Another origin, or a name that only looks like it: refused, still signed in.
    for origin in ["http://evil.example", "http://betrieb.example.evil.example"] {
        assert_eq!(post(origin).await.unwrap().status(), 403, "{origin}");
    }
    assert_eq!(op.get("/audit").await.status(), 200);
    // The public origin, as a proxy that passes the listener's address as `Host` forwards it.
    assert_eq!(post("http://betrieb.example").await.unwrap().status(), 303);
    assert_eq!(op.get("/audit").await.status(), 303, "signed out");
    // The console answers under the public name as well, and under no other.
    let at = |host: &str| {
        client()
            .get(app.operator_url("/login"))
            .header("host", host.to_owned())
            .send()
    };
    assert_eq!(at("betrieb.example").await.unwrap().status(), 200);
    assert_eq!(at("evil.example").await.unwrap().status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_sends_the_practice_origins_security_headers_and_answers_only_its_own_host() {
    let app = TestApp::spawn().await;
    let r = client()
        .get(app.operator_url("/login"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let h = r.headers();
    assert_eq!(
        h["content-security-policy"],
        kollegium_tenants::web::headers::CSP
    );
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["x-frame-options"], "DENY");
    assert_eq!(h["referrer-policy"], "same-origin");
    assert_eq!(h["cache-control"], "no-store");
    let csrf_cookie = h
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .find(|c| c.starts_with("kollegium_operator_csrf="))
        .unwrap();
    assert!(csrf_cookie.contains("SameSite=Strict") && csrf_cookie.contains("HttpOnly"));
    let html = r.text().await.unwrap();
    assert!(!html.contains("<script>") && !html.contains("style=") && !html.contains(" onclick"));

    // The console under another host name (a DNS-rebinding page's) is not there.
    let r = client()
        .get(format!("http://evil.localhost:{}/login", app.operator_port))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    // `localhost` works as well as the address.
    let r = client()
        .get(format!("http://localhost:{}/login", app.operator_port))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn practice_cookies_get_nothing_at_the_console_and_operator_cookies_nothing_at_a_practice() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    app.create_user("praxis-a", "anna", crate::harness::CHAT_PW, true)
        .await;
    let (member, jar) = client_with_jar();
    app.sign_in(&member, "praxis-a", "anna", crate::harness::CHAT_PW)
        .await;
    use reqwest::cookie::CookieStore;
    let practice_cookies = jar
        .cookies(&app.url("praxis-a", "/").parse().unwrap())
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        practice_cookies.contains("kollegium-app="),
        "{practice_cookies}"
    );
    let r = raw_client()
        .get(app.operator_url("/audit"))
        .header("cookie", &practice_cookies)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "a practice session is no operator session");

    let (op_browser, op_jar) = client_with_jar();
    let link = add_operator(&app, "erika");
    let (_, _, done) = complete_setup(&app, &op_browser, &link).await;
    assert_eq!(done.status(), 303);
    let op_cookies = op_jar
        .cookies(&app.operator_url("/").parse().unwrap())
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(op_cookies.contains("kollegium_operator="));
    let r = raw_client()
        .get(app.url("praxis-a", "/"))
        .header("cookie", &op_cookies)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "an operator session is no member session");
    assert!(
        r.headers()["location"]
            .to_str()
            .unwrap()
            .contains("/auth/login")
    );
    let r = raw_client()
        .get(app.url("praxis-a", "/id/admin/users"))
        .header("cookie", &op_cookies)
        .send()
        .await
        .unwrap();
    assert_ne!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_passwords_and_wrong_codes_lock_the_sign_in_as_at_the_idp() {
    let app = TestApp::spawn_with(|c| c.idp.max_delay_ms = 20).await;
    let op = signed_in_operator(&app, "erika").await;
    let other = signed_in_operator(&app, "max").await;
    let now = app.clock.now();
    let threshold = app.config.idp.lockout_threshold;
    // Wrong passwords: locked after the threshold, then even the right ones are refused.
    let csrf = form_csrf(&op.page("/practices").await);
    for i in 0..threshold {
        let r = op
            .post_with(
                "/login",
                &csrf,
                &[
                    ("name", "erika"),
                    ("password", "Falsch-falsch-1"),
                    ("code", "123456"),
                ],
            )
            .await;
        assert_eq!(r.status(), 401, "attempt {i}");
    }
    let r = op
        .post_with(
            "/login",
            &csrf,
            &[
                ("name", "erika"),
                ("password", "Falsch-falsch-1"),
                ("code", "123456"),
            ],
        )
        .await;
    assert_eq!(r.status(), 429);
    assert!(r.text().await.unwrap().contains("Zu viele Fehlversuche"));
    assert_eq!(op.sign_in(now).await.status(), 429);
    // Wrong codes with the right password count the same.
    let csrf = form_csrf(&other.page("/practices").await);
    for i in 0..threshold {
        let r = other
            .post_with(
                "/login",
                &csrf,
                &[("name", "max"), ("password", OP_PW), ("code", "000000")],
            )
            .await;
        assert_eq!(r.status(), 401, "attempt {i}");
    }
    assert_eq!(other.sign_in(now).await.status(), 429);
    let html = signed_in_operator(&app, "leo").await.page("/audit").await;
    assert!(
        html.contains("Anmeldung gesperrt"),
        "the lockout is in the log"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_links_expire_are_replaced_by_new_ones_and_are_refused_for_suspended_operators() {
    let clock = Arc::new(ManualClock::new(T0));
    let app = TestApp::spawn_with_clock(clock.clone(), |_| {}).await;
    let first = add_operator(&app, "erika");
    assert_eq!(client().get(&first).send().await.unwrap().status(), 200);
    clock.advance(accounts::SETUP_LINK_TTL_SECS);
    assert_eq!(client().get(&first).send().await.unwrap().status(), 410);

    let token = accounts::new_setup_link(&mut db(&app), clock.now(), audit::CLI, "erika").unwrap();
    let second = app.operator_url(&format!("/setup/{token}"));
    let third_token =
        accounts::new_setup_link(&mut db(&app), clock.now(), audit::CLI, "erika").unwrap();
    assert_eq!(
        client().get(&second).send().await.unwrap().status(),
        410,
        "replaced"
    );
    let third = app.operator_url(&format!("/setup/{third_token}"));
    assert_eq!(client().get(&third).send().await.unwrap().status(), 200);
    accounts::set_suspended(&mut db(&app), clock.now(), audit::CLI, "erika", true).unwrap();
    assert_eq!(
        client().get(&third).send().await.unwrap().status(),
        410,
        "suspended"
    );
    // Made-up and oversized tokens.
    for bad in ["x", &"A".repeat(300)] {
        let r = client()
            .get(app.operator_url(&format!("/setup/{bad}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 410);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weak_passwords_are_refused_at_setup() {
    let app = TestApp::spawn().await;
    let link = add_operator(&app, "erika");
    let browser = client();
    let csrf = form_csrf_at(&browser, &link).await;
    for (pw, repeat) in [
        ("kurz", "kurz"),
        ("password123", "password123"),
        (OP_PW, "anders-als-vorher-9"),
    ] {
        let r = browser
            .post(&link)
            .header("origin", app.operator_url(""))
            .form(&[
                ("csrf_token", csrf.as_str()),
                ("password", pw),
                ("password_repeat", repeat),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 422, "{pw}");
        assert!(r.text().await.unwrap().contains("notice error"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_oversized_forms_are_refused() {
    let app = TestApp::spawn().await;
    let op = signed_in_operator(&app, "erika").await;
    let csrf = form_csrf(&op.page("/practices").await);
    // Fields missing.
    let r = op.post_with("/login", &csrf, &[("name", "erika")]).await;
    assert_eq!(r.status(), 400);
    // A field longer than any form sends.
    let long = "x".repeat(2000);
    let r = op
        .post_with(
            "/login",
            &csrf,
            &[("name", &long), ("password", "p"), ("code", "1")],
        )
        .await;
    assert_eq!(r.status(), 400);
    // A body over the console's limit.
    let huge = "y".repeat(operator::web::MAX_FORM_BYTES + 10);
    let r = op
        .post_with(
            "/login",
            &csrf,
            &[("name", "erika"), ("password", &huge), ("code", "1")],
        )
        .await;
    assert_eq!(r.status(), 413);
    // Not a form at all.
    let r = op
        .client
        .post(op.url("/logout"))
        .header("origin", &op.origin)
        .header("x-csrf-token", &csrf)
        .header("content-type", "application/json")
        .body("{\"x\":1}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "sign-out needs no body");
    // A bad page number.
    let _ = op.sign_in(app.clock.now()).await;
    assert_eq!(op.get("/audit?before=abc").await.status(), 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_manages_operators_and_cli_and_console_end_up_in_the_audit_log() {
    let app = TestApp::spawn().await;
    let dir = app.data_dir();
    let port = app.operator_port.to_string();
    let env = [("KOLLEGIUM_OPERATOR_LISTEN", format!("127.0.0.1:{port}"))];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let out = cli_in(
        &dir,
        &[
            "operator",
            "add",
            "erika",
            "--email",
            "erika@betrieb.example",
        ],
        &env,
    );
    assert!(out.status.success(), "{out:?}");
    let text = stdout(&out);
    let link = text
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap()
        .to_owned();
    assert!(
        link.starts_with(&format!("http://127.0.0.1:{port}/setup/")),
        "{text}"
    );
    // The same name twice, a bad name, a bad address: usage errors.
    for args in [
        &["operator", "add", "erika", "--email", "e@x.example"][..],
        &["operator", "add", "Erika Muster", "--email", "e@x.example"][..],
        &["operator", "add", "leo", "--email", "kein-at"][..],
        &["operator", "suspend", "niemand"][..],
    ] {
        let out = cli_in(&dir, args, &env);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
    }
    let browser = client();
    let (secret, step, done) = complete_setup(&app, &browser, &link).await;
    assert_eq!(done.status(), 303);
    let out = cli_in(&dir, &["operator", "list"], &env);
    assert!(stdout(&out).contains("erika") && stdout(&out).contains("yes"));
    let out = cli_in(&dir, &["operator", "suspend", "erika"], &env);
    assert!(out.status.success());
    assert_eq!(
        browser
            .get(app.operator_url("/audit"))
            .send()
            .await
            .unwrap()
            .status(),
        303
    );
    let out = cli_in(&dir, &["operator", "resume", "erika"], &env);
    assert!(out.status.success());
    let out = cli_in(&dir, &["operator", "setup-link", "erika"], &env);
    assert!(stdout(&out).contains("/setup/"));
    // The practice lifecycle on the command line is in the same log.
    for args in [
        &[
            "practice",
            "create",
            "praxis-cli",
            "--name",
            "Praxis CLI",
            "--owner-email",
            "a@praxis-cli.example",
        ][..],
        &["practice", "suspend", "praxis-cli"][..],
    ] {
        let out = cli_in(&dir, args, &env);
        assert!(out.status.success(), "{args:?}: {out:?}");
    }
    let op = OperatorClient {
        client: browser,
        origin: app.operator_url(""),
        name: "erika".into(),
        secret,
        last_step: std::sync::Mutex::new(step),
    };
    assert_eq!(op.sign_in(app.clock.now()).await.status(), 303);
    let html = op.page("/audit").await;
    for what in [
        "Betreiberkonto angelegt",
        "Einrichtung abgeschlossen",
        "Betreiberkonto gesperrt",
        "Betreiberkonto entsperrt",
        "Einrichtungslink ausgestellt",
        "Angemeldet",
    ] {
        assert!(html.contains(what), "{what}");
    }
    assert!(html.contains("Kommandozeile"));
    let mut conn = db(&app);
    let (entries, _) = audit::page(&mut conn, None).unwrap();
    assert_eq!(entries[0].action, "operator.sign_in");
    assert_eq!(entries[0].who, "erika");
    assert!(
        entries
            .iter()
            .any(|e| e.who == audit::CLI && e.action == "operator.add" && e.subject == "erika")
    );
    for action in ["practice.create", "practice.suspend"] {
        assert!(
            entries
                .iter()
                .any(|e| e.who == audit::CLI && e.action == action && e.subject == "praxis-cli"),
            "{action}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_codes_at_setup_lock_the_setup_too() {
    let app = TestApp::spawn_with(|c| c.idp.max_delay_ms = 20).await;
    let link = add_operator(&app, "erika");
    let browser = client();
    let origin = app.operator_url("");
    let enrol = choose_password(&app, &browser, &link)
        .await
        .text()
        .await
        .unwrap();
    let secret = crate::idp_mfa::shown_secret(&enrol);
    let csrf = form_csrf(&enrol);
    let send = |code: String| {
        let (browser, link, origin, csrf) = (&browser, &link, &origin, &csrf);
        async move {
            browser
                .post(format!("{link}/totp"))
                .header("origin", origin)
                .form(&[("csrf_token", csrf.as_str()), ("code", code.as_str())])
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    for i in 0..app.config.idp.lockout_threshold {
        assert_eq!(send("000000".into()).await, 422, "attempt {i}");
    }
    assert_eq!(send(totp::code_at(&secret, app.clock.now())).await, 429);
    assert!(
        !accounts::find(&mut db(&app), "erika")
            .unwrap()
            .unwrap()
            .is_set_up()
    );
}
