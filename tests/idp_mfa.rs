//! Second factor: TOTP enrolment and login, replay, recovery codes, forced enrolment by
//! policy, and that nothing of it carries over from one practice to another.

use std::sync::Arc;

use kollegium_idp::totp;
use kollegium_tenants::clock::ManualClock;

use crate::harness::{TestApp, client, form_csrf};

pub const T0: i64 = 1_800_000_000;
pub const PW: &str = "Sonnenblume-Kaffee-42";

pub async fn app_at(t0: i64) -> (TestApp, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(t0));
    let app = TestApp::spawn_with_clock(clock.clone(), |_| {}).await;
    (app, clock)
}

/// The value of a form field `name` in `html`.
pub fn field(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} in {html}"))
        + marker.len();
    let end = html[start..].find('"').unwrap();
    html[start..start + end].to_owned()
}

fn base32_decode(s: &str) -> Vec<u8> {
    let (mut buf, mut bits, mut out) = (0u32, 0u32, Vec::new());
    for c in s.chars().filter(|c| c.is_ascii_alphanumeric()) {
        let v = match c {
            'A'..='Z' => c as u32 - 'A' as u32,
            '2'..='7' => c as u32 - '2' as u32 + 26,
            _ => panic!("not base32: {c}"),
        };
        buf = (buf << 5) | v;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buf >> bits) as u8);
            buf &= (1 << bits) - 1;
        }
    }
    out
}

/// The secret an enrolment page shows for manual entry.
pub fn shown_secret(html: &str) -> Vec<u8> {
    let start = html.find("<code class=\"secret\">").unwrap() + "<code class=\"secret\">".len();
    let end = html[start..].find('<').unwrap();
    let secret = base32_decode(&html[start..start + end]);
    assert_eq!(secret.len(), totp::SECRET_LEN);
    secret
}

/// Recovery codes on the page shown after enrolment.
pub fn shown_codes(html: &str) -> Vec<String> {
    html.split("<li><code>")
        .skip(1)
        .map(|p| p[..p.find('<').unwrap()].to_owned())
        .collect()
}

