//! The OpenID Connect provider seen by an independent relying party (the `openidconnect`
//! crate): discovery, code flow with PKCE through the real login and consent forms, ID
//! token verification, userinfo, refresh rotation, revocation, introspection, RP-initiated
//! and back-channel logout; client credentials; consent; key rotation.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use kollegium_idp::oidc::clients::RedirectUri;
use openidconnect::core::{CoreClient, CoreProviderMetadata, CoreResponseType, CoreUserInfoClaims};
use openidconnect::{
    AuthenticationFlow, AuthorizationCode, ClientId, ClientSecret, CsrfToken, IntrospectionUrl,
    IssuerUrl, Nonce, OAuth2TokenResponse, PkceCodeChallenge, RedirectUrl, Scope,
    TokenIntrospectionResponse, TokenResponse,
};
use rsa::pkcs1v15::{Signature, VerifyingKey};
use rsa::signature::Verifier;
use serde_json::Value;

use crate::harness::{TestApp, client, form_csrf};
use crate::oidc_support::*;

pub fn rp_http() -> reqwest::Client {
    crate::harness::builder().build().unwrap()
}

/// Verifies a JWT (RS256 or ES256, as its key in the practice's JWKS says) and returns
/// its header and claims.
pub async fn verify_with_jwks(app: &TestApp, slug: &str, jwt: &str) -> (Value, Value) {
    let jwks: Value = client()
        .get(app.url(slug, "/id/jwks"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut parts = jwt.split('.');
    let (h, c, s) = (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
    );
    let header: Value = serde_json::from_slice(&B64.decode(h).unwrap()).unwrap();
    let key = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == header["kid"])
        .unwrap();
    assert_eq!(key["alg"], header["alg"], "the key's algorithm signed it");
    let field = |name: &str| B64.decode(key[name].as_str().unwrap()).unwrap();
    let message = format!("{h}.{c}");
    match key["kty"].as_str().unwrap() {
        "RSA" => {
            let n = rsa::BigUint::from_bytes_be(&field("n"));
            let e = rsa::BigUint::from_bytes_be(&field("e"));
            let vk = VerifyingKey::<sha2::Sha256>::new(rsa::RsaPublicKey::new(n, e).unwrap());
            let sig = Signature::try_from(B64.decode(s).unwrap().as_slice()).unwrap();
            vk.verify(message.as_bytes(), &sig).unwrap();
        }
        "EC" => {
            assert_eq!(key["crv"], "P-256");
            let point = [vec![4u8], field("x"), field("y")].concat();
            ring::signature::UnparsedPublicKey::new(
                &ring::signature::ECDSA_P256_SHA256_FIXED,
                point,
            )
            .verify(message.as_bytes(), &B64.decode(s).unwrap())
            .unwrap();
        }
        other => panic!("unexpected key type {other}"),
    }
    (header, claims(jwt))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn code_flow_with_an_independent_relying_party() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    app.create_user("praxis-a", "anna", PASSWORD, false).await;
    let (bc_port, mut bc_rx) = receiver().await;
    let mut tool = tool("Dienstplan", true, false);
    tool.backchannel_logout_uri =
        Some(RedirectUri::parse(&format!("http://127.0.0.1:{bc_port}/backchannel")).unwrap());
    let created = register(&app, "praxis-a", tool).await;
    let secret = created.secret.clone().unwrap();

    // Discovery and JWKS through the crate.
    let issuer = format!("{}/id", app.url("praxis-a", ""));
    let http = rp_http();
    let meta = CoreProviderMetadata::discover_async(IssuerUrl::new(issuer.clone()).unwrap(), &http)
        .await
        .unwrap();
    let rp = CoreClient::from_provider_metadata(
        meta,
        ClientId::new(created.client_id.clone()),
        Some(ClientSecret::new(secret.clone())),
    )
    .set_redirect_uri(RedirectUrl::new("https://tool.example/cb".into()).unwrap())
    .set_introspection_url(IntrospectionUrl::new(format!("{issuer}/introspect")).unwrap());
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (auth_url, state, nonce) = rp
        .authorize_url(
            AuthenticationFlow::<CoreResponseType>::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("profile".into()))
        .add_scope(Scope::new("email".into()))
        .add_scope(Scope::new("practice".into()))
        .add_scope(Scope::new("offline_access".into()))
        .set_pkce_challenge(challenge)
        .url();

    // The browser: authorize -> login form (with CSRF token) -> consent -> back to the tool.
    let c = client();
    let r = c.get(auth_url.as_str()).send().await.unwrap();
    assert_eq!(r.status(), 303);
    let login_url = location(&r);
    assert!(
        login_url.starts_with("/id/login?next=%2Fid%2Fauthorize"),
        "{login_url}"
    );
    let page = c
        .get(app.url("praxis-a", &login_url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let next = hidden_fields(&page)
        .into_iter()
        .find(|(k, _)| k == "next")
        .unwrap()
        .1;
    assert!(next.starts_with("/id/authorize?"), "{next}");
    let r = c
        .post(app.url("praxis-a", "/id/login"))
        .form(&[
            ("csrf_token", form_csrf(&page).as_str()),
            ("login", "anna"),
            ("password", PASSWORD),
            ("next", next.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let r = c
        .get(app.url("praxis-a", &location(&r)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let consent = r.text().await.unwrap();
    assert!(
        consent.contains("Dienstplan möchte Sie anmelden"),
        "{consent}"
    );
    assert!(consent.contains("Praxisangaben") && consent.contains("Dauerhafter Zugriff"));
    let mut form = hidden_fields(&consent);
    form.push(("decision".into(), "allow".into()));
    let r = c
        .post(app.url("praxis-a", "/id/authorize/consent"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    let back = query(&location(&r));
    assert_eq!(back["state"], *state.secret());
    assert_eq!(back["iss"], issuer);

    // Token exchange; the crate verifies the ID token (signature, issuer, audience, nonce).
    let tokens = rp
        .exchange_code(AuthorizationCode::new(back["code"].clone()))
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .unwrap();
    let id_token = tokens.id_token().unwrap();
    let id_claims = id_token.claims(&rp.id_token_verifier(), &nonce).unwrap();
    assert_eq!(id_claims.preferred_username().unwrap().as_str(), "anna");
    assert_eq!(id_claims.email().unwrap().as_str(), "anna@praxis-a.example");
    let (header, raw) = verify_with_jwks(&app, "praxis-a", &id_token.to_string()).await;
    assert_eq!(header["typ"], "JWT");
    assert_eq!(
        header["alg"], "RS256",
        "RS256 unless the client asks for ES256"
    );
    assert!(header["kid"].is_string());
    assert_eq!(raw["practice"]["slug"], "praxis-a");
    assert_eq!(raw["roles"], serde_json::json!(["mfa"]));
    assert!(raw["sid"].is_string() && raw["auth_time"].is_i64());
    assert_eq!(
        raw["at_hash"],
        kollegium_idp::oidc::jwt::at_hash(tokens.access_token().secret())
    );
    let (at_header, at) = verify_with_jwks(&app, "praxis-a", tokens.access_token().secret()).await;
    assert_eq!(at_header["typ"], "at+jwt");
    assert_eq!(
        at_header["alg"], "RS256",
        "the client did not ask for ES256"
    );
    assert_eq!(at["aud"], created.client_id);

    // Userinfo through the crate.
    let info: CoreUserInfoClaims = rp
        .user_info(
            tokens.access_token().clone(),
            Some(id_claims.subject().clone()),
        )
        .unwrap()
        .request_async(&http)
        .await
        .unwrap();
    assert_eq!(info.preferred_username().unwrap().as_str(), "anna");

    // Introspection through the crate.
    let intro = rp
        .introspect(tokens.access_token())
        .request_async(&http)
        .await
        .unwrap();
    assert!(intro.active());
    assert_eq!(intro.client_id().unwrap().as_str(), created.client_id);

    // Refresh rotates the refresh token.
    let refresh = tokens.refresh_token().unwrap().clone();
    let refreshed = rp
        .exchange_refresh_token(&refresh)
        .unwrap()
        .request_async(&http)
        .await
        .unwrap();
    let new_refresh = refreshed.refresh_token().unwrap().clone();
    assert_ne!(new_refresh.secret(), refresh.secret());
    assert_eq!(
        userinfo_status(&app, "praxis-a", refreshed.access_token().secret()).await,
        200
    );

    // Revoking the access token: introspection and userinfo refuse it afterwards.
    let creds = (created.client_id.as_str(), secret.as_str());
    let (s, _, _) = post_form(
        &app,
        "praxis-a",
        "/id/revoke",
        &[("token", tokens.access_token().secret())],
        Some(creds),
    )
    .await;
    assert_eq!(s, 200);
    let intro = rp
        .introspect(tokens.access_token())
        .request_async(&http)
        .await
        .unwrap();
    assert!(!intro.active());
    assert_eq!(
        userinfo_status(&app, "praxis-a", tokens.access_token().secret()).await,
        401
    );

    // RP-initiated logout with the ID token as hint: straight back to the registered address.
    let q = serde_urlencoded::to_string([
        ("id_token_hint", id_token.to_string().as_str()),
        ("post_logout_redirect_uri", "https://tool.example/bye"),
        ("state", "tschuess"),
    ])
    .unwrap();
    let r = c
        .get(app.url("praxis-a", &format!("/id/logout/end?{q}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(location(&r), "https://tool.example/bye?state=tschuess");
    let r = c
        .get(app.url("praxis-a", "/id/account"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "the IdP session has ended");

    // The back-channel logout token reaches the tool and verifies.
    let body = tokio::time::timeout(Duration::from_secs(20), bc_rx.recv())
        .await
        .unwrap()
        .unwrap();
    let form: Vec<(String, String)> = serde_urlencoded::from_str(&body).unwrap();
    let logout_token = &form.iter().find(|(k, _)| k == "logout_token").unwrap().1;
    let (lh, lc) = verify_with_jwks(&app, "praxis-a", logout_token).await;
    assert_eq!(lh["typ"], "logout+jwt");
    assert_eq!(lh["alg"], "RS256");
    assert_eq!(lc["iss"], issuer);
    assert_eq!(lc["aud"], created.client_id);
    assert_eq!(lc["sid"], raw["sid"]);
    assert_eq!(lc["sub"], raw["sub"]);
    assert!(lc["events"]["http://schemas.openid.net/event/backchannel-logout"].is_object());
    assert!(lc.get("nonce").is_none());

    // Offline access survives the logout; the rotated-away refresh token does not.
    let r = rp
        .exchange_refresh_token(&refresh)
        .unwrap()
        .request_async(&http)
        .await;
    assert!(r.is_err(), "a rotated refresh token is refused");
    let r = rp
        .exchange_refresh_token(&new_refresh)
        .unwrap()
        .request_async(&http)
        .await;
    assert!(
        r.is_err(),
        "reuse of a rotated refresh token revokes the whole grant"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_advertises_exactly_what_is_supported() {
    let app = TestApp::spawn().await;
    let report = app.create_practice("praxis-a").await;
    let client = report.first_party_client.as_ref().unwrap();
    assert_eq!(client.client_id, "platform");
    assert!(client.secret.len() >= 40);
    assert!(!report.notes.iter().any(|n| n.contains(&client.secret)));
    assert!(!format!("{report:?}").contains(&client.secret));
    let a: Value = app
        .get(&app.url("praxis-a", "/id/.well-known/openid-configuration"))
        .await
        .json()
        .await
        .unwrap();
    let b: Value = app
        .get(&app.url("praxis-a", "/.well-known/oauth-authorization-server/id"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(a, b);
    let issuer = format!("{}/id", app.url("praxis-a", ""));
    assert_eq!(a["issuer"], issuer);
    assert_eq!(a["response_types_supported"], serde_json::json!(["code"]));
    assert_eq!(
        a["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );
    assert_eq!(
        a["id_token_signing_alg_values_supported"],
        serde_json::json!(["RS256", "ES256"])
    );
    assert_eq!(a["backchannel_logout_supported"], true);
    assert_eq!(a["backchannel_logout_session_supported"], true);
    assert_eq!(a["end_session_endpoint"], format!("{issuer}/logout/end"));
    for k in [
        "revocation_endpoint",
        "introspection_endpoint",
        "userinfo_endpoint",
        "jwks_uri",
    ] {
        assert!(a[k].as_str().unwrap().starts_with(&issuer), "{k}");
    }
    let jwks: Value = app
        .get(&app.url("praxis-a", "/id/jwks"))
        .await
        .json()
        .await
        .unwrap();
    let keys = jwks["keys"].as_array().unwrap();
    let algs: Vec<&str> = keys.iter().map(|k| k["alg"].as_str().unwrap()).collect();
    assert_eq!(algs.len(), 2, "{algs:?}");
    assert!(
        algs.contains(&"RS256") && algs.contains(&"ES256"),
        "{algs:?}"
    );
    for k in keys {
        assert_eq!(k["use"], "sig");
        assert!(k.get("d").is_none(), "no private parts in the JWKS");
    }
    let rsa = keys.iter().find(|k| k["kty"] == "RSA").unwrap();
    assert!(
        B64.decode(rsa["n"].as_str().unwrap()).unwrap().len() >= 256,
        "RSA key of 2048 bits or more"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consent_is_asked_once_remembered_and_revocable() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    let c = browser(&app, "praxis-a", "anna").await;
    let third = register(&app, "praxis-a", tool("Zeiterfassung", true, false)).await;
    let first = register(&app, "praxis-a", tool("Eigenes", true, true)).await;
    // First-party: no consent page.
    code_for(&app, &c, "praxis-a", &first.client_id, &[]).await;
    let params = [
        ("response_type", "code"),
        ("client_id", third.client_id.as_str()),
        ("redirect_uri", "https://tool.example/cb"),
        ("scope", "openid profile"),
        ("state", "s1"),
    ];
    // prompt=none without consent: consent_required back to the tool.
    let mut none = params.to_vec();
    none.push(("prompt", "none"));
    let r = authorize(&app, &c, "praxis-a", &none).await;
    assert_eq!(query(&location(&r))["error"], "consent_required");
    // Declining sends access_denied.
    let r = authorize(&app, &c, "praxis-a", &params).await;
    let html = r.text().await.unwrap();
    let mut form = hidden_fields(&html);
    form.push(("decision".into(), "deny".into()));
    let r = c
        .post(app.url("praxis-a", "/id/authorize/consent"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(query(&location(&r))["error"], "access_denied");
    // Without the CSRF token the decision is refused.
    let no_csrf: Vec<_> = form
        .iter()
        .filter(|(k, _)| k != "csrf_token")
        .cloned()
        .collect();
    let r = c
        .post(app.url("praxis-a", "/id/authorize/consent"))
        .form(&no_csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // Allow once; then it is remembered.
    let mut allow = hidden_fields(&html);
    allow.push(("decision".into(), "allow".into()));
    let r = c
        .post(app.url("praxis-a", "/id/authorize/consent"))
        .form(&allow)
        .send()
        .await
        .unwrap();
    assert!(query(&location(&r)).contains_key("code"));
    code_for(
        &app,
        &c,
        "praxis-a",
        &third.client_id,
        &[("scope", "openid profile")],
    )
    .await;
    // More scopes than consented: asked again.
    let mut more = params.to_vec();
    more[3] = ("scope", "openid profile email");
    let r = authorize(&app, &c, "praxis-a", &more).await;
    assert_eq!(r.status(), 200);
    // Revoked through the domain function: asked again.
    let tenant = app.tenant("praxis-a");
    let id = third.client_id.clone();
    let now = app.clock.now();
    tokio::task::spawn_blocking(move || {
        let mut conn = tenant.conn(&kollegium_idp::IDP_DB).unwrap();
        let anna = kollegium_idp::users::by_login(&mut conn, "anna")
            .unwrap()
            .unwrap();
        assert!(kollegium_idp::oidc::consent::revoke(&mut conn, anna.id, &id, now).unwrap());
    })
    .await
    .unwrap();
    let r = authorize(&app, &c, "praxis-a", &params).await;
    assert_eq!(r.status(), 200);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("Zeiterfassung möchte Sie anmelden")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_credentials_for_confidential_clients_only() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    let conf = register(&app, "praxis-a", tool("Server", true, false)).await;
    let public = register(&app, "praxis-a", tool("App", false, false)).await;
    let creds = (conf.client_id.as_str(), conf.secret.as_deref().unwrap());
    // client_secret_post as well as basic.
    let (s, body, _) = post_form(
        &app,
        "praxis-a",
        "/id/token",
        &[
            ("grant_type", "client_credentials"),
            ("client_id", creds.0),
            ("client_secret", creds.1),
        ],
        None,
    )
    .await;
    assert_eq!(s, 200, "{body}");
    assert!(body.get("refresh_token").is_none() && body.get("id_token").is_none());
    let at = body["access_token"].as_str().unwrap().to_owned();
    assert_eq!(claims(&at)["sub"], conf.client_id);
    let (s, intro, _) = post_form(
        &app,
        "praxis-a",
        "/id/introspect",
        &[("token", &at)],
        Some(creds),
    )
    .await;
    assert_eq!((s, &intro["active"]), (200, &Value::Bool(true)));
    // No user behind it: userinfo refuses.
    assert_eq!(userinfo_status(&app, "praxis-a", &at).await, 403);
    let (s, body, _) = post_form(
        &app,
        "praxis-a",
        "/id/token",
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &public.client_id),
        ],
        None,
    )
    .await;
    assert_eq!(
        (s, body["error"].as_str()),
        (400, Some("unauthorized_client"))
    );
    let (s, body, www) = post_form(
        &app,
        "praxis-a",
        "/id/token",
        &[("grant_type", "client_credentials")],
        Some((creds.0, "falsch")),
    )
    .await;
    assert_eq!((s, body["error"].as_str()), (401, Some("invalid_client")));
    assert!(www.unwrap().starts_with("Basic"));
    let (s, _, _) = post_form(
        &app,
        "praxis-a",
        "/id/introspect",
        &[("token", &at), ("client_id", &public.client_id)],
        None,
    )
    .await;
    assert_eq!(s, 401, "public clients cannot introspect");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_back_channel_logout_is_retried_with_backoff() {
    let clock = Arc::new(kollegium_tenants::clock::ManualClock::new(1_800_000_000));
    let app = TestApp::spawn_with_clock(clock.clone(), |_| {}).await;
    app.create_practice("praxis-a").await;
    let c = browser(&app, "praxis-a", "anna").await;
    // The tool's endpoint fails twice, then accepts.
    let (port, mut rx) = receiver_failing_first(2).await;
    let mut t = tool("Dienstplan", true, true);
    t.backchannel_logout_uri =
        Some(RedirectUri::parse(&format!("http://127.0.0.1:{port}/backchannel")).unwrap());
    let created = register(&app, "praxis-a", t).await;
    let creds = (
        created.client_id.as_str(),
        created.secret.as_deref().unwrap(),
    );
    let code = code_for(&app, &c, "praxis-a", creds.0, &[]).await;
    let (s, tokens) = exchange(&app, "praxis-a", creds, &code, None).await;
    assert_eq!(s, 200);
    let sid = claims(tokens["id_token"].as_str().unwrap())["sid"].clone();

    // Logging out at the IdP queues the notice; the first attempt fails.
    let page = c
        .get(app.url("praxis-a", "/id/account"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let r = c
        .post(app.url("praxis-a", "/id/logout"))
        .form(&[("csrf_token", form_csrf(&page))])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let first = next_body(&mut rx).await.expect("first attempt");
    // Nothing more before the backoff has passed (10 s, then 20 s, on the injected clock).
    let early = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await;
    assert!(early.is_err(), "no retry before the backoff");
    clock.advance(11);
    let second = next_body(&mut rx).await.expect("second attempt after 10 s");
    clock.advance(21);
    let third = next_body(&mut rx)
        .await
        .expect("third attempt after 20 s more");
    // Every attempt carries a valid logout token for the same session.
    for body in [&first, &second, &third] {
        let form: Vec<(String, String)> = serde_urlencoded::from_str(body).unwrap();
        let token = &form.iter().find(|(k, _)| k == "logout_token").unwrap().1;
        let (_, lc) = verify_with_jwks(&app, "praxis-a", token).await;
        assert_eq!(lc["sid"], sid);
        assert_eq!(lc["aud"], created.client_id);
    }
    // Delivered: no further attempts, however much time passes.
    clock.advance(3600);
    let after = tokio::time::timeout(Duration::from_secs(8), rx.recv()).await;
    assert!(after.is_err(), "a delivered notice is not sent again");
}

async fn next_body(rx: &mut tokio::sync::mpsc::UnboundedReceiver<String>) -> Option<String> {
    tokio::time::timeout(Duration::from_secs(20), rx.recv())
        .await
        .ok()
        .flatten()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_page_tile_signs_the_user_in_to_the_tool_without_a_prompt() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    let c = browser(&app, "praxis-a", "anna").await;
    let mut t = tool("Dienstplan", true, false);
    t.initiate_login_uri = Some(RedirectUri::parse("https://tool.example/login").unwrap());
    t.launch_url = Some(RedirectUri::parse("https://tool.example/plan").unwrap());
    let created = register(&app, "praxis-a", t).await;
    let creds = (
        created.client_id.as_str(),
        created.secret.as_deref().unwrap(),
    );
    // Consent once (as at the first use of a third-party tool).
    let code = code_with_consent(&app, &c, "praxis-a", creds.0, "openid profile").await;
    assert_eq!(exchange(&app, "praxis-a", creds, &code, None).await.0, 200);

    // The tile is on the start page and sends the browser to the tool's login initiation.
    // The one start page (the workspace's; the IdP's address leads there).
    let home = app
        .follow(&c, "praxis-a", app.url("praxis-a", "/id/"))
        .await
        .text()
        .await
        .unwrap();
    assert!(home.contains(&format!("/id/launch/{}", created.client_id)));
    let r = c
        .get(app.url("praxis-a", &format!("/id/launch/{}", created.client_id)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let to = location(&r);
    let q = query(&to);
    let issuer = format!("{}/id", app.url("praxis-a", ""));
    assert!(to.starts_with("https://tool.example/login?"), "{to}");
    assert_eq!(q["iss"], issuer);
    assert_eq!(q["target_link_uri"], "https://tool.example/plan");
    // The tool starts a normal code flow (here with prompt=none, as a tool that must not
    // show the login form may): it completes without a form because the session exists.
    let r = authorize(
        &app,
        &c,
        "praxis-a",
        &[
            ("response_type", "code"),
            ("client_id", creds.0),
            ("redirect_uri", "https://tool.example/cb"),
            ("scope", "openid profile"),
            ("state", "tile"),
            ("prompt", "none"),
        ],
    )
    .await;
    assert_eq!(r.status(), 302);
    let back = query(&location(&r));
    assert_eq!(back["state"], "tile");
    let (s, tokens) = exchange(&app, "praxis-a", creds, &back["code"], None).await;
    assert_eq!(s, 200, "{tokens}");
    assert_eq!(
        claims(tokens["id_token"].as_str().unwrap())["preferred_username"],
        "anna"
    );
    // Without the IdP session the same request goes back with login_required.
    let fresh = crate::harness::client();
    let r = authorize(
        &app,
        &fresh,
        "praxis-a",
        &[
            ("response_type", "code"),
            ("client_id", creds.0),
            ("redirect_uri", "https://tool.example/cb"),
            ("scope", "openid profile"),
            ("state", "tile"),
            ("prompt", "none"),
        ],
    )
    .await;
    assert_eq!(query(&location(&r))["error"], "login_required");
}
