//! The privacy inspection of Neuigkeiten (issue 14, point 6) against a real operator: a
//! separate `kollegium serve` process with a data directory of its own and no practices,
//! publishing through its CLI. A node with two practices syncs from it while members read,
//! hide and open messages; then nothing of the practices, their members or their marks may
//! be in any file of the operator's data directory or in its log, while the log does show
//! the node's feed requests (carrying only `after` and `limit`). The node keeps what it has
//! while the operator is down and resumes once it is back.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use kollegium_tenants::broadcast::sync::SyncError;

use crate::apps::chat::Member;
use crate::broadcast::{after_start_round, round};
use crate::harness::{TestApp, cli_in, files_under, raw_client, stderr, stdout};
use crate::news::{states, tile, titles};

/// A `kollegium serve` of its own on loopback, killed when dropped (also when a test fails).
struct Operator {
    root: tempfile::TempDir,
    child: Option<Child>,
    listen: u16,
    operator_listen: u16,
    logs: Vec<PathBuf>,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Operator {
    fn new() -> Self {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("data")).unwrap();
        Self {
            root,
            child: None,
            listen: free_port(),
            operator_listen: free_port(),
            logs: Vec::new(),
        }
    }

    fn data_dir(&self) -> PathBuf {
        self.root.path().join("data")
    }

    fn feed_url(&self) -> String {
        format!("http://127.0.0.1:{}/feed", self.operator_listen)
    }

    /// Starts the server, its stdout and stderr into a new log file; `debug` runs it with
    /// `RUST_LOG=debug` and JSON lines, otherwise at the default level as text.
    async fn start(&mut self, debug: bool) {
        let log = self
            .root
            .path()
            .join(format!("operator-{}.log", self.logs.len()));
        let out = std::fs::File::create(&log).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_kollegium"));
        cmd.arg("serve")
            .current_dir(self.root.path())
            .env_remove("RUST_LOG");
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("KOLLEGIUM_") {
                cmd.env_remove(key);
            }
        }
        cmd.env("KOLLEGIUM_DATA_DIR", self.data_dir())
            .env("KOLLEGIUM_LISTEN", format!("127.0.0.1:{}", self.listen))
            .env(
                "KOLLEGIUM_OPERATOR_LISTEN",
                format!("127.0.0.1:{}", self.operator_listen),
            )
            .env("KOLLEGIUM_SHUTDOWN_TIMEOUT_SECS", "2")
            // Its own node role syncs elsewhere: every feed request it logs is the node's.
            .env("KOLLEGIUM_BROADCAST__FEED_URL", "http://127.0.0.1:9/feed")
            .env("KOLLEGIUM_BROADCAST__SYNC_INTERVAL_SECS", "86400");
        if debug {
            cmd.env("RUST_LOG", "debug")
                .env("KOLLEGIUM_LOG__FORMAT", "json");
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        self.child = Some(child);
        self.logs.push(log);
        let url = format!("http://127.0.0.1:{}/healthz", self.operator_listen);
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                panic!("operator exited at start ({status}): {}", self.log_text());
            }
            if let Ok(r) = raw_client().get(&url).send().await
                && r.status() == 200
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("operator not healthy: {}", self.log_text());
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn cli(&self, args: &[&str]) -> Output {
        let out = cli_in(&self.data_dir(), args, &[]);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        out
    }

    /// Publishes a message for `audience` (CLI flags) and returns its id.
    fn publish(&self, title: &str, audience: &[&str]) -> String {
        let body = self.root.path().join("body.md");
        std::fs::write(&body, "Bitte **bis Freitag** beachten.").unwrap();
        let mut args = vec!["news", "publish", "--title", title, "--body-file"];
        args.push(body.to_str().unwrap());
        args.extend_from_slice(audience);
        stdout(&self.cli(&args)).trim().to_owned()
    }

