//! Tasks' pages without JavaScript: a card worked on through its forms (with the mention
//! mail, history, "Meine Aufgaben" and the start tile), and every form refusing forged
//! requests and strangers.

use reqwest::Method;
use serde_json::json;

use crate::apps::chat_api::person;
use crate::harness::TestApp;
use crate::tasks::{api_card, board_json, column_ids, member_id, new_board};

/// Mails in a practice's platform `mail_queue`: (kind, recipient, subject, text).
pub(crate) async fn platform_mails(
    app: &TestApp,
    slug: &str,
) -> Vec<(String, String, String, String)> {
    use diesel::prelude::*;
    use kollegium_tenants::mail::schema::mail_queue as q;
    let tenant = app.tenant(slug);
    tokio::task::spawn_blocking(move || {
        let mut conn = tenant.conn(&kollegium_platform::PLATFORM_DB).unwrap();
        q::table
            .order(q::id)
            .select((q::kind, q::recipient, q::subject, q::body_text))
            .load(&mut *conn)
            .unwrap()
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn a_card_is_worked_on_through_its_page_without_javascript() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    let anna = app.member("praxis-a", "anna", false).await;
    let api = person(&app, "praxis-a", "anna2", false).await;
    let bernd = person(&app, "praxis-a", "bernd", false).await;
    let bernd_id = member_id(&app, &api, "bernd").await;
    let board = new_board(&anna, "Praxis", &[("practice", "edit")]).await;
    let settings = format!("/tasks/boards/{board}/settings");
    let r = anna
        .form(
            &settings,
            &format!("/tasks/boards/{board}/labels"),
            &[("name", "Dringend"), ("color", "rot")],
        )
        .await;
    assert_eq!(r.status(), 303);
    let r = anna
        .form(
            &settings,
            &format!("/tasks/boards/{board}/labels"),
            &[("name", "x"), ("color", "#f00")],
        )
        .await;
    assert_eq!(r.status(), 400, "colours come from the palette");
    let cols = column_ids(&app, &api, board).await;
    let r = anna
        .form(
            &format!("/tasks/boards/{board}"),
            &format!("/tasks/boards/{board}/cards"),
            &[
                ("title", "Notfallkoffer prüfen"),
                ("column", &cols[0].to_string()),
            ],
        )
        .await;
    assert_eq!(r.status(), 303);
    let v = board_json(&app, &api, board).await;
    let card = v["columns"][0]["cards"][0]["id"].as_i64().unwrap();
    let page = format!("/tasks/cards/{card}");
    let act = |what: &str| format!("/tasks/cards/{card}/{what}");

    let bid = bernd_id.to_string();
    assert_eq!(
        anna.form(&page, &act("assignees"), &[("member", &bid)])
            .await
            .status(),
        303
    );
    let html = anna.page(&page).await;
    let label = html
        .split("name=\"label\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_owned();
    assert_eq!(
        anna.form(&page, &act("labels"), &[("label", &label)])
            .await
            .status(),
        303
    );
    assert_eq!(
        anna.form(
            &page,
            &act("edit"),
            &[
                ("title", "Notfallkoffer prüfen"),
                ("description", "Alles **prüfen**"),
                ("due_date", "2020-01-06"),
                ("due_time", "")
            ]
        )
        .await
        .status(),
        303
    );
    assert_eq!(
        anna.form(&page, &act("items"), &[("text", "Adrenalin\nBeutel")])
            .await
            .status(),
        303
    );
    let html = anna.page(&page).await;
    let item = html
        .split("name=\"item\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_owned();
    assert_eq!(
        anna.form(&page, &act("item-tick"), &[("item", &item), ("done", "1")])
            .await
            .status(),
        303
    );
    assert_eq!(
        anna.form(
            &page,
            &act("comment"),
            &[("body", "Bitte übernehmen, @bernd – danke")]
        )
        .await
        .status(),
        303
    );
    // The mention is mailed without content, with a link.
    let mails = platform_mails(&app, "praxis-a").await;
    let mention: Vec<_> = mails.iter().filter(|m| m.0 == "tasks.mention").collect();
    assert_eq!(mention.len(), 1, "{mails:?}");
    assert_eq!(mention[0].1, "bernd@praxis-a.example");
    assert_eq!(mention[0].2, "Sie wurden in einer Aufgabe erwähnt");
    assert!(mention[0].3.contains(&format!("/tasks/cards/{card}")));
    assert!(!mention[0].3.contains("übernehmen") && !mention[0].3.contains("Notfallkoffer"));

    // The board tile and card page show it all; the history tells what happened.
    let tile = anna.page(&format!("/tasks/boards/{board}")).await;
    assert!(tile.contains("1/2") && tile.contains("label-rot") && tile.contains("Überfällig"));
    assert!(tile.contains(">BT<"), "bernd's initials");
    let html = anna.page(&page).await;
    for text in [
        "<strong>prüfen</strong>",
        "06.01.2020",
        "hat bernd Test zugewiesen",
        "hat kommentiert",
        "hat die Labels geändert",
        "hat die Checkliste geändert",
    ] {
        assert!(html.contains(text), "{text}");
    }
    // "Meine Aufgaben" and the start page's tile for Bernd.
    let mine = bernd.page(&app, "/tasks/mine").await;
    assert!(mine.contains("Überfällig") && mine.contains("Notfallkoffer prüfen"));
    let start = bernd.page(&app, "/").await;
    assert!(start.contains("id=\"tile-tasks\"") && start.contains("überfällig"));

    // Moving with the form; done with the button.
    let r = anna
        .form(
            &page,
            &act("move"),
            &[("column", &cols[1].to_string()), ("position", "99")],
        )
        .await;
    assert_eq!(r.status(), 303);
    assert_eq!(anna.form(&page, &act("done"), &[]).await.status(), 303);
    let v = board_json(&app, &api, board).await;
    assert_eq!(
        v["columns"][2]["cards"][0]["id"], card,
        "in the done column"
    );
    assert!(
        !bernd
            .page(&app, "/tasks/mine")
            .await
            .contains("Notfallkoffer")
    );

    // Archiving the board asks first; deleting a column too.
    let r = anna
        .form(&settings, &format!("/tasks/boards/{board}/archive"), &[])
        .await;
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("wirklich archivieren?"));
    assert!(
        !board_json(&app, &api, board).await["archived"]
            .as_bool()
            .unwrap()
    );
    let r = anna
        .form(
            &settings,
            &format!("/tasks/columns/{}/delete", cols[0]),
            &[],
        )
        .await;
    assert!(r.text().await.unwrap().contains("wirklich löschen?"));
    let r = anna
        .form(
            &settings,
            &format!("/tasks/columns/{}/delete", cols[2]),
            &[("confirm", "1")],
        )
        .await;
    assert_eq!(r.status(), 409, "the done column still holds the card");
    let r = anna
        .form(
            &settings,
            &format!("/tasks/boards/{board}/archive"),
            &[("confirm", "1")],
        )
        .await;
    assert_eq!(r.status(), 303);
    assert!(
        board_json(&app, &api, board).await["archived"]
            .as_bool()
            .unwrap()
    );
    let (status, _) = api
        .api(
            &app,
            Method::POST,
            &format!("/api/tasks/cards/{card}/move"),
            Some(json!({"column": cols[0], "position": 0})),
        )
        .await;
    assert_eq!(status, 403, "an archived board is read-only");
    let list = anna.page("/tasks").await;
    assert!(list.contains("Archivierte Boards"));
}

#[tokio::test]
async fn every_form_refuses_forged_requests_and_strangers() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    app.create_practice("praxis-b").await;
    let anna = app.member("praxis-a", "anna", false).await;
    let api = person(&app, "praxis-a", "anna2", false).await;
    let stranger = app.member("praxis-a", "xaver", false).await;
    let other = app.member("praxis-b", "olaf", false).await;
    let board = new_board(&anna, "Privat", &[]).await;
    let anna_share = format!("member:{}", member_id(&app, &api, "anna2").await);
    let r = anna
        .form(
            &format!("/tasks/boards/{board}/settings"),
            &format!("/tasks/boards/{board}/share"),
            &[(&anna_share, "manage")],
        )
        .await;
    assert_eq!(r.status(), 303);
    let cols = column_ids(&app, &api, board).await;
    let card = api_card(&app, &api, board, cols[0], "Vertraulich").await;
    let before = board_json(&app, &api, board).await;
    let mut actions: Vec<String> = [
        "settings", "share", "columns", "labels", "cards", "archive", "restore",
    ]
    .iter()
    .map(|a| format!("/tasks/boards/{board}/{a}"))
    .collect();
    actions.push(format!("/tasks/boards/{board}/labels/1/delete"));
    actions.push(format!("/tasks/columns/{}", cols[0]));
    actions.push(format!("/tasks/columns/{}/delete", cols[0]));
    for a in [
        "edit",
        "move",
        "done",
        "reopen",
        "assignees",
        "labels",
        "items",
        "item-tick",
        "item-delete",
        "comment",
        "comment-delete",
        "archive",
        "restore",
    ] {
        actions.push(format!("/tasks/cards/{card}/{a}"));
    }
    let fields = [
        ("title", "Übernommen"),
        ("name", "x"),
        ("color", "rot"),
        ("column", "1"),
        ("position", "1"),
        ("text", "x"),
        ("body", "x"),
        ("item", "1"),
        ("comment", "1"),
        ("confirm", "1"),
        ("practice", "manage"),
    ];
    for action in &actions {
        // Without the CSRF token: refused before anything is read.
        assert_eq!(
            anna.post_without_token(action, &fields).await,
            403,
            "{action}"
        );
        // A member of this practice the board is not shared with, with a valid token.
        let r = stranger.form("/tasks/new", action, &fields).await;
        assert_eq!(r.status(), 404, "{action}");
        // A member of another practice, at their own origin.
        let r = other.form("/tasks/new", action, &fields).await;
        assert_eq!(r.status(), 404, "{action}");
    }
    assert_eq!(
        board_json(&app, &api, board).await,
        before,
        "nothing changed"
    );
    assert!(!stranger.page("/tasks").await.contains("Privat"));
}
