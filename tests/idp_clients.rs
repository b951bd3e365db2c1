//! Client registry in the admin UI, and "Verbundene Anwendungen" for users.

use crate::harness::{TestApp, client, form_csrf};

const PW: &str = "Sonnenblume-Kaffee-42";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_register_rotate_and_disable_clients() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    app.create_practice("praxis-b").await;
    app.create_user("praxis-a", "chefin", PW, true).await;
    app.create_user("praxis-a", "mia", PW, false).await;
    app.create_user("praxis-b", "boss", PW, true).await;
    let admin = client();
    assert_eq!(
        app.login(&admin, "praxis-a", "chefin", PW).await.status(),
        303
    );

    let list = app.url("praxis-a", "/id/admin/clients");
    let page = admin.get(&list).send().await.unwrap().text().await.unwrap();
    assert!(
        page.contains("Arbeitsplatz"),
        "the platform's own client is listed"
    );
    let token = form_csrf(&page);
    // Bad redirect addresses are refused with the reason.
    let r = admin
        .post(&list)
        .form(&[
            ("csrf_token", token.as_str()),
            ("name", "Dienstplan"),
            ("kind", "confidential"),
            ("redirect_uris", "http://dienstplan.example/cb"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = admin
        .post(&list)
        .form(&[
            ("csrf_token", token.as_str()),
            ("name", "Dienstplan"),
            ("kind", "confidential"),
            ("redirect_uris", "https://dienstplan.example/cb"),
            ("launch_url", "https://dienstplan.example/"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert!(html.contains("wird nur jetzt angezeigt"));
    let id = html
        .split("Client-ID:</strong> <code>")
        .nth(1)
        .unwrap()
        .split('<')
        .next()
        .unwrap()
        .to_owned();
    let secret = html
        .split("class=\"secret\">")
        .nth(1)
        .unwrap()
        .split('<')
        .next()
        .unwrap()
        .to_owned();
    assert!(secret.len() >= 40);
    // Shown once: the list does not show it again.
    let again = admin.get(&list).send().await.unwrap().text().await.unwrap();
    assert!(again.contains(&id) && !again.contains(&secret));
    // The tile appears on the start page.
    // The one start page (the workspace's; the IdP's address leads there).
    let home = app
        .follow(&admin, "praxis-a", app.url("praxis-a", "/id/"))
        .await
        .text()
        .await
        .unwrap();
    assert!(home.contains("Dienstplan") && home.contains(&format!("/id/launch/{id}")));

    let rotated = admin
        .post(format!("{list}/{id}/rotate"))
        .form(&[("csrf_token", token.as_str())])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let new_secret = rotated
        .split("class=\"secret\">")
        .nth(1)
        .unwrap()
        .split('<')
        .next()
        .unwrap()
        .to_owned();
    assert_ne!(new_secret, secret);
    // At the token endpoint the old secret is worthless at once, the new one works.
    let grant = |secret: String| {
        let (app, id) = (&app, id.clone());
        async move {
            crate::oidc_support::post_form(
                app,
                "praxis-a",
                "/id/token",
                &[("grant_type", "client_credentials")],
                Some((id.as_str(), secret.as_str())),
            )
            .await
        }
    };
    let (s, body, www) = grant(secret.clone()).await;
    assert_eq!(
        (s, body["error"].as_str()),
        (401, Some("invalid_client")),
        "{body}"
    );
    assert!(www.is_some_and(|w| w.starts_with("Basic")));
    let (s, body, _) = grant(new_secret.clone()).await;
    assert_eq!(s, 200, "{body}");
    assert!(body["access_token"].is_string());
    assert_eq!(
        admin
            .post(format!("{list}/{id}/disable"))
            .form(&[("csrf_token", token.as_str())])
            .send()
            .await
            .unwrap()
            .status(),
        303
    );
    // The one start page (the workspace's; the IdP's address leads there).
    let home = app
        .follow(&admin, "praxis-a", app.url("praxis-a", "/id/"))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        !home.contains("Dienstplan"),
        "a disabled client has no tile"
    );
    // The workspace's own registration cannot be switched off here.
    assert_eq!(
        admin
            .post(format!("{list}/platform/disable"))
            .form(&[("csrf_token", token.as_str())])
            .send()
            .await
            .unwrap()
            .status(),
        400
    );
    assert_eq!(
        admin
            .post(format!("{list}/unbekannt/disable"))
            .form(&[("csrf_token", token.as_str())])
            .send()
            .await
            .unwrap()
            .status(),
        404
    );

    // Non-admins, other practices' admins and anonymous visitors get nothing.
    let mia = client();
    assert_eq!(app.login(&mia, "praxis-a", "mia", PW).await.status(), 303);
    assert_eq!(mia.get(&list).send().await.unwrap().status(), 403);
    assert_eq!(client().get(&list).send().await.unwrap().status(), 303);
    let boss = client();
    assert_eq!(app.login(&boss, "praxis-b", "boss", PW).await.status(), 303);
    let b_list = boss
        .get(app.url("praxis-b", "/id/admin/clients"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !b_list.contains(&id),
        "practice B does not see practice A's clients"
    );
    let tb = form_csrf(&b_list);
    assert_eq!(
        boss.post(app.url("praxis-b", &format!("/id/admin/clients/{id}/enable")))
            .form(&[("csrf_token", tb.as_str())])
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_see_and_revoke_their_connected_applications() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    let mia_id = app.create_user("praxis-a", "mia", PW, false).await;
    app.idp_db("praxis-a", move |conn| {
        use kollegium_idp::oidc::{clients, consent};
        let mut c = clients::NewClient::parse(
            "Zeiterfassung",
            &["https://zeit.example/cb".to_owned()],
            true,
        )
        .unwrap();
        c.client_id = Some("zeit".into());
        clients::create(conn, &c, 1).unwrap().unwrap();
        consent::remember(
            conn,
            mia_id,
            "zeit",
            &["openid".into(), "profile".into()],
            1,
        )
        .unwrap();
    })
    .await;
    let mia = client();
    assert_eq!(app.login(&mia, "praxis-a", "mia", PW).await.status(), 303);
    let page = mia
        .get(app.url("praxis-a", "/id/account/apps"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("Zeiterfassung") && page.contains("Profil"));
    let token = form_csrf(&page);
    let r = mia
        .post(app.url("praxis-a", "/id/account/apps/zeit/revoke"))
        .form(&[("csrf_token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let page = mia
        .get(app.url("praxis-a", "/id/account/apps"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!page.contains("Zeiterfassung"));
    assert!(
        client()
            .get(app.url("praxis-a", "/id/account/apps"))
            .send()
            .await
            .unwrap()
            .status()
            == 303
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_edit_addresses_scopes_and_signing_algorithm_of_a_client() {
    use crate::oidc_support::{browser, code_with_consent, exchange, register, tool};
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    app.create_practice("praxis-b").await;
    app.create_user("praxis-a", "chefin", PW, true).await;
    app.create_user("praxis-a", "mia", PW, false).await;
    app.create_user("praxis-b", "boss", PW, true).await;
    let admin = client();
    app.login(&admin, "praxis-a", "chefin", PW).await;
    let t = register(&app, "praxis-a", tool("Dienstplan", true, false)).await;
    let creds = (t.client_id.as_str(), t.secret.as_deref().unwrap());
    let edit = app.url("praxis-a", &format!("/id/admin/clients/{}", t.client_id));

    let page = admin.get(&edit).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let page = page.text().await.unwrap();
    assert!(
        page.contains("https://tool.example/cb"),
        "current addresses shown"
    );
    assert!(page.contains("Dienstplan bearbeiten"));
    let token = form_csrf(&page);

    // Invalid input is refused with its reason and changes nothing.
    let bad = admin
        .post(&edit)
        .form(&[
            ("csrf_token", token.as_str()),
            ("name", "Dienstplan"),
            (
                "redirect_uris",
                "https://tool.example/cb\nhttp://evil.example/cb",
            ),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    assert!(bad.text().await.unwrap().contains("http is only allowed"));
    let bad = admin
        .post(&edit)
        .form(&[
            ("csrf_token", token.as_str()),
            ("name", "Dienstplan"),
            ("redirect_uris", "https://tool.example/cb"),
            ("signing_alg", "HS256"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    // Without the CSRF token: refused.
    let r = admin
        .post(&edit)
        .form(&[("name", "X"), ("redirect_uris", "https://x.example/cb")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let mia = browser(&app, "praxis-a", "mia2").await;
    let c = code_with_consent(&app, &mia, "praxis-a", creds.0, "openid profile").await;
    let (s, before) = exchange(&app, "praxis-a", creds, &c, None).await;
    assert_eq!(s, 200);
    let alg_of = |jwt: &str| crate::oidc_support::claims_header(jwt)["alg"].clone();
    assert_eq!(alg_of(before["id_token"].as_str().unwrap()), "RS256");

    // A valid edit: a second redirect address, fewer scopes, ES256.
    let r = admin
        .post(&edit)
        .form(&[
            ("csrf_token", token.as_str()),
            ("name", "Dienstplan neu"),
            (
                "redirect_uris",
                "https://tool.example/cb\nhttps://tool.example/cb2",
            ),
            ("scopes", "openid"),
            ("scopes", "profile"),
            ("signing_alg", "ES256"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let list = admin
        .get(app.url("praxis-a", "/id/admin/clients"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(list.contains("Dienstplan neu") && list.contains("ES256"));
    let c = code_with_consent(&app, &mia, "praxis-a", creds.0, "openid profile").await;
    let (s, after) = exchange(&app, "praxis-a", creds, &c, None).await;
    assert_eq!(s, 200, "{after}");
    assert_eq!(alg_of(after["id_token"].as_str().unwrap()), "ES256");
    assert_eq!(alg_of(after["access_token"].as_str().unwrap()), "ES256");
    // The scope taken away is refused now.
    let r = crate::oidc_support::authorize(
        &app,
        &mia,
        "praxis-a",
        &[
            ("response_type", "code"),
            ("client_id", creds.0),
            ("redirect_uri", "https://tool.example/cb2"),
            ("scope", "openid email"),
            ("state", "s"),
        ],
    )
    .await;
    let loc = crate::oidc_support::location(&r);
    assert!(
        loc.starts_with("https://tool.example/cb2?error=invalid_scope"),
        "{loc}"
    );

    // A member who is no admin, another practice's admin, the first-party client and an
    // unknown id: nothing to edit.
    let member = client();
    app.login(&member, "praxis-a", "mia", PW).await;
    assert_eq!(member.get(&edit).send().await.unwrap().status(), 403);
    let other = client();
    app.login(&other, "praxis-b", "boss", PW).await;
    let foreign = app.url("praxis-b", &format!("/id/admin/clients/{}", t.client_id));
    assert_eq!(other.get(&foreign).send().await.unwrap().status(), 404);
    // Nor can B's admin change A's client through B's address.
    let b_page = other
        .get(app.url("praxis-b", "/id/admin/clients"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let r = other
        .post(&foreign)
        .form(&[
            ("csrf_token", form_csrf(&b_page).as_str()),
            ("name", "Übernommen"),
            ("redirect_uris", "https://evil.example/cb"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let list = admin
        .get(app.url("praxis-a", "/id/admin/clients"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(list.contains("Dienstplan neu") && !list.contains("Übernommen"));
    for id in ["platform", "gibt-es-nicht"] {
        let u = app.url("praxis-a", &format!("/id/admin/clients/{id}"));
        assert_eq!(admin.get(&u).send().await.unwrap().status(), 404, "{id}");
    }
}
