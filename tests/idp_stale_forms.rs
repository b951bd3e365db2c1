//! Errors people meet: a stale form explains itself in the practice's name and shell and
//! keeps the input; error pages of a practice show its shell with a way back; the security
//! log speaks German.

use crate::harness::{TestApp, client};

const PW: &str = "Sonnenblume-Kaffee-42";

fn unescape(v: &str) -> String {
    v.replace("&#32;", " ")
        .replace("&#38;", "&")
        .replace("&amp;", "&")
        .replace("&#61;", "=")
        .replace("&#43;", "+")
        .replace("&#47;", "/")
        .replace("&#34;", "\"")
        .replace("&#39;", "'")
}

/// The hidden fields of the form that posts to `action` on `page`.
fn hidden_fields(page: &str, action: &str) -> Vec<(String, String)> {
    let form = page
        .split(&format!("action=\"{action}\""))
        .nth(1)
        .and_then(|f| f.split("</form>").next())
        .unwrap_or_else(|| panic!("no form to {action}: {page}"));
    form.split("<input type=\"hidden\" name=\"")
        .skip(1)
        .map(|f| {
            let (name, rest) = f.split_once('"').unwrap();
            let value = rest
                .split("value=\"")
                .nth(1)
                .and_then(|v| v.split('"').next())
                .unwrap_or("");
            (name.to_owned(), unescape(value))
        })
        .collect()
}

