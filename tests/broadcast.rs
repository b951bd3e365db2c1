//! Signed broadcasts end to end: the operator publishes (library and CLI), the node syncs
//! from the feed, verifies and stores; a tampered or absent feed changes nothing; the feed
//! request says nothing about the node's practices; `/feed` answers everyone the same.

use std::net::TcpListener;
use std::sync::Mutex;
use std::time::Duration;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use kollegium_tenants::broadcast::entry::{Item, MessagePayload, Payload};
use kollegium_tenants::broadcast::sync::{RoundReport, SyncError, USER_AGENT};
use kollegium_tenants::broadcast::{Audience, Draft, Entry, MessageId, OperatorKey, Refusal};

use crate::harness::{TestApp, cli_in, raw_client, stderr, stdout};

/// Requests a fake feed saw: path and query, and the headers.
pub(crate) type Seen = Vec<(String, Vec<(String, String)>)>;

/// What the fake feed server serves and what it saw.
#[derive(Default)]
pub(crate) struct FeedState {
    /// Served after `after` (by their `seq`), as one page.
    entries: Mutex<Vec<serde_json::Value>>,
    /// Served verbatim instead, when set (replays, garbage).
    raw: Mutex<Option<String>>,
    /// Every request: its path and query, and its headers.
    pub(crate) seen: Mutex<Seen>,
}

async fn fake_feed(req: HttpRequest, state: web::Data<FeedState>) -> HttpResponse {
    let headers = req
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
        .collect();
    state
        .seen
        .lock()
        .unwrap()
        .push((req.uri().to_string(), headers));
    if let Some(raw) = state.raw.lock().unwrap().clone() {
        return HttpResponse::Ok()
            .content_type("application/json")
            .body(raw);
    }
    let after: i64 = req
        .query_string()
        .split('&')
        .find_map(|kv| kv.strip_prefix("after="))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let entries: Vec<_> = state
        .entries
        .lock()
        .unwrap()
        .iter()
        .filter(|e| e["seq"].as_i64().is_none_or(|s| s > after))
        .cloned()
        .collect();
    HttpResponse::Ok().json(serde_json::json!({"entries": entries, "next": null}))
}

/// A feed server of the test's own on loopback (a tampering or vanishing operator side).
pub(crate) struct FakeFeed {
    pub(crate) state: web::Data<FeedState>,
    port: u16,
    handle: Option<actix_web::dev::ServerHandle>,
}

impl FakeFeed {
    pub(crate) fn start() -> Self {
        let mut f = Self {
            state: web::Data::new(FeedState::default()),
            port: 0,
            handle: None,
        };
        f.listen(TcpListener::bind("127.0.0.1:0").unwrap());
        f
    }

    fn listen(&mut self, listener: TcpListener) {
        self.port = listener.local_addr().unwrap().port();
        let state = self.state.clone();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .route("/feed", web::get().to(fake_feed))
        })
        // No kept-alive connection the node could still be served on once the test stops it.
        .keep_alive(actix_web::http::KeepAlive::Disabled)
        .listen(listener)
        .unwrap()
        .workers(1)
        .disable_signals()
        .run();
        self.handle = Some(server.handle());
        tokio::spawn(server);
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/feed", self.port)
    }

    /// Stops the server and waits until its port refuses connections (a non-graceful stop
    /// returns before the accept thread has closed the listener).
    async fn stop(&mut self) {
        if let Some(h) = self.handle.take() {
            h.stop(false).await;
        }
        for _ in 0..500 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the fake feed still accepts connections after stopping");
    }

    /// Listens again on the same port.
    fn resume(&mut self) {
        self.listen(TcpListener::bind(("127.0.0.1", self.port)).unwrap());
    }

    pub(crate) fn serve(&self, entries: Vec<serde_json::Value>) {
        *self.entries_mut() = entries;
        *self.state.raw.lock().unwrap() = None;
    }

    fn entries_mut(&self) -> std::sync::MutexGuard<'_, Vec<serde_json::Value>> {
        self.state.entries.lock().unwrap()
    }

    fn serve_raw(&self, body: String) {
        *self.state.raw.lock().unwrap() = Some(body);
    }
}

