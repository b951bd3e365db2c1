//! Back-channel logout delivery under attack: a tarpit endpoint in one practice delays no
//! other practice and no workspace logout (lanes), and back-channel addresses that point
//! into internal networks or at the node itself are refused at registration and at
//! delivery (SSRF).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use kollegium_idp::oidc::clients::RedirectUri;

use crate::harness::{TestApp, client};
use crate::oidc_support::{PASSWORD, code_with_consent, receiver, register, tool};

/// A TCP listener on loopback that accepts connections and never answers (they stay open).
/// Returns its port and the number of connections it accepted.
async fn tarpit() -> (u16, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            held.push(sock);
        }
    });
    (port, accepted)
}

/// Logs `c` out at the IdP through its own logout form.
async fn idp_logout(app: &TestApp, c: &reqwest::Client, slug: &str) {
    let r = app
        .post_form(c, slug, "/id/account", "/id/logout", &[])
        .await;
    assert_eq!(r.status(), 303, "IdP logout");
}

/// How long until the workspace session of `c` is gone (the start page sends it to the
/// sign-in); panics after 30 s.
async fn workspace_ends(
    app: &TestApp,
    c: &reqwest::Client,
    slug: &str,
    since: Instant,
) -> Duration {
    loop {
        let r = c.get(app.url(slug, "/")).send().await.unwrap();
        if r.status() == 303 {
            assert_eq!(r.headers()["location"], "/auth/login?next=%2F");
            return since.elapsed();
        }
        assert_eq!(r.status(), 200);
        assert!(
            since.elapsed() < Duration::from_secs(30),
            "the workspace session did not end"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tarpit_endpoint_in_one_practice_delays_no_other_practices_logout_nor_its_own_workspace()
{
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    app.create_practice("praxis-b").await;
    let (port, accepted) = tarpit().await;
    let mut t = tool("Zeiterfassung", true, false);
    t.backchannel_logout_uri =
        Some(RedirectUri::parse(&format!("http://127.0.0.1:{port}/backchannel")).unwrap());
    let slow = register(&app, "praxis-a", t).await;

    // Members of both practices are signed in to their workspaces.
    let bea = app.signed_in("praxis-b", "bea", false).await;
    let anna = app.signed_in("praxis-a", "anna", false).await;
    app.create_user("praxis-a", "udo", PASSWORD, false).await;

    // Several sessions of practice A that used the tool end: their notices go to the tarpit.
    for _ in 0..5 {
        let c = client();
        assert_eq!(
            app.login(&c, "praxis-a", "udo", PASSWORD).await.status(),
            303
        );
        code_with_consent(&app, &c, "praxis-a", &slow.client_id, "openid").await;
        idp_logout(&app, &c, "praxis-a").await;
    }
    let start = Instant::now();
    while accepted.load(Ordering::SeqCst) == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no delivery began"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A member of practice B logs out at the IdP: B's workspace session ends at once.
    let t0 = Instant::now();
    idp_logout(&app, &bea, "praxis-b").await;
    let took = workspace_ends(&app, &bea, "praxis-b", t0).await;
    assert!(
        took < Duration::from_secs(2),
        "practice B's workspace logout took {took:?} behind practice A's tarpit"
    );

    // Practice A's own workspace logout is not queued behind A's tarpit notices either,
    // not even behind the one this same logout sends to the tool.
    code_with_consent(&app, &anna, "praxis-a", &slow.client_id, "openid").await;
    let t0 = Instant::now();
    idp_logout(&app, &anna, "praxis-a").await;
    let took = workspace_ends(&app, &anna, "praxis-a", t0).await;
    assert!(
        took < Duration::from_secs(2),
        "practice A's workspace logout took {took:?} behind its own tarpit"
    );
}

/// Posts the "register a tool" form with `backchannel` as back-channel logout address.
async fn register_form(app: &TestApp, admin: &reqwest::Client, backchannel: &str) -> (u16, String) {
    let r = app
        .post_form(
            admin,
            "praxis-a",
            "/id/admin/clients",
            "/id/admin/clients",
            &[
                ("name", "Dienstplan"),
                ("kind", "confidential"),
                ("redirect_uris", "https://dienstplan.example/cb"),
                ("backchannel_logout_uri", backchannel),
            ],
        )
        .await;
    (r.status().as_u16(), r.text().await.unwrap())
}

async fn client_count(app: &TestApp) -> usize {
    app.idp_db("praxis-a", |c| {
        kollegium_idp::oidc::clients::all(c).unwrap().len()
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn back_channel_addresses_into_internal_networks_or_at_the_node_are_refused() {
    let app = TestApp::spawn_with(|c| c.idp.allow_private_endpoints = false).await;
    app.create_practice("praxis-a").await;
    app.create_user("praxis-a", "chefin", PASSWORD, true).await;
    let admin = client();
    assert_eq!(
        app.login(&admin, "praxis-a", "chefin", PASSWORD)
            .await
            .status(),
        303
    );
    let before = client_count(&app).await;
    let (port, op) = (app.port, app.operator_port);
    for bad in [
        "https://169.254.169.254/latest/meta-data/".to_owned(),
        "https://10.0.0.5/bc".into(),
        "https://172.20.1.1/bc".into(),
        "https://192.168.178.1/bc".into(),
        "https://100.64.0.7/bc".into(),
        format!("http://127.0.0.1:{op}/metrics"),
        "https://[::1]:22/".into(),
        "https://127.1/bc".into(),
        "https://2130706433/bc".into(),
        "https://0x7f000001/bc".into(),
        "https://[::ffff:127.0.0.1]/bc".into(),
        "https://[::ffff:a9fe:a9fe]/bc".into(),
        "https://[fd12:3456::1]/bc".into(),
        "https://[fe80::1]/bc".into(),
        "https://0.0.0.0/bc".into(),
        "https://224.0.0.251/bc".into(),
        format!("http://praxis-b.localhost:{port}/auth/backchannel-logout"),
        "https://localhost/bc".into(),
    ] {
        let (status, page) = register_form(&app, &admin, &bad).await;
        assert_eq!(status, 400, "{bad} was accepted");
        assert!(
            page.contains("Back-Channel-Logout-Adresse") && page.contains("abgelehnt"),
            "{bad}: no clear reason in the form"
        );
    }
    assert_eq!(client_count(&app).await, before, "nothing was registered");

    // A tool registered with a public address cannot be edited to an internal one either.
    let (status, _) = register_form(&app, &admin, "https://93.184.215.14/bc").await;
    assert_eq!(status, 200);
    let id = app
        .idp_db("praxis-a", |c| {
            kollegium_idp::oidc::clients::all(c)
                .unwrap()
                .into_iter()
                .find(|c| !c.first_party)
                .unwrap()
                .client_id
        })
        .await;
    let edit = format!("/id/admin/clients/{id}");
    let r = app
        .post_form(
            &admin,
            "praxis-a",
            &edit,
            &edit,
            &[
                ("name", "Dienstplan"),
                ("redirect_uris", "https://dienstplan.example/cb"),
                ("backchannel_logout_uri", "https://169.254.169.254/"),
            ],
        )
        .await;
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("link-lokale Adresse"));
    let kept = app
        .idp_db("praxis-a", move |c| {
            kollegium_idp::oidc::clients::by_id(c, &id)
                .unwrap()
                .unwrap()
                .backchannel_logout_uri
        })
        .await;
    assert_eq!(kept.as_deref(), Some("https://93.184.215.14/bc"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_development_mode_loopback_is_allowed_but_the_nodes_own_listeners_are_not() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    app.create_user("praxis-a", "chefin", PASSWORD, true).await;
    let admin = client();
    assert_eq!(
        app.login(&admin, "praxis-a", "chefin", PASSWORD)
            .await
            .status(),
        303
    );
    for bad in [
        format!("http://127.0.0.1:{}/auth/backchannel-logout", app.port),
        format!("http://127.0.0.1:{}/metrics", app.operator_port),
        format!("http://[::1]:{}/", app.port),
        format!("http://localhost:{}/auth/backchannel-logout", app.port),
        "https://169.254.169.254/".into(),
    ] {
        let (status, page) = register_form(&app, &admin, &bad).await;
        assert_eq!(status, 400, "{bad} was accepted");
        assert!(page.contains("abgelehnt"), "{bad}");
    }
    let (status, _) = register_form(&app, &admin, "http://127.0.0.1:9/backchannel").await;
    assert_eq!(status, 200, "a tool on this machine is fine in development");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_switch_off_delivery_to_loopback_is_refused() {
    let app = TestApp::spawn_with(|c| c.idp.allow_private_endpoints = false).await;
    app.create_practice("praxis-a").await;
    // Registered behind the form's back (as an old registration would be): the delivery
    // checks the address again.
    let (port, mut rx) = receiver().await;
    let mut t = tool("Dienstplan", true, false);
    t.backchannel_logout_uri =
        Some(RedirectUri::parse(&format!("http://127.0.0.1:{port}/backchannel")).unwrap());
    let created = register(&app, "praxis-a", t).await;
    let anna = app.signed_in("praxis-a", "anna", false).await;
    code_with_consent(&app, &anna, "praxis-a", &created.client_id, "openid").await;
    idp_logout(&app, &anna, "praxis-a").await;

    // The attempt is made and refused; the workspace's own notice still arrives.
    let start = Instant::now();
    let error = loop {
        let id = created.client_id.clone();
        let row = app
            .idp_db("praxis-a", move |c| {
                use diesel::prelude::*;
                use kollegium_idp::schema::jobs as q;
                q::table
                    .filter(q::kind.eq(kollegium_idp::oidc::backchannel::JOB_KIND))
                    .filter(q::key.like(format!("%:{id}")))
                    .select((q::attempts, q::last_error))
                    .first::<(i64, Option<String>)>(c)
                    .optional()
                    .unwrap()
            })
            .await;
        // A delivered notice's job is gone.
        let row = row.expect("not delivered");
        if row.0 > 0 {
            break row.1.unwrap_or_default();
        }
        assert!(start.elapsed() < Duration::from_secs(20), "no attempt");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(error, "address refused: loopback address");
    let got = tokio::time::timeout(Duration::from_secs(2), rx.recv()).await;
    assert!(got.is_err(), "the loopback endpoint received a request");
    workspace_ends(&app, &anna, "praxis-a", Instant::now()).await;
}

#[test]
fn the_cli_refuses_an_internal_back_channel_address_too() {
    let dir = tempfile::tempdir().unwrap();
    let out = crate::harness::cli_in(
        &dir.path().join("data"),
        &[
            "client",
            "add",
            "praxis-a",
            "--name",
            "Dienstplan",
            "--redirect-uri",
            "https://dienstplan.example/cb",
            "--backchannel-logout-uri",
            "https://169.254.169.254/latest/meta-data/",
        ],
        &[],
    );
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        crate::harness::stderr(&out)
    );
    assert!(
        crate::harness::stderr(&out).contains("refused: link-local address"),
        "{}",
        crate::harness::stderr(&out)
    );
}
