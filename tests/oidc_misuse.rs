//! More bad input at the OIDC provider: refresh token misuse, malformed requests, other
//! practices and anonymous callers; client registration and key rotation through the CLI.

use kollegium_idp::oidc::clients::RedirectUri;
use serde_json::Value;

use crate::harness::{TestApp, cli_in, client, stderr, stdout};
use crate::oidc_attacks::count_events;
use crate::oidc_support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_tokens_are_bound_rotated_and_die_with_their_user() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    let c = browser(&app, "praxis-a", "anna").await;
    let x = register(&app, "praxis-a", tool("X", true, true)).await;
    let y = register(&app, "praxis-a", tool("Y", true, true)).await;
    let xc = (x.client_id.as_str(), x.secret.as_deref().unwrap());
    let yc = (y.client_id.as_str(), y.secret.as_deref().unwrap());
    let refresh = |creds, token: String| {
        let app = &app;
        async move {
            let (s, b, _) = post_form(
                app,
                "praxis-a",
                "/id/token",
                &[("grant_type", "refresh_token"), ("refresh_token", &token)],
                Some(creds),
            )
            .await;
            (s, b)
        }
    };
    let code = code_for(
        &app,
        &c,
        "praxis-a",
        xc.0,
        &[("scope", "openid offline_access")],
    )
    .await;
    let (_, t) = exchange(&app, "praxis-a", xc, &code, None).await;
    let r1 = t["refresh_token"].as_str().unwrap().to_owned();
    let (s, _) = refresh(yc, r1.clone()).await;
    assert_eq!(s, 400, "another client's refresh token");
    let (s, t2) = refresh(xc, r1.clone()).await;
    assert_eq!(s, 200, "{t2}");
    let r2 = t2["refresh_token"].as_str().unwrap().to_owned();
    let (s, _) = refresh(xc, r1).await;
    assert_eq!(s, 400, "rotated token");
    let (s, _) = refresh(xc, r2).await;
    assert_eq!(s, 400, "the whole grant is revoked after reuse");
    assert_eq!(count_events(&app, "praxis-a", "refresh_reuse"), 1);

    // Without offline_access the refresh token ends with the browser session.
    let code = code_for(&app, &c, "praxis-a", xc.0, &[]).await;
    let (_, t) = exchange(&app, "praxis-a", xc, &code, None).await;
    let (s, t3) = refresh(xc, t["refresh_token"].as_str().unwrap().to_owned()).await;
    assert_eq!(s, 200);
    let code = code_for(
        &app,
        &c,
        "praxis-a",
        xc.0,
        &[("scope", "openid offline_access")],
    )
    .await;
    let (_, offline) = exchange(&app, "praxis-a", xc, &code, None).await;
    let page = c
        .get(app.url("praxis-a", "/id/account"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = crate::harness::form_csrf(&page);
    c.post(app.url("praxis-a", "/id/logout"))
        .form(&[("csrf_token", csrf.as_str())])
        .send()
        .await
        .unwrap();
    let (s, _) = refresh(xc, t3["refresh_token"].as_str().unwrap().to_owned()).await;
    assert_eq!(s, 400, "session ended");

    // A disabled user's refresh token is refused.
    let tenant = app.tenant("praxis-a");
    let now = app.clock.now();
    tokio::task::spawn_blocking(move || {
        let mut conn = tenant.conn(&kollegium_idp::IDP_DB).unwrap();
        let anna = kollegium_idp::users::by_login(&mut conn, "anna")
            .unwrap()
            .unwrap();
        kollegium_idp::users::set_status(
            &mut conn,
            anna.id,
            kollegium_idp::users::UserStatus::Disabled,
            now,
        )
        .unwrap();
    })
    .await
    .unwrap();
    let (s, _) = refresh(xc, offline["refresh_token"].as_str().unwrap().to_owned()).await;
    assert_eq!(s, 400, "disabled user");
    assert_eq!(
        userinfo_status(&app, "praxis-a", offline["access_token"].as_str().unwrap()).await,
        401
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_oversized_requests_get_a_clear_400() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    let c = browser(&app, "praxis-a", "anna").await;
    let t = register(&app, "praxis-a", tool("X", true, true)).await;
    let id = t.client_id.as_str();
    let ok = format!(
        "response_type=code&client_id={id}&redirect_uri=https%3A%2F%2Ftool.example%2Fcb&scope=openid"
    );
    let big = "x".repeat(8 * 1024);
    for q in [
        format!("{ok}&state={big}"),
        format!("{ok}&state=%ff%fe"),
        format!("{ok}&client_id={id}"),
        format!("{ok}&state=a&state=b"),
        format!("{ok}&state=%zz"),
    ] {
        let r = c
            .get(app.url("praxis-a", &format!("/id/authorize?{q}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{}", &q[..q.len().min(200)]);
        assert!(r.headers().get("location").is_none());
        assert!(r.text().await.unwrap().contains("Ungültige Anmeldeanfrage"));
    }
    let r = c
        .get(app.url("praxis-a", &format!("/id/logout/end?state={big}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let creds = (id, t.secret.as_deref().unwrap());
    let (s, b, _) = post_form(
        &app,
        "praxis-a",
        "/id/token",
        &[
            ("grant_type", "client_credentials"),
            ("grant_type", "refresh_token"),
        ],
        Some(creds),
    )
    .await;
    assert_eq!((s, b["error"].as_str()), (400, Some("invalid_request")));
    let (s, b, _) = post_form(
        &app,
        "praxis-a",
        "/id/token",
        &[("grant_type", "password")],
        Some(creds),
    )
    .await;
    assert_eq!(
        (s, b["error"].as_str()),
        (400, Some("unsupported_grant_type"))
    );
    let r = client()
        .post(app.url("praxis-a", "/id/token"))
        .basic_auth(creds.0, Some(creds.1))
        .json(&serde_json::json!({"grant_type": "client_credentials"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // Unsupported response type and scope go back to the client with iss.
    let r = authorize(
        &app,
        &c,
        "praxis-a",
        &[
            ("response_type", "token"),
            ("client_id", id),
            ("redirect_uri", "https://tool.example/cb"),
            ("scope", "openid"),
        ],
    )
    .await;
    let q = query(&location(&r));
    assert_eq!(q["error"], "unsupported_response_type");
    assert_eq!(q["iss"], format!("{}/id", app.url("praxis-a", "")));
    let r = authorize(
        &app,
        &c,
        "praxis-a",
        &[
            ("response_type", "code"),
            ("client_id", id),
            ("redirect_uri", "https://tool.example/cb"),
            ("scope", "openid admin"),
        ],
    )
    .await;
    assert_eq!(query(&location(&r))["error"], "invalid_scope");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_practices_and_anonymous_callers_get_nothing() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    app.create_practice("praxis-b").await;
    let a = register(&app, "praxis-a", tool("A", true, false)).await;
    let mut launch = tool("Launch", true, false);
    launch.launch_url = Some(RedirectUri::parse("https://tool.example/start").unwrap());
    let l = register(&app, "praxis-a", launch).await;
    let mut init = tool("Init", true, false);
    init.initiate_login_uri = Some(RedirectUri::parse("https://tool.example/login").unwrap());
    let i = register(&app, "praxis-a", init).await;
    let ac = (a.client_id.as_str(), a.secret.as_deref().unwrap());
    let params = [
        ("response_type", "code"),
        ("client_id", ac.0),
        ("redirect_uri", "https://tool.example/cb"),
        ("scope", "openid"),
        ("state", "s"),
    ];

    // Anonymous: to the login page, or login_required with prompt=none.
    let anon = client();
    let r = authorize(&app, &anon, "praxis-a", &params).await;
    assert_eq!(r.status(), 303);
    assert!(location(&r).starts_with("/id/login?next="));
    let mut none = params.to_vec();
    none.push(("prompt", "none"));
    let r = authorize(&app, &anon, "praxis-a", &none).await;
    assert_eq!(query(&location(&r))["error"], "login_required");
    let r = anon
        .get(app.url("praxis-a", &format!("/id/launch/{}", l.client_id)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert!(location(&r).starts_with("/id/login"));
    let r = anon
        .post(app.url("praxis-a", "/id/logout/end/confirm"))
        .form(&[("state", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "confirming a logout needs the CSRF token");

    // Practice A's client and credentials mean nothing at B.
    let cb = browser(&app, "praxis-b", "bert").await;
    let r = authorize(&app, &cb, "praxis-b", &params).await;
    assert_eq!(r.status(), 400);
    for path in ["/id/token", "/id/revoke", "/id/introspect"] {
        let (s, body, _) = post_form(
            &app,
            "praxis-b",
            path,
            &[("grant_type", "client_credentials"), ("token", "x")],
            Some(ac),
        )
        .await;
        assert_eq!(
            (s, body["error"].as_str()),
            (401, Some("invalid_client")),
            "{path}"
        );
        let (s, _, _) = post_form(
            &app,
            "praxis-a",
            path,
            &[("grant_type", "client_credentials"), ("token", "x")],
            None,
        )
        .await;
        assert_eq!(s, 401, "{path} without client authentication");
    }
    let r = cb
        .get(app.url("praxis-b", &format!("/id/launch/{}", l.client_id)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let da: Value = app
        .get(&app.url("praxis-a", "/id/.well-known/openid-configuration"))
        .await
        .json()
        .await
        .unwrap();
    let db: Value = app
        .get(&app.url("praxis-b", "/id/.well-known/openid-configuration"))
        .await
        .json()
        .await
        .unwrap();
    assert_ne!(da["issuer"], db["issuer"]);
    let ka: Value = app
        .get(&app.url("praxis-a", "/id/jwks"))
        .await
        .json()
        .await
        .unwrap();
    let kb: Value = app
        .get(&app.url("praxis-b", "/id/jwks"))
        .await
        .json()
        .await
        .unwrap();
    assert_ne!(ka["keys"][0]["kid"], kb["keys"][0]["kid"]);

    // Signed in at A: tiles launch the tools; prompt=login forces the login form.
    let ca = browser(&app, "praxis-a", "anna").await;
    let r = ca
        .get(app.url("praxis-a", &format!("/id/launch/{}", l.client_id)))
        .send()
        .await
        .unwrap();
    assert_eq!(location(&r), "https://tool.example/start");
    let r = ca
        .get(app.url("praxis-a", &format!("/id/launch/{}", i.client_id)))
        .send()
        .await
        .unwrap();
    let issuer = format!("{}/id", app.url("praxis-a", ""));
    assert_eq!(query(&location(&r))["iss"], issuer);
    assert!(location(&r).starts_with("https://tool.example/login?"));
    let r = ca
        .get(app.url("praxis-a", "/id/launch/platform"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let mut login = params.to_vec();
    login.push(("prompt", "login"));
    let r = authorize(&app, &ca, "praxis-a", &login).await;
    assert_eq!(r.status(), 303);
    let to = location(&r);
    assert!(to.contains("force=1"), "{to}");
    let r = ca.get(app.url("praxis-a", &to)).send().await.unwrap();
    assert_eq!(
        r.status(),
        200,
        "the login form is shown although signed in"
    );
}

#[test]
fn clients_and_key_rotation_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let run = |args: &[&str]| cli_in(&data, args, &[]);
    let out = run(&[
        "practice",
        "create",
        "praxis-cli",
        "--name",
        "Praxis CLI",
        "--owner-email",
        "chefin@praxis-cli.de",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = run(&[
        "client",
        "add",
        "praxis-cli",
        "--name",
        "Dienstplan",
        "--redirect-uri",
        "https://dienstplan.example/cb",
        "--post-logout-uri",
        "https://dienstplan.example/",
        "--launch-url",
        "https://dienstplan.example/",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("client_id:") && stdout(&out).contains("client_secret:"));
    let out = run(&[
        "client",
        "add",
        "praxis-cli",
        "--name",
        "App",
        "--redirect-uri",
        "http://127.0.0.1:7000/cb",
        "--public",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stdout(&out).contains("client_secret"));
    let out = run(&[
        "client",
        "add",
        "praxis-cli",
        "--name",
        "Böse",
        "--redirect-uri",
        "http://evil.example/cb",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    let out = run(&["practice", "rotate-keys", "praxis-cli"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("New signing key"));
    let out = run(&["practice", "rotate-keys", "gibt-es-nicht"]);
    assert_eq!(out.status.code(), Some(2));
}

/// A login lock holds back new sign-ins only: a guesser who locks anna's name out must not
/// take her codes, refresh tokens and access tokens with it (issue 10, item 11: that was
/// the lever that let anyone sign any colleague out with five wrong passwords).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guessers_lockout_does_not_revoke_the_owners_tokens() {
    let app = TestApp::spawn_with(|c| c.idp.max_delay_ms = 50).await;
    app.create_practice("praxis-a").await;
    let c = browser(&app, "praxis-a", "anna").await;
    let x = register(&app, "praxis-a", tool("X", true, true)).await;
    let xc = (x.client_id.as_str(), x.secret.as_deref().unwrap());
    let code = code_for(
        &app,
        &c,
        "praxis-a",
        xc.0,
        &[("scope", "openid offline_access")],
    )
    .await;
    let (s, t) = exchange(&app, "praxis-a", xc, &code, None).await;
    assert_eq!(s, 200);
    let pending = code_for(&app, &c, "praxis-a", xc.0, &[]).await;

    // Someone guesses anna's password until the login locks.
    let guesser = client();
    let mut last = 0;
    for _ in 0..6 {
        last = app
            .login(&guesser, "praxis-a", "anna", "falsch-geraten-1")
            .await
            .status()
            .as_u16();
    }
    assert_eq!(last, 429);

    assert_eq!(
        userinfo_status(&app, "praxis-a", t["access_token"].as_str().unwrap()).await,
        200
    );
    let (s, b) = exchange(&app, "praxis-a", xc, &pending, None).await;
    assert_eq!(s, 200, "{b}");
    let (s, b, _) = post_form(
        &app,
        "praxis-a",
        "/id/token",
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", t["refresh_token"].as_str().unwrap()),
        ],
        Some(xc),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert!(b["access_token"].is_string(), "{b}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_endpoint_refuses_oversized_and_badly_encoded_forms() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    let x = register(&app, "praxis-a", tool("X", true, true)).await;
    let xc = (x.client_id.as_str(), x.secret.as_deref().unwrap());
    let big = "x".repeat(8 * 1024);
    let bigger = "x".repeat(9 * 1024);
    let bodies: Vec<Vec<u8>> = vec![
        format!(
            "grant_type=authorization_code&code={big}&redirect_uri=https%3A%2F%2Ftool.example%2Fcb"
        )
        .into_bytes(),
        format!("grant_type=refresh_token&refresh_token={bigger}").into_bytes(),
        format!("grant_type=client_credentials&scope={big}").into_bytes(),
        b"grant_type=client_credentials&scope=%ff%fe".to_vec(),
        b"grant_type=client_%E9".to_vec(),
        b"grant_type=client_credentials&scope=\xff\xfe".to_vec(),
        b"grant_type=client_credentials&scope=%zz".to_vec(),
    ];
    for body in bodies {
        let shown = String::from_utf8_lossy(&body[..body.len().min(80)]).into_owned();
        let r = client()
            .post(app.url("praxis-a", "/id/token"))
            .basic_auth(xc.0, Some(xc.1))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{shown}");
        assert_eq!(r.headers()["cache-control"], "no-store");
        let b: Value = r.json().await.unwrap();
        assert_eq!(b["error"], "invalid_request", "{shown}: {b}");
        assert!(b["error_description"].is_string());
    }
}
