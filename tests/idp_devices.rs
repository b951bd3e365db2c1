//! Device approval: a fresh browser waits for an admin, continues once approved, and a
//! suspended device ends its sessions.

use crate::harness::{TestApp, client};
use crate::idp_mfa::PW;

async fn event_count(app: &TestApp, kind: &'static str) -> i64 {
    app.idp_db("praxis-a", move |c| {
        kollegium_idp::events::count_kind(c, kind).unwrap()
    })
    .await
}

/// Device ids on the admin page that offer `action`.
async fn devices_with(app: &TestApp, admin: &reqwest::Client, action: &str) -> Vec<String> {
    let html = admin
        .get(app.url("praxis-a", "/id/admin/devices"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // Buttons post the action; destructive ones lead to their question first (same path).
    html.split("=\"/id/admin/devices/")
        .skip(1)
        .filter_map(|p| p.split_once('"').map(|(a, _)| a.to_owned()))
        .filter_map(|a| a.strip_suffix(&format!("/{action}")).map(str::to_owned))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_device_waits_for_approval_and_a_suspended_one_is_signed_out() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    app.create_user("praxis-a", "chefin", PW, true).await;
    app.create_user("praxis-a", "ben", PW, false).await;
    let admin = client();
    assert_eq!(
        app.login(&admin, "praxis-a", "chefin", PW).await.status(),
        303
    );
    let r = app
        .post_form(
            &admin,
            "praxis-a",
            "/id/admin/devices",
            "/id/admin/policies",
            &[("device_policy", "approval"), ("mfa_policy", "optional")],
        )
        .await;
    assert_eq!(r.status(), 303);

    // A fresh client: the password is right, but the device has to wait.
    let c = client();
    let r = app.login(&c, "praxis-a", "ben", PW).await;
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/id/login/device?next=%2Fid%2F");
    let html = c
        .get(app.url("praxis-a", "/id/login/device?next=%2Fid%2F"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("Dieses Gerät wartet auf Freigabe"));
    assert_eq!(
        c.get(app.url("praxis-a", "/id/account"))
            .send()
            .await
            .unwrap()
            .status(),
        303
    );
    assert_eq!(event_count(&app, "device_pending").await, 1);

    // The admin approves; the waiting user continues on the next check.
    let pending = devices_with(&app, &admin, "approve").await;
    assert_eq!(pending.len(), 1);
    let id = &pending[0];
    let r = app
        .post_form(
            &admin,
            "praxis-a",
            "/id/admin/devices",
            &format!("/id/admin/devices/{id}/approve"),
            &[],
        )
        .await;
    assert_eq!(r.status(), 303);
    let r = c
        .get(app.url("praxis-a", "/id/login/device?next=%2Fid%2F"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/id/");
    assert_eq!(
        c.get(app.url("praxis-a", "/id/account"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    // The approved browser signs in directly next time.
    crate::idp_mfa::logout(&app, &c, "praxis-a").await;
    let r = app.login(&c, "praxis-a", "ben", PW).await;
    assert_eq!(r.headers()["location"], "/id/");

    // Suspending the device ends its session at once and keeps it out.
    assert_eq!(
        devices_with(&app, &admin, "suspend").await,
        vec![id.clone()]
    );
    let r = app
        .post_form(
            &admin,
            "praxis-a",
            "/id/admin/devices",
            &format!("/id/admin/devices/{id}/suspend"),
            &[],
        )
        .await;
    assert_eq!(r.status(), 303);
    assert_eq!(
        c.get(app.url("praxis-a", "/id/account"))
            .send()
            .await
            .unwrap()
            .status(),
        303
    );
    let r = app.login(&c, "praxis-a", "ben", PW).await;
    assert_ne!(r.status(), 303);
    assert!(r.text().await.unwrap().contains("gesperrt"));
    // The admin is still signed in on their own (pre-policy) session.
    assert_eq!(
        admin
            .get(app.url("praxis-a", "/id/admin/devices"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

/// The rows of the admins' security log.
async fn logged(app: &TestApp, admin: &reqwest::Client) -> String {
    let html = admin
        .get(app.url("praxis-a", "/id/admin/events"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let start = html.find("<tbody>").unwrap();
    html[start..start + html[start..].find("</tbody>").unwrap()].to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejecting_renaming_and_removing_devices_is_recorded() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    app.create_user("praxis-a", "chefin", PW, true).await;
    app.create_user("praxis-a", "ben", PW, false).await;
    let admin = client();
    assert_eq!(
        app.login(&admin, "praxis-a", "chefin", PW).await.status(),
        303
    );
    let act = |id: String, what: &'static str, fields: Vec<(&'static str, &'static str)>| {
        let (app, admin) = (&app, &admin);
        async move {
            let r = app
                .post_form(
                    admin,
                    "praxis-a",
                    "/id/admin/devices",
                    &format!("/id/admin/devices/{id}/{what}"),
                    &fields,
                )
                .await;
            assert_eq!(r.status(), 303, "{what}");
        }
    };
    let r = app
        .post_form(
            &admin,
            "praxis-a",
            "/id/admin/devices",
            "/id/admin/policies",
            &[("device_policy", "approval"), ("mfa_policy", "optional")],
        )
        .await;
    assert_eq!(r.status(), 303);

    // Rejected: the waiting browser is told, and cannot sign in with that device.
    let c1 = client();
    assert_eq!(app.login(&c1, "praxis-a", "ben", PW).await.status(), 303);
    let pending = devices_with(&app, &admin, "reject").await;
    assert_eq!(pending.len(), 1);
    act(pending[0].clone(), "reject", vec![]).await;
    let r = c1
        .get(app.url("praxis-a", "/id/login/device?next=%2Fid%2F"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "the waiting login has ended");
    assert!(
        r.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with("/id/login")
    );
    let r = app.login(&c1, "praxis-a", "ben", PW).await;
    assert_ne!(r.status(), 303);
    assert!(r.text().await.unwrap().contains("gesperrt"));

    // Another browser: approved, named, then removed (which signs it out).
    let c2 = client();
    assert_eq!(app.login(&c2, "praxis-a", "ben", PW).await.status(), 303);
    let id = devices_with(&app, &admin, "approve").await[0].clone();
    act(id.clone(), "approve", vec![]).await;
    let r = c2
        .get(app.url("praxis-a", "/id/login/device?next=%2Fid%2F"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["location"], "/id/");
    act(id.clone(), "rename", vec![("name", "Empfang 1")]).await;
    let list = admin
        .get(app.url("praxis-a", "/id/admin/devices"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(list.contains("<strong>Empfang 1</strong>"));
    act(id.clone(), "remove", vec![]).await;
    assert!(!devices_with(&app, &admin, "remove").await.contains(&id));
    assert_eq!(
        c2.get(app.url("praxis-a", "/id/account"))
            .send()
            .await
            .unwrap()
            .status(),
        303,
        "a removed device's session ends"
    );

    // Every decision is in the admins' security log, with who did it to whom.
    for kind in [
        "device_rejected",
        "device_approved",
        "device_renamed",
        "device_removed",
    ] {
        assert_eq!(event_count(&app, kind).await, 1, "{kind}");
    }
    let rows = logged(&app, &admin).await;
    for label in [
        "Gerät abgelehnt",
        "Gerät freigegeben",
        "Gerät benannt",
        "Gerät entfernt",
        "Empfang 1",
    ] {
        assert!(rows.contains(label), "{label} in {rows}");
    }
    let renamed = rows
        .split("<tr>")
        .find(|r| r.contains("Gerät benannt"))
        .unwrap();
    assert!(renamed.contains("ben Test") && renamed.contains("chefin Test"));
}
