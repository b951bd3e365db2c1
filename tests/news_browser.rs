//! Neuigkeiten in headless Chromium on a phone (390 px): a message published while `/news`
//! or the start page is open shows up without a reload, through the live channel.

use std::time::Duration;

use fantoccini::Client;
use kollegium_tenants::broadcast::Audience;
use serde_json::{Value, json};

use crate::apps::chat_api::person;
use crate::broadcast::node;
use crate::browser::{Screen, browser_on, driver, js, sign_in, wait_live};

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

fn shows(id: &str, text: &str) -> String {
    format!(
        "var e = document.getElementById('{id}'); return !!e && e.textContent.indexOf('{text}') >= 0;"
    )
}

const WATCH: &str = "window.__violations = []; \
    document.addEventListener('securitypolicyviolation', function (e) { window.__violations.push(e.violatedDirective); }); \
    window.__marker = 'same page'; return true;";

const SAME_PAGE: &str = "return [window.__marker || null, window.__violations || null, \
    document.documentElement.scrollWidth <= window.innerWidth];";

#[tokio::test]
async fn news_arrive_live_on_the_news_page_and_the_start_page_of_a_phone() {
    let app = node().await;
    app.create_practice("praxis-a").await;
    let _anna = person(&app, "praxis-a", "anna", false).await;
    app.publish("Schon da", Audience::default(), false).await;

    let d = driver().await;
    let b = browser_on(&d, "anna", Screen::Phone(390, 844)).await;
    sign_in(&b, &app, "anna", "/chat").await;
    b.goto(&app.url("praxis-a", "/news")).await.unwrap();
    wait_live(&b).await;
    assert_eq!(js(&b, &shows("news-list", "Schon da")).await, json!(true));
    js(&b, WATCH).await;

    app.publish("Live-Neuigkeit", Audience::default(), false)
        .await;
    assert_eq!(
        until(&b, &shows("news-list", "Live-Neuigkeit"), json!(true)).await,
        json!(true),
        "the new message shows up on /news"
    );
    assert_eq!(
        js(&b, SAME_PAGE).await,
        json!(["same page", [], true]),
        "no reload, no CSP violation, no horizontal scrolling at 390 px"
    );

    b.goto(&app.url("praxis-a", "/")).await.unwrap();
    wait_live(&b).await;
    js(&b, WATCH).await;
    app.publish("Noch eine Neuigkeit", Audience::default(), false)
        .await;
    assert_eq!(
        until(&b, &shows("tile-news", "Noch eine Neuigkeit"), json!(true)).await,
        json!(true),
        "the start page's tile follows"
    );
    assert_eq!(js(&b, SAME_PAGE).await, json!(["same page", [], true]));
    b.close().await.unwrap();
}
