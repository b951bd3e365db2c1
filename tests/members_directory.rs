//! Colleagues who left: an account disabled or deleted at the practice's IdP leaves the
//! workspace's audiences, member lists and mention mails (learnt from the IdP's member
//! directory `GET /id/api/members`), keeps the name on old messages, and comes back when
//! enabled again. The directory answers only the practice's own first-party client token.

use std::sync::Arc;
use std::time::{Duration, Instant};

use kollegium_idp::users::{self, UserId, UserStatus};
use kollegium_platform::directory::worker::INTERVAL_SECS;
use kollegium_tenants::Clock;
use kollegium_tenants::clock::ManualClock;
use reqwest::Method;
use serde_json::{Value, json};

use crate::apps::chat_api::{Person, member_id, new_room, person, post};
use crate::harness::{TestApp, client, form_csrf, use_smtp};
use crate::oidc_support::{self, claims, pkce, post_form, register, tool};
use crate::smtp::{Mail, SmtpSink};

const T0: i64 = 1_800_000_000;
const A: &str = "praxis-a";

async fn app_with_smtp() -> (TestApp, Arc<ManualClock>, SmtpSink) {
    let smtp = SmtpSink::start();
    let clock = Arc::new(ManualClock::new(T0));
    let app = TestApp::spawn_with_clock(clock.clone(), |c| use_smtp(c, smtp.port)).await;
    (app, clock, smtp)
}

/// The IdP account of `username`.
pub(crate) async fn account(app: &TestApp, slug: &str, username: &str) -> users::User {
    let name = username.to_owned();
    app.idp_db(slug, move |c| users::by_login(c, &name).unwrap().unwrap())
        .await
}

/// Disables, enables or deletes an account through the IdP's user administration, as the
/// admin signed in on `admin`.
pub(crate) async fn admin_action(
    app: &TestApp,
    admin: &Person,
    slug: &str,
    id: UserId,
    what: &str,
) {
    let url = app.url(slug, &format!("/id/admin/users/{}", id.0));
    let page = admin.http.get(&url).send().await.unwrap();
    assert_eq!(page.status(), 200, "user page");
    let token = form_csrf(&page.text().await.unwrap());
    let mut form = vec![("csrf_token", token.as_str())];
    let confirm;
    if what == "delete" {
        confirm = account_name(app, slug, id).await;
        form.push(("confirm", confirm.as_str()));
    }
    let r = admin
        .http
        .post(format!("{url}/{what}"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "{what}");
}

async fn account_name(app: &TestApp, slug: &str, id: UserId) -> String {
    app.user(slug, id).await.username
}

/// Usernames the member picker (`/api/chat/members`) offers to `p`.
async fn picker(app: &TestApp, p: &Person) -> Vec<String> {
    let (s, v) = p.api(app, Method::GET, "/api/chat/members", None).await;
    assert_eq!(s, 200, "{v}");
    usernames(&v["members"])
}

/// Usernames a room lists as its members, seen by `p`.
async fn room_members(app: &TestApp, p: &Person, room: i64) -> Vec<String> {
    let (s, v) = p
        .api(app, Method::GET, &format!("/api/chat/rooms/{room}"), None)
        .await;
    assert_eq!(s, 200, "{v}");
    usernames(&v["members"])
}

fn usernames(list: &Value) -> Vec<String> {
    let mut out: Vec<String> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["username"].as_str().unwrap().to_owned())
        .collect();
    out.sort();
    out
}

