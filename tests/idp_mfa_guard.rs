//! Second factor under attack: wrong codes against the lockout, and a second factor of
//! one practice tried at another.

use kollegium_idp::totp;

use crate::harness::{client, form_csrf, raw_client, set_cookie};
use crate::idp_mfa::{PW, T0, app_at, clock_now, enrol, logout, status_of};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_codes_count_towards_the_lockout() {
    let (app, clock) = app_at(T0).await;
    app.create_practice("praxis-a").await;
    app.create_user("praxis-a", "anna", PW, false).await;
    let c = client();
    app.login(&c, "praxis-a", "anna", PW).await;
    let (secret, _) = enrol(&app, &c, "praxis-a", T0).await;
    logout(&app, &c, "praxis-a").await;
    clock.advance(30);

    let r = app.login(&c, "praxis-a", "anna", PW).await;
    assert_eq!(r.status(), 303);
    let page = c
        .get(app.url("praxis-a", "/id/login/totp"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let token = form_csrf(&page);
    let right = totp::code_at(&secret, clock_now(&clock));
    let mut statuses = Vec::new();
    let attempts = (0..12).map(|i| {
        let c = c.clone();
        let url = app.url("praxis-a", "/id/login/totp");
        let token = token.clone();
        let guess = format!("{:06}", (right.parse::<u32>().unwrap() + 1 + i) % 1_000_000);
        async move {
            c.post(url)
                .form(&[("csrf_token", token), ("code", guess)])
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    });
    for s in futures_util::future::join_all(attempts).await {
        statuses.push(s);
    }
    let checked = statuses.iter().filter(|s| **s == 401).count();
    assert!(checked <= 5, "{statuses:?}");
    assert!(
        statuses.iter().all(|s| [401, 429, 303].contains(s)),
        "{statuses:?}"
    );
    // The right code no longer helps: the account is locked, the pending login is gone.
    let r = c
        .post(app.url("praxis-a", "/id/login/totp"))
        .form(&[("csrf_token", token.as_str()), ("code", right.as_str())])
        .send()
        .await
        .unwrap();
    // Either refused outright or sent back to the password form (the pending login ended).
    assert!(
        r.status() == 429
            || r.headers()["location"]
                .to_str()
                .unwrap()
                .starts_with("/id/login?"),
        "locked: {}",
        r.status()
    );
    assert_eq!(
        c.get(app.url("praxis-a", "/id/account"))
            .send()
            .await
            .unwrap()
            .status(),
        303
    );
    assert_eq!(app.login(&c, "praxis-a", "anna", PW).await.status(), 429);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_factor_of_practice_a_is_useless_at_practice_b() {
    let (app, clock) = app_at(T0).await;
    app.create_practice("praxis-a").await;
    app.create_practice("praxis-b").await;
    let anna_a = app.create_user("praxis-a", "anna", PW, false).await;
    let anna_b = app.create_user("praxis-b", "anna", PW, false).await;
    let (ca, cb) = (client(), client());
    app.login(&ca, "praxis-a", "anna", PW).await;
    let (secret_a, codes_a) = enrol(&app, &ca, "praxis-a", T0).await;
    app.login(&cb, "praxis-b", "anna", PW).await;
    let (_secret_b, _) = enrol(&app, &cb, "praxis-b", T0).await;
    logout(&app, &cb, "praxis-b").await;
    clock.advance(30);

    // A's code and A's recovery code mean nothing at B.
    let now = clock_now(&clock);
    let r = app
        .login_totp(&cb, "praxis-b", "anna", PW, &totp::code_at(&secret_a, now))
        .await;
    assert_eq!(r.status(), 401);
    logout(&app, &cb, "praxis-b").await;
    let r = app
        .login_totp(&cb, "praxis-b", "anna", PW, &codes_a[0])
        .await;
    assert_eq!(r.status(), 401);

    // A's pending login cookie is not a pending login at B.
    logout(&app, &ca, "praxis-a").await;
    let r = app.login(&ca, "praxis-a", "anna", PW).await;
    let pending = format!("kollegium-id={}", set_cookie(&r, "kollegium-id").unwrap());
    let raw = raw_client();
    let r = raw
        .get(app.url("praxis-b", "/id/login/totp"))
        .header("cookie", &pending)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert!(
        r.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with("/id/login")
    );

    // A's stored (sealed) secret copied into B's database cannot be opened there.
    let sealed = app.user("praxis-a", anna_a).await.totp_secret.unwrap();
    app.idp_db("praxis-b", move |c| {
        kollegium_idp::users::set_totp(c, anna_b, Some(&sealed), None).unwrap()
    })
    .await;
    logout(&app, &cb, "praxis-b").await;
    clock.advance(30);
    let r = app
        .login_totp(
            &cb,
            "praxis-b",
            "anna",
            PW,
            &totp::code_at(&secret_a, clock_now(&clock)),
        )
        .await;
    assert_ne!(r.status(), 303);
    assert_eq!(
        status_of(&cb, app.url("praxis-b", "/id/account")).await,
        303
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_correct_password_does_not_reset_the_count_of_wrong_codes() {
    let (app, clock) = app_at(T0).await;
    app.create_practice("praxis-a").await;
    app.create_user("praxis-a", "anna", PW, false).await;
    let c = client();
    app.login(&c, "praxis-a", "anna", PW).await;
    let (secret, _) = enrol(&app, &c, "praxis-a", T0).await;
    logout(&app, &c, "praxis-a").await;
    clock.advance(30);
    let right: u32 = totp::code_at(&secret, clock_now(&clock)).parse().unwrap();
    let wrong = |i: u32| format!("{:06}", (right + 100 + i) % 1_000_000);

    // Password (1), two wrong codes (2, 3); password again (4), a wrong code (5): the
    // next attempt is over the threshold of 5, even though the password was right twice.
    assert_eq!(
        app.login_totp(&c, "praxis-a", "anna", PW, &wrong(1))
            .await
            .status(),
        401
    );
    let r = app
        .post_form(
            &c,
            "praxis-a",
            "/id/login/totp",
            "/id/login/totp",
            &[("code", &wrong(2))],
        )
        .await;
    assert_eq!(r.status(), 401);
    logout(&app, &c, "praxis-a").await;
    assert_eq!(
        app.login_totp(&c, "praxis-a", "anna", PW, &wrong(3))
            .await
            .status(),
        401
    );
    let r = app
        .post_form(
            &c,
            "praxis-a",
            "/id/login/totp",
            "/id/login/totp",
            &[("code", &format!("{right:06}"))],
        )
        .await;
    assert_eq!(r.status(), 429);
    assert_eq!(app.login(&c, "praxis-a", "anna", PW).await.status(), 429);
}