async fn signed_in(app: &TestApp, user: &str) -> reqwest::Client {
    let c = client();
    assert_eq!(app.login(&c, "praxis-a", user, PW).await.status(), 303);
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_form_explains_itself_in_the_shell_and_keeps_the_input() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    app.create_user("praxis-a", "chefin", PW, true).await;
    let practice = app.tenant("praxis-a").display_name().to_owned();
    let origin = app.url("praxis-a", "");
    let admin = signed_in(&app, "chefin").await;
    let account = app.url("praxis-a", "/id/account");
    // The form was loaded long ago: its token no longer matches (the browser's CSRF cookie
    // changed meanwhile, as after signing out and in again elsewhere).
    let r = admin
        .post(app.url("praxis-a", "/id/account/profile"))
        .header("origin", &origin)
        .header("referer", &account)
        .form(&[
            ("csrf_token", "abgelaufen"),
            ("display_name", "Dr. Ines Neu & Co"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let page = r.text().await.unwrap();
    assert!(page.contains("Formular abgelaufen"), "{page}");
    assert!(
        page.contains(&format!("{practice} hat es aus Sicherheitsgründen nicht")),
        "in the practice's name"
    );
    assert!(!page.contains("Forbidden"));
    // The practice's shell: navigation, the administration for this admin, the user menu.
    assert!(page.contains("class=\"mainnav\""), "{page}");
    assert!(page.contains(">Praxisverwaltung</a>"));
    assert!(page.contains("chefin Test"));
    // The input is kept, shown and sent again with a fresh token; back to the form.
    assert!(page.contains("Dr. Ines Neu &#38; Co") || page.contains("Dr. Ines Neu &amp; Co"));
    assert!(page.contains("Erneut senden"));
    assert!(
        page.contains("href=\"/id/account\""),
        "Seite neu laden: {page}"
    );
    let fields = hidden_fields(&page, "/id/account/profile");
    assert!(
        fields
            .iter()
            .any(|(k, v)| k == "display_name" && v == "Dr. Ines Neu & Co")
    );
    let r = admin
        .post(app.url("praxis-a", "/id/account/profile"))
        .header("origin", &origin)
        .form(&fields)
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["location"], "/id/account?done=profile");
    let shown = admin
        .get(format!("{account}?done=profile"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(shown.contains("Ihr Profil wurde gespeichert."));
    assert!(shown.contains("value=\"Dr. Ines Neu"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_our_own_forms_without_secrets_are_offered_again() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    app.create_user("praxis-a", "anna", PW, false).await;
    let anna = signed_in(&app, "anna").await;
    let post = |fields: Vec<(&'static str, &'static str)>, origin: Option<String>| {
        let mut r = anna.post(app.url("praxis-a", "/id/account/profile"));
        if let Some(o) = origin {
            r = r.header("origin", o);
        }
        r.form(&fields).send()
    };
    // Another site's form: refused, nothing echoed, no fresh token for it.
    let r = post(
        vec![("csrf_token", "x"), ("display_name", "Gehackt")],
        Some("https://evil.example".into()),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 403);
    let page = r.text().await.unwrap();
    assert!(page.contains("Formular abgelehnt"), "{page}");
    assert!(!page.contains("Gehackt") && !page.contains("Erneut senden"));
    // The browser did not say where the form came from: explained, not offered again.
    let r = post(vec![("display_name", "Ohne Herkunft")], None)
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let page = r.text().await.unwrap();
    assert!(page.contains("Formular abgelaufen"));
    assert!(!page.contains("Ohne Herkunft") && !page.contains("Erneut senden"));
    assert!(page.contains("Bitte laden Sie die Seite neu"));
    // Passwords are never echoed into a page.
    let r = anna
        .post(app.url("praxis-a", "/id/account/password"))
        .header("origin", app.url("praxis-a", ""))
        .form(&[
            ("csrf_token", "alt"),
            ("current", PW),
            ("password", "Geheim-Neu-12345"),
            ("password_repeat", "Geheim-Neu-12345"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let page = r.text().await.unwrap();
    assert!(
        !page.contains(PW) && !page.contains("Geheim-Neu-12345"),
        "{page}"
    );
    assert!(page.contains("Bitte laden Sie die Seite neu"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_pages_of_a_practice_show_its_shell_and_a_way_back() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    app.create_user("praxis-a", "anna", PW, false).await;
    let anna = signed_in(&app, "anna").await;
    let r = anna
        .get(app.url("praxis-a", "/id/admin/users"))
        .header("referer", app.url("praxis-a", "/id/account"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let page = r.text().await.unwrap();
    assert!(page.contains("Zugriff verweigert"), "{page}");
    assert!(
        page.contains("class=\"mainnav\"") && page.contains(">Chat</a>"),
        "{page}"
    );
    assert!(
        !page.contains(">Praxisverwaltung</a>"),
        "not for a non-admin"
    );
    assert!(page.contains("anna Test") && page.contains(">Mein Konto</a>"));
    assert!(
        page.contains("<a class=\"button\" href=\"/id/account\">Zurück</a>"),
        "{page}"
    );
    assert!(page.contains("Zur Startseite"));
    // A foreign page is no way back.
    let r = anna
        .get(app.url("praxis-a", "/gibt-es-nicht"))
        .header("referer", "https://evil.example/x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let page = r.text().await.unwrap();
    assert!(page.contains("Seite nicht gefunden") && page.contains("class=\"mainnav\""));
    assert!(!page.contains("evil.example"));
    // Without a session a 404 stays as for any practice (edge_answers checks it is
    // exactly the unknown practice's page).
    let r = client()
        .get(app.url("praxis-a", "/gibt-es-nicht"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert!(!r.text().await.unwrap().contains("class=\"mainnav\""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_security_log_names_codes_in_german() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    app.create_user("praxis-a", "chefin", PW, true).await;
    app.create_user("praxis-a", "anna", PW, false).await;
    let _anna = signed_in(&app, "anna").await;
    let admin = signed_in(&app, "chefin").await;
    let r = app
        .post_form(
            &admin,
            "praxis-a",
            "/id/admin/devices",
            "/id/admin/policies",
            &[("device_policy", "approval"), ("mfa_policy", "admins")],
        )
        .await;
    assert_eq!(r.status(), 303);
    let page = admin
        .get(app.url("praxis-a", "/id/admin/events"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let details: Vec<&str> = page
        .split("data-label=\"Details\">")
        .skip(1)
        .filter_map(|d| d.split("</td>").next())
        .collect();
    assert!(details.contains(&"angemeldet"), "{details:?}");
    assert!(
        details
            .iter()
            .any(|d| d.contains("Gerätefreigabe: Neue Geräte brauchen eine Freigabe")),
        "{details:?}"
    );
    for raw in ["active", "owner", "device_policy", "mfa_policy", "admins"] {
        assert!(
            !details.iter().any(|d| d.contains(raw)),
            "{raw} in {details:?}"
        );
    }
}
