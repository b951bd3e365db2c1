//! Neuigkeiten end to end: the operator publishes through the library, the node syncs, and
//! every member sees exactly the messages whose audience matches their claims, on `/news`
//! and on the start page's tile; read and hidden marks are per member and per practice and
//! leave no trace outside the practice's `platform.sqlite`.

use std::time::Duration;

use kollegium_tenants::broadcast::{Audience, Draft};

use crate::apps::chat::Member;
use crate::broadcast::{FakeFeed, message, node, node_of, own_key, round, signed};
use reqwest::cookie::CookieStore;

use crate::harness::{CHAT_PW, TestApp, client, client_with_jar, raw_client};

impl TestApp {
    /// A member of `slug` with these claims, signed in in a fresh browser.
    pub(crate) async fn member_with(
        &self,
        slug: &str,
        user: &str,
        roles: &[&str],
        specialty: Option<&str>,
        kv_region: Option<&str>,
    ) -> Member<'_> {
        let profile = kollegium_idp::users::Profile {
            roles: roles.iter().map(|r| (*r).to_owned()).collect(),
            specialty: specialty.map(str::to_owned),
            kv_region: kv_region.map(str::to_owned),
            ..kollegium_idp::users::Profile::default()
        };
        self.create_user_with(slug, user, CHAT_PW, profile).await;
        let c = client();
        self.sign_in(&c, slug, user, CHAT_PW).await;
        Member {
            app: self,
            slug: slug.to_owned(),
            client: c,
        }
    }

    /// Publishes a message as this node's own operator and lets the node sync it; returns
    /// its id.
    pub(crate) async fn publish(&self, title: &str, audience: Audience, pinned: bool) -> String {
        self.publish_draft(Draft {
            title: title.into(),
            body: "Bitte **bis Freitag** beachten.".into(),
            audience,
            pinned,
            valid_until: None,
        })
        .await
    }

    pub(crate) async fn publish_draft(&self, draft: Draft) -> String {
        let key = own_key(self);
        let entry = self
            .server()
            .operator_feed
            .publish(&key, draft, self.clock.now())
            .unwrap();
        round(self).await.unwrap();
        let v: serde_json::Value = serde_json::from_str(&entry.payload).unwrap();
        v["id"].as_str().unwrap().to_owned()
    }

    pub(crate) async fn withdraw(&self, id: &str) {
        let key = own_key(self);
        self.server()
            .operator_feed
            .withdraw(&key, id, self.clock.now())
            .unwrap();
        round(self).await.unwrap();
    }
}

pub(crate) fn audience(specialties: &[&str], roles: &[&str], kv_regions: &[&str]) -> Audience {
    let v = |s: &[&str]| s.iter().map(|x| (*x).to_owned()).collect();
    Audience {
        specialties: v(specialties),
        roles: v(roles),
        kv_regions: v(kv_regions),
    }
}

/// The titles on a news page, in order, each with whether it is marked unread.
pub(crate) fn listed(html: &str) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    for part in html.split("<article class=\"card news-item").skip(1) {
        let unread = part.starts_with(" news-unread");
        let title = part
            .split("<h2 id=\"news-title-")
            .nth(1)
            .and_then(|h| h.split("\">").nth(2))
            .and_then(|t| t.split("</a>").next())
            .unwrap_or_default();
        out.push((title.to_owned(), unread));
    }
    out
}

pub(crate) fn titles(html: &str) -> Vec<String> {
    listed(html).into_iter().map(|(t, _)| t).collect()
}

