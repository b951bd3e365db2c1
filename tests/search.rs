//! The one search of the workspace, `/search` ("Suche"): hits of every kind a member may
//! read, labelled by kind, linked and highlighted, times in the practice's zone; refused
//! and hostile input, sign-in, practice isolation (also with a forged `Host`), and the
//! rebuild of an index an earlier version left (old place, old schema).

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{TestApp, client, client_with_jar, raw_client};

fn q(s: &str) -> String {
    serde_urlencoded::to_string([("q", s)]).unwrap()
}

async fn new_room(
    app: &TestApp,
    c: &reqwest::Client,
    slug: &str,
    name: &str,
    private: bool,
) -> String {
    let mut fields = vec![("name", name)];
    if private {
        fields.push(("private", "on"));
    }
    let r = app
        .post_form(c, slug, "/chat", "/chat/rooms", &fields)
        .await;
    assert_eq!(r.status(), 303);
    r.headers()["location"]
        .to_str()
        .unwrap()
        .trim_start_matches("/chat/")
        .to_owned()
}

async fn page(app: &TestApp, c: &reqwest::Client, slug: &str, path: &str) -> (u16, String) {
    let r = c.get(app.url(slug, path)).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// Polls `/search?q=…` until the page satisfies `done` (the index follows changes about a
/// second later); fails after 15 s.
async fn until(
    app: &TestApp,
    c: &reqwest::Client,
    slug: &str,
    query: &str,
    done: impl Fn(&str) -> bool,
) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, html) = page(app, c, slug, &format!("/search?{}", q(query))).await;
        assert_eq!(status, 200, "search {query:?}");
        if done(&html) {
            return html;
        }
        assert!(
            Instant::now() < deadline,
            "search for {query:?} never got there: {html}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The chat API's view of a message (its time, to compare with the page).
async fn created_at(app: &TestApp, c: &reqwest::Client, slug: &str, query: &str) -> i64 {
    let r = c
        .get(app.url(slug, &format!("/api/chat/search?{}", q(query))))
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    v["results"][0]["created_at"].as_i64().unwrap()
}

fn link(room: &str, id: &str) -> String {
    format!("href=\"/chat/{room}#m{id}\"")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_search_page_lists_readable_hits_of_every_kind_labelled_linked_and_in_local_time() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    let anna = app.signed_in("praxis-a", "anna", false).await;
    let bernd = app.signed_in("praxis-a", "bernd", false).await;
    let labor = new_room(&app, &anna, "praxis-a", "Labor", true).await;
    let team = new_room(&app, &anna, "praxis-a", "Team", false).await;
    let secret = app
        .say(&anna, "praxis-a", &labor, "Geheimbefund Okapi")
        .await;
    let open = app
        .say(
            &anna,
            "praxis-a",
            &team,
            "Das Okapi im Wartezimmer <b>fett</b>",
        )
        .await;

    let html = until(&app, &anna, "praxis-a", "okapi", |h| {
        h.contains("2 Treffer")
    })
    .await;
    assert!(html.contains(&link(&labor, &secret)), "{html}");
    assert!(html.contains(&link(&team, &open)), "{html}");
    // Labelled by kind, titled by room, highlighted and escaped.
    assert!(html.contains("<span class=\"badge\" title=\"Bereich\">Chat</span>"));
    assert!(html.contains("# Labor") && html.contains("# Team"));
    assert!(html.contains("Das <mark>Okapi</mark> im Wartezimmer &lt;b&gt;fett&lt;/b&gt;"));
    assert!(!html.contains("<b>fett"));
    // The time in the practice's zone and German format, as chat shows it.
    let at = created_at(&app, &anna, "praxis-a", "wartezimmer").await;
    let local = app.tenant("praxis-a").local_time(at);
    assert!(html.contains(&local), "{local} in {html}");
    // The page has the form (GET, q and the kind filter) and the workspace's layout.
    assert!(html.contains("action=\"/search\"") && html.contains("name=\"q\""));
    assert!(html.contains("name=\"kind\"") && html.contains("value=\"chat-message\""));
    assert!(html.contains("<title>Suche"));

    // Bernd is not in the private room: only the open room's message.
    let (status, html) = page(&app, &bernd, "praxis-a", &format!("/search?{}", q("okapi"))).await;
    assert_eq!(status, 200);
    assert!(html.contains("1 Treffer") && html.contains(&link(&team, &open)));
    assert!(!html.contains("Geheimbefund") && !html.contains(&format!("/chat/{labor}#")));

    // The kind filter: chat only gives the same; `/chat/search` is that filtered view.
    let (status, html) = page(
        &app,
        &anna,
        "praxis-a",
        &format!("/search?{}&kind=chat-message", q("okapi")),
    )
    .await;
    assert_eq!(status, 200);
    assert!(html.contains("2 Treffer"));
    assert!(html.contains("value=\"chat-message\" selected"));
    let (status, html) = page(
        &app,
        &anna,
        "praxis-a",
        &format!("/chat/search?{}", q("okapi")),
    )
    .await;
    assert_eq!(status, 200);
    assert!(html.contains("2 Treffer") && html.contains("action=\"/chat/search\""));
    assert!(html.contains("href=\"/search?q=okapi\""), "{html}");
    // Deleted: gone from the page at once (the app re-checks every hit).
    let r = app
        .post_form(
            &anna,
            "praxis-a",
            &format!("/chat/{team}"),
            &format!("/chat/{team}/messages/{open}/delete"),
            &[],
        )
        .await;
    assert_eq!(r.status(), 303);
    let (_, html) = page(&app, &bernd, "praxis-a", &format!("/search?{}", q("okapi"))).await;
    assert!(
        html.contains("Keine Treffer") && !html.contains("Wartezimmer"),
        "{html}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_search_page_refuses_bad_input_clearly_and_takes_any_words() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    let anna = app.signed_in("praxis-a", "anna", false).await;
    let team = new_room(&app, &anna, "praxis-a", "Team", false).await;
    let id = app.say(&anna, "praxis-a", &team, "Zebra am Empfang").await;
    until(&app, &anna, "praxis-a", "zebra", |h| {
        h.contains("1 Treffer")
    })
    .await;

    // Empty: the form, no results, no error.
    for path in ["/search", "/search?q=", "/search?q=+++", "/search?kind="] {
        let (status, html) = page(&app, &anna, "praxis-a", path).await;
        assert_eq!(status, 200, "{path}");
        assert!(
            html.contains("<h1>Suche</h1>") && !html.contains("Treffer"),
            "{path}"
        );
        assert!(!html.contains("role=\"alert\""), "{path}");
    }
    // Too long: a clear 400, the query not echoed in full.
    let long = "zebra ".repeat(40);
    let (status, html) = page(&app, &anna, "praxis-a", &format!("/search?{}", q(&long))).await;
    assert_eq!(status, 400);
    assert!(html.contains("Der Suchbegriff ist zu lang (höchstens 200 Zeichen)."));
    assert!(!html.contains(long.trim()));
    let (status, _) = page(
        &app,
        &anna,
        "praxis-a",
        &format!("/search?{}", q(&"z".repeat(200))),
    )
    .await;
    assert_eq!(status, 200);
    // An unknown kind: 400 with a German message, nothing searched.
    for kind in ["bogus", "chat_message", "CHAT-MESSAGE", "card%00", "%FF"] {
        let (status, html) = page(
            &app,
            &anna,
            "praxis-a",
            &format!("/search?q=zebra&kind={kind}"),
        )
        .await;
        assert_eq!(status, 400, "{kind}");
        assert!(
            html.contains("Diesen Bereich gibt es in der Suche nicht."),
            "{kind}"
        );
        assert!(!html.contains("<mark>"), "{kind}");
    }
    // A query string that is not one query: 400, a clear message, never a 500.
    let (status, html) = page(&app, &anna, "praxis-a", "/search?q=zebra&q=empfang").await;
    assert_eq!(status, 400);
    assert!(html.contains("Die Suchanfrage ist ungültig."));
    // Undecodable bytes are just characters.
    let (status, _) = page(&app, &anna, "praxis-a", "/search?q=%FF%FEzebra").await;
    assert_eq!(status, 200);
    // Query syntax is just words: no errors, sensible results.
    for hostile in [
        "\"zebra",
        "zebra AND (",
        "body:zebra",
        "kind:chat-message OR key:room:1",
        "uid:chat-message:1",
        "[1 TO 9",
        "*",
        "zebra~2^3",
        "-zebra +",
        "\\",
        "))((",
        "'; DROP TABLE messages; --",
        "%",
        "ä ö ü ß ẞ 😀",
    ] {
        let (status, html) =
            page(&app, &anna, "praxis-a", &format!("/search?{}", q(hostile))).await;
        assert_eq!(status, 200, "{hostile}");
        assert!(!html.contains("Fehler"), "{hostile}");
    }
    let (_, html) = page(
        &app,
        &anna,
        "praxis-a",
        &format!("/search?{}", q("\"Zebra\" AND (")),
    )
    .await;
    assert!(html.contains(&link(&team, &id)), "{html}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_search_page_needs_a_sign_in_and_never_crosses_practices() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    app.create_practice("praxis-b").await;
    let (anna, jar) = client_with_jar();
    app.create_user("praxis-a", "anna", crate::harness::CHAT_PW, false)
        .await;
    app.sign_in(&anna, "praxis-a", "anna", crate::harness::CHAT_PW)
        .await;
    let olga = app.signed_in("praxis-b", "olga", false).await;
    let a_room = new_room(&app, &anna, "praxis-a", "Team", false).await;
    let b_room = new_room(&app, &olga, "praxis-b", "Team", false).await;
    let a_msg = app
        .say(&anna, "praxis-a", &a_room, "Tapir Befund aus A")
        .await;
    let b_msg = app
        .say(&olga, "praxis-b", &b_room, "Tapir Notiz aus B")
        .await;
    until(&app, &anna, "praxis-a", "tapir", |h| {
        h.contains("1 Treffer")
    })
    .await;
    let html = until(&app, &olga, "praxis-b", "tapir", |h| {
        h.contains("1 Treffer")
    })
    .await;
    // Each practice sees its own hit only (ids may coincide; the text tells them apart).
    assert!(html.contains("Notiz aus B") && !html.contains("Befund aus A"));
    assert!(html.contains(&link(&b_room, &b_msg)));
    let (_, html) = page(&app, &anna, "praxis-a", &format!("/search?{}", q("tapir"))).await;
    assert!(html.contains("Befund aus A") && !html.contains("Notiz aus B"));
    assert!(html.contains(&link(&a_room, &a_msg)));

    // Unauthenticated: to the sign-in, and back to the search afterwards.
    let r = client()
        .get(app.url("praxis-a", "/search?q=tapir"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let to = r.headers()["location"].to_str().unwrap().to_owned();
    assert!(to.starts_with("/auth/login?next="), "{to}");
    assert!(to.contains("search"), "{to}");
    assert!(!r.text().await.unwrap().contains("Tapir"));

    // Anna's browser at B: not signed in there.
    let r = anna
        .get(app.url("praxis-b", "/search?q=tapir"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    // Anna's session cookie sent to B on purpose, and with a forged Host at A's address:
    // B's database knows no such session, nothing of either practice is shown.
    let url = reqwest::Url::parse(&app.url("praxis-a", "/")).unwrap();
    let cookies = reqwest::cookie::CookieStore::cookies(&*jar, &url)
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    let b_host = reqwest::Url::parse(&app.url("praxis-b", "/")).unwrap();
    let b_host = format!("{}:{}", b_host.host_str().unwrap(), b_host.port().unwrap());
    for (target, host) in [
        (app.url("praxis-b", "/search?q=tapir"), None),
        (
            app.url("praxis-a", "/search?q=tapir"),
            Some(b_host.as_str()),
        ),
        (
            app.url("praxis-a", "/search?q=tapir&kind=chat-message&room=1"),
            Some(b_host.as_str()),
        ),
    ] {
        let mut req = raw_client().get(&target).header("cookie", &cookies);
        if let Some(h) = host {
            req = req.header("host", h);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 303, "{target} {host:?}");
        let body = r.text().await.unwrap();
        assert!(!body.contains("Tapir"), "{target} {host:?}");
    }
    // The same cookie at A still works (the forgery above was refused, not A's session).
    let r = raw_client()
        .get(app.url("praxis-a", "/search?q=tapir"))
        .header("cookie", &cookies)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert!(html.contains("Befund aus A") && !html.contains("Notiz aus B"));
    // Extra parameters name nothing: no room or practice can be chosen by the query.
    let (status, html) = page(
        &app,
        &anna,
        "praxis-a",
        "/search?q=tapir&room=1&practice=praxis-b&key=room:1",
    )
    .await;
    assert_eq!(status, 200);
    assert!(html.contains("Befund aus A") && !html.contains("Notiz aus B"));
}

/// Writes an index as the version before the one search did: chat's own schema, with one
/// message the database does not have.
fn legacy_index(dir: &std::path::Path, room: u64) {
    use kollegium_platform::search::index::{TOKENIZER, analyzer};
    use tantivy::doc;
    use tantivy::schema::{
        FAST, INDEXED, IndexRecordOption, Schema, TextFieldIndexing, TextOptions,
    };
    let mut b = Schema::builder();
    let id = b.add_u64_field("id", INDEXED | FAST);
    let room_f = b.add_u64_field("room", INDEXED | FAST);
    let author = b.add_u64_field("author", INDEXED | FAST);
    let body = b.add_text_field(
        "body",
        TextOptions::default().set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer(TOKENIZER)
                .set_index_option(IndexRecordOption::WithFreqsAndPositions),
        ),
    );
    let created = b.add_i64_field("created_at", INDEXED | FAST);
    std::fs::create_dir_all(dir).unwrap();
    let index = tantivy::Index::create_in_dir(dir, b.build()).unwrap();
    index.tokenizers().register(TOKENIZER, analyzer());
    let mut w: tantivy::IndexWriter = index.writer(15_000_000).unwrap();
    w.add_document(doc!(
        id => 9_999u64,
        room_f => room,
        author => 1u64,
        body => "Phantom Nashorn im alten Index",
        created => 1_800_000_000i64,
    ))
    .unwrap();
    w.commit().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_index_an_earlier_version_left_is_rebuilt_from_the_database() {
    let mut app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    let anna = app.signed_in("praxis-a", "anna", false).await;
    let room = new_room(&app, &anna, "praxis-a", "Team", false).await;
    let first = app
        .say(&anna, "praxis-a", &room, "Nashorn Befund eins")
        .await;
    until(&app, &anna, "praxis-a", "nashorn", |h| {
        h.contains("1 Treffer")
    })
    .await;
    let index = app.data_dir().join("tenants/praxis-a/index");
    let room_id: u64 = room.parse().unwrap();

    // The old place: chat's own index in `index/chat/`, and none in `index/search/`.
    app.restart_after(|_| {
        std::fs::remove_dir_all(index.join("search")).unwrap();
        legacy_index(&index.join("chat"), room_id);
    })
    .await;
    let html = until(&app, &anna, "praxis-a", "nashorn", |h| {
        h.contains("1 Treffer")
    })
    .await;
    assert!(html.contains(&link(&room, &first)), "{html}");
    assert!(!html.contains("Phantom"));
    assert!(index.join("search/meta.json").exists());
    assert!(!index.join("chat").exists(), "the old place is cleared");

    // The old schema in the new place.
    let second = app
        .say(&anna, "praxis-a", &room, "Nashorn Befund zwei")
        .await;
    until(&app, &anna, "praxis-a", "nashorn", |h| {
        h.contains("2 Treffer")
    })
    .await;
    app.restart_after(|_| {
        std::fs::remove_dir_all(index.join("search")).unwrap();
        legacy_index(&index.join("search"), room_id);
    })
    .await;
    let html = until(&app, &anna, "praxis-a", "nashorn", |h| {
        h.contains("2 Treffer")
    })
    .await;
    assert!(html.contains(&link(&room, &first)) && html.contains(&link(&room, &second)));
    assert!(!html.contains("Phantom"));
    let (_, html) = page(
        &app,
        &anna,
        "praxis-a",
        &format!("/search?{}", q("phantom")),
    )
    .await;
    assert!(html.contains("Keine Treffer"));
    let meta = std::fs::read_to_string(index.join("search/meta.json")).unwrap();
    assert!(
        meta.contains("\"kind\"") && meta.contains("\"key\""),
        "{meta}"
    );
}