/// Authors' names of a room's messages, seen by `p`.
async fn authors(app: &TestApp, p: &Person, room: i64) -> Vec<String> {
    let (s, v) = p
        .api(
            app,
            Method::GET,
            &format!("/api/chat/rooms/{room}/messages"),
            None,
        )
        .await;
    assert_eq!(s, 200, "{v}");
    v["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["author"].as_str().unwrap().to_owned())
        .collect()
}

/// Waits until the picker `p` sees matches `want` (the directory worker runs in the
/// background).
async fn wait_picker(app: &TestApp, p: &Person, want: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let now = picker(app, p).await;
        if now == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "picker shows {now:?}, not {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn to(smtp: &SmtpSink, address: &str) -> Vec<Mail> {
    smtp.messages()
        .into_iter()
        .filter(|m| m.envelope_to.iter().any(|t| t == address))
        .collect()
}

async fn wait_mails(smtp: &SmtpSink, address: &str, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while to(smtp, address).len() < n {
        assert!(
            Instant::now() < deadline,
            "fewer than {n} mails to {address} within 20 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Runs the mention worker's round for a practice, as its tick would.
async fn mention_round(app: &TestApp, slug: &str) -> kollegium_platform::notify::mentions::Round {
    let server = app.server();
    kollegium_platform::notify::worker::run_slug(&server.context, &server.directory, slug)
        .await
        .unwrap()
        .unwrap()
}

/// The addresses a mention mail of `slug` is queued for, oldest first.
async fn queued_mentions(app: &TestApp, slug: &str) -> Vec<String> {
    use diesel::prelude::*;
    use kollegium_tenants::mail::schema::mail_queue as q;
    let tenant = app.tenant(slug);
    tokio::task::spawn_blocking(move || {
        let mut conn = tenant.conn(&kollegium_platform::PLATFORM_DB).unwrap();
        q::table
            .filter(q::kind.eq("mention"))
            .order(q::id)
            .select(q::recipient)
            .load::<String>(&mut *conn)
            .unwrap()
    })
    .await
    .unwrap()
}

/// Moves the clock past the directory interval and kicks the directory worker.
pub(crate) fn periodic_sync(app: &TestApp, clock: &ManualClock) {
    clock.advance(INTERVAL_SECS);
    app.server().directory_worker.kick();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_colleague_disabled_at_the_idp_gets_no_alle_mail_and_leaves_the_room_until_enabled() {
    let (app, clock, smtp) = app_with_smtp().await;
    app.create_practice(A).await;
    let anna = person(&app, A, "anna", true).await;
    let bernd = person(&app, A, "bernd", false).await;
    let carla = person(&app, A, "carla", false).await;
    let dora = person(&app, A, "dora", false).await;
    let room = new_room(&app, &anna, "Team", false, &[]).await;
    post(&app, &carla, room, "Ich übernehme die Frühschicht").await;
    for p in [&bernd, &dora] {
        room_members(&app, p, room).await;
    }
    let everyone = ["anna", "bernd", "carla", "dora"];
    assert_eq!(room_members(&app, &anna, room).await, everyone);
    assert_eq!(picker(&app, &anna).await, everyone);

    // Carla leaves the practice: the admin disables her account at the IdP. The workspace
    // learns it with its next directory round.
    let carla_member = member_id(&app, &anna, "carla").await;
    let private = new_room(&app, &anna, "Leitung", true, &[]).await;
    let carla_id = account(&app, A, "carla").await.id;
    admin_action(&app, &anna, A, carla_id, "disable").await;
    periodic_sync(&app, &clock);
    let without = ["anna", "bernd", "dora"];
    wait_picker(&app, &anna, &without).await;
    assert_eq!(room_members(&app, &anna, room).await, without);
    // Nobody can start a conversation with her or add her to a room by her old id.
    let refusals = [
        (
            Method::POST,
            format!("/api/chat/direct/{carla_member}"),
            None,
        ),
        (
            Method::PUT,
            format!("/api/chat/rooms/{private}/members/{carla_member}"),
            None,
        ),
        (
            Method::POST,
            "/api/chat/rooms".to_owned(),
            Some(json!({"name": "Neu", "private": true, "members": [carla_member]})),
        ),
    ];
    for (method, path, body) in refusals {
        let (s, v) = anna.api(&app, method, &path, body).await;
        assert_eq!(s, 403, "{path}: {v}");
    }
    let (_, rooms) = anna.api(&app, Method::GET, "/api/chat/rooms", None).await;
    assert!(
        !rooms.to_string().contains("\"Neu\""),
        "the refused room was not created: {rooms}"
    );
    assert_eq!(room_members(&app, &anna, private).await, ["anna"]);
    // Her message keeps her name.
    assert_eq!(authors(&app, &anna, room).await, ["carla Test"]);

    // @alle reaches the others by mail, not her: she is not even in its audience.
    post(&app, &anna, room, "@alle Teamsitzung um 12").await;
    clock.advance(15 * 60);
    let r = mention_round(&app, A).await;
    assert_eq!((r.notices, r.mails, r.next_due), (2, 2, None));
    wait_mails(&smtp, "bernd@praxis-a.example", 1).await;
    wait_mails(&smtp, "dora@praxis-a.example", 1).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(to(&smtp, "carla@praxis-a.example").is_empty());
    assert!(to(&smtp, "anna@praxis-a.example").is_empty());

    // Enabled again, she is back (without signing in), and the next @alle reaches her.
    admin_action(&app, &anna, A, carla_id, "enable").await;
    periodic_sync(&app, &clock);
    wait_picker(&app, &anna, &everyone).await;
    assert_eq!(room_members(&app, &anna, room).await, everyone);
    post(&app, &anna, room, "@alle Teamsitzung verschoben").await;
    clock.advance(15 * 60);
    app.server().job_worker.kick();
    wait_mails(&smtp, "carla@praxis-a.example", 1).await;
    wait_mails(&smtp, "bernd@praxis-a.example", 2).await;
    wait_mails(&smtp, "dora@praxis-a.example", 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mention_mails_wait_while_the_directory_is_unreadable_and_skip_who_left_meanwhile() {
    let (app, clock, smtp) = app_with_smtp().await;
    app.create_practice(A).await;
    let anna = person(&app, A, "anna", true).await;
    let bernd = person(&app, A, "bernd", false).await;
    let carla = person(&app, A, "carla", false).await;
    let room = new_room(&app, &anna, "Empfang", false, &[]).await;
    post(&app, &bernd, room, "Guten Morgen").await;
    post(&app, &carla, room, "Moin").await;
    // Mentioned while both are colleagues: both notices are queued.
    post(&app, &anna, room, "@alle Lieferung kommt um 10").await;

    // Carla's account is deleted before the mails are due.
    let carla_id = account(&app, A, "carla").await.id;
    admin_action(&app, &anna, A, carla_id, "delete").await;

    // The IdP does not answer the workspace's directory request (its client is switched
    // off): nothing is mailed, the notices stay due.
    let set_platform = |on: bool| {
        app.idp_db(A, move |c| {
            assert!(
                kollegium_idp::oidc::clients::set_enabled(c, "platform", on, T0).unwrap(),
                "the platform client exists"
            );
        })
    };
    set_platform(false).await;
    clock.advance(15 * 60);
    let r = mention_round(&app, A).await;
    assert_eq!(r.mails, 0);
    assert!(
        r.next_due.is_some_and(|t| t <= clock.now()),
        "still due: {r:?}"
    );
    assert!(queued_mentions(&app, A).await.is_empty());

    // Readable again: the next round mails Bernd, and not Carla, who has left.
    set_platform(true).await;
    let r = mention_round(&app, A).await;
    assert_eq!((r.mails, r.next_due), (1, None));
    assert_eq!(queued_mentions(&app, A).await, ["bernd@praxis-a.example"]);
    wait_mails(&smtp, "bernd@praxis-a.example", 1).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(to(&smtp, "carla@praxis-a.example").is_empty());
    // She is gone from the lists; her message keeps her name.
    assert_eq!(picker(&app, &anna).await, ["anna", "bernd"]);
    assert_eq!(room_members(&app, &anna, room).await, ["anna", "bernd"]);
    assert_eq!(
        authors(&app, &anna, room).await,
        ["bernd Test", "carla Test", "anna Test"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sign_in_with_fresh_claims_brings_a_re_enabled_colleague_back_at_once() {
    let (app, clock, _smtp) = app_with_smtp().await;
    app.create_practice(A).await;
    let anna = person(&app, A, "anna", true).await;
    let _bernd = person(&app, A, "bernd", false).await;
    let id = account(&app, A, "bernd").await.id;
    admin_action(&app, &anna, A, id, "disable").await;
    // (A listing is not trusted over claims of the same second: a sign-in may race it.)
    clock.advance(60);
    let server = app.server();
    let applied = server
        .directory
        .sync(&server.context, &app.tenant(A))
        .await
        .unwrap();
    assert_eq!((applied.deactivated, applied.reactivated), (1, 0));
    assert_eq!(picker(&app, &anna).await, ["anna"]);
    admin_action(&app, &anna, A, id, "enable").await;
    // No directory round: his own sign-in tells the workspace he is active.
    let c = client();
    app.sign_in(&c, A, "bernd", crate::harness::CHAT_PW).await;
    assert_eq!(picker(&app, &anna).await, ["anna", "bernd"]);
}

/// A `client_credentials` token of `client` at `slug` (scope `directory` if `directory`).
async fn client_token(
    app: &TestApp,
    slug: &str,
    creds: (&str, &str),
    scope: Option<&str>,
) -> (u16, Value) {
    let mut form = vec![("grant_type", "client_credentials")];
    if let Some(s) = scope {
        form.push(("scope", s));
    }
    let (s, body, _) = post_form(app, slug, "/id/token", &form, Some(creds)).await;
    (s, body)
}

/// GET the directory of `slug` with `token` (`None`: no Authorization header).
async fn directory(
    app: &TestApp,
    slug: &str,
    token: Option<&str>,
) -> (u16, Value, Option<String>, Option<String>) {
    let mut rb = client().get(app.url(slug, "/id/api/members"));
    if let Some(t) = token {
        rb = rb.bearer_auth(t);
    }
    let r = rb.send().await.unwrap();
    let status = r.status().as_u16();
    let header = |n: &str| r.headers().get(n).map(|v| v.to_str().unwrap().to_owned());
    let (www, cache) = (header("www-authenticate"), header("cache-control"));
    (status, r.json().await.unwrap_or(Value::Null), www, cache)
}

/// The `sub`s of a directory answer with their `active` flags.
fn listed(v: &Value) -> Vec<(String, bool)> {
    let mut out: Vec<(String, bool)> = v["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["sub"].as_str().unwrap().to_owned(),
                m["active"].as_bool().unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

/// A user's access token of the first-party client (authorization code flow).
async fn platform_user_token(app: &TestApp, slug: &str, user: &str, secret: &str) -> String {
    let browser = oidc_support::browser(app, slug, user).await;
    let callback = app.url(slug, "/auth/callback");
    let (verifier, challenge) = pkce();
    let q = |scope: &'static str| {
        vec![
            ("response_type", "code"),
            ("client_id", "platform"),
            ("redirect_uri", callback.as_str()),
            ("scope", scope),
            ("state", "st"),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
        ]
    };
    // Users' grants never carry the directory scope.
    let r = oidc_support::authorize(app, &browser, slug, &q("openid directory")).await;
    let loc = oidc_support::location(&r);
    assert_eq!(
        oidc_support::query(&loc).get("error").map(String::as_str),
        Some("invalid_scope"),
        "{loc}"
    );
    let r = oidc_support::authorize(app, &browser, slug, &q("openid profile")).await;
    let loc = oidc_support::location(&r);
    let code = oidc_support::query(&loc)
        .get("code")
        .cloned()
        .unwrap_or_else(|| panic!("no code in {loc}"));
    let (s, body, _) = post_form(
        app,
        slug,
        "/id/token",
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", &callback),
            ("code_verifier", &verifier),
        ],
        Some(("platform", secret)),
    )
    .await;
    assert_eq!(s, 200, "{body}");
    body["access_token"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_directory_answers_only_the_practices_own_first_party_client_token() {
    let clock = Arc::new(ManualClock::new(T0));
    let app = TestApp::spawn_with_clock(clock.clone(), |_| {}).await;
    let report_a = app.create_practice(A).await;
    let report_b = app.create_practice("praxis-b").await;
    let secret_a = report_a.first_party_client.unwrap().secret;
    let secret_b = report_b.first_party_client.unwrap().secret;
    let anna = app
        .create_user(A, "anna", "Sonnenblume-Kaffee-42", false)
        .await;
    let bernd = app
        .create_user(A, "bernd", "Sonnenblume-Kaffee-42", false)
        .await;
    let dora = app
        .create_user(A, "dora", "Sonnenblume-Kaffee-42", false)
        .await;
    let berta = app
        .create_user("praxis-b", "berta", "Sonnenblume-Kaffee-42", false)
        .await;
    app.idp_db(A, move |c| {
        users::set_status(c, bernd, UserStatus::Disabled, T0).unwrap();
        users::delete(c, dora).unwrap();
    })
    .await;
    let anna_sub = app.user(A, anna).await.sub;
    let bernd_sub = app.user(A, bernd).await.sub;
    let owner_a = account(&app, A, "owner").await.sub;
    let berta_sub = app.user("praxis-b", berta).await.sub;

    // The workspace's own client token with the directory scope: every account but the
    // deleted one; only active accounts are active (the owner has not set up yet).
    let (s, t) = client_token(&app, A, ("platform", &secret_a), Some("directory")).await;
    assert_eq!(s, 200, "{t}");
    let token_a = t["access_token"].as_str().unwrap().to_owned();
    let (s, v, _, cache) = directory(&app, A, Some(&token_a)).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(cache.as_deref(), Some("no-store"));
    let mut want = vec![
        (anna_sub.clone(), true),
        (bernd_sub, false),
        (owner_a, false),
    ];
    want.sort();
    assert_eq!(listed(&v), want);

    // No token, a garbage token, a tampered one: 401 with a Bearer challenge.
    let (s, v, www, _) = directory(&app, A, None).await;
    assert_eq!((s, v["error"].as_str()), (401, Some("invalid_request")));
    assert!(www.unwrap().starts_with("Bearer"));
    for bad in ["garbage", "a.b.c", &tampered(&token_a)] {
        let (s, v, www, _) = directory(&app, A, Some(bad)).await;
        assert_eq!(
            (s, v["error"].as_str()),
            (401, Some("invalid_token")),
            "{bad}"
        );
        assert!(www.unwrap().contains("invalid_token"));
        assert!(v.get("members").is_none());
    }

    // The workspace's token without the directory scope: 403.
    let (s, t) = client_token(&app, A, ("platform", &secret_a), None).await;
    assert_eq!(s, 200, "{t}");
    let (s, v, _, _) = directory(&app, A, t["access_token"].as_str()).await;
    assert_eq!((s, v["error"].as_str()), (403, Some("insufficient_scope")));

    // A third-party tool can neither get the scope nor read with its own client token.
    let other = register(&app, A, tool("Dienstplan", true, false)).await;
    let creds = (other.client_id.as_str(), other.secret.as_deref().unwrap());
    let (s, t) = client_token(&app, A, creds, Some("directory")).await;
    assert_eq!((s, t["error"].as_str()), (400, Some("invalid_scope")));
    let (s, t) = client_token(&app, A, creds, None).await;
    assert_eq!(s, 200, "{t}");
    let (s, v, _, _) = directory(&app, A, t["access_token"].as_str()).await;
    assert_eq!((s, v["error"].as_str()), (403, Some("insufficient_scope")));

    // A user's access token, even one of the workspace's own client: 403.
    let user_token = platform_user_token(&app, A, "emil", &secret_a).await;
    assert_eq!(claims(&user_token)["client_id"], "platform");
    let (s, v, _, _) = directory(&app, A, Some(&user_token)).await;
    assert_eq!((s, v["error"].as_str()), (403, Some("insufficient_scope")));

    // Practice B's workspace token: refused at A, and at B it lists B's accounts only.
    let (s, t) = client_token(&app, "praxis-b", ("platform", &secret_b), Some("directory")).await;
    assert_eq!(s, 200, "{t}");
    let token_b = t["access_token"].as_str().unwrap().to_owned();
    let (s, v, _, _) = directory(&app, A, Some(&token_b)).await;
    assert_eq!((s, v["error"].as_str()), (401, Some("invalid_token")));
    let (s, v, _, _) = directory(&app, "praxis-b", Some(&token_b)).await;
    assert_eq!(s, 200, "{v}");
    let b_subs: Vec<(String, bool)> = listed(&v);
    assert!(b_subs.contains(&(berta_sub, true)));
    assert!(!b_subs.iter().any(|(s, _)| *s == anna_sub));
    assert_eq!(b_subs.len(), 2, "berta and B's owner: {b_subs:?}");
    // A's token at B, and A's secret for B's client: nothing.
    let (s, _, _, _) = directory(&app, "praxis-b", Some(&token_a)).await;
    assert_eq!(s, 401);
    let (s, t) = client_token(&app, "praxis-b", ("platform", &secret_a), Some("directory")).await;
    assert_eq!((s, t["error"].as_str()), (401, Some("invalid_client")));

    // Expired: 401.
    clock.advance(10 * 60);
    let (s, v, _, _) = directory(&app, A, Some(&token_a)).await;
    assert_eq!((s, v["error"].as_str()), (401, Some("invalid_token")));
}

/// `token` with its payload changed (the signature no longer fits).
fn tampered(token: &str) -> String {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    let parts: Vec<&str> = token.split('.').collect();
    let mut payload = claims(token);
    payload["scope"] = json!("directory profile");
    payload["sub"] = json!("someone-else");
    let body = B64.encode(serde_json::to_vec(&payload).unwrap());
    format!("{}.{}.{}", parts[0], body, parts[2])
}

/// Directory tokens the practice's IdP has issued (client_credentials: no user).
async fn directory_tokens(app: &TestApp, slug: &str) -> i64 {
    use diesel::prelude::*;
    use kollegium_idp::schema::access_tokens;
    let tenant = app.tenant(slug);
    tokio::task::spawn_blocking(move || {
        let mut conn = tenant.conn(&kollegium_idp::IDP_DB).unwrap();
        access_tokens::table
            .filter(access_tokens::user_id.is_null())
            .count()
            .get_result::<i64>(&mut *conn)
            .unwrap()
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_directory_is_read_only_for_practices_someone_uses() {
    let (app, clock, _smtp) = app_with_smtp().await;
    app.create_practice(A).await;
    // An anonymous visitor (the sign-in redirect) opens no workspace database ...
    let r = app.get(&app.url(A, "/auth/login")).await;
    assert_eq!(r.status(), 303);
    assert!(!app.tenant(A).is_open(&kollegium_platform::PLATFORM_DB));
    // ... and an open one (a background job, say) alone is no reason to ask the IdP for its
    // directory.
    let t = app.tenant(A);
    tokio::task::spawn_blocking(move || drop(t.conn(&kollegium_platform::PLATFORM_DB).unwrap()))
        .await
        .unwrap();
    assert!(app.tenant(A).is_open(&kollegium_platform::PLATFORM_DB));
    periodic_sync(&app, &clock);
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(directory_tokens(&app, A).await, 0);
    // Once a member signs in, the next round reads it.
    let _anna = person(&app, A, "anna", true).await;
    periodic_sync(&app, &clock);
    let until = Instant::now() + Duration::from_secs(10);
    while directory_tokens(&app, A).await == 0 {
        assert!(
            Instant::now() < until,
            "no directory sync for a practice in use"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
