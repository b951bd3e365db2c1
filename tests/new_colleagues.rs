//! Colleagues before their first sign-in: every active account of the practice's IdP is a
//! workspace member (learnt from the IdP's member directory), so a colleague an admin has
//! just created can be found in the pickers, added to a room and `@`-mentioned (and is
//! mailed about it) before ever opening the workspace; their first sign-in takes that
//! member over. Names and roles changed at the IdP reach the workspace with the next sync.

use std::sync::Arc;
use std::time::{Duration, Instant};

use kollegium_platform::directory::worker::INTERVAL_SECS;
use kollegium_tenants::clock::ManualClock;
use reqwest::Method;
use serde_json::{Value, json};

use crate::apps::chat_api::{Person, new_room, person, post};
use crate::harness::{TestApp, client_with_jar, meta_csrf, use_smtp};
use crate::mail::use_link;
use crate::smtp::{Mail, SmtpSink};

const T0: i64 = 1_800_000_000;
const A: &str = "praxis-a";
const EMIL_PW: &str = "Wasserturm-Regenbogen-77";

async fn app_with_smtp() -> (TestApp, Arc<ManualClock>, SmtpSink) {
    let smtp = SmtpSink::start();
    let clock = Arc::new(ManualClock::new(T0));
    let app = TestApp::spawn_with_clock(clock.clone(), |c| use_smtp(c, smtp.port)).await;
    (app, clock, smtp)
}

/// Moves the clock past the directory interval and kicks the directory worker.
fn periodic_sync(app: &TestApp, clock: &ManualClock) {
    clock.advance(INTERVAL_SECS);
    app.server().directory_worker.kick();
}

/// The member picker (`/api/chat/members`) as `p` sees it.
async fn picker(app: &TestApp, p: &Person) -> Vec<Value> {
    let (s, v) = p.api(app, Method::GET, "/api/chat/members", None).await;
    assert_eq!(s, 200, "{v}");
    v["members"].as_array().unwrap().clone()
}

fn usernames(list: &[Value]) -> Vec<String> {
    let mut out: Vec<String> = list
        .iter()
        .map(|m| m["username"].as_str().unwrap().to_owned())
        .collect();
    out.sort();
    out
}

/// Waits until `p`'s picker lists exactly `want` (the directory worker runs in the
/// background); returns the picker.
async fn wait_picker(app: &TestApp, p: &Person, want: &[&str]) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let now = picker(app, p).await;
        if usernames(&now) == want {
            return now;
        }
        assert!(
            Instant::now() < deadline,
            "picker shows {:?}, not {want:?}",
            usernames(&now)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn entry<'a>(list: &'a [Value], username: &str) -> &'a Value {
    list.iter()
        .find(|m| m["username"] == username)
        .unwrap_or_else(|| panic!("{username} not in {list:?}"))
}