/// Enrols TOTP for the signed-in `c` through `/id/account/totp`; returns secret and codes.
pub async fn enrol(
    app: &TestApp,
    c: &reqwest::Client,
    slug: &str,
    now: i64,
) -> (Vec<u8>, Vec<String>) {
    let r = app
        .post_form(c, slug, "/id/account/totp", "/id/account/totp/start", &[])
        .await;
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    let secret = shown_secret(&html);
    let code = totp::code_at(&secret, now);
    let r = c
        .post(app.url(slug, "/id/account/totp/confirm"))
        .form(&[
            ("csrf_token", form_csrf(&html).as_str()),
            ("pending", field(&html, "pending").as_str()),
            ("code", code.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let codes = shown_codes(&r.text().await.unwrap());
    assert_eq!(codes.len(), 10);
    (secret, codes)
}

/// Logs `c` out (signed in or half-way through a login).
pub async fn logout(app: &TestApp, c: &reqwest::Client, slug: &str) {
    let account = c.get(app.url(slug, "/id/account")).send().await.unwrap();
    let page = if account.status() == 200 {
        "/id/account"
    } else {
        "/id/login"
    };
    let r = app.post_form(c, slug, page, "/id/logout", &[]).await;
    assert_eq!(r.status(), 303);
}

pub async fn status_of(c: &reqwest::Client, url: String) -> u16 {
    c.get(url).send().await.unwrap().status().as_u16()
}

async fn event_count(app: &TestApp, slug: &str, kind: &'static str) -> i64 {
    app.idp_db(slug, move |c| {
        kollegium_idp::events::count_kind(c, kind).unwrap()
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn totp_enrolment_login_replay_and_recovery_codes() {
    let (app, clock) = app_at(T0).await;
    app.create_practice("praxis-a").await;
    let anna = app.create_user("praxis-a", "anna", PW, false).await;
    let c = client();
    assert_eq!(app.login(&c, "praxis-a", "anna", PW).await.status(), 303);

    let html = c
        .get(app.url("praxis-a", "/id/account/totp"))
        .send()
        .await
        .unwrap();
    assert_eq!(html.status(), 200);
    assert!(html.text().await.unwrap().contains("Nicht eingerichtet"));

    // Start: a QR code as an SVG data URI (no inline styles anywhere), the URI as text.
    let r = app
        .post_form(
            &c,
            "praxis-a",
            "/id/account/totp",
            "/id/account/totp/start",
            &[],
        )
        .await;
    assert_eq!(r.status(), 200);
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("img-src 'self' data:"), "{csp}");
    let html = r.text().await.unwrap();
    assert!(html.contains("<img src=\"data:image/svg+xml;base64,"));
    assert!(html.contains("otpauth://totp/"));
    assert!(!html.contains("style="));
    let secret = shown_secret(&html);
    let pending = field(&html, "pending");
    assert!(!pending.contains(&totp::base32(&secret)));

    // A wrong code is refused and nothing is stored; a forged pending value too.
    let confirm = |pending: String, code: String| {
        let (c, url, token) = (
            c.clone(),
            app.url("praxis-a", "/id/account/totp/confirm"),
            form_csrf(&html),
        );
        async move {
            c.post(url)
                .form(&[("csrf_token", token), ("pending", pending), ("code", code)])
                .send()
                .await
                .unwrap()
        }
    };
    let wrong = format!(
        "{:06}",
        (totp::code_at(&secret, T0).parse::<u32>().unwrap() + 1) % 1_000_000
    );
    let r = confirm(pending.clone(), wrong).await;
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("Der Code stimmt nicht"));
    let r = confirm("kw1.Zm9yZ2Vk".into(), totp::code_at(&secret, T0)).await;
    assert_eq!(r.status(), 400);
    assert!(!app.user("praxis-a", anna).await.has_totp());

    let r = confirm(pending.clone(), totp::code_at(&secret, T0)).await;
    assert_eq!(r.status(), 200);
    let codes = shown_codes(&r.text().await.unwrap());
    assert_eq!(codes.len(), 10);
    let stored = app.user("praxis-a", anna).await.totp_secret.unwrap();
    assert!(stored.starts_with("kw1.") && !stored.contains(&totp::base32(&secret)));
    assert_eq!(event_count(&app, "praxis-a", "totp_enabled").await, 1);
    // The same enrolment cannot be confirmed twice.
    assert_eq!(
        confirm(pending, totp::code_at(&secret, T0)).await.status(),
        400
    );
    logout(&app, &c, "praxis-a").await;

    // Login now asks for the code; the pending login authorises nothing else.
    let r = app.login(&c, "praxis-a", "anna", PW).await;
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/id/login/totp?next=%2Fid%2F");
    assert_eq!(status_of(&c, app.url("praxis-a", "/id/account")).await, 303);
    let page = c
        .get(app.url("praxis-a", "/id/login/totp"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    // The code that confirmed the enrolment is used up.
    let r = app
        .post_form(
            &c,
            "praxis-a",
            "/id/login/totp",
            "/id/login/totp",
            &[("code", &totp::code_at(&secret, T0))],
        )
        .await;
    assert_eq!(r.status(), 401);
    assert!(r.text().await.unwrap().contains("bereits verwendet"));

    clock.advance(30);
    let code = totp::code_at(&secret, clock_now(&clock));
    let r = app
        .post_form(
            &c,
            "praxis-a",
            "/id/login/totp",
            "/id/login/totp",
            &[("code", &code), ("next", "/id/account")],
        )
        .await;
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/id/account");
    assert_eq!(status_of(&c, app.url("praxis-a", "/id/account")).await, 200);
    logout(&app, &c, "praxis-a").await;

    // Replay of a used code within its window: refused.
    let r = app.login_totp(&c, "praxis-a", "anna", PW, &code).await;
    assert_eq!(r.status(), 401);
    logout(&app, &c, "praxis-a").await;

    // A recovery code works once (any case, with or without dashes), then never again.
    let r = app.login_totp(&c, "praxis-a", "anna", PW, &codes[0]).await;
    assert_eq!(r.status(), 303);
    assert_eq!(status_of(&c, app.url("praxis-a", "/id/account")).await, 200);
    assert_eq!(event_count(&app, "praxis-a", "recovery_code_used").await, 1);
    logout(&app, &c, "praxis-a").await;
    let r = app.login_totp(&c, "praxis-a", "anna", PW, &codes[0]).await;
    assert_eq!(r.status(), 401);
    logout(&app, &c, "praxis-a").await;
    let upper = codes[1].replace('-', "").to_uppercase();
    let r = app.login_totp(&c, "praxis-a", "anna", PW, &upper).await;
    assert_eq!(r.status(), 303);
    let status = c
        .get(app.url("praxis-a", "/id/account/totp"))
        .send()
        .await
        .unwrap();
    assert!(
        status
            .text()
            .await
            .unwrap()
            .contains("Unbenutzte Wiederherstellungscodes: 8")
    );

    // Nothing secret in the security log.
    let details: Vec<String> = app
        .idp_db("praxis-a", |c| {
            kollegium_idp::events::list(c, &Default::default(), 1000)
                .unwrap()
                .into_iter()
                .map(|e| e.detail)
                .collect()
        })
        .await;
    let b32 = totp::base32(&secret);
    for d in &details {
        assert!(
            !d.contains(&b32)
                && !d.contains(&code)
                && !codes.iter().any(|x| d.contains(x.as_str())),
            "{d}"
        );
    }

    // Disabling needs the password and a code.
    clock.advance(30);
    let code = totp::code_at(&secret, clock_now(&clock));
    let r = app
        .post_form(
            &c,
            "praxis-a",
            "/id/account/totp",
            "/id/account/totp/disable",
            &[("current", "falsch-falsch"), ("code", &code)],
        )
        .await;
    assert_eq!(r.status(), 400);
    assert!(app.user("praxis-a", anna).await.has_totp());
    let r = app
        .post_form(
            &c,
            "praxis-a",
            "/id/account/totp",
            "/id/account/totp/disable",
            &[("current", PW), ("code", &code)],
        )
        .await;
    assert_eq!(r.status(), 303);
    assert!(!app.user("praxis-a", anna).await.has_totp());
    assert_eq!(event_count(&app, "praxis-a", "totp_disabled").await, 1);
    logout(&app, &c, "praxis-a").await;
    let r = app.login(&c, "praxis-a", "anna", PW).await;
    assert_eq!(r.headers()["location"], "/id/");
}

pub fn clock_now(c: &ManualClock) -> i64 {
    use kollegium_tenants::Clock;
    c.now()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_everyone_forces_enrolment_at_next_login() {
    let (app, clock) = app_at(T0).await;
    app.create_practice("praxis-a").await;
    app.create_user("praxis-a", "chefin", PW, true).await;
    let ben = app.create_user("praxis-a", "ben", PW, false).await;
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
            &[("device_policy", "off"), ("mfa_policy", "everyone")],
        )
        .await;
    assert_eq!(r.status(), 303);

    let c = client();
    let r = app.login(&c, "praxis-a", "ben", PW).await;
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/id/login/enroll?next=%2Fid%2F");
    assert_eq!(status_of(&c, app.url("praxis-a", "/id/account")).await, 303);
    assert_eq!(
        status_of(&c, app.url("praxis-a", "/id/login/totp")).await,
        303
    );
    let html = c
        .get(app.url("praxis-a", "/id/login/enroll?next=%2Fid%2F"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("verlangt"));
    let secret = shown_secret(&html);
    let r = c
        .post(app.url("praxis-a", "/id/login/enroll"))
        .form(&[
            ("csrf_token", form_csrf(&html).as_str()),
            ("pending", field(&html, "pending").as_str()),
            ("code", totp::code_at(&secret, T0).as_str()),
            ("next", "/id/"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers().get("set-cookie").is_some(),
        "fresh session token"
    );
    let html = r.text().await.unwrap();
    assert_eq!(shown_codes(&html).len(), 10);
    assert!(html.contains("href=\"/id/\""));
    assert_eq!(status_of(&c, app.url("praxis-a", "/id/account")).await, 200);
    // Under the policy the factor cannot be switched off.
    let status = c
        .get(app.url("praxis-a", "/id/account/totp"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(status.contains("kann nicht abgeschaltet werden"));
    logout(&app, &c, "praxis-a").await;

    clock.advance(30);
    let r = app
        .login_totp(
            &c,
            "praxis-a",
            "ben",
            PW,
            &totp::code_at(&secret, clock_now(&clock)),
        )
        .await;
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/id/");

    // Lost phone: an admin resets ben's second factor; ben has to enrol again.
    let page = format!("/id/admin/users/{}", ben.0);
    let html = admin
        .get(app.url("praxis-a", &page))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("Zwei-Faktor-Anmeldung zurücksetzen"));
    let r = app
        .post_form(
            &admin,
            "praxis-a",
            &page,
            &format!("{page}/reset-totp"),
            &[],
        )
        .await;
    assert_eq!(r.status(), 303);
    assert!(!app.user("praxis-a", ben).await.has_totp());
    logout(&app, &c, "praxis-a").await;
    let r = app.login(&c, "praxis-a", "ben", PW).await;
    assert_eq!(r.headers()["location"], "/id/login/enroll?next=%2Fid%2F");

    // The admin who set the policy is asked too, at the next login.
    logout(&app, &admin, "praxis-a").await;
    let r = app.login(&admin, "praxis-a", "chefin", PW).await;
    assert_eq!(r.headers()["location"], "/id/login/enroll?next=%2Fid%2F");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_admins_forces_enrolment_for_administrators_only() {
    let (app, _clock) = app_at(T0).await;
    app.create_practice("praxis-a").await;
    app.create_user("praxis-a", "chefin", PW, true).await;
    app.create_user("praxis-a", "zweite", PW, true).await;
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
            &[("device_policy", "off"), ("mfa_policy", "admins")],
        )
        .await;
    assert_eq!(r.status(), 303);
    // Another administrator is led through enrolment at the next login...
    let c = client();
    let r = app.login(&c, "praxis-a", "zweite", PW).await;
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/id/login/enroll?next=%2Fid%2F");
    assert_eq!(status_of(&c, app.url("praxis-a", "/id/account")).await, 303);
    // ...a member who is no administrator is not.
    let c = client();
    let r = app.login(&c, "praxis-a", "ben", PW).await;
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/id/");
    assert_eq!(status_of(&c, app.url("praxis-a", "/id/account")).await, 200);
}