/// The start page's news tile: its unread count (0 when it says there are none) and text.
pub(crate) async fn tile(m: &Member<'_>) -> (usize, String) {
    let html = m.page("/").await;
    let start = html.find("id=\"tile-news\"").expect("the news tile");
    let tile = &html[start..start + html[start..].find("</a>").unwrap()];
    let count = tile
        .split("data-count=\"news-unread\">")
        .nth(1)
        .and_then(|s| s.split('<').next())
        .map_or(0, |n| n.parse().unwrap());
    (count, tile.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_member_sees_exactly_their_selection_and_keeps_their_own_marks() {
    let app = node().await;
    app.create_practice("praxis-a").await;
    let arzt = app
        .member_with(
            "praxis-a",
            "kardio",
            &["arzt"],
            Some("kardiologie"),
            Some("kv-wl"),
        )
        .await;
    let mfa = app
        .member_with("praxis-a", "empfang", &["mfa"], None, Some("kv-wl"))
        .await;
    let abr = app
        .member_with(
            "praxis-a",
            "kasse",
            &["abrechnung"],
            Some("allgemeinmedizin"),
            Some("kv-bayerns"),
        )
        .await;
    assert_eq!(tile(&arzt).await.0, 0);
    assert!(
        arzt.page("/news")
            .await
            .contains("Keine Neuigkeiten für Sie.")
    );

    let all = app
        .publish("Für alle: Wartung am Samstag", Audience::default(), true)
        .await;
    let kardio = app
        .publish(
            "Kardiologie-Leitlinie",
            audience(&["kardiologie"], &[], &[]),
            false,
        )
        .await;
    let wl = app
        .publish(
            "Westfalen-Lippe: Quartal",
            audience(&[], &[], &["kv-wl"]),
            false,
        )
        .await;
    app.publish(
        "Bayern: Abrechnungsfrist",
        audience(&[], &["abrechnung"], &["kv-bayerns"]),
        false,
    )
    .await;

    // Pinned first, then the newest; each sees only their selection, all unread.
    let page = arzt.page("/news").await;
    assert_eq!(
        titles(&page),
        [
            "Für alle: Wartung am Samstag",
            "Westfalen-Lippe: Quartal",
            "Kardiologie-Leitlinie"
        ]
    );
    assert!(listed(&page).iter().all(|(_, unread)| *unread));
    assert!(
        page.contains("<strong>bis Freitag</strong>"),
        "Markdown rendered"
    );
    assert_eq!(
        titles(&mfa.page("/news").await),
        ["Für alle: Wartung am Samstag", "Westfalen-Lippe: Quartal"]
    );
    assert_eq!(
        titles(&abr.page("/news").await),
        ["Für alle: Wartung am Samstag", "Bayern: Abrechnungsfrist"]
    );
    let (n, t) = tile(&arzt).await;
    assert_eq!(n, 3);
    assert!(t.contains("Für alle: Wartung am Samstag") && t.contains("Kardiologie-Leitlinie"));
    let (n, t) = tile(&mfa).await;
    assert_eq!(n, 2);
    assert!(!t.contains("Kardiologie") && !t.contains("Bayern"), "{t}");
    // Another audience's message does not exist for them.
    assert_eq!(mfa.status(&format!("/news/{kardio}")).await, 404);
    let r = mfa
        .form("/news", &format!("/news/{kardio}/read"), &[])
        .await;
    assert_eq!(r.status(), 404);

    // "Als gelesen markieren": read for the Arzt only.
    let r = arzt
        .form("/news", &format!("/news/{kardio}/read"), &[])
        .await;
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/news?done=read");
    let read: Vec<_> = listed(&arzt.page("/news").await);
    assert!(
        read.contains(&("Kardiologie-Leitlinie".to_owned(), false)),
        "{read:?}"
    );
    assert_eq!(tile(&arzt).await.0, 2);

    // "Ausblenden": gone from the Arzt's list, shown under the hidden ones, restorable;
    // the MFA still sees it, unread.
    let r = arzt.form("/news", &format!("/news/{wl}/hide"), &[]).await;
    assert_eq!(r.status(), 303);
    let page = arzt.page("/news").await;
    assert!(!titles(&page).contains(&"Westfalen-Lippe: Quartal".to_owned()));
    assert!(page.contains("Ausgeblendete anzeigen (1)"));
    assert_eq!(
        titles(&arzt.page("/news?hidden=1").await),
        ["Westfalen-Lippe: Quartal"]
    );
    assert_eq!(tile(&arzt).await.0, 1, "hidden counts as read");
    assert!(
        listed(&mfa.page("/news").await).contains(&("Westfalen-Lippe: Quartal".to_owned(), true))
    );
    let r = arzt
        .form("/news?hidden=1", &format!("/news/{wl}/restore"), &[])
        .await;
    assert_eq!(r.status(), 303);
    assert!(titles(&arzt.page("/news").await).contains(&"Westfalen-Lippe: Quartal".to_owned()));

    // Opening a message marks it read.
    assert_eq!(tile(&mfa).await.0, 2);
    let detail = mfa.page(&format!("/news/{all}")).await;
    assert!(detail.contains("Für alle: Wartung am Samstag"));
    assert_eq!(tile(&mfa).await.0, 1);
    assert_eq!(tile(&abr).await.0, 2, "the others' marks are theirs");

    // Withdrawn: gone for everyone, its URL too.
    app.withdraw(&wl).await;
    assert_eq!(
        titles(&mfa.page("/news").await),
        ["Für alle: Wartung am Samstag"]
    );
    assert_eq!(mfa.status(&format!("/news/{wl}")).await, 404);
    assert_eq!(tile(&mfa).await.0, 0);

    // Expired: gone once its time has passed.
    let now = app.clock.now();
    let short = app
        .publish_draft(Draft {
            title: "Nur kurz gültig".into(),
            body: "Heute.".into(),
            valid_until: Some(now + 2),
            ..Draft::default()
        })
        .await;
    assert!(titles(&abr.page("/news").await).contains(&"Nur kurz gültig".to_owned()));
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(!titles(&abr.page("/news").await).contains(&"Nur kurz gültig".to_owned()));
    assert_eq!(abr.status(&format!("/news/{short}")).await, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn news_requests_that_are_not_a_members_are_refused() {
    let app = node().await;
    app.create_practice("praxis-a").await;
    let id = app.publish("Für alle", Audience::default(), false).await;
    let anna = app.member("praxis-a", "anna", false).await;
    let anon = app.anonymous("praxis-a");

    // Unauthenticated: sent to sign in; posting does nothing.
    let r = anon.get("/news").await;
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/auth/login?next=%2Fnews");
    assert_eq!(anon.status(&format!("/news/{id}")).await, 303);
    assert_ne!(
        anon.post_without_token(&format!("/news/{id}/read"), &[])
            .await,
        303
    );
    // Without a CSRF token: refused, nothing marked.
    for what in ["read", "hide", "restore"] {
        assert_eq!(
            anna.post_without_token(&format!("/news/{id}/{what}"), &[])
                .await,
            403,
            "{what}"
        );
    }
    assert_eq!(
        listed(&anna.page("/news").await),
        [("Für alle".to_owned(), true)]
    );
    // Unknown and malformed ids, unknown actions: not found.
    let unknown = "0123456789abcdef0123456789abcdef";
    assert_eq!(anna.status(&format!("/news/{unknown}")).await, 404);
    let r = anna
        .form("/news", &format!("/news/{unknown}/read"), &[])
        .await;
    assert_eq!(r.status(), 404);
    for bad in ["xyz", "0123456789ABCDEF0123456789ABCDEF", "%00", "1"] {
        assert_eq!(anna.status(&format!("/news/{bad}")).await, 404, "{bad}");
    }
    let r = anna.form("/news", &format!("/news/{id}/delete"), &[]).await;
    assert_eq!(r.status(), 404);
    // Oversized form: refused, nothing marked.
    let big = "a".repeat(1024 * 1024);
    let r = anna
        .form("/news", &format!("/news/{id}/read"), &[("x", &big)])
        .await;
    assert_eq!(r.status(), 413);
    assert_eq!(
        listed(&anna.page("/news").await),
        [("Für alle".to_owned(), true)]
    );
}

/// Every byte of a database file and its WAL, as text where it is UTF-8.
pub(crate) fn raw(path: &std::path::Path) -> String {
    let mut out = String::new();
    for p in [path.to_path_buf(), path.with_extension("sqlite-wal")] {
        if let Ok(bytes) = std::fs::read(&p) {
            out.push_str(&String::from_utf8_lossy(&bytes));
        }
    }
    out
}

/// The rows of the practice's `news_state`: (member username, message id, read, hidden).
pub(crate) async fn states(app: &TestApp, slug: &str) -> Vec<(String, String, bool, bool)> {
    use diesel::prelude::*;
    let t = app.tenant(slug);
    tokio::task::spawn_blocking(move || {
        let mut c = t.conn(&kollegium_platform::PLATFORM_DB).unwrap();
        diesel::sql_query(
            "SELECT m.username AS who, s.message_id AS id, s.read_at IS NOT NULL AS r, \
             s.dismissed_at IS NOT NULL AS d FROM news_state s JOIN members m ON m.id = s.member_id \
             ORDER BY m.username, s.message_id",
        )
        .load::<StateRow>(&mut *c)
        .unwrap()
        .into_iter()
        .map(|s| (s.who, s.id, s.r, s.d))
        .collect::<Vec<_>>()
    })
    .await
    .unwrap()
}

#[derive(diesel::QueryableByName)]
struct StateRow {
    #[diesel(sql_type = diesel::sql_types::Text)]
    who: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    id: String,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    r: bool,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    d: bool,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn marks_stay_in_the_practice_and_nothing_of_them_leaves_it() {
    let feed = FakeFeed::start();
    let operator = kollegium_tenants::broadcast::OperatorKey::generate();
    let app = node_of(&feed, &operator).await;
    app.create_practice("praxis-nord").await;
    app.create_practice("praxis-sued").await;
    let first = message(1, "Hinweis für alle", Audience::default());
    let second = message(2, "Zweiter Hinweis", Audience::default());
    let id_of = |p: &kollegium_tenants::broadcast::Payload| match &p.item {
        kollegium_tenants::broadcast::entry::Item::Message(m) => m.id.to_string(),
        kollegium_tenants::broadcast::entry::Item::Retraction(_) => unreachable!(),
    };
    let (one, two) = (id_of(&first), id_of(&second));
    feed.serve(vec![signed(&operator, &first), signed(&operator, &second)]);
    round(&app).await.unwrap();

    let nord = app.member("praxis-nord", "hannelore", false).await;
    app.create_user("praxis-sued", "wilhelmine", CHAT_PW, false)
        .await;
    let (c, jar) = client_with_jar();
    app.sign_in(&c, "praxis-sued", "wilhelmine", CHAT_PW).await;
    let sued = Member {
        app: &app,
        slug: "praxis-sued".into(),
        client: c,
    };
    // B (Süd) reads and hides: only B's platform.sqlite changes.
    let r = sued.form("/news", &format!("/news/{one}/read"), &[]).await;
    assert_eq!(r.status(), 303);
    let r = sued.form("/news", &format!("/news/{two}/hide"), &[]).await;
    assert_eq!(r.status(), 303);
    assert!(states(&app, "praxis-nord").await.is_empty());
    let b = states(&app, "praxis-sued").await;
    let mut want = vec![
        ("wilhelmine".to_owned(), one.clone(), true, false),
        ("wilhelmine".to_owned(), two.clone(), true, true),
    ];
    want.sort();
    assert_eq!(b, want);
    assert_eq!(tile(&nord).await.0, 2, "A's member still has both unread");
    // B's browser at A's address is no member there, nor is B's cookie sent by hand.
    assert_eq!(sued.at("praxis-nord").status("/news").await, 303);
    let url = reqwest::Url::parse(&app.url("praxis-sued", "/")).unwrap();
    let cookies = jar.cookies(&url).expect("B's session cookies");
    let r = raw_client()
        .get(app.url("praxis-nord", "/news"))
        .header("cookie", cookies)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "B's session is worthless at A");
    // A reads too; then the node syncs again.
    let r = nord.form("/news", &format!("/news/{one}/hide"), &[]).await;
    assert_eq!(r.status(), 303);
    assert!(
        nord.page(&format!("/news/{two}"))
            .await
            .contains("Zweiter Hinweis")
    );
    assert_eq!(states(&app, "praxis-nord").await.len(), 2);
    assert_eq!(
        states(&app, "praxis-sued").await,
        b,
        "A's marks are not B's"
    );
    round(&app).await.unwrap();

    // Nothing of the practices, their members or their marks outside their databases.
    let data = app.data_dir();
    let needles = ["praxis-nord", "praxis-sued", "hannelore", "wilhelmine"];
    for file in ["operator.sqlite", "broadcasts.sqlite"] {
        let text = raw(&data.join(file));
        for n in needles {
            assert!(!text.contains(n), "{n} in {file}");
        }
    }
    let registry = raw(&data.join("registry.sqlite"));
    for n in ["hannelore", "wilhelmine", "news_state", &one, &two] {
        assert!(!registry.contains(n), "{n} in registry.sqlite");
    }
    for (uri, headers) in feed.state.seen.lock().unwrap().iter() {
        let all = format!("{uri} {headers:?}");
        for n in needles {
            assert!(!all.contains(n), "{n} in a feed request: {all}");
        }
        assert!(!all.contains(&one) && !all.contains(&two), "{all}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_members_see_what_the_readme_says() {
    let app = node().await;
    assert!(crate::demo_workspace::seed_demo(&app).await);
    kollegium::demo::ensure_demo_broadcasts(&app.config, app.clock.now()).unwrap();
    round(&app).await.unwrap();
    let welcome = "Willkommen bei den Neuigkeiten";
    let kv = "KV Nordrhein: Abgabefrist der Quartalsabrechnung";
    let tip = "Abrechnungstipp: Chronikerpauschale";
    let expected: [(&str, &[&str]); 3] = [
        ("inhaber", &[welcome, kv]),
        ("mfa", &[welcome]),
        ("abrechnung", &[welcome, kv, tip]),
    ];
    for (user, titles_seen) in expected {
        let m = app
            .member_signing_in(
                kollegium::demo::DEMO_SLUG,
                user,
                kollegium_idp::demo::DEMO_PASSWORD,
            )
            .await;
        let mut got = titles(&m.page("/news").await);
        assert_eq!(got.remove(0), welcome, "{user}: the pinned welcome on top");
        got.sort();
        let mut want: Vec<String> = titles_seen[1..].iter().map(|t| (*t).to_owned()).collect();
        want.sort();
        assert_eq!(got, want, "{user}");
        assert_eq!(tile(&m).await.0, titles_seen.len(), "{user}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_message_is_announced_live_without_content_and_the_page_shows_it() {
    use crate::apps::chat_api::{expect, member_socket, next_event, person};
    let app = node().await;
    app.create_practice("praxis-a").await;
    app.create_practice("praxis-b").await;
    let anna = person(&app, "praxis-a", "anna", false).await;
    let bernd = person(&app, "praxis-a", "bernd", false).await;
    let olga = person(&app, "praxis-b", "olga", false).await;
    let mut a = member_socket(&app, &anna).await;
    let mut b = member_socket(&app, &bernd).await;
    let mut o = member_socket(&app, &olga).await;

    let id = app
        .publish(
            "Neu: Telematik-Update",
            audience(&[], &["arzt"], &[]),
            false,
        )
        .await;
    // Every open page hears that the news changed, in every practice, and nothing more:
    // not the title, not the id, not whom it is for.
    for s in [&mut a, &mut b, &mut o] {
        let ev = expect(s, "news.changed").await;
        assert_eq!(ev, serde_json::json!({"type": "news.changed"}));
    }
    // The page then fetches what the member may see: not this one (for Ärzt:innen).
    assert!(!anna.page(&app, "/news").await.contains("Telematik"));
    let id2 = app
        .publish("Für alle: Praxis-Update", Audience::default(), false)
        .await;
    expect(&mut a, "news.changed").await;
    expect(&mut b, "news.changed").await;
    let page = anna.page(&app, "/news").await;
    assert!(page.contains("Für alle: Praxis-Update") && !page.contains(&id));
    // Anna marking it read tells her own pages, not Bernd's.
    let r = anna
        .send_form(&app, &format!("/news/{id2}/read"), &[])
        .await;
    assert_eq!(r.status(), 303);
    expect(&mut a, "news.changed").await;
    while let Some(ev) = next_event(&mut b, Duration::from_millis(300)).await {
        assert_ne!(ev["type"], "news.changed", "Anna's marks are hers");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_one_search_finds_only_the_messages_a_member_may_see() {
    let app = node().await;
    app.create_practice("praxis-a").await;
    let arzt = app
        .member_with("praxis-a", "kardio", &["arzt"], Some("kardiologie"), None)
        .await;
    let mfa = app.member("praxis-a", "empfang", false).await;
    let kardio = app
        .publish(
            "Leitlinie Vorhofflimmern",
            audience(&["kardiologie"], &[], &[]),
            false,
        )
        .await;
    let all = app
        .publish("Wartung der Telematik", Audience::default(), false)
        .await;
    let hits = arzt.page("/search?q=vorhofflimmern").await;
    assert!(hits.contains(&format!("href=\"/news/{kardio}\"")), "{hits}");
    assert!(hits.contains("Neuigkeiten"));
    let hits = mfa.page("/search?q=vorhofflimmern").await;
    assert!(
        !hits.contains("/news/") && !hits.contains("Leitlinie"),
        "{hits}"
    );
    // Every word must match; the body counts too.
    let hits = mfa.page("/search?q=telematik+freitag").await;
    assert!(hits.contains(&format!("href=\"/news/{all}\"")), "{hits}");
    assert!(hits.contains("<mark>Freitag**</mark>"), "{hits}");
    let hits = mfa.page("/search?q=telematik+samstag").await;
    assert!(!hits.contains("/news/"), "{hits}");
    // Withdrawn: no longer found.
    app.withdraw(&all).await;
    assert!(!mfa.page("/search?q=telematik").await.contains("/news/"));
}
