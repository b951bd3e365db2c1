//! Signing in to the workspace as a relying party of the practice IdP: token refresh under
//! concurrency and IdP faults, back-channel logout, disabled users, profile and role
//! changes at refresh, the session cookie, the callback's `state` and `next`, pending
//! sign-ins sealed in the browser that started them (login CSRF), and cookies carried to
//! another practice.

use std::sync::Arc;
use std::time::Duration;

use diesel::prelude::*;
use futures_util::future::join_all;
use kollegium_tenants::clock::ManualClock;
use kollegium_tenants::{Clock, SystemClock};
use reqwest::Method;
use serde_json::{Value, json};

use crate::apps::chat_api::{
    close_code, expect, member_socket, new_room, person, post, send, socket,
};
use crate::harness::{CHAT_PW, TestApp, client, client_with_jar, meta_csrf, raw_client};

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

/// One response of a redirect chain.
struct Hop {
    url: String,
    status: u16,
    location: Option<String>,
    set_cookies: Vec<String>,
    body: String,
}

impl Hop {
    /// The `Set-Cookie` line for cookie `name`, if this response sets it.
    fn cookie(&self, name: &str) -> Option<&str> {
        self.set_cookies
            .iter()
            .map(String::as_str)
            .find(|c| c.starts_with(&format!("{name}=")))
    }

    /// The `Set-Cookie` lines of pending sign-ins (`kollegium-login-<tag>`) this response sets.
    fn login_cookies(&self) -> Vec<&str> {
        self.set_cookies
            .iter()
            .map(String::as_str)
            .filter(|c| c.starts_with("kollegium-login-"))
            .collect()
    }

    /// The one pending sign-in cookie this response sets.
    fn login_cookie(&self) -> Option<&str> {
        match self.login_cookies().as_slice() {
            [one] => Some(one),
            [] => None,
            more => panic!("several pending sign-in cookies: {more:?}"),
        }
    }
}

/// The name a `Set-Cookie` line sets.
fn cookie_name(set: &str) -> &str {
    set.split_once('=').unwrap().0
}

/// One request, recorded.
async fn hop(c: &reqwest::Client, url: &str) -> Hop {
    let r = c.get(url).send().await.unwrap();
    let status = r.status().as_u16();
    let location = r
        .headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_owned());
    let set_cookies = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    let body = r.text().await.unwrap_or_default();
    Hop {
        url: url.to_owned(),
        status,
        location,
        set_cookies,
        body,
    }
}

/// Where a redirect of `h` leads, if it stays on the practice's origin.
fn next_url(app: &TestApp, slug: &str, h: &Hop) -> Option<String> {
    let origin = app.url(slug, "");
    match h.location.clone() {
        Some(l) if (300..400).contains(&h.status) => {
            if l.starts_with('/') && !l.starts_with("//") {
                Some(app.url(slug, &l))
            } else if l.starts_with(&format!("{origin}/")) {
                Some(l)
            } else {
                None
            }
        }
        _ => None,
    }
}

/// Follows redirects from `start` by hand while they stay on the practice's origin,
/// recording every response.
async fn hops(app: &TestApp, c: &reqwest::Client, slug: &str, start: &str) -> Vec<Hop> {
    let mut url = app.url(slug, start);
    let mut out = Vec::new();
    for _ in 0..10 {
        let h = hop(c, &url).await;
        let next = next_url(app, slug, &h);
        out.push(h);
        match next {
            Some(n) => url = n,
            None => break,
        }
    }
    out
}

/// Follows a sign-in from `start` like [`hops`], but stops before the callback: returns the
/// recorded hops and the callback URL the IdP sent the browser to.
async fn until_callback(
    app: &TestApp,
    c: &reqwest::Client,
    slug: &str,
    start: &str,
) -> (Vec<Hop>, String) {
    let mut url = app.url(slug, start);
    let mut out = Vec::new();
    for _ in 0..10 {
        let h = hop(c, &url).await;
        let next = next_url(app, slug, &h).unwrap_or_else(|| panic!("stuck at {url}"));
        out.push(h);
        if next.contains("/auth/callback") {
            return (out, next);
        }
        url = next;
    }
    panic!("no callback reached from {start}");
}

/// The callback response of a recorded sign-in.
fn callback(chain: &[Hop]) -> &Hop {
    chain
        .iter()
        .find(|h| h.url.contains("/auth/callback"))
        .unwrap_or_else(|| {
            panic!(
                "no callback in {:?}",
                chain.iter().map(|h| &h.url).collect::<Vec<_>>()
            )
        })
}

