//! Authorization request parameters end to end: `login_hint`, long authorization requests,
//! merged consent and `prompt=consent`, `max_age`, `id_token_hint`.

use crate::apps::oidc::*;
use crate::harness::{TestApp, client, form_csrf};
use crate::idp_mfa::{T0, app_at};
use crate::oidc_support::*;

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
            let mut form = consent_fields(&html);
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_age_forces_a_new_login_and_the_id_token_says_when() {
    let (app, clock) = app_at(T0).await;
    app.create_practice("praxis-a").await;
    let c = browser(&app, "praxis-a", "anna").await;
    let x = register(&app, "praxis-a", tool("X", true, true)).await;
    clock.advance(120);
    let t = tokens(&app, &c, creds(&x), "openid", &[("max_age", "600")]).await;
    assert_eq!(claims(t["id_token"].as_str().unwrap())["auth_time"], T0);

    let mut p = auth_params(&x.client_id, "openid");
    p.push(("max_age", "60"));
    let mut none = p.clone();
    none.push(("prompt", "none"));
    let r = authorize(&app, &c, "praxis-a", &none).await;
    assert_eq!(query(&location(&r))["error"], "login_required");
    let r = authorize(&app, &c, "praxis-a", &p).await;
    assert_eq!(r.status(), 303);
    let to = location(&r);
    assert_eq!(query(&to)["force"], "1", "the form even though signed in");
    let r = login_through(&app, &c, &to, "anna", PASSWORD).await;
    let code = query(&location(&r))["code"].clone();
    let (_, t) = exchange(&app, "praxis-a", creds(&x), &code, None).await;
    assert_eq!(
        claims(t["id_token"].as_str().unwrap())["auth_time"],
        T0 + 120
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_id_token_hint_for_someone_else_asks_for_that_login() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    let anna = browser(&app, "praxis-a", "anna").await;
    let ben = browser(&app, "praxis-a", "ben").await;
    let x = register(&app, "praxis-a", tool("X", true, true)).await;
    let ben_token = tokens(&app, &ben, creds(&x), "openid", &[]).await;
    let anna_token = tokens(&app, &anna, creds(&x), "openid", &[]).await;
    let (ben_hint, anna_hint) = (
        ben_token["id_token"].as_str().unwrap(),
        anna_token["id_token"].as_str().unwrap(),
    );
    let hinted = |hint| {
        let mut p = auth_params(&x.client_id, "openid profile");
        p.push(("id_token_hint", hint));
        p
    };
    // Her own token as the hint: nothing to ask.
    assert_eq!(
        authorize(&app, &anna, "praxis-a", &hinted(anna_hint))
            .await
            .status(),
        302
    );
    // Ben's: not silently (login_required), otherwise the login form, even though signed in.
    let mut none = hinted(ben_hint);
    none.push(("prompt", "none"));
    let r = authorize(&app, &anna, "praxis-a", &none).await;
    assert_eq!(query(&location(&r))["error"], "login_required");
    let r = authorize(&app, &anna, "praxis-a", &hinted(ben_hint)).await;
    assert_eq!(r.status(), 303);
    let to = location(&r);
    assert_eq!(query(&to)["force"], "1");
    // Ben signs in on this browser: the request completes for him.
    let r = login_through(&app, &anna, &to, "ben", PASSWORD).await;
    let code = query(&location(&r))["code"].clone();
    let (_, t) = exchange(&app, "praxis-a", creds(&x), &code, None).await;
    assert_eq!(
        claims(t["id_token"].as_str().unwrap())["preferred_username"],
        "ben"
    );
    // A hint that is no ID token of ours goes back as invalid_request.
    let mut bad = auth_params(&x.client_id, "openid");
    bad.push(("id_token_hint", "eyJhbGciOiJub25lIn0.e30."));
    let r = authorize(&app, &anna, "praxis-a", &bad).await;
    assert_eq!(query(&location(&r))["error"], "invalid_request");
}

/// The policy's `form-action` of a page, as a browser enforces it on the redirects after a
/// form's answer.
fn form_action(r: &reqwest::Response) -> String {
    let csp = r.headers()["content-security-policy"].to_str().unwrap();
    csp.split(';')
        .map(str::trim)
        .find(|d| d.starts_with("form-action"))
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_sign_in_step_for_a_tool_lets_its_form_end_at_the_tool() {
    let (app, _clock) = app_at(T0).await;
    app.create_practice("praxis-a").await;
    app.create_practice("praxis-b").await;
    app.create_user("praxis-a", "anna", PASSWORD, false).await;
    let x = register(&app, "praxis-a", tool("X", true, true)).await;
    // Anna has a second factor: her sign-in goes password → code → tool.
    let c = client();
    assert_eq!(
        app.login(&c, "praxis-a", "anna", PASSWORD).await.status(),
        303
    );
    crate::idp_mfa::enrol(&app, &c, "praxis-a", T0).await;
    crate::idp_mfa::logout(&app, &c, "praxis-a").await;

    let r = authorize(&app, &c, "praxis-a", &auth_params(&x.client_id, "openid")).await;
    let to = location(&r);
    let r = c.get(app.url("praxis-a", &to)).send().await.unwrap();
    assert_eq!(form_action(&r), "form-action 'self' https://tool.example");
    let html = r.text().await.unwrap();
    let next = input(&html, "next");
    // A typo: the page shown again keeps the tool's address.
    let post = |password: &'static str, html: String| {
        let (c, url, next) = (c.clone(), app.url("praxis-a", "/id/login"), next.clone());
        async move {
            c.post(url)
                .form(&[
                    ("csrf_token", form_csrf(&html).as_str()),
                    ("login", "anna"),
                    ("password", password),
                    ("next", next.as_str()),
                ])
                .send()
                .await
                .unwrap()
        }
    };
    let r = post("falsch-falsch", html.clone()).await;
    assert_eq!(r.status(), 401);
    assert_eq!(form_action(&r), "form-action 'self' https://tool.example");
    let r = post(PASSWORD, html).await;
    assert_eq!(r.status(), 303);
    let code_page = location(&r);
    assert!(code_page.starts_with("/id/login/totp?"), "{code_page}");
    // The code step: its answer redirects to the tool when consent is remembered.
    let r = c.get(app.url("praxis-a", &code_page)).send().await.unwrap();
    assert_eq!(form_action(&r), "form-action 'self' https://tool.example");
    let html = r.text().await.unwrap();
    let r = c
        .post(app.url("praxis-a", "/id/login/totp"))
        .form(&[
            ("csrf_token", form_csrf(&html).as_str()),
            ("code", "000000"),
            ("next", next.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert!(r.status().is_client_error(), "{}", r.status());
    assert_eq!(form_action(&r), "form-action 'self' https://tool.example");

    // Not for a redirect address the tool did not register, nor for another practice's
    // tool, nor for a next that is no authorization request.
    let forged = next.replace("tool.example", "evil.example");
    for (slug, next) in [
        ("praxis-a", forged.as_str()),
        ("praxis-b", next.as_str()),
        ("praxis-a", "/id/account"),
    ] {
        let r = client()
            .get(app.url(slug, "/id/login"))
            .query(&[("next", next)])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{slug} {next}");
        assert_eq!(form_action(&r), "form-action 'self'", "{slug} {next}");
    }
}
