//! Neuigkeiten in the rest of the workspace: the navigation's unread badge (its count from
//! `/api/news/unread`), news as a kind of the one search's filter, and the members' marks in
//! the practice export. Each per member and per practice.

use kollegium_tenants::broadcast::Audience;
use serde_json::Value;

use crate::apps::chat::Member;
use crate::broadcast::node;
use crate::harness::TestApp;
use crate::news::audience;

/// The member's unread count as the badge's script reads it.
async fn unread(m: &Member<'_>) -> i64 {
    let r = m.get_json("/api/news/unread").await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    v["unread"].as_i64().unwrap()
}

async fn kardio<'a>(app: &'a TestApp, slug: &str, user: &str) -> Member<'a> {
    app.member_with(slug, user, &["arzt"], Some("kardiologie"), Some("kv-wl"))
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_unread_badge_counts_each_members_own_unread_news() {
    let app = node().await;
    app.create_practice("praxis-a").await;
    app.create_practice("praxis-b").await;
    let arzt = kardio(&app, "praxis-a", "kardio").await;
    let mfa = app
        .member_with("praxis-a", "empfang", &["mfa"], None, Some("kv-wl"))
        .await;
    let arzt_b = kardio(&app, "praxis-b", "kardio").await;
    assert_eq!(unread(&arzt).await, 0);

    let all = app.publish("Für alle", Audience::default(), false).await;
    app.publish("Kardiologie", audience(&["kardiologie"], &[], &[]), false)
        .await;
    assert_eq!(unread(&arzt).await, 2);
    assert_eq!(unread(&mfa).await, 1, "only their audience counts");
    assert_eq!(unread(&arzt_b).await, 2);

    // Reading and hiding count down for that member only, in that practice only.
    let r = arzt.form("/news", &format!("/news/{all}/read"), &[]).await;
    assert_eq!(r.status(), 303);
    assert_eq!(unread(&arzt).await, 1);
    assert_eq!(unread(&mfa).await, 1);
    assert_eq!(unread(&arzt_b).await, 2, "praxis-b's marks are its own");

    // The script that keeps the badge comes with every signed-in page, once.
    for path in ["/chat", "/news", "/", "/search"] {
        let page = arzt.page(path).await;
        assert_eq!(page.matches("/static/news.").count(), 1, "{path}");
    }

    // Without a session, or with praxis-a's cookie at praxis-b: no count.
    for m in [app.anonymous("praxis-a"), arzt.at("praxis-b")] {
        let r = m.get_json("/api/news/unread").await;
        assert_eq!(r.status(), 401);
        let v: Value = r.json().await.unwrap();
        assert!(v.get("unread").is_none(), "{v}");
    }
    // Only GET.
    let r = arzt
        .client
        .post(arzt.url("/api/news/unread"))
        .send()
        .await
        .unwrap();
    assert!(
        [403, 404, 405].contains(&r.status().as_u16()),
        "{}",
        r.status()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_search_filter_offers_the_news_and_finds_only_the_members_own() {
    let app = node().await;
    app.create_practice("praxis-a").await;
    let arzt = kardio(&app, "praxis-a", "kardio").await;
    let mfa = app
        .member_with("praxis-a", "empfang", &["mfa"], None, None)
        .await;
    let for_all = app
        .publish("Telematik für alle", Audience::default(), false)
        .await;
    let only_kardio = app
        .publish(
            "Telematik Kardiologie",
            audience(&["kardiologie"], &[], &[]),
            false,
        )
        .await;

    let form = arzt.page("/search").await;
    assert!(
        form.contains("<option value=\"news\">Neuigkeiten</option>"),
        "{form}"
    );
    assert!(
        form.contains("Neuigkeiten)"),
        "the page says it searches the news"
    );

    let hits = arzt.page("/search?q=telematik&kind=news").await;
    assert!(hits.contains(&format!("/news/{for_all}")));
    assert!(hits.contains(&format!("/news/{only_kardio}")));
    assert!(hits.contains("<option value=\"news\" selected>"));
    let hits = mfa.page("/search?q=telematik&kind=news").await;
    assert!(hits.contains(&format!("/news/{for_all}")));
    assert!(
        !hits.contains(&format!("/news/{only_kardio}")),
        "not their audience"
    );
    // Another kind leaves the news out; an unknown kind is refused.
    let chat_only = arzt.page("/search?q=telematik&kind=chat-message").await;
    assert!(!chat_only.contains("/news/"));
    let r = arzt.get("/search?q=telematik&kind=nachrichten").await;
    assert_eq!(r.status(), 400);
    assert!(!r.text().await.unwrap().contains("/news/"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_practice_export_carries_each_members_marks_with_the_titles() {
    let app = node().await;
    app.create_practice("praxis-a").await;
    app.create_practice("praxis-b").await;
    let arzt = kardio(&app, "praxis-a", "kardio").await;
    let arzt_b = kardio(&app, "praxis-b", "kardio").await;
    let read = app
        .publish("Gelesene Nachricht", Audience::default(), false)
        .await;
    let hidden = app
        .publish("Ausgeblendete", Audience::default(), false)
        .await;
    app.publish("Unberührt", Audience::default(), false).await;
    assert_eq!(
        arzt.form("/news", &format!("/news/{read}/read"), &[])
            .await
            .status(),
        303
    );
    assert_eq!(
        arzt.form("/news", &format!("/news/{hidden}/hide"), &[])
            .await
            .status(),
        303
    );
    assert_eq!(
        arzt_b
            .form("/news", &format!("/news/{hidden}/read"), &[])
            .await
            .status(),
        303
    );

    let export = |slug: &str| {
        let parts = app.export(slug);
        parts.into_iter().find(|p| p.app == "news").unwrap()
    };
    let a = export("praxis-a");
    let marks: Vec<(String, String, String, bool, bool)> = a.json["marks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["member"].as_str().unwrap().to_owned(),
                m["message_id"].as_str().unwrap().to_owned(),
                m["title"].as_str().unwrap().to_owned(),
                m["read"].as_bool().unwrap(),
                m["hidden"].as_bool().unwrap(),
            )
        })
        .collect();
    let mut want = vec![
        (
            "kardio".to_owned(),
            read.clone(),
            "Gelesene Nachricht".to_owned(),
            true,
            false,
        ),
        (
            "kardio".to_owned(),
            hidden.clone(),
            "Ausgeblendete".to_owned(),
            true,
            true,
        ),
    ];
    want.sort_by(|x, y| x.1.cmp(&y.1));
    assert_eq!(marks, want);
    assert!(a.readable.contains("Ausgeblendete") && a.readable.contains("gelesen, ausgeblendet"));
    assert!(!a.readable.contains("Unberührt"), "no marks, not exported");
    // praxis-b's export has its own member's mark only.
    let b = export("praxis-b");
    assert_eq!(b.json["marks"].as_array().unwrap().len(), 1);
    assert_eq!(b.json["marks"][0]["hidden"], false);
}
