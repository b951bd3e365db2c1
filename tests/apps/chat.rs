//! A signed-in member's chat: rooms, messages, reactions, search.

use crate::harness::{TestApp, client};

/// A member of `slug` signed in to the workspace in their own browser (cookie jar).
pub struct Member<'a> {
    pub app: &'a TestApp,
    pub slug: String,
    pub client: reqwest::Client,
}

impl TestApp {
    /// Creates `user` (password [`CHAT_PW`]) at `slug` and signs a fresh browser in.
    pub async fn member(&self, slug: &str, user: &str, admin: bool) -> Member<'_> {
        let client = self.signed_in(slug, user, admin).await;
        Member {
            app: self,
            slug: slug.to_owned(),
            client,
        }
    }

    /// An existing user of `slug` signing in with `password` in a fresh browser.
    pub async fn member_signing_in(&self, slug: &str, user: &str, password: &str) -> Member<'_> {
        let c = client();
        self.sign_in(&c, slug, user, password).await;
        Member {
            app: self,
            slug: slug.to_owned(),
            client: c,
        }
    }

    /// A browser without a session at `slug`.
    pub fn anonymous(&self, slug: &str) -> Member<'_> {
        Member {
            app: self,
            slug: slug.to_owned(),
            client: client(),
        }
    }
}

/// The room id a room-creating or message-posting redirect points at.
pub fn room_of(r: &reqwest::Response) -> String {
    location(r)
        .trim_start_matches("/chat/")
        .split(['#', '?'])
        .next()
        .unwrap()
        .to_owned()
}

/// The message id a posting redirect points at (`/chat/<room>#m<id>`).
pub fn message_of(r: &reqwest::Response) -> String {
    location(r).split("#m").nth(1).unwrap().to_owned()
}

fn location(r: &reqwest::Response) -> &str {
    r.headers()["location"].to_str().unwrap()
}

impl Member<'_> {
    /// The same browser at another practice's address (its cookies are not sent there).
    pub fn at(&self, slug: &str) -> Member<'_> {
        Member {
            app: self.app,
            slug: slug.to_owned(),
            client: self.client.clone(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        self.app.url(&self.slug, path)
    }

    /// `GET path` as this browser (no redirects followed).
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    /// `GET path` asking for JSON.
    pub async fn get_json(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .header("accept", "application/json")
            .send()
            .await
            .unwrap()
    }

    /// The status of `GET path`.
    pub async fn status(&self, path: &str) -> u16 {
        self.get(path).await.status().as_u16()
    }

    /// The page at `path`; it must answer 200.
    pub async fn page(&self, path: &str) -> String {
        let r = self.get(path).await;
        assert_eq!(r.status(), 200, "{path}");
        r.text().await.unwrap()
    }

    /// Sends the form at `action` with the CSRF token of the page at `page`, as a browser
    /// submitting a form of that page does.
    pub async fn form(
        &self,
        page: &str,
        action: &str,
        fields: &[(&str, &str)],
    ) -> reqwest::Response {
        self.app
            .post_form(&self.client, &self.slug, page, action, fields)
            .await
    }

    /// `POST action` without a CSRF token (a forged or stale form).
    pub async fn post_without_token(&self, action: &str, fields: &[(&str, &str)]) -> u16 {
        self.client
            .post(self.url(action))
            .form(fields)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    /// The room list (`/chat`).
    pub async fn rooms(&self) -> String {
        self.page("/chat").await
    }

    /// Creates a room from the room list's form; `fields` are `name`, `topic`, `private`.
    pub async fn try_create_room(&self, fields: &[(&str, &str)]) -> reqwest::Response {
        self.form("/chat", "/chat/rooms", fields).await
    }

    /// Creates an open room named `name`; returns its id.
    pub async fn create_room(&self, name: &str) -> String {
        self.create_room_with(&[("name", name)]).await
    }

    /// Creates a room with the given fields; it must succeed. Returns its id.
    pub async fn create_room_with(&self, fields: &[(&str, &str)]) -> String {
        let r = self.try_create_room(fields).await;
        assert_eq!(r.status(), 303, "creating room {fields:?}");
        room_of(&r)
    }

    /// A room's page.
    pub async fn read(&self, room: &str) -> String {
        self.page(&format!("/chat/{room}")).await
    }

    /// Sends a message into `room` through the room page's form (extra fields such as
    /// `reply_to` after the body).
    pub async fn try_post_with(&self, room: &str, fields: &[(&str, &str)]) -> reqwest::Response {
        let page = format!("/chat/{room}");
        self.form(&page, &format!("{page}/messages"), fields).await
    }

    pub async fn try_post(&self, room: &str, body: &str) -> reqwest::Response {
        self.try_post_with(room, &[("body", body)]).await
    }

    /// Sends a message; it must succeed. Returns the message id.
    pub async fn post(&self, room: &str, body: &str) -> String {
        let r = self.try_post(room, body).await;
        assert_eq!(r.status(), 303, "posting {body:?}");
        message_of(&r)
    }

    /// A message action (`edit`, `delete`, `react`) through the room page's form.
    pub async fn act(
        &self,
        room: &str,
        message: &str,
        action: &str,
        fields: &[(&str, &str)],
    ) -> reqwest::Response {
        let page = format!("/chat/{room}");
        self.form(
            &page,
            &format!("{page}/messages/{message}/{action}"),
            fields,
        )
        .await
    }

    /// Changes a room's settings (`name`, `topic`, …) through the room page's form.
    pub async fn room_settings(&self, room: &str, fields: &[(&str, &str)]) -> reqwest::Response {
        let page = format!("/chat/{room}");
        self.form(&page, &format!("{page}/settings"), fields).await
    }

    /// Opens (or starts) the 1:1 conversation with the member whose id is `member`.
    pub async fn try_direct(&self, member: &str) -> reqwest::Response {
        self.form("/chat", &format!("/chat/direct/{member}"), &[])
            .await
    }
}