async fn wait_mail(smtp: &SmtpSink, address: &str, subject_part: &str) -> Mail {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(m) = smtp.messages().into_iter().find(|m| {
            m.envelope_to.iter().any(|t| t == address)
                && m.subject
                    .as_deref()
                    .unwrap_or_default()
                    .contains(subject_part)
        }) {
            return m;
        }
        assert!(
            Instant::now() < deadline,
            "no mail {subject_part:?} to {address} within 20 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Signs an existing account in to the workspace in a fresh browser.
async fn sign_in(app: &TestApp, slug: &str, user: &str, pw: &str) -> Person {
    let (http, jar) = client_with_jar();
    app.sign_in(&http, slug, user, pw).await;
    let html = http
        .get(app.url(slug, "/chat"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    Person {
        http,
        jar,
        csrf: meta_csrf(&html),
        slug: slug.to_owned(),
    }
}

/// Workspace member rows of the practice with this `sub`, and how many rows there are.
async fn member_rows(app: &TestApp, slug: &str, sub: &str) -> (i64, i64, Option<i64>) {
    use diesel::prelude::*;
    use kollegium_platform::schema::members;
    let tenant = app.tenant(slug);
    let sub = sub.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut conn = tenant.conn(&kollegium_platform::PLATFORM_DB).unwrap();
        let with_sub: i64 = members::table
            .filter(members::sub.eq(&sub))
            .count()
            .get_result(&mut *conn)
            .unwrap();
        let all: i64 = members::table.count().get_result(&mut *conn).unwrap();
        let last_login: Option<i64> = members::table
            .filter(members::sub.eq(&sub))
            .select(members::last_login_at)
            .first(&mut *conn)
            .optional()
            .unwrap()
            .flatten();
        (with_sub, all, last_login)
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_colleague_created_at_the_idp_can_be_added_and_mentioned_before_the_first_sign_in() {
    let (app, clock, smtp) = app_with_smtp().await;
    app.create_practice(A).await;
    let anna = person(&app, A, "anna", true).await;
    let bernd = person(&app, A, "bernd", false).await;
    assert_eq!(usernames(&picker(&app, &bernd).await), ["anna", "bernd"]);

    // Anna, an admin, creates Emil's account at the IdP; he sets his password with the
    // mailed link. Ida is invited too but has not set hers yet.
    let r = app
        .invite(&anna.http, A, "emil", "emil@praxis-a.example")
        .await;
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
    let r = app
        .invite(&anna.http, A, "ida", "ida@praxis-a.example")
        .await;
    assert_eq!(r.status(), 303);
    let invitation = wait_mail(&smtp, "emil@praxis-a.example", "Einladung").await;
    let (c, _) = client_with_jar();
    let r = use_link(
        &app,
        &c,
        A,
        &invitation.setup_path(),
        &[("password", EMIL_PW), ("password_repeat", EMIL_PW)],
    )
    .await;
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
    let emil_sub = app
        .idp_db(A, |c| {
            kollegium_idp::users::by_login(c, "emil")
                .unwrap()
                .unwrap()
                .sub
        })
        .await;
    assert_eq!(member_rows(&app, A, &emil_sub).await.0, 0);

    // The workspace's next directory round: Emil is a colleague (with his role), Ida, who
    // cannot sign in yet, is not.
    periodic_sync(&app, &clock);
    let list = wait_picker(&app, &bernd, &["anna", "bernd", "emil"]).await;
    let emil = entry(&list, "emil");
    assert_eq!(emil["name"], "emil Neu");
    assert_eq!(emil["roles"], json!(["MFA"]));
    let emil_id = emil["id"].as_i64().unwrap();
    assert_eq!(member_rows(&app, A, &emil_sub).await, (1, 3, None));

    // Bernd adds him to a private room and mentions him there.
    let room = new_room(&app, &bernd, "Labor", true, &[]).await;
    let (s, v) = bernd
        .api(
            &app,
            Method::PUT,
            &format!("/api/chat/rooms/{room}/members/{emil_id}"),
            None,
        )
        .await;
    assert_eq!(s, 204, "{v}");
    let (_, v) = bernd
        .api(&app, Method::GET, &format!("/api/chat/rooms/{room}"), None)
        .await;
    assert_eq!(
        usernames(v["members"].as_array().unwrap()),
        ["bernd", "emil"]
    );
    assert_eq!(
        entry(v["members"].as_array().unwrap(), "emil")["roles"],
        json!(["MFA"])
    );
    // The room page offers Anna (with her role) to add and lists Emil with his.
    let page = bernd
        .http
        .get(app.url(A, &format!("/chat/{room}")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("emil Neu (@emil) <span class=\"muted member-roles\">· MFA</span>"),
        "{page}"
    );
    assert!(page.contains(">anna Test · MFA</option>"), "{page}");
    post(&app, &bernd, room, "@emil bitte die Proben abholen").await;

    // The mention mail goes to the address the IdP has for him.
    clock.advance(15 * 60);
    app.server().job_worker.kick();
    let mail = wait_mail(&smtp, "emil@praxis-a.example", "erwähnt").await;
    assert!(
        mail.text().contains(&format!("/chat/{room}#m")),
        "{}",
        mail.text()
    );
    assert!(!mail.raw.contains("Proben"), "no content in the mail");

    // His first sign-in: his member, not a second one; the room and the mention are there.
    let emil = sign_in(&app, A, "emil", EMIL_PW).await;
    let (with_sub, all, last_login) = member_rows(&app, A, &emil_sub).await;
    assert_eq!((with_sub, all), (1, 3));
    assert!(last_login.is_some());
    let (_, rooms) = emil.api(&app, Method::GET, "/api/chat/rooms", None).await;
    let labor = rooms["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == room)
        .unwrap_or_else(|| panic!("Emil does not see the room: {rooms}"));
    assert_eq!(labor["mentions"], 1);
    let (_, me) = emil.api(&app, Method::GET, "/api/chat/members", None).await;
    assert_eq!(
        entry(me["members"].as_array().unwrap(), "emil")["id"],
        emil_id
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_or_role_changed_at_the_idp_reaches_the_workspace_with_the_next_sync() {
    let (app, clock, _smtp) = app_with_smtp().await;
    app.create_practice(A).await;
    let anna = person(&app, A, "anna", true).await;
    let bernd = person(&app, A, "bernd", false).await;
    let room = new_room(&app, &anna, "Team", false, &[]).await;
    post(&app, &bernd, room, "Guten Morgen").await;

    // The admin renames Bernd and makes him Ärzt:in, at the IdP only.
    app.idp_db(A, |c| {
        use kollegium_idp::users;
        let u = users::by_login(c, "bernd").unwrap().unwrap();
        let p = users::Profile {
            username: u.username,
            email: u.email,
            display_name: "Dr. Bernd Berger".into(),
            is_admin: u.is_admin,
            roles: vec!["arzt".into()],
            specialty: u.specialty,
            kv_region: u.kv_region,
            work_areas: u.work_areas,
        }
        .validate()
        .unwrap();
        users::update_profile(c, u.id, &p, T0).unwrap().unwrap();
    })
    .await;
    periodic_sync(&app, &clock);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let list = picker(&app, &anna).await;
        let b = entry(&list, "bernd");
        if b["name"] == "Dr. Bernd Berger" {
            assert_eq!(b["roles"], json!(["Ärzt:in"]));
            break;
        }
        assert!(Instant::now() < deadline, "still {b}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // His message shows the new name, and so does his own page (no stale cached member).
    let (_, v) = anna
        .api(
            &app,
            Method::GET,
            &format!("/api/chat/rooms/{room}/messages"),
            None,
        )
        .await;
    assert_eq!(v["messages"][0]["author"], "Dr. Bernd Berger");
    let own = bernd
        .http
        .get(app.url(A, "/chat"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(own.contains("Dr. Bernd Berger"), "{own}");
}
