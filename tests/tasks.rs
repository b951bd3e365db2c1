//! Tasks end to end: boards, sharing, cards and moves over the pages and the JSON API, as
//! members, strangers and another practice see them.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::apps::chat::Member;
use crate::apps::chat_api::{Person, person};
use crate::harness::TestApp;

/// Creates a board from the "Neues Board" form; `share` are extra form fields
/// (`practice=edit`, `member:<id>=view`). Returns its id.
pub async fn new_board(m: &Member<'_>, title: &str, share: &[(&str, &str)]) -> i64 {
    let mut fields = vec![("title", title), ("description", "")];
    fields.extend_from_slice(share);
    let r = m.form("/tasks/new", "/tasks/boards", &fields).await;
    assert_eq!(r.status(), 303, "creating board {title:?}");
    let loc = r.headers()["location"].to_str().unwrap().to_owned();
    loc.trim_start_matches("/tasks/boards/")
        .split('?')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

/// The board as the API shows it to `p`.
pub async fn board_json(app: &TestApp, p: &Person, board: i64) -> Value {
    let (status, v) = p
        .api(
            app,
            Method::GET,
            &format!("/api/tasks/boards/{board}"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{v}");
    v
}

/// Column ids of a board, in order.
pub async fn column_ids(app: &TestApp, p: &Person, board: i64) -> Vec<i64> {
    board_json(app, p, board).await["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_i64().unwrap())
        .collect()
}

/// Creates a card over the API; returns its id.
pub async fn api_card(app: &TestApp, p: &Person, board: i64, column: i64, title: &str) -> i64 {
    let (status, v) = p
        .api(
            app,
            Method::POST,
            &format!("/api/tasks/boards/{board}/cards"),
            Some(json!({"title": title, "column": column})),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    v["id"].as_i64().unwrap()
}

/// A member's id as the chat's member list names it.
pub async fn member_id(app: &TestApp, p: &Person, username: &str) -> i64 {
    let (_, v) = p.api(app, Method::GET, "/api/chat/members", None).await;
    v["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["username"] == username)
        .unwrap_or_else(|| panic!("{username} in {v}"))["id"]
        .as_i64()
        .unwrap()
}

#[tokio::test]
async fn a_board_exists_only_for_those_it_is_shared_with() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    app.create_practice("praxis-b").await;
    let anna = app.member("praxis-a", "anna", false).await;
    let anna_api = person(&app, "praxis-a", "anna2", false).await;
    let bernd = app.member("praxis-a", "bernd", false).await;
    let bernd_api = person(&app, "praxis-a", "bernd2", false).await;
    let other = app.member("praxis-b", "olaf", false).await;
    let other_api = person(&app, "praxis-b", "olaf2", false).await;

    // Shared with anna2 only (edit); bernd has no row.
    let anna2 = member_id(&app, &anna_api, "anna2").await;
    let share = format!("member:{anna2}");
    let board = new_board(&anna, "Labor", &[(&share, "edit")]).await;
    let page = format!("/tasks/boards/{board}");
    assert!(anna.page(&page).await.contains("Labor"));
    let cols = column_ids(&app, &anna_api, board).await;
    assert_eq!(cols.len(), 3);
    let card = api_card(&app, &anna_api, board, cols[0], "Blutproben").await;
    let card_page = format!("/tasks/cards/{card}");
    assert!(anna.page(&card_page).await.contains("Blutproben"));
    assert!(anna.page("/tasks").await.contains("Labor"));

    // Not shared: the same 404 as an unknown id, on pages and API; not in the list.
    for who in [&bernd, &other] {
        assert_eq!(who.status(&page).await, 404, "board page");
        assert_eq!(who.status(&card_page).await, 404, "card page");
        assert_eq!(who.status(&format!("{page}/settings")).await, 404);
        assert_eq!(who.status("/tasks/boards/999999").await, 404);
        assert_eq!(who.status("/tasks/cards/999999").await, 404);
        assert!(!who.page("/tasks").await.contains("Labor"));
    }
    for who in [&bernd_api, &other_api] {
        for path in [
            format!("/api/tasks/boards/{board}"),
            format!("/api/tasks/cards/{card}"),
        ] {
            let (status, v) = who.api(&app, Method::GET, &path, None).await;
            assert_eq!((status, v["error"].as_str()), (404, Some("not_found")));
        }
        let (status, _) = who
            .api(
                &app,
                Method::POST,
                &format!("/api/tasks/cards/{card}/move"),
                Some(json!({"column": cols[1], "position": 0})),
            )
            .await;
        assert_eq!(status, 404);
        let (status, _) = who
            .api(
                &app,
                Method::POST,
                &format!("/api/tasks/boards/{board}/cards"),
                Some(json!({"title": "Eingeschleust"})),
            )
            .await;
        assert_eq!(status, 404);
    }
    // Bernd's forms against the board (with his own valid token) change nothing.
    let r = bernd
        .form(
            "/tasks/new",
            &format!("/tasks/cards/{card}/edit"),
            &[("title", "Übernommen"), ("description", "")],
        )
        .await;
    assert_eq!(r.status(), 404);
    let r = bernd
        .form(
            "/tasks/new",
            &format!("/tasks/boards/{board}/cards"),
            &[("title", "x")],
        )
        .await;
    assert_eq!(r.status(), 404);
    let v = board_json(&app, &anna_api, board).await;
    assert_eq!(v["columns"][0]["cards"].as_array().unwrap().len(), 1);
    assert_eq!(v["columns"][0]["cards"][0]["title"], "Blutproben");

    // Shared with the whole practice for reading: bernd sees it but cannot change it.
    let r = anna
        .form(
            &format!("{page}/settings"),
            &format!("{page}/share"),
            &[("practice", "view"), (&share, "edit")],
        )
        .await;
    assert_eq!(r.status(), 303);
    assert!(bernd.page(&page).await.contains("Blutproben"));
    let (status, _) = bernd_api
        .api(
            &app,
            Method::POST,
            &format!("/api/tasks/cards/{card}/move"),
            Some(json!({"column": cols[1], "position": 0})),
        )
        .await;
    assert_eq!(status, 403, "read-only");
    // Practice B still sees nothing of it.
    assert_eq!(other.status(&page).await, 404);
}

#[tokio::test]
async fn requests_without_session_token_or_valid_input_are_refused() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    let anna = app.member("praxis-a", "anna", false).await;
    let api = person(&app, "praxis-a", "anna2", false).await;
    let board = new_board(&anna, "Empfang", &[("practice", "edit")]).await;
    let cols = column_ids(&app, &api, board).await;
    let card = api_card(&app, &api, board, cols[0], "Rezepte").await;

    // Unauthenticated: pages go to the sign-in, the API answers 401.
    let anon = app.anonymous("praxis-a");
    for path in ["/tasks", "/tasks/mine", &format!("/tasks/boards/{board}")] {
        let r = anon.get(path).await;
        assert_eq!(r.status(), 303, "{path}");
        assert!(
            r.headers()["location"]
                .to_str()
                .unwrap()
                .starts_with("/auth/login")
        );
    }
    let r = anon
        .client
        .get(app.url("praxis-a", &format!("/api/tasks/boards/{board}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // Without a CSRF token: refused, nothing changed.
    let no_token = [
        format!("/tasks/cards/{card}/archive"),
        format!("/tasks/boards/{board}/cards"),
        "/tasks/boards".to_owned(),
    ];
    for action in &no_token {
        assert_eq!(
            anna.post_without_token(action, &[("title", "x")]).await,
            403,
            "{action}"
        );
    }
    let r = api
        .http
        .post(app.url("praxis-a", &format!("/api/tasks/cards/{card}/move")))
        .json(&json!({"column": cols[1], "position": 0}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let v = board_json(&app, &api, board).await;
    assert_eq!(v["columns"][0]["cards"][0]["id"], card, "still in place");

    // Malformed JSON, wrong fields, unknown ids.
    let move_path = format!("/api/tasks/cards/{card}/move");
    let r = api
        .http
        .post(app.url("praxis-a", &move_path))
        .header("x-csrf-token", &api.csrf)
        .header("content-type", "application/json")
        .body("{\"column\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let (status, _) = api
        .api(
            &app,
            Method::POST,
            &move_path,
            Some(json!({"column": "x", "position": 0})),
        )
        .await;
    assert_eq!(status, 400);
    let (status, _) = api
        .api(
            &app,
            Method::POST,
            &move_path,
            Some(json!({"column": 999999, "position": 0})),
        )
        .await;
    assert_eq!(status, 404);
    let (status, _) = api
        .api(
            &app,
            Method::POST,
            "/api/tasks/cards/999999/move",
            Some(json!({"column": cols[0], "position": 0})),
        )
        .await;
    assert_eq!(status, 404);
    let (status, _) = api
        .api(&app, Method::GET, "/api/tasks/cards/abc", None)
        .await;
    assert_eq!(status, 404);
    let r = anna
        .form(
            &format!("/tasks/cards/{card}"),
            &format!("/tasks/cards/{card}/move"),
            &[("column", "abc"), ("position", "1")],
        )
        .await;
    assert_eq!(r.status(), 400);
    let r = anna
        .form(
            &format!("/tasks/cards/{card}"),
            &format!("/tasks/cards/{card}/edit"),
            &[
                ("title", "Rezepte"),
                ("description", ""),
                ("due_date", "31.12.2026"),
                ("due_time", ""),
            ],
        )
        .await;
    assert_eq!(r.status(), 400);
    let r = anna
        .form(
            &format!("/tasks/cards/{card}"),
            &format!("/tasks/cards/{card}/bogus"),
            &[],
        )
        .await;
    assert_eq!(r.status(), 404);

    // Oversized: a 1 MB description is refused over the API and the form.
    let big = "a".repeat(1024 * 1024);
    let (status, _) = api
        .api(
            &app,
            Method::PATCH,
            &format!("/api/tasks/cards/{card}"),
            Some(json!({"description": big})),
        )
        .await;
    assert_eq!(status, 413);
    let r = anna
        .form(
            &format!("/tasks/cards/{card}"),
            &format!("/tasks/cards/{card}/edit"),
            &[("title", "Rezepte"), ("description", &big)],
        )
        .await;
    assert_eq!(r.status(), 413);
    let medium = "b".repeat(30_000);
    let (status, v) = api
        .api(
            &app,
            Method::PATCH,
            &format!("/api/tasks/cards/{card}"),
            Some(json!({"description": medium})),
        )
        .await;
    assert_eq!((status, v["error"].as_str()), (413, Some("too_long")));
    let (_, v) = api
        .api(&app, Method::GET, &format!("/api/tasks/cards/{card}"), None)
        .await;
    assert_eq!(v["card"]["description"], "", "nothing half-written");

    // 500 checklist items: refused as a whole (the limit is 200), then 200 fit.
    let many: Vec<String> = (0..500).map(|i| format!("Punkt {i}")).collect();
    let r = anna
        .form(
            &format!("/tasks/cards/{card}"),
            &format!("/tasks/cards/{card}/items"),
            &[("text", &many.join("\n"))],
        )
        .await;
    assert_eq!(r.status(), 400);
    let r = anna
        .form(
            &format!("/tasks/cards/{card}"),
            &format!("/tasks/cards/{card}/items"),
            &[("text", &many[..200].join("\n"))],
        )
        .await;
    assert_eq!(r.status(), 303);
    let html = anna.page(&format!("/tasks/cards/{card}")).await;
    assert!(html.contains("0/200"));
    assert!(
        anna.page(&format!("/tasks/boards/{board}"))
            .await
            .contains("0/200")
    );
}

#[tokio::test]
async fn moves_into_another_boards_column_are_refused() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    let anna = app.member("praxis-a", "anna", false).await;
    let api = person(&app, "praxis-a", "anna2", false).await;
    let b1 = new_board(&anna, "Eins", &[("practice", "edit")]).await;
    let b2 = new_board(&anna, "Zwei", &[("practice", "edit")]).await;
    let c1 = column_ids(&app, &api, b1).await;
    let c2 = column_ids(&app, &api, b2).await;
    let card = api_card(&app, &api, b1, c1[0], "Wandert nicht").await;
    let (status, v) = api
        .api(
            &app,
            Method::POST,
            &format!("/api/tasks/cards/{card}/move"),
            Some(json!({"column": c2[0], "position": 0})),
        )
        .await;
    assert_eq!(status, 400, "{v}");
    let (status, _) = api
        .api(
            &app,
            Method::POST,
            &format!("/api/tasks/boards/{b1}/cards"),
            Some(json!({"title": "x", "column": c2[0]})),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(
        board_json(&app, &api, b2).await["columns"][0]["cards"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    // Huge and negative positions are clamped into the column.
    let (status, v) = api
        .api(
            &app,
            Method::POST,
            &format!("/api/tasks/cards/{card}/move"),
            Some(json!({"column": c1[1], "position": 1_000_000_000})),
        )
        .await;
    assert_eq!((status, v["position"].as_i64()), (200, Some(0)));
    let (status, v) = api
        .api(
            &app,
            Method::POST,
            &format!("/api/tasks/cards/{card}/move"),
            Some(json!({"column": c1[2], "position": -5})),
        )
        .await;
    assert_eq!((status, v["position"].as_i64()), (200, Some(0)));
    let v = board_json(&app, &api, b1).await;
    assert_eq!(
        v["columns"][2]["cards"][0]["done"], true,
        "in the done column"
    );
}

/// 200 moves of `p` over the API, cards, columns and positions (some out of range) picked
/// by `seed`.
async fn mover(app: &TestApp, p: &Person, cards: &[i64], cols: &[i64], seed: usize) {
    for i in 0..200 {
        let card = cards[(i * 7 + seed) % cards.len()];
        let col = cols[(i + seed) % cols.len()];
        let pos = ((i * 13 + seed) % 9) as i64 - 2;
        let (status, v) = p
            .api(
                app,
                Method::POST,
                &format!("/api/tasks/cards/{card}/move"),
                Some(json!({"column": col, "position": pos})),
            )
            .await;
        assert_eq!(status, 200, "{v}");
    }
}

#[tokio::test]
async fn concurrent_moves_keep_every_card_once_and_positions_dense() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    let anna = app.member("praxis-a", "anna", false).await;
    let a = person(&app, "praxis-a", "anna2", false).await;
    let b = person(&app, "praxis-a", "bernd2", false).await;
    let board = new_board(&anna, "Wettlauf", &[("practice", "edit")]).await;
    let cols = column_ids(&app, &a, board).await;
    let mut cards = Vec::new();
    for i in 0..12 {
        cards.push(api_card(&app, &a, board, cols[i % 3], &format!("Karte {i}")).await);
    }
    tokio::join!(
        mover(&app, &a, &cards, &cols, 1),
        mover(&app, &b, &cards, &cols, 5)
    );
    let v = board_json(&app, &a, board).await;
    let mut seen = Vec::new();
    for col in v["columns"].as_array().unwrap() {
        let list = col["cards"].as_array().unwrap();
        let positions: Vec<i64> = list
            .iter()
            .map(|c| c["position"].as_i64().unwrap())
            .collect();
        assert_eq!(
            positions,
            (0..list.len() as i64).collect::<Vec<_>>(),
            "{col}"
        );
        seen.extend(list.iter().map(|c| c["id"].as_i64().unwrap()));
    }
    seen.sort_unstable();
    let mut want = cards.clone();
    want.sort_unstable();
    assert_eq!(seen, want, "every card exactly once");
}

#[tokio::test]
async fn titles_and_descriptions_are_escaped_and_markdown_is_the_safe_subset() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    let anna = app.member("praxis-a", "anna", false).await;
    let api = person(&app, "praxis-a", "anna2", false).await;
    let board = new_board(&anna, "<b>Board</b>", &[("practice", "edit")]).await;
    let cols = column_ids(&app, &api, board).await;
    let card = api_card(&app, &api, board, cols[0], "<script>alert(1)</script>").await;
    let (status, _) = api
        .api(
            &app,
            Method::PATCH,
            &format!("/api/tasks/cards/{card}"),
            Some(json!({"description": "**wichtig** <script>alert(2)</script> [x](javascript:alert(3))"})),
        )
        .await;
    assert_eq!(status, 200);
    let board_html = anna.page(&format!("/tasks/boards/{board}")).await;
    // Shown as text (askama escapes `<` as `&#60;`), never as markup.
    assert!(board_html.contains("&#60;script&#62;alert(1)"));
    assert!(!board_html.contains("<script>alert"));
    assert!(board_html.contains("&#60;b&#62;Board"));
    assert!(!board_html.contains("<b>Board"));
    let card_html = anna.page(&format!("/tasks/cards/{card}")).await;
    assert!(card_html.contains("<strong>wichtig</strong>"));
    assert!(!card_html.contains("<script>alert"));
    assert!(!card_html.contains("href=\"javascript"), "no script link");
}

#[tokio::test]
async fn cards_are_found_by_search_only_by_readers_of_their_board() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    let anna = app.member("praxis-a", "anna", false).await;
    let api = person(&app, "praxis-a", "anna2", false).await;
    let bernd = app.member("praxis-a", "bernd", false).await;
    let anna2 = member_id(&app, &api, "anna2").await;
    let share = format!("member:{anna2}");
    let board = new_board(&anna, "Geheim", &[(&share, "edit")]).await;
    let cols = column_ids(&app, &api, board).await;
    let card = api_card(&app, &api, board, cols[0], "Quittungsblock").await;
    let link = format!("/tasks/cards/{card}");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if anna.page("/search?q=Quittungsblock").await.contains(&link) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the card never appeared in the search"
        );
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    assert!(!bernd.page("/search?q=Quittungsblock").await.contains(&link));
    // Losing the board loses the hit at once (the search re-checks).
    let r = anna
        .form(
            &format!("/tasks/boards/{board}/settings"),
            &format!("/tasks/boards/{board}/share"),
            &[],
        )
        .await;
    assert_eq!(r.status(), 303);
    assert!(
        anna.page("/search?q=Quittungsblock").await.contains(&link),
        "the owner keeps it"
    );
}
