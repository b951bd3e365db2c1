//! Card attachments end to end, against the test process's real clamd: upload through the
//! card page's form and download as a user checks them, malware and a missing scanner
//! refused with nothing stored, size limits, who may do what (pages, API, search), other
//! practices, and blobs that go only with their last reference.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::Value;

use crate::apps::attachments::{Stored, multipart, upload_action};
use crate::apps::chat::Member;
use crate::apps::chat_api::{Person, expect, member_socket, next_event, person};
use crate::clamd::{EICAR, EICAR_FINDING};
use crate::harness::{TestApp, meta_csrf};
use crate::tasks::{api_card, column_ids, member_id, new_board};

/// Bytes no text decoder would leave alone.
fn binary(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 31 % 256) as u8).collect()
}

/// A ZIP archive (stored, no compression) holding `eicar.com`.
fn zip_with_eicar() -> Vec<u8> {
    let name = b"eicar.com";
    let crc = crc32(EICAR);
    let n = EICAR.len() as u32;
    let mut local = Vec::new();
    local.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
    local.extend_from_slice(&[20, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    local.extend_from_slice(&crc.to_le_bytes());
    local.extend_from_slice(&n.to_le_bytes());
    local.extend_from_slice(&n.to_le_bytes());
    local.extend_from_slice(&(name.len() as u16).to_le_bytes());
    local.extend_from_slice(&0u16.to_le_bytes());
    local.extend_from_slice(name);
    local.extend_from_slice(EICAR);
    let mut central = Vec::new();
    central.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
    central.extend_from_slice(&[20, 0, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    central.extend_from_slice(&crc.to_le_bytes());
    central.extend_from_slice(&n.to_le_bytes());
    central.extend_from_slice(&n.to_le_bytes());
    central.extend_from_slice(&(name.len() as u16).to_le_bytes());
    central.extend_from_slice(&[0; 12]);
    central.extend_from_slice(&0u32.to_le_bytes());
    central.extend_from_slice(name);
    let mut zip = local.clone();
    zip.extend_from_slice(&central);
    zip.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    zip.extend_from_slice(&[0, 0, 0, 0, 1, 0, 1, 0]);
    zip.extend_from_slice(&(central.len() as u32).to_le_bytes());
    zip.extend_from_slice(&(local.len() as u32).to_le_bytes());
    zip.extend_from_slice(&0u16.to_le_bytes());
    zip
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A practice with anna's board "Praxis" (the whole practice may read it, anna2 edit it
/// over the API) and one card on it.
struct Setup<'a> {
    board: i64,
    card: i64,
    anna: Member<'a>,
    anna2: Person,
}

async fn board_with_card<'a>(app: &'a TestApp, slug: &str) -> Setup<'a> {
    let anna = app.member(slug, "anna", false).await;
    let anna2 = person(app, slug, "anna2", false).await;
    let share = format!("member:{}", member_id(app, &anna2, "anna2").await);
    let board = new_board(&anna, "Praxis", &[("practice", "view"), (&share, "edit")]).await;
    let cols = column_ids(app, &anna2, board).await;
    let card = api_card(app, &anna2, board, cols[0], "Geräteprüfung").await;
    Setup {
        board,
        card,
        anna,
        anna2,
    }
}

/// A new card on `board` from the board page's form; its id.
async fn new_card(anna: &Member<'_>, board: i64, title: &str) -> i64 {
    let r = anna
        .form(
            &format!("/tasks/boards/{board}"),
            &format!("/tasks/boards/{board}/cards"),
            &[("title", title)],
        )
        .await;
    assert_eq!(r.status(), 303);
    r.headers()["location"]
        .to_str()
        .unwrap()
        .split("#card-")
        .nth(1)
        .unwrap()
        .parse()
        .unwrap()
}

/// Uploads through the JSON API as `p`.
async fn api_upload(
    app: &TestApp,
    p: &Person,
    card: i64,
    name: &str,
    bytes: &[u8],
) -> (u16, Value) {
    let (ct, body) = multipart(name, "application/octet-stream", bytes);
    let r = p
        .http
        .post(app.url(&p.slug, &format!("/api/tasks/attachments?card={card}")))
        .header("x-csrf-token", &p.csrf)
        .header("accept", "application/json")
        .header("content-type", ct)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn an_attachment_goes_up_and_comes_back_byte_for_byte() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    let Setup { card, anna, .. } = board_with_card(&app, "praxis-a").await;
    // Over the ordinary body limit (1 MB): uploads have their own.
    let bytes = binary(1536 * 1024);

    let r = anna
        .attach(card, "Prüfprotokoll März.pdf", "application/pdf", &bytes)
        .await;
    assert_eq!(r.status(), 303);
    let back = r.headers()["location"].to_str().unwrap().to_owned();
    let page = anna.page(&back).await;
    assert!(page.contains("Die Datei wurde geprüft und angehängt."));
    assert!(page.contains("Prüfprotokoll März.pdf"));
    assert!(page.contains("1,5 MB"), "size shown");
    assert!(page.contains("· anna Test ·"), "who uploaded it");
    assert!(page.contains("hat die Datei „Prüfprotokoll März.pdf“ angehängt"));
    let ids = anna.attachments(card).await;
    assert_eq!(ids.len(), 1);

    let r = anna.get(&format!("/tasks/attachments/{}", ids[0])).await;
    assert_eq!(r.status(), 200);
    let h = r.headers().clone();
    assert_eq!(h["content-type"], "application/pdf");
    assert_eq!(h["x-content-type-options"], "nosniff");
    let cd = h["content-disposition"].to_str().unwrap();
    assert!(cd.starts_with("attachment;"), "{cd}");
    assert!(
        cd.contains("filename*=UTF-8''Pr%C3%BCfprotokoll%20M%C3%A4rz.pdf"),
        "{cd}"
    );
    assert!(
        h["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("default-src")
    );
    assert_eq!(r.bytes().await.unwrap().as_ref(), bytes.as_slice());

    // A page sent as HTML is stored as opaque bytes, downloaded, never rendered.
    let html = b"<html><script>alert(1)</script></html>";
    let r = anna.attach(card, "seite.html", "text/html", html).await;
    assert_eq!(r.status(), 303);
    let id = *anna.attachments(card).await.last().unwrap();
    let r = anna.get(&format!("/tasks/attachments/{id}")).await;
    assert_eq!(r.headers()["content-type"], "application/octet-stream");
    assert!(
        r.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment;")
    );
    assert_eq!(r.bytes().await.unwrap().as_ref(), html);

    // Two blobs, no temp file, two rows.
    let stored = app.stored("praxis-a");
    assert_eq!((stored.blobs, stored.attachments), (2, 2));
    assert_eq!(stored.files.len(), 2, "{:?}", stored.files);
    assert!(stored.files.iter().all(|f| !f.starts_with('.')));

    // The JSON API lists them for readers.
    let api = person(&app, "praxis-a", "ria", false).await;
    let (status, v) = api
        .api(
            &app,
            Method::GET,
            &format!("/api/tasks/cards/{card}/attachments"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{v}");
    let list = v["attachments"].as_array().unwrap();
    assert_eq!(list[0]["name"], "Prüfprotokoll März.pdf");
    assert_eq!(list[0]["size"], 1536 * 1024);
}

#[tokio::test]
async fn malware_is_refused_and_nothing_is_stored() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    let Setup {
        card, anna, anna2, ..
    } = board_with_card(&app, "praxis-a").await;

    for (name, bytes) in [
        ("eicar.com", EICAR.to_vec()),
        ("rechnung.zip", zip_with_eicar()),
    ] {
        let r = anna
            .attach(card, name, "application/octet-stream", &bytes)
            .await;
        assert_eq!(r.status(), 422, "{name}");
        let body = r.text().await.unwrap();
        assert!(
            body.contains(&format!("Die Datei „{name}“ wurde nicht gespeichert")),
            "{body}"
        );
        assert!(body.contains("Schadsoftware"), "{body}");
        assert!(body.contains(EICAR_FINDING), "names the finding: {body}");
    }
    assert_eq!(app.stored("praxis-a"), Stored::empty());
    let page = anna.page(&format!("/tasks/cards/{card}")).await;
    assert!(page.contains("Keine Anhänge."));
    assert!(!page.contains("angehängt"), "no history entry");

    // The API says the same, in its JSON shape.
    let (status, v) = api_upload(&app, &anna2, card, "eicar.com", EICAR).await;
    assert_eq!(
        (status, v["error"].as_str()),
        (422, Some("infected")),
        "{v}"
    );
    assert!(v["message"].as_str().unwrap().contains(EICAR_FINDING));
    assert_eq!(app.stored("praxis-a"), Stored::empty());
    // And takes a clean file.
    let (status, v) = api_upload(&app, &anna2, card, "ok.txt", b"sauber").await;
    assert_eq!(status, 201, "{v}");
    assert_eq!(v["attachment"]["name"], "ok.txt");
    assert_eq!(app.stored("praxis-a").attachments, 1);
}

#[tokio::test]
async fn without_a_reachable_scanner_nothing_is_stored() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    for address in [format!("127.0.0.1:{closed}"), String::new()] {
        let app = TestApp::spawn_with(|c| c.clamd.address = address.clone()).await;
        app.create_practice("praxis-a").await;
        let Setup { card, anna, .. } = board_with_card(&app, "praxis-a").await;
        let r = anna
            .attach(card, "harmlos.txt", "text/plain", b"nur Text")
            .await;
        assert_eq!(r.status(), 503, "clamd at {address:?}");
        let body = r.text().await.unwrap();
        assert!(
            body.contains("Virenprüfung nicht erreichbar – Datei wurde nicht gespeichert"),
            "{body}"
        );
        assert_eq!(
            app.stored("praxis-a"),
            Stored::empty(),
            "clamd at {address:?}"
        );
    }
}

#[tokio::test]
async fn oversized_uploads_are_refused_whole() {
    let app = TestApp::spawn_with(|c| c.limits.max_upload_bytes = 64 * 1024).await;
    app.create_practice("praxis-a").await;
    let Setup { card, anna, .. } = board_with_card(&app, "praxis-a").await;
    let page = anna.page(&format!("/tasks/cards/{card}")).await;
    assert!(page.contains("höchstens 64 KB"));
    let action = upload_action(&page).unwrap();

    // One byte over: read up to the limit while streaming, then refused; the temp file goes.
    let r = anna
        .upload_to(
            &action,
            "gross.bin",
            "application/octet-stream",
            &binary(64 * 1024 + 1),
        )
        .await;
    assert_eq!(r.status(), 413);
    let body = r.text().await.unwrap();
    assert!(
        body.contains("Die Datei ist zu groß: höchstens 64 KB"),
        "{body}"
    );
    assert_eq!(app.stored("praxis-a"), Stored::empty());

    // Far over: refused by its declared length before a byte is read.
    let r = anna
        .upload_to(
            &action,
            "riesig.bin",
            "application/octet-stream",
            &binary(400 * 1024),
        )
        .await;
    assert_eq!(r.status(), 413);
    assert_eq!(app.stored("praxis-a"), Stored::empty());

    // Exactly the limit is fine.
    let r = anna
        .upload_to(
            &action,
            "passt.bin",
            "application/octet-stream",
            &binary(64 * 1024),
        )
        .await;
    assert_eq!(r.status(), 303);
    let stored = app.stored("praxis-a");
    assert_eq!(
        (stored.files.len(), stored.blobs, stored.attachments),
        (1, 1, 1)
    );
}

#[tokio::test]
async fn strangers_readers_and_other_practices_cannot_touch_attachments() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    app.create_practice("praxis-b").await;
    let Setup { card, anna, .. } = board_with_card(&app, "praxis-a").await;
    let r = anna.attach(card, "plan.txt", "text/plain", b"Plan").await;
    assert_eq!(r.status(), 303);
    let att = anna.attachments(card).await[0];
    // A private board: nobody but anna.
    let private = new_board(&anna, "Privat", &[]).await;

    // Readers of "Praxis": see and download, but no form, and uploads/deletes are refused.
    let ria = app.member("praxis-a", "ria", false).await;
    let page = ria.page(&format!("/tasks/cards/{card}")).await;
    assert!(upload_action(&page).is_none(), "no upload form for readers");
    assert!(!page.contains(&format!("/tasks/attachments/{att}/delete")));
    let r = ria.get(&format!("/tasks/attachments/{att}")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap().as_ref(), b"Plan");
    let token = meta_csrf(&page);
    let forged = format!("/tasks/attachments?card={card}&csrf_token={token}");
    let r = ria.upload_to(&forged, "x.txt", "text/plain", b"x").await;
    assert_eq!(r.status(), 403);
    assert_eq!(
        ria.status(&format!("/tasks/attachments/{att}/delete"))
            .await,
        403
    );
    let r = ria.delete_attachment(att).await;
    assert_eq!(r.status(), 403);

    // Without a CSRF token (form or query): refused before anything is read.
    let bare = format!("/tasks/attachments?card={card}");
    let r = anna.upload_to(&bare, "x.txt", "text/plain", b"x").await;
    assert_eq!(r.status(), 403);
    let r = anna
        .upload_to(
            &format!("{bare}&csrf_token=falsch"),
            "x.txt",
            "text/plain",
            b"x",
        )
        .await;
    assert_eq!(r.status(), 403);
    assert_eq!(
        anna.post_without_token(
            &format!("/tasks/attachments/{att}/delete"),
            &[("confirm", "1")]
        )
        .await,
        403
    );

    // Not signed in: no answer about the attachment.
    let anon = app.anonymous("praxis-a");
    let r = anon.get(&format!("/tasks/attachments/{att}")).await;
    assert!(matches!(r.status().as_u16(), 303 | 401), "{}", r.status());
    assert_ne!(r.text().await.unwrap(), "Plan");
    let r = anon
        .get_json(&format!("/api/tasks/cards/{card}/attachments"))
        .await;
    assert_eq!(r.status(), 401);

    // A member without access to the private board: 404 like an unknown id.
    let xaver = app.member("praxis-a", "xaver", false).await;
    let token = meta_csrf(&xaver.page("/tasks").await);
    let priv_card = new_card(&anna, private, "Vertraulich").await;
    let r = anna
        .attach(priv_card, "geheim.txt", "text/plain", b"geheim")
        .await;
    assert_eq!(r.status(), 303);
    let priv_att = anna.attachments(priv_card).await[0];
    for path in [
        format!("/tasks/attachments/{priv_att}"),
        format!("/tasks/attachments/{priv_att}/delete"),
        "/tasks/attachments/999999".to_owned(),
        "/tasks/attachments/999999/delete".to_owned(),
    ] {
        assert_eq!(xaver.status(&path).await, 404, "{path}");
    }
    let action = format!("/tasks/attachments?card={priv_card}&csrf_token={token}");
    let r = xaver.upload_to(&action, "x.txt", "text/plain", b"x").await;
    assert_eq!(r.status(), 404);
    let unknown = format!("/tasks/attachments?card=999999&csrf_token={token}");
    assert_eq!(
        xaver
            .upload_to(&unknown, "x.txt", "text/plain", b"x")
            .await
            .status(),
        404
    );
    assert_eq!(xaver.delete_attachment(priv_att).await.status(), 404);
    let xaver_api = person(&app, "praxis-a", "xaver2", false).await;
    for (method, path) in [
        (
            Method::GET,
            format!("/api/tasks/cards/{priv_card}/attachments"),
        ),
        (Method::DELETE, format!("/api/tasks/attachments/{priv_att}")),
        (Method::DELETE, "/api/tasks/attachments/999999".to_owned()),
    ] {
        let (status, v) = xaver_api.api(&app, method, &path, None).await;
        assert_eq!(
            (status, v["error"].as_str()),
            (404, Some("not_found")),
            "{path}"
        );
    }

    // Malformed uploads: a clear 400, nothing stored.
    let token = meta_csrf(&anna.page(&format!("/tasks/cards/{card}")).await);
    let action = format!("/tasks/attachments?card={card}&csrf_token={token}");
    let count = app.stored("praxis-a").attachments;
    for (ct, body) in [
        ("multipart/form-data", b"kein Rand".to_vec()),
        ("multipart/form-data; boundary=xyz", b"--xyz\r\nkaputt".to_vec()),
        ("text/plain", b"hallo".to_vec()),
        // A form whose file input was left empty.
        (
            "multipart/form-data; boundary=b",
            b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"\"\r\n\r\n\r\n--b--\r\n"
                .to_vec(),
        ),
    ] {
        let r = anna
            .client
            .post(anna.url(&action))
            .header("content-type", ct)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{ct}");
    }
    let bad_card = format!("/tasks/attachments?card=abc&csrf_token={token}");
    assert_eq!(
        anna.upload_to(&bad_card, "x.txt", "text/plain", b"x")
            .await
            .status(),
        400
    );
    assert_eq!(app.stored("praxis-a").attachments, count);

    // Practice B: its member, at B's origin, asking for A's ids; and A's session at B.
    let files_a = app.stored("praxis-a").files;
    let olaf = app.member("praxis-b", "olaf", false).await;
    let token_b = meta_csrf(&olaf.page("/tasks").await);
    for path in [
        format!("/tasks/attachments/{att}"),
        format!("/tasks/attachments/{att}/delete"),
        format!("/tasks/cards/{card}"),
    ] {
        assert_eq!(olaf.status(&path).await, 404, "{path}");
        assert_ne!(anna.at("praxis-b").status(&path).await, 200, "{path}");
    }
    let action = format!("/tasks/attachments?card={card}&csrf_token={token_b}");
    assert_eq!(
        olaf.upload_to(&action, "x.txt", "text/plain", b"x")
            .await
            .status(),
        404
    );
    assert_eq!(olaf.delete_attachment(att).await.status(), 404);
    assert_eq!(app.stored("praxis-a").files, files_a, "A's files untouched");
    assert_eq!(app.stored("praxis-b"), Stored::empty());
    assert_eq!(anna.attachments(card).await, vec![att]);
}

#[tokio::test]
async fn a_blob_goes_with_its_last_reference() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    let Setup {
        board,
        card: card1,
        anna,
        anna2,
    } = board_with_card(&app, "praxis-a").await;
    let card2 = new_card(&anna, board, "Zweite Karte").await;
    let same = binary(10_000);
    assert_eq!(
        anna.attach(card1, "a.bin", "application/octet-stream", &same)
            .await
            .status(),
        303
    );
    assert_eq!(
        anna.attach(card2, "b.bin", "application/octet-stream", &same)
            .await
            .status(),
        303
    );
    let stored = app.stored("praxis-a");
    assert_eq!(
        (stored.files.len(), stored.blobs, stored.attachments),
        (1, 1, 2),
        "one blob"
    );

    // The confirmation page, then the delete: the other card's copy survives.
    let a1 = anna.attachments(card1).await[0];
    let confirm = anna.page(&format!("/tasks/attachments/{a1}/delete")).await;
    assert!(confirm.contains("Den Anhang „a.bin“ wirklich löschen?"));
    let r = anna.delete_attachment(a1).await;
    assert_eq!(r.status(), 303);
    let page = anna.page(r.headers()["location"].to_str().unwrap()).await;
    assert!(page.contains("Der Anhang wurde gelöscht."));
    assert!(page.contains("hat den Anhang „a.bin“ gelöscht"));
    assert!(anna.attachments(card1).await.is_empty());
    assert_eq!(anna.status(&format!("/tasks/attachments/{a1}")).await, 404);
    let stored = app.stored("praxis-a");
    assert_eq!(
        (stored.files.len(), stored.blobs, stored.attachments),
        (1, 1, 1)
    );
    let a2 = anna.attachments(card2).await[0];
    let r = anna.get(&format!("/tasks/attachments/{a2}")).await;
    assert_eq!(r.bytes().await.unwrap().as_ref(), same.as_slice());

    // The last reference (over the API this time; a reader is refused first): the blob is
    // gone from disk and table.
    let reader = person(&app, "praxis-a", "ria", false).await;
    let path = format!("/api/tasks/attachments/{a2}");
    let (status, v) = reader.api(&app, Method::DELETE, &path, None).await;
    assert_eq!((status, v["error"].as_str()), (403, Some("forbidden")));
    assert_eq!(app.stored("praxis-a").attachments, 1);
    let (status, _) = anna2.api(&app, Method::DELETE, &path, None).await;
    assert_eq!(status, 204);
    assert_eq!(app.stored("praxis-a"), Stored::empty());
}

#[tokio::test]
async fn attachment_names_are_found_only_by_readers_of_the_board() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    let anna = app.member("praxis-a", "anna", false).await;
    let xaver = app.member("praxis-a", "xaver", false).await;
    let board = new_board(&anna, "Privat", &[]).await;
    let card = new_card(&anna, board, "Wartung").await;
    let r = anna
        .attach(
            card,
            "Sterilisator-Zertifikat.pdf",
            "application/pdf",
            b"%PDF-1.4",
        )
        .await;
    assert_eq!(r.status(), 303);
    let link = format!("/tasks/cards/{card}");
    let deadline = Instant::now() + Duration::from_secs(15);
    while !anna.page("/search?q=Sterilisator").await.contains(&link) {
        assert!(
            Instant::now() < deadline,
            "the attachment's card was never found"
        );
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    assert!(!xaver.page("/search?q=Sterilisator").await.contains(&link));

    // The practice export lists it with its size and hash.
    let export = app.export("praxis-a");
    let tasks = export.iter().find(|e| e.app == "tasks").unwrap();
    let files: &Value = &tasks.json["boards"][0]["cards"][0]["attachments"][0];
    assert_eq!(files["name"], "Sterilisator-Zertifikat.pdf");
    assert_eq!(files["size"], 8);
    assert_eq!(files["sha256"].as_str().unwrap().len(), 64);
    assert!(
        tasks
            .readable
            .contains("Anhang: Sterilisator-Zertifikat.pdf (8 Bytes")
    );
}

#[tokio::test]
async fn open_boards_hear_of_attachments_and_strangers_do_not() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    let Setup {
        board,
        card,
        anna,
        anna2,
    } = board_with_card(&app, "praxis-a").await;
    let private = new_board(&anna, "Privat", &[]).await;
    let secret_card = new_card(&anna, private, "Vertraulich").await;
    let reader = person(&app, "praxis-a", "ria", false).await;
    let mut ria = member_socket(&app, &reader).await;

    // On a board ria cannot read: she hears nothing.
    let r = anna
        .attach(secret_card, "geheim.txt", "text/plain", b"geheim")
        .await;
    assert_eq!(r.status(), 303);
    while let Some(ev) = next_event(&mut ria, Duration::from_millis(500)).await {
        assert_ne!(ev["type"], "tasks.board", "{ev}");
    }

    // On "Praxis", which she reads: the board's open pages are told which card changed.
    let (status, v) = api_upload(&app, &anna2, card, "neu.txt", b"neu").await;
    assert_eq!(status, 201, "{v}");
    let ev = expect(&mut ria, "tasks.board").await;
    assert_eq!(
        (
            ev["board"].as_i64(),
            ev["what"].as_str(),
            ev["card"].as_i64()
        ),
        (Some(board), Some("card"), Some(card))
    );
    let id = v["attachment"]["id"].as_i64().unwrap();
    let path = format!("/api/tasks/attachments/{id}");
    let (status, _) = anna2.api(&app, Method::DELETE, &path, None).await;
    assert_eq!(status, 204);
    let ev = expect(&mut ria, "tasks.board").await;
    assert_eq!(ev["card"].as_i64(), Some(card));
}
