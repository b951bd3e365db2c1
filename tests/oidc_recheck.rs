//! Decisions the provider makes again at the last step: a consent POST re-decides
//! `max_age`, `prompt=login` and the ID-token hint like the authorization endpoint; a code
//! whose PKCE check failed is burnt.

use std::sync::Arc;

use kollegium_tenants::clock::ManualClock;

use crate::harness::TestApp;
use crate::oidc_support::*;

const CB: &str = "https://tool.example/cb";

/// The consent page's form fields for an authorization request with `extra` parameters.
async fn consent_form(
    app: &TestApp,
    c: &reqwest::Client,
    client_id: &str,
    extra: &[(&str, &str)],
) -> Vec<(String, String)> {
    let mut p = vec![
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", CB),
        ("scope", "openid profile"),
        ("state", "st"),
    ];
    p.extend_from_slice(extra);
    let r = authorize(app, c, "praxis-a", &p).await;
    assert_eq!(r.status(), 200, "consent page");
    hidden_fields(&r.text().await.unwrap())
}

async fn post_consent(
    app: &TestApp,
    c: &reqwest::Client,
    mut fields: Vec<(String, String)>,
) -> reqwest::Response {
    fields.push(("decision".into(), "allow".into()));
    c.post(app.url("praxis-a", "/id/authorize/consent"))
        .form(&fields)
        .send()
        .await
        .unwrap()
}

/// Asserts a redirect to a forced login (no code anywhere).
fn assert_relogin(r: &reqwest::Response) {
    assert_eq!(r.status(), 303);
    let to = location(r);
    assert!(to.starts_with("/id/login?"), "{to}");
    assert_eq!(
        query(&to).get("force").map(String::as_str),
        Some("1"),
        "{to}"
    );
    assert!(!to.contains("code="), "{to}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consent_posted_after_max_age_asks_for_a_new_login_and_issues_no_code() {
    let clock = Arc::new(ManualClock::new(1_800_000_000));
    let app = TestApp::spawn_with_clock(clock.clone(), |_| {}).await;
    app.create_practice("praxis-a").await;
    let c = browser(&app, "praxis-a", "anna").await;
    let created = register(&app, "praxis-a", tool("Dienstplan", true, false)).await;
    let id = created.client_id.as_str();

    // The consent page is shown while the login is fresh enough ...
    let fields = consent_form(&app, &c, id, &[("max_age", "60")]).await;
    // ... and posted after the session has become older than max_age.
    clock.advance(120);
    let r = post_consent(&app, &c, fields).await;
    assert_relogin(&r);
    // Nothing was written: the consent is not remembered, no code exists.
    let r = authorize(
        &app,
        &c,
        "praxis-a",
        &[
            ("response_type", "code"),
            ("client_id", id),
            ("redirect_uri", CB),
            ("scope", "openid profile"),
        ],
    )
    .await;
    assert_eq!(r.status(), 200, "still asks for consent");
    let codes = app
        .idp_db("praxis-a", |conn| {
            use diesel::prelude::*;
            kollegium_idp::schema::auth_codes::table
                .count()
                .get_result::<i64>(conn)
                .unwrap()
        })
        .await;
    assert_eq!(codes, 0);

    // Within max_age the same consent goes through.
    let fields = consent_form(&app, &c, id, &[("max_age", "600")]).await;
    let r = post_consent(&app, &c, fields).await;
    assert_eq!(r.status(), 302);
    assert!(location(&r).starts_with(CB) && location(&r).contains("code="));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consent_post_cannot_skip_prompt_login_or_a_hint_for_someone_else() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    let third = register(&app, "praxis-a", tool("Zeiterfassung", true, false)).await;
    // Bob's ID token for the third-party tool (a hint naming Bob).
    let bob = browser(&app, "praxis-a", "bob").await;
    let code = code_with_consent(&app, &bob, "praxis-a", &third.client_id, "openid").await;
    let (s, tokens) = exchange(
        &app,
        "praxis-a",
        (&third.client_id, third.secret.as_deref().unwrap()),
        &code,
        None,
    )
    .await;
    assert_eq!(s, 200);
    let bobs_hint = tokens["id_token"].as_str().unwrap().to_owned();

    let anna = browser(&app, "praxis-a", "anna").await;
    // A consent form with prompt=login or Bob's hint added by hand: Anna must log in again.
    let fields = consent_form(&app, &anna, &third.client_id, &[]).await;
    let mut with_prompt = fields.clone();
    with_prompt.push(("prompt".into(), "login".into()));
    assert_relogin(&post_consent(&app, &anna, with_prompt).await);
    let mut with_hint = fields.clone();
    with_hint.push(("id_token_hint".into(), bobs_hint));
    assert_relogin(&post_consent(&app, &anna, with_hint).await);
    // The unchanged form is fine.
    let r = post_consent(&app, &anna, fields).await;
    assert_eq!(r.status(), 302);
    assert!(location(&r).contains("code="));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_pkce_check_burns_the_code() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    let c = browser(&app, "praxis-a", "anna").await;
    let created = register(&app, "praxis-a", tool("Dienstplan", true, true)).await;
    let creds = (
        created.client_id.as_str(),
        created.secret.as_deref().unwrap(),
    );
    let (verifier, challenge) = pkce();
    let code = code_for(
        &app,
        &c,
        "praxis-a",
        creds.0,
        &[
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
        ],
    )
    .await;
    // Someone with the code but not the verifier tries it ...
    let (wrong, _) = pkce();
    let (s, body) = exchange(&app, "praxis-a", creds, &code, Some(&wrong)).await;
    assert_eq!((s, body["error"].as_str()), (400, Some("invalid_grant")));
    // ... and the code is gone, even with the right verifier.
    let (s, body) = exchange(&app, "praxis-a", creds, &code, Some(&verifier)).await;
    assert_eq!((s, body["error"].as_str()), (400, Some("invalid_grant")));
    assert!(body.get("access_token").is_none());

    // A code whose first exchange is right still works (nothing else changed).
    let (verifier, challenge) = pkce();
    let code = code_for(
        &app,
        &c,
        "praxis-a",
        creds.0,
        &[
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
        ],
    )
    .await;
    let (s, _) = exchange(&app, "praxis-a", creds, &code, Some(&verifier)).await;
    assert_eq!(s, 200);
}
