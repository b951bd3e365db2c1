//! The administration and "Mein Konto" on a 390 px phone (headless Chromium): the
//! sub-navigation wraps instead of scrolling sideways, and nothing is wider than the screen.

use std::time::Duration;

use fantoccini::Locator;
use serde_json::json;

use crate::browser::{Screen, browser_on, driver, sign_in};
use crate::harness::TestApp;

const PW: &str = "Sonnenblume-Kaffee-42";

/// Where the sub-navigation's links are and whether anything scrolls sideways.
const SUBNAV: &str = "var nav = document.querySelector('nav.subnav'); \
    var links = Array.from(nav.querySelectorAll('a')).map(function (a) { var r = a.getBoundingClientRect(); return { left: r.left, right: r.right }; }); \
    return { links: links.length, inside: links.every(function (r) { return r.left >= 0 && r.right <= window.innerWidth; }), \
      scrolls: nav.scrollWidth > nav.clientWidth + 1, \
      page: document.documentElement.scrollWidth > window.innerWidth + 1, width: window.innerWidth };";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_phone_the_admin_sub_navigation_wraps_instead_of_scrolling() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    app.create_user("praxis-a", "anna", PW, true).await;
    let d = driver().await;
    let phone = browser_on(&d, "phone-subnav", Screen::Phone(390, 844)).await;
    sign_in(&phone, &app, "anna", "/chat").await;
    for path in [
        "/id/admin/users",
        "/id/admin/devices",
        "/id/admin/clients",
        "/id/admin/events",
        "/id/account",
        "/id/account/sessions/end-others",
    ] {
        phone.goto(&app.url("praxis-a", path)).await.unwrap();
        phone
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::Css("header.topbar .usermenu"))
            .await
            .unwrap();
        let has_subnav = phone
            .execute("return !!document.querySelector('nav.subnav');", vec![])
            .await
            .unwrap();
        if has_subnav == json!(false) {
            // The confirmation step has no sections; it must still fit.
            let wide = phone
                .execute(
                    "return document.documentElement.scrollWidth > window.innerWidth + 1;",
                    vec![],
                )
                .await
                .unwrap();
            assert_eq!(wide, json!(false), "{path}");
            continue;
        }
        let v = phone.execute(SUBNAV, vec![]).await.unwrap();
        assert_eq!(v["width"], 390, "{path}: {v}");
        assert!(v["links"].as_i64().unwrap() >= 3, "{path}: {v}");
        assert_eq!(v["inside"], true, "{path}: every section in view: {v}");
        assert_eq!(v["scrolls"], false, "{path}: no sideways scrolling: {v}");
        assert_eq!(
            v["page"], false,
            "{path}: nothing wider than the phone: {v}"
        );
    }
    phone.close().await.unwrap();
}
