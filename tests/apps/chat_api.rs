//! A signed-in member's chat over the JSON API and the live socket: the typed client of the
//! chat app's machine interfaces (the form side is `apps::chat::Member`).

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use reqwest::cookie::CookieStore;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{WebSocketStream, client_async};

use crate::harness::{TestApp, client_with_jar, meta_csrf};

use crate::harness::CHAT_PW as PW;

/// A signed-in member: HTTP client, its cookie jar and the page's CSRF token.
pub struct Person {
    pub http: reqwest::Client,
    pub jar: Arc<reqwest::cookie::Jar>,
    pub csrf: String,
    pub slug: String,
}

pub async fn person(app: &TestApp, slug: &str, user: &str, admin: bool) -> Person {
    app.create_user(slug, user, PW, admin).await;
    let (http, jar) = client_with_jar();
    app.sign_in(&http, slug, user, PW).await;
    let html = http
        .get(app.url(slug, "/chat"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    Person {
        http,
        jar,
        csrf: meta_csrf(&html),
        slug: slug.to_owned(),
    }
}

impl Person {
    pub async fn api(
        &self,
        app: &TestApp,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, app.url(&self.slug, path))
            .header("x-csrf-token", &self.csrf)
            .header("accept", "application/json");
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// The page at `path`; it must answer 200.
    pub async fn page(&self, app: &TestApp, path: &str) -> String {
        let r = self
            .http
            .get(app.url(&self.slug, path))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
        r.text().await.unwrap()
    }

    /// Sends a form to `action` with this member's CSRF token.
    pub async fn send_form(
        &self,
        app: &TestApp,
        action: &str,
        fields: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut all = vec![("csrf_token", self.csrf.as_str())];
        all.extend_from_slice(fields);
        self.http
            .post(app.url(&self.slug, action))
            .form(&all)
            .send()
            .await
            .unwrap()
    }

    pub fn cookie(&self, app: &TestApp) -> String {
        let url = app.url(&self.slug, "/").parse().unwrap();
        self.jar
            .cookies(&url)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    }
}

pub type Socket = WebSocketStream<TcpStream>;

/// Opens the chat socket of `slug` with the given cookie and `Origin`.
pub async fn socket(
    app: &TestApp,
    slug: &str,
    cookie: &str,
    origin: Option<&str>,
) -> Result<Socket, tungstenite::Error> {
    let url = app
        .url(slug, "/api/chat/ws")
        .replacen("http://", "ws://", 1);
    let mut req = url.into_client_request().unwrap();
    if !cookie.is_empty() {
        req.headers_mut().insert("cookie", cookie.parse().unwrap());
    }
    if let Some(o) = origin {
        req.headers_mut().insert("origin", o.parse().unwrap());
    }
    let tcp = TcpStream::connect(("127.0.0.1", app.port)).await.unwrap();
    client_async(req, tcp).await.map(|(s, _)| s)
}

pub async fn member_socket(app: &TestApp, p: &Person) -> Socket {
    let origin = app.url(&p.slug, "");
    socket(app, &p.slug, &p.cookie(app), Some(&origin))
        .await
        .unwrap()
}

/// The next JSON event (skipping pings), within `wait`.
pub async fn next_event(s: &mut Socket, wait: Duration) -> Option<Value> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let msg = tokio::time::timeout_at(deadline, s.next()).await.ok()??;
        match msg.ok()? {
            Message::Text(t) => return serde_json::from_str(t.as_str()).ok(),
            Message::Ping(_) | Message::Pong(_) => {}
            _ => return None,
        }
    }
}

/// The next event of `kind`, skipping others.
pub async fn expect(s: &mut Socket, kind: &str) -> Value {
    loop {
        let ev = next_event(s, Duration::from_secs(1))
            .await
            .unwrap_or_else(|| panic!("no {kind} event within 1 s"));
        if ev["type"] == kind {
            return ev;
        }
    }
}

/// How the server closed the socket (code), reading past other frames.
pub async fn close_code(s: &mut Socket) -> Option<CloseCode> {
    loop {
        match tokio::time::timeout(Duration::from_secs(5), s.next()).await {
            Ok(Some(Ok(Message::Close(frame)))) => return frame.map(|f| f.code),
            Ok(Some(Ok(_))) => {}
            _ => return None,
        }
    }
}

pub async fn send(s: &mut Socket, v: Value) {
    s.send(Message::text(v.to_string())).await.unwrap();
}

pub async fn new_room(
    app: &TestApp,
    p: &Person,
    name: &str,
    private: bool,
    members: &[i64],
) -> i64 {
    let (status, v) = p
        .api(
            app,
            reqwest::Method::POST,
            "/api/chat/rooms",
            Some(json!({"name": name, "private": private, "members": members})),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    v["id"].as_i64().unwrap()
}

pub async fn member_id(app: &TestApp, p: &Person, username: &str) -> i64 {
    let (_, v) = p
        .api(app, reqwest::Method::GET, "/api/chat/members", None)
        .await;
    v["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["username"] == username)
        .unwrap()["id"]
        .as_i64()
        .unwrap()
}

pub async fn post(app: &TestApp, p: &Person, room: i64, body: &str) -> Value {
    let (status, v) = p
        .api(
            app,
            reqwest::Method::POST,
            &format!("/api/chat/rooms/{room}/messages"),
            Some(json!({ "body": body })),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    v
}

pub async fn unread(app: &TestApp, p: &Person, room: i64) -> i64 {
    let (_, v) = p
        .api(app, reqwest::Method::GET, "/api/chat/rooms", None)
        .await;
    v["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == room)
        .map_or(0, |r| r["unread"].as_i64().unwrap())
}

impl std::ops::Deref for Person {
    type Target = reqwest::Client;
    fn deref(&self) -> &reqwest::Client {
        &self.http
    }
}
