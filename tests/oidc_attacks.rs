//! Bad input at the OIDC provider: redirect URI fuzzing, PKCE, code and refresh token
//! misuse, forged tokens, malformed requests, other practices, missing authentication.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use kollegium_idp::oidc::clients::RedirectUri;
use kollegium_tenants::SharedClock;
use kollegium_tenants::clock::ManualClock;
use serde_json::Value;

use crate::harness::{TestApp, client};
use crate::oidc_support::*;

pub fn count_events(app: &TestApp, slug: &str, kind: &'static str) -> i64 {
    let mut conn = app.tenant(slug).conn(&kollegium_idp::IDP_DB).unwrap();
    kollegium_idp::events::count_kind(&mut conn, kind).unwrap()
}

async fn manual_app() -> (TestApp, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(kollegium_tenants::SystemClock.now()));
    let shared: SharedClock = clock.clone();
    (TestApp::spawn_with_clock(shared, |_| {}).await, clock)
}

use kollegium_tenants::Clock;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirect_and_logout_addresses_are_matched_exactly_and_never_followed_when_wrong() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    let c = browser(&app, "praxis-a", "anna").await;
    let t = register(&app, "praxis-a", tool("Dienstplan", true, true)).await;
    let bad = [
        "https://tool.example/c",
        "https://tool.example/cb/",
        "https://tool.example/cb/extra",
        "https://tool.example/cbx",
        "https://tool.example/cb?x=1",
        "https://tool.example:444/cb",
        "https://tool.example:443/cb",
        "http://tool.example/cb",
        "https://tool.example/cb/..;/",
        "https://tool.example/x/..;/cb",
        "https://tool.example/x/../cb",
        "https://tool.example@evil.example/cb",
        "https://a@b@tool.example/cb",
        "https://user:pw@tool.example/cb",
        "https://tool.example/cb#frag",
        "https://TOOL.example/cb",
        "https://tool.example/CB",
        "HTTPS://tool.example/cb",
        "JaVaScRiPt:alert(1)",
        "javascript://tool.example/cb",
        "https://tool.example.evil.example/cb",
        "//tool.example/cb",
        "https://tool.example/cb%2F..",
        " https://tool.example/cb",
    ];
    for uri in bad {
        let r = authorize(
            &app,
            &c,
            "praxis-a",
            &[
                ("response_type", "code"),
                ("client_id", &t.client_id),
                ("redirect_uri", uri),
                ("scope", "openid"),
            ],
        )
        .await;
        assert_eq!(r.status(), 400, "{uri}");
        assert!(r.headers().get("location").is_none(), "{uri}");
        assert!(
            r.text()
                .await
                .unwrap()
                .contains("Unzulässige Rücksprungadresse"),
            "{uri}"
        );
    }
    let r = authorize(
        &app,
        &c,
        "praxis-a",
        &[
            ("response_type", "code"),
            ("client_id", &t.client_id),
            ("scope", "openid"),
        ],
    )
    .await;
    assert_eq!(r.status(), 400, "a missing redirect_uri is refused");
    let r = authorize(
        &app,
        &c,
        "praxis-a",
        &[
            ("response_type", "code"),
            ("client_id", "nope"),
            ("redirect_uri", "https://tool.example/cb"),
        ],
    )
    .await;
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("Unbekannte Anwendung"));

    for uri in bad.iter().copied().chain(["https://tool.example/cb"]) {
        let q = serde_urlencoded::to_string([
            ("client_id", t.client_id.as_str()),
            (
                "post_logout_redirect_uri",
                uri.replace("/cb", "/bye").as_str(),
            ),
        ])
        .unwrap();
        let r = c
            .get(app.url("praxis-a", &format!("/id/logout/end?{q}")))
            .send()
            .await
            .unwrap();
        if uri == "https://tool.example/cb" {
            // The registered address itself: a confirmation page, since no hint names the session.
            assert_eq!(r.status(), 200);
            continue;
        }
        assert_eq!(r.status(), 400, "{uri}");
        assert!(r.headers().get("location").is_none(), "{uri}");
    }
    let q = serde_urlencoded::to_string([("post_logout_redirect_uri", "https://tool.example/bye")])
        .unwrap();
    let r = c
        .get(app.url("praxis-a", &format!("/id/logout/end?{q}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "a post-logout address needs a client");
    // Registration refuses such addresses in the first place.
    for uri in [
        "http://tool.example/cb",
        "https://u@tool.example/cb",
        "https://tool.example/#x",
        "JaVaScRiPt:alert(1)",
    ] {
        assert!(RedirectUri::parse(uri).is_err(), "{uri}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pkce_is_required_for_public_clients_and_enforced_when_used() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    let c = browser(&app, "praxis-a", "anna").await;
    let public = register(&app, "praxis-a", tool("App", false, true)).await;
    let conf = register(&app, "praxis-a", tool("Server", true, true)).await;
    let pc = (public.client_id.as_str(), "");
    let err = |r: &reqwest::Response| {
        query(&location(r))
            .get("error")
            .cloned()
            .unwrap_or_default()
    };
    let base = |id: &'static str| {
        vec![
            ("response_type", "code"),
            ("client_id", id),
            ("redirect_uri", "https://tool.example/cb"),
            ("scope", "openid"),
            ("state", "s"),
        ]
    };
    let pid: &'static str = Box::leak(public.client_id.clone().into_boxed_str());
    let r = authorize(&app, &c, "praxis-a", &base(pid)).await;
    assert_eq!(err(&r), "invalid_request", "public client without PKCE");
    assert_eq!(query(&location(&r))["state"], "s");
    let (verifier, challenge) = pkce();
    let mut plain = base(pid);
    plain.extend([
        ("code_challenge", verifier.as_str()),
        ("code_challenge_method", "plain"),
    ]);
    assert_eq!(
        err(&authorize(&app, &c, "praxis-a", &plain).await),
        "invalid_request"
    );
    let mut no_method = base(pid);
    no_method.push(("code_challenge", challenge.as_str()));
    assert_eq!(
        err(&authorize(&app, &c, "praxis-a", &no_method).await),
        "invalid_request"
    );

    let s256 = [
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    let code = code_for(&app, &c, "praxis-a", pc.0, &s256).await;
    let token = |code: String, v: Option<String>| {
        let app = &app;
        let id = pc.0.to_owned();
        async move {
            let mut f = vec![
                ("grant_type", "authorization_code".to_owned()),
                ("code", code),
                ("redirect_uri", "https://tool.example/cb".into()),
                ("client_id", id),
            ];
            if let Some(v) = v {
                f.push(("code_verifier", v));
            }
            let f: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
            post_form(app, "praxis-a", "/id/token", &f, None).await
        }
    };
    let (verifier2, _) = pkce();
    let (s, b, _) = token(code.clone(), Some(verifier2)).await;
    assert_eq!(
        (s, b["error"].as_str()),
        (400, Some("invalid_grant")),
        "wrong verifier"
    );
    // A failed check burns the code (tests/oidc_recheck.rs); the rest with a new one.
    let code = code_for(&app, &c, "praxis-a", pc.0, &s256).await;
    let (s, b, _) = token(code.clone(), None).await;
    assert_eq!(
        (s, b["error"].as_str()),
        (400, Some("invalid_grant")),
        "challenge without verifier"
    );
    let (s, b, _) = token(code, Some(verifier.clone())).await;
    assert_eq!(s, 200, "{b}");
    assert!(
        b.get("refresh_token").is_some(),
        "first-party clients get refresh tokens"
    );
    // A verifier for a code that was issued without a challenge.
    let creds = (conf.client_id.as_str(), conf.secret.as_deref().unwrap());
    let code = code_for(&app, &c, "praxis-a", creds.0, &[]).await;
    let (s, b) = exchange(&app, "praxis-a", creds, &code, Some(&verifier)).await;
    assert_eq!(
        (s, b["error"].as_str()),
        (400, Some("invalid_grant")),
        "verifier without challenge"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codes_are_single_use_short_lived_and_bound() {
    let (app, clock) = manual_app().await;
    app.create_practice("praxis-a").await;
    let c = browser(&app, "praxis-a", "anna").await;
    let x = register(&app, "praxis-a", tool("X", true, true)).await;
    let y = register(&app, "praxis-a", tool("Y", true, true)).await;
    let xc = (x.client_id.as_str(), x.secret.as_deref().unwrap());
    let yc = (y.client_id.as_str(), y.secret.as_deref().unwrap());

    let code = code_for(&app, &c, "praxis-a", xc.0, &[]).await;
    let (s, _) = exchange(&app, "praxis-a", yc, &code, None).await;
    assert_eq!(s, 400, "another client's code");
    let (s, b, _) = post_form(
        &app,
        "praxis-a",
        "/id/token",
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", "https://tool.example/other"),
        ],
        Some(xc),
    )
    .await;
    assert_eq!(
        (s, b["error"].as_str()),
        (400, Some("invalid_grant")),
        "another redirect URI"
    );
    let (s, first) = exchange(&app, "praxis-a", xc, &code, None).await;
    assert_eq!(s, 200, "{first}");
    let at = first["access_token"].as_str().unwrap();
    assert_eq!(userinfo_status(&app, "praxis-a", at).await, 200);
    let (s, _) = exchange(&app, "praxis-a", xc, &code, None).await;
    assert_eq!(s, 400, "a code works once");
    assert_eq!(
        userinfo_status(&app, "praxis-a", at).await,
        401,
        "reuse revokes the first tokens"
    );
    let (s, b, _) = post_form(
        &app,
        "praxis-a",
        "/id/token",
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", first["refresh_token"].as_str().unwrap()),
        ],
        Some(xc),
    )
    .await;
    assert_eq!((s, b["error"].as_str()), (400, Some("invalid_grant")));
    assert_eq!(count_events(&app, "praxis-a", "code_reuse"), 1);

    let code = code_for(&app, &c, "praxis-a", xc.0, &[]).await;
    clock.advance(61);
    let (s, _) = exchange(&app, "praxis-a", xc, &code, None).await;
    assert_eq!(s, 400, "an expired code");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_expired_and_foreign_tokens_are_refused() {
    let (app, clock) = manual_app().await;
    app.create_practice("praxis-a").await;
    app.create_practice("praxis-b").await;
    let ca = browser(&app, "praxis-a", "anna").await;
    let cb = browser(&app, "praxis-b", "bert").await;
    let a = register(&app, "praxis-a", tool("A", true, true)).await;
    let b = register(&app, "praxis-b", tool("B", true, true)).await;
    let ac = (a.client_id.as_str(), a.secret.as_deref().unwrap());
    let bc = (b.client_id.as_str(), b.secret.as_deref().unwrap());
    let code = code_for(&app, &ca, "praxis-a", ac.0, &[]).await;
    let (_, ta) = exchange(&app, "praxis-a", ac, &code, None).await;
    let code = code_for(&app, &cb, "praxis-b", bc.0, &[]).await;
    let (_, tb) = exchange(&app, "praxis-b", bc, &code, None).await;
    let at = ta["access_token"].as_str().unwrap();
    assert_eq!(userinfo_status(&app, "praxis-a", at).await, 200);

    let parts: Vec<&str> = at.split('.').collect();
    let header: Value = serde_json::from_slice(&B64.decode(parts[0]).unwrap()).unwrap();
    let enc = |v: &Value| B64.encode(v.to_string());
    let mut none_h = header.clone();
    none_h["alg"] = "none".into();
    let alg_none = format!("{}.{}.", enc(&none_h), parts[1]);
    let mut hs_h = header.clone();
    hs_h["alg"] = "HS256".into();
    let jwks = client()
        .get(app.url("praxis-a", "/id/jwks"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let input = format!("{}.{}", enc(&hs_h), parts[1]);
    let mac = kollegium_tenants::secrets::hmac_sha256(jwks.as_bytes(), input.as_bytes());
    let hs256 = format!("{input}.{}", B64.encode(mac));
    let mut payload = claims(at);
    payload["sub"] = "jemand-anders".into();
    let modified = format!("{}.{}.{}", parts[0], enc(&payload), parts[2]);
    let id_token = ta["id_token"].as_str().unwrap();
    for (what, token) in [
        ("alg none", alg_none.as_str()),
        ("HS256", &hs256),
        ("modified", &modified),
        ("id token", id_token),
        ("garbage", "abc.def.ghi"),
        ("B's token", tb["access_token"].as_str().unwrap()),
    ] {
        assert_eq!(
            userinfo_status(&app, "praxis-a", token).await,
            401,
            "{what}"
        );
        let (s, intro, _) = post_form(
            &app,
            "praxis-a",
            "/id/introspect",
            &[("token", token)],
            Some(ac),
        )
        .await;
        assert_eq!((s, &intro["active"]), (200, &Value::Bool(false)), "{what}");
    }
    let r = client()
        .get(app.url("praxis-a", "/id/userinfo"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(
        r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer")
    );
    let r = client()
        .post(app.url("praxis-a", "/id/userinfo"))
        .bearer_auth(at)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "userinfo by POST");

    // An ID token for another client as logout hint: refused, nobody is signed out.
    let q = serde_urlencoded::to_string([("id_token_hint", id_token), ("client_id", "platform")])
        .unwrap();
    let r = ca
        .get(app.url("praxis-a", &format!("/id/logout/end?{q}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // B's ID token as hint at A.
    let q =
        serde_urlencoded::to_string([("id_token_hint", tb["id_token"].as_str().unwrap())]).unwrap();
    let r = ca
        .get(app.url("praxis-a", &format!("/id/logout/end?{q}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    clock.advance(400);
    assert_eq!(userinfo_status(&app, "praxis-a", at).await, 401, "expired");
}
