//! The board in headless Chromium: a card dragged to another column in one browser moves
//! in a second browser without a reload, and the move is stored; a card added under a
//! column appears in place and in a second browser without a reload. The routines pages:
//! a weekly routine created, paused and ended through the pages.

use std::time::Duration;

use fantoccini::actions::{InputSource, MOUSE_BUTTON_LEFT, MouseActions, PointerAction};
use fantoccini::{Client, Locator};
use serde_json::{Value, json};

use crate::apps::chat_api::person;
use crate::browser::{browser, driver, js, sign_in, wait_live};
use crate::harness::TestApp;
use crate::tasks::{api_card, board_json, column_ids, new_board};

/// Polls `script` until it returns `want` (10 s at most); returns the last value.
async fn until(b: &Client, script: &str, want: Value) -> Value {
    let mut v = Value::Null;
    for _ in 0..100 {
        v = js(b, script).await;
        if v == want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    v
}

fn column_of(card: i64) -> String {
    format!(
        "var c = document.querySelector('[data-card=\"{card}\"]'); \
         return c ? Number(c.closest('.card-list').dataset.column) : null;"
    )
}

#[tokio::test]
async fn a_card_dragged_in_one_browser_moves_in_another_without_reload() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    let anna = person(&app, "praxis-a", "anna", false).await;
    let _bernd = person(&app, "praxis-a", "bernd", false).await;
    let owner = app.member("praxis-a", "olga", false).await;
    let board = new_board(&owner, "Team", &[("practice", "edit")]).await;
    let cols = column_ids(&app, &anna, board).await;
    let card = api_card(&app, &anna, board, cols[0], "Ziehen").await;
    api_card(&app, &anna, board, cols[1], "Schon da").await;

    let d = driver().await;
    let (a, b) = (browser(&d, "anna").await, browser(&d, "bernd").await);
    let page = app.url("praxis-a", &format!("/tasks/boards/{board}"));
    for (br, user) in [(&a, "anna"), (&b, "bernd")] {
        sign_in(br, &app, user, "/chat").await;
        br.goto(&page).await.unwrap();
        wait_live(br).await;
    }
    js(&b, "window.__marker = 'same page'; return true;").await;
    assert_eq!(js(&a, &column_of(card)).await, json!(cols[0]));

    // Anna drags the card below "Schon da" in the second column.
    let tile = a
        .find(Locator::Css(&format!("[data-card=\"{card}\"]")))
        .await
        .unwrap();
    let target = a
        .find(Locator::Css(&format!(
            ".card-list[data-column=\"{}\"]",
            cols[1]
        )))
        .await
        .unwrap();
    let drag = MouseActions::new("mouse".into())
        .then(PointerAction::MoveToElement {
            element: tile,
            duration: None,
            x: 0.0,
            y: 0.0,
        })
        .then(PointerAction::Down {
            button: MOUSE_BUTTON_LEFT,
        })
        .then(PointerAction::MoveBy {
            duration: Some(Duration::from_millis(100)),
            x: 10.0,
            y: 10.0,
        })
        .then(PointerAction::MoveToElement {
            element: target,
            duration: Some(Duration::from_millis(300)),
            x: 0.0,
            y: 60.0,
        })
        .then(PointerAction::Up {
            button: MOUSE_BUTTON_LEFT,
        });
    a.perform_actions(drag).await.unwrap();

    assert_eq!(
        js(&a, &column_of(card)).await,
        json!(cols[1]),
        "moved at once"
    );
    // Bernd's page follows without a reload.
    assert_eq!(
        until(&b, &column_of(card), json!(cols[1])).await,
        json!(cols[1])
    );
    assert_eq!(
        js(&b, "return window.__marker || null;").await,
        json!("same page")
    );
    // And the server has it, positions dense.
    let mut stored = Value::Null;
    for _ in 0..50 {
        stored = board_json(&app, &anna, board).await;
        if stored["columns"][1]["cards"].as_array().unwrap().len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let second: Vec<(i64, i64)> = stored["columns"][1]["cards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["id"].as_i64().unwrap(), c["position"].as_i64().unwrap()))
        .collect();
    assert_eq!(second.len(), 2, "{stored}");
    assert!(second.contains(&(card, 1)), "{stored}");
    a.close().await.unwrap();
    b.close().await.unwrap();
}

/// Titles of the cards in column `column`, in order, as the page shows them.
fn titles_in(column: i64) -> String {
    format!(
        "return Array.prototype.map.call(document.querySelectorAll(\
         '.card-list[data-column=\"{column}\"] .task-title'), function (a) {{ \
         return a.textContent; }});"
    )
}

#[tokio::test]
async fn a_card_added_under_a_column_appears_in_place_and_in_another_browser() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    let anna = person(&app, "praxis-a", "anna", false).await;
    let _bernd = person(&app, "praxis-a", "bernd", false).await;
    let owner = app.member("praxis-a", "olga", false).await;
    let board = new_board(&owner, "Empfang", &[("practice", "edit")]).await;
    let cols = column_ids(&app, &anna, board).await;
    api_card(&app, &anna, board, cols[1], "Schon da").await;

    let d = driver().await;
    let (a, b) = (browser(&d, "anna").await, browser(&d, "bernd").await);
    let page = app.url("praxis-a", &format!("/tasks/boards/{board}"));
    for (br, user) in [(&a, "anna"), (&b, "bernd")] {
        sign_in(br, &app, user, "/chat").await;
        br.goto(&page).await.unwrap();
        wait_live(br).await;
        js(br, "window.__marker = 'same page'; return true;").await;
    }

    // Anna types a title under "In Arbeit" and presses Enter.
    let input = a
        .find(Locator::Css(&format!("#new-{}", cols[1])))
        .await
        .unwrap();
    input
        .send_keys("  Rezepte <b>drucken</b>  \u{E007}")
        .await
        .unwrap();
    let want = json!(["Schon da", "Rezepte <b>drucken</b>"]);
    assert_eq!(until(&a, &titles_in(cols[1]), want.clone()).await, want);
    // In place: the same page, the input emptied for the next card, the count follows.
    assert_eq!(
        js(&a, "return window.__marker || null;").await,
        json!("same page")
    );
    assert_eq!(
        js(
            &a,
            &format!("return document.getElementById('new-{}').value;", cols[1])
        )
        .await,
        json!("")
    );
    assert_eq!(
        js(
            &a,
            &format!(
                "return document.querySelector('[data-column=\"{}\"] .column-count').textContent;",
                cols[1]
            )
        )
        .await,
        json!("2")
    );
    // The tile links to the new card (the title is text, not markup).
    let href = js(
        &a,
        &format!(
            "var l = document.querySelectorAll('.card-list[data-column=\"{}\"] .task-title'); \
             return l[l.length - 1].getAttribute('href');",
            cols[1]
        ),
    )
    .await;
    let stored = board_json(&app, &anna, board).await;
    let new_id = stored["columns"][1]["cards"][1]["id"].as_i64().unwrap();
    assert_eq!(href, json!(format!("/tasks/cards/{new_id}")));
    assert_eq!(
        stored["columns"][1]["cards"][1]["title"],
        json!("Rezepte <b>drucken</b>")
    );
    // Bernd's board shows it live, without a reload.
    assert_eq!(until(&b, &titles_in(cols[1]), want.clone()).await, want);
    assert_eq!(
        js(&b, "return window.__marker || null;").await,
        json!("same page")
    );
    // A second card right after: one each, none twice.
    let input = a
        .find(Locator::Css(&format!("#new-{}", cols[1])))
        .await
        .unwrap();
    input.send_keys("Post holen\u{E007}").await.unwrap();
    let want = json!(["Schon da", "Rezepte <b>drucken</b>", "Post holen"]);
    assert_eq!(until(&a, &titles_in(cols[1]), want.clone()).await, want);
    assert_eq!(until(&b, &titles_in(cols[1]), want.clone()).await, want);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(js(&a, &titles_in(cols[1])).await, want, "nothing doubled");
    a.close().await.unwrap();
    b.close().await.unwrap();
}

/// Clicks the submit button with text `label` (inside `scope`, a CSS selector).
async fn click_button(b: &Client, scope: &str, label: &str) {
    let button = b
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::XPath(&format!(
            "//*[@id='{scope}']//button[normalize-space(.)='{label}']"
        )))
        .await
        .unwrap_or_else(|e| panic!("no button {label:?} in #{scope}: {e}"));
    button.click().await.unwrap();
}