/// Waits for the round the node runs at start, so the test's own rounds do not race it.
pub(crate) async fn after_start_round(app: TestApp) -> TestApp {
    let syncer = app.server().broadcast_sync.syncer().clone();
    for _ in 0..500 {
        if syncer.rounds() > 0 {
            return app;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no sync round at start");
}

/// A node that is its own operator; after its first round it syncs when a test says so.
pub(crate) async fn node() -> TestApp {
    after_start_round(TestApp::spawn_with(|c| c.broadcast.sync_interval_secs = 3600).await).await
}

/// A node that syncs from `feed` and trusts `key`; after its first round it syncs only
/// when a test says so.
pub(crate) async fn node_of(feed: &FakeFeed, key: &OperatorKey) -> TestApp {
    let url = feed.url();
    let public = key.public().to_base64();
    let app = TestApp::spawn_with(move |c| {
        c.broadcast.feed_url = Some(url);
        c.broadcast.public_key = Some(public);
        c.broadcast.sync_interval_secs = 3600;
    })
    .await;
    after_start_round(app).await
}

pub(crate) async fn round(app: &TestApp) -> Result<RoundReport, SyncError> {
    app.server().broadcast_sync.syncer().round().await
}

pub(crate) fn message(seq: i64, title: &str, audience: Audience) -> Payload {
    Payload {
        seq,
        item: Item::Message(MessagePayload {
            id: MessageId::random(),
            published_at: 1_800_000_000 + seq,
            valid_until: None,
            title: title.into(),
            body: "Neu ab Januar: **GOP 03230**.".into(),
            pinned: false,
            audience,
        }),
    }
}

pub(crate) fn signed(key: &OperatorKey, p: &Payload) -> serde_json::Value {
    serde_json::to_value(Entry::sign(key, p).unwrap()).unwrap()
}

fn draft(title: &str) -> Draft {
    Draft {
        title: title.into(),
        body: "Bitte **bis Freitag** einreichen.".into(),
        ..Draft::default()
    }
}

/// This node's own operator key (it is the operator too: no public key configured).
pub(crate) fn own_key(app: &TestApp) -> OperatorKey {
    OperatorKey::load_or_create(&OperatorKey::default_path(&app.data_dir())).unwrap()
}

fn titles(app: &TestApp) -> Vec<String> {
    let now = app.clock.now();
    app.server()
        .broadcasts
        .active(now)
        .unwrap()
        .into_iter()
        .map(|m| m.title)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn published_messages_reach_the_node_and_withdrawals_follow() {
    let mut app = node().await;
    let key = own_key(&app);
    let now = app.clock.now();
    let feed = app.server().operator_feed.clone();
    let entry = feed.publish(&key, draft("Quartalsende"), now).unwrap();
    let Item::Message(m) = entry.verify(&key.public()).unwrap().item else {
        panic!("a message")
    };
    let report = round(&app).await.unwrap();
    assert_eq!((report.stored, report.last_seq), (1, 1));
    assert!(report.refused.is_none());
    assert_eq!(titles(&app), ["Quartalsende"]);
    assert!(app.data_dir().join("broadcasts.sqlite").exists());
    // The node keeps one copy, not one per practice.
    app.create_practice("praxis-a").await;
    assert!(
        crate::harness::files_under(&app.data_dir().join("tenants"))
            .iter()
            .all(|p| !p.ends_with("broadcasts.sqlite"))
    );

    feed.withdraw(&key, m.id.as_str(), now + 5).unwrap();
    assert_eq!(round(&app).await.unwrap().stored, 1);
    assert!(titles(&app).is_empty());
    let gone = app.server().broadcasts.get(m.id.as_str()).unwrap().unwrap();
    assert_eq!(gone.withdrawn_at, Some(now + 5));

    // A node syncs at start by itself.
    feed.publish(&key, draft("Nach dem Neustart"), now).unwrap();
    app.restart().await;
    let mut changes = app.server().broadcasts.changes();
    tokio::time::timeout(Duration::from_secs(10), changes.wait_for(|seq| *seq == 3))
        .await
        .expect("synced at start")
        .unwrap();
    assert_eq!(titles(&app), ["Nach dem Neustart"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_publishes_lists_and_withdraws() {
    let app = node().await;
    let data = app.data_dir();
    let run = |args: &[&str]| cli_in(&data, args, &[]);
    let body = data.parent().unwrap().join("tipp.md");
    std::fs::write(&body, "Die **Chronikerpauschale** braucht zwei Kontakte.").unwrap();
    let body = body.to_str().unwrap();

    let out = run(&["news", "public-key"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), own_key(&app).public().to_base64());

    let out = run(&[
        "news",
        "publish",
        "--title",
        "Abrechnungstipp",
        "--body-file",
        body,
        "--role",
        "abrechnung",
        "--kv-region",
        "kv-nordrhein",
        "--valid-until",
        "2099-12-31",
        "--pinned",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let id = stdout(&out).trim().to_owned();
    assert!(MessageId::parse(&id).is_ok(), "prints the id: {id}");

    // Refused before anything is signed: unknown ids (named), a past date, a missing file.
    let out = run(&[
        "news",
        "publish",
        "--title",
        "X",
        "--body-file",
        body,
        "--kv-region",
        "kv-mond",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("\"kv-mond\""), "{}", stderr(&out));
    let out = run(&[
        "news",
        "publish",
        "--title",
        "X",
        "--body-file",
        body,
        "--valid-until",
        "2001-01-01",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("future"), "{}", stderr(&out));
    let out = run(&[
        "news",
        "publish",
        "--title",
        "X",
        "--body-file",
        "/nonexistent.md",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let big = data.parent().unwrap().join("gross.md");
    std::fs::write(&big, "x".repeat(20_001)).unwrap();
    let out = run(&[
        "news",
        "publish",
        "--title",
        "X",
        "--body-file",
        big.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("20000"), "{}", stderr(&out));

    let out = run(&["news", "list"]);
    let list = stdout(&out);
    assert!(
        list.contains(&id) && list.contains("Abrechnungstipp"),
        "{list}"
    );
    assert!(list.contains("role=abrechnung kv=kv-nordrhein"), "{list}");
    assert_eq!(list.lines().count(), 2, "one message: {list}");

    let report = round(&app).await.unwrap();
    assert_eq!(report.stored, 1);
    let m = app.server().broadcasts.get(&id).unwrap().unwrap();
    assert!(m.pinned);
    assert_eq!(m.audience.roles, ["abrechnung"]);
    // Valid through 31 December 2099 in Berlin.
    assert_eq!(m.valid_until, Some(4_102_441_200));

    let out = run(&["news", "withdraw", &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = run(&["news", "withdraw", &id]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("already withdrawn"));
    let out = run(&["news", "list", "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(json[0]["withdrawn_at"].is_i64(), "{json}");
    round(&app).await.unwrap();
    assert!(titles(&app).is_empty());

    // Both commands are in the operator audit log as the command line's, with the message id
    // only; the refused publications are not.
    let mut conn = kollegium::operator::open_db(&data).unwrap();
    let (log, _) = kollegium::operator::audit::page(&mut conn, None).unwrap();
    let news: Vec<_> = log
        .iter()
        .filter(|e| e.action.starts_with("news."))
        .map(|e| (e.who.as_str(), e.action.as_str(), e.subject.as_str()))
        .collect();
    let cli = kollegium::operator::audit::CLI;
    assert_eq!(
        news,
        [
            (cli, "news.withdraw", id.as_str()),
            (cli, "news.publish", id.as_str())
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_feeds_are_refused_recorded_and_change_nothing() {
    let feed = FakeFeed::start();
    let operator = OperatorKey::generate();
    let app = node_of(&feed, &operator).await;
    let broadcasts = app.server().broadcasts.clone();
    let reason = |r: RoundReport| r.refused.map(|(_, why)| why).expect("refused");

    // Signed by another key.
    let forger = OperatorKey::generate();
    feed.serve(vec![signed(
        &forger,
        &message(1, "Gefälscht", Audience::default()),
    )]);
    assert_eq!(reason(round(&app).await.unwrap()), Refusal::BadSignature);
    // The operator's entry with its audience widened after signing.
    let mut altered = Entry::sign(
        &operator,
        &message(
            1,
            "Nur Abrechnung",
            Audience {
                roles: vec!["abrechnung".into()],
                ..Audience::default()
            },
        ),
    )
    .unwrap();
    altered.payload = altered.payload.replace("[\"abrechnung\"]", "[]");
    feed.serve(vec![serde_json::to_value(&altered).unwrap()]);
    assert_eq!(reason(round(&app).await.unwrap()), Refusal::BadSignature);
    // Unknown catalogue id, properly signed.
    feed.serve(vec![signed(
        &operator,
        &message(
            1,
            "Mond",
            Audience {
                kv_regions: vec!["kv-mond".into()],
                ..Audience::default()
            },
        ),
    )]);
    assert!(
        reason(round(&app).await.unwrap())
            .to_string()
            .contains("kv-mond")
    );
    // A gap.
    feed.serve(vec![signed(
        &operator,
        &message(2, "Zu früh", Audience::default()),
    )]);
    assert!(matches!(
        reason(round(&app).await.unwrap()),
        Refusal::OutOfOrder {
            seq: 2,
            expected: 1
        }
    ));
    // Not the feed's JSON at all.
    feed.serve_raw("<html>Wartung</html>".into());
    assert!(matches!(
        reason(round(&app).await.unwrap()),
        Refusal::MalformedPage(_)
    ));
    assert!(broadcasts.all().unwrap().is_empty(), "nothing stored");
    assert_eq!(broadcasts.last_seq(), 0);

    // A good entry, then the same entry replayed.
    let good = signed(&operator, &message(1, "Echt", Audience::default()));
    feed.serve(vec![good.clone()]);
    assert_eq!(round(&app).await.unwrap().stored, 1);
    feed.serve_raw(serde_json::json!({"entries": [good], "next": null}).to_string());
    assert!(matches!(
        reason(round(&app).await.unwrap()),
        Refusal::Replayed { seq: 1, last: 1 }
    ));
    assert_eq!(titles(&app), ["Echt"]);

    // Each refusal once in the node's log, however often the feed offers it.
    round(&app).await.unwrap();
    round(&app).await.unwrap();
    let log = broadcasts.refusals().unwrap();
    assert_eq!(log.len(), 5, "{log:#?}");
    assert!(log[0].reason.starts_with("bad signature"));
    assert!(log.iter().any(|r| r.reason.starts_with("replayed")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_feed_keeps_what_the_node_has_and_sync_resumes() {
    let mut feed = FakeFeed::start();
    let operator = OperatorKey::generate();
    let app = node_of(&feed, &operator).await;
    feed.serve(vec![signed(
        &operator,
        &message(1, "Erste", Audience::default()),
    )]);
    assert_eq!(round(&app).await.unwrap().stored, 1);

    feed.stop().await;
    let err = round(&app).await.unwrap_err();
    assert!(matches!(err, SyncError::Unreachable { .. }), "{err}");
    assert_eq!(titles(&app), ["Erste"], "the node keeps what it has");
    assert!(app.server().broadcasts.refusals().unwrap().is_empty());

    feed.entries_mut().push(signed(
        &operator,
        &message(2, "Zweite", Audience::default()),
    ));
    feed.resume();
    let report = round(&app).await.unwrap();
    assert_eq!((report.stored, report.last_seq), (1, 2));
    assert_eq!(titles(&app), ["Zweite", "Erste"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_feed_request_carries_no_practice_or_member_identity() {
    let feed = FakeFeed::start();
    let operator = OperatorKey::generate();
    let app = node_of(&feed, &operator).await;
    app.create_practice("praxis-a").await;
    let anna = app.member("praxis-a", "anna", false).await;
    assert_eq!(anna.get("/").await.status(), 200);
    feed.serve(vec![signed(
        &operator,
        &message(1, "Tipp", Audience::default()),
    )]);
    round(&app).await.unwrap();

    let seen = feed.state.seen.lock().unwrap().clone();
    assert!(!seen.is_empty());
    for (uri, headers) in &seen {
        let query = uri.strip_prefix("/feed?").expect(uri);
        let keys: Vec<_> = query
            .split('&')
            .map(|kv| kv.split('=').next().unwrap())
            .collect();
        assert_eq!(keys, ["after", "limit"], "{uri}");
        let names: Vec<&str> = headers.iter().map(|(k, _)| k.as_str()).collect();
        for n in &names {
            assert!(
                ["host", "user-agent", "accept", "accept-encoding"].contains(n),
                "unexpected header {n}: {headers:?}"
            );
        }
        let ua = headers.iter().find(|(k, _)| k == "user-agent").unwrap();
        assert_eq!(ua.1, USER_AGENT);
        let all = format!("{uri} {headers:?}");
        assert!(!all.contains("praxis-a") && !all.contains("anna"), "{all}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_feed_answers_everyone_the_same_and_refuses_malformed_queries() {
    let app = TestApp::spawn().await;
    let key = own_key(&app);
    let feed = app.server().operator_feed.clone();
    for t in ["Eins", "Zwei", "Drei"] {
        feed.publish(&key, draft(t), app.clock.now()).unwrap();
    }
    let url = app.operator_url("/feed?after=0&limit=2");
    let a = raw_client().get(&url).send().await.unwrap();
    assert_eq!(a.status(), 200);
    assert!(a.headers().get("set-cookie").is_none());
    let a = a.bytes().await.unwrap();
    let b = raw_client()
        .get(&url)
        .header("cookie", "kollegium-session=geheim; praxis=praxis-a")
        .header("user-agent", "Praxis A")
        .header("x-forwarded-for", "10.1.2.3")
        .send()
        .await
        .unwrap();
    assert!(b.headers().get("set-cookie").is_none());
    assert_eq!(
        a,
        b.bytes().await.unwrap(),
        "the same answer for every caller"
    );
    let page: serde_json::Value = serde_json::from_slice(&a).unwrap();
    assert_eq!(page["entries"].as_array().unwrap().len(), 2);
    assert_eq!(page["next"], 2);
    let rest: serde_json::Value = raw_client()
        .get(app.operator_url("/feed?after=2"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(rest["entries"][0]["seq"], 3);
    assert!(rest["next"].is_null());

    let long = format!("/feed?after={}", "9".repeat(5000));
    for q in [
        "/feed?after=abc",
        "/feed?after=-1",
        "/feed?after=1.5",
        "/feed?limit=0",
        "/feed?limit=1000",
        "/feed?limit=zwei",
        "/feed?after=1&after=2",
        long.as_str(),
    ] {
        let r = raw_client().get(app.operator_url(q)).send().await.unwrap();
        assert_eq!(r.status(), 400, "{q}");
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["error"], "bad_request", "{q}");
    }
    // Read-only: nothing can be posted to it, and the practice origin does not serve it.
    let r = raw_client()
        .post(app.operator_url("/feed"))
        .send()
        .await
        .unwrap();
    assert!(r.status() == 404 || r.status() == 405, "{}", r.status());
    app.create_practice("praxis-a").await;
    let r = raw_client()
        .get(app.url("praxis-a", "/feed"))
        .send()
        .await
        .unwrap();
    assert_ne!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_publishes_three_messages_once_for_different_members() {
    let app = node().await;
    let now = app.clock.now();
    assert_eq!(
        kollegium::demo::ensure_demo_broadcasts(&app.config, now).unwrap(),
        3
    );
    assert_eq!(
        kollegium::demo::ensure_demo_broadcasts(&app.config, now).unwrap(),
        0
    );
    assert_eq!(round(&app).await.unwrap().stored, 3);
    let active = app.server().broadcasts.active(now).unwrap();
    let shown = |user: &str| -> usize {
        let (_, _, role, _, specialty, kv) = kollegium_idp::demo::ACCOUNTS
            .iter()
            .find(|a| a.0 == user)
            .unwrap();
        let roles = vec![(*role).to_owned()];
        active
            .iter()
            .filter(|m| m.audience.matches(*specialty, &roles, *kv))
            .count()
    };
    assert_eq!(
        (shown("inhaber"), shown("mfa"), shown("abrechnung")),
        (2, 1, 3)
    );
    assert!(active[0].pinned, "the welcome stays on top");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_syncs_by_itself_on_its_interval() {
    let feed = FakeFeed::start();
    let operator = OperatorKey::generate();
    let url = feed.url();
    let public = operator.public().to_base64();
    let app = TestApp::spawn_with(move |c| {
        c.broadcast.feed_url = Some(url);
        c.broadcast.public_key = Some(public);
        c.broadcast.sync_interval_secs = 1;
    })
    .await;
    let app = after_start_round(app).await;
    let mut changes = app.server().broadcasts.changes();
    feed.serve(vec![signed(
        &operator,
        &message(1, "Von selbst", Audience::default()),
    )]);
    tokio::time::timeout(Duration::from_secs(10), changes.wait_for(|seq| *seq == 1))
        .await
        .expect("synced on the interval without being asked")
        .unwrap();
    assert_eq!(titles(&app), ["Von selbst"]);
}
