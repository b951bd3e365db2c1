//! Host-based routing and its bad inputs.

use std::io::{Read, Write};
use std::net::TcpStream;

use kollegium::practices::Change;

use crate::harness::TestApp;

/// Sends a raw HTTP request (so the Host header can be anything, or missing).
fn raw(port: u16, request: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, text)
}

fn get_with_host(port: u16, host: Option<&str>) -> (u16, String) {
    get_path_with_host(port, "/", host)
}

fn get_path_with_host(port: u16, path: &str, host: Option<&str>) -> (u16, String) {
    let host_line = host.map(|h| format!("Host: {h}\r\n")).unwrap_or_default();
    raw(
        port,
        &format!("GET {path} HTTP/1.1\r\n{host_line}Connection: close\r\n\r\n"),
    )
}

/// The body without the parts that differ per request.
fn body(resp: &str) -> String {
    resp.split("\r\n\r\n").nth(1).unwrap_or("").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn practice_hosts_are_served_in_every_spelling_that_is_theirs() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    let p = app.port;
    for host in [
        format!("praxis-a.localhost:{p}"),
        "praxis-a.localhost".into(),
        format!("PRAXIS-A.LocalHost:{p}"),
    ] {
        let (status, text) = get_path_with_host(p, "/id/login", Some(&host));
        assert_eq!(status, 200, "{host}");
        assert!(text.contains("Praxis praxis-a"), "{host}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_foreign_host_gets_the_same_404_that_reveals_nothing() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    app.create_practice("praxis-gone").await;
    app.change(
        "praxis-gone",
        Change::Delete {
            confirm: "praxis-gone",
        },
    )
    .unwrap();
    let p = app.port;
    let (_, reference) = get_with_host(p, Some(&format!("praxis-nope.localhost:{p}")));
    let reference = body(&reference);
    assert!(reference.contains("Seite nicht gefunden"));
    for host in [
        Some(format!("praxis-nope.localhost:{p}")),
        Some(format!("praxis-gone.localhost:{p}")),
        Some(format!("praxis-a.localhost.:{p}")),
        Some("praxis-a.localhost.".into()),
        Some("evil.com".into()),
        Some(format!("evil.com:{p}")),
        Some(format!("a.b.localhost:{p}")),
        Some(format!("x.praxis-a.localhost:{p}")),
        Some(format!("127.0.0.1:{p}")),
        Some(format!("[::1]:{p}")),
        Some(format!("www.localhost:{p}")),
        Some(format!("praxis_a.localhost:{p}")),
        Some(format!("praxis-a.localhost:{p}x")),
        Some(String::new()),
        None,
    ] {
        let (status, text) = get_with_host(p, host.as_deref());
        // HTTP/1.1 without Host may be refused by the protocol layer itself (400).
        if host.is_none() {
            assert!(status == 404 || status == 400, "{host:?}: {status}");
            assert!(!text.contains("praxis-a"));
            continue;
        }
        assert_eq!(status, 404, "{host:?}");
        assert_eq!(
            body(&text),
            reference,
            "404 for {host:?} differs from an unknown practice's"
        );
    }
    // HTTP/1.0 allows a missing Host: still a plain 404.
    let (status, text) = raw(p, "GET / HTTP/1.0\r\n\r\n");
    assert_eq!(status, 404);
    assert_eq!(body(&text), reference);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suspended_practice_answers_praxis_gesperrt() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-s").await;
    app.change("praxis-s", Change::Suspend).unwrap();
    for path in ["/", "/id/", "/irgendwas", "/static/app.css"] {
        let r = app.get(&app.url("praxis-s", path)).await;
        assert_eq!(r.status(), 403, "{path}");
        assert!(r.text().await.unwrap().contains("Praxis gesperrt"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn base_slash_slug_redirects_without_revealing_existence() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    for slug in ["praxis-a", "praxis-unbekannt"] {
        for path in [format!("/{slug}"), format!("/{slug}/")] {
            let r = app.get(&app.node_url(&path)).await;
            assert_eq!(r.status(), 302, "{path}");
            assert_eq!(
                r.headers()["location"].to_str().unwrap(),
                format!("http://{slug}.localhost:{}/", app.port)
            );
        }
    }
    for path in [
        "/Praxis-A",
        "/a",
        "/www",
        "/praxis-a/x",
        "/praxis%2Da",
        "/praxis.a",
    ] {
        assert_eq!(app.get(&app.node_url(path)).await.status(), 404, "{path}");
    }
    let home = app.get(&app.node_url("/")).await;
    assert_eq!(home.status(), 200);
    let text = home.text().await.unwrap();
    assert!(text.contains("Kollegium"));
    assert!(
        !text.contains("praxis-a"),
        "the node page lists no practices"
    );
    // It names what exists (the apps of the shell), and promises nothing else.
    assert!(
        text.contains(
            "Der gemeinsame Arbeitsplatz für Praxisteams: Chat, Aufgaben und Neuigkeiten sowie die verbundenen"
        ),
        "{text}"
    );
    for promise in ["Dateien", "Tresor"] {
        assert!(!text.contains(promise), "{promise}: {text}");
    }
}
