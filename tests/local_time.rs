//! Local time: every time shown to a user is in the practice's time zone (default
//! Europe/Berlin, with summer time) and German format, on the server's pages, in the chat
//! script's live messages and on the IdP's pages; `kollegium practice set-time-zone`
//! changes the zone and refuses unknown ones.

use std::sync::Arc;
use std::time::Duration;

use fantoccini::Locator;
use kollegium::practices::Change;
use kollegium_tenants::clock::ManualClock;
use kollegium_tenants::time::Zone;
use serde_json::Value;

use crate::apps::chat_api::{Person, new_room, person, post};
use crate::browser::{browser, driver, sign_in, wait_live};
use crate::harness::{CHAT_PW, TestApp, cli_in, stderr, stdout};

const A: &str = "praxis-a";
/// 2026-12-06 13:05 UTC: 14:05 in Berlin (CET).
const WINTER: i64 = 1_796_562_300;
/// 2026-12-31 23:30 UTC: already 1 January 2027 in Berlin.
const NEW_YEARS_EVE: i64 = 1_798_759_800;
/// 2027-07-01 12:30 UTC: 14:30 in Berlin (CEST).
const SUMMER: i64 = 1_814_445_000;

async fn page(app: &TestApp, p: &Person, path: &str) -> String {
    let r = p.http.get(app.url(A, path)).send().await.unwrap();
    assert_eq!(r.status(), 200, "{path}");
    r.text().await.unwrap()
}

