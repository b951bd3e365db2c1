//! The workspace: sign-in through the practice IdP, the start page, chat pages.

use crate::apps::chat::room_of;
use crate::harness::{CHAT_PW, TestApp};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_through_the_practice_idp_and_see_the_start_page() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    // Unauthenticated: the workspace sends the browser to sign in.
    let r = app.anonymous("praxis-a").get("/").await;
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/auth/login?next=%2F");
    let anna = app.member("praxis-a", "anna", false).await;
    let home = anna.get("/").await;
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
    assert_eq!(anna.at("praxis-b").status("/").await, 303);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_chat_and_non_members_see_nothing() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    app.create_practice("praxis-b").await;
    let anna = app.member("praxis-a", "anna", false).await;
    let bernd = app.member("praxis-a", "bernd", false).await;
    let other = app.member("praxis-b", "olga", false).await;

    let room = anna
        .create_room_with(&[("name", "Labor"), ("topic", "Befunde"), ("private", "on")])
        .await;
    let page = format!("/chat/{room}");
    anna.post(&room, "Hallo **Team**").await;
    assert!(
        anna.read(&room)
            .await
            .contains("Hallo <strong>Team</strong>")
    );

    // Bernd is not a member of the private room: not found, and not listed.
    assert_eq!(bernd.status(&page).await, 404);
    assert!(!bernd.rooms().await.contains("Labor"));
    // Posting into it is refused too (with a valid token from the room list).
    let r = bernd
        .form("/chat", &format!("{page}/messages"), &[("body", "rein?")])
        .await;
    assert_eq!(r.status(), 404);
    // Practice B's member cannot reach practice A's room id at A, and at B it does not exist.
    assert_eq!(other.at("praxis-a").status(&page).await, 303);
    assert_eq!(other.status(&page).await, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_messages_get_clear_errors_and_foreign_messages_are_protected() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    let anna = app.member("praxis-a", "anna", false).await;
    let bernd = app.member("praxis-a", "bernd", false).await;
    let room = anna.create_room("Team").await;
    let page = format!("/chat/{room}");
    assert_eq!(anna.try_post(&room, "   ").await.status(), 400);
    assert_eq!(
        anna.try_post(&room, &"x".repeat(10_001)).await.status(),
        413
    );
    let mid = anna.post(&room, "Meine Nachricht").await;
    // Bernd (open room, so he may read and write) can neither edit nor delete Anna's message.
    let edit = [("body", "übernommen")];
    assert_eq!(bernd.act(&room, &mid, "edit", &edit).await.status(), 403);
    assert_eq!(bernd.act(&room, &mid, "delete", &[]).await.status(), 403);
    let unicorn = [("emoji", "🦄")];
    assert_eq!(
        bernd.act(&room, &mid, "react", &unicorn).await.status(),
        400
    );
    let thumbs = [("emoji", "👍")];
    assert_eq!(bernd.act(&room, &mid, "react", &thumbs).await.status(), 303);
    let fix = [("body", "Korrigiert")];
    assert_eq!(anna.act(&room, &mid, "edit", &fix).await.status(), 303);
    let html = bernd.read(&room).await;
    assert!(html.contains("Korrigiert") && html.contains("(bearbeitet)") && html.contains("👍 1"));
    // The reaction reads in words for a screen reader, and says whose it is.
    assert!(
        html.contains(r#"aria-label="Daumen hoch, 1 Reaktion, von Ihnen""#),
        "Bernd's own reaction is not labelled in words"
    );
    assert!(
        html.contains(r#"aria-label="Herz""#),
        "the picker names its reactions"
    );
    let html = anna.read(&room).await;
    assert!(
        html.contains(r#"aria-label="Daumen hoch, 1 Reaktion""#),
        "Anna sees Bernd's reaction in words, not as hers"
    );
    assert_eq!(bernd.status("/chat/999999").await, 404);
    assert_eq!(bernd.status("/chat/keine-zahl").await, 404);
    // Unauthenticated and CSRF-less posts are refused.
    let action = format!("{page}/messages");
    let anon = app.anonymous("praxis-a");
    assert_eq!(
        anon.post_without_token(&action, &[("body", "x")]).await,
        403
    );
    assert_eq!(
        bernd.post_without_token(&action, &[("body", "x")]).await,
        403
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_markup_is_rendered_inert() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    let anna = app.member("praxis-a", "anna", false).await;
    let room = anna
        .create_room_with(&[
            ("name", "<script>alert(1)</script>"),
            ("topic", "<img src=x onerror=alert(1)>"),
        ])
        .await;
    for body in [
        "<script>alert(1)</script>",
        "[x](JaVaScRiPt:alert(1))",
        "![a](x \"onerror=alert(1)\")",
        "<svg onload=alert(1)>",
    ] {
        anna.post(&room, body).await;
    }
    let html = anna.read(&room).await;
    let lower = html.to_lowercase();
    assert!(
        !lower.contains("<script>alert")
            && !lower.contains("<img src=x")
            && !lower.contains("<svg")
            && !lower.contains("href=\"javascript")
    );
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
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
    let id = app.create_user("praxis-a", "eva", CHAT_PW, false).await;
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
    let eva = app.member_signing_in("praxis-a", "eva", CHAT_PW).await;
    let room = eva
        .create_room_with(&[
            ("name", "Befunde\u{202E}fdp.exe"),
            ("topic", "Thema \u{2067}isoliert\u{2069} \u{202D}x\u{202C}"),
        ])
        .await;
    eva.post(&room, "Hallo").await;
    let anna = app.member("praxis-a", "anna", false).await;
    let seen = [
        eva.read(&room).await,
        anna.read(&room).await,
        anna.rooms().await,
        eva.page("/").await,
        anna.get("/api/chat/rooms").await.text().await.unwrap(),
        anna.get("/api/chat/members").await.text().await.unwrap(),
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
    let r = eva
        .room_settings(&room, &[("name", "\u{202B}Neu"), ("topic", "")])
        .await;
    assert_eq!(r.status(), 303);
    let html = anna.read(&room).await;
    assert!(
        !html.contains(BIDI) && html.contains("# \u{FFFD}Neu"),
        "{html}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_conversations_are_for_their_two_members_only() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    let anna = app.member("praxis-a", "anna", false).await;
    let bernd = app.member("praxis-a", "bernd", false).await;
    let carl = app.member("praxis-a", "carl", false).await;
    let bernd_id = person_id(&anna.rooms().await, "bernd Test");
    let r = anna.try_direct(&bernd_id).await;
    assert_eq!(r.status(), 303);
    let room = room_of(&r);
    // Starting it again (from either side) opens the same conversation.
    assert_eq!(room_of(&anna.try_direct(&bernd_id).await), room);
    let anna_id = person_id(&bernd.rooms().await, "anna Test");
    assert_eq!(room_of(&bernd.try_direct(&anna_id).await), room);
    anna.post(&room, "Unter uns: Urlaubsplanung").await;
    // Each sees the other's name as the title; no room settings for a conversation.
    let html = bernd.read(&room).await;
    assert!(html.contains("<h1>anna Test</h1>"), "{html}");
    assert!(html.contains("Unter uns: Urlaubsplanung"));
    assert!(!html.contains("Raumeinstellungen"));
    assert!(anna.read(&room).await.contains("<h1>bernd Test</h1>"));
    assert!(bernd.rooms().await.contains("@ anna Test"));

    // A third member gets the same 404 as for a room that does not exist.
    let r = carl.get(&format!("/chat/{room}")).await;
    assert_eq!(r.status(), 404);
    assert!(!r.text().await.unwrap().contains("Urlaubsplanung"));
    for path in [
        format!("/api/chat/rooms/{room}"),
        format!("/api/chat/rooms/{room}/messages"),
    ] {
        let r = carl.get_json(&path).await;
        assert_eq!(r.status(), 404, "{path}");
        assert!(!r.text().await.unwrap().contains("Urlaubsplanung"));
    }
    let list = carl.rooms().await;
    assert!(!list.contains("Urlaubsplanung") && !list.contains("@ anna Test"));
    let r = carl
        .form(
            "/chat",
            &format!("/chat/{room}/messages"),
            &[("body", "Darf ich mitlesen?")],
        )
        .await;
    assert_eq!(r.status(), 404);
    // A conversation with oneself or with nobody is refused.
    assert_eq!(anna.try_direct(&anna_id).await.status(), 403);
    assert_eq!(anna.try_direct("999999").await.status(), 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_quotes_the_author_and_an_excerpt() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    let anna = app.member("praxis-a", "anna", false).await;
    let bernd = app.member("praxis-a", "bernd", false).await;
    let room = anna.create_room("Team").await;
    let page_path = format!("/chat/{room}");
    let original = format!(
        "Wer übernimmt die Frühschicht am Montag? {}",
        "x".repeat(200)
    );
    let mid = anna.post(&room, &original).await;
    // The "Antworten" link opens the form with the quoted message.
    let html = bernd.read(&room).await;
    assert!(html.contains(&format!("href=\"/chat/{room}?reply={mid}#composer\"")));
    let html = bernd.page(&format!("{page_path}?reply={mid}")).await;
    assert!(
        html.contains(&format!("name=\"reply_to\" value=\"{mid}\"")),
        "{html}"
    );
    assert!(html.contains("Antwort an <strong>anna Test</strong>"));
    let r = bernd
        .try_post_with(
            &room,
            &[("body", "Ich mache das."), ("reply_to", mid.as_str())],
        )
        .await;
    assert_eq!(r.status(), 303);
    let html = anna.read(&room).await;
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
    let other = anna.create_room("Labor").await;
    let r = anna
        .try_post_with(
            &other,
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
        app.member("praxis-a", "anna", false).await,
        app.member("praxis-a", "bernd", false).await,
        app.member("praxis-a", "carl", false).await,
    ];
    let room = writers[0].create_room("Team").await;
    let mut ids = Vec::new();
    for i in 0..57 {
        let w = &writers[i / 19];
        ids.push(w.post(&room, &format!("Nachricht Nr. {i:02}")).await);
    }
    // Messages on the page (the script's empty template message has id 0).
    let count =
        |html: &str| html.matches("data-id=\"").count() - html.matches("data-id=\"0\"").count();
    let html = writers[0].read(&room).await;
    assert_eq!(count(&html), 50);
    assert!(html.contains("Nachricht Nr. 56") && html.contains("Nachricht Nr. 07"));
    assert!(!html.contains("Nachricht Nr. 06"));
    let older = format!("/chat/{room}?before={}", ids[7]);
    assert!(
        html.contains(&format!("href=\"{older}\">Ältere Nachrichten</a>")),
        "{html}"
    );
    let html = writers[0].page(&older).await;
    assert_eq!(count(&html), 7);
    assert!(html.contains("Nachricht Nr. 00") && html.contains("Nachricht Nr. 06"));
    assert!(!html.contains("Nachricht Nr. 07"));
    assert!(
        !html.contains("Ältere Nachrichten"),
        "the first page has no older link"
    );
}
