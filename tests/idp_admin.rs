//! Benutzerverwaltung: editing, disabling, deleting; who may do it; the security log.

use crate::harness::{TestApp, client, form_csrf_at};

async fn admin_client(app: &TestApp, slug: &str) -> reqwest::Client {
    app.create_user(slug, "chefin", "Sonnenblume-Kaffee-42", true)
        .await;
    let c = client();
    assert_eq!(
        app.login(&c, slug, "chefin", "Sonnenblume-Kaffee-42")
            .await
            .status(),
        303
    );
    c
}

async fn csrf_of(c: &reqwest::Client, url: String) -> String {
    form_csrf_at(c, url).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_edits_profile_roles_and_catalogue_values() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    let admin = admin_client(&app, "praxis-a").await;
    let id = app
        .create_user("praxis-a", "bernd", "Wolkenkratzer-Tee-77", false)
        .await;
    let url = app.url("praxis-a", &format!("/id/admin/users/{}", id.0));
    let token = csrf_of(&admin, url.clone()).await;

    let form = [
        ("csrf_token", token.as_str()),
        ("display_name", "Bernd Beispiel"),
        ("username", "bernd"),
        ("email", "bernd@praxis-a.example"),
        ("roles", "arzt"),
        ("roles", "abrechnung"),
        ("specialty", "kardiologie"),
        ("kv_region", "kv-westfalen-lippe"),
        ("work_areas", "Labor, Empfang"),
    ];
    // An unknown KV region id is refused with the reason.
    let r = admin.post(&url).form(&form).send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("Unbekannte KV-Region"));

    let mut ok = form.to_vec();
    ok[7] = ("kv_region", "kv-wl");
    let r = admin.post(&url).form(&ok).send().await.unwrap();
    assert_eq!(r.status(), 303);
    let page = admin.get(&url).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("Bernd Beispiel"));
    assert!(page.contains(r#"value="kv-wl" selected"#));
    assert!(
        page.contains(r#"value="arzt" checked"#) && page.contains(r#"value="abrechnung" checked"#)
    );
    assert!(page.contains("Labor, Empfang"));

    // The list shows the role labels.
    let list = admin
        .get(app.url("praxis-a", "/id/admin/users"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        list.contains("Abrechnung, Ärzt:in") || list.contains("Ärzt:in, Abrechnung"),
        "{list}"
    );

    // Duplicate user name refused.
    let mut dup = ok.clone();
    dup[2] = ("username", "chefin");
    let r = admin.post(&url).form(&dup).send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("bereits vergeben"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabling_ends_sessions_at_once_and_delete_needs_confirmation() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    let admin = admin_client(&app, "praxis-a").await;
    let id = app
        .create_user("praxis-a", "bernd", "Wolkenkratzer-Tee-77", false)
        .await;
    let bernd = client();
    assert_eq!(
        app.login(&bernd, "praxis-a", "bernd", "Wolkenkratzer-Tee-77")
            .await
            .status(),
        303
    );
    assert_eq!(
        bernd
            .get(app.url("praxis-a", "/id/account"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    let user_url = app.url("praxis-a", &format!("/id/admin/users/{}", id.0));
    let token = csrf_of(&admin, user_url.clone()).await;
    let r = admin
        .post(format!("{user_url}/disable"))
        .form(&[("csrf_token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(
        bernd
            .get(app.url("praxis-a", "/id/account"))
            .send()
            .await
            .unwrap()
            .status(),
        303,
        "session ended"
    );
    let r = app
        .login(&client(), "praxis-a", "bernd", "Wolkenkratzer-Tee-77")
        .await;
    assert_eq!(r.status(), 401);
    assert!(r.text().await.unwrap().contains("deaktiviert"));

    let r = admin
        .post(format!("{user_url}/enable"))
        .form(&[("csrf_token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(
        app.login(&client(), "praxis-a", "bernd", "Wolkenkratzer-Tee-77")
            .await
            .status(),
        303
    );

    // Delete without the right confirmation is refused and changes nothing.
    let r = admin
        .post(format!("{user_url}/delete"))
        .form(&[("csrf_token", token.as_str()), ("confirm", "bern")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(admin.get(&user_url).send().await.unwrap().status(), 200);
    let r = admin
        .post(format!("{user_url}/delete"))
        .form(&[("csrf_token", token.as_str()), ("confirm", "bernd")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(admin.get(&user_url).send().await.unwrap().status(), 404);
    assert_eq!(
        app.login(&client(), "praxis-a", "bernd", "Wolkenkratzer-Tee-77")
            .await
            .status(),
        401
    );

    // The admin cannot disable or delete themselves.
    let me = app.url("praxis-a", "/id/admin/users");
    let list = admin.get(&me).send().await.unwrap().text().await.unwrap();
    let own_id = list
        .split("/id/admin/users/")
        .skip(1)
        .map(|s| s.split('"').next().unwrap())
        .find(|s| s.chars().all(|c| c.is_ascii_digit()))
        .unwrap()
        .to_owned();
    let r = admin
        .post(app.url("praxis-a", &format!("/id/admin/users/{own_id}/disable")))
        .form(&[("csrf_token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    // The security log shows what happened, and filters.
    let log = admin
        .get(app.url("praxis-a", "/id/admin/events?kind=user_disabled"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(log.contains("<td data-label=\"Ereignis\">Benutzer deaktiviert</td>"));
    assert!(
        !log.contains("<td data-label=\"Ereignis\">Benutzer gelöscht</td>"),
        "the filter shows only the chosen kind"
    );
    let all = admin
        .get(app.url("praxis-a", "/id/admin/events"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        all.contains("<td data-label=\"Ereignis\">Benutzer gelöscht</td>")
            && all.contains("<td data-label=\"Ereignis\">Anmeldung erfolgreich</td>")
    );
    assert!(!log.contains("Wolkenkratzer"), "no password in the log");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_admins_of_the_same_practice_reach_administration() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    app.create_practice("praxis-b").await;
    let id_a = app
        .create_user("praxis-a", "bernd", "Wolkenkratzer-Tee-77", false)
        .await;
    let admin_b = admin_client(&app, "praxis-b").await;
    let plain = client();
    assert_eq!(
        app.login(&plain, "praxis-a", "bernd", "Wolkenkratzer-Tee-77")
            .await
            .status(),
        303
    );

    for path in [
        "/id/admin/users",
        "/id/admin/users/new",
        "/id/admin/devices",
        "/id/admin/events",
    ] {
        // Not signed in: to the login page.
        let r = client()
            .get(app.url("praxis-a", path))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303, "{path}");
        // Signed in without admin rights: forbidden.
        let r = plain.get(app.url("praxis-a", path)).send().await.unwrap();
        assert_eq!(r.status(), 403, "{path}");
        // Practice B's admin session means nothing at A.
        let r = admin_b.get(app.url("praxis-a", path)).send().await.unwrap();
        assert_eq!(r.status(), 303, "{path}");
    }
    // B's admin using A's user id on B's host reaches only B's own database.
    let r = admin_b
        .get(app.url("praxis-b", &format!("/id/admin/users/{}", id_a.0 + 100)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let token = csrf_of(&plain, app.url("praxis-a", "/id/account")).await;
    let r = plain
        .post(app.url("praxis-a", &format!("/id/admin/users/{}/disable", id_a.0)))
        .form(&[("csrf_token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // Malformed bodies and unknown actions.
    let tb = csrf_of(&admin_b, app.url("praxis-b", "/id/admin/users/new")).await;
    let r = admin_b
        .post(app.url("praxis-b", "/id/admin/users"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-csrf-token", &tb)
        .body("%%%=&&=%zz")
        .send()
        .await
        .unwrap();
    assert!(r.status() == 400, "{}", r.status());
    let r = admin_b
        .post(app.url("praxis-b", "/id/admin/users/1/frobnicate"))
        .form(&[("csrf_token", tb.as_str())])
        .send()
        .await
        .unwrap();
    // An unknown action is refused at the edge, before any account is looked up.
    assert_eq!(r.status(), 400);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("Diese Aktion gibt es nicht.")
    );
    let long = "x".repeat(300);
    let r = admin_b
        .post(app.url("praxis-b", "/id/admin/users"))
        .form(&[
            ("csrf_token", tb.as_str()),
            ("display_name", "X"),
            ("username", long.as_str()),
            ("email", "x@y.de"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}