#[tokio::test]
async fn an_admin_creates_pauses_and_ends_a_weekly_routine_through_the_pages() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    let admin = person(&app, "praxis-a", "anna", true).await;
    let owner = app.member("praxis-a", "olga", false).await;
    let board = new_board(&owner, "Praxisorganisation", &[("practice", "view")]).await;

    let d = driver().await;
    let a = browser(&d, "anna").await;
    sign_in(&a, &app, "anna", "/chat").await;
    // From the board to its routines.
    a.goto(&app.url("praxis-a", &format!("/tasks/boards/{board}")))
        .await
        .unwrap();
    a.find(Locator::LinkText("Wiederkehrende Aufgaben"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let form = a
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("#title"))
        .await
        .unwrap();
    form.send_keys("Hygieneplan prüfen").await.unwrap();
    // Weekly (the default) on Monday and Thursday, at 07:30.
    for day in ["mo", "do"] {
        a.find(Locator::Css(&format!("input[name=days][value={day}]")))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
    }
    js(
        &a,
        "document.getElementById('time').value = '07:30'; return true;",
    )
    .await;
    a.find(Locator::XPath(
        "//button[normalize-space(.)='Serie anlegen']",
    ))
    .await
    .unwrap()
    .click()
    .await
    .unwrap();
    a.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::XPath(
            "//*[@role='status'][contains(., 'Die Serie wurde angelegt.')]",
        ))
        .await
        .unwrap();
    let text = js(&a, "return document.querySelector('.series').textContent;").await;
    let text = text.as_str().unwrap().to_owned();
    assert!(text.contains("Hygieneplan prüfen"), "{text}");
    assert!(text.contains("07:30"), "{text}");
    let id: i64 = js(
        &a,
        "return Number(document.querySelector('.series').id.slice(7));",
    )
    .await
    .as_i64()
    .unwrap();

    // Its first card is on the board, with its due date.
    a.goto(&app.url("praxis-a", &format!("/tasks/boards/{board}")))
        .await
        .unwrap();
    let titles = js(
        &a,
        "return Array.prototype.map.call(document.querySelectorAll('.task-card'), \
         function (c) { return [c.querySelector('.task-title').textContent, \
         (c.querySelector('.task-due') || {}).textContent || '']; });",
    )
    .await;
    let cards = titles.as_array().unwrap();
    assert_eq!(cards.len(), 1, "{titles}");
    assert_eq!(cards[0][0], json!("Hygieneplan prüfen"));
    assert!(cards[0][1].as_str().unwrap().contains("07:30"), "{titles}");
    let stored = board_json(&app, &admin, board).await;
    assert_eq!(
        stored["columns"][0]["cards"][0]["title"],
        json!("Hygieneplan prüfen")
    );

    // Paused through the page: it says so and offers "Fortsetzen".
    a.back().await.unwrap();
    a.refresh().await.unwrap();
    let row = format!("series-{id}");
    click_button(&a, &row, "Pausieren").await;
    a.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::XPath(
            "//*[@role='status'][contains(., 'Die Serie ist pausiert.')]",
        ))
        .await
        .unwrap();
    let text = js(&a, "return document.querySelector('.series').textContent;").await;
    assert!(text.as_str().unwrap().contains("pausiert"), "{text}");
    click_button(&a, &row, "Beenden").await;
    // "Beenden" asks first; "Abbrechen" changes nothing.
    let ask = a
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::XPath("//p[contains(., 'wirklich beenden?')]"))
        .await
        .unwrap();
    let question = ask.text().await.unwrap();
    assert!(
        question.contains("Es werden keine neuen Karten mehr erzeugt."),
        "{question}"
    );
    a.find(Locator::LinkText("Abbrechen"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    click_button(&a, &row, "Beenden").await;
    a.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::XPath("//button[normalize-space(.)='Ja, beenden']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    a.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::XPath(
            "//*[@role='status'][contains(., 'Die Serie ist beendet.')]",
        ))
        .await
        .unwrap();
    let text = js(&a, "return document.querySelector('.series').textContent;").await;
    let text = text.as_str().unwrap().to_owned();
    assert!(text.contains("beendet"), "{text}");
    assert!(
        !text.contains("Fortsetzen") && !text.contains("Pausieren"),
        "{text}"
    );
    a.close().await.unwrap();
}
