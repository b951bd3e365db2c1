//! More of the IdP end to end: `login_hint`, long authorization requests, merged consent,
//! `prompt=consent`, `max_age`, `id_token_hint`, rehashing at login, refresh tokens that
//! die by expiry, revocation, password change, admin disable and withdrawn consent, a
//! disabled client, the security log's user filter, and CSRF on the client and app forms.

use crate::harness::{TestApp, client, form_csrf};
use crate::oidc_support::*;

const CB: &str = "https://tool.example/cb";

/// The value of an HTML attribute as the browser reads it.
fn unescape(v: &str) -> String {
    let mut out = String::new();
    let mut rest = v;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        let end = tail.find(';').unwrap();
        let ch = match &tail[1..end] {
            "amp" => '&',
            "quot" => '"',
            "lt" => '<',
            "gt" => '>',
            e => {
                let n = e.trim_start_matches('#');
                let code = match n.strip_prefix('x') {
                    Some(hex) => u32::from_str_radix(hex, 16).unwrap(),
                    None => n.parse().unwrap(),
                };
                char::from_u32(code).unwrap()
            }
        };
        out.push(ch);
        rest = &tail[end + 1..];
    }
    out.push_str(rest);
    out
}

/// The (unescaped) value of the input `name` of the page's main form.
fn input(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\"");
    let at = html.find(&marker).unwrap_or_else(|| panic!("no {name}"));
    let tag_start = html[..at].rfind('<').unwrap();
    let tag = &html[tag_start..tag_start + html[tag_start..].find('>').unwrap()];
    tag.split("value=\"")
        .nth(1)
        .map(|v| unescape(v.split('"').next().unwrap()))
        .unwrap_or_default()
}

/// Hidden inputs of the consent form.
fn hidden_fields(html: &str) -> Vec<(String, String)> {
    let html = &html[html.find("action=\"/id/authorize/consent\"").unwrap()..];
    let html = &html[..html.find("</form>").unwrap()];
    html.split("<input type=\"hidden\" name=\"")
        .skip(1)
        .map(|part| {
            let name = part.split('"').next().unwrap().to_owned();
            let value = part.split("value=\"").nth(1).unwrap().split('"').next();
            (name, unescape(value.unwrap()))
        })
        .collect()
}

fn auth_params<'a>(client_id: &'a str, scope: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", CB),
        ("scope", scope),
        ("state", "st"),
    ]
}

