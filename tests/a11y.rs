//! Accessibility: axe-core in headless Chromium on every kind of page of a practice origin
//! (start page, chat list and room, search, "Mein Konto", the administration, sign-in, error
//! page) and on the node page, in the light and the dark colour scheme. A serious or
//! critical violation fails, printed readably (rule, help text, the elements).
//!
//! axe-core is vendored unchanged (`tests/support/axe.min.js`; version, source and licence
//! in `tests/support/README.md`) and injected with WebDriver's execute script, to which the
//! page's Content-Security-Policy does not apply.

use std::time::Duration;

use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, Locator};
use serde_json::{Value, json};

use crate::browser::{Screen, browser_on, driver};
use crate::harness::{TestApp, client};

const DEMO: &str = kollegium::demo::DEMO_SLUG;
const PW: &str = kollegium_idp::demo::DEMO_PASSWORD;
const AXE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/axe.min.js");

/// Runs axe-core on the page and hands back its violations, trimmed to what a reader needs.
const RUN_AXE: &str = r#"
var done = arguments[arguments.length - 1];
axe.run(document, { resultTypes: ['violations'] }).then(function (r) {
  done(r.violations.map(function (v) {
    return { id: v.id, impact: v.impact, help: v.help, helpUrl: v.helpUrl,
      nodes: v.nodes.slice(0, 6).map(function (n) {
        return { target: n.target.join(' '), html: n.html.slice(0, 160),
          summary: (n.failureSummary || '').replace(/\s+/g, ' ').slice(0, 300) };
      }), count: v.nodes.length };
  }));
}, function (e) { done({ error: String(e) }); });
"#;

/// Chromium's DevTools command through chromedriver (`goog/cdp/execute`): WebDriver itself
/// cannot switch the colour scheme a page sees.
#[derive(Debug)]
struct Cdp {
    cmd: &'static str,
    params: Value,
}

impl WebDriverCompatibleCommand for Cdp {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/goog/cdp/execute",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (reqwest::Method, Option<String>) {
        let body = json!({ "cmd": self.cmd, "params": self.params });
        (reqwest::Method::POST, Some(body.to_string()))
    }
}

async fn color_scheme(b: &Client, scheme: &str) {
    b.issue_cmd(Cdp {
        cmd: "Emulation.setEmulatedMedia",
        params: json!({ "features": [{ "name": "prefers-color-scheme", "value": scheme }] }),
    })
    .await
    .unwrap();
    let dark = b
        .execute(
            "return window.matchMedia('(prefers-color-scheme: dark)').matches;",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(dark, json!(scheme == "dark"), "the page sees {scheme}");
}

/// The serious and critical violations axe-core finds on the page `b` shows, one readable
/// block each; `what` names the page.
pub async fn audit(b: &Client, what: &str) -> Vec<String> {
    let source = std::fs::read_to_string(AXE)
        .expect("tests/support/axe.min.js is vendored (see tests/support/README.md)");
    b.execute(&source, vec![]).await.unwrap();
    let found = b.execute_async(RUN_AXE, vec![]).await.unwrap();
    let Some(list) = found.as_array() else {
        panic!("{what}: axe-core failed: {found}");
    };
    let mut out = Vec::new();
    for v in list {
        let impact = v["impact"].as_str().unwrap_or("?");
        if !matches!(impact, "serious" | "critical") {
            continue;
        }
        let mut text = format!(
            "{what}: [{impact}] {} — {} ({} elements; {})",
            v["id"].as_str().unwrap_or("?"),
            v["help"].as_str().unwrap_or(""),
            v["count"],
            v["helpUrl"].as_str().unwrap_or("")
        );
        for n in v["nodes"].as_array().into_iter().flatten() {
            text.push_str(&format!(
                "\n    at {}: {}\n       {}",
                n["target"].as_str().unwrap_or(""),
                n["html"].as_str().unwrap_or(""),
                n["summary"].as_str().unwrap_or("")
            ));
        }
        out.push(text);
    }
    out
}

/// Opens `url` and waits until the page has rendered its `body`.
async fn open(b: &Client, url: &str) {
    b.goto(url).await.unwrap();
    b.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("body"))
        .await
        .unwrap();
}

/// The `href` of the first link matching `css` whose text contains `text`.
async fn link(b: &Client, css: &str, text: &str) -> String {
    let script = format!(
        "var a = Array.from(document.querySelectorAll({})).find(function (a) {{ return a.textContent.indexOf({}) >= 0; }}); return a ? a.getAttribute('href') : null;",
        json!(css),
        json!(text)
    );
    let href = b.execute(&script, vec![]).await.unwrap();
    href.as_str()
        .unwrap_or_else(|| panic!("no link {css} with {text:?}"))
        .to_owned()
}

/// Signs in through the IdP's login form, the way a person does, ending on the start page.
async fn sign_in(b: &Client, app: &TestApp, user: &str) {
    b.goto(&app.url(DEMO, "/")).await.unwrap();
    crate::browser::log_in(b, user, PW).await;
    b.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("header.topbar .usermenu"))
        .await
        .unwrap();
}

