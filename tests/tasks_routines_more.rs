//! Recurring routines, continued: card and checklist templates, the demo's series, and
//! that a practice whose routine is not yet due stays closed (the node's density).

use std::time::Duration;

use diesel::prelude::*;
use kollegium_platform::schema::{task_cards, task_series};

use crate::harness::TestApp;
use crate::tasks_routines::{board, db, items, new_series, setup, wait_instances};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn templates_make_cards_and_checklists() {
    let (app, _clock, _smtp) = setup().await;
    app.create_practice("praxis-a").await;
    let anna = app.signed_in("praxis-a", "anna", false).await;
    let b = board(&app, &anna, "praxis-a", "edit").await;
    let tpl = format!("/tasks/templates/boards/{b}");
    let r = app
        .post_form(
            &anna,
            "praxis-a",
            &tpl,
            &tpl,
            &[
                ("kind", "card"),
                ("name", "Gerätewartung"),
                ("title", "Autoklav warten"),
                ("checklist", "Filter\nDichtung"),
            ],
        )
        .await;
    assert_eq!(r.status(), 303);
    let r = app
        .post_form(
            &anna,
            "praxis-a",
            &tpl,
            &tpl,
            &[
                ("kind", "checklist"),
                ("name", "Notfall"),
                ("checklist", "Sauerstoff\nDefibrillator"),
            ],
        )
        .await;
    assert_eq!(r.status(), 303);
    // Empty checklist template: refused.
    let r = app
        .post_form(
            &anna,
            "praxis-a",
            &tpl,
            &tpl,
            &[("kind", "checklist"), ("name", "Leer")],
        )
        .await;
    assert_eq!(r.status(), 400);
    let ids: Vec<i64> = db(&app, "praxis-a", |c| {
        use kollegium_platform::schema::task_templates as t;
        t::table.order(t::id).select(t::id).load(c).unwrap()
    })
    .await;
    assert_eq!(ids.len(), 2);
    let html = crate::chat_notify::page(&app, &anna, "praxis-a", &tpl).await;
    assert!(html.contains("Neue Karte aus Vorlage") && html.contains("Gerätewartung"));

    let r = app
        .post_form(
            &anna,
            "praxis-a",
            &tpl,
            &format!("/tasks/templates/{}/card", ids[0]),
            &[],
        )
        .await;
    assert_eq!(r.status(), 303);
    let loc = r.headers()["location"].to_str().unwrap().to_owned();
    let card: i64 = loc.trim_start_matches("/tasks/cards/").parse().unwrap();
    let card_html = crate::chat_notify::page(&app, &anna, "praxis-a", &loc).await;
    assert!(card_html.contains("Autoklav warten"));
    let r = app
        .post_form(
            &anna,
            "praxis-a",
            &tpl,
            &format!("/tasks/templates/{}/checklist", ids[1]),
            &[("card", &card.to_string())],
        )
        .await;
    assert_eq!(r.status(), 303);
    let texts: Vec<String> = items(&app, "praxis-a", card)
        .await
        .into_iter()
        .map(|i| i.0)
        .collect();
    assert_eq!(texts, ["Filter", "Dichtung", "Sauerstoff", "Defibrillator"]);
    // A card that does not exist: 404, nothing added.
    let r = app
        .post_form(
            &anna,
            "praxis-a",
            &tpl,
            &format!("/tasks/templates/{}/checklist", ids[1]),
            &[("card", "999999")],
        )
        .await;
    assert_eq!(r.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_board_has_a_weekly_hygiene_check_and_a_quarterly_billing() {
    use kollegium_platform::schema::task_boards;
    let app = TestApp::spawn().await;
    assert!(crate::demo_workspace::seed_demo(&app).await);
    let slug = kollegium::demo::DEMO_SLUG;
    let rows: Vec<(String, String, String, i64)> = db(&app, slug, |c| {
        let board: i64 = task_boards::table
            .filter(task_boards::title.eq("Praxisorganisation"))
            .select(task_boards::id)
            .first(c)
            .unwrap();
        task_series::table
            .filter(task_series::board_id.eq(board))
            .order(task_series::id)
            .select((
                task_series::title,
                task_series::rule,
                task_series::time_of_day,
                task_series::id,
            ))
            .load(c)
            .unwrap()
    })
    .await;
    let described: Vec<(String, String)> = rows
        .iter()
        .map(|(title, rule, at, _)| {
            let r = kollegium_platform::tasks::routines::rule::Recurrence::from_json(rule).unwrap();
            let at = kollegium_platform::tasks::routines::rule::TimeOfDay::parse(at).unwrap();
            (title.clone(), r.describe(at))
        })
        .collect();
    assert_eq!(
        described,
        [
            (
                "Hygieneplan prüfen".to_owned(),
                "wöchentlich am Montag um 08:00".to_owned()
            ),
            (
                "Quartalsabrechnung vorbereiten".to_owned(),
                "vierteljährlich 10 Tage vor Quartalsende um 09:00".to_owned()
            ),
        ]
    );
    // Each has its first card, with its checklist.
    for (_, _, _, id) in rows {
        let cards: Vec<i64> = db(&app, slug, move |c| {
            task_cards::table
                .filter(task_cards::series_id.eq(id))
                .select(task_cards::id)
                .load(c)
                .unwrap()
        })
        .await;
        assert_eq!(cards.len(), 1);
        assert_eq!(items(&app, slug, cards[0]).await.len(), 4);
    }
}

/// Density (issue 13): a node does not open a practice's database each tick to see whether
/// a routine is due. After a restart no practice is open; the job worker reads the next
/// due time of the closed database once (its start-up sweep) and keeps the practice closed
/// until then; when the time has come it opens it and creates the card.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_routine_not_yet_due_keeps_its_practice_closed_until_it_is() {
    let (mut app, clock, _smtp) = setup().await;
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
    // The other work of the change (the card's search document) is done first: what
    // waits in the practice is the routine's job alone.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        app.server().job_worker.kick();
        let pending: Vec<String> = db(&app, "praxis-a", |c| {
            use kollegium_tenants::jobs::schema::jobs;
            jobs::table
                .filter(jobs::failed_at.is_null())
                .select(jobs::kind)
                .load(c)
                .unwrap()
        })
        .await;
        if pending == ["tasks.recur"] {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "pending: {pending:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    app.restart().await;
    let slug = kollegium_tenants::Slug::parse("praxis-a").unwrap();
    // Several ticks and kicks before the due time (10:00 Berlin = T0 + 1 h): still closed.
    for _ in 0..5 {
        app.server().job_worker.kick();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    clock.advance(3000);
    for _ in 0..5 {
        app.server().job_worker.kick();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        !app.server().store.is_open(&slug),
        "the worker must not open a practice whose job is not due"
    );
    // Due: the worker opens it and creates the next day's card.
    clock.advance(700);
    let all = wait_instances(&app, "praxis-a", 2).await;
    assert_eq!(all.len(), 2);
}

/// A reminder follows the card's due date: moved to tomorrow, nothing is mailed at the old
/// time and one mail at the new one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_due_date_moves_the_reminder() {
    let (app, clock, smtp) = setup().await;
    app.create_practice("praxis-a").await;
    let anna = app.signed_in("praxis-a", "anna", false).await;
    let settings = "/tasks/routines/settings";
    let on = [("enabled", "1"), ("lead", "0")];
    let r = app
        .post_form(&anna, "praxis-a", settings, settings, &on)
        .await;
    assert_eq!(r.status(), 303);
    let me: i64 = db(&app, "praxis-a", |c| {
        use kollegium_platform::schema::members;
        members::table.select(members::id).first(c).unwrap()
    })
    .await;
    let b = board(&app, &anna, "praxis-a", "edit").await;
    let who = me.to_string();
    let fields = [
        ("freq", "daily"),
        ("every_days", "1"),
        ("time", "12:00"),
        ("assignees", who.as_str()),
    ];
    assert_eq!(
        new_series(&app, &anna, "praxis-a", b, &fields)
            .await
            .status(),
        303
    );
    let card = crate::tasks_routines::instances(&app, "praxis-a").await[0].0;
    let page = format!("/tasks/cards/{card}");
    let edit = [
        ("title", "Hygieneplan prüfen"),
        ("description", ""),
        ("due_date", "2027-01-16"),
        ("due_time", "12:00"),
    ];
    let r = app
        .post_form(&anna, "praxis-a", &page, &format!("{page}/edit"), &edit)
        .await;
    assert_eq!(r.status(), 303);
    // Past the old due time (12:00 Berlin today = T0 + 3 h): nothing.
    clock.advance(3 * 3600 + 60);
    for _ in 0..5 {
        app.server().job_worker.kick();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(crate::tasks_routines::reminders(&smtp).is_empty());
    // At the new one: the mail.
    clock.advance(crate::tasks_routines::DAY);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while crate::tasks_routines::reminders(&smtp).is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "no reminder at the new due time"
        );
        app.server().job_worker.kick();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mails = crate::tasks_routines::reminders(&smtp);
    assert_eq!(mails.len(), 1);
    assert!(mails[0].text().contains(&format!("/tasks/cards/{card}")));
}
