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
    let home = admin
        .get(app.url("praxis-a", "/id/"))
        .send()
        .await
        .unwrap()
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
    let home = admin
        .get(app.url("praxis-a", "/id/"))
        .send()
        .await
        .unwrap()
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