/// Answers the login form at `login_path` (where `/id/authorize` sent the browser) and
/// follows the way back to the authorization endpoint; returns its final response.
async fn login_through(
    app: &TestApp,
    c: &reqwest::Client,
    login_path: &str,
    user: &str,
    pw: &str,
) -> reqwest::Response {
    let html = c
        .get(app.url("praxis-a", login_path))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let next = input(&html, "next");
    assert!(next.starts_with("/id/authorize?"), "{next}");
    let r = c
        .post(app.url("praxis-a", "/id/login"))
        .form(&[
            ("csrf_token", form_csrf(&html).as_str()),
            ("login", user),
            ("password", pw),
            ("next", next.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "login as {user}");
    assert_eq!(location(&r), next, "the login returns to the request");
    c.get(app.url("praxis-a", &next)).send().await.unwrap()
}

fn creds(c: &kollegium_idp::oidc::clients::Created) -> (&str, &str) {
    (c.client_id.as_str(), c.secret.as_deref().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_hint_prefills_the_user_name_and_nothing_more() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    app.create_user("praxis-a", "anna", PASSWORD, false).await;
    app.create_user("praxis-a", "ben", PASSWORD, false).await;
    let x = register(&app, "praxis-a", tool("X", true, true)).await;
    let c = client();
    let mut p = auth_params(&x.client_id, "openid profile");
    p.push(("login_hint", "ben"));
    let r = authorize(&app, &c, "praxis-a", &p).await;
    assert_eq!(r.status(), 303);
    let to = location(&r);
    assert_eq!(query(&to)["login_hint"], "ben");
    let html = c
        .get(app.url("praxis-a", &to))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(input(&html, "login"), "ben");

    // Markup in the hint stays text; an over-long hint is no hint.
    for (hint, shown) in [
        (
            "\"><script>alert(1)</script>",
            "\"><script>alert(1)</script>",
        ),
        (&*"b".repeat(300), ""),
    ] {
        let mut p = auth_params(&x.client_id, "openid");
        p.push(("login_hint", hint));
        let to = location(&authorize(&app, &c, "praxis-a", &p).await);
        let html = c
            .get(app.url("praxis-a", &to))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(!html.contains("<script>alert"), "escaped");
        assert_eq!(input(&html, "login"), shown);
    }

    // The hint binds nothing: the wrong password for the hinted name fails, and anyone
    // may sign in instead of the hinted user.
    let r = c
        .post(app.url("praxis-a", "/id/login"))
        .form(&[
            ("csrf_token", form_csrf(&html).as_str()),
            ("login", "ben"),
            ("password", "falsch-falsch-falsch"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = login_through(&app, &c, &to, "anna", PASSWORD).await;
    let code = query(&location(&r))["code"].clone();
    let (_, t) = exchange(&app, "praxis-a", creds(&x), &code, None).await;
    assert_eq!(
        claims(t["id_token"].as_str().unwrap())["preferred_username"],
        "anna"
    );
    // Signed in, a hint naming someone else changes nothing either (no re-login for ben).
    let r = authorize(&app, &c, "praxis-a", &p).await;
    assert_eq!(r.status(), 302);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_authorization_request_is_carried_through_login_or_refused_up_front() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    app.create_user("praxis-a", "anna", PASSWORD, false).await;
    let x = register(&app, "praxis-a", tool("X", true, true)).await;
    let (state, nonce, extra) = ("s".repeat(2000), "n".repeat(2000), "e".repeat(2000));

    // About 6 KiB: through the login form and back to the tool with the whole state.
    let c = client();
    let mut p = auth_params(&x.client_id, "openid");
    p.retain(|(k, _)| *k != "state");
    p.extend([("state", &*state), ("nonce", &*nonce), ("ext1", &*extra)]);
    let r = authorize(&app, &c, "praxis-a", &p).await;
    assert_eq!(r.status(), 303);
    let r = login_through(&app, &c, &location(&r), "anna", PASSWORD).await;
    assert_eq!(r.status(), 302);
    let back = query(&location(&r));
    assert!(back.contains_key("code"));
    assert_eq!(back["state"], state);

    // About 10 KiB: within the parameter limits, but too long to survive the login: a
    // clear error page up front (signed in or not), never a login that forgets the request.
    p.extend([("ext2", &*extra), ("ext3", &*extra)]);
    for who in [client(), c] {
        let r = authorize(&app, &who, "praxis-a", &p).await;
        assert_eq!(r.status(), 400);
        assert!(r.headers().get("location").is_none());
        assert!(r.text().await.unwrap().contains("Ungültige Anmeldeanfrage"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consent_adds_up_and_prompt_consent_asks_again() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    let c = browser(&app, "praxis-a", "anna").await;
    let z = register(&app, "praxis-a", tool("Zeiterfassung", true, false)).await;
    let consent = |scope: &'static str, prompt: Option<&'static str>| {
        let (app, c, id) = (&app, &c, z.client_id.clone());
        async move {
            let mut p = auth_params(&id, scope);
            if let Some(pr) = prompt {
                p.push(("prompt", pr));
            }
            let r = authorize(app, c, "praxis-a", &p).await;
            assert_eq!(r.status(), 200, "consent page for {scope}");
            let html = r.text().await.unwrap();
            assert!(html.contains("Zeiterfassung möchte Sie anmelden"));
            let mut form = hidden_fields(&html);
            form.push(("decision".into(), "allow".into()));
            let r = c
                .post(app.url("praxis-a", "/id/authorize/consent"))
                .form(&form)
                .send()
                .await
                .unwrap();
            assert!(query(&location(&r)).contains_key("code"));
        }
    };
    consent("openid profile email", None).await;
    // Remembered: straight to the tool; prompt=consent asks anyway.
    let p = auth_params(&z.client_id, "openid profile email");
    assert_eq!(authorize(&app, &c, "praxis-a", &p).await.status(), 302);
    // A later, narrower consent (forced by prompt=consent) keeps what was granted before.
    consent("openid", Some("consent")).await;
    let r = authorize(&app, &c, "praxis-a", &p).await;
    assert_eq!(r.status(), 302, "the earlier scopes are still granted");
    let apps = c
        .get(app.url("praxis-a", "/id/account/apps"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(apps.contains("Profil") && apps.contains("E-Mail"), "{apps}");
    // And adding a scope adds to the set.
    consent("openid practice", None).await;
    let all = auth_params(&z.client_id, "openid profile email practice");
    assert_eq!(authorize(&app, &c, "praxis-a", &all).await.status(), 302);
}
