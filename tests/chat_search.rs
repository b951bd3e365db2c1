//! Chat search (index freshness, access rules, isolation, hostile input), retention of chat
//! messages, and the practice's chat settings page.

use std::sync::Arc;
use std::time::{Duration, Instant};

use kollegium_tenants::clock::ManualClock;
use kollegium_tenants::{Clock, SharedClock, SystemClock};
use serde_json::Value;

use crate::harness::{TestApp, client, form_csrf};

use crate::harness::CHAT_PW as PW;

/// A fresh browser of an existing user.
async fn again(app: &TestApp, slug: &str, user: &str) -> reqwest::Client {
    let c = client();
    app.sign_in(&c, slug, user, PW).await;
    c
}

async fn new_room(
    app: &TestApp,
    c: &reqwest::Client,
    slug: &str,
    name: &str,
    private: bool,
) -> String {
    let mut fields = vec![("name", name)];
    if private {
        fields.push(("private", "on"));
    }
    let r = app
        .post_form(c, slug, "/chat", "/chat/rooms", &fields)
        .await;
    assert_eq!(r.status(), 303);
    r.headers()["location"]
        .to_str()
        .unwrap()
        .trim_start_matches("/chat/")
        .to_owned()
}

async fn act(
    app: &TestApp,
    c: &reqwest::Client,
    slug: &str,
    room: &str,
    id: &str,
    what: &str,
    fields: &[(&str, &str)],
) -> reqwest::StatusCode {
    let page = format!("/chat/{room}");
    app.post_form(
        c,
        slug,
        &page,
        &format!("{page}/messages/{id}/{what}"),
        fields,
    )
    .await
    .status()
}

fn q(s: &str) -> String {
    serde_urlencoded::to_string([("q", s)]).unwrap()
}

/// The JSON search results of `query` for `c`.
async fn api(app: &TestApp, c: &reqwest::Client, slug: &str, query: &str) -> Vec<Value> {
    let r = c
        .get(app.url(slug, &format!("/api/chat/search?{}", q(query))))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "search {query:?}");
    let v: Value = r.json().await.unwrap();
    v["results"].as_array().unwrap().clone()
}

fn ids(results: &[Value]) -> Vec<String> {
    results
        .iter()
        .map(|r| r["id"].as_i64().unwrap().to_string())
        .collect()
}

