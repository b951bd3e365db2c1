//! Security headers, CSRF, request limits, static assets and metrics.

use std::io::{Read, Write};
use std::net::TcpStream;

use kollegium::practices::Change;
use reqwest::header::HeaderMap;

use crate::harness::{TestApp, client, meta_csrf};

fn assert_security_headers(h: &HeaderMap, what: &str) {
    let csp = h
        .get("content-security-policy")
        .unwrap_or_else(|| panic!("{what}: no CSP"))
        .to_str()
        .unwrap();
    assert!(!csp.contains("unsafe-inline"), "{what}: {csp}");
    assert!(!csp.contains("unsafe-eval"), "{what}: {csp}");
    for d in [
        "object-src 'none'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
        "script-src 'self'",
    ] {
        assert!(csp.contains(d), "{what}: CSP lacks {d}");
    }
    assert_eq!(h["x-content-type-options"], "nosniff", "{what}");
    let rp = h["referrer-policy"].to_str().unwrap();
    assert!(
        ["same-origin", "no-referrer", "strict-origin"].contains(&rp),
        "{what}: {rp}"
    );
    assert!(h.contains_key("permissions-policy"), "{what}");
    assert!(h.contains_key("x-request-id"), "{what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_response_carries_the_security_headers() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    app.create_practice("praxis-s").await;
    app.change("praxis-s", Change::Suspend).unwrap();
    let page = app.get(&app.url("praxis-a", "/id/login")).await;
    let html = page.text().await.unwrap();
    let css = html
        .split("href=\"")
        .find_map(|s| s.split('"').next().filter(|h| h.ends_with(".css")))
        .unwrap()
        .to_owned();
    let cases = [
        ("practice page", app.url("praxis-a", "/id/login"), 200),
        ("practice 404", app.url("praxis-a", "/gibt-es-nicht"), 404),
        ("unknown practice", app.url("praxis-x", "/"), 404),
        ("suspended", app.url("praxis-s", "/"), 403),
        ("node page", app.node_url("/"), 200),
        ("node redirect", app.node_url("/praxis-a"), 302),
        ("static asset", app.url("praxis-a", &css), 200),
        (
            "unknown asset",
            app.url("praxis-a", "/static/app.0000000000.css"),
            404,
        ),
    ];
    for (what, url, status) in cases {
        let r = app.get(&url).await;
        assert_eq!(r.status(), status, "{what}");
        assert_security_headers(r.headers(), what);
        assert!(
            !r.headers().contains_key("strict-transport-security"),
            "{what}: no HSTS on http"
        );
        if what != "static asset" {
            assert_eq!(r.headers()["cache-control"], "no-store", "{what}");
        }
    }
    let r = app
        .client
        .post(app.url("praxis-a", "/"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_security_headers(r.headers(), "csrf refusal");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_assets_have_hashed_names_and_long_cache_lifetime() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    let html = app
        .get(&app.url("praxis-a", "/id/login"))
        .await
        .text()
        .await
        .unwrap();
    let css = html
        .split("href=\"")
        .find_map(|s| s.split('"').next().filter(|h| h.ends_with(".css")))
        .unwrap()
        .to_owned();
    assert!(
        css.starts_with("/static/app.") && css.len() > "/static/app..css".len() + 8,
        "{css}"
    );
    let r = app.get(&app.url("praxis-a", &css)).await;
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/css")
    );
    assert!(
        r.headers()["cache-control"]
            .to_str()
            .unwrap()
            .contains("immutable")
    );
    assert!(r.text().await.unwrap().contains("--brand"));
    assert!(
        !html.contains("style=") && !html.contains("<style"),
        "no inline styles"
    );
    assert!(!html.contains("<script>"), "no inline scripts");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hsts_is_sent_when_the_public_scheme_is_https() {
    let app =
        TestApp::spawn_with(|c| c.public_scheme = kollegium_tenants::web::Scheme::Https).await;
    app.create_practice("praxis-a").await;
    let r = app.get(&app.url("praxis-a", "/id/login")).await;
    assert!(
        r.headers()["strict-transport-security"]
            .to_str()
            .unwrap()
            .contains("max-age=")
    );
    let cookie = r.headers()["set-cookie"].to_str().unwrap();
    assert!(
        cookie.starts_with("__Host-") && cookie.contains("Secure"),
        "{cookie}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_changing_requests_need_this_practices_csrf_token() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    app.create_practice("praxis-b").await;
    let a = client();
    let html = a
        .get(app.url("praxis-a", "/id/login"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let token = meta_csrf(&html);

    // No token, a wrong token, a token in the wrong place: refused.
    let r = a.post(app.url("praxis-a", "/")).send().await.unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("Formular ist abgelaufen"));
    let r = a
        .post(app.url("praxis-a", "/"))
        .header("x-csrf-token", "forged")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = a
        .post(app.url("praxis-a", "/"))
        .form(&[("csrf", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    for method in [
        reqwest::Method::PUT,
        reqwest::Method::PATCH,
        reqwest::Method::DELETE,
    ] {
        let r = a
            .request(method.clone(), app.url("praxis-a", "/"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{method}");
    }
    // A foreign Origin is refused even with the right token.
    let r = a
        .post(app.url("praxis-a", "/"))
        .header("x-csrf-token", &token)
        .header("origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = a
        .post(app.url("praxis-a", "/"))
        .header("x-csrf-token", &token)
        .header("origin", app.url("praxis-b", ""))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // A's token is worthless at B, even with B's cookie.
    let _ = a
        .get(app.url("praxis-b", "/id/login"))
        .send()
        .await
        .unwrap();
    let r = a
        .post(app.url("praxis-b", "/"))
        .header("x-csrf-token", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // A fresh browser without the cookie cannot replay the token.
    let r = client()
        .post(app.url("praxis-a", "/"))
        .header("x-csrf-token", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    // The right token passes the CSRF check (there is no POST route at / yet: 404/405).
    for r in [
        a.post(app.url("praxis-a", "/"))
            .header("x-csrf-token", &token)
            .header("origin", app.url("praxis-a", ""))
            .send()
            .await
            .unwrap(),
        a.post(app.url("praxis-a", "/"))
            .form(&[("csrf_token", token.as_str()), ("x", "1")])
            .send()
            .await
            .unwrap(),
    ] {
        assert!(r.status() == 404 || r.status() == 405, "{}", r.status());
    }
    // In the query string it counts only on opted-in upload paths (none today).
    let r = a
        .post(app.url("praxis-a", &format!("/?csrf_token={token}")))
        .body("multipart-ish")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_bodies_and_headers_are_refused_not_crashed() {
    let app = TestApp::spawn_with(|c| {
        c.limits.max_body_bytes = 64 * 1024;
        c.limits.max_form_bytes = 16 * 1024;
    })
    .await;
    app.create_practice("praxis-a").await;
    let a = client();
    let token = meta_csrf(
        &a.get(app.url("praxis-a", "/id/login"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    );

    let r = a
        .post(app.url("praxis-a", "/"))
        .header("x-csrf-token", &token)
        .body(vec![b'x'; 200 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    assert!(r.text().await.unwrap().contains("Anfrage zu groß"));
    let big = "y".repeat(32 * 1024);
    let r = a
        .post(app.url("praxis-a", "/"))
        .form(&[("csrf_token", token.as_str()), ("text", &big)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let r = a
        .post(app.url("praxis-a", "/"))
        .header("accept", "application/json")
        .header("x-csrf-token", &token)
        .body(vec![b'x'; 200 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let json: serde_json::Value = r.json().await.unwrap();
    assert_eq!(json["error"], "payload_too_large");

    // Oversized header set: refused by the HTTP layer with 431 (or the connection closed),
    // and the server keeps serving.
    let mut s = TcpStream::connect(("127.0.0.1", app.port)).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    let huge = format!(
        "GET / HTTP/1.1\r\nHost: praxis-a.localhost\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        "h".repeat(256 * 1024)
    );
    let _ = s.write_all(huge.as_bytes());
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    assert!(
        text.is_empty() || text.starts_with("HTTP/1.1 431"),
        "{}",
        &text[..text.len().min(100)]
    );
    let mut many = String::from("GET / HTTP/1.1\r\nHost: praxis-a.localhost\r\n");
    for i in 0..500 {
        many.push_str(&format!("X-H{i}: v\r\n"));
    }
    many.push_str("Connection: close\r\n\r\n");
    let mut s = TcpStream::connect(("127.0.0.1", app.port)).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    let _ = s.write_all(many.as_bytes());
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    assert!(
        text.is_empty() || text.starts_with("HTTP/1.1 431"),
        "{}",
        &text[..text.len().min(100)]
    );

    assert_eq!(
        app.get(&app.url("praxis-a", "/id/login")).await.status(),
        200,
        "still serving"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_requests_and_health_answers() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    app.create_practice("praxis-b").await;
    for _ in 0..3 {
        assert_eq!(
            app.get(&app.url("praxis-a", "/id/login")).await.status(),
            200
        );
    }
    assert_eq!(app.get(&app.url("praxis-zz", "/")).await.status(), 404);
    assert_eq!(app.get(&app.node_url("/")).await.status(), 200);
    // A request that reads the practice's IdP database opens it.
    assert_eq!(
        app.get(&app.url("praxis-a", "/id/setup/unbekannt"))
            .await
            .status(),
        410
    );

    let health = app.get(&app.operator_url("/healthz")).await;
    assert_eq!(health.status(), 200);
    let text = app
        .get(&app.operator_url("/metrics"))
        .await
        .text()
        .await
        .unwrap();
    let value = |line_start: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(line_start))
            .and_then(|l| l.rsplit(' ').next())
            .unwrap()
            .parse()
            .unwrap()
    };
    assert_eq!(
        value("kollegium_http_requests_total{class=\"idp\",status=\"200\"}"),
        3.0
    );
    assert_eq!(
        value("kollegium_http_requests_total{class=\"platform\",status=\"404\"}"),
        1.0
    );
    assert_eq!(
        value("kollegium_http_requests_total{class=\"node\",status=\"200\"}"),
        1.0
    );
    assert_eq!(value("kollegium_http_request_duration_seconds_count"), 6.0);
    assert_eq!(value("kollegium_practices_known"), 2.0);
    assert_eq!(value("kollegium_open_practices"), 1.0);
    assert_eq!(value("kollegium_open_practice_databases"), 1.0);
    // The job worker's counters: nothing given up.
    assert_eq!(value("kollegium_jobs_failed_total"), 0.0);
    // The operator listener is not the main listener: practices are not served there.
    let r = client()
        .get(format!("http://praxis-a.localhost:{}/", app.operator_port))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}