/// The times a chat page shows in its messages' `<time>` elements.
fn times(html: &str) -> Vec<String> {
    // Not the empty message the script fills for live ones (in a `<template>`).
    let list = html
        .split("<template id=\"message-template\">")
        .next()
        .unwrap();
    list.split("<time class=\"message-time\"")
        .skip(1)
        .map(|s| {
            let text = s.split_once('>').unwrap().1;
            text.split("</time>").next().unwrap().to_owned()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_and_idp_pages_show_the_practices_local_time() {
    let clock = Arc::new(ManualClock::new(SUMMER));
    let app = TestApp::spawn_with_clock(clock.clone(), |_| {}).await;
    app.create_practice(A).await;
    // A message posted in summer, and two written earlier (in winter, and on New Year's
    // Eve in UTC), stored as chat stores them.
    let anna = person(&app, A, "anna", false).await;
    let room = new_room(&app, &anna, "Team", false, &[]).await;
    let sent = post(&app, &anna, room, "Sommer").await;
    let author = sent["author_id"].as_i64().unwrap();
    let tenant = app.tenant(A);
    tokio::task::spawn_blocking(move || {
        use kollegium_platform::chat::{RoomId, messages, rooms};
        use kollegium_platform::members::MemberId;
        let mut conn = tenant.conn(&kollegium_platform::PLATFORM_DB).unwrap();
        let r = rooms::by_id(&mut conn, RoomId(room)).unwrap().unwrap();
        for (body, at) in [("Winter", WINTER), ("Silvester", NEW_YEARS_EVE)] {
            messages::post(&mut conn, &r, MemberId(author), body, None, at).unwrap();
        }
    })
    .await
    .unwrap();

    let html = page(&app, &anna, &format!("/chat/{room}")).await;
    assert_eq!(
        times(&html),
        ["heute 14:30", "06.12.2026, 14:05", "01.01.2027, 00:30"]
    );
    assert!(!html.contains(" UTC"), "no UTC time on the page");
    assert!(
        html.contains("data-tz=\"Europe/Berlin\""),
        "the script's zone"
    );
    // The search page's hits (the index is updated in the background).
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let hits = page(&app, &anna, "/chat/search?q=Sommer").await;
        if hits.contains("anna Test · ") {
            assert!(hits.contains("anna Test · 01.07.2027, 14:30"), "{hits}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no hit: {hits}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The IdP's account page: Anna's session, signed in today (in summer), said so.
    let account = page(&app, &anna, "/id/account").await;
    assert!(
        account.contains("<span class=\"when\">heute 14:30</span>"),
        "{account}"
    );
    assert!(!account.contains(" UTC"));

    // The practice sets New York time: its pages follow (summer time there is UTC-4).
    let zone = Zone::parse("America/New_York").unwrap();
    app.change(A, Change::SetTimeZone(&zone)).unwrap();
    let html = page(&app, &anna, &format!("/chat/{room}")).await;
    assert_eq!(
        times(&html),
        ["heute 08:30", "06.12.2026, 08:05", "31.12.2026, 18:30"]
    );
    assert!(html.contains("data-tz=\"America/New_York\""));
    let account = page(&app, &anna, "/id/account").await;
    assert!(
        account.contains("<span class=\"when\">heute 08:30</span>"),
        "{account}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_idps_pages_say_today_and_yesterday_by_the_practices_calendar() {
    use kollegium_idp::events::{self, Event, EventKind};
    let clock = Arc::new(ManualClock::new(SUMMER));
    let app = TestApp::spawn_with_clock(clock.clone(), |_| {}).await;
    app.create_practice(A).await;
    let chefin = app.signed_in(A, "chefin", true).await;
    // Events from yesterday (17:03 in Berlin) and from three days ago, as the IdP records
    // them.
    let yesterday = SUMMER - 86_400 + 2 * 3600 + 33 * 60;
    let earlier = SUMMER - 3 * 86_400;
    app.idp_db(A, move |c| {
        let who = kollegium_idp::users::by_login(c, "chefin")
            .unwrap()
            .unwrap();
        for (at, kind) in [
            (yesterday, EventKind::Logout),
            (earlier, EventKind::LoginFailed),
        ] {
            let e = Event {
                user: Some(who.id),
                ..Event::new(kind)
            };
            events::record(c, at, &e).unwrap();
        }
    })
    .await;
    let log = page_of(&app, &chefin, "/id/admin/events").await;
    for shown in ["heute 14:30", "gestern 17:03", "28.06.2027, 14:30"] {
        assert!(
            log.contains(&format!("<span class=\"when\">{shown}</span>")),
            "{shown}: {log}"
        );
    }
    assert!(!log.contains(" UTC"));
    // The user list: when each account was last active.
    let users = page_of(&app, &chefin, "/id/admin/users").await;
    assert!(
        users.contains(
            "<td data-label=\"Zuletzt aktiv\"><span class=\"when\">heute 14:30</span></td>"
        ),
        "{users}"
    );
}

async fn page_of(app: &TestApp, c: &reqwest::Client, path: &str) -> String {
    let r = c.get(app.url(A, path)).send().await.unwrap();
    assert_eq!(r.status(), 200, "{path}");
    r.text().await.unwrap()
}

#[test]
fn the_cli_sets_a_practices_time_zone_and_refuses_unknown_ones() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let run = |args: &[&str]| cli_in(&data, args, &[]);
    let out = run(&[
        "practice",
        "create",
        "praxis-wien",
        "--name",
        "Praxis Wien",
        "--owner-email",
        "chefin@praxis-wien.at",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let zone_of = |run: &dyn Fn(&[&str]) -> std::process::Output| {
        let out = run(&["practice", "show", "praxis-wien", "--json"]);
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        v["time_zone"].as_str().unwrap().to_owned()
    };
    assert_eq!(zone_of(&run), "Europe/Berlin");

    let out = run(&["practice", "set-time-zone", "praxis-wien", "europe/vienna"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("Europe/Vienna"), "{}", stdout(&out));
    assert_eq!(zone_of(&run), "Europe/Vienna");
    let out = run(&["practice", "show", "praxis-wien"]);
    assert!(stdout(&out).contains("time zone:  Europe/Vienna"));

    // Unknown zones, offsets and POSIX rules: a usage error that says what is wanted;
    // nothing changes.
    for bad in [
        "Mars/Olympus_Mons",
        "+01:00",
        "CET-1CEST,M3.5.0,M10.5.0/3",
        "",
    ] {
        let out = run(&["practice", "set-time-zone", "praxis-wien", bad]);
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("unknown time zone") && stderr(&out).contains("Europe/Berlin"),
            "{bad:?}: {}",
            stderr(&out)
        );
    }
    assert_eq!(zone_of(&run), "Europe/Vienna");
    // An unknown practice.
    let out = run(&[
        "practice",
        "set-time-zone",
        "praxis-nirgends",
        "Europe/Berlin",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("no practice"), "{}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_messages_show_the_same_local_time_as_the_server() {
    let app = TestApp::spawn().await;
    app.create_practice(A).await;
    // A zone that is neither the default nor (likely) the browser's own.
    let zone = Zone::parse("America/New_York").unwrap();
    app.change(A, Change::SetTimeZone(&zone)).unwrap();
    app.create_user(A, "anna", CHAT_PW, false).await;
    let bernd = person(&app, A, "bernd", false).await;
    let room = new_room(&app, &bernd, "Team", false, &[]).await;
    post(&app, &bernd, room, "Vorher").await;

    let d = driver().await;
    let b = browser(&d, "anna").await;
    sign_in(&b, &app, "anna", &format!("/chat/{room}")).await;
    wait_live(&b).await;
    let sent = post(&app, &bernd, room, "Live-Nachricht").await;
    let created = sent["created_at"].as_i64().unwrap();
    let id = sent["id"].as_i64().unwrap();
    b.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(&format!("li#m{id} .message-time")))
        .await
        .unwrap();
    // Read as text: in a group of one author's messages, the time shows on hover only.
    let shown = b
        .execute(
            &format!("return document.querySelector('li#m{id} .message-time').textContent;"),
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(shown, zone.format_relative(created, created));
    // The server-rendered message before it has the same format.
    let first: Value = b
        .execute(
            "return document.querySelector('#messages li.message .message-time').textContent;",
            vec![],
        )
        .await
        .unwrap();
    let first = first.as_str().unwrap().to_owned();
    assert_eq!(first.len(), "heute 14:05".len(), "{first}");
    assert!(first.starts_with("heute "), "{first}");
}