/// Polls the search until `done` holds for the results (the index is updated
/// asynchronously, about a second after a change); fails after 15 s.
async fn until(
    app: &TestApp,
    c: &reqwest::Client,
    slug: &str,
    query: &str,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let found = api(app, c, slug, query).await;
        if done(&found) {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "search for {query:?} never got there: {found:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn page(app: &TestApp, c: &reqwest::Client, slug: &str, path: &str) -> (u16, String) {
    let r = c.get(app.url(slug, path)).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_finds_new_messages_follows_edits_and_forgets_deleted_ones() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    let anna = app.signed_in("praxis-a", "anna", false).await;
    let room = new_room(&app, &anna, "praxis-a", "Team", false).await;
    app.say(&anna, "praxis-a", &room, "Guten Morgen zusammen")
        .await;
    let posted = Instant::now();
    let id = app
        .say(
            &anna,
            "praxis-a",
            &room,
            "Die Laborwerte von Frau Kästner sind da",
        )
        .await;

    // Found within seconds, with umlauts folded ("kastner" finds "Kästner").
    let found = until(&app, &anna, "praxis-a", "kastner", |r| !r.is_empty()).await;
    assert!(
        posted.elapsed() < Duration::from_secs(5),
        "{:?}",
        posted.elapsed()
    );
    assert_eq!(ids(&found), vec![id.clone()]);
    let hit = &found[0];
    assert_eq!(hit["room_id"].as_i64().unwrap().to_string(), room);
    assert_eq!(hit["room_title"], "Team");
    assert_eq!(hit["author"], "anna Test");
    assert!(hit["created_at"].as_i64().unwrap() > 1_700_000_000);
    assert_eq!(
        hit["snippet_html"],
        "Die Laborwerte von Frau <mark>Kästner</mark> sind da"
    );

    // The page shows the same, linked to the message in its room.
    let (status, html) = page(
        &app,
        &anna,
        "praxis-a",
        &format!("/chat/search?{}", q("Kästner")),
    )
    .await;
    assert_eq!(status, 200);
    assert!(html.contains("<mark>Kästner</mark>"), "{html}");
    assert!(
        html.contains(&format!("href=\"/chat/{room}#m{id}\"")),
        "{html}"
    );
    assert!(html.contains("1 Treffer"));
    // The chat list has the search field.
    let (_, list) = page(&app, &anna, "praxis-a", "/chat").await;
    assert!(list.contains("action=\"/chat/search\""));
    // An empty query: the page, no results.
    let (status, html) = page(&app, &anna, "praxis-a", "/chat/search?q=+").await;
    assert_eq!(status, 200);
    assert!(!html.contains("Treffer") && html.contains("Suche"));
    let (status, _) = page(&app, &anna, "praxis-a", "/chat/search").await;
    assert_eq!(status, 200);

    // Edited: found by the new words, no longer by the old ones.
    assert_eq!(
        act(
            &app,
            &anna,
            "praxis-a",
            &room,
            &id,
            "edit",
            &[("body", "Röntgenbild für Herrn Yilmaz")]
        )
        .await,
        303
    );
    until(&app, &anna, "praxis-a", "röntgenbild yilmaz", |r| {
        ids(r) == vec![id.clone()]
    })
    .await;
    assert!(api(&app, &anna, "praxis-a", "kästner").await.is_empty());
    assert!(api(&app, &anna, "praxis-a", "laborwerte").await.is_empty());

    // Deleted: gone from the results at once (checked against the database) and from
    // the index soon after.
    assert_eq!(
        act(&app, &anna, "praxis-a", &room, &id, "delete", &[]).await,
        303
    );
    assert!(api(&app, &anna, "praxis-a", "yilmaz").await.is_empty());
    let tenant = app.tenant("praxis-a");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let t = tenant.clone();
        let left: i64 = tokio::task::spawn_blocking(move || {
            use diesel::prelude::*;
            use kollegium_platform::schema::jobs;
            let mut conn = t.conn(&kollegium_platform::PLATFORM_DB).unwrap();
            jobs::table
                .filter(jobs::kind.eq(kollegium_platform::search::queue::JOB_KIND))
                .count()
                .get_result(&mut *conn)
                .unwrap()
        })
        .await
        .unwrap();
        if left == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "search queue never drained");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(api(&app, &anna, "praxis-a", "yilmaz").await.is_empty());
    assert!(
        app.data_dir()
            .join("tenants/praxis-a/index/search/meta.json")
            .exists()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_shows_only_readable_rooms_of_the_own_practice_and_takes_any_input() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    app.create_practice("praxis-b").await;
    let anna = app.signed_in("praxis-a", "anna", false).await;
    let bernd = app.signed_in("praxis-a", "bernd", false).await;
    let olga = app.signed_in("praxis-b", "olga", false).await;

    let labor = new_room(&app, &anna, "praxis-a", "Labor", true).await;
    let team = new_room(&app, &anna, "praxis-a", "Team", false).await;
    let secret = app
        .say(&anna, "praxis-a", &labor, "Geheimbefund Zebra")
        .await;
    let open = app
        .say(&anna, "praxis-a", &team, "Zebra im Wartezimmer")
        .await;
    let b_room = new_room(&app, &olga, "praxis-b", "Team", false).await;
    let b_msg = app
        .say(
            &olga,
            "praxis-b",
            &b_room,
            "Zebrastreifen vor der Praxis Zebra",
        )
        .await;

    let mut both = ids(&until(&app, &anna, "praxis-a", "zebra", |r| r.len() == 2).await);
    both.sort();
    let mut want = vec![secret.clone(), open.clone()];
    want.sort();
    assert_eq!(both, want);
    // Bernd is not in the private room: only the open room's message.
    assert_eq!(
        ids(&api(&app, &bernd, "praxis-a", "zebra").await),
        vec![open.clone()]
    );
    assert!(
        api(&app, &bernd, "praxis-a", "geheimbefund")
            .await
            .is_empty()
    );
    let (_, html) = page(
        &app,
        &bernd,
        "praxis-a",
        &format!("/chat/search?{}", q("zebra")),
    )
    .await;
    assert!(!html.contains("Geheimbefund") && !html.contains(&format!("/chat/{labor}#")));
    // Practice B sees only its own message (ids may coincide; the text tells them apart).
    let b = until(&app, &olga, "praxis-b", "zebra", |r| !r.is_empty()).await;
    assert_eq!(ids(&b), vec![b_msg]);
    assert!(
        b[0]["snippet_html"]
            .as_str()
            .unwrap()
            .contains("Zebrastreifen")
    );
    assert!(
        api(&app, &olga, "praxis-b", "geheimbefund")
            .await
            .is_empty()
    );
    assert!(api(&app, &olga, "praxis-b", "wartezimmer").await.is_empty());
    assert!(
        api(&app, &anna, "praxis-a", "zebrastreifen")
            .await
            .is_empty()
    );
    // Anna's session is worth nothing at B.
    let r = anna
        .get(app.url("praxis-b", "/api/chat/search?q=zebra"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // Unauthenticated: the page sends to sign-in, the API answers 401.
    let r = client()
        .get(app.url("praxis-a", "/chat/search?q=zebra"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert!(
        r.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with("/auth/login?next=")
    );
    let r = client()
        .get(app.url("praxis-a", "/api/chat/search?q=zebra"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.text().await.unwrap().contains("unauthorized"));

    // Too long: a clear 400, page and API.
    let long = "zebra ".repeat(40);
    let (status, html) = page(
        &app,
        &anna,
        "praxis-a",
        &format!("/chat/search?{}", q(&long)),
    )
    .await;
    assert_eq!(status, 400);
    assert!(html.contains("Der Suchbegriff ist zu lang (höchstens 200 Zeichen)."));
    let r = anna
        .get(app.url("praxis-a", &format!("/api/chat/search?{}", q(&long))))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"], "query_too_long");
    assert!(v["message"].as_str().unwrap().contains("zu lang"));
    // Exactly 200 characters is fine.
    let (status, _) = page(
        &app,
        &anna,
        "praxis-a",
        &format!("/chat/search?{}", q(&"z".repeat(200))),
    )
    .await;
    assert_eq!(status, 200);

    // Query syntax is just words: no errors, sensible results.
    for hostile in [
        "\"zebra",
        "zebra AND (",
        "body:zebra",
        "room:1 OR room:2",
        "[1 TO 9",
        "*",
        "zebra~2^3",
        "-zebra +",
        "\\",
        "))((",
        "'; DROP TABLE messages; --",
        "%",
        "ä ö ü ß ẞ 😀",
    ] {
        let (status, html) = page(
            &app,
            &anna,
            "praxis-a",
            &format!("/chat/search?{}", q(hostile)),
        )
        .await;
        assert_eq!(status, 200, "{hostile}");
        assert!(!html.contains("Fehler"), "{hostile}");
        api(&app, &anna, "praxis-a", hostile).await;
    }
    assert_eq!(
        ids(&api(&app, &bernd, "praxis-a", "\"Zebra\" AND (").await),
        vec![open.clone()]
    );

    // Markup in a message is escaped in snippets; only the highlight is markup.
    let xss = app
        .say(
            &anna,
            "praxis-a",
            &team,
            "<script>alert(1)</script> Giraffe <img src=x onerror=alert(2)>",
        )
        .await;
    let found = until(&app, &bernd, "praxis-a", "giraffe", |r| !r.is_empty()).await;
    assert_eq!(ids(&found), vec![xss]);
    let snippet = found[0]["snippet_html"].as_str().unwrap();
    assert_eq!(
        snippet,
        "&lt;script&gt;alert(1)&lt;/script&gt; <mark>Giraffe</mark> &lt;img src=x onerror=alert(2)&gt;"
    );
    let (_, html) = page(&app, &bernd, "praxis-a", "/chat/search?q=giraffe").await;
    let lower = html.to_lowercase();
    assert!(!lower.contains("<script>alert") && !lower.contains("<img src=x"));
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt; <mark>Giraffe</mark>"));
}

async fn manual_app() -> (TestApp, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(SystemClock.now()));
    let shared: SharedClock = clock.clone();
    (TestApp::spawn_with_clock(shared, |_| {}).await, clock)
}

async fn save_settings(
    app: &TestApp,
    c: &reqwest::Client,
    window: &str,
    retention: &str,
) -> reqwest::Response {
    app.post_form(
        c,
        "praxis-a",
        "/chat/admin",
        "/chat/admin",
        &[
            ("edit_window_minutes", window),
            ("retention_months", retention),
        ],
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_deletes_old_messages_everywhere_and_only_in_its_practice() {
    let (app, clock) = manual_app().await;
    app.create_practice("praxis-a").await;
    app.create_practice("praxis-b").await;
    let anna = app.signed_in("praxis-a", "anna", true).await;
    let olga = app.signed_in("praxis-b", "olga", true).await;
    let room = new_room(&app, &anna, "praxis-a", "Team", false).await;
    let old = app.say(&anna, "praxis-a", &room, "Uraltbefund Alpha").await;
    let b_room = new_room(&app, &olga, "praxis-b", "Team", false).await;
    app.say(&olga, "praxis-b", &b_room, "Uraltnotiz Beta").await;
    until(&app, &anna, "praxis-a", "uraltbefund", |r| {
        ids(r) == vec![old.clone()]
    })
    .await;
    until(&app, &olga, "praxis-b", "uraltnotiz", |r| r.len() == 1).await;
    // Without a setting the job deletes nothing.
    assert_eq!(app.server().run_chat_retention().await.unwrap(), 0);

    // 100 days later (sessions have expired meanwhile: sign in again).
    clock.advance(100 * 86_400);
    let anna = again(&app, "praxis-a", "anna").await;
    let olga = again(&app, "praxis-b", "olga").await;
    let fresh = app
        .say(&anna, "praxis-a", &room, "Frischbefund Gamma")
        .await;
    let r = save_settings(&app, &anna, "15", "2").await;
    assert_eq!(r.status(), 303);

    assert_eq!(app.server().run_chat_retention().await.unwrap(), 1);
    let (_, html) = page(&app, &anna, "praxis-a", &format!("/chat/{room}")).await;
    assert!(!html.contains("Uraltbefund") && html.contains("Frischbefund Gamma"));
    assert!(api(&app, &anna, "praxis-a", "uraltbefund").await.is_empty());
    until(&app, &anna, "praxis-a", "frischbefund", |r| {
        ids(r) == vec![fresh.clone()]
    })
    .await;
    // The room list still works and the room is still there.
    let (status, list) = page(&app, &anna, "praxis-a", "/chat").await;
    assert_eq!(status, 200);
    assert!(list.contains("Team"));
    // Practice B has no retention set: untouched.
    let (_, html) = page(&app, &olga, "praxis-b", &format!("/chat/{b_room}")).await;
    assert!(html.contains("Uraltnotiz Beta"));
    assert_eq!(api(&app, &olga, "praxis-b", "uraltnotiz").await.len(), 1);
    // Running again changes nothing.
    assert_eq!(app.server().run_chat_retention().await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_settings_are_for_admins_validated_and_take_effect() {
    let (app, clock) = manual_app().await;
    app.create_practice("praxis-a").await;
    let anna = app.signed_in("praxis-a", "anna", true).await;
    let bernd = app.signed_in("praxis-a", "bernd", false).await;

    // Admins see the link and the page with the defaults; others get neither.
    let (_, list) = page(&app, &anna, "praxis-a", "/chat").await;
    assert!(list.contains("href=\"/chat/admin\""));
    let (_, list) = page(&app, &bernd, "praxis-a", "/chat").await;
    assert!(!list.contains("/chat/admin"));
    let (status, html) = page(&app, &anna, "praxis-a", "/chat/admin").await;
    assert_eq!(status, 200);
    assert!(html.contains("Chat-Einstellungen"));
    assert!(html.contains("name=\"edit_window_minutes\"") && html.contains("value=\"15\""));
    assert!(html.contains("name=\"retention_months\"") && html.contains("value=\"0\""));
    let (status, _) = page(&app, &bernd, "praxis-a", "/chat/admin").await;
    assert_eq!(status, 403);
    let token = form_csrf(&page(&app, &bernd, "praxis-a", "/chat").await.1);
    let r = bernd
        .post(app.url("praxis-a", "/chat/admin"))
        .form(&[
            ("csrf_token", token.as_str()),
            ("edit_window_minutes", "600"),
            ("retention_months", "1"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // Without the CSRF token: refused.
    let r = anna
        .post(app.url("praxis-a", "/chat/admin"))
        .form(&[("edit_window_minutes", "600"), ("retention_months", "1")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = client()
        .get(app.url("praxis-a", "/chat/admin"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);

    // Invalid values: 400 with a clear message, nothing saved.
    for (w, m, msg) in [
        ("0", "0", "zwischen 1 und 1440 Minuten"),
        ("1441", "0", "zwischen 1 und 1440 Minuten"),
        ("abc", "0", "zwischen 1 und 1440 Minuten"),
        ("", "0", "zwischen 1 und 1440 Minuten"),
        ("10", "121", "zwischen 0 und 120 Monaten"),
        ("10", "-1", "zwischen 0 und 120 Monaten"),
        ("10", "zwei", "zwischen 0 und 120 Monaten"),
    ] {
        let r = save_settings(&app, &anna, w, m).await;
        assert_eq!(r.status(), 400, "{w} {m}");
        assert!(r.text().await.unwrap().contains(msg), "{w} {m}");
    }
    let (_, html) = page(&app, &anna, "praxis-a", "/chat/admin").await;
    assert!(html.contains("value=\"15\"") && html.contains("value=\"0\""));

    // A one-minute window: editing after 61 s is refused.
    let r = save_settings(&app, &anna, "1", "").await;
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/chat/admin?gespeichert=1");
    let (_, html) = page(&app, &anna, "praxis-a", "/chat/admin?gespeichert=1").await;
    assert!(html.contains("gespeichert") && html.contains("value=\"1\""));
    let room = new_room(&app, &bernd, "praxis-a", "Team", false).await;
    let id = app.say(&bernd, "praxis-a", &room, "Tippfehlr").await;
    clock.advance(61);
    assert_eq!(
        act(
            &app,
            &bernd,
            "praxis-a",
            &room,
            &id,
            "edit",
            &[("body", "Tippfehler")]
        )
        .await,
        403
    );
    // Ten minutes: the same edit is allowed again.
    assert_eq!(save_settings(&app, &anna, "10", "24").await.status(), 303);
    assert_eq!(
        act(
            &app,
            &bernd,
            "praxis-a",
            &room,
            &id,
            "edit",
            &[("body", "Tippfehler")]
        )
        .await,
        303
    );
    let (_, html) = page(&app, &anna, "praxis-a", "/chat/admin").await;
    assert!(html.contains("value=\"10\"") && html.contains("value=\"24\""));
}
