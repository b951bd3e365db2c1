//! Passwords users can trust (issue 12, item 9): a German common word or the practice's and
//! person's own words with digits around them (`Praxis2026!`, `passwort1234`) are refused
//! wherever a password is set, with a German reason that does not repeat the password, and
//! the account keeps its old password. The forms carry the strength meter.

use kollegium_idp::links::{self, LinkKind};

use crate::harness::{TestApp, client};
use crate::idp_mfa::{PW, T0, app_at};
use crate::mail::use_link;

const CONTEXT_REFUSAL: &str = "besteht nur aus naheliegenden Wörtern";
const COMMON_REFUSAL: &str = "ist ein häufig verwendetes Wort mit Ziffern oder Zeichen";
const GOOD: &str = "Leuchtturm-Zebra-Gitarre-8";

/// The page links the meter script, and the script is served.
async fn assert_meter(app: &TestApp, html: &str) {
    let marker = "<script src=\"/static/password-meter.";
    let start = html.find(marker).expect("the page links the meter") + "<script src=\"".len();
    let end = start + html[start..].find('"').unwrap();
    let r = client()
        .get(app.url("praxis-a", &html[start..end]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );
    assert!(r.text().await.unwrap().contains("Passwortstärke"));
    // No inline script: every script element has a source (the meter, the live channel).
    assert_eq!(html.matches(marker).count(), 1);
    assert_eq!(
        html.matches("<script").count(),
        html.matches("<script src=\"/static/").count()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mein_konto_refuses_praxis2026_and_the_old_password_stays() {
    let (app, _clock) = app_at(T0).await;
    app.create_practice("praxis-a").await;
    app.create_user("praxis-a", "anna", PW, false).await;
    let c = client();
    assert_eq!(app.login(&c, "praxis-a", "anna", PW).await.status(), 303);
    let page = c
        .get(app.url("praxis-a", "/id/account"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_meter(&app, &page).await;

    for (weak, why) in [
        ("Praxis2026!", CONTEXT_REFUSAL),
        ("passwort1234", COMMON_REFUSAL),
        ("P@ssw0rt-2027", COMMON_REFUSAL),
        ("Fußball1904!", COMMON_REFUSAL),
        // The display name ("anna Test") with the practice.
        ("Test-Praxis-2027", CONTEXT_REFUSAL),
    ] {
        let r = app
            .post_form(
                &c,
                "praxis-a",
                "/id/account",
                "/id/account/password",
                &[
                    ("current", PW),
                    ("password", weak),
                    ("password_repeat", weak),
                ],
            )
            .await;
        assert_eq!(r.status(), 400, "{weak}");
        let html = r.text().await.unwrap();
        assert!(html.contains(why), "{weak}: {html}");
        assert!(!html.contains(weak), "{weak} is not repeated");
    }
    // The old password still works (a new one would have replaced it).
    assert_eq!(
        app.login(&client(), "praxis-a", "anna", PW).await.status(),
        303
    );
    let r = app
        .post_form(
            &c,
            "praxis-a",
            "/id/account",
            "/id/account/password",
            &[
                ("current", PW),
                ("password", GOOD),
                ("password_repeat", GOOD),
            ],
        )
        .await;
    assert_eq!(r.status(), 303, "a good passphrase is taken");
    assert_eq!(
        app.login(&client(), "praxis-a", "anna", GOOD)
            .await
            .status(),
        303
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_link_refuses_praxis2026_and_stays_usable() {
    let (app, _clock) = app_at(T0).await;
    app.create_practice("praxis-a").await;
    let anna = app.create_user("praxis-a", "anna", PW, false).await;
    let now = app.clock.now();
    let token = app
        .idp_db("praxis-a", move |c| {
            links::issue(c, anna, LinkKind::Reset, now, 3600).unwrap()
        })
        .await;
    let path = format!("/id/setup/{token}");
    let c = client();
    let page = c
        .get(app.url("praxis-a", &path))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_meter(&app, &page).await;

    for (weak, why) in [
        ("Praxis2026!", CONTEXT_REFUSAL),
        ("praxis-a-2027", CONTEXT_REFUSAL),
        ("ichliebedich!", COMMON_REFUSAL),
        ("Schatz12345", COMMON_REFUSAL),
    ] {
        let r = use_link(
            &app,
            &c,
            "praxis-a",
            &path,
            &[("password", weak), ("password_repeat", weak)],
        )
        .await;
        assert_eq!(r.status(), 400, "{weak}");
        let html = r.text().await.unwrap();
        assert!(html.contains(why), "{weak}: {html}");
        assert!(!html.contains(weak), "{weak} is not repeated");
    }
    assert_eq!(
        app.login(&client(), "praxis-a", "anna", PW).await.status(),
        303,
        "the old password stays"
    );
    // The refusals did not use the link up.
    let r = use_link(
        &app,
        &c,
        "praxis-a",
        &path,
        &[("password", GOOD), ("password_repeat", GOOD)],
    )
    .await;
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
    assert_eq!(
        app.login(&client(), "praxis-a", "anna", GOOD)
            .await
            .status(),
        303
    );
    assert_eq!(
        app.login(&client(), "praxis-a", "anna", PW).await.status(),
        401
    );
}

/// The meter's text for `pw` typed into an empty field.
async fn meter_says(b: &fantoccini::Client, pw: &str) -> String {
    use fantoccini::Locator;
    let field = b.find(Locator::Css("input#password")).await.unwrap();
    field.clear().await.unwrap();
    field.send_keys(pw).await.unwrap();
    b.find(Locator::Css("#pw-meter"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_meter_rates_while_typing_in_a_real_browser() {
    use crate::browser::{browser, driver};
    let (app, _clock) = app_at(T0).await;
    app.create_practice("praxis-a").await;
    let anna = app.create_user("praxis-a", "anna", PW, false).await;
    let now = app.clock.now();
    let token = app
        .idp_db("praxis-a", move |c| {
            links::issue(c, anna, LinkKind::Reset, now, 3600).unwrap()
        })
        .await;
    let d = driver().await;
    let b = browser(&d, "meter").await;
    b.goto(&app.url("praxis-a", &format!("/id/setup/{token}")))
        .await
        .unwrap();
    b.execute(
        "window.__violations = []; document.addEventListener('securitypolicyviolation', \
         function (e) { window.__violations.push(e.violatedDirective); }); return true;",
        vec![],
    )
    .await
    .unwrap();
    for (pw, want) in [
        ("kurz", "schwach (zu kurz"),
        ("Praxis2026!", "schwach (naheliegende"),
        ("passwort1234", "schwach (naheliegende"),
        ("P@ssw0rt-2027", "schwach (naheliegende"),
        ("birkenwegx", "mittel"),
        (GOOD, "stark"),
    ] {
        let said = meter_says(&b, pw).await;
        assert!(
            said.starts_with(&format!("Passwortstärke: {want}")),
            "{pw}: {said}"
        );
    }
    let violations = b
        .execute("return window.__violations;", vec![])
        .await
        .unwrap();
    assert_eq!(violations, serde_json::json!([]), "no CSP violation");
    b.close().await.unwrap();
}
