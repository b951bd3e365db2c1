//! Answers at the edges of the request plumbing: a CSRF token in the query string, 404s
//! that must not tell known from unknown practices, and oversized or malformed request
//! heads (our own 431, and what actix's HTTP parser answers before any middleware runs).

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpStream;

use crate::harness::{TestApp, client, meta_csrf, raw_client};

const PW: &str = "Sonnenblume-Kaffee-42";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_csrf_token_in_the_query_string_is_not_accepted() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    app.create_user("praxis-a", "anna", PW, false).await;
    let c = client();
    let page = c
        .get(app.url("praxis-a", "/id/login"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let token = meta_csrf(&page);
    let fields = [("login", "anna"), ("password", PW), ("next", "/id/")];

    // The right token, the right cookie, a correct password, but the token in the URL.
    let r = c
        .post(app.url("praxis-a", &format!("/id/login?csrf_token={token}")))
        .form(&fields)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("Das Formular ist abgelaufen"),
        "the CSRF page"
    );
    let r = c
        .post(app.url("praxis-a", &format!("/id/login?csrf_token={token}")))
        .header("content-type", "multipart/form-data; boundary=x")
        .body("--x--\r\n")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "not for a multipart body either");

    // The same token in the form (or the header) passes.
    let r = c
        .post(app.url("praxis-a", "/id/login"))
        .header("x-csrf-token", &token)
        .form(&fields)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "signed in with the token in the header");
}

/// Status, header names (values of `date` and `x-request-id` differ per request) and body.
async fn shape(r: reqwest::Response) -> (u16, BTreeSet<String>, String) {
    let status = r.status().as_u16();
    let names = r.headers().keys().map(|k| k.as_str().to_owned()).collect();
    (status, names, r.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_known_practices_404_looks_exactly_like_an_unknown_ones() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    let c = raw_client();
    for path in [
        "/gibt-es-nicht",
        "/id/gibt-es-nicht",
        "/static/x.0000000000.css",
    ] {
        let known = c.get(app.url("praxis-a", path)).send().await.unwrap();
        assert!(
            known.headers().get("set-cookie").is_none(),
            "{path}: no cookie on a 404"
        );
        let known = shape(known).await;
        let unknown = shape(c.get(app.url("praxis-x", path)).send().await.unwrap()).await;
        assert_eq!(known.0, 404, "{path}");
        assert_eq!(known, unknown, "{path}: known and unknown practice differ");
    }
    // A page that exists still sets the cookie its forms need.
    let r = c
        .get(app.url("praxis-a", "/id/login"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("set-cookie").is_some());
}

/// Sends `request` on a fresh connection; returns the raw answer.
fn raw(port: u16, request: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}

/// Status code, lower-case header names with values, and body of a raw answer.
fn parse(answer: &str) -> (u16, Vec<(String, String)>, String) {
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((answer, ""));
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (status, headers, body.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_heads_get_our_431_and_the_parsers_own_answers_carry_nothing() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;

    // A head over our limit but within the parser's: our page with every security header.
    let r = raw_client()
        .get(app.url("praxis-a", "/id/login"))
        .header("cookie", format!("bloat={}", "c".repeat(40 * 1024)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 431);
    let h = r.headers().clone();
    assert!(h.get("set-cookie").is_none());
    for name in [
        "content-security-policy",
        "x-content-type-options",
        "x-frame-options",
        "referrer-policy",
        "permissions-policy",
        "cross-origin-opener-policy",
        "x-request-id",
    ] {
        assert!(h.contains_key(name), "431 lacks {name}");
    }
    assert_eq!(h["cache-control"], "no-store");
    assert!(r.text().await.unwrap().contains("Kopfzeilen zu groß"));
    let r = raw_client()
        .get(app.url("praxis-a", "/id/login"))
        .header("accept", "application/json")
        .header("x-long", "l".repeat(40 * 1024))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 431);
    let json: serde_json::Value = r.json().await.unwrap();
    assert_eq!(json["error"], "request_header_fields_too_large");

    // What actix's parser answers itself, before any middleware (more than 96 header
    // fields; a malformed header line): a status line and framing, no content, no cookie
    // (ARCHITECTURE.md, "Security decisions").
    let mut many = String::from("GET /id/login HTTP/1.1\r\nHost: praxis-a.localhost\r\n");
    for i in 0..120 {
        many.push_str(&format!("X-H{i}: v\r\n"));
    }
    many.push_str("\r\n");
    let bad =
        "GET /id/login HTTP/1.1\r\nHost: praxis-a.localhost\r\nKaputt ohne Doppelpunkt\r\n\r\n";
    for (what, request, status) in [
        ("too many fields", many.as_str(), 431),
        ("malformed", bad, 400),
    ] {
        let (code, headers, body) = parse(&raw(app.port, request));
        assert_eq!(code, status, "{what}");
        let names: BTreeSet<&str> = headers.iter().map(|(k, _)| k.as_str()).collect();
        let allowed = BTreeSet::from(["content-length", "connection", "date"]);
        assert!(names.is_subset(&allowed), "{what}: {names:?}");
        let len = headers.iter().find(|(k, _)| k == "content-length");
        assert_eq!(len.map(|(_, v)| v.as_str()), Some("0"), "{what}");
        assert_eq!(body, "", "{what}: no content");
    }

    // Still serving.
    let r = app.get(&app.url("praxis-a", "/id/login")).await;
    assert_eq!(r.status(), 200);
}
