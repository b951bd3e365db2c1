//! The workspace: sign-in through the practice IdP, the start page, chat pages.

use crate::harness::{TestApp, client, form_csrf};

fn room_id(r: &reqwest::Response) -> String {
    r.headers()["location"]
        .to_str()
        .unwrap()
        .trim_start_matches("/chat/")
        .split('#')
        .next()
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_through_the_practice_idp_and_see_the_start_page() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    // Unauthenticated: the workspace sends the browser to sign in.
    let r = client().get(app.url("praxis-a", "/")).send().await.unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/auth/login?next=%2F");
    let anna = app.signed_in("praxis-a", "anna", false).await;
    let home = anna.get(app.url("praxis-a", "/")).send().await.unwrap();
    assert_eq!(home.status(), 200);
    let cookies: Vec<String> = home
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert!(
        cookies.iter().all(|c| !c.starts_with("kollegium-id=")),
        "the platform never sets the IdP cookie"
    );
    let html = home.text().await.unwrap();
    assert!(html.contains("Guten Tag, anna Test"), "{html}");
    // A platform session of A is worthless at B.
    app.create_practice("praxis-b").await;
    let r = anna.get(app.url("praxis-b", "/")).send().await.unwrap();
    assert_eq!(r.status(), 303);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_chat_and_non_members_see_nothing() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    app.create_practice("praxis-b").await;
    let anna = app.signed_in("praxis-a", "anna", false).await;
    let bernd = app.signed_in("praxis-a", "bernd", false).await;
    let other = app.signed_in("praxis-b", "olga", false).await;

    let r = app
        .post_form(
            &anna,
            "praxis-a",
            "/chat",
            "/chat/rooms",
            &[("name", "Labor"), ("topic", "Befunde"), ("private", "on")],
        )
        .await;
    assert_eq!(r.status(), 303);
    let room = room_id(&r);
    let page = format!("/chat/{room}");
    let r = app
        .post_form(
            &anna,
            "praxis-a",
            &page,
            &format!("{page}/messages"),
            &[("body", "Hallo **Team**")],
        )
        .await;
    assert_eq!(r.status(), 303);
    let html = anna
        .get(app.url("praxis-a", &page))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("Hallo <strong>Team</strong>"));

    // Bernd is not a member of the private room: not found, and not listed.
    assert_eq!(
        bernd
            .get(app.url("praxis-a", &page))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    let list = bernd
        .get(app.url("praxis-a", "/chat"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!list.contains("Labor"));
    // Posting into it is refused too.
    let token = form_csrf(&list);
    let r = bernd
        .post(app.url("praxis-a", &format!("{page}/messages")))
        .form(&[("csrf_token", token.as_str()), ("body", "rein?")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    // Practice B's member cannot reach practice A's room id at A, and at B it does not exist.
    assert_eq!(
        other
            .get(app.url("praxis-a", &page))
            .send()
            .await
            .unwrap()
            .status(),
        303
    );
    assert_eq!(
        other
            .get(app.url("praxis-b", &page))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_messages_get_clear_errors_and_foreign_messages_are_protected() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    let anna = app.signed_in("praxis-a", "anna", false).await;
    let bernd = app.signed_in("praxis-a", "bernd", false).await;
    let r = app
        .post_form(
            &anna,
            "praxis-a",
            "/chat",
            "/chat/rooms",
            &[("name", "Team")],
        )
        .await;
    let room = room_id(&r);
    let page = format!("/chat/{room}");
    let send = |c: &reqwest::Client, body: String| {
        let (c, page, app) = (c.clone(), page.clone(), &app);
        async move {
            app.post_form(
                &c,
                "praxis-a",
                &page,
                &format!("{page}/messages"),
                &[("body", body.as_str())],
            )
            .await
        }
    };
    assert_eq!(send(&anna, "   ".into()).await.status(), 400);
    assert_eq!(send(&anna, "x".repeat(10_001)).await.status(), 413);
    let r = send(&anna, "Meine Nachricht".into()).await;
    assert_eq!(r.status(), 303);
    let mid = r.headers()["location"]
        .to_str()
        .unwrap()
        .split("#m")
        .nth(1)
        .unwrap()
        .to_owned();
    // Bernd (open room, so he may read and write) can neither edit nor delete Anna's message.
    let act = |c: &reqwest::Client, what: &str, fields: Vec<(&'static str, &'static str)>| {
        let (c, page, app, url) = (
            c.clone(),
            page.clone(),
            &app,
            format!("{page}/messages/{mid}/{what}"),
        );
        async move { app.post_form(&c, "praxis-a", &page, &url, &fields).await }
    };
    assert_eq!(
        act(&bernd, "edit", vec![("body", "übernommen")])
            .await
            .status(),
        403
    );
    assert_eq!(act(&bernd, "delete", vec![]).await.status(), 403);
    assert_eq!(
        act(&bernd, "react", vec![("emoji", "🦄")]).await.status(),
        400
    );
    assert_eq!(
        act(&bernd, "react", vec![("emoji", "👍")]).await.status(),
        303
    );
    assert_eq!(
        act(&anna, "edit", vec![("body", "Korrigiert")])
            .await
            .status(),
        303
    );
    let html = bernd
        .get(app.url("praxis-a", &page))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("Korrigiert") && html.contains("(bearbeitet)") && html.contains("👍 1"));
    assert_eq!(
        bernd
            .get(app.url("praxis-a", "/chat/999999"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    assert_eq!(
        bernd
            .get(app.url("praxis-a", "/chat/keine-zahl"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    // Unauthenticated and CSRF-less posts are refused.
    assert_eq!(
        client()
            .post(app.url("praxis-a", &format!("{page}/messages")))
            .form(&[("body", "x")])
            .send()
            .await
            .unwrap()
            .status(),
        403
    );
    assert_eq!(
        bernd
            .post(app.url("praxis-a", &format!("{page}/messages")))
            .form(&[("body", "x")])
            .send()
            .await
            .unwrap()
            .status(),
        403
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_markup_is_rendered_inert() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    let anna = app.signed_in("praxis-a", "anna", false).await;
    let r = app
        .post_form(
            &anna,
            "praxis-a",
            "/chat",
            "/chat/rooms",
            &[
                ("name", "<script>alert(1)</script>"),
                ("topic", "<img src=x onerror=alert(1)>"),
            ],
        )
        .await;
    let page = format!("/chat/{}", room_id(&r));
    for body in [
        "<script>alert(1)</script>",
        "[x](JaVaScRiPt:alert(1))",
        "![a](x \"onerror=alert(1)\")",
        "<svg onload=alert(1)>",
    ] {
        assert_eq!(
            app.post_form(
                &anna,
                "praxis-a",
                &page,
                &format!("{page}/messages"),
                &[("body", body)]
            )
            .await
            .status(),
            303
        );
    }
    let html = anna
        .get(app.url("praxis-a", &page))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let lower = html.to_lowercase();
    assert!(
        !lower.contains("<script>alert")
            && !lower.contains("<img src=x")
            && !lower.contains("<svg")
            && !lower.contains("href=\"javascript")
    );
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
}

/// The page at `path` as the member on `c` sees it (must be 200).
async fn page(app: &TestApp, c: &reqwest::Client, path: &str) -> String {
    let r = c.get(app.url("praxis-a", path)).send().await.unwrap();
    assert_eq!(r.status(), 200, "{path}");
    r.text().await.unwrap()
}

/// The member id the chat list offers for a 1:1 conversation with `name`.
fn person_id(list_html: &str, name: &str) -> String {
    let marker = format!("\">{name}</");
    let at = list_html
        .find(&marker)
        .unwrap_or_else(|| panic!("{name} is not offered: {list_html}"));
    let before = &list_html[..at];
    let start = before.rfind("/chat/direct/").unwrap() + "/chat/direct/".len();
    before[start..].split('"').next().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bidi_overrides_are_neutralised_in_room_names_topics_and_display_names() {
    const BIDI: [char; 9] = [
        '\u{202A}', '\u{202B}', '\u{202C}', '\u{202D}', '\u{202E}', '\u{2066}', '\u{2067}',
        '\u{2068}', '\u{2069}',
    ];
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    // A display name from the IdP with a right-to-left override.
    let id = app
        .create_user("praxis-a", "eva", crate::harness::CHAT_PW, false)
        .await;
    let now = app.clock.now();
    app.idp_db("praxis-a", move |c| {
        let u = kollegium_idp::users::by_id(c, id).unwrap().unwrap();
        let p = kollegium_idp::users::Profile {
            username: u.username,
            email: u.email,
            display_name: "Eva \u{202E}nitsuJ".into(),
            roles: u.roles,
            ..kollegium_idp::users::Profile::default()
        };
        kollegium_idp::users::update_profile(c, id, &p, now)
            .unwrap()
            .unwrap();
    })
    .await;
    let eva = client();
    app.sign_in(&eva, "praxis-a", "eva", crate::harness::CHAT_PW)
        .await;
    let r = app
        .post_form(
            &eva,
            "praxis-a",
            "/chat",
            "/chat/rooms",
            &[
                ("name", "Befunde\u{202E}fdp.exe"),
                ("topic", "Thema \u{2067}isoliert\u{2069} \u{202D}x\u{202C}"),
            ],
        )
        .await;
    assert_eq!(r.status(), 303);
    let room = room_id(&r);
    app.say(&eva, "praxis-a", &room, "Hallo").await;
    let anna = app.signed_in("praxis-a", "anna", false).await;
    let seen = [
        page(&app, &eva, &format!("/chat/{room}")).await,
        page(&app, &anna, &format!("/chat/{room}")).await,
        page(&app, &anna, "/chat").await,
        page(&app, &eva, "/").await,
        anna.get(app.url("praxis-a", "/api/chat/rooms"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        anna.get(app.url("praxis-a", "/api/chat/members"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    ];
    for (i, text) in seen.iter().enumerate() {
        assert!(
            !text.contains(BIDI),
            "page {i} carries a bidi control: {text}"
        );
    }
    // What remains is readable: the override is shown as a visible replacement mark.
    assert!(seen[0].contains("Befunde\u{FFFD}fdp.exe"), "{}", seen[0]);
    assert!(
        seen[0].contains("Thema \u{FFFD}isoliert\u{FFFD}"),
        "{}",
        seen[0]
    );
    assert!(seen[1].contains("Eva \u{FFFD}nitsuJ"), "{}", seen[1]);
    assert!(
        seen[3].contains("Guten Tag, Eva \u{FFFD}nitsuJ"),
        "{}",
        seen[3]
    );
    // Renaming takes the same path.
    let page_path = format!("/chat/{room}");
    let r = app
        .post_form(
            &eva,
            "praxis-a",
            &page_path,
            &format!("{page_path}/settings"),
            &[("name", "\u{202B}Neu"), ("topic", "")],
        )
        .await;
    assert_eq!(r.status(), 303);
    let html = page(&app, &anna, &page_path).await;
    assert!(
        !html.contains(BIDI) && html.contains("# \u{FFFD}Neu"),
        "{html}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_conversations_are_for_their_two_members_only() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    let anna = app.signed_in("praxis-a", "anna", false).await;
    let bernd = app.signed_in("praxis-a", "bernd", false).await;
    let carl = app.signed_in("praxis-a", "carl", false).await;
    let list = page(&app, &anna, "/chat").await;
    let bernd_id = person_id(&list, "bernd Test");
    let start = format!("/chat/direct/{bernd_id}");
    let r = app.post_form(&anna, "praxis-a", "/chat", &start, &[]).await;
    assert_eq!(r.status(), 303);
    let room = room_id(&r);
    // Starting it again (from either side) opens the same conversation.
    let r = app.post_form(&anna, "praxis-a", "/chat", &start, &[]).await;
    assert_eq!(room_id(&r), room);
    let anna_id = person_id(&page(&app, &bernd, "/chat").await, "anna Test");
    let r = app
        .post_form(
            &bernd,
            "praxis-a",
            "/chat",
            &format!("/chat/direct/{anna_id}"),
            &[],
        )
        .await;
    assert_eq!(room_id(&r), room);
    app.say(&anna, "praxis-a", &room, "Unter uns: Urlaubsplanung")
        .await;
    // Each sees the other's name as the title; no room settings for a conversation.
    let html = page(&app, &bernd, &format!("/chat/{room}")).await;
    assert!(html.contains("<h1>anna Test</h1>"), "{html}");
    assert!(html.contains("Unter uns: Urlaubsplanung"));
    assert!(!html.contains("Raumeinstellungen"));
    let html = page(&app, &anna, &format!("/chat/{room}")).await;
    assert!(html.contains("<h1>bernd Test</h1>"));
    assert!(page(&app, &bernd, "/chat").await.contains("@ anna Test"));

    // A third member gets the same 404 as for a room that does not exist.
    let r = carl
        .get(app.url("praxis-a", &format!("/chat/{room}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert!(!r.text().await.unwrap().contains("Urlaubsplanung"));
    for path in [
        format!("/api/chat/rooms/{room}"),
        format!("/api/chat/rooms/{room}/messages"),
    ] {
        let r = carl
            .get(app.url("praxis-a", &path))
            .header("accept", "application/json")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{path}");
        assert!(!r.text().await.unwrap().contains("Urlaubsplanung"));
    }
    let list = page(&app, &carl, "/chat").await;
    assert!(!list.contains("Urlaubsplanung") && !list.contains("@ anna Test"));
    let r = app
        .post_form(
            &carl,
            "praxis-a",
            "/chat",
            &format!("/chat/{room}/messages"),
            &[("body", "Darf ich mitlesen?")],
        )
        .await;
    assert_eq!(r.status(), 404);
    // A conversation with oneself or with nobody is refused.
    let r = app
        .post_form(
            &anna,
            "praxis-a",
            "/chat",
            &format!("/chat/direct/{anna_id}"),
            &[],
        )
        .await;
    assert_eq!(r.status(), 403);
    let r = app
        .post_form(&anna, "praxis-a", "/chat", "/chat/direct/999999", &[])
        .await;
    assert_eq!(r.status(), 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_quotes_the_author_and_an_excerpt() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    let anna = app.signed_in("praxis-a", "anna", false).await;
    let bernd = app.signed_in("praxis-a", "bernd", false).await;
    let r = app
        .post_form(
            &anna,
            "praxis-a",
            "/chat",
            "/chat/rooms",
            &[("name", "Team")],
        )
        .await;
    let room = room_id(&r);
    let page_path = format!("/chat/{room}");
    let original = format!(
        "Wer übernimmt die Frühschicht am Montag? {}",
        "x".repeat(200)
    );
    let mid = app.say(&anna, "praxis-a", &room, &original).await;
    // The "Antworten" link opens the form with the quoted message.
    let html = page(&app, &bernd, &page_path).await;
    assert!(html.contains(&format!("href=\"/chat/{room}?reply={mid}#composer\"")));
    let html = page(&app, &bernd, &format!("{page_path}?reply={mid}")).await;
    assert!(
        html.contains(&format!("name=\"reply_to\" value=\"{mid}\"")),
        "{html}"
    );
    assert!(html.contains("Antwort an <strong>anna Test</strong>"));
    let r = app
        .post_form(
            &bernd,
            "praxis-a",
            &page_path,
            &format!("{page_path}/messages"),
            &[("body", "Ich mache das."), ("reply_to", mid.as_str())],
        )
        .await;
    assert_eq!(r.status(), 303);
    let html = page(&app, &anna, &page_path).await;
    let quote_start = html
        .find("<blockquote class=\"reply-quote\"><strong>anna Test</strong>: Wer übernimmt die Frühschicht am Montag?")
        .unwrap_or_else(|| panic!("no quote: {html}"));
    let quote =
        &html[quote_start..quote_start + html[quote_start..].find("</blockquote>").unwrap()];
    assert!(
        quote.chars().count() < original.chars().count(),
        "an excerpt: {quote}"
    );
    let reply_at = html.find("Ich mache das.").unwrap();
    assert!(quote_start < reply_at, "the quote heads the reply");
    // Replying to a message of another room is refused.
    let r = app
        .post_form(
            &anna,
            "praxis-a",
            "/chat",
            "/chat/rooms",
            &[("name", "Labor")],
        )
        .await;
    let other = room_id(&r);
    let r = app
        .post_form(
            &anna,
            "praxis-a",
            &format!("/chat/{other}"),
            &format!("/chat/{other}/messages"),
            &[("body", "Falscher Raum"), ("reply_to", mid.as_str())],
        )
        .await;
    assert_eq!(r.status(), 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_javascript_older_messages_are_a_link_away() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    // Three writers: each stays within the posting rate's burst.
    let writers = [
        app.signed_in("praxis-a", "anna", false).await,
        app.signed_in("praxis-a", "bernd", false).await,
        app.signed_in("praxis-a", "carl", false).await,
    ];
    let r = app
        .post_form(
            &writers[0],
            "praxis-a",
            "/chat",
            "/chat/rooms",
            &[("name", "Team")],
        )
        .await;
    let room = room_id(&r);
    let mut ids = Vec::new();
    for i in 0..57 {
        let c = &writers[i / 19];
        ids.push(
            app.say(c, "praxis-a", &room, &format!("Nachricht Nr. {i:02}"))
                .await,
        );
    }
    // Messages on the page (the script's empty template message has id 0).
    let count =
        |html: &str| html.matches("data-id=\"").count() - html.matches("data-id=\"0\"").count();
    let html = page(&app, &writers[0], &format!("/chat/{room}")).await;
    assert_eq!(count(&html), 50);
    assert!(html.contains("Nachricht Nr. 56") && html.contains("Nachricht Nr. 07"));
    assert!(!html.contains("Nachricht Nr. 06"));
    let older = format!("/chat/{room}?before={}", ids[7]);
    assert!(
        html.contains(&format!("href=\"{older}\">Ältere Nachrichten</a>")),
        "{html}"
    );
    let html = page(&app, &writers[0], &older).await;
    assert_eq!(count(&html), 7);
    assert!(html.contains("Nachricht Nr. 00") && html.contains("Nachricht Nr. 06"));
    assert!(!html.contains("Nachricht Nr. 07"));
    assert!(
        !html.contains("Ältere Nachrichten"),
        "the first page has no older link"
    );
}
