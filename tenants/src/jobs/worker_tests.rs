//! Tests of the job worker on a real store with practices (a test database kind with
//! the `jobs` table).

use std::sync::Mutex;
use std::time::Instant;

use diesel::prelude::*;
use diesel_migrations::embed_migrations;

use super::*;
use crate::clock::ManualClock;
use crate::jobs::schema::jobs;
use crate::jobs::{BoxFuture, Outcomes, Policy};
use crate::provision::{self, CreatePractice};
use crate::secrets::NodeKey;
use crate::store::StoreSettings;

static TEST_DB: DbKind = DbKind {
    name: "jobs-test",
    file: "jobs-test.sqlite",
    migrations: embed_migrations!("src/jobs/test_migrations"),
};

/// A kind that records what it ran, and fails (or panics) if told to.
struct Probe {
    kind: &'static str,
    panics: bool,
    fails: bool,
    seen: Mutex<Vec<String>>,
}

impl Probe {
    fn new(kind: &'static str, panics: bool, fails: bool) -> Arc<Self> {
        Arc::new(Self {
            kind,
            panics,
            fails,
            seen: Mutex::new(Vec::new()),
        })
    }
    fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

impl Handler for Probe {
    fn kind(&self) -> &'static str {
        self.kind
    }
    fn policy(&self) -> Policy {
        Policy {
            retry_initial_secs: 60,
            ..Policy::default()
        }
    }
    fn run(&self, tenant: Tenant, _db: &'static DbKind, jobs: Vec<Job>) -> BoxFuture<Outcomes> {
        let (panics, fails) = (self.panics, self.fails);
        self.seen
            .lock()
            .unwrap()
            .extend(jobs.iter().map(|j| format!("{}/{}", tenant.slug(), j.key)));
        Box::pin(async move {
            assert!(!panics, "this kind always panics");
            jobs.iter()
                .map(|j| {
                    let o = if fails {
                        Outcome::retry("relay down")
                    } else {
                        Outcome::Done
                    };
                    (j.id, o)
                })
                .collect()
        })
    }
}

struct Node {
    _dir: tempfile::TempDir,
    store: Arc<TenantStore>,
    clock: Arc<ManualClock>,
}

fn node(practices: &[&str]) -> Node {
    let dir = tempfile::tempdir().unwrap();
    let key = NodeKey::load_or_create(dir.path()).unwrap();
    let clock = Arc::new(ManualClock::new(1_000_000));
    let store = TenantStore::open(
        StoreSettings::new(dir.path().to_path_buf()),
        Arc::new(key),
        clock.clone(),
    )
    .unwrap();
    for slug in practices {
        let input = CreatePractice::parse(slug, "Praxis", "owner@praxis.example").unwrap();
        let mut registry = store.lock_registry().unwrap();
        provision::create(
            &mut provision::Node {
                data_dir: dir.path(),
                origin_of: &|s| format!("http://{s}.localhost"),
                node_key: store.node_key(),
                registry: &mut registry,
                now: 1_000_000,
            },
            &input,
            &[],
        )
        .unwrap();
    }
    Node {
        _dir: dir,
        store: Arc::new(store),
        clock,
    }
}

fn tenant(n: &Node, slug: &str) -> Tenant {
    n.store
        .tenant(&Slug::parse(slug).unwrap())
        .unwrap()
        .unwrap()
}

fn enqueue(n: &Node, slug: &str, kind: &str, key: &str, run_after: UnixTime) {
    let t = tenant(n, slug);
    let mut c = t.conn(&TEST_DB).unwrap();
    queue::enqueue(&mut c, kind, key, None, 0, run_after, 1_000_000).unwrap();
}

/// `(kind, key, attempts, last_error, failed)` of every job left in a practice.
fn left(n: &Node, slug: &str) -> Vec<(String, String, i64, Option<String>)> {
    let t = tenant(n, slug);
    let mut c = t.conn(&TEST_DB).unwrap();
    jobs::table
        .order((jobs::kind, jobs::key))
        .select((jobs::kind, jobs::key, jobs::attempts, jobs::last_error))
        .load(&mut *c)
        .unwrap()
}

