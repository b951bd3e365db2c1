//! "Neuigkeiten per E-Mail ankündigen" at a real SMTP server: a practice admin switches it
//! on; a new message then reaches each matching member of that practice as a notice without
//! title, body or audience; members it is not for, other practices and practices with the
//! setting off get nothing; each message is announced once.

use std::time::{Duration, Instant};

use kollegium_tenants::broadcast::Audience;

use crate::apps::chat::Member;
use crate::broadcast::{after_start_round, round};
use crate::harness::{TestApp, use_smtp};
use crate::news::audience;
use crate::smtp::{Mail, SmtpSink};

const SUBJECT: &str = "Neuigkeiten für Sie";

async fn setup() -> (TestApp, SmtpSink) {
    let smtp = SmtpSink::start();
    let port = smtp.port;
    let app = TestApp::spawn_with(move |c| {
        c.broadcast.sync_interval_secs = 3600;
        use_smtp(c, port);
    })
    .await;
    (after_start_round(app).await, smtp)
}

fn notices(smtp: &SmtpSink) -> Vec<Mail> {
    smtp.messages()
        .into_iter()
        .filter(|m| m.subject.as_deref().is_some_and(|s| s.starts_with(SUBJECT)))
        .collect()
}

fn to(mails: &[Mail]) -> Vec<String> {
    let mut v: Vec<String> = mails.iter().flat_map(|m| m.envelope_to.clone()).collect();
    v.sort();
    v
}

