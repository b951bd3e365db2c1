//! Data at rest: delivered mail keeps no body (its one-time link is in no database file),
//! and everything under the data directory is owner-only, including what an older version
//! left readable.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::harness::{TestApp, client, use_smtp};
use crate::mail::wait_rows;
use crate::smtp::SmtpSink;

/// Whether `needle` occurs in the bytes of the database `file` of a practice or in its
/// `-wal`/`-shm` files.
fn in_database_files(dir: &Path, file: &str, needle: &str) -> Vec<String> {
    ["", "-wal", "-shm", "-journal"]
        .iter()
        .map(|suffix| format!("{file}{suffix}"))
        .filter(|name| {
            std::fs::read(dir.join(name))
                .is_ok_and(|bytes| bytes.windows(needle.len()).any(|w| w == needle.as_bytes()))
        })
        .collect()
}

/// (kind, recipient, subject, body_text, body_html, sent_at) of the IdP's mail queue.
type Row = (String, String, String, String, String, Option<i64>);

async fn queue(app: &TestApp, slug: &str) -> Vec<Row> {
    use diesel::prelude::*;
    use kollegium_tenants::mail::schema::mail_queue as q;
    app.idp_db(slug, |c| {
        q::table
            .order(q::id)
            .select((
                q::kind,
                q::recipient,
                q::subject,
                q::body_text,
                q::body_html,
                q::sent_at,
            ))
            .load::<Row>(c)
            .unwrap()
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivered_mail_keeps_no_body_and_its_link_is_in_no_database_file() {
    let mut smtp = SmtpSink::start();
    smtp.stop();
    let app = TestApp::spawn_with(|c| use_smtp(c, smtp.port)).await;
    app.create_practice("praxis-a").await;

    // The relay is down: the owner's setup mail waits with its body for the next attempt.
    wait_rows(&app, "praxis-a", 30, |rows| {
        rows.len() == 1 && rows[0].attempts >= 1 && rows[0].last_error.is_some()
    })
    .await;
    let rows = queue(&app, "praxis-a").await;
    assert_eq!(rows[0].5, None, "not delivered");
    assert!(rows[0].3.contains("/id/setup/"), "text kept for the retry");
    assert!(rows[0].4.contains("/id/setup/"), "HTML kept for the retry");

    smtp.restart();
    let mails = smtp.wait_for(1, 30).await;
    let path = mails[0].setup_path();
    let token = path.trim_start_matches("/id/setup/").to_owned();
    assert!(token.len() >= 20, "{path}");
    wait_rows(&app, "praxis-a", 10, |rows| rows[0].sent_at.is_some()).await;

    // The record stays, without the body.
    let rows = queue(&app, "praxis-a").await;
    let (kind, recipient, subject, text, html, sent_at) = rows[0].clone();
    assert_eq!(kind, "owner_setup");
    assert_eq!(recipient, "owner@praxis-a.example");
    assert_eq!(subject, "Zugang für Praxis praxis-a einrichten");
    assert!(sent_at.is_some());
    assert_eq!((text.as_str(), html.as_str()), ("", ""), "body dropped");

    // The link is in none of the database's files (main file, WAL, shared memory).
    let dir = app.data_dir().join("tenants/praxis-a");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let found = in_database_files(&dir, "idp.sqlite", &token);
        if found.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the delivered link is still in {found:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Delivery itself is unharmed: the mailed link opens the setup form.
    let r = client()
        .get(app.url("praxis-a", &path))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

/// Every directory and file under `root` with permission bits for group or others.
fn readable_by_others(root: &Path) -> Vec<(PathBuf, u32)> {
    let mut wide = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let Ok(meta) = std::fs::symlink_metadata(&p) else {
            continue; // removed while walking (a tantivy merge)
        };
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            wide.push((p.clone(), mode));
        }
        if meta.is_dir() {
            for e in std::fs::read_dir(&p).unwrap().flatten() {
                stack.push(e.path());
            }
        }
    }
    wide
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "never got {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_directory_is_owner_only_and_wider_modes_are_fixed_at_start() {
    let mut app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    // A member signs in (IdP and workspace databases with their WAL), posts in a room (the
    // search index) and invites someone (an outbox file: no SMTP configured).
    let anna = app.signed_in("praxis-a", "anna", true).await;
    let r = app
        .post_form(
            &anna,
            "praxis-a",
            "/chat",
            "/chat/rooms",
            &[("name", "Team")],
        )
        .await;
    assert_eq!(r.status(), 303);
    let room = r.headers()["location"].to_str().unwrap()["/chat/".len()..].to_owned();
    app.say(&anna, "praxis-a", &room, "Guten Morgen").await;
    let r = app
        .invite(&anna, "praxis-a", "bernd", "bernd@praxis-a.example")
        .await;
    assert_eq!(r.status(), 303);

    let data = app.data_dir();
    let practice = data.join("tenants/praxis-a");
    wait_for("an outbox file", || !app.outbox("praxis-a").is_empty()).await;
    wait_for("search index files", || {
        std::fs::read_dir(practice.join("index/search")).is_ok_and(|mut d| d.next().is_some())
    })
    .await;
    for f in [
        "registry.sqlite",
        "node.key",
        "tenants/praxis-a/idp.sqlite",
        "tenants/praxis-a/idp.sqlite-wal",
        "tenants/praxis-a/platform.sqlite",
        "tenants/praxis-a/platform.sqlite-wal",
    ] {
        assert!(data.join(f).exists(), "{f} exists (the walk covers it)");
    }
    assert_eq!(readable_by_others(&data), vec![], "nothing for group/other");
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&practice.join("idp.sqlite")), 0o600);

    // Modes an older version (or an operator) left wide are tightened at the next start.
    let outbox = app.outbox("praxis-a")[0].clone();
    let wide = [
        (data.clone(), 0o755, 0o700),
        (practice.clone(), 0o755, 0o700),
        (practice.join("index"), 0o775, 0o700),
        (practice.join("idp.sqlite"), 0o644, 0o600),
        (data.join("registry.sqlite"), 0o666, 0o600),
        (outbox, 0o640, 0o600),
    ];
    for (p, m, _) in &wide {
        chmod(p, *m);
    }
    app.restart().await;
    for (p, _, want) in &wide {
        assert_eq!(mode(p), *want, "{}", p.display());
    }
    assert_eq!(readable_by_others(&data), vec![]);
    // Still serving the practice from the tightened files.
    let r = app.get(&app.url("praxis-a", "/id/login")).await;
    assert_eq!(r.status(), 200);
}
