//! Helpers for the OIDC tests: registering clients, a signed-in browser, driving the
//! authorization endpoint, calling the token endpoint, PKCE pairs, a back-channel receiver.

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use kollegium_idp::oidc::clients::{self, Created, NewClient, RedirectUri};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::{TestApp, client};

pub const PASSWORD: &str = "Sonnenblume-Kaffee-42";

/// Registers a client through the domain function.
pub async fn register(app: &TestApp, slug: &str, c: NewClient) -> Created {
    let tenant = app.tenant(slug);
    let now = app.clock.now();
    tokio::task::spawn_blocking(move || {
        let mut conn = tenant.conn(&kollegium_idp::IDP_DB).unwrap();
        clients::create(&mut conn, &c, now).unwrap().unwrap()
    })
    .await
    .unwrap()
}

/// A client with one redirect URI (`https://tool.example/cb`) and the logout address
/// `https://tool.example/bye`.
pub fn tool(name: &str, confidential: bool, first_party: bool) -> NewClient {
    let mut c =
        NewClient::parse(name, &["https://tool.example/cb".to_owned()], confidential).unwrap();
    c.first_party = first_party;
    c.post_logout_uris = vec![RedirectUri::parse("https://tool.example/bye").unwrap()];
    c
}

/// A browser signed in at `slug` as a new user `user`.
pub async fn browser(app: &TestApp, slug: &str, user: &str) -> reqwest::Client {
    app.create_user(slug, user, PASSWORD, false).await;
    let c = client();
    let r = app.login(&c, slug, user, PASSWORD).await;
    assert_eq!(r.status(), 303);
    c
}

pub fn location(r: &reqwest::Response) -> String {
    r.headers()
        .get("location")
        .map(|l| l.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

/// The query parameters of a URL.
pub fn query(url: &str) -> HashMap<String, String> {
    let q = url.split_once('?').map_or("", |(_, q)| q);
    serde_urlencoded::from_str::<Vec<(String, String)>>(q)
        .unwrap()
        .into_iter()
        .collect()
}

/// GET `/id/authorize` with `params`.
pub async fn authorize(
    app: &TestApp,
    c: &reqwest::Client,
    slug: &str,
    params: &[(&str, &str)],
) -> reqwest::Response {
    let q = serde_urlencoded::to_string(params).unwrap();
    c.get(app.url(slug, &format!("/id/authorize?{q}")))
        .send()
        .await
        .unwrap()
}

/// A PKCE verifier and its S256 challenge.
pub fn pkce() -> (String, String) {
    let verifier = kollegium_tenants::secrets::random_token(32);
    let challenge = B64.encode(Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

/// Runs the authorization request and returns the code (asserts a redirect with a code).
pub async fn code_for(
    app: &TestApp,
    c: &reqwest::Client,
    slug: &str,
    client_id: &str,
    extra: &[(&str, &str)],
) -> String {
    let mut p = vec![
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", "https://tool.example/cb"),
        ("scope", "openid profile email"),
        ("state", "st"),
    ];
    p.retain(|(k, _)| !extra.iter().any(|(e, _)| e == k));
    p.extend_from_slice(extra);
    let r = authorize(app, c, slug, &p).await;
    assert_eq!(r.status(), 302, "{}", r.text().await.unwrap());
    let loc = location(&r);
    assert!(loc.starts_with("https://tool.example/cb?"), "{loc}");
    query(&loc)
        .get("code")
        .cloned()
        .unwrap_or_else(|| panic!("no code in {loc}"))
}

/// POSTs a form to a token-style endpoint, optionally with basic credentials.
pub async fn post_form(
    app: &TestApp,
    slug: &str,
    path: &str,
    form: &[(&str, &str)],
    basic: Option<(&str, &str)>,
) -> (u16, Value, Option<String>) {
    let mut rb = client().post(app.url(slug, path)).form(form);
    if let Some((id, secret)) = basic {
        rb = rb.basic_auth(id, Some(secret));
    }
    let r = rb.send().await.unwrap();
    let status = r.status().as_u16();
    let www = r
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = r.json::<Value>().await.unwrap_or(Value::Null);
    (status, body, www)
}

/// Exchanges a code at the token endpoint.
pub async fn exchange(
    app: &TestApp,
    slug: &str,
    creds: (&str, &str),
    code: &str,
    verifier: Option<&str>,
) -> (u16, Value) {
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", "https://tool.example/cb"),
    ];
    if let Some(v) = verifier {
        form.push(("code_verifier", v));
    }
    let (s, b, _) = post_form(app, slug, "/id/token", &form, Some(creds)).await;
    (s, b)
}

/// GET `/id/userinfo` with a bearer token; returns the status.
pub async fn userinfo_status(app: &TestApp, slug: &str, token: &str) -> u16 {
    client()
        .get(app.url(slug, "/id/userinfo"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// The decoded claims of a JWT (no verification).
pub fn claims(jwt: &str) -> Value {
    let part = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&B64.decode(part).unwrap()).unwrap()
}

/// The decoded header of a JWT (not verified).
pub fn claims_header(jwt: &str) -> Value {
    let part = jwt.split('.').next().unwrap();
    serde_json::from_slice(&B64.decode(part).unwrap()).unwrap()
}

/// A one-shot HTTP receiver on 127.0.0.1: answers 200 and hands over each request body.
pub async fn receiver() -> (u16, tokio::sync::mpsc::UnboundedReceiver<String>) {
    receiver_failing_first(0).await
}

/// Like [`receiver`], but the first `failures` requests are answered with 500 (their bodies
/// are handed over too).
pub async fn receiver_failing_first(
    failures: usize,
) -> (u16, tokio::sync::mpsc::UnboundedReceiver<String>) {
    let answered = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let tx = tx.clone();
            let answered = answered.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let n = sock.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buf).to_string();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let len = text[..end]
                            .lines()
                            .find_map(|l| {
                                let l = l.to_ascii_lowercase();
                                l.strip_prefix("content-length:")
                                    .map(|v| v.trim().parse::<usize>().unwrap())
                            })
                            .unwrap_or(0);
                        if buf.len() >= end + 4 + len {
                            let body =
                                String::from_utf8_lossy(&buf[end + 4..end + 4 + len]).to_string();
                            let nth = answered.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                            let status: &[u8] = if nth < failures {
                                b"HTTP/1.1 500 Internal Server Error"
                            } else {
                                b"HTTP/1.1 200 OK"
                            };
                            let _ = sock.write_all(status).await;
                            let _ = sock
                                .write_all(b"\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                                .await;
                            let _ = tx.send(body);
                            break;
                        }
                    }
                }
            });
        }
    });
    (port, rx)
}