/// Waits until `n` notices arrived (20 s at most), then a little longer for strays.
async fn settle(app: &TestApp, smtp: &SmtpSink, n: usize) -> Vec<Mail> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while notices(smtp).len() < n {
        assert!(Instant::now() < deadline, "only {:?}", to(&notices(smtp)));
        app.server().job_worker.kick();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for _ in 0..10 {
        app.server().job_worker.kick();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    notices(smtp)
}

async fn setting(m: &Member<'_>) -> bool {
    m.page("/news/admin")
        .await
        .contains("name=\"announce\" value=\"1\" checked")
}

async fn switch(m: &Member<'_>, on: bool) -> reqwest::Response {
    let fields: &[(&str, &str)] = if on { &[("announce", "1")] } else { &[] };
    m.form("/news/admin", "/news/admin", fields).await
}

/// Form `action` with `fields` is refused without a sign-in (`anon`), without the CSRF token
/// (`own`, a signed-in member of the practice: 403) and from another practice's member at
/// this practice's address (`foreign`): none of them is answered as done (303).
async fn refused_without_sign_in_token_or_practice(
    anon: &Member<'_>,
    own: &Member<'_>,
    foreign: &Member<'_>,
    action: &str,
    fields: &[(&str, &str)],
) {
    assert_ne!(
        anon.post_without_token(action, fields).await,
        303,
        "no sign-in"
    );
    assert_eq!(
        own.post_without_token(action, fields).await,
        403,
        "no token"
    );
    assert_ne!(
        foreign.post_without_token(action, fields).await,
        303,
        "another practice"
    );
}

/// Each form of `bad`, sent by `m` to `action` from the page `page`, is a 400 that `says`
/// why; a 1 MB value of `field` is a 413.
async fn malformed_forms_refused(
    m: &Member<'_>,
    (page, action): (&str, &str),
    bad: &[Vec<(&str, &str)>],
    says: &str,
    field: &str,
) {
    for fields in bad {
        let r = m.form(page, action, fields).await;
        assert_eq!(r.status(), 400, "{fields:?}");
        assert!(r.text().await.unwrap().contains(says));
    }
    let big = "1".repeat(1024 * 1024);
    assert_eq!(m.form(page, action, &[(field, &big)]).await.status(), 413);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn matching_members_of_a_practice_that_asked_for_it_get_a_notice_without_content() {
    let (app, smtp) = setup().await;
    app.create_practice("praxis-a").await;
    app.create_practice("praxis-b").await;
    let chef = app.member("praxis-a", "chef", true).await;
    let _kardio = app
        .member_with("praxis-a", "kardio", &["arzt"], Some("kardiologie"), None)
        .await;
    let _mfa = app
        .member_with("praxis-a", "empfang", &["mfa"], None, None)
        .await;
    let _kardio_b = app
        .member_with("praxis-b", "kardio", &["arzt"], Some("kardiologie"), None)
        .await;
    let _chef_b = app.member("praxis-b", "chef", true).await;

    // Off by default: a message arrives, nobody is mailed.
    app.publish("Vorher GEHEIMTITEL", Audience::default(), false)
        .await;
    assert!(!setting(&chef).await);
    assert!(settle(&app, &smtp, 0).await.is_empty());

    let r = switch(&chef, true).await;
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/news/admin?gespeichert=1");
    assert!(setting(&chef).await);
    // The registry learns only that praxis-a announces news, nothing about members.
    let flagged = app
        .server()
        .store
        .with_registry(|c| kollegium_tenants::registry::with_flag(c, "news.mail"))
        .unwrap();
    assert_eq!(flagged, ["praxis-a"]);

    // A message for cardiologists: praxis-a's cardiologist is told, once; the MFA (not its
    // audience) is not; praxis-b (setting off) is not.
    app.publish_draft(kollegium_tenants::broadcast::Draft {
        title: "Kardiologie GEHEIMTITEL".into(),
        body: "GEHEIMER Inhalt zur **GOP 03230**.".into(),
        audience: audience(&["kardiologie"], &[], &[]),
        ..Default::default()
    })
    .await;
    let got = settle(&app, &smtp, 1).await;
    assert_eq!(to(&got), ["kardio@praxis-a.example"]);
    let mail = &got[0];
    let link = app.url("praxis-a", "/news");
    assert!(
        mail.text().contains(&link) && mail.html().contains(&link),
        "{}",
        mail.text()
    );
    for secret in ["GEHEIM", "Kardiologie", "kardiologie", "03230", "Vorher"] {
        assert!(!mail.raw.contains(secret), "{secret} in the mail");
    }
    // Another sync without news and a message for someone else: nothing more for them.
    round(&app).await.unwrap();
    app.publish("Nur MFA", audience(&[], &["mfa"], &[]), false)
        .await;
    // (The admin was created with the role MFA.)
    let got = settle(&app, &smtp, 3).await;
    assert_eq!(
        to(&got),
        [
            "chef@praxis-a.example",
            "empfang@praxis-a.example",
            "kardio@praxis-a.example"
        ]
    );

    // Switched off: the next message mails nobody, and the flag is gone.
    assert_eq!(switch(&chef, false).await.status(), 303);
    assert!(!setting(&chef).await);
    app.publish("Danach", Audience::default(), false).await;
    assert_eq!(settle(&app, &smtp, 3).await.len(), 3);
    let flagged = app
        .server()
        .store
        .with_registry(|c| kollegium_tenants::registry::with_flag(c, "news.mail"))
        .unwrap();
    assert!(flagged.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_declines_the_notices_for_themselves_and_only_for_themselves() {
    let (app, smtp) = setup().await;
    app.create_practice("praxis-a").await;
    app.create_practice("praxis-b").await;
    let chef = app.member("praxis-a", "chef", true).await;
    let mfa = app.member("praxis-a", "empfang", false).await;
    let chef_b = app.member("praxis-b", "chef", true).await;
    let mfa_b = app.member("praxis-b", "empfang", false).await;
    let anon = app.anonymous("praxis-a");
    // While the practice sends no notices, there is nothing to decline.
    assert!(!mfa.page("/news").await.contains("E-Mail-Hinweise"));
    assert_eq!(switch(&chef, true).await.status(), 303);
    assert_eq!(switch(&chef_b, true).await.status(), 303);
    let page = mfa.page("/news").await;
    assert!(page.contains("Keine E-Mail-Hinweise mehr"), "{page}");

    // Refused: no sign-in, no token, B's member at A's address, malformed, oversized.
    let off = [("mail", "aus")];
    refused_without_sign_in_token_or_practice(
        &anon,
        &mfa,
        &mfa_b.at("praxis-a"),
        "/news/email",
        &off,
    )
    .await;
    let bad = [
        vec![],
        vec![("mail", "vielleicht")],
        vec![("mail", "aus"), ("mail", "an")],
        vec![("mail", "aus"), ("extra", "x")],
    ];
    let says = "E-Mail-Hinweise erhalten";
    malformed_forms_refused(&mfa, ("/news", "/news/email"), &bad, says, "mail").await;
    assert!(
        mfa.page("/news")
            .await
            .contains("Keine E-Mail-Hinweise mehr")
    );

    // Declined: A's MFA gets no notice; A's owner and B's MFA still do.
    let r = mfa.form("/news", "/news/email", &[("mail", "aus")]).await;
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/news?done=mail-off");
    let page = mfa.page("/news?done=mail-off").await;
    assert!(page.contains("keine E-Mail-Hinweise auf neue Neuigkeiten mehr"));
    assert!(page.contains("E-Mail-Hinweise wieder erhalten"));
    assert!(
        chef.page("/news")
            .await
            .contains("Keine E-Mail-Hinweise mehr")
    );
    app.publish("Für alle", Audience::default(), false).await;
    let got = settle(&app, &smtp, 3).await;
    assert_eq!(
        to(&got),
        [
            "chef@praxis-a.example",
            "chef@praxis-b.example",
            "empfang@praxis-b.example"
        ]
    );
    assert!(
        got[0].text().contains("abbestellen"),
        "each notice says where"
    );
    // The choice is in A's export, and only there.
    let a = app.export("praxis-a");
    let news = a.iter().find(|p| p.app == "news").unwrap();
    assert_eq!(news.json["mail_declined"][0]["member"], "empfang");
    assert!(
        news.readable
            .contains("Keine E-Mail-Hinweise gewünscht:\n- empfang")
    );
    assert!(app.export("praxis-b").iter().all(|p| p.app != "news"));

    // Wanted again: the next message reaches them.
    let r = mfa.form("/news", "/news/email", &[("mail", "an")]).await;
    assert_eq!(r.headers()["location"], "/news?done=mail-on");
    app.publish("Wieder für alle", Audience::default(), false)
        .await;
    let got = settle(&app, &smtp, 7).await;
    assert!(to(&got).contains(&"empfang@praxis-a.example".to_owned()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_practices_own_admin_changes_the_setting_with_a_valid_form() {
    let (app, smtp) = setup().await;
    app.create_practice("praxis-a").await;
    app.create_practice("praxis-b").await;
    let chef = app.member("praxis-a", "chef", true).await;
    let mfa = app.member("praxis-a", "empfang", false).await;
    let chef_b = app.member("praxis-b", "chef", true).await;
    let anon = app.anonymous("praxis-a");

    // Not an admin: neither the page nor the form.
    assert_eq!(mfa.status("/news/admin").await, 403);
    assert_eq!(switch(&mfa, true).await.status(), 403);
    // Not signed in: sent to sign in. B's admin at A's address (B's cookies are not A's):
    // the same. Posting without a sign-in, without the token or from B changes nothing.
    assert_eq!(anon.get("/news/admin").await.status(), 303);
    let b_at_a = chef_b.at("praxis-a");
    assert_eq!(b_at_a.status("/news/admin").await, 303);
    let on = [("announce", "1")];
    refused_without_sign_in_token_or_practice(&anon, &chef, &b_at_a, "/news/admin", &on).await;
    // Malformed and oversized: refused with a message, nothing stored.
    let bad = [
        vec![("announce", "ja")],
        vec![("announce", "1"), ("announce", "1")],
        vec![("announce", "1"), ("extra", "x")],
    ];
    let says = "Die Eingabe ist ungültig";
    malformed_forms_refused(
        &chef,
        ("/news/admin", "/news/admin"),
        &bad,
        says,
        "announce",
    )
    .await;
    assert!(!setting(&chef).await, "A's setting is still off");

    // B switches its own on: A's members are not mailed.
    let _kardio = app
        .member_with("praxis-a", "kardio", &["arzt"], Some("kardiologie"), None)
        .await;
    assert_eq!(switch(&chef_b, true).await.status(), 303);
    assert!(!setting(&chef).await);
    app.publish("Für alle", Audience::default(), false).await;
    let got = settle(&app, &smtp, 1).await;
    assert!(
        to(&got).iter().all(|t| t.ends_with("@praxis-b.example")),
        "{:?}",
        to(&got)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_or_a_restart_opens_only_the_practices_that_asked_for_mail() {
    let (app, smtp) = setup().await;
    for slug in ["praxis-a", "praxis-b", "praxis-c"] {
        app.create_practice(slug).await;
    }
    let chef = app.member("praxis-a", "chef", true).await;
    assert_eq!(switch(&chef, true).await.status(), 303);
    let store = app.server().store.clone();
    let slug = |s: &str| kollegium_tenants::Slug::parse(s).unwrap();
    // Creating practices leaves work behind (their first jobs) that may open one again for a
    // moment: close until the node has been quiet for half a second before counting.
    for _ in 0..40 {
        store.close_all();
        tokio::time::sleep(Duration::from_millis(500)).await;
        if store.open_practices() == 0 {
            break;
        }
    }
    assert!(!store.is_open(&slug("praxis-a")) && !store.is_open(&slug("praxis-b")));
    assert_eq!(store.open_practices(), 0, "{:?}", store.open_slugs());

    // Nothing new: a sync round opens no practice.
    round(&app).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(store.open_practices(), 0, "{:?}", store.open_slugs());

    // A new message: only the practice with the setting is opened, and mailed.
    app.publish("Für alle", Audience::default(), false).await;
    let got = settle(&app, &smtp, 1).await;
    assert_eq!(to(&got), ["chef@praxis-a.example"]);
    assert_eq!(store.open_slugs(), ["praxis-a"]);

    // A restart without news opens nobody: the marker is read from the file.
    drop(chef);
    let mut app = app;
    app.restart().await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let store = app.server().store.clone();
    assert_eq!(store.open_practices(), 0, "{:?}", store.open_slugs());
    assert_eq!(notices(&smtp).len(), 1, "and mails nobody again");
}
