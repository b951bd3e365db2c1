//! The console's news pages end to end: an operator composes (with a preview that publishes
//! nothing), publishes and withdraws through the console; the node syncs its own feed and
//! the practices show exactly what the audience says. Refused input publishes nothing, the
//! audit log names message ids only, and the pages are as protected as the rest of the
//! console (session, CSRF token, own Origin).

use crate::apps::operator::{OperatorClient, signed_in_operator};
use crate::broadcast::{FakeFeed, node, node_of, round};
use crate::harness::{TestApp, form_csrf};
use crate::news::titles;
use kollegium_tenants::broadcast::OperatorKey;

/// The operator's messages as the node's own feed holds them (the node syncs from it).
fn published(app: &TestApp) -> Vec<(String, bool)> {
    app.server()
        .operator_feed
        .list()
        .unwrap()
        .into_iter()
        .map(|p| (p.title, p.withdrawn_at.is_some()))
        .collect()
}

async fn compose(op: &OperatorClient, fields: &[(&str, &str)]) -> reqwest::Response {
    let csrf = form_csrf(&op.page("/news").await);
    op.post_with("/news", &csrf, fields).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn published_in_the_console_it_reaches_the_matching_members_of_every_practice() {
    let app = node().await;
    app.create_practice("praxis-a").await;
    app.create_practice("praxis-b").await;
    let abr_a = app
        .member_with(
            "praxis-a",
            "kasse",
            &["abrechnung"],
            None,
            Some("kv-nordrhein"),
        )
        .await;
    let mfa_a = app
        .member_with("praxis-a", "empfang", &["mfa"], None, Some("kv-nordrhein"))
        .await;
    let abr_b = app
        .member_with(
            "praxis-b",
            "kasse",
            &["abrechnung"],
            None,
            Some("kv-nordrhein"),
        )
        .await;
    let op = signed_in_operator(&app, "erika").await;
    assert!(op.page("/news").await.contains("Noch keine Nachricht"));

    let message = [
        ("title", "Abrechnungstipp Nordrhein"),
        ("body", "Die **GOP 03230** ist neu bewertet."),
        ("role", "abrechnung"),
        ("kv_region", "kv-nordrhein"),
        ("valid_until", "2099-12-31"),
        ("pinned", "1"),
    ];
    // "Vorschau": the body rendered with the safe subset, the form kept, nothing published.
    let mut fields = message.to_vec();
    fields.push(("action", "preview"));
    let r = compose(&op, &fields).await;
    assert_eq!(r.status(), 200);
    let page = r.text().await.unwrap();
    assert!(page.contains("<strong>GOP 03230</strong>"), "{page}");
    assert!(page.contains("Zielgruppe: Abrechnung und KV Nordrhein"));
    assert!(page.contains("value=\"Abrechnungstipp Nordrhein\""));
    assert!(page.contains("name=\"role\" value=\"abrechnung\" checked"));
    assert!(published(&app).is_empty(), "a preview publishes nothing");
    let r = compose(
        &op,
        &[
            ("title", "X"),
            ("body", "<script>alert(1)</script>"),
            ("action", "preview"),
        ],
    )
    .await;
    let page = r.text().await.unwrap();
    assert!(!page.contains("<script>alert") && page.contains("&lt;script&gt;"));

    // "Veröffentlichen": signed, in the feed, in the audit log by id only.
    let mut fields = message.to_vec();
    fields.push(("action", "publish"));
    let r = compose(&op, &fields).await;
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/news?done=published");
    let list = op.page("/news?done=published").await;
    assert!(
        list.contains("signiert und veröffentlicht") && list.contains("Abrechnungstipp Nordrhein")
    );
    let feed = app.server().operator_feed.list().unwrap();
    let id = feed[0].id.as_str().to_owned();
    assert!(feed[0].pinned && feed[0].valid_until.is_some());
    let audit = op.page("/audit").await;
    assert!(audit.contains(&id), "the audit log names the message id");
    assert!(
        !audit.contains("GOP") && !audit.contains("Abrechnungstipp"),
        "never content"
    );

    // The node syncs: the matching members of A and B see it, A's MFA does not.
    round(&app).await.unwrap();
    assert_eq!(
        titles(&abr_a.page("/news").await),
        ["Abrechnungstipp Nordrhein"]
    );
    assert_eq!(
        titles(&abr_b.page("/news").await),
        ["Abrechnungstipp Nordrhein"]
    );
    assert!(titles(&mfa_a.page("/news").await).is_empty());
    assert_eq!(mfa_a.status(&format!("/news/{id}")).await, 404);

    // "Zurückziehen": a confirmation first, then the signed retraction; gone everywhere.
    let confirm = op.page(&format!("/news/{id}/withdraw")).await;
    assert!(confirm.contains("wirklich zurückziehen"));
    assert_eq!(
        published(&app),
        [("Abrechnungstipp Nordrhein".to_owned(), false)]
    );
    let csrf = form_csrf(&confirm);
    let withdrawing = app.clock.now();
    let r = op
        .post_with(&format!("/news/{id}/withdraw"), &csrf, &[])
        .await;
    assert_eq!(r.status(), 303);
    assert_eq!(
        published(&app),
        [("Abrechnungstipp Nordrhein".to_owned(), true)]
    );
    // Times as the practices show theirs: German format in Europe/Berlin, no "UTC".
    let list = op.page("/news").await;
    let zone = kollegium_tenants::time::Zone::default();
    let shown = |t: i64| format!("zurückgezogen {}", zone.format(t));
    assert!(
        list.contains(&shown(withdrawing)) || list.contains(&shown(app.clock.now())),
        "{list}"
    );
    assert!(!list.contains("UTC"), "no UTC times on the console");
    assert!(op.page("/audit").await.matches(&id).count() >= 2);
    round(&app).await.unwrap();
    assert!(titles(&abr_a.page("/news").await).is_empty());
    assert!(titles(&abr_b.page("/news").await).is_empty());
    assert_eq!(abr_b.status(&format!("/news/{id}")).await, 404);
    // Twice: not found, nothing signed again.
    let r = op
        .post_with(&format!("/news/{id}/withdraw"), &csrf, &[])
        .await;
    assert_eq!(r.status(), 404);
    assert_eq!(op.get(&format!("/news/{id}/withdraw")).await.status(), 404);
    let unknown = "0123456789abcdef0123456789abcdef";
    assert_eq!(
        op.get(&format!("/news/{unknown}/withdraw")).await.status(),
        404
    );
    assert_eq!(app.server().operator_feed.list().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_trusts_another_operator_publishes_nothing_and_makes_no_key() {
    let feed = FakeFeed::start();
    let operator = OperatorKey::generate();
    let app = node_of(&feed, &operator).await;
    let op = signed_in_operator(&app, "erika").await;
    let message = [("title", "Titel"), ("body", "Text")];
    // "Vorschau" still works; "Veröffentlichen" says why not and signs nothing.
    let mut fields = message.to_vec();
    fields.push(("action", "preview"));
    assert_eq!(compose(&op, &fields).await.status(), 200);
    let mut fields = message.to_vec();
    fields.push(("action", "publish"));
    let r = compose(&op, &fields).await;
    assert_eq!(r.status(), 409);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("veröffentlicht selbst nichts")
    );
    assert!(published(&app).is_empty());
    assert!(
        !OperatorKey::default_path(&app.data_dir()).exists(),
        "no key is made on a node that trusts another operator"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_input_publishes_nothing_and_says_why() {
    let app = node().await;
    let op = signed_in_operator(&app, "erika").await;
    let ok = [("title", "Titel"), ("body", "Text"), ("action", "publish")];
    let long_title = "T".repeat(201);
    let long_body = "x".repeat(20_001);
    for (extra, says) in [
        (vec![("role", "chefarzt")], "Unbekannte Rolle „chefarzt“"),
        (vec![("specialty", "zauberei")], "Unbekannte Fachrichtung"),
        (vec![("kv_region", "kv-mars")], "Unbekannte KV-Region"),
        (vec![("valid_until", "31.12.2099")], "Gültig bis"),
        (vec![("valid_until", "2099-02-30")], "Gültig bis"),
        (vec![("valid_until", "2001-01-01")], "in der Zukunft"),
        (vec![("title", "")], "Der Titel fehlt"),
        (
            vec![("title", long_title.as_str())],
            "Der Titel ist zu lang",
        ),
        (vec![("body", "")], "Der Text fehlt"),
        (vec![("body", long_body.as_str())], "Der Text ist zu lang"),
    ] {
        let mut fields: Vec<(&str, &str)> = ok
            .iter()
            .filter(|(k, _)| !extra.iter().any(|(e, _)| e == k))
            .copied()
            .collect();
        fields.extend(extra.iter().copied());
        let r = compose(&op, &fields).await;
        assert_eq!(r.status(), 422, "{extra:?}");
        let page = r.text().await.unwrap();
        assert!(page.contains(says), "{extra:?}: {page}");
        assert!(published(&app).is_empty(), "{extra:?}");
    }
    // Fields no form sends, an unknown action: a bad request.
    for fields in [
        vec![
            ("title", "T"),
            ("body", "B"),
            ("action", "publish"),
            ("x", "1"),
        ],
        vec![("title", "T"), ("body", "B"), ("action", "delete")],
    ] {
        assert_eq!(compose(&op, &fields).await.status(), 400, "{fields:?}");
    }
    // Oversized beyond the console's form limit.
    let huge = "x".repeat(100 * 1024);
    let r = compose(
        &op,
        &[("title", "T"), ("body", &huge), ("action", "publish")],
    )
    .await;
    assert_eq!(r.status(), 413);
    assert!(published(&app).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_news_pages_need_a_session_the_token_and_the_consoles_own_origin() {
    let app = node().await;
    let op = signed_in_operator(&app, "erika").await;
    let publish = [("title", "T"), ("body", "B"), ("action", "publish")];
    // Without a session: the page leads to the sign-in, the actions are refused.
    let anon = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = anon.get(op.url("/news")).send().await.unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/login");
    let r = anon
        .post(op.url("/news"))
        .header("origin", &op.origin)
        .form(&publish)
        .send()
        .await
        .unwrap();
    assert!([401, 403].contains(&r.status().as_u16()), "{}", r.status());
    // Signed in, but without the token, with a wrong one, or from another origin.
    let csrf = form_csrf(&op.page("/news").await);
    let r = op
        .client
        .post(op.url("/news"))
        .header("origin", &op.origin)
        .form(&publish)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(
        op.post_with("/news", "falsch", &publish).await.status(),
        403
    );
    let mut with_token = vec![("csrf_token", csrf.as_str())];
    with_token.extend_from_slice(&publish);
    for origin in ["http://evil.example".to_owned(), app.url("praxis-a", "")] {
        let r = op
            .client
            .post(op.url("/news"))
            .header("origin", &origin)
            .form(&with_token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{origin}");
    }
    assert!(published(&app).is_empty(), "nothing was published");
    // A withdrawal without the token is refused too, and the message stays.
    let r = op.post_with("/news", &csrf, &publish).await;
    assert_eq!(r.status(), 303);
    let id = app.server().operator_feed.list().unwrap()[0]
        .id
        .as_str()
        .to_owned();
    let r = op
        .client
        .post(op.url(&format!("/news/{id}/withdraw")))
        .header("origin", &op.origin)
        .form(&[("x", "1")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = anon
        .post(op.url(&format!("/news/{id}/withdraw")))
        .header("origin", &op.origin)
        .form(&[("csrf_token", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert!([401, 403].contains(&r.status().as_u16()));
    assert_eq!(published(&app), [("T".to_owned(), false)]);
}
