//! `kollegium demo`: the demo practice's sample rooms and messages, that a demo user's
//! first sign-in maps onto the member the seed created, and the sample tool "Dienstplan
//! (Demo)" signing members in through the practice IdP.

use diesel::prelude::*;
use kollegium::roster::RunningRoster;

use crate::apps::oidc::consent_fields;
use crate::chat_notify::page;
use crate::harness::{TestApp, client, form_csrf};
use crate::oidc_support::location;

const DEMO: &str = kollegium::demo::DEMO_SLUG;

/// The id of the room titled `title` in a chat list page.
fn room_id(list: &str, title: &str) -> Option<String> {
    list.split("<a href=\"/chat/")
        .skip(1)
        .find(|item| {
            item.split("</a>")
                .next()
                .is_some_and(|a| a.contains(&format!(" {title}</span>")))
        })
        .and_then(|item| item.split('"').next())
        .map(str::to_owned)
}

async fn members(app: &TestApp) -> Vec<(String, String)> {
    use kollegium_platform::schema::members as m;
    let tenant = app.tenant(DEMO);
    tokio::task::spawn_blocking(move || {
        let mut conn = tenant.conn(&kollegium_platform::PLATFORM_DB).unwrap();
        m::table
            .order(m::username)
            .select((m::username, m::sub))
            .load::<(String, String)>(&mut *conn)
            .unwrap()
    })
    .await
    .unwrap()
}

