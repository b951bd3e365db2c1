//! Neuigkeiten in headless Chromium on a phone (390 px): a message published while `/news`
//! or the start page is open shows up without a reload, through the live channel; an
//! operator composes one in the console (preview, publish) and a member's open page shows
//! the navigation's unread badge without a reload.

use std::time::Duration;

use fantoccini::{Client, Locator};
use kollegium_tenants::broadcast::Audience;
use serde_json::{Value, json};

use crate::apps::chat_api::person;
use crate::apps::operator::{OP_PW, signed_in_operator};
use crate::broadcast::node;
use crate::browser::{Screen, browser, browser_on, driver, js, sign_in, wait_live};

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

/// Types `text` into the field `css` (waiting for it first).
async fn fill(b: &Client, css: &str, text: &str) {
    b.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .send_keys(text)
        .await
        .unwrap();
}

async fn click(b: &Client, css: &str) {
    b.find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .click()
        .await
        .unwrap();
}

async fn wait_for(b: &Client, css: &str) {
    b.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css} did not appear: {e}"));
}

/// The navigation's news badge: its text, or `null` while hidden or absent.
const BADGE: &str = "var b = document.querySelector('.mainnav a[href=\"/news\"] .nav-news'); \
    return b && !b.hidden ? b.textContent : null;";

#[tokio::test]
async fn an_operator_previews_and_publishes_in_the_console_and_the_member_sees_it_live() {
    let app = node().await;
    app.create_practice("praxis-a").await;
    let _anna = person(&app, "praxis-a", "anna", false).await;
    // The operator's account with TOTP, made over HTTP; the browser signs in with a code.
    let op = signed_in_operator(&app, "erika").await;

    let d = driver().await;
    // Anna on the chat page (the badge) in one browser, on a desktop window.
    let member = browser(&d, "anna").await;
    sign_in(&member, &app, "anna", "/chat").await;
    wait_live(&member).await;
    js(&member, WATCH).await;
    assert_eq!(js(&member, BADGE).await, Value::Null, "no unread news yet");

    // Erika in the console on a phone.
    let b = browser_on(&d, "erika", Screen::Phone(390, 844)).await;
    b.goto(&op.url("/login")).await.unwrap();
    fill(&b, "input#name", "erika").await;
    fill(&b, "input#password", OP_PW).await;
    fill(&b, "input#code", &op.next_code(app.clock.now())).await;
    click(&b, "form button[type=submit]").await;
    wait_for(&b, "a[href='/practices/new']").await;
    b.goto(&op.url("/news")).await.unwrap();
    fill(&b, "input#news-title", "Quartalsabrechnung").await;
    fill(
        &b,
        "textarea#news-body",
        "Bitte **bis Freitag** einreichen.",
    )
    .await;
    click(&b, "button[value=preview]").await;
    wait_for(&b, "#preview").await;
    assert_eq!(
        js(
            &b,
            "return document.querySelector('#preview .markdown strong').textContent;"
        )
        .await,
        json!("bis Freitag"),
        "the preview renders the Markdown"
    );
    assert_eq!(
        js(
            &b,
            "return [document.getElementById('news-title').value, \
            document.documentElement.scrollWidth <= window.innerWidth, \
            document.querySelectorAll('[style]').length];"
        )
        .await,
        json!(["Quartalsabrechnung", true, 0]),
        "the form keeps its input; fits 390 px; no inline styles"
    );
    let found = crate::a11y::audit(&b, "console news with a preview").await;
    assert!(found.is_empty(), "{}", found.join("\n\n"));
    assert!(
        app.server().operator_feed.list().unwrap().is_empty(),
        "not published"
    );
    click(&b, "button[value=publish]").await;
    wait_for(&b, "p.notice.ok").await;
    assert!(b.source().await.unwrap().contains("Quartalsabrechnung"));
    let found = crate::a11y::audit(&b, "console news list").await;
    assert!(found.is_empty(), "{}", found.join("\n\n"));
    assert_eq!(app.server().operator_feed.list().unwrap().len(), 1);

    // The node syncs: Anna's open page shows the badge without a reload.
    crate::broadcast::round(&app).await.unwrap();
    assert_eq!(
        until(&member, BADGE, json!("1")).await,
        json!("1"),
        "the badge appears"
    );
    assert_eq!(js(&member, SAME_PAGE).await, json!(["same page", [], true]));
    // On /news the message is there; read, the badge goes.
    member.goto(&app.url("praxis-a", "/news")).await.unwrap();
    wait_live(&member).await;
    assert_eq!(
        js(&member, &shows("news-list", "Quartalsabrechnung")).await,
        json!(true)
    );
    click(&member, "#news-list form[action$='/read'] button").await;
    wait_for(&member, "p.notice.ok").await;
    wait_live(&member).await;
    // The count was fetched on this page (0), and the badge is hidden.
    assert_eq!(
        until(
            &member,
            "return document.body.dataset.newsUnread || null;",
            json!("0")
        )
        .await,
        json!("0")
    );
    assert_eq!(js(&member, BADGE).await, Value::Null, "read: no badge");
    b.close().await.unwrap();
    member.close().await.unwrap();
}
