//! The operator console in headless Chromium on a phone (390 px): the setup link, the
//! password, the mandatory TOTP enrolment (the secret read from the page, the code computed
//! like an authenticator app), then the practices page: create a practice and suspend it.

use std::time::Duration;

use fantoccini::{Client, Locator};
use kollegium_idp::totp;
use serde_json::json;

use crate::apps::operator::{OP_PW, add_operator};
use crate::browser::{Screen, browser_on, driver, js};
use crate::harness::TestApp;
use crate::idp_mfa::shown_secret;

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

async fn submit(b: &Client, form: &str) {
    b.find(Locator::Css(&format!("{form} button[type=submit]")))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

async fn wait_for(b: &Client, css: &str) -> fantoccini::elements::Element {
    b.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css} did not appear: {e}"))
}

/// The page fits the phone's width, has no inline styles, and axe-core finds no serious
/// or critical violation on it.
async fn fits(b: &Client) {
    let r = js(
        b,
        "return [document.documentElement.scrollWidth <= window.innerWidth, \
         document.querySelectorAll('[style]').length];",
    )
    .await;
    let url = b.current_url().await.unwrap();
    assert_eq!(r, json!([true, 0]), "{url}");
    let found = crate::a11y::audit(b, url.path()).await;
    assert!(found.is_empty(), "{}", found.join("\n\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_sets_up_totp_creates_a_practice_and_suspends_it_in_a_browser() {
    let app = TestApp::spawn().await;
    let link = add_operator(&app, "erika");
    let d = driver().await;
    let b = browser_on(&d, "erika", Screen::Phone(390, 844)).await;

    // Step 1: the password.
    b.goto(&link).await.unwrap();
    fits(&b).await;
    fill(&b, "input#password", OP_PW).await;
    fill(&b, "input#password_repeat", OP_PW).await;
    submit(&b, "form").await;

    // Step 2: TOTP, with the secret the page shows.
    wait_for(&b, "code.secret").await;
    fits(&b).await;
    let secret = shown_secret(&b.source().await.unwrap());
    let qr = js(&b, "var i = document.querySelector('p.qr img'); return !!i && i.src.indexOf('data:image/svg+xml') === 0;").await;
    assert_eq!(qr, json!(true), "the QR code is shown");
    fill(&b, "input#code", &totp::code_at(&secret, app.clock.now())).await;
    submit(&b, "form").await;

    // Signed in: the practices page.
    wait_for(&b, "a[href='/practices/new']").await;
    assert!(
        b.current_url()
            .await
            .unwrap()
            .path()
            .ends_with("/practices")
    );
    fits(&b).await;
    let source = b.source().await.unwrap();
    assert!(source.contains("Kollegium Betrieb") && source.contains("erika"));

    // Create a practice.
    b.find(Locator::Css("a[href='/practices/new']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    fill(&b, "input#slug", "praxis-neu").await;
    fill(&b, "input#name", "Praxis Neu").await;
    fill(&b, "input#owner_email", "inhaberin@praxis-neu.example").await;
    submit(&b, "form.stack").await;
    let owner_link = wait_for(&b, "#owner-setup-link")
        .await
        .text()
        .await
        .unwrap();
    assert!(owner_link.contains("/id/setup/"), "{owner_link}");
    fits(&b).await;
    assert_eq!(
        app.front_door("praxis-neu").await,
        303,
        "the new practice answers"
    );

    // Suspend it, after the confirmation.
    b.goto(&app.operator_url("/practices")).await.unwrap();
    wait_for(&b, "a[href='/practices/praxis-neu/suspend']")
        .await
        .click()
        .await
        .unwrap();
    wait_for(&b, "form[action='/practices/praxis-neu/suspend']").await;
    fits(&b).await;
    submit(&b, "form[action='/practices/praxis-neu/suspend']").await;
    let notice = wait_for(&b, "p.notice.ok").await.text().await.unwrap();
    assert!(notice.contains("ist gesperrt"), "{notice}");
    fits(&b).await;
    assert_eq!(app.front_door("praxis-neu").await, 403, "suspended at once");
    b.goto(&app.operator_url("/audit")).await.unwrap();
    wait_for(&b, "table").await;
    fits(&b).await;
    let log = b.source().await.unwrap();
    assert!(log.contains("Praxis angelegt") && log.contains("Praxis gesperrt"));
    // Signing out leads to the sign-in form.
    b.find(Locator::Css("details.usermenu summary"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    submit(&b, "form[action='/logout']").await;
    wait_for(&b, "input#code").await;
    fits(&b).await;
    b.close().await.unwrap();
}