/// Hidden inputs of a form as pairs (consent page).
pub fn hidden_fields(html: &str) -> Vec<(String, String)> {
    // Only the page's main form (the user menu has a logout form of its own).
    let html = match html.find("<form class=\"stack\"") {
        Some(i) => &html[i..],
        None => html,
    };
    let html = &html[..html.find("</form>").unwrap_or(html.len())];
    let mut out = Vec::new();
    for part in html.split("<input type=\"hidden\" name=\"").skip(1) {
        let name = part.split('"').next().unwrap().to_owned();
        let value = part
            .split("value=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        out.push((name, unescape(value)));
    }
    out
}

pub fn unescape(v: &str) -> String {
    let mut out = String::new();
    let mut rest = v;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        let end = tail.find(';').unwrap();
        let entity = &tail[1..end];
        let ch = match entity {
            "amp" => '&',
            "quot" => '"',
            "lt" => '<',
            "gt" => '>',
            e => {
                let n = e.trim_start_matches('#');
                let code = match n.strip_prefix('x') {
                    Some(hex) => u32::from_str_radix(hex, 16).unwrap(),
                    None => n.parse().unwrap(),
                };
                char::from_u32(code).unwrap()
            }
        };
        out.push(ch);
        rest = &tail[end + 1..];
    }
    out.push_str(rest);
    out
}

/// Authorizes `client_id` once through the consent page ("allow") and returns the code.
pub async fn code_with_consent(
    app: &TestApp,
    c: &reqwest::Client,
    slug: &str,
    client_id: &str,
    scope: &str,
) -> String {
    let r = authorize(
        app,
        c,
        slug,
        &[
            ("response_type", "code"),
            ("client_id", client_id),
            ("redirect_uri", "https://tool.example/cb"),
            ("scope", scope),
            ("state", "st"),
        ],
    )
    .await;
    if r.status() == 302 {
        return query(&location(&r))["code"].clone();
    }
    assert_eq!(r.status(), 200, "consent page");
    let mut allow = hidden_fields(&r.text().await.unwrap());
    allow.push(("decision".into(), "allow".into()));
    let r = c
        .post(app.url(slug, "/id/authorize/consent"))
        .form(&allow)
        .send()
        .await
        .unwrap();
    query(&location(&r))["code"].clone()
}
