//! Token signing seen by relying parties: key rotation with overlap for both algorithms,
//! clients registered for ES256 (verified by the `openidconnect` crate), and the ES256 key
//! a practice from before ES256 gets when a client first needs it.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use kollegium_idp::oidc::jwt::Alg;
use openidconnect::core::{CoreClient, CoreProviderMetadata};
use openidconnect::{ClientId, ClientSecret, IssuerUrl, Nonce};
use serde_json::Value;

use crate::harness::TestApp;
use crate::oidc_flow::{rp_http, verify_with_jwks};
use crate::oidc_support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_rotation_keeps_earlier_tokens_valid() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    let c = browser(&app, "praxis-a", "anna").await;
    let t = register(&app, "praxis-a", tool("Server", true, true)).await;
    let mut es = tool("Server ES", true, true);
    es.signing_alg = Alg::Es256;
    let e = register(&app, "praxis-a", es).await;
    let creds = (t.client_id.as_str(), t.secret.as_deref().unwrap());
    let es_creds = (e.client_id.as_str(), e.secret.as_deref().unwrap());
    let code = code_for(&app, &c, "praxis-a", creds.0, &[]).await;
    let (_, before) = exchange(&app, "praxis-a", creds, &code, None).await;
    let code = code_for(&app, &c, "praxis-a", es_creds.0, &[]).await;
    let (_, es_before) = exchange(&app, "praxis-a", es_creds, &code, None).await;
    let kid_of = |jwt: &str| -> Value {
        serde_json::from_slice(&B64.decode(jwt.split('.').next().unwrap()).unwrap()).unwrap()
    };
    let old_kid = kid_of(before["id_token"].as_str().unwrap())["kid"].clone();
    let old_es_kid = kid_of(es_before["access_token"].as_str().unwrap())["kid"].clone();
    let store = app.server().store.clone();
    let settings = app.config.idp.clone();
    let now = app.clock.now();
    let kid = tokio::task::spawn_blocking(move || {
        kollegium::practices::rotate_keys(
            &store,
            &kollegium_tenants::Slug::parse("praxis-a").unwrap(),
            &settings,
            now,
        )
        .unwrap()
    })
    .await
    .unwrap();
    let jwks: Value = app
        .get(&app.url("praxis-a", "/id/jwks"))
        .await
        .json()
        .await
        .unwrap();
    // Old and new key of each algorithm are published.
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 4);
    for old in [&before, &es_before] {
        assert_eq!(
            userinfo_status(&app, "praxis-a", old["access_token"].as_str().unwrap()).await,
            200
        );
    }
    let code = code_for(&app, &c, "praxis-a", creds.0, &[]).await;
    let (_, after) = exchange(&app, "praxis-a", creds, &code, None).await;
    let new_kid = kid_of(after["id_token"].as_str().unwrap())["kid"].clone();
    assert_eq!(new_kid, kid);
    assert_ne!(new_kid, old_kid);
    let code = code_for(&app, &c, "praxis-a", es_creds.0, &[]).await;
    let (_, es_after) = exchange(&app, "praxis-a", es_creds, &code, None).await;
    let new_es_kid = kid_of(es_after["access_token"].as_str().unwrap())["kid"].clone();
    assert_eq!(
        kid_of(es_after["id_token"].as_str().unwrap())["alg"],
        "ES256"
    );
    assert_ne!(new_es_kid, old_es_kid, "the ES256 key rotated too");
    assert_ne!(new_es_kid, new_kid);
    for new in [&after, &es_after] {
        assert_eq!(
            userinfo_status(&app, "praxis-a", new["access_token"].as_str().unwrap()).await,
            200
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_es256_client_gets_es256_tokens_a_standard_relying_party_verifies() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    let c = browser(&app, "praxis-a", "anna").await;
    let mut es = tool("Dienstplan ES", true, true);
    es.signing_alg = Alg::Es256;
    let created = register(&app, "praxis-a", es).await;
    let secret = created.secret.clone().unwrap();
    let creds = (created.client_id.as_str(), secret.as_str());
    let code = code_for(
        &app,
        &c,
        "praxis-a",
        creds.0,
        &[
            ("nonce", "n-es"),
            ("scope", "openid profile offline_access"),
        ],
    )
    .await;
    let (status, tokens) = exchange(&app, "praxis-a", creds, &code, None).await;
    assert_eq!(status, 200, "{tokens}");
    let id_token = tokens["id_token"].as_str().unwrap();
    let access = tokens["access_token"].as_str().unwrap();
    let (h, id_claims) = verify_with_jwks(&app, "praxis-a", id_token).await;
    assert_eq!(h["alg"], "ES256");
    assert_eq!(id_claims["nonce"], "n-es");
    let (ah, at) = verify_with_jwks(&app, "praxis-a", access).await;
    assert_eq!(
        (ah["alg"].as_str(), ah["typ"].as_str()),
        (Some("ES256"), Some("at+jwt"))
    );
    assert_eq!(at["aud"], created.client_id);

    // The openidconnect crate, configured from discovery, verifies the ES256 ID token.
    let issuer = format!("{}/id", app.url("praxis-a", ""));
    let http = rp_http();
    let meta = CoreProviderMetadata::discover_async(IssuerUrl::new(issuer).unwrap(), &http)
        .await
        .unwrap();
    let rp = CoreClient::from_provider_metadata(
        meta,
        ClientId::new(created.client_id.clone()),
        Some(ClientSecret::new(secret.clone())),
    );
    let verifier = rp.id_token_verifier().set_allowed_algs(vec![
        openidconnect::core::CoreJwsSigningAlgorithm::EcdsaP256Sha256,
    ]);
    let parsed: openidconnect::core::CoreIdToken = id_token.parse().unwrap();
    let verified = parsed
        .claims(&verifier, &Nonce::new("n-es".into()))
        .unwrap();
    assert_eq!(verified.preferred_username().unwrap().as_str(), "anna");
    let rs256_only = rp.id_token_verifier().set_allowed_algs(vec![
        openidconnect::core::CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
    ]);
    assert!(
        parsed
            .claims(&rs256_only, &Nonce::new("n-es".into()))
            .is_err(),
        "a verifier that allows only RS256 refuses it"
    );

    // Userinfo takes the ES256 access token; a refresh gives ES256 tokens again.
    assert_eq!(userinfo_status(&app, "praxis-a", access).await, 200);
    let (s, refreshed, _) = post_form(
        &app,
        "praxis-a",
        "/id/token",
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
        ],
        Some(creds),
    )
    .await;
    assert_eq!(s, 200, "{refreshed}");
    for t in ["access_token", "id_token"] {
        let (h, _) = verify_with_jwks(&app, "praxis-a", refreshed[t].as_str().unwrap()).await;
        assert_eq!(h["alg"], "ES256", "{t}");
    }
    // An ES256 token whose header claims RS256 (or HS256) is refused.
    let parts: Vec<&str> = access.split('.').collect();
    for alg in ["RS256", "HS256", "none"] {
        let header = serde_json::json!({"alg": alg, "typ": "at+jwt", "kid": ah["kid"]});
        let forged = format!(
            "{}.{}.{}",
            B64.encode(header.to_string()),
            parts[1],
            parts[2]
        );
        assert_eq!(
            userinfo_status(&app, "praxis-a", &forged).await,
            401,
            "{alg}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_practice_from_before_es256_gets_its_key_when_a_client_first_needs_it() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    app.create_practice("praxis-b").await;
    // As a practice created before ES256 keys existed: only its RSA key.
    let tenant = app.tenant("praxis-a");
    tokio::task::spawn_blocking(move || {
        use diesel::RunQueryDsl;
        let mut conn = tenant.conn(&kollegium_idp::IDP_DB).unwrap();
        diesel::sql_query("DELETE FROM signing_keys WHERE alg = 'ES256'")
            .execute(&mut *conn)
            .unwrap();
    })
    .await
    .unwrap();
    let jwks = |slug: &'static str| {
        let app = &app;
        async move {
            let v: Value = app
                .get(&app.url(slug, "/id/jwks"))
                .await
                .json()
                .await
                .unwrap();
            v["keys"].as_array().unwrap().clone()
        }
    };
    assert_eq!(jwks("praxis-a").await.len(), 1);
    let b_keys = jwks("praxis-b").await;

    let c = browser(&app, "praxis-a", "anna").await;
    let mut es = tool("Dienstplan ES", true, true);
    es.signing_alg = Alg::Es256;
    let t = register(&app, "praxis-a", es).await;
    let creds = (t.client_id.as_str(), t.secret.as_deref().unwrap());
    let code = code_for(&app, &c, "praxis-a", creds.0, &[]).await;
    let (s, tokens) = exchange(&app, "praxis-a", creds, &code, None).await;
    assert_eq!(s, 200, "{tokens}");
    let (h, _) = verify_with_jwks(&app, "praxis-a", tokens["id_token"].as_str().unwrap()).await;
    assert_eq!(h["alg"], "ES256");
    let keys = jwks("praxis-a").await;
    assert_eq!(
        keys.len(),
        2,
        "the new ES256 key is published beside the RSA key"
    );
    // The next exchange uses the same key, and practice B's keys are untouched.
    let code = code_for(&app, &c, "praxis-a", creds.0, &[]).await;
    let (_, again) = exchange(&app, "praxis-a", creds, &code, None).await;
    let (h2, _) = verify_with_jwks(&app, "praxis-a", again["id_token"].as_str().unwrap()).await;
    assert_eq!(h2["kid"], h["kid"]);
    assert_eq!(jwks("praxis-a").await.len(), 2);
    assert_eq!(jwks("praxis-b").await, b_keys);
    assert!(!b_keys.iter().any(|k| k["kid"] == h["kid"]));
}
