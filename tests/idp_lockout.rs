//! Lockout without a lever: locks per account and address, a ceiling per account that a
//! known device with a second factor gets past, the owner told by mail; the current
//! password at `/id/account/password` throttled like a login; device identifiers only
//! from the server.

use std::sync::Arc;

use kollegium_idp::devices::{self, DeviceStatus};
use kollegium_idp::policy::{self, DevicePolicy};
use kollegium_idp::totp;
use kollegium_idp::users::UserId;
use kollegium_tenants::clock::ManualClock;

use crate::client_address::{client_from, events};
use crate::harness::{TestApp, form_csrf, raw_client, set_cookie};
use crate::idp_mfa::{PW, T0, clock_now, enrol, logout};

const LOCKED: &str = "Zu viele Fehlversuche";

async fn status(app: &TestApp, c: &reqwest::Client, login: &str, pw: &str) -> u16 {
    app.login(c, "praxis-a", login, pw).await.status().as_u16()
}

/// Recipients of queued `account_locked` mails.
async fn lock_mails(app: &TestApp) -> Vec<String> {
    app.mail_rows("praxis-a")
        .await
        .into_iter()
        .filter(|m| m.kind == "account_locked")
        .map(|m| m.recipient)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guessing_address_cannot_lock_the_owner_out_and_the_owner_is_told() {
    let app = TestApp::spawn_with(|c| {
        c.trusted_proxies = vec!["127.0.0.1".into()];
        c.idp.max_delay_ms = 50;
    })
    .await;
    app.create_practice("praxis-a").await;
    let chefin = app.create_user("praxis-a", "chefin", PW, true).await;
    // The owner is signed in at her desk.
    let desk = client_from("192.0.2.10");
    assert_eq!(status(&app, &desk, "chefin", PW).await, 303);

    // A member (whose screen shows every user name) guesses the owner's password.
    let attacker = client_from("203.0.113.66");
    let mut statuses = Vec::new();
    for i in 0..8 {
        statuses.push(status(&app, &attacker, "chefin", &format!("geraten-{i}")).await);
    }
    assert_eq!(statuses, [401, 401, 401, 401, 401, 429, 429, 429]);
    // Even the right password does not help the guessing address now.
    assert_eq!(status(&app, &attacker, "chefin", PW).await, 429);

    // The owner's open session lives on, and she signs in anywhere else as usual.
    let r = desk
        .get(app.url("praxis-a", "/id/account"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let laptop = client_from("198.51.100.20");
    assert_eq!(status(&app, &laptop, "chefin", PW).await, 303);
    let r = laptop
        .get(app.url("praxis-a", "/id/account"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // She is told once (by mail, and in the security log with the guessing address),
    // however often the address keeps trying.
    assert_eq!(lock_mails(&app).await, ["chefin@praxis-a.example"]);
    let ev = events(&app, "praxis-a").await;
    let locks: Vec<_> = ev.iter().filter(|(k, ..)| k == "lockout").collect();
    assert_eq!(locks.len(), 1, "{ev:?}");
    assert_eq!(locks[0].1.as_deref(), Some("203.0.113.66"));
    // The admins see the lock and can lift it for the guessing address too.
    assert!(app.user("praxis-a", chefin).await.locked_until.is_some());
}

/// Approves every pending device of the practice (as an admin would on the devices page).
async fn approve_all(app: &TestApp) {
    app.idp_db("praxis-a", |c| {
        for d in devices::list(c).unwrap() {
            if d.status == DeviceStatus::Pending {
                devices::set_status(c, d.id, DeviceStatus::Approved, d.user, T0).unwrap();
            }
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_account_ceiling_stops_many_addresses_but_not_a_known_device_with_a_code() {
    let clock = Arc::new(ManualClock::new(T0));
    let app = TestApp::spawn_with_clock(clock.clone(), |c| {
        c.trusted_proxies = vec!["127.0.0.1".into()];
        c.idp.account_lockout_threshold = 8;
        c.idp.max_delay_ms = 50;
    })
    .await;
    app.create_practice("praxis-a").await;
    app.create_user("praxis-a", "anna", PW, false).await;
    app.idp_db("praxis-a", |c| {
        policy::set_devices(c, DevicePolicy::Approval).unwrap()
    })
    .await;
    // Anna's own PC: approved device, second factor enrolled.
    let pc = client_from("198.51.100.20");
    assert_eq!(status(&app, &pc, "anna", PW).await, 303);
    approve_all(&app).await;
    let r = pc
        .get(app.url("praxis-a", "/id/login/device?next=%2Fid%2F"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["location"], "/id/");
    let (secret, _) = enrol(&app, &pc, "praxis-a", T0).await;
    logout(&app, &pc, "praxis-a").await;

    // Guessing from many addresses, each staying under its own limit of five.
    for ip in ["203.0.113.1", "203.0.113.2"] {
        let c = client_from(ip);
        for i in 0..4 {
            assert_eq!(status(&app, &c, "anna", &format!("geraten-{i}")).await, 401);
        }
    }
    // The ceiling (8) is reached: any further address is refused, the right password
    // included.
    let c = client_from("203.0.113.3");
    assert_eq!(status(&app, &c, "anna", "geraten-9").await, 429);
    let c = client_from("203.0.113.4");
    let r = app.login(&c, "praxis-a", "anna", PW).await;
    assert_eq!(r.status(), 429);
    assert!(r.text().await.unwrap().contains(LOCKED));
    // So is a browser that is not her approved device, even from her usual address.
    let other = client_from("198.51.100.20");
    assert_eq!(status(&app, &other, "anna", PW).await, 429);

    // Her approved PC with password and code gets in.
    clock.advance(30);
    let code = totp::code_at(&secret, clock_now(&clock));
    let r = app.login(&pc, "praxis-a", "anna", PW).await;
    assert_eq!(r.status(), 303, "known device: the password is checked");
    let r = app
        .post_form(
            &pc,
            "praxis-a",
            "/id/login/totp",
            "/id/login/totp",
            &[("code", code.as_str()), ("next", "/id/")],
        )
        .await;
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/id/");
    let r = pc
        .get(app.url("praxis-a", "/id/account"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    assert_eq!(lock_mails(&app).await, ["anna@praxis-a.example"]);
    let ev = events(&app, "praxis-a").await;
    assert!(
        ev.iter().any(|(k, ip, d)| k == "lockout"
            && ip.as_deref() == Some("203.0.113.3")
            && d == "Konto, alle unbekannten Geräte"),
        "{ev:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_current_passwords_are_throttled_and_recorded() {
    let app = TestApp::spawn_with(|c| c.idp.max_delay_ms = 50).await;
    app.create_practice("praxis-a").await;
    app.create_user("praxis-a", "anna", PW, false).await;
    // A session someone else got hold of: it may use the account, not learn the password.
    let c = crate::harness::client();
    assert_eq!(status(&app, &c, "anna", PW).await, 303);
    let change = |current: String| {
        let (app, c) = (&app, &c);
        async move {
            let r = app
                .post_form(
                    c,
                    "praxis-a",
                    "/id/account",
                    "/id/account/password",
                    &[
                        ("current", current.as_str()),
                        ("password", "Neues-Passwort-fuer-Anna-7"),
                        ("password_repeat", "Neues-Passwort-fuer-Anna-7"),
                    ],
                )
                .await;
            let status = r.status().as_u16();
            (status, r.text().await.unwrap())
        }
    };
    for i in 0..5 {
        let (code, html) = change(format!("geraten-{i}")).await;
        assert_eq!(code, 400);
        assert!(html.contains("Das bisherige Passwort ist falsch."));
    }
    let (code, html) = change("geraten-5".into()).await;
    assert_eq!(code, 429);
    assert!(html.contains(LOCKED));
    // Now not even the right one is checked, and the login form from this address
    // counts on the same keys.
    let (code, _) = change(PW.into()).await;
    assert_eq!(code, 429);
    let fresh = crate::harness::client();
    assert_eq!(status(&app, &fresh, "anna", PW).await, 429);

    let ev = events(&app, "praxis-a").await;
    let failed = ev
        .iter()
        .filter(|(k, _, d)| k == "login_failed" && d == "password_change")
        .count();
    assert_eq!(failed, 5, "{ev:?}");
    assert_eq!(ev.iter().filter(|(k, ..)| k == "lockout").count(), 1);
    assert_eq!(lock_mails(&app).await, ["anna@praxis-a.example"]);
    // The session itself is not ended by the lock.
    let r = c
        .get(app.url("praxis-a", "/id/account"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

/// How many of `user`'s devices the cookie value `token` names (0 or 1).
async fn device_rows_for(app: &TestApp, user: UserId, token: String) -> usize {
    app.idp_db("praxis-a", move |c| {
        usize::from(devices::for_cookie(c, user, &token).unwrap().is_some())
    })
    .await
}

/// Logs `user` in with exactly the cookie header `device` (besides the CSRF cookie).
async fn login_with_device_cookie(app: &TestApp, user: &str, device: &str) -> reqwest::Response {
    let page = raw_client()
        .get(app.url("praxis-a", "/id/login"))
        .send()
        .await
        .unwrap();
    let csrf_cookie: Vec<String> = page
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok()?.split(';').next().map(str::to_owned))
        .collect();
    let token = form_csrf(&page.text().await.unwrap());
    let mut cookie = csrf_cookie.join("; ");
    if !device.is_empty() {
        cookie.push_str(&format!("; {device}"));
    }
    raw_client()
        .post(app.url("praxis-a", "/id/login"))
        .header("cookie", cookie)
        .form(&[
            ("csrf_token", token.as_str()),
            ("login", user),
            ("password", PW),
        ])
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_cookie_the_server_did_not_issue_is_replaced_not_adopted() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    let ben = app.create_user("praxis-a", "ben", PW, false).await;
    let carla = app.create_user("praxis-a", "carla", PW, false).await;
    app.idp_db("praxis-a", |c| {
        policy::set_devices(c, DevicePolicy::Approval).unwrap()
    })
    .await;

    // An attacker plants a value they know (well-formed, or not at all) in the browser.
    let chosen = "A".repeat(43);
    let planted = [
        format!("kollegium-device={chosen}"),
        "kollegium-device=".to_owned(),
        format!("kollegium-device={}", "x".repeat(4000)),
        "kollegium-device=../../etc".to_owned(),
    ];
    for cookie in &planted {
        let r = login_with_device_cookie(&app, "ben", cookie).await;
        assert_eq!(r.status(), 303, "{cookie:.40}");
        assert!(
            r.headers()["location"]
                .to_str()
                .unwrap()
                .starts_with("/id/login/device")
        );
        let minted = set_cookie(&r, "kollegium-device").expect("a fresh device cookie");
        let value = cookie.trim_start_matches("kollegium-device=");
        assert_ne!(minted, value);
        assert!(devices::well_formed(&minted), "{minted}");
        assert_eq!(device_rows_for(&app, ben, minted).await, 1);
    }
    // The chosen value never names a device of ben's.
    assert_eq!(device_rows_for(&app, ben, chosen.clone()).await, 0);
    // Each of the four logins got its own device.
    let all = app.idp_db("praxis-a", |c| devices::list(c).unwrap()).await;
    assert_eq!(all.len(), 4);

    // A practice PC shared by two accounts keeps the one cookie the server issued.
    let r = login_with_device_cookie(&app, "ben", "").await;
    let issued = set_cookie(&r, "kollegium-device").unwrap();
    let r = login_with_device_cookie(&app, "carla", &format!("kollegium-device={issued}")).await;
    assert_eq!(r.status(), 303);
    assert_eq!(
        set_cookie(&r, "kollegium-device"),
        None,
        "kept, not replaced"
    );
    assert_eq!(device_rows_for(&app, carla, issued).await, 1);
}
