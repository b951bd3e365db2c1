//! The start page: chat tile with unread and mention counts, tiles for third-party tools
//! from the IdP's `/id/api/launchables`, and that API's bearer-token checks.

use diesel::prelude::*;
use kollegium_idp::oidc::clients::{self, RedirectUri};

use crate::chat_notify::{page, room, signed_in};
use crate::harness::{TestApp, client};
use crate::oidc_support::{register, tool};

/// The IdP access token of the newest platform session of a practice.
async fn session_access_token(app: &TestApp, slug: &str) -> String {
    use kollegium_platform::schema::sessions;
    let tenant = app.tenant(slug);
    tokio::task::spawn_blocking(move || {
        let mut conn = tenant.conn(&kollegium_platform::PLATFORM_DB).unwrap();
        let id: i64 = sessions::table
            .select(diesel::dsl::max(sessions::id))
            .first::<Option<i64>>(&mut *conn)
            .unwrap()
            .unwrap();
        kollegium_platform::auth::session::access_token(&mut conn, &tenant, id)
            .unwrap()
            .unwrap()
    })
    .await
    .unwrap()
}

fn count(html: &str, what: &str) -> Option<i64> {
    let marker = format!("data-count=\"{what}\">");
    let start = html.find(&marker)? + marker.len();
    html[start..].split('<').next()?.parse().ok()
}