/// Creates the demo practice as `kollegium demo` does; whether it was created.
pub async fn seed_demo(app: &TestApp) -> bool {
    let (argon2, store, web) = (
        app.config.idp.argon2,
        app.server().store.clone(),
        app.server().context.settings.clone(),
    );
    tokio::task::spawn_blocking(move || kollegium::demo::ensure_demo(argon2, &store, &web))
        .await
        .unwrap()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_users_find_their_rooms_and_messages() {
    let app = TestApp::spawn().await;
    assert!(seed_demo(&app).await);
    let seeded = members(&app).await;
    assert_eq!(
        seeded.iter().map(|(u, _)| u.as_str()).collect::<Vec<_>>(),
        ["abrechnung", "inhaber", "mfa"]
    );
    // Seeded with the subject the IdP issues.
    let idp_sub = app
        .idp_db(DEMO, |c| {
            kollegium_idp::users::by_login(c, "inhaber")
                .unwrap()
                .unwrap()
                .sub
        })
        .await;
    assert_eq!(seeded[1].1, idp_sub);

    let pw = kollegium_idp::demo::DEMO_PASSWORD;
    let inhaber = client();
    app.sign_in(&inhaber, DEMO, "inhaber", pw).await;
    assert_eq!(
        members(&app).await,
        seeded,
        "sign-in reused the seeded member"
    );
    let list = page(&app, &inhaber, DEMO, "/chat").await;
    let general = room_id(&list, "Allgemein").expect("Allgemein listed");
    let billing = room_id(&list, "Abrechnung").expect("Abrechnung listed");
    let direct = room_id(&list, "Mia Fachmann").expect("1:1 with the MFA listed");
    let html = page(&app, &inhaber, DEMO, &format!("/chat/{general}")).await;
    assert!(html.contains("neuen Sprechzeiten") && html.contains("Anrufbeantworter"));
    assert!(html.contains("<strong>vollständig</strong>"));
    let html = page(&app, &inhaber, DEMO, &format!("/chat/{billing}")).await;
    assert!(html.contains("Quartalsabrechnung ist vorbereitet"));
    let html = page(&app, &inhaber, DEMO, &format!("/chat/{direct}")).await;
    assert!(html.contains("Blutabnahmen"));
    // The start page counts what others wrote.
    let home = page(&app, &inhaber, DEMO, "/").await;
    assert!(home.contains("Guten Tag, Dr. Ines Inhaber"));
    // The owner's role has one name, in the shell as on the IdP's pages.
    let who = "<strong>Dr. Ines Inhaber</strong><span class=\"muted\">Praxisleitung";
    assert!(home.contains(who), "{home}");
    let account = page(&app, &inhaber, DEMO, "/id/account").await;
    assert!(account.contains(who), "{account}");
    assert!(!home.contains("Praxisinhaber") && !account.contains("Praxisinhaber"));

    let mfa = client();
    app.sign_in(&mfa, DEMO, "mfa", pw).await;
    let list = page(&app, &mfa, DEMO, "/chat").await;
    assert_eq!(room_id(&list, "Allgemein"), Some(general.clone()));
    assert_eq!(room_id(&list, "Dr. Ines Inhaber"), Some(direct.clone()));
    assert_eq!(
        room_id(&list, "Abrechnung"),
        None,
        "the billing room is private"
    );
    assert!(!list.contains(&format!("href=\"/chat/{billing}\"")));
    let r = mfa
        .get(app.url(DEMO, &format!("/chat/{billing}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let html = page(&app, &mfa, DEMO, &format!("/chat/{direct}")).await;
    assert!(html.contains("ab 7:30 Uhr"));

    let billing_clerk = client();
    app.sign_in(&billing_clerk, DEMO, "abrechnung", pw).await;
    let list = page(&app, &billing_clerk, DEMO, "/chat").await;
    assert_eq!(room_id(&list, "Abrechnung"), Some(billing));
    assert_eq!(members(&app).await, seeded, "no member was duplicated");
}

const PW: &str = kollegium_idp::demo::DEMO_PASSWORD;

/// The demo practice and its roster tool on a free loopback port, started as `kollegium
/// demo` starts them (the demo's fixed port 9000 cannot serve parallel tests).
pub async fn demo_with_roster(app: &TestApp) -> RunningRoster {
    seed_demo(app).await;
    let (listener, warning) = kollegium::demo::bind_roster(0).unwrap();
    assert!(warning.is_none());
    let http = kollegium_tenants::http::node_client("localhost", [127, 0, 0, 1].into()).unwrap();
    kollegium::demo::start_roster(
        app.server().store.clone(),
        &app.server().context.settings,
        http,
        listener,
    )
    .await
    .unwrap()
    .expect("the demo practice has the roster client")
}

/// Follows redirects from `url` like a browser (relative locations against the current
/// address) until a page answers; returns it and its address.
async fn browse(c: &reqwest::Client, url: &str) -> (reqwest::StatusCode, String, String) {
    let mut at = reqwest::Url::parse(url).unwrap();
    for _ in 0..15 {
        let r = c.get(at.clone()).send().await.unwrap();
        if !r.status().is_redirection() {
            let status = r.status();
            return (status, at.to_string(), r.text().await.unwrap());
        }
        at = at.join(&location(&r)).unwrap();
    }
    panic!("too many redirects at {at}");
}

/// Answers the IdP's login form at `at` (where the tool's sign-in led) as `user`.
async fn log_in_at(c: &reqwest::Client, at: &str, html: &str, user: &str) -> (String, String) {
    assert!(at.contains("/id/login"), "{at}");
    let next = crate::apps::oidc::input(html, "next");
    let login = reqwest::Url::parse(at).unwrap().join("/id/login").unwrap();
    let r = c
        .post(login.clone())
        .form(&[
            ("csrf_token", form_csrf(html).as_str()),
            ("login", user),
            ("password", PW),
            ("next", next.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "login as {user}");
    let (status, at, html) = browse(c, login.join(&location(&r)).unwrap().as_str()).await;
    assert_eq!(status, 200, "{at}");
    (at, html)
}

/// Sends the IdP's consent form with `decision`; follows where it leads.
async fn consent(c: &reqwest::Client, at: &str, html: &str, decision: &str) -> (u16, String) {
    assert!(
        html.contains("Dienstplan (Demo) möchte Sie anmelden"),
        "{html}"
    );
    let mut form = consent_fields(html);
    form.push(("decision".into(), decision.into()));
    let url = reqwest::Url::parse(at)
        .unwrap()
        .join("/id/authorize/consent")
        .unwrap();
    let r = c.post(url.clone()).form(&form).send().await.unwrap();
    assert_eq!(r.status(), 302, "consent answered");
    let (status, _, html) = browse(c, url.join(&location(&r)).unwrap().as_str()).await;
    (status.as_u16(), html)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_roster_tool_signs_members_in_through_the_practice() {
    let app = TestApp::spawn().await;
    let roster = demo_with_roster(&app).await;
    let tool = roster.origin();

    // The owner, signed in at the practice: the tile leads to the running tool.
    let owner = client();
    app.sign_in(&owner, DEMO, "inhaber", PW).await;
    let home = page(&app, &owner, DEMO, "/").await;
    let tile = app.url(DEMO, "/id/launch/dienstplan-demo");
    assert!(home.contains(&format!("href=\"{tile}\"")), "{home}");
    let r = owner.get(&tile).send().await.unwrap();
    assert_eq!(
        location(&r),
        format!("{tool}/"),
        "the tile leads to the tool"
    );
    // One click: the tool sends the browser to the practice IdP, which asks once whether
    // the tool may learn who the member is; no password (the practice session counts).
    let (status, at, html) = browse(&owner, &tile).await;
    assert_eq!(status, 200);
    assert!(at.contains("/id/authorize"), "{at}");
    let (status, html) = consent(&owner, &at, &html, "allow").await;
    assert_eq!(status, 200, "{html}");
    assert!(
        html.contains("Dienstplan (Demo) — angemeldet als Dr. Ines Inhaber"),
        "{html}"
    );
    for claim in [
        "Praxisleitung",
        "Allgemeinmedizin",
        "KV Nordrhein",
        "Praxis Dr. Demo",
    ] {
        assert!(html.contains(claim), "{claim}: {html}");
    }

    // Signing out ends the tool's session; without the form's token nothing happens.
    let token = form_csrf(&html);
    let r = owner
        .post(format!("{tool}/logout"))
        .form(&[("csrf_token", "forged")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let (_, _, html) = browse(&owner, &format!("{tool}/")).await;
    assert!(
        html.contains("angemeldet als Dr. Ines Inhaber"),
        "still signed in"
    );
    let r = owner
        .post(format!("{tool}/logout"))
        .form(&[("csrf_token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(
        (r.status().as_u16(), location(&r)),
        (303, "/abgemeldet".into())
    );
    let r = owner.get(format!("{tool}/")).send().await.unwrap();
    assert_eq!((r.status().as_u16(), location(&r)), (303, "/login".into()));
    let (_, _, html) = browse(&owner, &format!("{tool}/abgemeldet")).await;
    assert!(
        html.contains("Sie sind vom Dienstplan abgemeldet"),
        "{html}"
    );
    // Signing in again asks nothing: consent is remembered, the practice session holds.
    let (status, _, html) = browse(&owner, &format!("{tool}/login")).await;
    assert_eq!(status, 200);
    assert!(html.contains("angemeldet als Dr. Ines Inhaber"), "{html}");

    // The MFA opens the tool without a practice session: the IdP's login form first.
    let mfa = client();
    let (_, at, html) = browse(&mfa, &format!("{tool}/")).await;
    let (at, html) = log_in_at(&mfa, &at, &html, "mfa").await;
    let (status, html) = consent(&mfa, &at, &html, "allow").await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("angemeldet als Mia Fachmann"), "{html}");
    assert!(html.contains("<dt>Rolle</dt><dd>MFA</dd>"), "{html}");
    assert!(
        !html.contains("Dr. Ines Inhaber"),
        "another member's session"
    );
    roster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_roster_tool_refuses_answers_it_did_not_ask_for() {
    let app = TestApp::spawn().await;
    let roster = demo_with_roster(&app).await;
    let tool = roster.origin();
    let status = |r: &reqwest::Response| r.status().as_u16();

    // Unauthenticated: the roster leads to the sign-in; signing out is harmless.
    let c = client();
    let r = c.get(format!("{tool}/")).send().await.unwrap();
    assert_eq!((status(&r), location(&r)), (303, "/login".into()));
    let r = c
        .post(format!("{tool}/logout"))
        .form(&[("csrf_token", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(status(&r), 303);
    // A sign-in answer without a sign-in started in this browser.
    let r = c
        .get(format!("{tool}/callback?code=abc&state=xyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(status(&r), 400);
    assert!(r.text().await.unwrap().contains("Anmeldung abgelaufen"));

    // A started sign-in: answers with another state, an oversized or malformed query,
    // another issuer or a made-up code sign no one in.
    let start = |c: reqwest::Client| {
        let tool = tool.clone();
        async move {
            let r = c.get(format!("{tool}/login")).send().await.unwrap();
            assert_eq!(r.status(), 303);
            crate::oidc_support::query(&location(&r))["state"].clone()
        }
    };
    let state = start(c.clone()).await;
    let callback = |q: String| {
        let (c, tool) = (c.clone(), tool.clone());
        async move {
            c.get(format!("{tool}/callback?{q}"))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(callback("code=abc&state=other".into()).await, 400);
    assert_eq!(
        callback(format!("state={state}&code={}", "a".repeat(5000))).await,
        400
    );
    assert_eq!(callback(format!("state={state}&code=a&code=b")).await, 400);
    assert_eq!(
        callback(format!(
            "state={state}&code=abc&iss=http%3A%2F%2Fpraxis-b.localhost%3A{}%2Fid",
            app.port
        ))
        .await,
        403,
        "an answer from another practice's issuer"
    );
    let state = start(c.clone()).await;
    assert_eq!(callback(format!("state={state}&code=made-up")).await, 403);
    assert_eq!(
        callback(format!("state={state}&code=made-up")).await,
        400,
        "an answer counts once"
    );
    let r = c.get(format!("{tool}/")).send().await.unwrap();
    assert_eq!(location(&r), "/login", "no one signed in");

    // Declining at the IdP's consent page: the tool says so, and no one is signed in.
    let anton = client();
    let (_, at, html) = browse(&anton, &format!("{tool}/")).await;
    let (at, html) = log_in_at(&anton, &at, &html, "abrechnung").await;
    let (code, html) = consent(&anton, &at, &html, "deny").await;
    assert_eq!(code, 403);
    assert!(html.contains("Anmeldung abgebrochen"), "{html}");
    let r = anton.get(format!("{tool}/")).send().await.unwrap();
    assert_eq!(location(&r), "/login");

    // An oversized sign-out form.
    let r = anton
        .post(format!("{tool}/logout"))
        .form(&[("csrf_token", "x".repeat(4000))])
        .send()
        .await
        .unwrap();
    assert_eq!(status(&r), 400);
    roster.stop().await;
}
