//! Recurring practice routines (issue 13): series create their next card when one is done
//! or due, pause and end; invalid rules are refused in German with nothing written;
//! reminder mails reach the SMTP server without content; other members and practices
//! see nothing.

use std::sync::Arc;
use std::time::{Duration, Instant};

use diesel::prelude::*;
use kollegium_platform::PLATFORM_DB;
use kollegium_platform::schema::{task_cards, task_checklist_items, task_series};
use kollegium_tenants::clock::ManualClock;

use crate::harness::{CHAT_PW, TestApp, client, use_smtp};
use crate::smtp::{Mail, SmtpSink};

/// Friday 15 January 2027, 08:00 UTC (09:00 in Berlin).
pub const T0: i64 = 1_800_000_000;
pub const DAY: i64 = 86_400;

pub async fn setup() -> (TestApp, Arc<ManualClock>, SmtpSink) {
    let smtp = SmtpSink::start();
    let clock = Arc::new(ManualClock::new(T0));
    let app = TestApp::spawn_with_clock(clock.clone(), |c| use_smtp(c, smtp.port)).await;
    (app, clock, smtp)
}

/// A board of the member on `c`, shared with the practice as `share` ("" = nobody).
pub async fn board(app: &TestApp, c: &reqwest::Client, slug: &str, share: &str) -> i64 {
    let r = app
        .post_form(
            c,
            slug,
            "/tasks/new",
            "/tasks/boards",
            &[("title", "Praxisorganisation"), ("practice", share)],
        )
        .await;
    assert_eq!(r.status(), 303);
    let loc = r.headers()["location"].to_str().unwrap().to_owned();
    loc.trim_start_matches("/tasks/boards/")
        .split('?')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

pub fn routines(board: i64) -> String {
    format!("/tasks/routines/boards/{board}")
}

/// Posts the series form with `fields` over a weekly Monday 08:00 default.
pub async fn new_series(
    app: &TestApp,
    c: &reqwest::Client,
    slug: &str,
    board: i64,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    let mut all: Vec<(&str, &str)> = vec![
        ("title", "Hygieneplan prüfen"),
        ("description", "GEHEIM-Beschreibung"),
        ("checklist", "Flächen\nSterilgut"),
        ("freq", "weekly"),
        ("every_weeks", "1"),
        ("days", "mo"),
        ("time", "08:00"),
        ("mode", "on_done"),
    ];
    for (k, _) in fields {
        all.retain(|(key, _)| key != k);
    }
    all.extend_from_slice(fields);
    all.retain(|(_, v)| *v != "<none>");
    app.post_form(c, slug, &routines(board), &routines(board), &all)
        .await
}

pub async fn db<T: Send + 'static>(
    app: &TestApp,
    slug: &str,
    f: impl FnOnce(&mut SqliteConnection) -> T + Send + 'static,
) -> T {
    let tenant = app.tenant(slug);
    tokio::task::spawn_blocking(move || {
        let mut conn = tenant.conn(&PLATFORM_DB).unwrap();
        f(&mut conn)
    })
    .await
    .unwrap()
}

/// The cards of the practice's series: (id, due, done), oldest first.
pub async fn instances(app: &TestApp, slug: &str) -> Vec<(i64, Option<i64>, Option<i64>)> {
    db(app, slug, |c| {
        task_cards::table
            .filter(task_cards::series_id.is_not_null())
            .order(task_cards::id)
            .select((task_cards::id, task_cards::due_at, task_cards::done_at))
            .load(c)
            .unwrap()
    })
    .await
}

pub async fn series_count(app: &TestApp, slug: &str) -> i64 {
    db(app, slug, |c| {
        task_series::table.count().get_result(c).unwrap()
    })
    .await
}

