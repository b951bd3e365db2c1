//! How refresh tokens end: absolute expiry, revocation, password change, admin disable,
//! withdrawn consent; a disabled client gets an error page and `invalid_client`.

use crate::apps::oidc::*;
use crate::harness::{TestApp, client};
use crate::idp_mfa::{T0, app_at};
use crate::oidc_support::*;

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
    let mut form = consent_fields(&html);
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
