//! Issue 10, workspace sign-in: `next` never leads off the practice (workspace and IdP, one
//! rule), workspace sessions end with the IdP session's idle and absolute limits,
//! anonymous callers cannot make the node fetch its keys or store sign-ins without bound,
//! and the workspace's addresses follow the configured origin.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use kollegium_tenants::clock::ManualClock;
use kollegium_tenants::{Clock, SystemClock};
use serde_json::Value;

use crate::harness::{CHAT_PW, TestApp, client, form_csrf, raw_client};
use crate::oidc_support::{browser, code_for, exchange, post_form, register, tool};

/// The raw `Location` of a response (also when it holds bytes `to_str` refuses).
fn raw_location(r: &reqwest::Response) -> Option<String> {
    r.headers()
        .get("location")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}

/// Follows a workspace sign-in from `start` by hand (the browser is signed in at the IdP
/// already, so it completes without a form) and returns the `Location` the callback sends.
async fn after_sign_in(app: &TestApp, c: &reqwest::Client, slug: &str, start: &str) -> String {
    let mut url = app.url(slug, start);
    for _ in 0..10 {
        let r = c.get(&url).send().await.unwrap();
        assert!(r.status().is_redirection(), "{url}: {}", r.status());
        let loc = raw_location(&r).unwrap();
        if url.contains("/auth/callback") {
            return loc;
        }
        url = if loc.starts_with('/') {
            app.url(slug, &loc)
        } else {
            loc
        };
    }
    panic!("no callback reached from {start}");
}