pub async fn items(app: &TestApp, slug: &str, card: i64) -> Vec<(String, Option<i64>)> {
    db(app, slug, move |c| {
        task_checklist_items::table
            .filter(task_checklist_items::card_id.eq(card))
            .order(task_checklist_items::position)
            .select((task_checklist_items::text, task_checklist_items::done_at))
            .load(c)
            .unwrap()
    })
    .await
}

/// Kicks the job worker until the practice has `n` series cards.
pub async fn wait_instances(
    app: &TestApp,
    slug: &str,
    n: usize,
) -> Vec<(i64, Option<i64>, Option<i64>)> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        app.server().job_worker.kick();
        let got = instances(app, slug).await;
        if got.len() >= n {
            return got;
        }
        assert!(
            Instant::now() < deadline,
            "only {} instances: {got:?}",
            got.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A fresh sign-in of `user` (after the test clock moved past the session's lifetime).
pub async fn again(app: &TestApp, slug: &str, user: &str) -> reqwest::Client {
    let c = client();
    app.sign_in(&c, slug, user, CHAT_PW).await;
    c
}

/// The reminder mails the SMTP server received.
pub fn reminders(smtp: &SmtpSink) -> Vec<Mail> {
    smtp.messages()
        .into_iter()
        .filter(|m| {
            m.subject
                .as_deref()
                .is_some_and(|s| s.starts_with("Eine Aufgabe ist fällig"))
        })
        .collect()
}

/// Berlin local time of `t` as `YYYY-MM-DD HH:MM`.
pub fn local(t: i64) -> String {
    let z = kollegium_tenants::time::Zone::default();
    let s = z.format(t); // 18.01.2027, 08:00
    format!("{}-{}-{} {}", &s[6..10], &s[3..5], &s[0..2], &s[12..17])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completing_a_recurring_card_creates_the_next_with_a_fresh_checklist() {
    let (app, _clock, _smtp) = setup().await;
    app.create_practice("praxis-a").await;
    let anna = app.signed_in("praxis-a", "anna", false).await;
    let b = board(&app, &anna, "praxis-a", "edit").await;
    let r = new_series(&app, &anna, "praxis-a", b, &[]).await;
    assert_eq!(r.status(), 303);
    // The first card is due on the first Monday from now, 08:00 Berlin.
    let first = instances(&app, "praxis-a").await;
    assert_eq!(first.len(), 1);
    assert_eq!(local(first[0].1.unwrap()), "2027-01-18 08:00");
    let board_page = format!("/tasks/boards/{b}");
    let html = crate::chat_notify::page(&app, &anna, "praxis-a", &board_page).await;
    assert!(html.contains(&format!("href=\"{}\"", routines(b))));
    assert!(
        html.contains("Hygieneplan prüfen"),
        "the first card is on the board"
    );
    let html = crate::chat_notify::page(&app, &anna, "praxis-a", &routines(b)).await;
    assert!(html.contains("Hygieneplan prüfen"), "{html}");
    assert!(html.contains("wöchentlich am Montag um 08:00"), "{html}");
    assert!(html.contains("18.01.2027, 08:00"));

    // Tick one item, then mark the card done through the card page's form.
    let card = first[0].0;
    db(&app, "praxis-a", move |c| {
        diesel::update(task_checklist_items::table.filter(task_checklist_items::card_id.eq(card)))
            .set(task_checklist_items::done_at.eq(T0))
            .execute(c)
            .unwrap();
    })
    .await;
    let page = format!("/tasks/cards/{card}");
    let r = app
        .post_form(&anna, "praxis-a", &page, &format!("{page}/done"), &[])
        .await;
    assert_eq!(r.status(), 303);
    let all = wait_instances(&app, "praxis-a", 2).await;
    let next = all[1];
    assert_eq!(local(next.1.unwrap()), "2027-01-25 08:00");
    assert_eq!(next.2, None);
    assert_eq!(
        items(&app, "praxis-a", next.0).await,
        [("Flächen".to_owned(), None), ("Sterilgut".to_owned(), None)]
    );
    // The done card keeps its ticks; no third card appears.
    assert!(
        items(&app, "praxis-a", card)
            .await
            .iter()
            .all(|i| i.1.is_some())
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    app.server().job_worker.kick();
    assert_eq!(instances(&app, "praxis-a").await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_on_due_series_creates_the_next_when_the_due_time_passes_and_pause_and_end_hold() {
    let (app, clock, _smtp) = setup().await;
    app.create_practice("praxis-a").await;
    let anna = app.signed_in("praxis-a", "anna", false).await;
    let b = board(&app, &anna, "praxis-a", "edit").await;
    let r = new_series(
        &app,
        &anna,
        "praxis-a",
        b,
        &[
            ("freq", "daily"),
            ("every_days", "1"),
            ("time", "10:00"),
            ("mode", "on_due"),
        ],
    )
    .await;
    assert_eq!(r.status(), 303);
    let first = instances(&app, "praxis-a").await;
    assert_eq!(local(first[0].1.unwrap()), "2027-01-15 10:00");

    // Before the due time nothing happens; after it, the next day's card appears (the
    // first one is still open: on_due does not wait for it).
    clock.advance(3600 - 60);
    app.server().job_worker.kick();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(instances(&app, "praxis-a").await.len(), 1);
    clock.advance(120);
    let all = wait_instances(&app, "praxis-a", 2).await;
    assert_eq!(local(all[1].1.unwrap()), "2027-01-16 10:00");
    assert_eq!(all[0].2, None);

    // Paused: a passing due time creates nothing.
    let id: i64 = db(&app, "praxis-a", |c| {
        task_series::table.select(task_series::id).first(c).unwrap()
    })
    .await;
    let act = |what: &'static str| format!("/tasks/routines/{id}/{what}");
    let anna = again(&app, "praxis-a", "anna").await;
    let r = app
        .post_form(&anna, "praxis-a", &routines(b), &act("pause"), &[])
        .await;
    assert_eq!(r.status(), 303);
    clock.advance(DAY);
    app.server().job_worker.kick();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(instances(&app, "praxis-a").await.len(), 2);
    let anna = again(&app, "praxis-a", "anna").await;
    let html = crate::chat_notify::page(&app, &anna, "praxis-a", &routines(b)).await;
    assert!(html.contains("pausiert"));

    // Resumed: it catches up with one card (the next occurrence from now), not one per
    // missed day.
    clock.advance(3 * DAY);
    let anna = again(&app, "praxis-a", "anna").await;
    let r = app
        .post_form(&anna, "praxis-a", &routines(b), &act("resume"), &[])
        .await;
    assert_eq!(r.status(), 303);
    let all = wait_instances(&app, "praxis-a", 3).await;
    assert_eq!(local(all[2].1.unwrap()), "2027-01-20 10:00");

    // Ended (confirmed): nothing more, and it cannot be resumed.
    let r = app
        .post_form(
            &anna,
            "praxis-a",
            &routines(b),
            &act("end"),
            &[("confirm", "1")],
        )
        .await;
    assert_eq!(r.status(), 303);
    clock.advance(5 * DAY);
    app.server().job_worker.kick();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(instances(&app, "praxis-a").await.len(), 3);
    let anna = again(&app, "praxis-a", "anna").await;
    let r = app
        .post_form(&anna, "praxis-a", &routines(b), &act("resume"), &[])
        .await;
    assert_eq!(r.status(), 409);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_rules_are_refused_in_german_and_nothing_is_written() {
    let (app, _clock, _smtp) = setup().await;
    app.create_practice("praxis-a").await;
    let anna = app.signed_in("praxis-a", "anna", false).await;
    let b = board(&app, &anna, "praxis-a", "edit").await;
    let rows: &[(&[(&str, &str)], &str)] = &[
        (
            &[("freq", "daily"), ("every_days", "0")],
            "Der Abstand muss zwischen 1 und 365 Tagen liegen.",
        ),
        (
            &[("days", "<none>")],
            "Bitte mindestens einen Wochentag wählen.",
        ),
        (
            &[
                ("freq", "monthly"),
                ("month_on", "day"),
                ("month_day", "32"),
            ],
            "Der Tag des Monats muss zwischen 1 und 31 liegen.",
        ),
        (
            &[("freq", "monthly"), ("month_on", "day"), ("month_day", "0")],
            "Der Tag des Monats muss zwischen 1 und 31 liegen.",
        ),
        (
            &[
                ("freq", "quarterly"),
                ("quarter_on", "days_before_end"),
                ("quarter_offset", "81"),
            ],
            "Der Abstand zum Quartalsende muss zwischen 0 und 80 Tagen liegen.",
        ),
        (
            &[("freq", "yearly"), ("year_month", "2"), ("year_day", "30")],
            "Den 30.02. gibt es in keinem Jahr.",
        ),
        (&[("time", "25:00")], "Die Uhrzeit bitte als SS:MM angeben"),
        (
            &[("freq", "hourly")],
            "Wie oft soll die Aufgabe wiederkehren?",
        ),
        (&[("days", "xx")], "Unbekannter Wochentag."),
        (&[("holidays", "XX")], "Unbekanntes Bundesland."),
        (&[("title", "  ")], "Titel"),
        (&[("assignees", "99999")], "Unbekannte Person."),
    ];
    for (fields, message) in rows {
        let r = new_series(&app, &anna, "praxis-a", b, fields).await;
        assert_eq!(r.status(), 400, "{fields:?}");
        let body = r.text().await.unwrap();
        assert!(body.contains(message), "{fields:?}: {body}");
    }
    // Day 31 in a monthly rule is no error: February gets its last day.
    let r = new_series(
        &app,
        &anna,
        "praxis-a",
        b,
        &[
            ("freq", "monthly"),
            ("month_on", "day"),
            ("month_day", "31"),
        ],
    )
    .await;
    assert_eq!(r.status(), 303);
    assert_eq!(series_count(&app, "praxis-a").await, 1);
    assert_eq!(instances(&app, "praxis-a").await.len(), 1);
    assert_eq!(
        local(instances(&app, "praxis-a").await[0].1.unwrap()),
        "2027-01-31 08:00"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reminder_mail_reaches_the_smtp_server_without_title_or_description() {
    let (app, clock, smtp) = setup().await;
    app.create_practice("praxis-a").await;
    let anna = app.signed_in("praxis-a", "anna", false).await;
    let bernd = app.signed_in("praxis-a", "bernd", false).await;
    // Bernd wants reminders one hour before.
    let r = app
        .post_form(
            &bernd,
            "praxis-a",
            "/tasks/routines/settings",
            "/tasks/routines/settings",
            &[("enabled", "1"), ("lead", "60")],
        )
        .await;
    assert_eq!(r.status(), 303);
    let bernd_id: i64 = db(&app, "praxis-a", |c| {
        use kollegium_platform::schema::members;
        members::table
            .filter(members::username.eq("bernd"))
            .select(members::id)
            .first(c)
            .unwrap()
    })
    .await;
    let b = board(&app, &anna, "praxis-a", "edit").await;
    let who = bernd_id.to_string();
    let r = new_series(
        &app,
        &anna,
        "praxis-a",
        b,
        &[
            ("title", "Notfallkoffer GEHEIMTITEL"),
            ("freq", "daily"),
            ("every_days", "1"),
            ("time", "12:00"),
            ("assignees", &who),
        ],
    )
    .await;
    assert_eq!(r.status(), 303);
    let card = instances(&app, "praxis-a").await[0].0;
    // Due 12:00 Berlin = 11:00 UTC; reminder at 10:00 UTC, two hours after T0.
    clock.advance(2 * 3600 - 60);
    app.server().job_worker.kick();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(reminders(&smtp).is_empty());
    clock.advance(60);
    let deadline = Instant::now() + Duration::from_secs(20);
    let mail = loop {
        app.server().job_worker.kick();
        if let Some(m) = reminders(&smtp)
            .into_iter()
            .find(|m| m.envelope_to.iter().any(|t| t == "bernd@praxis-a.example"))
        {
            break m;
        }
        assert!(Instant::now() < deadline, "no reminder mail");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let link = app.url("praxis-a", &format!("/tasks/cards/{card}"));
    assert!(mail.text().contains(&link), "{}", mail.text());
    assert!(mail.html().contains(&link));
    assert!(mail.text().contains("eine Aufgabe fällig"));
    for secret in [
        "GEHEIMTITEL",
        "Notfallkoffer",
        "GEHEIM-Beschreibung",
        "Flächen",
        "Praxisorganisation",
    ] {
        assert!(
            !mail.raw.contains(secret)
                && !mail.text().contains(secret)
                && !mail.html().contains(secret),
            "{secret} in the mail"
        );
    }
    // Anna (not assigned, reminders off) gets nothing.
    assert!(
        !reminders(&smtp)
            .iter()
            .any(|m| m.envelope_to.iter().any(|t| t == "anna@praxis-a.example"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_done_card_or_a_changed_setting_sends_no_reminder() {
    let (app, clock, smtp) = setup().await;
    app.create_practice("praxis-a").await;
    let anna = app.signed_in("praxis-a", "anna", false).await;
    let r = app
        .post_form(
            &anna,
            "praxis-a",
            "/tasks/routines/settings",
            "/tasks/routines/settings",
            &[("enabled", "1"), ("lead", "0")],
        )
        .await;
    assert_eq!(r.status(), 303);
    let html = crate::chat_notify::page(&app, &anna, "praxis-a", "/tasks/routines/settings").await;
    assert!(
        html.contains("name=\"enabled\" value=\"1\" checked"),
        "{html}"
    );
    // A lead time not offered is refused.
    let r = app
        .post_form(
            &anna,
            "praxis-a",
            "/tasks/routines/settings",
            "/tasks/routines/settings",
            &[("enabled", "1"), ("lead", "7")],
        )
        .await;
    assert_eq!(r.status(), 400);
    let me: i64 = db(&app, "praxis-a", |c| {
        use kollegium_platform::schema::members;
        members::table.select(members::id).first(c).unwrap()
    })
    .await;
    let b = board(&app, &anna, "praxis-a", "edit").await;
    let who = me.to_string();
    new_series(
        &app,
        &anna,
        "praxis-a",
        b,
        &[
            ("freq", "daily"),
            ("every_days", "1"),
            ("time", "12:00"),
            ("assignees", &who),
        ],
    )
    .await;
    let card = instances(&app, "praxis-a").await[0].0;
    let page = format!("/tasks/cards/{card}");
    let r = app
        .post_form(&anna, "praxis-a", &page, &format!("{page}/done"), &[])
        .await;
    assert_eq!(r.status(), 303);
    // The next instance is due tomorrow; switch reminders off before it is due.
    wait_instances(&app, "praxis-a", 2).await;
    let r = app
        .post_form(
            &anna,
            "praxis-a",
            "/tasks/routines/settings",
            "/tasks/routines/settings",
            &[("lead", "0")],
        )
        .await;
    assert_eq!(r.status(), 303);
    clock.advance(2 * DAY);
    app.server().job_worker.kick();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    app.server().job_worker.kick();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(reminders(&smtp).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn others_cannot_see_or_change_series_and_templates_and_bad_requests_are_refused() {
    let (app, _clock, _smtp) = setup().await;
    app.create_practice("praxis-a").await;
    app.create_practice("praxis-b").await;
    let anna = app.signed_in("praxis-a", "anna", false).await;
    let bernd = app.signed_in("praxis-a", "bernd", false).await;
    let berta = app.signed_in("praxis-b", "berta", false).await;
    // Anna's board is shared with nobody.
    let b = board(&app, &anna, "praxis-a", "").await;
    assert_eq!(
        new_series(&app, &anna, "praxis-a", b, &[]).await.status(),
        303
    );
    let id: i64 = db(&app, "praxis-a", |c| {
        task_series::table.select(task_series::id).first(c).unwrap()
    })
    .await;
    let tpl = format!("/tasks/templates/boards/{b}");
    // Bernd has no access: the board's pages are 404 for him.
    for path in [routines(b), tpl.clone()] {
        let r = bernd.get(app.url("praxis-a", &path)).send().await.unwrap();
        assert_eq!(r.status(), 404, "{path}");
    }
    // Neither Bernd nor Berta (practice B, with a board of her own) can end A's series.
    let _ = board(&app, &berta, "praxis-b", "edit").await;
    for (c, slug) in [(&bernd, "praxis-a"), (&berta, "praxis-b")] {
        let r = app
            .post_form(
                c,
                slug,
                "/tasks/routines/settings",
                &format!("/tasks/routines/{id}/end"),
                &[],
            )
            .await;
        assert_eq!(r.status(), 404, "{slug}");
        let r = app
            .post_form(
                c,
                slug,
                "/tasks/routines/settings",
                "/tasks/templates/1/card",
                &[],
            )
            .await;
        assert_eq!(r.status(), 404, "{slug}");
    }
    let r = app
        .post_form(
            &bernd,
            "praxis-a",
            "/tasks/routines/settings",
            &routines(b),
            &[
                ("title", "x"),
                ("freq", "daily"),
                ("every_days", "1"),
                ("time", "08:00"),
                ("mode", "on_done"),
            ],
        )
        .await;
    assert_eq!(r.status(), 404);
    assert_eq!(series_count(&app, "praxis-a").await, 1);
    let still: Option<i64> = db(&app, "praxis-a", |c| {
        task_series::table
            .select(task_series::ended_at)
            .first(c)
            .unwrap()
    })
    .await;
    assert_eq!(still, None, "nobody else ended it");

    // Unauthenticated: the pages send to the login, posts are refused.
    let anon = client();
    let r = anon
        .get(app.url("praxis-a", &routines(b)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let r = anon
        .post(app.url("praxis-a", &routines(b)))
        .form(&[("title", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // Without the CSRF token: refused, nothing written.
    let r = anna
        .post(app.url("praxis-a", &routines(b)))
        .form(&[
            ("title", "x"),
            ("freq", "daily"),
            ("every_days", "1"),
            ("time", "08:00"),
            ("mode", "on_done"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = anna
        .post(app.url("praxis-a", &format!("/tasks/routines/{id}/end")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // Malformed ids and actions, oversized bodies.
    let r = anna
        .get(app.url("praxis-a", "/tasks/routines/boards/abc"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = app
        .post_form(
            &anna,
            "praxis-a",
            &routines(b),
            &format!("/tasks/routines/{id}/explode"),
            &[],
        )
        .await;
    assert_eq!(r.status(), 404);
    let r = app
        .post_form(
            &anna,
            "praxis-a",
            &routines(b),
            "/tasks/routines/999999/pause",
            &[],
        )
        .await;
    assert_eq!(r.status(), 404);
    let huge = "x".repeat(2 * 1024 * 1024);
    let r = new_series(&app, &anna, "praxis-a", b, &[("description", &huge)]).await;
    assert_eq!(r.status(), 413);
    let many = vec!["Punkt"; 500].join("\n");
    let r = new_series(&app, &anna, "praxis-a", b, &[("checklist", &many)]).await;
    assert_eq!(r.status(), 400);
    assert_eq!(series_count(&app, "praxis-a").await, 1);
}
