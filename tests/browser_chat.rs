//! The chat as a messenger, in headless Chromium against the real server: a long room
//! opens at its newest message with the message box in view (desktop and phone), Enter
//! sends, a message arriving while the reader is scrolled up shows "↓ 1 neue Nachricht"
//! and does not move the page, "@In" offers "Dr. Ines Inhaber", the navigation's counts
//! follow the member to other workspace pages, and an ended session keeps the draft.

use std::time::Duration;

use fantoccini::{Client, Locator};
use serde_json::{Value, json};

use crate::apps::chat_api::{Person, new_room, person, post};
use crate::browser::{Screen, browser, browser_on, driver, js, sign_in, wait_live};
use crate::harness::{CHAT_PW, TestApp, client_with_jar};

const ENTER: &str = "\u{E007}";
const SHIFT: &str = "\u{E008}";
const RELEASE: &str = "\u{E000}";

/// Polls `script` until it returns `want` (5 s at most); returns the last value.
async fn until(b: &Client, script: &str, want: Value) -> Value {
    let mut v = Value::Null;
    for _ in 0..50 {
        v = js(b, script).await;
        if v == want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    v
}

/// Where the newest message and the message box are, relative to the viewport.
const IN_VIEW: &str = "var last = document.querySelector('#messages li.message:last-of-type').getBoundingClientRect(); \
    var box = document.querySelector('#composer textarea').getBoundingClientRect(); \
    var h = window.innerHeight; \
    return { last: last.top >= 0 && last.bottom <= h + 1, box: box.top >= 0 && box.bottom <= h + 1, \
      pageScroll: document.documentElement.scrollHeight <= h + 1 };";

/// A room with 60 messages of Anna's (written straight to the database: the API's posting
/// limit is for people).
async fn long_room(app: &TestApp, anna: &Person) -> i64 {
    let room = new_room(app, anna, "Team", false, &[]).await;
    let first = post(app, anna, room, "Nachricht 1").await;
    let author = first["author_id"].as_i64().unwrap();
    let (tenant, now) = (app.tenant("praxis-a"), app.clock.now());
    tokio::task::spawn_blocking(move || {
        use kollegium_platform::chat::{RoomId, messages, rooms};
        use kollegium_platform::members::MemberId;
        let mut conn = tenant.conn(&kollegium_platform::PLATFORM_DB).unwrap();
        let r = rooms::by_id(&mut conn, RoomId(room)).unwrap().unwrap();
        for i in 2..=60 {
            let body = format!("Nachricht {i}");
            messages::post(&mut conn, &r, MemberId(author), &body, None, now).unwrap();
        }
    })
    .await
    .unwrap();
    room
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_room_opens_at_the_newest_message_enter_sends_and_new_messages_wait_below() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    let anna = person(&app, "praxis-a", "anna", false).await;
    let bernd = person(&app, "praxis-a", "bernd", false).await;
    let room = long_room(&app, &anna).await;
    let d = driver().await;

    // On a phone too: the newest message and the box in view, the page itself does not scroll.
    let phone = browser_on(&d, "phone", Screen::Phone(390, 844)).await;
    sign_in(&phone, &app, "anna", &format!("/chat/{room}")).await;
    wait_live(&phone).await;
    let v = js(&phone, IN_VIEW).await;
    assert_eq!(
        v,
        json!({"last": true, "box": true, "pageScroll": true}),
        "phone"
    );
    phone.close().await.unwrap();

    let b = browser(&d, "anna").await;
    sign_in(&b, &app, "anna", &format!("/chat/{room}")).await;
    wait_live(&b).await;
    let v = js(&b, IN_VIEW).await;
    assert_eq!(
        v,
        json!({"last": true, "box": true, "pageScroll": true}),
        "desktop"
    );
    let last = js(&b, "return document.querySelector('#messages li.message:last-of-type .message-body').textContent;").await;
    assert_eq!(last, json!("Nachricht 60"));

    // Shift+Enter adds a line, Enter sends; the box empties and the message is shown.
    let area = b.find(Locator::Css("#composer textarea")).await.unwrap();
    area.send_keys(&format!("Erste Zeile{SHIFT}{ENTER}{RELEASE}zweite Zeile"))
        .await
        .unwrap();
    let value = js(
        &b,
        "return document.querySelector('#composer textarea').value;",
    )
    .await;
    assert_eq!(value, json!("Erste Zeile\nzweite Zeile"));
    area.send_keys(ENTER).await.unwrap();
    let sent = until(
        &b,
        "var t = document.querySelector('#messages li.message:last-of-type .message-body'); \
         return [t ? t.textContent.indexOf('zweite Zeile') >= 0 : false, document.querySelector('#composer textarea').value];",
        json!([true, ""]),
    )
    .await;
    assert_eq!(sent, json!([true, ""]));
    assert_eq!(js(&b, IN_VIEW).await["last"], true);

    // Scrolled up, a colleague's message does not move what the reader looks at.
    js(
        &b,
        "document.getElementById('chat-pane').scrollTop = 400; return true;",
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let seen = "var pane = document.getElementById('chat-pane'); \
        var ref = document.querySelector('#messages li.message:nth-of-type(20)'); \
        return [pane.scrollTop, Math.round(ref.getBoundingClientRect().top)];";
    let before = js(&b, seen).await;
    post(&app, &bernd, room, "Neu von Bernd").await;
    let button = until(
        &b,
        "var j = document.getElementById('jump-new'); return j.hidden ? null : j.textContent;",
        json!("↓ 1 neue Nachricht"),
    )
    .await;
    assert_eq!(button, json!("↓ 1 neue Nachricht"));
    assert_eq!(js(&b, seen).await, before, "the page did not move");
    // The screen reader hears of it.
    let said = js(
        &b,
        "return document.getElementById('chat-announce').textContent;",
    )
    .await;
    assert!(
        said.as_str().unwrap().contains("bernd Test: Neu von Bernd"),
        "{said}"
    );
    // The button brings the reader down and goes away.
    b.find(Locator::Css("#jump-new"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let down = until(
        &b,
        "var p = document.getElementById('chat-pane'); return [document.getElementById('jump-new').hidden, p.scrollHeight - p.scrollTop - p.clientHeight < 48];",
        json!([true, true]),
    )
    .await;
    assert_eq!(down, json!([true, true]));
    b.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typing_at_in_offers_dr_ines_inhaber_and_the_keyboard_picks_her() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    let anna = person(&app, "praxis-a", "anna", false).await;
    app.create_user("praxis-a", "ines", CHAT_PW, true).await;
    app.idp_db("praxis-a", |c| {
        use diesel::RunQueryDsl;
        diesel::sql_query(
            "UPDATE users SET display_name = 'Dr. Ines Inhaber' WHERE username = 'ines'",
        )
        .execute(c)
        .unwrap();
    })
    .await;
    let (ines, _) = client_with_jar();
    app.sign_in(&ines, "praxis-a", "ines", CHAT_PW).await;
    person(&app, "praxis-a", "inge", false).await;
    let room = new_room(&app, &anna, "Team", false, &[]).await;

    let d = driver().await;
    let b = browser(&d, "anna").await;
    sign_in(&b, &app, "anna", &format!("/chat/{room}")).await;
    let area = b.find(Locator::Css("#composer textarea")).await.unwrap();
    area.send_keys("Frage an @In").await.unwrap();
    let offered = until(
        &b,
        "var p = document.getElementById('mention-picker'); return p.hidden ? [] : Array.from(p.querySelectorAll('li')).map(function (li) { return li.querySelector('strong').textContent; });",
        json!(["Dr. Ines Inhaber", "inge Test"]),
    )
    .await;
    assert_eq!(offered, json!(["Dr. Ines Inhaber", "inge Test"]));
    // Down and up again, then Enter takes the highlighted one (and sends nothing).
    area.send_keys("\u{E015}\u{E013}").await.unwrap();
    let selected = js(&b, "return document.querySelector('#mention-picker li[aria-selected=true] strong').textContent;").await;
    assert_eq!(selected, json!("Dr. Ines Inhaber"));
    area.send_keys(ENTER).await.unwrap();
    let value = js(&b, "return [document.querySelector('#composer textarea').value, document.getElementById('mention-picker').hidden, document.querySelectorAll('#messages li.message').length];").await;
    assert_eq!(value, json!(["Frage an @ines ", true, 0]));
    b.close().await.unwrap();
}

/// The navigation's chat counts and the tab title, as the member sees them.
const COUNTS: &str = "var a = document.querySelector('.mainnav a[href=\"/chat\"]'); \
    var m = a.querySelector('.nav-mentions'), u = a.querySelector('.nav-unread'); \
    return [u && !u.hidden ? u.textContent : null, m && !m.hidden ? m.textContent : null, document.title.split(' ')[0]];";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_navigation_counts_follow_the_member_to_other_workspace_pages_live() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    app.create_user("praxis-a", "anna", CHAT_PW, false).await;
    let bernd = person(&app, "praxis-a", "bernd", false).await;
    let room = new_room(&app, &bernd, "Team", false, &[]).await;

    let d = driver().await;
    let b = browser_on(&d, "anna", Screen::Window(1366, 900)).await;
    sign_in(&b, &app, "anna", "/chat").await;
    // On the start page: a mention arrives, the navigation, the tile and the title show it.
    b.goto(&app.url("praxis-a", "/")).await.unwrap();
    wait_live(&b).await;
    js(&b, "window.__same = 'page'; return true;").await;
    post(&app, &bernd, room, "@anna kannst du bitte zurückrufen?").await;
    let seen = until(&b, COUNTS, json!(["1", "@1", "(1)"])).await;
    assert_eq!(seen, json!(["1", "@1", "(1)"]));
    let tile = js(&b, "return [document.querySelector('#tile-chat [data-count=unread]').textContent, document.querySelector('#tile-chat [data-count=mentions]').textContent, window.__same];").await;
    assert_eq!(tile, json!(["1", "1", "page"]));

    // On the search page: counted from the start, and live.
    b.goto(&app.url("praxis-a", "/search?q=Labor"))
        .await
        .unwrap();
    wait_live(&b).await;
    let seen = until(&b, COUNTS, json!(["1", "@1", "(1)"])).await;
    assert_eq!(seen, json!(["1", "@1", "(1)"]));
    post(&app, &bernd, room, "Ohne Erwähnung").await;
    post(&app, &bernd, room, "@anna noch eine").await;
    let seen = until(&b, COUNTS, json!(["3", "@2", "(3)"])).await;
    assert_eq!(seen, json!(["3", "@2", "(3)"]));
    // On "Mein Konto" (a page of the IdP, in the same shell): counted, and live.
    b.goto(&app.url("praxis-a", "/id/account")).await.unwrap();
    wait_live(&b).await;
    let seen = until(&b, COUNTS, json!(["3", "@2", "(3)"])).await;
    assert_eq!(seen, json!(["3", "@2", "(3)"]));
    post(&app, &bernd, room, "@anna auch hier?").await;
    let seen = until(&b, COUNTS, json!(["4", "@3", "(4)"])).await;
    assert_eq!(seen, json!(["4", "@3", "(4)"]));
    // Reading the room clears them, on the next page as well.
    b.goto(&app.url("praxis-a", &format!("/chat/{room}")))
        .await
        .unwrap();
    wait_live(&b).await;
    let seen = until(&b, COUNTS, json!([null, null, "Team"])).await;
    assert_eq!(seen, json!([null, null, "Team"]));
    b.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ended_session_keeps_the_draft_and_offers_to_sign_in_again() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    let anna = person(&app, "praxis-a", "anna", false).await;
    let room = new_room(&app, &anna, "Team", false, &[]).await;
    let d = driver().await;
    let b = browser(&d, "anna").await;
    sign_in(&b, &app, "anna", &format!("/chat/{room}")).await;
    wait_live(&b).await;
    let area = b.find(Locator::Css("#composer textarea")).await.unwrap();
    area.send_keys("Wichtiger Entwurf").await.unwrap();
    // The session ends (its cookies are gone), then she sends.
    b.delete_all_cookies().await.unwrap();
    area.send_keys(ENTER).await.unwrap();
    let shown = until(
        &b,
        "var s = document.getElementById('live-status'); var a = s.querySelector('a'); \
         return s.hidden ? null : [s.textContent.indexOf('Ihre Sitzung ist abgelaufen') >= 0, a ? a.textContent : null, a ? a.getAttribute('href') : null, document.querySelector('#composer textarea').value];",
        json!([
            true,
            "Neu anmelden",
            format!("/auth/login?next=%2Fchat%2F{room}"),
            "Wichtiger Entwurf"
        ]),
    )
    .await;
    assert_eq!(
        shown,
        json!([
            true,
            "Neu anmelden",
            format!("/auth/login?next=%2Fchat%2F{room}"),
            "Wichtiger Entwurf"
        ])
    );
    // Signing in again leads back to the room, with the draft in the box.
    b.find(Locator::Css("#live-status a"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    crate::browser::log_in(&b, "anna", CHAT_PW).await;
    b.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("#messages"))
        .await
        .unwrap();
    let draft = js(
        &b,
        "return document.querySelector('#composer textarea').value;",
    )
    .await;
    assert_eq!(draft, json!("Wichtiger Entwurf"));
    b.close().await.unwrap();
}
