//! Administration pages: the security log's user filter, CSRF on the client and app forms.

use crate::apps::oidc::*;
use crate::harness::{TestApp, client};
use crate::oidc_support::*;

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
