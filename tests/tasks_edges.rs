//! The open edges of tasks (issue 13): a colleague who leaves the practice is unassigned from
//! open cards (with a history line), loses their personal shares, is offered nowhere and
//! gets no reminder; ending a routine asks first.

use std::time::{Duration, Instant};

use diesel::prelude::*;
use kollegium_platform::schema::{task_board_access, task_card_assignees, task_series};

use crate::apps::chat_api::{Person, person};
use crate::chat_notify::page;
use crate::harness::{CHAT_PW, client, client_with_jar};
use crate::members_directory::{account, admin_action, periodic_sync};
use crate::tasks::member_id;
use crate::tasks_pages::platform_mails;
use crate::tasks_routines::{db, instances, new_series, reminders, routines, setup};

const A: &str = "praxis-a";

fn mails_to(smtp: &crate::smtp::SmtpSink, address: &str) -> usize {
    reminders(smtp)
        .iter()
        .filter(|m| m.envelope_to.iter().any(|t| t == address))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_colleague_who_leaves_is_unassigned_unshared_offered_nowhere_and_not_reminded() {
    let (app, clock, smtp) = setup().await;
    app.create_practice(A).await;
    let anna = person(&app, A, "anna", true).await;
    let bernd = person(&app, A, "bernd", false).await;
    let carla = person(&app, A, "carla", false).await;
    let (bernd_id, carla_id) = (
        member_id(&app, &anna, "bernd").await,
        member_id(&app, &anna, "carla").await,
    );
    // Both want a reminder one hour before a card is due.
    for p in [&bernd, &carla] {
        let r = app
            .post_form(
                &p.http,
                A,
                "/tasks/routines/settings",
                "/tasks/routines/settings",
                &[("enabled", "1"), ("lead", "60")],
            )
            .await;
        assert_eq!(r.status(), 303);
    }
    // Anna's board, shared with the two of them personally (nobody else).
    let (fb, fc) = (format!("member:{bernd_id}"), format!("member:{carla_id}"));
    let r = app
        .post_form(
            &anna.http,
            A,
            "/tasks/new",
            "/tasks/boards",
            &[("title", "Labor"), (&fb, "edit"), (&fc, "edit")],
        )
        .await;
    assert_eq!(r.status(), 303);
    let loc = r.headers()["location"].to_str().unwrap().to_owned();
    let b: i64 = loc["/tasks/boards/".len()..]
        .split('?')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    // A daily routine for both: its first card is due today 12:00 (reminders at 11:00).
    let (wb, wc) = (bernd_id.to_string(), carla_id.to_string());
    let r = new_series(
        &app,
        &anna.http,
        A,
        b,
        &[
            ("title", "Kühlschrank prüfen"),
            ("freq", "daily"),
            ("every_days", "1"),
            ("time", "12:00"),
            ("assignees", &wb),
            ("assignees", &wc),
        ],
    )
    .await;
    assert_eq!(r.status(), 303);
    let card = instances(&app, A).await[0].0;
    let assigned = move |c: &mut SqliteConnection| -> Vec<i64> {
        task_card_assignees::table
            .filter(task_card_assignees::card_id.eq(card))
            .order(task_card_assignees::member_id)
            .select(task_card_assignees::member_id)
            .load(c)
            .unwrap()
    };
    assert_eq!(db(&app, A, assigned).await, [bernd_id, carla_id]);
    let r = bernd
        .http
        .get(app.url(A, &format!("/tasks/boards/{b}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "bernd reads the board while he works here");

    // Bernd leaves: the admin disables his account; the directory's next round tells tasks.
    let bernd_account = account(&app, A, "bernd").await.id;
    admin_action(&app, &anna, A, bernd_account, "disable").await;
    periodic_sync(&app, &clock);
    let deadline = Instant::now() + Duration::from_secs(20);
    while db(&app, A, assigned).await != [carla_id] {
        assert!(Instant::now() < deadline, "bernd is still assigned");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The card says why; the assignee choice offers him no more.
    let html = page(&app, &anna.http, A, &format!("/tasks/cards/{card}")).await;
    assert!(
        html.contains("bernd Test hat die Praxis verlassen und ist nicht mehr zugewiesen"),
        "{html}"
    );
    assert!(html.contains(&format!("name=\"member\" value=\"{carla_id}\"")));
    assert!(!html.contains(&format!("name=\"member\" value=\"{bernd_id}\"")));
    // An @-mention reaches Carla and not him (he reads the board no more).
    let r = app
        .post_form(
            &anna.http,
            A,
            &format!("/tasks/cards/{card}"),
            &format!("/tasks/cards/{card}/comment"),
            &[("body", "@bernd @carla bitte übernehmen")],
        )
        .await;
    assert_eq!(r.status(), 303);
    let mentioned: Vec<String> = platform_mails(&app, A)
        .await
        .into_iter()
        .filter(|m| m.0 == "tasks.mention")
        .map(|m| m.1)
        .collect();
    assert_eq!(mentioned, ["carla@praxis-a.example"]);
    // His share is gone from the sharing form and the board; Carla's stays.
    let settings = page(&app, &anna.http, A, &format!("/tasks/boards/{b}/settings")).await;
    assert!(settings.contains(&format!("name=\"{fc}\"")));
    assert!(!settings.contains(&format!("name=\"{fb}\"")));
    assert!(!settings.contains("bernd Test"));
    let shared: Vec<Option<i64>> = db(&app, A, move |c| {
        task_board_access::table
            .filter(task_board_access::board_id.eq(b))
            .filter(task_board_access::kind.eq("member"))
            .order(task_board_access::member_id)
            .select(task_board_access::member_id)
            .load(c)
            .unwrap()
    })
    .await;
    assert!(!shared.contains(&Some(bernd_id)), "{shared:?}");
    assert!(shared.contains(&Some(carla_id)));
    // Routines neither name nor offer him.
    let series: String = db(&app, A, |c| {
        task_series::table
            .select(task_series::assignees)
            .first(c)
            .unwrap()
    })
    .await;
    assert_eq!(series, format!("[{carla_id}]"));
    let html = page(&app, &anna.http, A, &routines(b)).await;
    assert!(html.contains(&format!("name=\"assignees\" value=\"{carla_id}\"")));
    assert!(!html.contains(&format!("name=\"assignees\" value=\"{bernd_id}\"")));

    // The reminder hour comes: Carla is reminded, Bernd is not.
    clock.advance(2 * 3600);
    let deadline = Instant::now() + Duration::from_secs(20);
    while mails_to(&smtp, "carla@praxis-a.example") == 0 {
        assert!(Instant::now() < deadline, "no reminder for carla");
        app.server().job_worker.kick();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(mails_to(&smtp, "bernd@praxis-a.example"), 0);

    // Enabled again, he is a colleague again, but the board he was shared with personally
    // is not his until someone shares it anew.
    // (Hours passed: Anna signs in afresh.)
    let (http, jar) = client_with_jar();
    app.sign_in(&http, A, "anna", CHAT_PW).await;
    let anna = Person {
        http,
        jar,
        csrf: String::new(),
        slug: A.into(),
    };
    admin_action(&app, &anna, A, bernd_account, "enable").await;
    periodic_sync(&app, &clock);
    let again = client();
    app.sign_in(&again, A, "bernd", CHAT_PW).await;
    let r = again
        .get(app.url(A, &format!("/tasks/boards/{b}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ending_a_routine_asks_first_and_only_the_confirmation_ends_it() {
    let (app, _clock, _smtp) = setup().await;
    app.create_practice(A).await;
    app.create_practice("praxis-b").await;
    let anna = person(&app, A, "anna", false).await;
    let bernd = person(&app, A, "bernd", false).await;
    let berta = person(&app, "praxis-b", "berta", false).await;
    let b = crate::tasks_routines::board(&app, &anna.http, A, "").await;
    let r = new_series(&app, &anna.http, A, b, &[("title", "Hygieneplan prüfen")]).await;
    assert_eq!(r.status(), 303);
    let id: i64 = db(&app, A, |c| {
        task_series::table.select(task_series::id).first(c).unwrap()
    })
    .await;
    let ended = move |c: &mut SqliteConnection| -> Option<i64> {
        task_series::table
            .find(id)
            .select(task_series::ended_at)
            .first(c)
            .unwrap()
    };
    let end = format!("/tasks/routines/{id}/end");
    let question = "Routine „Hygieneplan prüfen“ wirklich beenden? Es werden keine neuen \
                    Karten mehr erzeugt.";

    // The page's "Beenden" posts without confirmation: the question, nothing ended.
    let list = page(&app, &anna.http, A, &routines(b)).await;
    assert!(list.contains(&format!("action=\"{end}\"")), "{list}");
    let r = app.post_form(&anna.http, A, &routines(b), &end, &[]).await;
    assert_eq!(r.status(), 200);
    let ask = r.text().await.unwrap();
    assert!(ask.contains(question), "{ask}");
    assert!(ask.contains("name=\"confirm\" value=\"1\""));
    assert!(ask.contains(&format!("href=\"/tasks/routines/boards/{b}#series-{id}\"")));
    assert_eq!(db(&app, A, ended).await, None);
    // A GET of the action asks as well, and changes nothing either.
    let ask = page(&app, &anna.http, A, &end).await;
    assert!(ask.contains(question));
    assert_eq!(db(&app, A, ended).await, None);
    let list = page(&app, &anna.http, A, &routines(b)).await;
    assert!(list.contains("Pausieren"), "still running: {list}");

    // Strangers and the other practice get no question (404); a forged confirmation is
    // refused; an unknown id or a malformed one is unknown.
    let r = bernd.http.get(app.url(A, &end)).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let r = berta
        .http
        .get(app.url("praxis-b", &end))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = anna
        .http
        .post(app.url(A, &end))
        .form(&[("confirm", "1")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    for path in ["/tasks/routines/999999/end", "/tasks/routines/x/end"] {
        let r = anna.http.get(app.url(A, path)).send().await.unwrap();
        assert_eq!(r.status(), 404, "{path}");
    }
    assert_eq!(db(&app, A, ended).await, None);

    // Confirmed: ended, said so, no more question for an ended series.
    let r = app
        .post_form(&anna.http, A, &end, &end, &[("confirm", "1")])
        .await;
    assert_eq!(r.status(), 303);
    assert_eq!(
        r.headers()["location"],
        format!("/tasks/routines/boards/{b}?done=end").as_str()
    );
    assert!(db(&app, A, ended).await.is_some());
    let list = page(&app, &anna.http, A, &format!("{}?done=end", routines(b))).await;
    assert!(list.contains("Die Serie ist beendet."));
    assert!(!list.contains(&format!("action=\"{end}\"")));
    let r = anna.http.get(app.url(A, &end)).send().await.unwrap();
    assert_eq!(r.status(), 409);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_label_or_a_template_asks_first() {
    use kollegium_platform::schema::{task_labels, task_templates};
    let (app, _clock, _smtp) = setup().await;
    app.create_practice(A).await;
    let anna = person(&app, A, "anna", false).await;
    let bernd = person(&app, A, "bernd", false).await;
    let b = crate::tasks_routines::board(&app, &anna.http, A, "").await;
    let settings = format!("/tasks/boards/{b}/settings");
    let r = app
        .post_form(
            &anna.http,
            A,
            &settings,
            &format!("/tasks/boards/{b}/labels"),
            &[("name", "Dringend"), ("color", "rot")],
        )
        .await;
    assert_eq!(r.status(), 303);
    let tpl = format!("/tasks/templates/boards/{b}");
    let r = app
        .post_form(
            &anna.http,
            A,
            &tpl,
            &tpl,
            &[
                ("kind", "card"),
                ("name", "Gerätewartung"),
                ("title", "Autoklav"),
            ],
        )
        .await;
    assert_eq!(r.status(), 303);
    let (label, template): (i64, i64) = db(&app, A, |c| {
        (
            task_labels::table.select(task_labels::id).first(c).unwrap(),
            task_templates::table
                .select(task_templates::id)
                .first(c)
                .unwrap(),
        )
    })
    .await;
    let counts = |c: &mut SqliteConnection| -> (i64, i64) {
        (
            task_labels::table.count().get_result(c).unwrap(),
            task_templates::table.count().get_result(c).unwrap(),
        )
    };
    let cases = [
        (
            settings.clone(),
            format!("/tasks/boards/{b}/labels/{label}/delete"),
            "Label „Dringend“ wirklich löschen? Es wird von allen Karten entfernt.",
        ),
        (
            tpl.clone(),
            format!("/tasks/templates/{template}/delete"),
            "Vorlage „Gerätewartung“ wirklich löschen?",
        ),
    ];
    for (page_path, action, question) in &cases {
        // The first POST asks and deletes nothing.
        let r = app.post_form(&anna.http, A, page_path, action, &[]).await;
        assert_eq!(r.status(), 200, "{action}");
        let ask = r.text().await.unwrap();
        assert!(ask.contains(question), "{ask}");
        assert!(ask.contains(&format!("action=\"{action}\"")));
        assert!(
            ask.contains(&format!("href=\"{page_path}\"")),
            "Abbrechen: {ask}"
        );
        // Someone the board is not shared with gets no question.
        let r = app
            .post_form(&bernd.http, A, "/tasks/new", action, &[])
            .await;
        assert_eq!(r.status(), 404, "{action}");
    }
    assert_eq!(db(&app, A, counts).await, (1, 1), "nothing deleted yet");
    for (page_path, action, _) in &cases {
        let r = app
            .post_form(&anna.http, A, page_path, action, &[("confirm", "1")])
            .await;
        assert_eq!(r.status(), 303, "{action}");
    }
    assert_eq!(db(&app, A, counts).await, (0, 0));
}