async fn launchables(app: &TestApp, slug: &str, token: Option<&str>) -> reqwest::Response {
    let mut rb = client().get(app.url(slug, "/id/api/launchables"));
    if let Some(t) = token {
        rb = rb.bearer_auth(t);
    }
    rb.send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_page_shows_chat_counts_and_the_practice_tools() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    let mut roster = tool("Dienstplan", true, false);
    roster.launch_url = Some(RedirectUri::parse("https://dienstplan.example/start").unwrap());
    let roster = register(&app, "praxis-a", roster).await;
    let mut clock_in = tool("Zeiterfassung", true, false);
    clock_in.initiate_login_uri = Some(RedirectUri::parse("https://zeit.example/login").unwrap());
    let clock_in = register(&app, "praxis-a", clock_in).await;
    register(&app, "praxis-a", tool("Ohne Startadresse", true, false)).await;
    let mut hostile = tool("<img src=x onerror=alert(1)>\"", true, false);
    hostile.launch_url = Some(RedirectUri::parse("https://evil.example/").unwrap());
    register(&app, "praxis-a", hostile).await;
    let anna = signed_in(&app, "praxis-a", "anna").await;
    let bernd = signed_in(&app, "praxis-a", "bernd").await;

    let html = page(&app, &bernd, "praxis-a", "/").await;
    assert!(html.contains("Guten Tag, bernd Test"));
    assert!(html.contains("Keine ungelesenen Nachrichten"), "{html}");
    for (name, id) in [
        ("Dienstplan", &roster.client_id),
        ("Zeiterfassung", &clock_in.client_id),
    ] {
        let href = app.url("praxis-a", &format!("/id/launch/{id}"));
        assert!(
            html.contains(&format!(
                "href=\"{href}\"><span class=\"tile-title\">{name}</span>"
            )),
            "{html}"
        );
    }
    assert!(
        !html.contains("Ohne Startadresse"),
        "no tile without a launch address"
    );
    // Names are text: escaped, never markup.
    assert!(
        !html.contains("<img src=x") && html.contains("&#60;img src=x onerror=alert(1)&#62;&#34;"),
        "{html}"
    );
    assert!(!html.contains("können gerade nicht angezeigt werden"));
    // The tile's address starts the tool's login at the IdP.
    let href = app.url("praxis-a", &format!("/id/launch/{}", roster.client_id));
    let r = bernd.get(&href).send().await.unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "https://dienstplan.example/start");

    // Unread messages and mentions, summed over rooms.
    let team = room(&app, &anna, "praxis-a", "Team").await;
    let labor = room(&app, &anna, "praxis-a", "Labor").await;
    page(&app, &bernd, "praxis-a", &format!("/chat/{team}")).await;
    page(&app, &bernd, "praxis-a", &format!("/chat/{labor}")).await;
    app.say(&anna, "praxis-a", &team, "Guten Morgen").await;
    app.say(&anna, "praxis-a", &team, "@bernd kannst du übernehmen?")
        .await;
    app.say(&anna, "praxis-a", &labor, "@alle Proben sind da")
        .await;
    let html = page(&app, &bernd, "praxis-a", "/").await;
    assert_eq!(count(&html, "unread"), Some(3), "{html}");
    assert_eq!(count(&html, "mentions"), Some(2), "{html}");
    assert!(html.contains("ungelesene Nachrichten") && html.contains("Erwähnungen"));
    // Anna wrote them: nothing unread for her.
    let html = page(&app, &anna, "praxis-a", "/").await;
    assert!(html.contains("Keine ungelesenen Nachrichten"));
    // Reading one room lowers the counts; reading both clears them.
    page(&app, &bernd, "praxis-a", &format!("/chat/{team}")).await;
    let html = page(&app, &bernd, "praxis-a", "/").await;
    assert_eq!(count(&html, "unread"), Some(1));
    assert_eq!(count(&html, "mentions"), Some(1));
    assert!(html.contains("ungelesene Nachricht ") || html.contains("ungelesene Nachricht<"));
    page(&app, &bernd, "praxis-a", &format!("/chat/{labor}")).await;
    let html = page(&app, &bernd, "praxis-a", "/").await;
    assert_eq!(
        (count(&html, "unread"), count(&html, "mentions")),
        (None, None)
    );
    assert!(html.contains("Keine ungelesenen Nachrichten"));

    // A disabled tool loses its tile.
    let (id, now) = (roster.client_id.clone(), app.clock.now());
    app.idp_db("praxis-a", move |c| {
        clients::set_enabled(c, &id, false, now).unwrap()
    })
    .await;
    let html = page(&app, &bernd, "praxis-a", "/").await;
    assert!(!html.contains("Dienstplan") && html.contains("Zeiterfassung"));

    // The IdP refuses the platform's call (the access token was revoked there): the page
    // still renders, without tool tiles, with a hint.
    app.idp_db("praxis-a", move |c| {
        use kollegium_idp::schema::access_tokens as at;
        diesel::update(at::table)
            .set(at::revoked_at.eq(now))
            .execute(c)
            .unwrap()
    })
    .await;
    let r = bernd.get(app.url("praxis-a", "/")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert!(html.contains("Guten Tag, bernd Test"));
    assert!(!html.contains("Zeiterfassung") && !html.contains("tile-tool"));
    assert!(html.contains("können gerade nicht angezeigt werden"));
    assert!(html.contains("Keine ungelesenen Nachrichten"));

    // One start page: the IdP's own address leads to the workspace's.
    for path in ["/id/", "/id"] {
        let r = bernd.get(app.url("praxis-a", path)).send().await.unwrap();
        assert_eq!(r.status(), 303, "{path}");
        assert_eq!(r.headers()["location"], "/", "{path}");
    }
    // The start page names only apps that exist.
    let html = page(&app, &bernd, "praxis-a", "/").await;
    assert!(
        html.contains(
            "Hier finden Sie Chat, Aufgaben und Neuigkeiten sowie die verbundenen Anwendungen"
        ),
        "{html}"
    );
    for promise in ["Dateien", "Tresor"] {
        assert!(!html.contains(promise), "{promise}: {html}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_launchables_api_takes_only_this_practices_workspace_tokens() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    app.create_practice("praxis-b").await;
    let mut roster = tool("Dienstplan", true, false);
    roster.launch_url = Some(RedirectUri::parse("https://dienstplan.example/start").unwrap());
    let roster = register(&app, "praxis-a", roster).await;
    let _anna = signed_in(&app, "praxis-a", "anna").await;
    let a_token = session_access_token(&app, "praxis-a").await;
    let _olga = signed_in(&app, "praxis-b", "olga").await;
    let b_token = session_access_token(&app, "praxis-b").await;

    let r = launchables(&app, "praxis-a", Some(&a_token)).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let body: serde_json::Value = r.json().await.unwrap();
    let list = body["launchables"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{body}");
    assert_eq!(list[0]["name"], "Dienstplan");
    assert_eq!(
        list[0]["href"],
        app.url("praxis-a", &format!("/id/launch/{}", roster.client_id))
    );
    // B's IdP lists B's tools only (none).
    let r = launchables(&app, "praxis-b", Some(&b_token)).await;
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["launchables"].as_array().unwrap().len(), 0);

    // No token: 401 with a bare Bearer challenge (RFC 6750 §3.1).
    let r = launchables(&app, "praxis-a", None).await;
    assert_eq!(r.status(), 401);
    let www = r.headers()["www-authenticate"].to_str().unwrap().to_owned();
    assert!(
        www.starts_with("Bearer ") && !www.contains("error="),
        "{www}"
    );
    // Garbage, B's token at A, A's token at B: 401 invalid_token.
    for (slug, token) in [
        ("praxis-a", "garbage"),
        ("praxis-a", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."),
        ("praxis-a", b_token.as_str()),
        ("praxis-b", a_token.as_str()),
    ] {
        let r = launchables(&app, slug, Some(token)).await;
        assert_eq!(r.status(), 401, "{slug} {token}");
        let www = r.headers()["www-authenticate"].to_str().unwrap().to_owned();
        assert!(
            www.starts_with("Bearer ") && www.contains("error=\"invalid_token\""),
            "{www}"
        );
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["error"], "invalid_token");
        assert!(!body.to_string().contains("Dienstplan"));
    }
    // A third-party tool's own token may not list the other tools.
    let secret = roster.secret.clone().unwrap();
    let (status, body, _) = crate::oidc_support::post_form(
        &app,
        "praxis-a",
        "/id/token",
        &[("grant_type", "client_credentials")],
        Some((&roster.client_id, &secret)),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let tool_token = body["access_token"].as_str().unwrap().to_owned();
    let r = launchables(&app, "praxis-a", Some(&tool_token)).await;
    assert_eq!(r.status(), 403);
    let www = r.headers()["www-authenticate"].to_str().unwrap().to_owned();
    assert!(www.contains("error=\"insufficient_scope\""), "{www}");
    // A disabled user's token is refused too.
    let anna = app
        .idp_db("praxis-a", |c| {
            kollegium_idp::users::by_login(c, "anna")
                .unwrap()
                .unwrap()
                .id
        })
        .await;
    app.idp_db("praxis-a", move |c| {
        kollegium_idp::users::set_status(c, anna, kollegium_idp::users::UserStatus::Disabled, 0)
            .unwrap()
    })
    .await;
    let r = launchables(&app, "praxis-a", Some(&a_token)).await;
    assert_eq!(r.status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_rooms_never_opened_count_unread_messages_and_mentions() {
    use kollegium_tenants::Clock;
    // Time is counted in seconds: the test moves it on between "before" and "after".
    let clock = std::sync::Arc::new(kollegium_tenants::clock::ManualClock::new(
        kollegium_tenants::SystemClock.now(),
    ));
    let app = TestApp::spawn_with_clock(clock.clone(), |_| {}).await;
    app.create_practice("praxis-a").await;
    let anna = signed_in(&app, "praxis-a", "anna").await;
    // Bernd has signed in before, but never opens the new room.
    let bernd = signed_in(&app, "praxis-a", "bernd").await;
    clock.advance(1);
    let team = room(&app, &anna, "praxis-a", "Team").await;
    app.say(&anna, "praxis-a", &team, "Guten Morgen").await;
    app.say(&anna, "praxis-a", &team, "@bernd kannst du übernehmen?")
        .await;
    let html = page(&app, &bernd, "praxis-a", "/").await;
    assert_eq!(count(&html, "unread"), Some(2), "{html}");
    assert_eq!(count(&html, "mentions"), Some(1), "{html}");
    let list = page(&app, &bernd, "praxis-a", "/chat").await;
    let entry = list
        .split(&format!("<li data-room=\"{team}\">"))
        .nth(1)
        .unwrap()
        .split("</li>")
        .next()
        .unwrap();
    assert!(
        entry.contains("title=\"Erwähnungen\">@<span class=\"count\">1</span>"),
        "{entry}"
    );
    assert!(
        entry.contains("title=\"Ungelesen\"><span class=\"count\">2</span>"),
        "{entry}"
    );
    let rooms = |c: &reqwest::Client| {
        let (c, url) = (c.clone(), app.url("praxis-a", "/api/chat/rooms"));
        async move {
            let v: serde_json::Value = c.get(url).send().await.unwrap().json().await.unwrap();
            v["rooms"]
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["title"] == "Team")
                .map(|r| {
                    (
                        r["unread"].as_i64().unwrap(),
                        r["mentions"].as_i64().unwrap(),
                    )
                })
                .unwrap()
        }
    };
    assert_eq!(rooms(&bernd).await, (2, 1));
    // Looking at the room's details through the API is not reading it.
    let r = bernd
        .get(app.url("praxis-a", &format!("/api/chat/rooms/{team}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(rooms(&bernd).await, (2, 1));
    // Someone who first signs in after the messages has nothing unread there.
    clock.advance(1);
    let carl = signed_in(&app, "praxis-a", "carl").await;
    assert_eq!(rooms(&carl).await, (0, 0));
    let html = page(&app, &carl, "praxis-a", "/").await;
    assert!(html.contains("Keine ungelesenen Nachrichten"), "{html}");
    // Opening the room reads it.
    page(&app, &bernd, "praxis-a", &format!("/chat/{team}")).await;
    assert_eq!(rooms(&bernd).await, (0, 0));
    assert!(
        page(&app, &bernd, "praxis-a", "/")
            .await
            .contains("Keine ungelesenen Nachrichten")
    );
}

/// The `<nav class="mainnav">` of a page: (label, href, active) per entry.
fn nav_entries(html: &str) -> Vec<(String, String, bool)> {
    let Some(start) = html.find("<nav class=\"mainnav\"") else {
        return Vec::new();
    };
    let nav = &html[start..start + html[start..].find("</nav>").unwrap()];
    nav.split("<li><a href=\"")
        .skip(1)
        .map(|item| {
            let href = item.split('"').next().unwrap().to_owned();
            let active = item
                .split('>')
                .next()
                .unwrap()
                .contains("aria-current=\"page\"");
            let label = item
                .split_once('>')
                .unwrap()
                .1
                .split('<')
                .next()
                .unwrap()
                .to_owned();
            (label, href, active)
        })
        .collect()
}

/// The links of the user menu: (label, href, active) per entry.
fn user_menu(html: &str) -> Vec<(String, String, bool)> {
    let Some(start) = html.find("<div class=\"usermenu-panel\">") else {
        return Vec::new();
    };
    let panel = &html[start..start + html[start..].find("</div>").unwrap()];
    panel
        .split("<a href=\"")
        .skip(1)
        .map(|item| {
            let href = item.split('"').next().unwrap().to_owned();
            let head = item.split('>').next().unwrap();
            let label = item.split_once('>').unwrap().1.split('<').next().unwrap();
            (
                label.to_owned(),
                href,
                head.contains("aria-current=\"page\""),
            )
        })
        .collect()
}

/// The shell's search field: a GET form to `/search` with the field `q`, labelled "Suche".
fn has_search_field(html: &str) -> bool {
    html.contains(
        "<form class=\"topsearch\" role=\"search\" aria-label=\"Suche (Kopfzeile)\" method=\"get\" action=\"/search\">",
    )
        && html.contains("<label class=\"visually-hidden\" for=\"topsearch-q\">Suche</label>")
        && html.contains("<input id=\"topsearch-q\" type=\"search\" name=\"q\"")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_of_the_practice_has_the_one_shell_with_its_own_entry_active() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    let admin = app.signed_in("praxis-a", "anna", true).await;
    let team = room(&app, &admin, "praxis-a", "Team").await;
    let workspace: Vec<(&str, &str)> = kollegium_platform::app::navigation()
        .iter()
        .map(|(_, e)| (e.label, e.href))
        .collect();
    assert_eq!(workspace[..2], [("Start", "/"), ("Chat", "/chat")]);
    // Admins: the app list, then the administration as one entry.
    let mut expected = workspace.clone();
    expected.push(("Praxisverwaltung", "/id/admin/users"));
    let room_page = format!("/chat/{team}");
    // (page, its active navigation entry, whether "Mein Konto" is the active one)
    let pages = [
        ("/", Some("/"), false),
        ("/chat", Some("/chat"), false),
        (room_page.as_str(), Some("/chat"), false),
        ("/chat/search?q=Team", Some("/chat"), false),
        ("/chat/settings", Some("/chat"), false),
        ("/chat/admin", Some("/chat"), false),
        ("/id/account", None, true),
        ("/id/account/totp", None, true),
        ("/id/account/apps", None, true),
        ("/id/admin/users", Some("/id/admin/users"), false),
        ("/id/admin/users/new", Some("/id/admin/users"), false),
        ("/id/admin/devices", Some("/id/admin/users"), false),
        ("/id/admin/clients", Some("/id/admin/users"), false),
        ("/id/admin/events", Some("/id/admin/users"), false),
    ];
    for (path, active, account) in pages {
        let html = page(&app, &admin, "praxis-a", path).await;
        let nav = nav_entries(&html);
        let shown: Vec<(&str, &str)> = nav
            .iter()
            .map(|(l, h, _)| (l.as_str(), h.as_str()))
            .collect();
        assert_eq!(shown, expected, "{path}: the one navigation");
        let marked: Vec<&str> = nav
            .iter()
            .filter(|(_, _, a)| *a)
            .map(|(_, h, _)| h.as_str())
            .collect();
        assert_eq!(
            marked,
            active.into_iter().collect::<Vec<_>>(),
            "{path}: exactly its own entry is active"
        );
        assert_eq!(
            user_menu(&html),
            [("Mein Konto".to_owned(), "/id/account".to_owned(), account)],
            "{path}: \"Mein Konto\" lives in the user menu"
        );
        assert!(has_search_field(&html), "{path}: the search field");
        assert!(
            html.contains("<a class=\"brand\" href=\"/\">"),
            "{path}: the brand leads to the one start page"
        );
        // No second start page, no second menu.
        assert!(!html.contains("href=\"/id/\""), "{path}");
        assert!(!html.contains(">Anmeldung<"), "{path}");
        assert_eq!(html.matches("class=\"mainnav\"").count(), 1, "{path}");
        // The sections of the administration are one entry's sub-navigation.
        if path.starts_with("/id/admin") {
            assert!(
                html.contains("<nav class=\"subnav\" aria-label=\"Praxisverwaltung\">"),
                "{path}"
            );
            let sub = &html[html.find("<nav class=\"subnav\"").unwrap()..];
            for href in [
                "/id/admin/users",
                "/id/admin/devices",
                "/id/admin/clients",
                "/id/admin/events",
            ] {
                assert!(sub.contains(&format!("href=\"{href}\"")), "{path}: {href}");
            }
        }
    }
    // Signing out from a workspace page ends the workspace session; from an IdP page, the
    // IdP's (as before).
    let html = page(&app, &admin, "praxis-a", "/chat").await;
    assert!(html.contains("<form method=\"post\" action=\"/auth/logout\">"));
    let html = page(&app, &admin, "praxis-a", "/id/account").await;
    assert!(html.contains("<form method=\"post\" action=\"/id/logout\">"));
    // The user menu says who is signed in, with the role's label, on both kinds of page.
    let who =
        "<p class=\"usermenu-who\"><strong>anna Test</strong><span class=\"muted\">MFA</span></p>";
    assert!(html.contains(who), "{html}");
    assert!(page(&app, &admin, "praxis-a", "/").await.contains(who));

    // Everyone else: the same shell without the administration, which stays closed.
    let bernd = app.signed_in("praxis-a", "bernd", false).await;
    for path in ["/", "/chat", "/id/account"] {
        let html = page(&app, &bernd, "praxis-a", path).await;
        let shown: Vec<(String, String)> = nav_entries(&html)
            .into_iter()
            .map(|(l, h, _)| (l, h))
            .collect();
        let want: Vec<(String, String)> = workspace
            .iter()
            .map(|(l, h)| ((*l).to_owned(), (*h).to_owned()))
            .collect();
        assert_eq!(shown, want, "{path}");
        assert!(!html.contains("/id/admin"), "{path}");
        assert!(has_search_field(&html), "{path}");
    }
    let r = bernd
        .get(app.url("praxis-a", "/id/admin/users"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // The app's script, registered by the app list, is served content-hashed and cached,
    // after the live channel's script (the page's one socket) and the apps' shell scripts
    // (news: the navigation's unread badge), which every page has.
    let html = page(&app, &admin, "praxis-a", "/chat").await;
    let srcs: Vec<&str> = html
        .split("<script src=\"")
        .skip(1)
        .filter_map(|s| s.split('"').next())
        .collect();
    assert_eq!(srcs.len(), 3, "{srcs:?}");
    for (src, name, says) in [
        (srcs[0], "live", "WebSocket"),
        (srcs[1], "news", "/api/news/unread"),
        (srcs[2], "chat", "K.live.on"),
    ] {
        assert!(
            src.starts_with(&format!("/static/{name}.")) && src.ends_with(".js") && src.len() > 20,
            "{src}"
        );
        let r = admin.get(app.url("praxis-a", src)).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(
            r.headers()["cache-control"],
            "public, max-age=31536000, immutable"
        );
        assert!(r.text().await.unwrap().contains(says), "{src}");
    }
    let start = page(&app, &admin, "praxis-a", "/").await;
    assert!(
        start.contains(&format!("<script src=\"{}\"", srcs[0])),
        "the start page has the live channel"
    );
    // The app's gauge, registered through the app list, is on /metrics.
    let metrics = reqwest::get(app.operator_url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("# TYPE kollegium_chat_post_buckets gauge\nkollegium_chat_post_buckets "),
        "{metrics}"
    );
}
