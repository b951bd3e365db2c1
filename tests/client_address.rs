//! The client address behind a reverse proxy: `X-Forwarded-For`/`Forwarded` name the
//! client only when the TCP peer is a configured trusted proxy, so members behind the
//! proxy are throttled one by one, and a client talking to the node directly cannot
//! choose (or rotate) its address.

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

use crate::harness::TestApp;
use crate::idp_mfa::PW;

/// A browser whose requests carry `name: value` (as a proxy in front of the node would
/// add it, or as a client forges it).
pub fn client_with(name: &str, value: &[u8]) -> reqwest::Client {
    let mut h = HeaderMap::new();
    h.insert(
        HeaderName::from_bytes(name.as_bytes()).unwrap(),
        HeaderValue::from_bytes(value).unwrap(),
    );
    crate::harness::builder()
        .cookie_store(true)
        .default_headers(h)
        .build()
        .unwrap()
}

/// A browser behind the proxy at `addr`.
pub fn client_from(addr: &str) -> reqwest::Client {
    client_with("x-forwarded-for", addr.as_bytes())
}

/// `(kind, ip, detail)` of the practice's security events, oldest first.
pub async fn events(app: &TestApp, slug: &str) -> Vec<(String, Option<String>, String)> {
    let mut v: Vec<_> = app
        .idp_db(slug, |c| {
            kollegium_idp::events::list(c, &kollegium_idp::events::Filter::default(), 1000).unwrap()
        })
        .await
        .into_iter()
        .map(|e| (e.kind, e.ip, e.detail))
        .collect();
    v.reverse();
    v
}

async fn guess(app: &TestApp, c: &reqwest::Client, login: &str) -> u16 {
    app.login(c, "praxis-a", login, "falsch-geraten-1")
        .await
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_trusted_proxy_each_forwarded_address_is_throttled_on_its_own() {
    let app = TestApp::spawn_with(|c| {
        c.trusted_proxies = vec!["127.0.0.1".into()];
        c.idp.address_lockout_threshold = 3;
        c.idp.max_delay_ms = 50;
    })
    .await;
    app.create_practice("praxis-a").await;
    app.create_user("praxis-a", "anna", PW, false).await;

    // One member's browser behind the proxy guesses names until its address is locked.
    let guesser = client_from("198.51.100.1");
    for i in 0..3 {
        assert_eq!(
            guess(&app, &guesser, &format!("gibt-es-nicht-{i}")).await,
            401
        );
    }
    assert_eq!(guess(&app, &guesser, "gibt-es-nicht-3").await, 429);
    // Putting another address in front of its own does not get it out.
    let disguised = client_from("203.0.113.9, 198.51.100.1");
    assert_eq!(
        app.login(&disguised, "praxis-a", "anna", PW).await.status(),
        429
    );

    // Another member behind the same proxy signs in as usual.
    let colleague = client_from("198.51.100.2");
    assert_eq!(
        app.login(&colleague, "praxis-a", "anna", PW).await.status(),
        303
    );

    // Events and the session list name the real addresses, not the proxy's.
    let ev = events(&app, "praxis-a").await;
    assert!(
        ev.contains(&(
            "lockout".into(),
            Some("198.51.100.1".into()),
            "Adresse".into()
        )),
        "{ev:?}"
    );
    assert!(
        ev.iter()
            .any(|(k, ip, _)| k == "login_ok" && ip.as_deref() == Some("198.51.100.2")),
        "{ev:?}"
    );
    assert!(
        ev.iter()
            .all(|(_, ip, _)| ip.as_deref() != Some("127.0.0.1")),
        "{ev:?}"
    );
    let account = colleague
        .get(app.url("praxis-a", "/id/account"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        account.contains("<td data-label=\"Adresse\">198.51.100.2</td>"),
        "{account}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarding_headers_from_an_untrusted_peer_are_ignored() {
    let app = TestApp::spawn_with(|c| {
        c.idp.address_lockout_threshold = 3;
        c.idp.max_delay_ms = 50;
    })
    .await;
    app.create_practice("praxis-a").await;
    app.create_user("praxis-a", "anna", PW, false).await;

    // A client talking to the node directly claims a new address for every guess.
    let forged = [
        ("x-forwarded-for", "198.51.100.11"),
        ("x-forwarded-for", "198.51.100.12"),
        ("forwarded", "for=198.51.100.13"),
        ("x-real-ip", "198.51.100.14"),
    ];
    let mut statuses = Vec::new();
    for (i, (name, value)) in forged.iter().enumerate() {
        let c = client_with(name, value.as_bytes());
        statuses.push(guess(&app, &c, &format!("gibt-es-nicht-{i}")).await);
    }
    assert_eq!(
        statuses,
        [401, 401, 401, 429],
        "counted on the peer's address"
    );
    let c = client_from("198.51.100.15");
    assert_eq!(app.login(&c, "praxis-a", "anna", PW).await.status(), 429);
    let ev = events(&app, "praxis-a").await;
    assert!(
        ev.iter()
            .filter(|(k, ..)| k == "login_failed" || k == "lockout")
            .all(|(_, ip, _)| ip.as_deref() == Some("127.0.0.1")),
        "{ev:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_forwarding_headers_count_on_the_proxy_and_break_nothing() {
    let app = TestApp::spawn_with(|c| {
        c.trusted_proxies = vec!["127.0.0.0/8".into(), "::1".into()];
        c.idp.address_lockout_threshold = 3;
        c.idp.max_delay_ms = 50;
    })
    .await;
    app.create_practice("praxis-a").await;
    app.create_user("praxis-a", "anna", PW, false).await;

    let malformed: [(&str, &[u8]); 6] = [
        ("x-forwarded-for", b"kein-ip"),
        ("x-forwarded-for", b""),
        ("x-forwarded-for", b"198.51.100.7:99999999"),
        ("x-forwarded-for", b"198.51.100.\xff"),
        ("forwarded", b"for=_versteckt"),
        ("x-forwarded-for", b"unknown"),
    ];
    let mut statuses = Vec::new();
    for (i, (name, value)) in malformed.iter().enumerate() {
        let c = client_with(name, value);
        statuses.push(guess(&app, &c, &format!("gibt-es-nicht-{i}")).await);
    }
    // No error page: all of them were attempts of the proxy's own address, which is
    // locked after three.
    assert_eq!(statuses, [401, 401, 401, 429, 429, 429]);
    // A well-formed address behind the proxy is not affected.
    let c = client_from("198.51.100.3");
    assert_eq!(app.login(&c, "praxis-a", "anna", PW).await.status(), 303);
}