/// `next` values browsers or intermediaries may read as another origin.
const FOREIGN_NEXT: &[&str] = &[
    "/\t/evil.example/x",
    "/\n/evil.example/x",
    "/\r\n/evil.example/x",
    "/\\/evil.example/x",
    "/%2f/evil.example/x",
    "/%2F%2Fevil.example/x",
    "/%5c/evil.example/x",
    "/%5Cevil.example/x",
    "/\u{ff0f}/evil.example/x",
    "/\u{2215}evil.example/x",
    "/evil\u{3002}example/x",
    "/../evil.example/x",
    "javascript:alert(1)",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_workspace_sign_in_a_tricky_next_lands_on_the_start_page() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    let c = browser(&app, "praxis-a", "anna").await;
    // The finding itself: a tab in front of a second slash.
    let loc = after_sign_in(&app, &c, "praxis-a", "/auth/login?next=/%09/evil.example/x").await;
    assert_eq!(loc, "/");
    let over_long = format!("/chat?q={}", "a".repeat(3000));
    let mut corpus: Vec<&str> = FOREIGN_NEXT.to_vec();
    corpus.push(&over_long);
    for next in corpus {
        let q = serde_urlencoded::to_string([("next", next)]).unwrap();
        let loc = after_sign_in(&app, &c, "praxis-a", &format!("/auth/login?{q}")).await;
        assert_eq!(loc, "/", "{next:?}");
    }
    // A local place is still followed.
    let loc = after_sign_in(&app, &c, "praxis-a", "/auth/login?next=%2Fchat%3Fx%3D1").await;
    assert_eq!(loc, "/chat?x=1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_idp_login_a_tricky_next_lands_on_the_idp_start_page() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    app.create_user("praxis-a", "anna", CHAT_PW, false).await;
    let over_long = format!("/id/account?q={}", "a".repeat(9000));
    let mut corpus: Vec<&str> = FOREIGN_NEXT.to_vec();
    corpus.push(&over_long);
    for next in corpus {
        let c = client();
        // The login page does not carry it along ...
        let q = serde_urlencoded::to_string([("next", next)]).unwrap();
        let html = c
            .get(app.url("praxis-a", &format!("/id/login?{q}")))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(!html.contains("evil"), "{next:?}");
        // ... and a login posting it directly goes to the IdP's start page.
        let r = c
            .post(app.url("praxis-a", "/id/login"))
            .form(&[
                ("csrf_token", form_csrf(&html).as_str()),
                ("login", "anna"),
                ("password", CHAT_PW),
                ("next", next),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303, "{next:?}");
        assert_eq!(raw_location(&r).as_deref(), Some("/id/"), "{next:?}");
    }
}

/// Short IdP session limits on a clock the test moves.
const IDLE: i64 = 600;
const ABSOLUTE: i64 = 1800;

async fn limited_app() -> (TestApp, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(SystemClock.now()));
    let app = TestApp::spawn_with_clock(clock.clone(), |c| {
        c.idp.session_idle_secs = IDLE;
        c.idp.session_absolute_secs = ABSOLUTE;
    })
    .await;
    app.create_practice("praxis-a").await;
    (app, clock)
}

/// Status and `Location` of a GET.
async fn visit(c: &reqwest::Client, url: String) -> (u16, String) {
    let r = c.get(url).send().await.unwrap();
    (r.status().as_u16(), raw_location(&r).unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_workspace_session_ends_at_the_idp_sessions_absolute_limit() {
    let (app, clock) = limited_app().await;
    app.create_user("praxis-a", "anna", CHAT_PW, false).await;
    let anna = client();
    // The workspace asks for no offline access.
    let (_, authorize) = visit(&anna, app.url("praxis-a", "/auth/login")).await;
    assert!(authorize.contains("scope="), "{authorize}");
    assert!(!authorize.contains("offline_access"), "{authorize}");
    app.sign_in(&anna, "praxis-a", "anna", CHAT_PW).await;
    // In use every 4 minutes (tokens are refreshed every 5): never idle.
    let mut elapsed = 0;
    while elapsed + 240 <= ABSOLUTE {
        clock.advance(240);
        elapsed += 240;
        let (status, _) = visit(&anna, app.url("praxis-a", "/chat")).await;
        assert_eq!(status, 200, "after {elapsed} s");
    }
    clock.advance(ABSOLUTE - elapsed + 1);
    let (status, loc) = visit(&anna, app.url("praxis-a", "/chat")).await;
    assert_eq!((status, loc.as_str()), (303, "/auth/login?next=%2Fchat"));
    // Signing in again asks for the password: the IdP session is over as well.
    let end = app
        .follow(&anna, "praxis-a", app.url("praxis-a", "/auth/login"))
        .await;
    assert!(end.url().path().starts_with("/id/login"), "{}", end.url());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unused_workspace_session_ends_at_the_idp_sessions_idle_limit() {
    let (app, clock) = limited_app().await;
    app.create_user("praxis-a", "anna", CHAT_PW, false).await;
    let anna = client();
    app.sign_in(&anna, "praxis-a", "anna", CHAT_PW).await;
    clock.advance(IDLE + 1);
    let (status, loc) = visit(&anna, app.url("praxis-a", "/")).await;
    assert_eq!((status, loc.as_str()), (303, "/auth/login?next=%2F"));
    let end = app
        .follow(&anna, "praxis-a", app.url("praxis-a", "/auth/login"))
        .await;
    assert!(end.url().path().starts_with("/id/login"), "{}", end.url());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn using_the_workspace_keeps_the_idp_session_from_idling_out() {
    let (app, clock) = limited_app().await;
    app.create_user("praxis-a", "anna", CHAT_PW, false).await;
    let anna = client();
    app.sign_in(&anna, "praxis-a", "anna", CHAT_PW).await;
    // Twice the idle limit of workspace use, without a visit to the IdP's own pages.
    for _ in 0..(2 * IDLE / 240 + 1) {
        clock.advance(240);
        assert_eq!(visit(&anna, app.url("praxis-a", "/")).await.0, 200);
    }
    // The IdP session is still open: its own pages need no login.
    assert_eq!(
        visit(&anna, app.url("praxis-a", "/id/account")).await.0,
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_bound_refresh_token_keeps_to_the_idp_session_limits() {
    let (app, clock) = limited_app().await;
    let c = browser(&app, "praxis-a", "anna").await;
    // Refresh tokens without offline_access go to first-party clients only.
    let x = register(&app, "praxis-a", tool("X", true, true)).await;
    let xc = (x.client_id.as_str(), x.secret.as_deref().unwrap());
    let tokens = |code: String| {
        let app = &app;
        async move {
            let (s, t) = exchange(app, "praxis-a", xc, &code, None).await;
            assert_eq!(s, 200, "{t}");
            t
        }
    };
    let refresh = |t: Value| {
        let app = &app;
        async move {
            let rt = t["refresh_token"].as_str().unwrap().to_owned();
            let (s, b, _) = post_form(
                app,
                "praxis-a",
                "/id/token",
                &[("grant_type", "refresh_token"), ("refresh_token", &rt)],
                Some(xc),
            )
            .await;
            (s, b)
        }
    };
    // Idle: the browser session is not used for longer than its idle limit.
    let code = code_for(&app, &c, "praxis-a", xc.0, &[]).await;
    let t = tokens(code).await;
    clock.advance(IDLE + 1);
    let (s, b) = refresh(t).await;
    assert_eq!(
        (s, b["error"].as_str()),
        (400, Some("invalid_grant")),
        "{b}"
    );

    // Absolute: kept in use (each refresh counts as use), the grant still ends with the
    // session, and the last access token does not outlive it.
    let c = browser(&app, "praxis-a", "ben").await;
    let code = code_for(&app, &c, "praxis-a", xc.0, &[]).await;
    let mut t = tokens(code).await;
    let ttl = app.config.idp.access_token_ttl_secs;
    let mut elapsed = 0;
    for step in [500, 500, 500, 200] {
        clock.advance(step);
        elapsed += step;
        let (s, b) = refresh(t).await;
        assert_eq!(s, 200, "after {elapsed} s: {b}");
        let left = ABSOLUTE - elapsed;
        assert_eq!(b["expires_in"].as_i64(), Some(ttl.min(left)), "{b}");
        t = b;
    }
    clock.advance(ABSOLUTE - elapsed + 1);
    let (s, b) = refresh(t).await;
    assert_eq!(
        (s, b["error"].as_str()),
        (400, Some("invalid_grant")),
        "{b}"
    );
}

/// Requests of class `idp` the node has answered (`/metrics` on the operator listener).
async fn idp_requests(app: &TestApp) -> (u64, u64) {
    let text = reqwest::get(app.operator_url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let requests = text
        .lines()
        .filter(|l| l.starts_with("kollegium_http_requests_total{class=\"idp\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    let fetches = text
        .lines()
        .find(|l| l.starts_with("kollegium_idp_metadata_fetches_total "))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(u64::MAX);
    (requests, fetches)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_back_channel_posts_do_not_make_the_node_fetch_its_keys_each_time() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    let anna = crate::apps::chat_api::person(&app, "praxis-a", "anna", false).await;
    let (requests, fetches) = idp_requests(&app).await;
    // Anyone can post "logout tokens" naming made-up keys; 40 of them, 20 at once.
    let forged = |i: usize| {
        let header = B64.encode(format!(r#"{{"alg":"RS256","kid":"erfunden-{i}"}}"#));
        let payload = B64.encode(r#"{"iss":"x","sub":"y"}"#);
        format!("{header}.{payload}.{}", B64.encode([7u8; 256]))
    };
    for round in 0..2 {
        let posts = (0..20).map(|i| {
            let app = &app;
            let token = forged(round * 20 + i);
            async move {
                raw_client()
                    .post(app.url("praxis-a", "/auth/backchannel-logout"))
                    .form(&[("logout_token", token)])
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            }
        });
        for status in futures_util::future::join_all(posts).await {
            assert_eq!(status, 400);
        }
    }
    let (requests_after, fetches_after) = idp_requests(&app).await;
    // At most one fetch of discovery and keys for the unknown key ids.
    assert!(
        fetches_after <= fetches.saturating_add(1),
        "{fetches} -> {fetches_after}"
    );
    // (Before: one key-set request per post. A few others, such as the workspace's member
    // directory round, may fall into the same seconds.)
    assert!(
        requests_after <= requests + 5,
        "IdP requests {requests} -> {requests_after}"
    );
    // The real thing still works: logging out at the IdP ends the workspace session.
    let r = app
        .post_form(&anna.http, "praxis-a", "/id/account", "/id/logout", &[])
        .await;
    assert_eq!(r.status(), 303);
    let mut ended = false;
    for _ in 0..100 {
        if visit(&anna.http, app.url("praxis-a", "/")).await.0 == 303 {
            ended = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(ended, "the back-channel logout reached the workspace");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_sign_in_starts_open_no_workspace_database_and_expire() {
    let clock = Arc::new(ManualClock::new(SystemClock.now()));
    let mut app = TestApp::spawn_with_clock(clock.clone(), |_| {}).await;
    app.create_practice("praxis-a").await;
    app.create_user("praxis-a", "anna", CHAT_PW, false).await;
    app.restart().await;
    // Without cookies, every request starts a new sign-in, and stores nothing on the server:
    // the workspace's database is not even opened.
    for i in 0..120 {
        for path in ["/", "/chat", "/auth/login"] {
            let r = raw_client()
                .get(app.url("praxis-a", path))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 303, "request {i} {path}");
        }
    }
    let tenant = app.tenant("praxis-a");
    assert!(
        !tenant.is_open(&kollegium_platform::PLATFORM_DB),
        "an anonymous page load opened platform.sqlite"
    );
    // A member from the same address still signs in.
    let anna = client();
    app.sign_in(&anna, "praxis-a", "anna", CHAT_PW).await;
    assert_eq!(visit(&anna, app.url("praxis-a", "/")).await.0, 200);
    // A sign-in older than its time to live does not complete, even in its own browser.
    let late = client();
    app.login(&late, "praxis-a", "anna", CHAT_PW).await;
    let r = late
        .get(app.url("praxis-a", "/auth/login"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let mut url = r.headers()["location"].to_str().unwrap().to_owned();
    // Through the IdP's authorize (the browser is signed in there) to the callback link.
    for _ in 0..5 {
        if url.contains("/auth/callback") {
            break;
        }
        let full = if url.starts_with('/') {
            app.url("praxis-a", &url)
        } else {
            url.clone()
        };
        let r = late.get(&full).send().await.unwrap();
        url = r.headers()["location"].to_str().unwrap().to_owned();
    }
    assert!(url.contains("/auth/callback"), "{url}");
    let ttl = kollegium_platform::PlatformSettings::default().login_state_ttl_secs;
    clock.advance(ttl + 1);
    let full = if url.starts_with('/') {
        app.url("praxis-a", &url)
    } else {
        url
    };
    let r = late.get(&full).send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(crate::harness::set_cookie(&r, "kollegium-app").is_none());
    assert!(r.text().await.unwrap().contains("abgelaufen"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_practice_that_kept_its_registration_in_the_database_signs_in_and_gets_the_file() {
    use kollegium_platform::auth::rp;
    use kollegium_tenants::kv;
    let mut app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    app.create_user("praxis-a", "anna", CHAT_PW, false).await;
    let tenant = app.tenant("praxis-a");
    let origin = app.url("praxis-a", "");
    let file = tenant.dir().join(rp::REGISTRATION_FILE);
    // As a practice made before the file existed: the registration in `platform.sqlite` only.
    let t = tenant.clone();
    tokio::task::spawn_blocking(move || {
        let reg = rp::registration(&t, &origin).unwrap();
        let mut conn = t.conn(&kollegium_platform::PLATFORM_DB).unwrap();
        kv::set(&mut conn, rp::CLIENT_ID_KEY, &reg.client_id).unwrap();
        let secret = format!("{reg:?}");
        assert!(
            !secret.contains("secret"),
            "Debug hides the secret: {secret}"
        );
        let sealed = t.secret().seal(
            rp::SECRET_PURPOSE,
            rp::SECRET_PURPOSE,
            reg.client_secret().as_bytes(),
        );
        kv::set(&mut conn, rp::CLIENT_SECRET_KEY, &sealed).unwrap();
    })
    .await
    .unwrap();
    std::fs::remove_file(&file).unwrap();
    app.restart().await;
    let anna = client();
    app.sign_in(&anna, "praxis-a", "anna", CHAT_PW).await;
    assert_eq!(visit(&anna, app.url("praxis-a", "/")).await.0, 200);
    assert!(file.exists(), "the registration moved into its file");
    // A file that does not open (another practice's, damaged) is no registration.
    std::fs::write(&file, "kaputt").unwrap();
    app.restart().await;
    let r = raw_client()
        .get(app.url("praxis-a", "/auth/login"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_practice_made_under_another_public_port_signs_in_and_logs_out() {
    let mut app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    app.create_user("praxis-a", "anna", CHAT_PW, false).await;
    let before = app.port;
    // Served on another port now: the origin the practice was made with is gone.
    app.restart().await;
    while app.port == before {
        app.restart().await;
    }
    let anna = client();
    app.sign_in(&anna, "praxis-a", "anna", CHAT_PW).await;
    assert_eq!(visit(&anna, app.url("praxis-a", "/")).await.0, 200);
    // The back-channel notice reaches the workspace at its current address.
    let r = app
        .post_form(&anna, "praxis-a", "/id/account", "/id/logout", &[])
        .await;
    assert_eq!(r.status(), 303);
    let mut ended = false;
    for _ in 0..100 {
        if visit(&anna, app.url("praxis-a", "/")).await.0 == 303 {
            ended = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(ended, "the back-channel logout reached the workspace");
}
