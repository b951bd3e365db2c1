//! Mention mails (after the member's delay, only if still unread, never with the text) and
//! the personal chat settings page.

use std::sync::Arc;
use std::time::{Duration, Instant};

use kollegium_tenants::clock::ManualClock;

use crate::harness::{TestApp, client, use_smtp};
use crate::smtp::{Mail, SmtpSink};

const T0: i64 = 1_800_000_000;

async fn app_with_smtp() -> (TestApp, Arc<ManualClock>, SmtpSink) {
    let smtp = SmtpSink::start();
    let clock = Arc::new(ManualClock::new(T0));
    let app = TestApp::spawn_with_clock(clock.clone(), |c| use_smtp(c, smtp.port)).await;
    (app, clock, smtp)
}

pub async fn signed_in(app: &TestApp, slug: &str, user: &str) -> reqwest::Client {
    app.signed_in(slug, user, false).await
}

/// Creates a group room as the member on `c`; returns its id.
pub async fn room(app: &TestApp, c: &reqwest::Client, slug: &str, name: &str) -> String {
    let r = app
        .post_form(c, slug, "/chat", "/chat/rooms", &[("name", name)])
        .await;
    assert_eq!(r.status(), 303);
    r.headers()["location"]
        .to_str()
        .unwrap()
        .trim_start_matches("/chat/")
        .to_owned()
}

pub async fn page(app: &TestApp, c: &reqwest::Client, slug: &str, path: &str) -> String {
    let r = c.get(app.url(slug, path)).send().await.unwrap();
    assert_eq!(r.status(), 200, "{path}");
    r.text().await.unwrap()
}

/// Runs the mention worker's round for a practice, as its tick would.
async fn mention_round(app: &TestApp, slug: &str) -> kollegium_platform::notify::mentions::Round {
    let server = app.server();
    kollegium_platform::notify::worker::run_slug(&server.context, &server.directory, slug)
        .await
        .unwrap()
        .unwrap()
}

/// Mention mails in a practice's platform `mail_queue`: (recipient, subject).
async fn queued(app: &TestApp, slug: &str) -> Vec<(String, String)> {
    use diesel::prelude::*;
    use kollegium_tenants::mail::schema::mail_queue as q;
    let tenant = app.tenant(slug);
    tokio::task::spawn_blocking(move || {
        let mut conn = tenant.conn(&kollegium_platform::PLATFORM_DB).unwrap();
        q::table
            .order(q::id)
            .select((q::recipient, q::subject))
            .load::<(String, String)>(&mut *conn)
            .unwrap()
    })
    .await
    .unwrap()
}

fn to(smtp: &SmtpSink, address: &str) -> Vec<Mail> {
    smtp.messages()
        .into_iter()
        .filter(|m| m.envelope_to.iter().any(|t| t == address))
        .collect()
}