async fn until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn settings() -> WorkerSettings {
    WorkerSettings {
        tick: Duration::from_millis(50),
        sweep_secs: 3600,
        concurrency: 4,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_or_failing_kind_stops_neither_another_kind_nor_another_practice() {
    let n = node(&["praxis-a", "praxis-b"]);
    let (bad, failing, good) = (
        Probe::new("bad", true, false),
        Probe::new("failing", false, true),
        Probe::new("good", false, false),
    );
    let mut registry = Registry::new();
    registry
        .register(&TEST_DB, bad.clone())
        .register(&TEST_DB, failing.clone())
        .register(&TEST_DB, good.clone());
    let signal = Arc::new(JobSignal::new());
    let worker = JobWorker::spawn(n.store.clone(), registry, signal.clone(), settings());
    for slug in ["praxis-a", "praxis-b"] {
        enqueue(&n, slug, "bad", "x", 1_000_000);
        enqueue(&n, slug, "failing", "y", 1_000_000);
        enqueue(&n, slug, "good", "z", 1_000_000);
        signal.poke(&Slug::parse(slug).unwrap(), &TEST_DB);
    }
    until("the good kind ran in both practices", || {
        good.seen().len() == 2
    })
    .await;
    until("the failures are recorded", || {
        ["praxis-a", "praxis-b"]
            .iter()
            .all(|s| left(&n, s).iter().all(|(_, _, attempts, _)| *attempts == 1))
    })
    .await;
    for slug in ["praxis-a", "praxis-b"] {
        assert_eq!(
            left(&n, slug),
            vec![
                ("bad".into(), "x".into(), 1, Some("handler failed".into())),
                ("failing".into(), "y".into(), 1, Some("relay down".into())),
            ]
        );
    }
    assert_eq!(bad.seen().len(), 2);
    assert_eq!(worker.stats().failed(), 0);
    // Not due again before the backoff; due after it (the clock moved, a tick sees it).
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(failing.seen().len(), 2);
    n.clock.advance(60);
    until("retried after the backoff", || failing.seen().len() == 4).await;
    worker.stop(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_left_by_a_restart_are_picked_up_by_the_timer_without_a_signal() {
    let n = node(&["praxis-a"]);
    enqueue(&n, "praxis-a", "good", "now", 1_000_000);
    enqueue(&n, "praxis-a", "good", "later", 1_000_500);
    // As after a restart: the practice is not open, nobody pokes.
    n.store.close_all();
    let good = Probe::new("good", false, false);
    let mut registry = Registry::new();
    registry.register(&TEST_DB, good.clone());
    let worker = JobWorker::spawn(
        n.store.clone(),
        registry,
        Arc::new(JobSignal::new()),
        settings(),
    );
    until("the due job ran", || good.seen() == ["praxis-a/now"]).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(good.seen(), ["praxis-a/now"], "the later job waits");
    n.clock.advance(500);
    until("the later job ran", || good.seen().len() == 2).await;
    until("both are gone", || left(&n, "praxis-a").is_empty()).await;
    worker.stop(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sweep_opens_no_practice_whose_jobs_are_not_due() {
    let n = node(&["praxis-a"]);
    enqueue(&n, "praxis-a", "good", "later", 1_000_500);
    n.store.close_all();
    let good = Probe::new("good", false, false);
    let mut registry = Registry::new();
    registry.register(&TEST_DB, good.clone());
    let worker = JobWorker::spawn(
        n.store.clone(),
        registry,
        Arc::new(JobSignal::new()),
        settings(),
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(n.store.open_practices(), 0, "peeked at, not opened");
    assert!(good.seen().is_empty());
    worker.stop(Duration::from_secs(5)).await;
}

/// A kind that gathers after a poke and takes a while per batch (as a search commit does),
/// recording the size of every batch.
struct Slow {
    batches: Mutex<Vec<usize>>,
}

impl Handler for Slow {
    fn kind(&self) -> &'static str {
        "slow"
    }
    fn policy(&self) -> Policy {
        Policy {
            gather: Duration::from_millis(200),
            ..Policy::default()
        }
    }
    fn run(&self, _tenant: Tenant, _db: &'static DbKind, jobs: Vec<Job>) -> BoxFuture<Outcomes> {
        self.batches.lock().unwrap().push(jobs.len());
        Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(40)).await;
            jobs.iter().map(|j| (j.id, Outcome::Done)).collect()
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_steady_stream_of_pokes_is_gathered_into_few_batches() {
    let n = node(&["praxis-a"]);
    let slow = Arc::new(Slow {
        batches: Mutex::new(Vec::new()),
    });
    let mut registry = Registry::new();
    registry.register(&TEST_DB, slow.clone());
    let signal = Arc::new(JobSignal::new());
    let worker = JobWorker::spawn(n.store.clone(), registry, signal.clone(), settings());
    // A change every 10 ms for 1.2 s, each poking the kind, as posts poke the indexer.
    for i in 0..120 {
        enqueue(&n, "praxis-a", "slow", &format!("k{i}"), 1_000_000);
        signal.poke_kind("praxis-a", &TEST_DB, "slow");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    until("every job ran", || {
        slow.batches.lock().unwrap().iter().sum::<usize>() == 120
    })
    .await;
    let batches = slow.batches.lock().unwrap().clone();
    // Gathering 200 ms per round gives about 7 batches; a round per poke (what a poke
    // during a round used to cause) gives one per 40 ms batch, about 30.
    assert!(
        batches.len() <= 14,
        "{} batches: {batches:?}",
        batches.len()
    );
    worker.stop(Duration::from_secs(5)).await;
}
