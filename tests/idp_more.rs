//! More of the IdP end to end: `login_hint`, long authorization requests, merged consent,
//! `prompt=consent`, `max_age`, `id_token_hint`, rehashing at login, refresh tokens that
//! die by expiry, revocation, password change, admin disable and withdrawn consent, a
//! disabled client, the security log's user filter, and CSRF on the client and app forms.

use kollegium_idp::passwords::Argon2Params;
use serde_json::Value;

use crate::harness::{TestApp, client, form_csrf};
use crate::idp_mfa::{T0, app_at};
use crate::oidc_support::*;

const CB: &str = "https://tool.example/cb";

/// Form fields of a request.
type Fields = Vec<(&'static str, &'static str)>;

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

/// The body rows of the page's table (the filters above it list names too).
fn tbody(html: &str) -> &str {
    let start = html.find("<tbody>").unwrap();
    &html[start..start + html[start..].find("</tbody>").unwrap()]
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

/// Tokens of a code flow with `scope`.
async fn tokens(
    app: &TestApp,
    c: &reqwest::Client,
    creds: (&str, &str),
    scope: &str,
    extra: &[(&str, &str)],
) -> Value {
    let mut p = vec![("scope", scope)];
    p.extend_from_slice(extra);
    let code = code_for(app, c, "praxis-a", creds.0, &p).await;
    let (s, t) = exchange(app, "praxis-a", creds, &code, None).await;
    assert_eq!(s, 200, "{t}");
    t
}

async fn refresh(app: &TestApp, creds: (&str, &str), token: &Value) -> (u16, Value) {
    let (s, b, _) = post_form(
        app,
        "praxis-a",
        "/id/token",
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", token["refresh_token"].as_str().unwrap()),
        ],
        Some(creds),
    )
    .await;
    (s, b)
}

fn assert_invalid_grant((s, b): (u16, Value), what: &str) {
    assert_eq!(
        (s, b["error"].as_str()),
        (400, Some("invalid_grant")),
        "{what}: {b}"
    );
}