async fn wait_mail(smtp: &SmtpSink, address: &str, secs: u64) -> Mail {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(m) = to(smtp, address).pop() {
            return m;
        }
        assert!(
            Instant::now() < deadline,
            "no mail to {address} within {secs} s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn assert_no_text(mail: &Mail, secrets: &[&str]) {
    for s in secrets {
        assert!(
            !mail.raw.contains(s) && !mail.text().contains(s) && !mail.html().contains(s),
            "the mail must not carry the message text {s:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mention_is_mailed_after_the_delay_with_a_link_but_without_the_text() {
    let (app, clock, smtp) = app_with_smtp().await;
    app.create_practice("praxis-a").await;
    let anna = signed_in(&app, "praxis-a", "anna").await;
    let _bernd = signed_in(&app, "praxis-a", "bernd").await;
    let id = room(&app, &anna, "praxis-a", "Labor").await;
    let mid = app
        .say(
            &anna,
            "praxis-a",
            &id,
            "@bernd Befund Müller ist da: GEHEIM-4711",
        )
        .await;

    // Not yet due (default delay 15 minutes).
    assert_eq!(mention_round(&app, "praxis-a").await.mails, 0);
    clock.advance(14 * 60);
    assert_eq!(mention_round(&app, "praxis-a").await.mails, 0);
    assert!(queued(&app, "praxis-a").await.is_empty());

    // Due: the running worker, kicked instead of waiting for its tick, queues the mail and
    // the mail worker delivers it to the SMTP server.
    clock.advance(60);
    app.server().job_worker.kick();
    let mail = wait_mail(&smtp, "bernd@praxis-a.example", 20).await;
    assert_eq!(
        mail.subject.as_deref(),
        Some("Sie wurden im Raum „Labor“ erwähnt")
    );
    let link = app.url("praxis-a", &format!("/chat/{id}#m{mid}"));
    assert!(mail.text().contains(&link), "{}", mail.text());
    assert!(mail.html().contains(&link));
    assert!(
        mail.text()
            .contains("anna Test hat Sie im Raum „Labor“ erwähnt")
    );
    assert_no_text(&mail, &["GEHEIM-4711", "Befund", "Müller"]);

    // Done: no second mail, neither from another round nor after a restart of the round.
    let r = mention_round(&app, "praxis-a").await;
    assert_eq!((r.mails, r.next_due), (0, None));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(to(&smtp, "bernd@praxis-a.example").len(), 1);
    assert!(
        to(&smtp, "anna@praxis-a.example").is_empty(),
        "authors are not notified"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mention_due_after_a_restart_is_found_in_the_closed_practice() {
    let (mut app, clock, smtp) = app_with_smtp().await;
    app.create_practice("praxis-a").await;
    let anna = signed_in(&app, "praxis-a", "anna").await;
    let _bernd = signed_in(&app, "praxis-a", "bernd").await;
    let id = room(&app, &anna, "praxis-a", "Labor").await;
    app.say(&anna, "praxis-a", &id, "@bernd Rückruf bitte")
        .await;
    // A new server process: no practice is open; the worker's start-up scan remembers
    // when the notice is due and opens the practice then.
    app.restart().await;
    assert!(
        !app.server()
            .store
            .is_open(&kollegium_tenants::Slug::parse("praxis-a").unwrap())
    );
    clock.advance(15 * 60);
    app.server().job_worker.kick();
    let mail = wait_mail(&smtp, "bernd@praxis-a.example", 20).await;
    assert!(
        mail.text()
            .contains(&app.url("praxis-a", &format!("/chat/{id}#m")))
    );
    assert_no_text(&mail, &["Rückruf"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_in_time_switched_off_or_deleted_mentions_send_nothing() {
    let (app, clock, smtp) = app_with_smtp().await;
    app.create_practice("praxis-a").await;
    let anna = signed_in(&app, "praxis-a", "anna").await;
    let bernd = signed_in(&app, "praxis-a", "bernd").await;
    let carla = signed_in(&app, "praxis-a", "carla").await;
    let dora = signed_in(&app, "praxis-a", "dora").await;
    let emil = signed_in(&app, "praxis-a", "emil").await;
    // Carla switched mention mails off before, Dora after the mention.
    let off = [("delay", "900")];
    let r = app
        .post_form(&carla, "praxis-a", "/chat/settings", "/chat/settings", &off)
        .await;
    assert_eq!(r.status(), 303);
    let id = room(&app, &anna, "praxis-a", "Empfang").await;
    app.say(
        &anna,
        "praxis-a",
        &id,
        "@bernd @carla @dora bitte Rückruf Frau K.",
    )
    .await;
    let gone = app
        .say(&anna, "praxis-a", &id, "@emil Vertraulich-999")
        .await;
    let r = app
        .post_form(&dora, "praxis-a", "/chat/settings", "/chat/settings", &off)
        .await;
    assert_eq!(r.status(), 303);
    // Bernd reads the room in time; Anna deletes the message that mentions Emil.
    page(&app, &bernd, "praxis-a", &format!("/chat/{id}")).await;
    let r = app
        .post_form(
            &anna,
            "praxis-a",
            &format!("/chat/{id}"),
            &format!("/chat/{id}/messages/{gone}/delete"),
            &[],
        )
        .await;
    assert_eq!(r.status(), 303);

    clock.advance(15 * 60);
    let r = mention_round(&app, "praxis-a").await;
    assert_eq!(r.mails, 0, "{r:?}");
    assert_eq!(r.next_due, None);
    assert!(queued(&app, "praxis-a").await.is_empty());
    let _ = emil;
    tokio::time::sleep(Duration::from_millis(300)).await;
    for who in ["bernd", "carla", "dora", "emil"] {
        assert!(
            to(&smtp, &format!("{who}@praxis-a.example")).is_empty(),
            "{who}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alle_notifies_everyone_mentions_are_combined_and_other_practices_get_nothing() {
    let (app, clock, smtp) = app_with_smtp().await;
    app.create_practice("praxis-a").await;
    app.create_practice("praxis-b").await;
    let anna = signed_in(&app, "praxis-a", "anna").await;
    let bernd = signed_in(&app, "praxis-a", "bernd").await;
    let _carla = signed_in(&app, "praxis-a", "carla").await;
    let olga = signed_in(&app, "praxis-b", "olga").await;
    let _paul = signed_in(&app, "praxis-b", "paul").await;
    // Bernd wants his mails after 5 minutes.
    let r = app
        .post_form(
            &bernd,
            "praxis-a",
            "/chat/settings",
            "/chat/settings",
            &[("mention_mail", "on"), ("delay", "300")],
        )
        .await;
    assert_eq!(r.status(), 303);
    let team = room(&app, &anna, "praxis-a", "Team").await;
    let labor = room(&app, &anna, "praxis-a", "Labor").await;
    app.say(&anna, "praxis-a", &team, "@alle Besprechung um 13 Uhr")
        .await;
    app.say(&anna, "praxis-a", &labor, "@bernd Proben abholen")
        .await;
    // Practice B has its own mention that nobody reads.
    let b_room = room(&app, &olga, "praxis-b", "Team").await;
    app.say(&olga, "praxis-b", &b_room, "@paul Kaffee?").await;

    // (The running worker may take a round first; the queue tells what happened.)
    clock.advance(5 * 60);
    mention_round(&app, "praxis-a").await;
    let rows = queued(&app, "praxis-a").await;
    assert_eq!(rows.len(), 1, "only Bernd's delay has passed: {rows:?}");
    assert_eq!(rows[0].0, "bernd@praxis-a.example");
    clock.advance(10 * 60);
    mention_round(&app, "praxis-a").await;
    let rows = queued(&app, "praxis-a").await;
    assert_eq!(rows.len(), 2, "Carla's @alle mention: {rows:?}");
    assert_eq!(rows[1].0, "carla@praxis-a.example");

    let b = wait_mail(&smtp, "bernd@praxis-a.example", 20).await;
    assert_eq!(
        b.subject.as_deref(),
        Some("Sie wurden in 2 Unterhaltungen erwähnt")
    );
    for (name, id) in [("Team", &team), ("Labor", &labor)] {
        assert!(b.text().contains(&format!("im Raum „{name}“")));
        assert!(b.text().contains(&format!("/chat/{id}#m")));
    }
    let c = wait_mail(&smtp, "carla@praxis-a.example", 20).await;
    assert_eq!(
        c.subject.as_deref(),
        Some("Sie wurden im Raum „Team“ erwähnt")
    );
    assert_no_text(&b, &["Besprechung", "Proben"]);
    assert_no_text(&c, &["Besprechung"]);
    assert_eq!(to(&smtp, "bernd@praxis-a.example").len(), 1, "combined");

    // Nothing of A's went to B, and B's queue only has B's own mention.
    mention_round(&app, "praxis-b").await;
    let rows = queued(&app, "praxis-b").await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].0, "paul@praxis-b.example");
    let p = wait_mail(&smtp, "paul@praxis-b.example", 20).await;
    assert!(
        p.text()
            .contains(&app.url("praxis-b", &format!("/chat/{b_room}#m")))
    );
    assert!(!p.raw.contains("praxis-a"));
    assert!(to(&smtp, "olga@praxis-b.example").is_empty());
    let a_rows = queued(&app, "praxis-a").await;
    assert!(
        a_rows
            .iter()
            .all(|(to, _)| to.ends_with("@praxis-a.example"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn personal_chat_settings_are_validated_and_take_effect() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    let anna = signed_in(&app, "praxis-a", "anna").await;
    let bernd = signed_in(&app, "praxis-a", "bernd").await;

    // Unauthenticated: sent to sign in; no CSRF token: refused.
    let r = client()
        .get(app.url("praxis-a", "/chat/settings"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(
        r.headers()["location"],
        "/auth/login?next=%2Fchat%2Fsettings"
    );
    let r = bernd
        .post(app.url("praxis-a", "/chat/settings"))
        .form(&[("delay", "300")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = client()
        .post(app.url("praxis-a", "/chat/settings"))
        .form(&[("delay", "300")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    // The chat list links to the page; defaults: receipts and mails on, 15 minutes.
    assert!(
        page(&app, &bernd, "praxis-a", "/chat")
            .await
            .contains("href=\"/chat/settings\"")
    );
    let html = page(&app, &bernd, "praxis-a", "/chat/settings").await;
    assert!(html.contains("Chat-Einstellungen (persönlich)"));
    assert!(html.contains("name=\"read_receipts\" checked"));
    assert!(html.contains("name=\"mention_mail\" checked"));
    assert!(html.contains("value=\"900\" selected"));

    // Read receipts on: Bernd appears under Anna's message once he read it.
    let id = room(&app, &anna, "praxis-a", "Team").await;
    let room_page = format!("/chat/{id}");
    app.say(&anna, "praxis-a", &id, "Hallo zusammen").await;
    page(&app, &bernd, "praxis-a", &room_page).await;
    let html = page(&app, &anna, "praxis-a", &room_page).await;
    assert!(html.contains("Gelesen von bernd Test"), "{html}");

    // Bernd switches read receipts off (mails on, 5 minutes).
    let r = app
        .post_form(
            &bernd,
            "praxis-a",
            "/chat/settings",
            "/chat/settings",
            &[("mention_mail", "on"), ("delay", "300")],
        )
        .await;
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/chat/settings?saved=1");
    let html = page(&app, &bernd, "praxis-a", "/chat/settings?saved=1").await;
    assert!(html.contains("gespeichert"));
    assert!(html.contains("name=\"read_receipts\">"));
    assert!(html.contains("name=\"mention_mail\" checked"));
    assert!(html.contains("value=\"300\" selected"));
    app.say(&anna, "praxis-a", &id, "Noch eine Frage").await;
    page(&app, &bernd, "praxis-a", &room_page).await;
    let html = page(&app, &anna, "praxis-a", &room_page).await;
    assert!(
        !html.contains("bernd Test</p>") && !html.contains("Gelesen von"),
        "{html}"
    );

    // Invalid values: 400 with a German message, nothing saved.
    for bad in [
        vec![("read_receipts", "on"), ("delay", "42")],
        vec![("read_receipts", "on"), ("delay", "-900")],
        vec![("read_receipts", "on"), ("delay", "viel")],
        vec![("read_receipts", "on")],
        vec![("read_receipts", "vielleicht"), ("delay", "0")],
        vec![
            ("read_receipts", "on"),
            ("mention_mail", "x"),
            ("delay", "0"),
        ],
    ] {
        let r = app
            .post_form(&bernd, "praxis-a", "/chat/settings", "/chat/settings", &bad)
            .await;
        assert_eq!(r.status(), 400, "{bad:?}");
        let html = r.text().await.unwrap();
        assert!(html.contains("class=\"notice error\""), "{html}");
    }
    let html = page(&app, &bernd, "praxis-a", "/chat/settings").await;
    assert!(html.contains("name=\"read_receipts\">") && html.contains("value=\"300\" selected"));
    // "sofort" is a valid choice.
    let r = app
        .post_form(
            &bernd,
            "praxis-a",
            "/chat/settings",
            "/chat/settings",
            &[("read_receipts", "on"), ("delay", "0")],
        )
        .await;
    assert_eq!(r.status(), 303);
    let html = page(&app, &bernd, "praxis-a", "/chat/settings").await;
    assert!(
        html.contains("name=\"read_receipts\" checked") && html.contains("value=\"0\" selected")
    );
    assert!(html.contains("name=\"mention_mail\">"));
}
