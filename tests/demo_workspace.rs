//! `kollegium demo`: the demo practice's sample rooms and messages, and that a demo user's
//! first sign-in maps onto the member the seed created.

use diesel::prelude::*;

use crate::chat_notify::page;
use crate::harness::{TestApp, client};

const DEMO: &str = kollegium::demo::DEMO_SLUG;

/// The id of the room titled `title` in a chat list page.
fn room_id(list: &str, title: &str) -> Option<String> {
    list.split("<a href=\"/chat/")
        .skip(1)
        .find(|item| {
            item.split("</a>")
                .next()
                .is_some_and(|a| a.contains(&format!(" {title}</span>")))
        })
        .and_then(|item| item.split('"').next())
        .map(str::to_owned)
}

async fn members(app: &TestApp) -> Vec<(String, String)> {
    use kollegium_platform::schema::members as m;
    let tenant = app.tenant(DEMO);
    tokio::task::spawn_blocking(move || {
        let mut conn = tenant.conn(&kollegium_platform::PLATFORM_DB).unwrap();
        m::table
            .order(m::username)
            .select((m::username, m::sub))
            .load::<(String, String)>(&mut *conn)
            .unwrap()
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_users_find_their_rooms_and_messages() {
    let app = TestApp::spawn().await;
    let (argon2, store, web) = (
        app.config.idp.argon2,
        app.server().store.clone(),
        app.server().context.settings.clone(),
    );
    let created =
        tokio::task::spawn_blocking(move || kollegium::demo::ensure_demo(argon2, &store, &web))
            .await
            .unwrap()
            .unwrap();
    assert!(created);
    let seeded = members(&app).await;
    assert_eq!(
        seeded.iter().map(|(u, _)| u.as_str()).collect::<Vec<_>>(),
        ["abrechnung", "inhaber", "mfa"]
    );
    // Seeded with the subject the IdP issues.
    let idp_sub = app
        .idp_db(DEMO, |c| {
            kollegium_idp::users::by_login(c, "inhaber")
                .unwrap()
                .unwrap()
                .sub
        })
        .await;
    assert_eq!(seeded[1].1, idp_sub);

    let pw = kollegium_idp::demo::DEMO_PASSWORD;
    let inhaber = client();
    app.sign_in(&inhaber, DEMO, "inhaber", pw).await;
    assert_eq!(
        members(&app).await,
        seeded,
        "sign-in reused the seeded member"
    );
    let list = page(&app, &inhaber, DEMO, "/chat").await;
    let general = room_id(&list, "Allgemein").expect("Allgemein listed");
    let billing = room_id(&list, "Abrechnung").expect("Abrechnung listed");
    let direct = room_id(&list, "Mia Fachmann").expect("1:1 with the MFA listed");
    let html = page(&app, &inhaber, DEMO, &format!("/chat/{general}")).await;
    assert!(html.contains("neuen Sprechzeiten") && html.contains("Anrufbeantworter"));
    assert!(html.contains("<strong>vollständig</strong>"));
    let html = page(&app, &inhaber, DEMO, &format!("/chat/{billing}")).await;
    assert!(html.contains("Quartalsabrechnung ist vorbereitet"));
    let html = page(&app, &inhaber, DEMO, &format!("/chat/{direct}")).await;
    assert!(html.contains("Blutabnahmen"));
    // The start page counts what others wrote.
    let home = page(&app, &inhaber, DEMO, "/").await;
    assert!(home.contains("Guten Tag, Dr. Ines Inhaber"));
    // The owner's role has one name, in the shell as on the IdP's pages.
    let who = "<strong>Dr. Ines Inhaber</strong><span class=\"muted\">Praxisleitung";
    assert!(home.contains(who), "{home}");
    let account = page(&app, &inhaber, DEMO, "/id/account").await;
    assert!(account.contains(who), "{account}");
    assert!(!home.contains("Praxisinhaber") && !account.contains("Praxisinhaber"));

    let mfa = client();
    app.sign_in(&mfa, DEMO, "mfa", pw).await;
    let list = page(&app, &mfa, DEMO, "/chat").await;
    assert_eq!(room_id(&list, "Allgemein"), Some(general.clone()));
    assert_eq!(room_id(&list, "Dr. Ines Inhaber"), Some(direct.clone()));
    assert_eq!(
        room_id(&list, "Abrechnung"),
        None,
        "the billing room is private"
    );
    assert!(!list.contains(&format!("href=\"/chat/{billing}\"")));
    let r = mfa
        .get(app.url(DEMO, &format!("/chat/{billing}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let html = page(&app, &mfa, DEMO, &format!("/chat/{direct}")).await;
    assert!(html.contains("ab 7:30 Uhr"));

    let billing_clerk = client();
    app.sign_in(&billing_clerk, DEMO, "abrechnung", pw).await;
    let list = page(&app, &billing_clerk, DEMO, "/chat").await;
    assert_eq!(room_id(&list, "Abrechnung"), Some(billing));
    assert_eq!(members(&app).await, seeded, "no member was duplicated");
}