/// A browser signed in at the practice IdP (not yet at the workspace).
async fn at_idp(app: &TestApp, slug: &str, user: &str, admin: bool) -> reqwest::Client {
    app.create_user(slug, user, CHAT_PW, admin).await;
    let c = client();
    let r = app.login(&c, slug, user, CHAT_PW).await;
    assert_eq!(r.status(), 303, "IdP login");
    c
}

pub(crate) async fn status_of(c: &reqwest::Client, url: String) -> u16 {
    c.get(url).send().await.unwrap().status().as_u16()
}

/// Sets an IdP account's status through the IdP library, as an admin action would.
async fn set_status(app: &TestApp, slug: &str, user: &'static str, status: &'static str) {
    let now = app.clock.now();
    app.idp_db(slug, move |c| {
        use kollegium_idp::users::{self, UserStatus};
        let u = users::by_login(c, user).unwrap().unwrap();
        let s = match status {
            "disabled" => UserStatus::Disabled,
            _ => UserStatus::Active,
        };
        users::set_status(c, u.id, s, now).unwrap();
    })
    .await;
}

/// Changes an IdP account's display name and admin flag through the IdP library.
async fn set_profile(app: &TestApp, slug: &str, user: &'static str, name: &str, admin: bool) {
    let (now, name) = (app.clock.now(), name.to_owned());
    app.idp_db(slug, move |c| {
        use kollegium_idp::users::{self, Profile};
        let u = users::by_login(c, user).unwrap().unwrap();
        let p = Profile {
            username: u.username,
            email: u.email,
            display_name: name,
            is_admin: admin,
            roles: u.roles,
            specialty: u.specialty,
            kv_region: u.kv_region,
            work_areas: u.work_areas,
        };
        users::update_profile(c, u.id, &p, now).unwrap().unwrap();
    })
    .await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn back_channel_logout_ends_the_workspace_session_and_closes_its_socket() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    let anna = person(&app, "praxis-a", "anna", false).await;
    let bernd = person(&app, "praxis-a", "bernd", false).await;
    let mut s = member_socket(&app, &anna).await;
    let mut other = member_socket(&app, &bernd).await;
    send(&mut s, json!({"type": "ping"})).await;
    expect(&mut s, "pong").await;

    // Anna logs out at the IdP (its own logout form), not at the workspace.
    let r = app
        .post_form(&anna, "praxis-a", "/id/account", "/id/logout", &[])
        .await;
    assert_eq!(r.status(), 303);
    // The IdP tells the workspace over the back channel; the socket closes at once then.
    let closed = tokio::time::timeout(Duration::from_secs(20), close_code(&mut s)).await;
    assert_eq!(
        closed.ok().flatten(),
        Some(tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode::from(4001))
    );
    let r = anna.get(app.url("praxis-a", "/")).send().await.unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/auth/login?next=%2F");
    let r = anna
        .get(app.url("praxis-a", "/api/chat/rooms"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // Signing in again asks for the password: the IdP session ended too.
    let end = app
        .follow(&anna, "praxis-a", app.url("praxis-a", "/"))
        .await;
    assert!(end.url().path().starts_with("/id/login"), "{}", end.url());
    // Bernd's session and socket are untouched.
    send(&mut other, json!({"type": "ping"})).await;
    expect(&mut other, "pong").await;
    assert_eq!(status_of(&bernd, app.url("praxis-a", "/")).await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_disabled_at_the_idp_loses_access_within_the_token_lifetime() {
    let (app, clock) = manual_app().await;
    app.create_practice("praxis-a").await;
    let anna = person(&app, "praxis-a", "anna", false).await;
    let bernd = person(&app, "praxis-a", "bernd", false).await;
    let cookie = anna.cookie(&app);
    let origin = app.url("praxis-a", "");
    set_status(&app, "praxis-a", "anna", "disabled").await;
    clock.advance(token_ttl(&app) + 1);
    // The refresh is refused: the next request needs a new sign-in.
    let r = anna.get(app.url("praxis-a", "/chat")).send().await.unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/auth/login?next=%2Fchat");
    let r = anna
        .get(app.url("praxis-a", "/api/chat/rooms"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(
        socket(&app, "praxis-a", &cookie, Some(&origin))
            .await
            .is_err()
    );
    // The session has ended for good, not just paused: re-enabling does not revive it.
    set_status(&app, "praxis-a", "anna", "active").await;
    assert_eq!(status_of(&anna, app.url("praxis-a", "/")).await, 303);
    // Others keep working.
    assert_eq!(status_of(&bernd, app.url("praxis-a", "/")).await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn name_and_admin_flag_follow_the_idp_when_the_token_is_refreshed() {
    let (app, clock) = manual_app().await;
    app.create_practice("praxis-a").await;
    let anna = app.signed_in("praxis-a", "anna", false).await;
    assert_eq!(
        status_of(&anna, app.url("praxis-a", "/chat/admin")).await,
        403
    );

    set_profile(&app, "praxis-a", "anna", "Dr. Anna Neumann", true).await;
    clock.advance(token_ttl(&app) + 1);
    let html = anna
        .get(app.url("praxis-a", "/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("Guten Tag, Dr. Anna Neumann"), "{html}");
    assert_eq!(
        status_of(&anna, app.url("praxis-a", "/chat/admin")).await,
        200
    );

    // Taking the flag away takes the page away at the next refresh.
    set_profile(&app, "praxis-a", "anna", "Dr. Anna Neumann", false).await;
    clock.advance(token_ttl(&app) + 1);
    assert_eq!(
        status_of(&anna, app.url("praxis-a", "/chat/admin")).await,
        403
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_cookie_is_http_only_lax_and_secure_under_https() {
    let mut app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    let c = at_idp(&app, "praxis-a", "anna", false).await;
    let chain = hops(&app, &c, "praxis-a", "/auth/login").await;
    let set = callback(&chain).cookie("kollegium-app").unwrap().to_owned();
    let attrs: Vec<String> = set
        .split(';')
        .skip(1)
        .map(|a| a.trim().to_ascii_lowercase())
        .collect();
    for want in ["httponly", "samesite=lax", "path=/"] {
        assert!(attrs.iter().any(|a| a == want), "{want} missing: {set}");
    }
    assert!(!attrs.iter().any(|a| a == "secure"), "plain http: {set}");
    assert!(
        !attrs.iter().any(|a| a.starts_with("domain=")),
        "host-only: {set}"
    );
    let token = set.split(';').next().unwrap()["kollegium-app=".len()..].to_owned();

    // Under https the cookie is `__Host-` and Secure (the session from above carries over
    // the restart; only the cookie's name changes).
    app.config.public_scheme = kollegium_tenants::web::Scheme::Https;
    app.restart().await;
    let raw = raw_client();
    let r = raw
        .get(app.url("praxis-a", "/"))
        .header("cookie", format!("kollegium-app={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        303,
        "the http cookie name is not read under https"
    );
    let r = raw
        .get(app.url("praxis-a", "/"))
        .header("cookie", format!("__Host-kollegium-app={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let csrf_cookie = crate::harness::set_cookie(&r, "__Host-kollegium-csrf");
    let html = r.text().await.unwrap();
    let mut cookies = format!("__Host-kollegium-app={token}");
    if let Some(v) = csrf_cookie {
        cookies.push_str(&format!("; __Host-kollegium-csrf={v}"));
    }
    let r = raw
        .post(app.url("praxis-a", "/auth/logout"))
        .header("cookie", cookies)
        .form(&[("csrf_token", meta_csrf(&html))])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let removal = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("__Host-kollegium-app="))
        .expect("logout removes the cookie");
    let attrs: Vec<String> = removal
        .split(';')
        .skip(1)
        .map(|a| a.trim().to_ascii_lowercase())
        .collect();
    for want in ["secure", "httponly", "samesite=lax", "path=/"] {
        assert!(attrs.iter().any(|a| a == want), "{want} missing: {removal}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_callback_refuses_unknown_and_replayed_state_and_next_stays_local() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    let no_session = |h: &Hop| h.cookie("kollegium-app").is_none();

    // Unknown, missing or oversized state: a clear 400, no session.
    for q in [
        "?code=abc&state=unbekannt",
        "?code=abc",
        "",
        &format!("?code=abc&state={}", "x".repeat(600)),
    ] {
        let c = client();
        let chain = hops(&app, &c, "praxis-a", &format!("/auth/callback{q}")).await;
        assert_eq!(chain[0].status, 400, "{q}");
        assert!(no_session(&chain[0]), "{q}");
        assert!(chain[0].body.contains("erneut an"), "{}", chain[0].body);
        assert_eq!(status_of(&c, app.url("praxis-a", "/")).await, 303);
    }

    // A real callback works once; replaying it (same browser or another) does not.
    let c = at_idp(&app, "praxis-a", "anna", false).await;
    let chain = hops(&app, &c, "praxis-a", "/auth/login?next=%2Fchat").await;
    let first = callback(&chain);
    assert_eq!(first.status, 303);
    assert_eq!(
        first.location.as_deref(),
        Some("/chat"),
        "a local next is followed"
    );
    assert!(first.cookie("kollegium-app").is_some());
    let replay_url = first.url.clone();
    for c in [c.clone(), client()] {
        let r = c.get(&replay_url).send().await.unwrap();
        assert_eq!(r.status(), 400);
        assert!(crate::harness::set_cookie(&r, "kollegium-app").is_none());
    }
    let fresh = client();
    fresh.get(&replay_url).send().await.unwrap();
    assert_eq!(status_of(&fresh, app.url("praxis-a", "/")).await, 303);

    // The IdP answering with an error (to the browser that started): 401 and no session.
    let started = client();
    let r = started
        .get(app.url("praxis-a", "/auth/login"))
        .send()
        .await
        .unwrap();
    let authorize = r.headers()["location"].to_str().unwrap().to_owned();
    let state: String = url_param(&authorize, "state");
    let chain = hops(
        &app,
        &started,
        "praxis-a",
        &format!("/auth/callback?state={state}&error=access_denied"),
    )
    .await;
    assert_eq!(chain[0].status, 401);
    assert!(no_session(&chain[0]));

    // Foreign or tricky `next` targets end at the start page, never elsewhere.
    for next in [
        "//evil.example/",
        "https://evil.example/",
        "/\\evil.example",
        "///evil.example",
        "evil.example",
        "/auth/logout",
    ] {
        let q = serde_urlencoded::to_string([("next", next)]).unwrap();
        let chain = hops(&app, &c, "praxis-a", &format!("/auth/login?{q}")).await;
        let done = callback(&chain);
        assert_eq!(done.status, 303, "{next}");
        assert_eq!(done.location.as_deref(), Some("/"), "{next}");
        assert!(
            chain
                .iter()
                .all(|h| !h.location.as_deref().unwrap_or("").contains("evil.example")),
            "{next}"
        );
    }
}

/// The lower-cased attributes of a `Set-Cookie` line (after the name and value).
fn cookie_attrs(set: &str) -> Vec<String> {
    set.split(';')
        .skip(1)
        .map(|a| a.trim().to_ascii_lowercase())
        .collect()
}

/// The value a `Set-Cookie` line sets.
fn cookie_value(set: &str) -> String {
    set.split(';')
        .next()
        .unwrap()
        .split_once('=')
        .unwrap()
        .1
        .to_owned()
}

/// The start page of a browser: whose greeting it shows, or the redirect to sign in.
async fn greeting(app: &TestApp, c: &reqwest::Client) -> Result<String, u16> {
    let r = c.get(app.url("praxis-a", "/")).send().await.unwrap();
    if r.status() != 200 {
        return Err(r.status().as_u16());
    }
    let html = r.text().await.unwrap();
    let name = html.split("Guten Tag, ").nth(1).unwrap().split('<').next();
    Ok(name.unwrap().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callback_link_opened_in_another_browser_signs_nobody_in_and_its_starter_still_can() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    // The attacker signs in at the IdP in their own browser, starts a workspace sign-in and
    // keeps the callback link instead of following it.
    let mallory = at_idp(&app, "praxis-a", "mallory", false).await;
    let (chain, link) =
        until_callback(&app, &mallory, "praxis-a", "/auth/login?next=%2Fchat").await;
    assert!(
        chain[0].login_cookie().is_some(),
        "kept in the browser at the start"
    );

    // The victim opens the link: in a fresh browser, and in one signed in as herself.
    let fresh = client();
    let anna = app.signed_in("praxis-a", "anna", false).await;
    for (who, victim) in [("fresh", &fresh), ("anna", &anna)] {
        let h = hop(victim, &link).await;
        assert_eq!(h.status, 400, "{who}");
        assert!(h.body.contains("in dem Browser"), "{who}: {}", h.body);
        assert!(h.body.contains("erneut an"), "{who}: {}", h.body);
        assert!(h.cookie("kollegium-app").is_none(), "{who}: no session");
    }
    assert_eq!(greeting(&app, &fresh).await, Err(303), "still signed out");
    assert_eq!(
        greeting(&app, &anna).await.as_deref(),
        Ok("anna Test"),
        "still herself"
    );

    // Nothing was consumed: the browser that started completes with the same link.
    let done = hop(&mallory, &link).await;
    assert_eq!(done.status, 303, "{}", done.body);
    assert_eq!(done.location.as_deref(), Some("/chat"));
    assert!(done.cookie("kollegium-app").is_some());
    assert_eq!(
        greeting(&app, &mallory).await.as_deref(),
        Ok("mallory Test")
    );
    // And only once.
    assert_eq!(hop(&mallory, &link).await.status, 400);
    assert_eq!(hop(&fresh, &link).await.status, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_sign_in_cookie_completes_only_its_own_browsers_sign_in() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    // Two browsers, each with a pending sign-in of its own.
    let anna = at_idp(&app, "praxis-a", "anna", false).await;
    let (anna_chain, anna_link) = until_callback(&app, &anna, "praxis-a", "/auth/login").await;
    let bernd = at_idp(&app, "praxis-a", "bernd", false).await;
    let (bernd_chain, bernd_link) =
        until_callback(&app, &bernd, "praxis-a", "/auth/login?next=%2Fchat").await;

    // Each presents its own pending sign-in with the other's state: refused, nothing
    // consumed.
    for (c, link) in [(&anna, &bernd_link), (&bernd, &anna_link)] {
        let h = hop(c, link).await;
        assert_eq!(h.status, 400);
        assert!(h.body.contains("erneut an"), "{}", h.body);
        assert!(h.cookie("kollegium-app").is_none());
    }
    // Nor does anna's sealed sign-in copied under the name of bernd's, or a made-up value.
    let anna_set = anna_chain[0].login_cookie().unwrap();
    let bernd_name = cookie_name(bernd_chain[0].login_cookie().unwrap()).to_owned();
    assert_ne!(cookie_name(anna_set), bernd_name, "one cookie per sign-in");
    for value in [cookie_value(anna_set), "A".repeat(300)] {
        let r = raw_client()
            .get(&bernd_link)
            .header("cookie", format!("{bernd_name}={value}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
        assert!(crate::harness::set_cookie(&r, "kollegium-app").is_none());
    }

    // Both still complete, each as itself.
    let done = hop(&anna, &anna_link).await;
    assert_eq!(done.status, 303, "{}", done.body);
    assert_eq!(done.location.as_deref(), Some("/"));
    let done = hop(&bernd, &bernd_link).await;
    assert_eq!(done.status, 303, "{}", done.body);
    assert_eq!(done.location.as_deref(), Some("/chat"));
    assert_eq!(greeting(&app, &anna).await.as_deref(), Ok("anna Test"));
    assert_eq!(greeting(&app, &bernd).await.as_deref(), Ok("bernd Test"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sign_in_keeps_its_pending_state_in_a_short_lived_sealed_host_only_cookie_and_removes_it()
{
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    app.create_user("praxis-a", "anna", CHAT_PW, false).await;
    let (c, jar) = client_with_jar();
    assert_eq!(
        app.login(&c, "praxis-a", "anna", CHAT_PW).await.status(),
        303
    );
    let chain = hops(&app, &c, "praxis-a", "/auth/login?next=%2Fchat").await;
    let set = chain[0].login_cookie().unwrap().to_owned();
    let attrs = cookie_attrs(&set);
    let ttl = kollegium_platform::PlatformSettings::default().login_state_ttl_secs;
    for want in [
        "httponly".to_owned(),
        "samesite=lax".to_owned(),
        "path=/".to_owned(),
        format!("max-age={ttl}"),
    ] {
        assert!(attrs.contains(&want), "{want} missing: {set}");
    }
    assert!(!attrs.iter().any(|a| a == "secure"), "plain http: {set}");
    assert!(
        !attrs.iter().any(|a| a.starts_with("domain=")),
        "host-only: {set}"
    );
    // Sealed: it shows neither the state nor where the sign-in returns to.
    let state = url_param(chain[0].location.as_deref().unwrap(), "state");
    let value = cookie_value(&set);
    assert!(!value.contains(&state) && !value.contains("chat"), "{set}");
    assert!(value.len() > 100, "{set}");

    // The callback signs in and removes it.
    let done = callback(&chain);
    assert_eq!(done.status, 303);
    assert_eq!(done.location.as_deref(), Some("/chat"));
    assert!(done.cookie("kollegium-app").is_some());
    let removal = done.login_cookie().expect("pending sign-in removed");
    assert_eq!(cookie_name(removal), cookie_name(&set));
    assert_eq!(cookie_value(removal), "", "{removal}");
    let attrs = cookie_attrs(removal);
    assert!(attrs.iter().any(|a| a == "max-age=0"), "{removal}");
    assert!(attrs.iter().any(|a| a == "path=/"), "{removal}");
    let url: reqwest::Url = app.url("praxis-a", "/auth/callback").parse().unwrap();
    let held = reqwest::cookie::CookieStore::cookies(&*jar, &url)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    assert!(!held.contains("kollegium-login-"), "{held}");
    assert!(held.contains("kollegium-app="), "{held}");
    assert_eq!(greeting(&app, &c).await.as_deref(), Ok("anna Test"));
    // (The `__Host-` name and Secure flag under https are covered by the platform's unit
    // tests: here the IdP's discovery is not reachable over https.)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_tabs_signing_in_at_once_both_complete() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    let (c, jar) = client_with_jar();
    app.create_user("praxis-a", "anna", CHAT_PW, false).await;
    assert_eq!(
        app.login(&c, "praxis-a", "anna", CHAT_PW).await.status(),
        303
    );
    // Two tabs start before either comes back: each keeps a sign-in of its own.
    let (one, link_one) = until_callback(&app, &c, "praxis-a", "/auth/login?next=%2Fchat").await;
    let (two, link_two) =
        until_callback(&app, &c, "praxis-a", "/auth/login?next=%2Fchat%2Fsettings").await;
    let name = |h: &Hop| cookie_name(h.login_cookie().unwrap()).to_owned();
    assert_ne!(name(&one[0]), name(&two[0]), "one cookie per sign-in");
    assert_ne!(link_one, link_two);

    // The first to return signs in and removes its own, not the other tab's.
    let first = hop(&c, &link_one).await;
    assert_eq!(first.status, 303, "{}", first.body);
    assert_eq!(first.location.as_deref(), Some("/chat"));
    assert!(first.cookie("kollegium-app").is_some());
    assert_eq!(cookie_name(first.login_cookie().unwrap()), name(&one[0]));
    let second = hop(&c, &link_two).await;
    assert_eq!(second.status, 303, "{}", second.body);
    assert_eq!(second.location.as_deref(), Some("/chat/settings"));
    assert!(second.cookie("kollegium-app").is_some());
    let removal = second.login_cookie().expect("removed");
    assert_eq!(cookie_name(removal), name(&two[0]));
    assert_eq!(cookie_value(removal), "");
    let url: reqwest::Url = app.url("praxis-a", "/").parse().unwrap();
    let held = reqwest::cookie::CookieStore::cookies(&*jar, &url)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    assert!(!held.contains("kollegium-login-"), "{held}");
    assert_eq!(greeting(&app, &c).await.as_deref(), Ok("anna Test"));
}

fn url_param(url: &str, name: &str) -> String {
    let query = url.split_once('?').unwrap().1;
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query).unwrap();
    pairs.into_iter().find(|(k, _)| k == name).unwrap().1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_cookie_of_one_practice_is_worthless_at_another() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    app.create_practice("praxis-b").await;
    let anna = person(&app, "praxis-a", "anna", false).await;
    let room_a = new_room(&app, &anna, "Geheimraum A", false, &[]).await;
    post(&app, &anna, room_a, "Geheimnis aus A").await;
    // Practice B has a room with the same id, and a member of its own.
    let bea = person(&app, "praxis-b", "bea", false).await;
    let room_b = new_room(&app, &bea, "Raum B", false, &[]).await;
    assert_eq!(room_a, room_b, "ids are per practice");
    post(&app, &bea, room_b, "Nachricht aus B").await;

    // Everything A's browser holds for A, presented explicitly at B (a cookie jar would
    // never send host-only cookies to another host).
    let cookies = anna.cookie(&app);
    assert!(cookies.contains("kollegium-app="), "{cookies}");
    let raw = raw_client();
    let at_b = |path: String| {
        raw.get(app.url("praxis-b", &path))
            .header("cookie", cookies.clone())
            .send()
    };
    for path in [
        "/".to_owned(),
        "/chat".to_owned(),
        format!("/chat/{room_b}"),
        "/chat/settings".to_owned(),
        "/chat/search?q=Nachricht".to_owned(),
    ] {
        let r = at_b(path.clone()).await.unwrap();
        assert_eq!(r.status(), 303, "{path}");
        assert!(
            r.headers()["location"]
                .to_str()
                .unwrap()
                .starts_with("/auth/login?next="),
            "{path}"
        );
        let body = r.text().await.unwrap();
        assert!(
            !body.contains("Geheimnis") && !body.contains("Nachricht aus B"),
            "{path}"
        );
    }
    for path in [
        "/api/chat/rooms".to_owned(),
        format!("/api/chat/rooms/{room_b}/messages"),
        "/api/chat/members".to_owned(),
    ] {
        let r = at_b(path.clone()).await.unwrap();
        assert_eq!(r.status(), 401, "{path}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"], "unauthorized");
    }
    // Nor can it write there, even with B's own CSRF cookie and token next to A's session.
    let b_csrf = bea
        .cookie(&app)
        .split("; ")
        .find(|c| c.starts_with("kollegium-csrf="))
        .unwrap()
        .to_owned();
    let a_session = cookies
        .split("; ")
        .find(|c| c.starts_with("kollegium-app="))
        .unwrap()
        .to_owned();
    let r = raw
        .post(app.url("praxis-b", &format!("/api/chat/rooms/{room_b}/messages")))
        .header("cookie", format!("{a_session}; {b_csrf}"))
        .header("x-csrf-token", &bea.csrf)
        .json(&json!({"body": "von A eingeschleust"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let (_, v) = bea
        .api(
            &app,
            Method::GET,
            &format!("/api/chat/rooms/{room_b}/messages"),
            None,
        )
        .await;
    assert!(!v.to_string().contains("eingeschleust"));
    assert!(!v.to_string().contains("Geheimnis"));
    // The form-based sign-in start is unaffected: B sends its own browser to B's IdP.
    let r = raw
        .get(app.url("praxis-b", "/auth/login"))
        .header("cookie", cookies.clone())
        .send()
        .await
        .unwrap();
    let to = r.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        to.starts_with(&app.url("praxis-b", "/id/authorize")),
        "{to}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_closes_with_4001_when_the_access_token_expires_and_reconnects_after_refresh() {
    let (app, clock) = manual_app().await;
    app.create_practice("praxis-a").await;
    let anna = person(&app, "praxis-a", "anna", false).await;
    let bernd = person(&app, "praxis-a", "bernd", false).await;
    let room = new_room(&app, &anna, "Team", false, &[]).await;
    let mut s = member_socket(&app, &anna).await;
    send(&mut s, json!({"type": "ping"})).await;
    expect(&mut s, "pong").await;

    // Past the token's lifetime the socket's periodic session check (every 20 s) tells the
    // client to reconnect, so its session is checked (and refreshed) again.
    clock.advance(token_ttl(&app) + 1);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let code = loop {
        use futures_util::StreamExt;
        use tokio_tungstenite::tungstenite::Message;
        match tokio::time::timeout_at(deadline, s.next()).await {
            Ok(Some(Ok(Message::Close(frame)))) => break frame.map(|f| f.code),
            Ok(Some(Ok(_))) => {}
            _ => break None,
        }
    };
    assert_eq!(
        code,
        Some(tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode::from(4001))
    );
    // A message posted meanwhile; the reconnect (the handshake refreshes the tokens)
    // receives live events again.
    post(&app, &bernd, room, "Während der Pause").await;
    let mut again = member_socket(&app, &anna).await;
    send(&mut again, json!({"type": "ping"})).await;
    expect(&mut again, "pong").await;
    post(&app, &bernd, room, "Wieder live").await;
    let ev = expect(&mut again, "message").await;
    assert_eq!(ev["message"]["body"], "Wieder live");
}

/// Signs `claims` as a logout token with the current RS256 key of `slug`'s IdP (what the IdP
/// itself would send), and returns it with the subject of `user` there.
pub(crate) async fn logout_token_signer(
    app: &TestApp,
    slug: &str,
    user: &str,
) -> (std::sync::Arc<kollegium_idp::oidc::jwt::Signer256>, String) {
    let tenant = app.tenant(slug);
    let store = app.server().store.clone();
    let (slug, user) = (slug.to_owned(), user.to_owned());
    tokio::task::spawn_blocking(move || {
        let mut conn = tenant.conn(&kollegium_idp::IDP_DB).unwrap();
        let signer = kollegium_idp::oidc::keys::active(
            &mut conn,
            store.node_key(),
            &slug,
            &kollegium_idp::oidc::keys::KeyCache::default(),
        )
        .unwrap();
        let sub = kollegium_idp::users::by_login(&mut conn, &user)
            .unwrap()
            .unwrap()
            .sub;
        (signer, sub)
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_back_channel_receiver_accepts_only_a_correct_logout_token_of_its_own_idp() {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    use kollegium_idp::oidc::jwt;
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    app.create_practice("praxis-b").await;
    let anna = person(&app, "praxis-a", "anna", false).await;
    app.create_user("praxis-b", "anna", CHAT_PW, false).await;
    let (signer, sub) = logout_token_signer(&app, "praxis-a", "anna").await;
    let (b_signer, _) = logout_token_signer(&app, "praxis-b", "anna").await;
    let now = app.clock.now();
    let issuer = format!("{}/id", app.url("praxis-a", ""));
    let good = json!({
        "iss": issuer, "aud": "platform", "iat": now, "exp": now + 120, "jti": "j1",
        "sub": sub,
        "events": { "http://schemas.openid.net/event/backchannel-logout": {} },
    });
    let with = |f: &dyn Fn(&mut Value)| {
        let mut c = good.clone();
        f(&mut c);
        c
    };
    let sign = |c: &Value| jwt::sign(&signer, jwt::TYP_LOGOUT_TOKEN, c).unwrap();
    let deliver = |token: String| {
        let app = &app;
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
    let valid = sign(&good);
    let parts: Vec<&str> = valid.split('.').collect();
    let none_header = B64.encode(r#"{"alg":"none","typ":"logout+jwt"}"#);
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        B64.encode(with(&|c| c["sub"] = json!("jemand-anderes")).to_string()),
        parts[2]
    );
    let bad = [
        ("alg none", format!("{none_header}.{}.", parts[1])),
        ("modified payload", tampered),
        (
            "another practice's key",
            jwt::sign(&b_signer, jwt::TYP_LOGOUT_TOKEN, &good).unwrap(),
        ),
        (
            "another issuer",
            sign(&with(&|c| {
                c["iss"] = json!(format!("{}/id", app.url("praxis-b", "")))
            })),
        ),
        (
            "another audience",
            sign(&with(&|c| c["aud"] = json!("dienstplan"))),
        ),
        ("with a nonce", sign(&with(&|c| c["nonce"] = json!("n")))),
        (
            "without the event",
            sign(&with(&|c| {
                c.as_object_mut().unwrap().remove("events");
            })),
        ),
        (
            "issued in the future",
            sign(&with(&|c| c["iat"] = json!(now + 3600))),
        ),
        (
            "neither sid nor sub",
            sign(&with(&|c| {
                c.as_object_mut().unwrap().remove("sub");
            })),
        ),
        ("not a JWT", "kein.token".to_owned()),
        ("oversized", "a".repeat(20 * 1024)),
    ];
    for (why, token) in bad {
        assert_eq!(deliver(token).await, 400, "{why}");
        assert_eq!(
            status_of(&anna.http, app.url("praxis-a", "/")).await,
            200,
            "{why}: the session stays"
        );
    }
    // The same token at practice B's receiver does nothing there (and is refused).
    let r = client()
        .post(app.url("praxis-b", "/auth/backchannel-logout"))
        .form(&[("logout_token", valid.clone())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(status_of(&anna.http, app.url("praxis-a", "/")).await, 200);
    // The correct one ends anna's workspace session.
    assert_eq!(deliver(valid).await, 200);
    assert_eq!(status_of(&anna.http, app.url("praxis-a", "/")).await, 303);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_shared_practice_pc_nothing_of_the_previous_user_remains_in_the_workspace() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    app.create_user("praxis-a", "anna", CHAT_PW, false).await;
    app.create_user("praxis-a", "ben", CHAT_PW, false).await;
    let pc = client();
    app.sign_in(&pc, "praxis-a", "anna", CHAT_PW).await;
    // Anna keeps a private room with a message.
    let home = app.follow(&pc, "praxis-a", app.url("praxis-a", "/")).await;
    let html = home.text().await.unwrap();
    assert!(html.contains("anna"), "anna's start page");
    let csrf = meta_csrf(&html);
    let r = pc
        .post(app.url("praxis-a", "/api/chat/rooms"))
        .header("x-csrf-token", csrf.as_str())
        .header("accept", "application/json")
        .json(&json!({"name": "Annas Notizen", "private": true, "members": []}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let room: Value = r.json().await.unwrap();
    let room_id = room["id"].as_i64().unwrap();

    // Anna logs out in the workspace; the browser follows to the IdP and back.
    let r = pc
        .post(app.url("praxis-a", "/auth/logout"))
        .form(&[("csrf_token", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let to = r.headers()["location"].to_str().unwrap().to_owned();
    let to = if to.starts_with('/') {
        app.url("praxis-a", &to)
    } else {
        to
    };
    // RP-initiated logout at the IdP (it used to go straight to /auth/logged-out, leaving
    // the IdP session alive for whoever sat down next).
    assert!(to.contains("/id/logout/end?id_token_hint="), "{to}");
    let landed = app.follow(&pc, "praxis-a", to).await;
    assert_eq!(landed.status(), 200);
    assert!(landed.url().path().ends_with("/auth/logged-out"));
    assert_eq!(status_of(&pc, app.url("praxis-a", "/")).await, 303);
    assert_eq!(
        status_of(&pc, app.url("praxis-a", "/id/account")).await,
        303
    );

    // Ben signs in on the same browser: his name, none of anna's rooms, no way into them.
    app.sign_in(&pc, "praxis-a", "ben", CHAT_PW).await;
    let html = app
        .follow(&pc, "praxis-a", app.url("praxis-a", "/chat"))
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains("ben"));
    assert!(
        !html.contains("Annas Notizen"),
        "anna's private room is not listed"
    );
    assert_eq!(
        status_of(&pc, app.url("praxis-a", &format!("/chat/{room_id}"))).await,
        404
    );
    let me: Value = pc
        .get(app.url("praxis-a", "/api/chat/rooms"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(!me.to_string().contains("Annas Notizen"));
}