/// The demo practice (with its roster tool) and something on every page: a mention of the
/// owner and a reaction. Returns the room "Allgemein" and the tool.
async fn demo_practice(app: &TestApp) -> (String, kollegium::roster::RunningRoster) {
    let roster = crate::demo_workspace::demo_with_roster(app).await;
    let mfa = client();
    app.sign_in(&mfa, DEMO, "mfa", PW).await;
    let list = crate::chat_notify::page(app, &mfa, DEMO, "/chat").await;
    let room = list
        .split("<a href=\"/chat/")
        .skip(1)
        .find(|item| {
            item.split("</a>")
                .next()
                .unwrap_or("")
                .contains("Allgemein")
        })
        .and_then(|item| item.split('"').next())
        .expect("Allgemein listed")
        .to_owned();
    let message = app
        .say(&mfa, DEMO, &room, "@inhaber Die Laborwerte sind da.")
        .await;
    let page = format!("/chat/{room}");
    let r = app
        .post_form(
            &mfa,
            DEMO,
            &page,
            &format!("{page}/messages/{message}/react"),
            &[("emoji", "👍")],
        )
        .await;
    assert_eq!(r.status(), 303, "reacting");
    (room, roster)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_kind_passes_axe_core_without_serious_violations() {
    let app = TestApp::spawn().await;
    let (room, roster) = demo_practice(&app).await;
    let d = driver().await;
    let b = browser_on(&d, "a11y", Screen::Window(1366, 900)).await;
    let mut found = Vec::new();

    // Before signing in: the node's page, the sign-in form, an error page.
    for (what, url) in [
        ("node page", app.node_url("/")),
        ("sign-in", app.url(DEMO, "/id/login")),
        ("error page", app.url(DEMO, "/gibt-es-nicht")),
    ] {
        open(&b, &url).await;
        found.extend(audit(&b, what).await);
    }

    sign_in(&b, &app, "inhaber").await;
    open(&b, &app.url(DEMO, "/id/admin/users")).await;
    let user = link(&b, "main a[href^='/id/admin/users/']", "Mia Fachmann").await;
    let mut pages: Vec<(&str, String)> = vec![
        ("start page", "/".into()),
        ("chat list", "/chat".into()),
        ("chat room", format!("/chat/{room}")),
        ("chat settings", "/chat/settings".into()),
        ("chat admin", "/chat/admin".into()),
        ("news", "/news".into()),
        ("news admin", "/news/admin".into()),
        ("search", "/search?q=Sprechzeiten".into()),
        ("chat search", "/chat/search?q=Laborwerte".into()),
        ("Mein Konto", "/id/account".into()),
        ("Mein Konto: second factor", "/id/account/totp".into()),
        ("Mein Konto: apps", "/id/account/apps".into()),
        ("admin: users", "/id/admin/users".into()),
        ("admin: new user", "/id/admin/users/new".into()),
        ("admin: a user", user),
        ("admin: clients", "/id/admin/clients".into()),
        (
            "admin: a client",
            "/id/admin/clients/dienstplan-demo".into(),
        ),
        ("admin: devices and settings", "/id/admin/devices".into()),
        ("admin: security log", "/id/admin/events".into()),
        ("task card (attachments)", "/tasks/cards/1".into()),
        ("error page, signed in", "/chat/999999".into()),
    ];
    for (what, path) in &pages {
        open(&b, &app.url(DEMO, path)).await;
        if path.starts_with("/tasks/cards/") {
            // The demo card's page, with its upload form (the admin may edit).
            b.find(Locator::Css("#attachment-file")).await.unwrap();
        }
        found.extend(audit(&b, what).await);
    }

    // The roster tool's sign-in in a real browser (whose CSP must let the consent form's
    // answer go to the tool): the tile, the consent page, the tool's page.
    open(&b, &app.url(DEMO, "/id/launch/dienstplan-demo")).await;
    found.extend(audit(&b, "consent page").await);
    b.find(Locator::Css("button[name=decision][value=allow]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("table"))
        .await
        .expect("the consent leads to the roster tool");
    let text = b
        .find(Locator::Css("h1"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(text, "Dienstplan (Demo) — angemeldet als Dr. Ines Inhaber");
    assert!(
        b.current_url()
            .await
            .unwrap()
            .as_str()
            .starts_with(&roster.origin())
    );
    found.extend(audit(&b, "roster tool").await);
    // Later, without a practice session: the IdP's login form ends at the tool (consent is
    // remembered), which the login page's policy must allow as well.
    let later = browser_on(&d, "later", Screen::Window(1366, 900)).await;
    later.goto(&format!("{}/", roster.origin())).await.unwrap();
    crate::browser::log_in(&later, "inhaber", PW).await;
    later
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("table"))
        .await
        .expect("the login form leads back to the roster tool");
    let text = later
        .find(Locator::Css("h1"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(text, "Dienstplan (Demo) — angemeldet als Dr. Ines Inhaber");
    later.close().await.unwrap();

    // The dark colour scheme: the pages with every kind of control and badge.
    color_scheme(&b, "dark").await;
    pages.retain(|(what, _)| {
        matches!(
            *what,
            "start page" | "chat list" | "chat room" | "admin: users" | "admin: a user"
        )
    });
    for (what, path) in &pages {
        open(&b, &app.url(DEMO, path)).await;
        let dark = b
            .execute(
                "return window.matchMedia('(prefers-color-scheme: dark)').matches;",
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(dark, json!(true), "{what}: still the dark scheme");
        found.extend(audit(&b, &format!("{what} (dark)")).await);
    }
    b.close().await.unwrap();

    // On a phone the shell folds its navigation and user menu into icons: they keep their names.
    let phone = browser_on(&d, "a11y-phone", Screen::Phone(390, 844)).await;
    sign_in(&phone, &app, "inhaber").await;
    for (what, path) in pages
        .iter()
        .filter(|(what, _)| matches!(*what, "start page" | "chat room" | "admin: users"))
    {
        open(&phone, &app.url(DEMO, path)).await;
        found.extend(audit(&phone, &format!("{what} (phone)")).await);
    }
    phone.close().await.unwrap();
    roster.stop().await;
    assert!(
        found.is_empty(),
        "axe-core found {} serious or critical violations:\n\n{}\n",
        found.len(),
        found.join("\n\n")
    );
}