async fn introspect(app: &TestApp, creds: (&str, &str), token: &str) -> Value {
    let (s, b, _) = post_form(
        app,
        "praxis-a",
        "/id/introspect",
        &[("token", token)],
        Some(creds),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    b
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

async fn stored_hash(app: &TestApp, id: kollegium_idp::users::UserId) -> String {
    app.user("praxis-a", id).await.password_hash.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_rehashes_the_password_when_the_parameters_changed() {
    let mut app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    let id = app.create_user("praxis-a", "anna", PASSWORD, false).await;
    assert!(stored_hash(&app, id).await.contains("m=256,t=1,p=1"));
    assert_eq!(
        app.login(&client(), "praxis-a", "anna", PASSWORD)
            .await
            .status(),
        303
    );
    assert!(
        stored_hash(&app, id).await.contains("m=256,t=1,p=1"),
        "same parameters: kept"
    );

    app.config.idp.argon2 = Argon2Params {
        m_kib: 512,
        t: 2,
        p: 1,
    };
    app.restart().await;
    let before = stored_hash(&app, id).await;
    assert_eq!(
        app.login(&client(), "praxis-a", "anna", PASSWORD)
            .await
            .status(),
        303
    );
    let after = stored_hash(&app, id).await;
    assert_ne!(after, before);
    assert!(
        after.starts_with("$argon2id$") && after.contains("m=512,t=2,p=1"),
        "{after}"
    );
    // The new hash works, the wrong password still does not.
    assert_eq!(
        app.login(&client(), "praxis-a", "anna", PASSWORD)
            .await
            .status(),
        303
    );
    assert_eq!(
        app.login(&client(), "praxis-a", "anna", "Falsches-Passwort-1")
            .await
            .status(),
        401
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_tokens_expire_absolutely_and_revocation_kills_the_grant() {
    let (app, clock) = app_at(T0).await;
    app.create_practice("praxis-a").await;
    let c = browser(&app, "praxis-a", "anna").await;
    let x = register(&app, "praxis-a", tool("X", true, true)).await;
    let xc = creds(&x);

    // Rotation does not extend the 30 days.
    let t = tokens(&app, &c, xc, "openid offline_access", &[]).await;
    clock.advance(29 * 86_400);
    let (s, t2) = refresh(&app, xc, &t).await;
    assert_eq!(s, 200, "{t2}");
    clock.advance(86_400 + 1);
    assert_invalid_grant(refresh(&app, xc, &t2).await, "past 30 days");

    // Introspection of a refresh token, then /id/revoke: the whole grant is gone.
    let c = browser(&app, "praxis-a", "ben").await;
    let t = tokens(&app, &c, xc, "openid offline_access", &[]).await;
    let rt = t["refresh_token"].as_str().unwrap();
    let i = introspect(&app, xc, rt).await;
    assert_eq!(i["active"], true, "{i}");
    assert_eq!(i["token_type"], "refresh_token");
    assert_eq!(i["client_id"], xc.0);
    assert_eq!(i["username"], "ben");
    let (s, _, _) = post_form(&app, "praxis-a", "/id/revoke", &[("token", rt)], Some(xc)).await;
    assert_eq!(s, 200);
    assert_eq!(introspect(&app, xc, rt).await["active"], false);
    assert_invalid_grant(refresh(&app, xc, &t).await, "revoked");
    let at = t["access_token"].as_str().unwrap();
    assert_eq!(userinfo_status(&app, "praxis-a", at).await, 401);
    assert_eq!(introspect(&app, xc, at).await["active"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_change_admin_disable_and_withdrawn_consent_revoke_refresh_tokens() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    app.create_user("praxis-a", "chefin", PASSWORD, true).await;
    let admin = client();
    assert_eq!(
        app.login(&admin, "praxis-a", "chefin", PASSWORD)
            .await
            .status(),
        303
    );
    let x = register(&app, "praxis-a", tool("X", true, true)).await;
    let z = register(&app, "praxis-a", tool("Zeit", true, false)).await;
    let (xc, zc) = (creds(&x), creds(&z));

    // Password change: the user is still active, the tokens are revoked.
    let anna = browser(&app, "praxis-a", "anna").await;
    let t = tokens(&app, &anna, xc, "openid offline_access", &[]).await;
    let new = "Neues-Passwort-Wiese-77";
    let r = app
        .post_form(
            &anna,
            "praxis-a",
            "/id/account",
            "/id/account/password",
            &[
                ("current", PASSWORD),
                ("password", new),
                ("password_repeat", new),
            ],
        )
        .await;
    assert_eq!(r.status(), 303);
    assert_invalid_grant(refresh(&app, xc, &t).await, "after a password change");
    assert_eq!(
        introspect(&app, xc, t["refresh_token"].as_str().unwrap()).await["active"],
        false
    );

    // Disabled through the admin page, enabled again: the tokens stay revoked.
    let ben_id = app.create_user("praxis-a", "ben", PASSWORD, false).await;
    let ben = client();
    assert_eq!(
        app.login(&ben, "praxis-a", "ben", PASSWORD).await.status(),
        303
    );
    let t = tokens(&app, &ben, xc, "openid offline_access", &[]).await;
    let page = format!("/id/admin/users/{}", ben_id.0);
    for what in ["disable", "enable"] {
        let r = app
            .post_form(&admin, "praxis-a", &page, &format!("{page}/{what}"), &[])
            .await;
        assert_eq!(r.status(), 303, "{what}");
    }
    assert_invalid_grant(refresh(&app, xc, &t).await, "after disable");

    // Withdrawing consent under "Verbundene Anwendungen" revokes that tool's tokens only.
    let carla = browser(&app, "praxis-a", "carla").await;
    let own = tokens(&app, &carla, xc, "openid offline_access", &[]).await;
    let mut p = auth_params(zc.0, "openid offline_access");
    p.push(("prompt", "consent"));
    let html = authorize(&app, &carla, "praxis-a", &p)
        .await
        .text()
        .await
        .unwrap();
    let mut form = hidden_fields(&html);
    form.push(("decision".into(), "allow".into()));
    let r = carla
        .post(app.url("praxis-a", "/id/authorize/consent"))
        .form(&form)
        .send()
        .await
        .unwrap();
    let code = query(&location(&r))["code"].clone();
    let (s, zt) = exchange(&app, "praxis-a", zc, &code, None).await;
    assert_eq!(s, 200, "{zt}");
    let apps = carla
        .get(app.url("praxis-a", "/id/account/apps"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(apps.contains("Zeit"));
    let r = app
        .post_form(
            &carla,
            "praxis-a",
            "/id/account/apps",
            &format!("/id/account/apps/{}/revoke", zc.0),
            &[],
        )
        .await;
    assert_eq!(r.status(), 303);
    assert_invalid_grant(refresh(&app, zc, &zt).await, "consent withdrawn");
    let (s, _) = refresh(&app, xc, &own).await;
    assert_eq!(s, 200, "another tool's tokens are untouched");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_client_gets_an_error_page_and_invalid_client() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    let chefin = app.create_user("praxis-a", "chefin", PASSWORD, true).await;
    let admin = client();
    assert_eq!(
        app.login(&admin, "praxis-a", "chefin", PASSWORD)
            .await
            .status(),
        303
    );
    // A third-party tool (the workspace's own cannot be switched off) she consented to.
    let x = register(&app, "praxis-a", tool("X", true, false)).await;
    let xc = creds(&x);
    let (id, now) = (x.client_id.clone(), app.clock.now());
    app.idp_db("praxis-a", move |conn| {
        kollegium_idp::oidc::consent::remember(conn, chefin, &id, &["openid".into()], now).unwrap();
    })
    .await;
    let code = code_for(&app, &admin, "praxis-a", xc.0, &[("scope", "openid")]).await;
    let r = app
        .post_form(
            &admin,
            "praxis-a",
            "/id/admin/clients",
            &format!("/id/admin/clients/{}/disable", xc.0),
            &[],
        )
        .await;
    assert_eq!(r.status(), 303);
    let r = authorize(&app, &admin, "praxis-a", &auth_params(xc.0, "openid")).await;
    assert_eq!(r.status(), 400);
    assert!(r.headers().get("location").is_none(), "never redirected");
    assert!(r.text().await.unwrap().contains("Unbekannte Anwendung"));
    let (s, b, www) = post_form(
        &app,
        "praxis-a",
        "/id/token",
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", CB),
        ],
        Some(xc),
    )
    .await;
    assert_eq!(
        (s, b["error"].as_str()),
        (401, Some("invalid_client")),
        "{b}"
    );
    assert!(www.unwrap().starts_with("Basic"));
    let (s, b, _) = post_form(
        &app,
        "praxis-a",
        "/id/token",
        &[("grant_type", "client_credentials")],
        Some(xc),
    )
    .await;
    assert_eq!((s, b["error"].as_str()), (401, Some("invalid_client")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_security_log_filters_by_user() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    app.create_user("praxis-a", "chefin", PASSWORD, true).await;
    let anna = app.create_user("praxis-a", "anna", PASSWORD, false).await;
    app.create_user("praxis-a", "ben", PASSWORD, false).await;
    let admin = client();
    assert_eq!(
        app.login(&admin, "praxis-a", "chefin", PASSWORD)
            .await
            .status(),
        303
    );
    assert_eq!(
        app.login(&client(), "praxis-a", "anna", PASSWORD)
            .await
            .status(),
        303
    );
    assert_eq!(
        app.login(&client(), "praxis-a", "ben", "Falsch-geraten-1")
            .await
            .status(),
        401
    );
    let page = |q: String| {
        let admin = admin.clone();
        let url = app.url("praxis-a", &format!("/id/admin/events{q}"));
        async move {
            let r = admin.get(url).send().await.unwrap();
            assert_eq!(r.status(), 200);
            r.text().await.unwrap()
        }
    };
    let all = page(String::new()).await;
    assert!(tbody(&all).contains("anna Test") && tbody(&all).contains("ben Test"));
    let only = page(format!("?user={}", anna.0)).await;
    let rows = tbody(&only);
    assert!(rows.contains("anna Test") && rows.contains("Anmeldung erfolgreich"));
    assert!(
        !rows.contains("ben Test") && !rows.contains("chefin Test"),
        "{rows}"
    );
    assert!(only.contains(&format!("<option value=\"{}\" selected>", anna.0)));
    // With kind as well; and the form's "Alle" (empty values) is no filter.
    let failed = page(format!("?kind=login_failed&user={}", anna.0)).await;
    assert!(
        !tbody(&failed).contains("<tr>"),
        "anna has no failed logins"
    );
    let any = page("?kind=&user=".into()).await;
    assert!(tbody(&any).contains("ben Test") && tbody(&any).contains("anna Test"));
    // Only admins see it.
    let c = client();
    assert_eq!(
        app.login(&c, "praxis-a", "anna", PASSWORD).await.status(),
        303
    );
    let r = c
        .get(app.url("praxis-a", "/id/admin/events"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_and_client_forms_need_the_csrf_token() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    app.create_user("praxis-a", "chefin", PASSWORD, true).await;
    let admin = client();
    assert_eq!(
        app.login(&admin, "praxis-a", "chefin", PASSWORD)
            .await
            .status(),
        303
    );
    let z = register(&app, "praxis-a", tool("Zeiterfassung", true, false)).await;
    let zid = z.client_id.clone();
    let anna = app.create_user("praxis-a", "anna", PASSWORD, false).await;
    let (zid2, now) = (zid.clone(), app.clock.now());
    app.idp_db("praxis-a", move |conn| {
        kollegium_idp::oidc::consent::remember(conn, anna, &zid2, &["openid".into()], now).unwrap();
    })
    .await;
    let c = client();
    assert_eq!(
        app.login(&c, "praxis-a", "anna", PASSWORD).await.status(),
        303
    );

    let posts: Vec<(&reqwest::Client, String, Fields)> = vec![
        (&c, format!("/id/account/apps/{zid}/revoke"), vec![]),
        (
            &admin,
            "/id/admin/clients".into(),
            vec![
                ("name", "Angreifer"),
                ("kind", "confidential"),
                ("redirect_uris", "https://evil.example/cb"),
            ],
        ),
        (
            &admin,
            format!("/id/admin/clients/{zid}"),
            vec![
                ("name", "Umbenannt"),
                ("redirect_uris", "https://evil.example/cb"),
            ],
        ),
        (&admin, format!("/id/admin/clients/{zid}/disable"), vec![]),
        (&admin, format!("/id/admin/clients/{zid}/rotate"), vec![]),
    ];
    for (who, path, fields) in &posts {
        for token in [None, Some("falsch")] {
            let mut form = fields.clone();
            if let Some(t) = token {
                form.push(("csrf_token", t));
            }
            let r = who
                .post(app.url("praxis-a", path))
                .form(&form)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 403, "{path} with token {token:?}");
        }
    }
    // Nothing happened: the consent is there, the client unchanged, enabled, and its
    // secret still works; no new client.
    let apps = c
        .get(app.url("praxis-a", "/id/account/apps"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(apps.contains("Zeiterfassung"));
    let list = admin
        .get(app.url("praxis-a", "/id/admin/clients"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        list.contains("Zeiterfassung")
            && !list.contains("Angreifer")
            && !list.contains("Umbenannt")
    );
    let r = authorize(&app, &c, "praxis-a", &auth_params(&zid, "openid")).await;
    assert_eq!(r.status(), 302, "still enabled, consent still remembered");
    let (s, b, _) = post_form(
        &app,
        "praxis-a",
        "/id/token",
        &[("grant_type", "client_credentials")],
        Some(creds(&z)),
    )
    .await;
    assert_eq!(s, 200, "the secret was not rotated: {b}");
}
