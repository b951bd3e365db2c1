//! The board in headless Chromium: a card dragged to another column in one browser moves
//! in a second browser without a reload, and the move is stored.

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
