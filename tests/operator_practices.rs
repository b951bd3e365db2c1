//! The operator console's practices pages (issue 14, point 1): the list with usage figures
//! from the file system only, creating a practice with every app's hook (the owner's setup
//! link shown once), suspending and resuming after a confirmation, honoured at once and
//! audited; and the audit log's pages.

use kollegium::operator::{self, audit};

use crate::apps::operator::signed_in_operator;
use crate::harness::{TestApp, client, form_csrf, form_csrf_at};

const T0: i64 = 1_796_000_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_practices_page_lists_practices_with_usage_from_file_sizes_only() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    app.create_practice("praxis-b").await;
    // A file in the store of praxis-a: counted by size, never read.
    let files = app.data_dir().join("tenants/praxis-a/files/ab");
    std::fs::create_dir_all(&files).unwrap();
    std::fs::write(files.join("blob"), vec![b'x'; 3 * 1024 * 1024]).unwrap();
    let op = signed_in_operator(&app, "erika").await;
    let html = op.page("/practices").await;
    assert!(html.contains("<code>praxis-a</code>") && html.contains("<code>praxis-b</code>"));
    assert!(html.contains("aktiv"));
    assert!(html.contains("3,0 MB"), "the file store's size");
    assert!(html.contains("aria-current=\"page\""));
    // Listing opened no practice's database.
    assert_eq!(app.server().store.open_practices(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_practices_list_pages_by_fifty_and_finds_a_practice_by_slug_or_name() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    // 59 more in the registry (the list reads the registry and file sizes only).
    app.server()
        .store
        .with_registry(|c| {
            for i in 1..60 {
                let slug = kollegium_tenants::Slug::parse(&format!("praxis-z{i:02}")).unwrap();
                kollegium_tenants::registry::insert(c, &slug, &format!("Hausarzt {i}"), T0)?;
            }
            Ok(())
        })
        .unwrap();
    let op = signed_in_operator(&app, "erika").await;
    let rows = |html: &str| html.matches("<td data-label=\"Kürzel\">").count();
    let first = op.page("/practices").await;
    assert_eq!(rows(&first), 50);
    assert!(first.contains("60 Praxen") && first.contains("Seite 1 von 2"));
    assert!(first.contains("<code>praxis-a</code>") && !first.contains("<code>praxis-z59</code>"));
    assert!(first.contains("href=\"/practices?seite=2\" rel=\"next\""));
    let second = op.page("/practices?seite=2").await;
    assert_eq!(rows(&second), 10);
    assert!(second.contains("<code>praxis-z59</code>") && second.contains("rel=\"prev\""));
    assert!(!second.contains("rel=\"next\""));
    // By name or slug, any case; the pages keep the filter.
    let found = op.page("/practices?q=HAUSARZT+5").await;
    assert_eq!(rows(&found), 11, "5 and 50–59");
    assert!(found.contains("11 Praxen passend zu „HAUSARZT 5“"));
    assert!(!found.contains("<code>praxis-a</code>"));
    let found = op.page("/practices?q=praxis-a").await;
    assert_eq!(rows(&found), 1);
    let none = op.page("/practices?q=zahnarzt").await;
    assert!(none.contains("Keine Praxis passt zu „zahnarzt“"));
    assert!(
        op.page("/practices?seite=9")
            .await
            .contains("Diese Seite gibt es nicht mehr")
    );
    // Refused clearly: a page that is no number, page 0, an over-long filter.
    let long = format!("/practices?q={}", "x".repeat(101));
    for bad in ["/practices?seite=zwei", "/practices?seite=0", long.as_str()] {
        let r = op.get(bad).await;
        assert_eq!(r.status(), 400, "{bad}");
        assert!(r.text().await.unwrap().contains("Ungültige Anfrage"));
    }
    // Without a session: the sign-in, nothing listed.
    let r = client()
        .get(op.url("/practices?q=praxis"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(app.server().store.open_practices(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_creates_a_practice_with_every_hook_and_shows_the_owners_link_once() {
    let app = TestApp::spawn().await;
    let op = signed_in_operator(&app, "erika").await;
    let form = op.page("/practices/new").await;
    let csrf = form_csrf(&form);
    let r = op
        .post_with(
            "/practices/new",
            &csrf,
            &[
                ("slug", "praxis-neu"),
                ("name", "Praxis Neu"),
                ("owner_email", "inhaberin@praxis-neu.example"),
            ],
        )
        .await;
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    let link = html
        .split("<code class=\"secret\" id=\"owner-setup-link\">")
        .nth(1)
        .and_then(|s| s.split('<').next())
        .unwrap()
        .replace("&#x2F;", "/")
        .replace("&#47;", "/");
    assert!(
        link.contains("praxis-neu.localhost") && link.contains("/id/setup/"),
        "{link}"
    );
    // The owner's link works at the practice: the IdP's hook ran.
    let r = client().get(&link).send().await.unwrap();
    assert_eq!(r.status(), 200, "{link}");
    // The workspace's hook ran too: the practice's start page leads to its sign-in.
    assert_eq!(app.front_door("praxis-neu").await, 303);
    // The list shows it, without the link.
    let list = op.page("/practices").await;
    assert!(list.contains("<code>praxis-neu</code>") && !list.contains("/id/setup/"));
    // Refusals keep the input and say why.
    for (slug, name, email, why) in [
        (
            "praxis-neu",
            "Noch eine",
            "a@b.example",
            "schon eine Praxis",
        ),
        ("Ungültig!", "Praxis", "a@b.example", "Kürzel ist ungültig"),
        ("praxis-x", "", "a@b.example", "Name der Praxis"),
        ("praxis-y", "Praxis Y", "kein-at", "E-Mail-Adresse"),
    ] {
        let r = op
            .post_with(
                "/practices/new",
                &csrf,
                &[("slug", slug), ("name", name), ("owner_email", email)],
            )
            .await;
        assert_eq!(r.status(), 422, "{slug}");
        let html = r.text().await.unwrap();
        assert!(html.contains(why), "{slug}: {why}");
    }
    // Malformed: a field missing.
    let r = op
        .post_with("/practices/new", &csrf, &[("slug", "praxis-z")])
        .await;
    assert_eq!(r.status(), 400);
    let audit_page = op.page("/audit").await;
    assert!(audit_page.contains("Praxis angelegt") && audit_page.contains("praxis-neu"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suspending_and_resuming_a_practice_is_confirmed_honoured_at_once_and_audited() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    // The practice's pages answer (and the store caches its registry entry).
    assert_eq!(app.front_door("praxis-a").await, 303);
    let op = signed_in_operator(&app, "erika").await;
    let confirm = op.page("/practices/praxis-a/suspend").await;
    assert!(confirm.contains("wirklich sperren"));
    let csrf = form_csrf(&confirm);
    let r = op
        .post_with("/practices/praxis-a/suspend", &csrf, &[])
        .await;
    assert_eq!(r.status(), 303);
    assert_eq!(
        r.headers()["location"],
        "/practices?done=gesperrt&slug=praxis-a"
    );
    let r = client().get(app.url("praxis-a", "/")).send().await.unwrap();
    assert_eq!(r.status(), 403, "suspended at once");
    assert!(r.text().await.unwrap().contains("Praxis gesperrt"));
    let list = op.page("/practices?done=gesperrt&slug=praxis-a").await;
    assert!(list.contains("ist gesperrt") && list.contains("Entsperren"));
    // Suspending again changes nothing.
    let r = op
        .post_with("/practices/praxis-a/suspend", &csrf, &[])
        .await;
    assert_eq!(r.status(), 303);
    let r = op.post_with("/practices/praxis-a/resume", &csrf, &[]).await;
    assert_eq!(r.status(), 303);
    assert_eq!(app.front_door("praxis-a").await, 303);
    // Unknown practices and actions.
    for path in [
        "/practices/praxis-x/suspend",
        "/practices/praxis-a/delete",
        "/practices/..%2F/suspend",
    ] {
        assert_eq!(op.get(path).await.status(), 404, "{path}");
        assert_eq!(op.post_with(path, &csrf, &[]).await.status(), 404, "{path}");
    }
    // Without a session nothing changes.
    let anon = client();
    let login_csrf = form_csrf_at(&anon, app.operator_url("/login")).await;
    let r = anon
        .post(app.operator_url("/practices/praxis-a/suspend"))
        .header("origin", app.operator_url(""))
        .form(&[("csrf_token", login_csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(app.front_door("praxis-a").await, 303);
    let audit_page = op.page("/audit").await;
    assert!(audit_page.contains("Praxis gesperrt") && audit_page.contains("Praxis entsperrt"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_log_pages_newest_first() {
    let app = TestApp::spawn().await;
    {
        let mut conn = operator::open_db(&app.data_dir()).unwrap();
        for i in 0..(audit::PAGE_SIZE + 5) {
            audit::record(
                &mut conn,
                T0 + i,
                audit::CLI,
                "practice.suspend",
                &format!("praxis-{i}"),
            )
            .unwrap();
        }
    }
    let op = signed_in_operator(&app, "erika").await;
    let first = op.page("/audit").await;
    assert!(first.contains("Einrichtung abgeschlossen"));
    let newest_practice = format!("praxis-{}", audit::PAGE_SIZE + 4);
    assert!(first.contains(&newest_practice));
    assert!(!first.contains(">praxis-0<"));
    let older = first
        .split("href=\"/audit?before=")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .to_owned();
    let second = op.page(&format!("/audit?before={older}")).await;
    assert!(second.contains(">praxis-0<"));
    assert!(!second.contains(&newest_practice));
}