    /// Every log written so far, as one text.
    fn log_text(&self) -> String {
        self.logs
            .iter()
            .map(|p| std::fs::read_to_string(p).unwrap_or_default())
            .collect()
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A node that syncs from `op` and trusts its key; it syncs when the test says so.
async fn node_of(op: &Operator) -> TestApp {
    let key = stdout(&op.cli(&["news", "public-key"])).trim().to_owned();
    let url = op.feed_url();
    let app = TestApp::spawn_with(move |c| {
        c.broadcast.feed_url = Some(url);
        c.broadcast.public_key = Some(key);
        c.broadcast.sync_interval_secs = 3600;
    })
    .await;
    after_start_round(app).await
}

/// The feed requests the operator logged at debug level: (query, header names).
fn feed_requests(log: &Path) -> Vec<(String, Vec<String>)> {
    let text = std::fs::read_to_string(log).unwrap();
    let mut out = Vec::new();
    for line in text.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if v["fields"]["message"] != "feed request" {
            continue;
        }
        // Recorded with `?`: Rust debug strings, quoted and escaped.
        let field = |name: &str| v["fields"][name].as_str().unwrap_or_default().to_owned();
        let query: String = serde_json::from_str(&field("query")).expect(line);
        let headers = field("headers")
            .trim_matches(|c| c == '[' || c == ']')
            .split(", ")
            .map(|h| h.trim_matches('"').to_owned())
            .collect();
        out.push((query, headers));
    }
    out
}

/// A member's "Als gelesen markieren", "Ausblenden" …: the answer's status.
async fn mark(m: &Member<'_>, id: &str, what: &str) -> u16 {
    let r = m.form("/news", &format!("/news/{id}/{what}"), &[]).await;
    r.status().as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_process_keeps_nothing_of_the_practices_it_serves() {
    let mut op = Operator::new();
    op.start(true).await;
    let all = op.publish("Für alle: Wartung am Samstag", &["--pinned"]);
    let kardio = op.publish("Kardiologie-Leitlinie", &["--specialty", "kardiologie"]);
    let abr = op.publish("Abrechnungsfrist", &["--role", "abrechnung"]);

    let app = node_of(&op).await;
    let (lind, see) = ("praxis-lindenhof", "praxis-am-seeufer");
    app.create_practice(lind).await;
    app.create_practice(see).await;
    let hildegard = app
        .member_with(lind, "hildegard", &["arzt"], Some("kardiologie"), None)
        .await;
    let ottokar = app
        .member_with(lind, "ottokar", &["mfa"], None, Some("kv-wl"))
        .await;
    let gundula = app
        .member_with(see, "gundula", &["abrechnung"], None, None)
        .await;
    round(&app).await.unwrap();

    // Each sees their selection, on /news and on the start page's tile.
    let (t_all, t_kardio, t_abr) = (
        "Für alle: Wartung am Samstag",
        "Kardiologie-Leitlinie",
        "Abrechnungsfrist",
    );
    assert_eq!(titles(&hildegard.page("/news").await), [t_all, t_kardio]);
    assert_eq!(titles(&ottokar.page("/news").await), [t_all]);
    assert_eq!(titles(&gundula.page("/news").await), [t_all, t_abr]);
    assert_eq!(tile(&hildegard).await.0, 2);

    // They read, hide and open messages.
    assert_eq!(mark(&hildegard, &kardio, "read").await, 303);
    assert_eq!(mark(&hildegard, &all, "hide").await, 303);
    assert!(ottokar.page(&format!("/news/{all}")).await.contains(t_all));
    assert_eq!(mark(&gundula, &abr, "hide").await, 303);
    assert_eq!(mark(&gundula, &all, "read").await, 303);
    assert_eq!(tile(&hildegard).await.0, 0);
    assert_eq!(tile(&ottokar).await.0, 0);
    assert_eq!(tile(&gundula).await.0, 0);

    // The node talks to the operator again after they acted: a withdrawal, two rounds.
    op.cli(&["news", "withdraw", &kardio]);
    assert_eq!(round(&app).await.unwrap().stored, 1);
    round(&app).await.unwrap();
    assert_eq!(titles(&hildegard.page("/news?hidden=1").await), [t_all]);
    assert!(
        !hildegard
            .page("/news")
            .await
            .contains("Kardiologie-Leitlinie")
    );

    // The positive side: the practices' own platform.sqlite hold the marks.
    let mut want = vec![
        ("hildegard".to_owned(), all.clone(), true, true),
        ("hildegard".to_owned(), kardio.clone(), true, false),
        ("ottokar".to_owned(), all.clone(), true, false),
    ];
    want.sort();
    assert_eq!(states(&app, lind).await, want);
    let mut want = vec![
        ("gundula".to_owned(), abr.clone(), true, true),
        ("gundula".to_owned(), all.clone(), true, false),
    ];
    want.sort();
    assert_eq!(states(&app, see).await, want);

    // The operator goes away: the round fails, the members keep what they have.
    op.kill();
    let err = round(&app).await.unwrap_err();
    assert!(matches!(err, SyncError::Unreachable { .. }), "{err}");
    assert_eq!(titles(&ottokar.page("/news").await), [t_all]);
    assert_eq!(titles(&gundula.page("/news?hidden=1").await), [t_abr]);
    // Back on the same data directory and port, now at the default log level: sync resumes.
    let later = op.publish("Nach der Pause", &[]);
    op.start(false).await;
    let report = round(&app).await.unwrap();
    assert_eq!(report.stored, 1);
    assert_eq!(
        titles(&ottokar.page("/news").await),
        [t_all, "Nach der Pause"]
    );
    assert_eq!(mark(&ottokar, &later, "read").await, 303);
    round(&app).await.unwrap();
    op.kill();

    // The operator's log shows the node's feed requests, and they carry only after/limit.
    let requests = feed_requests(&op.logs[0]);
    assert!(requests.len() >= 4, "{requests:?}");
    for (query, headers) in &requests {
        let keys: Vec<_> = query.split('&').map(|kv| kv.split('=').next()).collect();
        assert_eq!(keys, [Some("after"), Some("limit")], "{query}");
        for h in headers {
            assert!(
                ["host", "user-agent", "accept", "accept-encoding"].contains(&h.as_str()),
                "unexpected header {h}: {headers:?}"
            );
        }
    }

    // Nothing of the practices, their members or their marks on the operator's side.
    let mut needles = vec!["news_state".to_owned(), "read_at".to_owned()];
    for (slug, users) in [
        (lind, &["hildegard", "ottokar"][..]),
        (see, &["gundula"][..]),
    ] {
        needles.push(slug.to_owned());
        needles.push(format!("Praxis {slug}"));
        needles.push(format!("owner@{slug}.example"));
        for u in users {
            needles.push((*u).to_owned());
            needles.push(format!("{u}@{slug}.example"));
        }
    }
    let files = files_under(&op.data_dir());
    assert!(
        files.iter().any(|f| f.ends_with("operator.sqlite")),
        "{files:?}"
    );
    let mut places: Vec<(String, String)> = files
        .iter()
        .map(|f| {
            let bytes = std::fs::read(f).unwrap();
            (
                f.display().to_string(),
                String::from_utf8_lossy(&bytes).into(),
            )
        })
        .collect();
    // The raw scan reads what SQLite stores: the operator's own messages are there.
    let feed_db = places
        .iter()
        .filter(|(p, _)| p.contains("operator.sqlite"))
        .map(|(_, t)| t.as_str())
        .collect::<String>();
    assert!(
        feed_db.contains(t_kardio) && feed_db.contains(&later),
        "raw scan sees text"
    );
    places.push(("the operator's log".into(), op.log_text()));
    for (place, text) in &places {
        for n in &needles {
            assert!(!text.contains(n.as_str()), "{n} in {place}");
        }
        // Nor a path of the node's: the operator holds no practice directory.
        assert!(
            !text.contains(&app.data_dir().display().to_string()),
            "{place}"
        );
    }
    assert!(
        op.log_text().contains("kollegium listening"),
        "the log was written"
    );
}
