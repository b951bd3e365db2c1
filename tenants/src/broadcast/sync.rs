//! The node's sync task: fetches the operator's feed on start and on an interval, hands
//! the entries to [`NodeFeed::accept`], and keeps what it has while the feed is away.
//!
//! The request carries nothing about the node's practices or members: no cookies (the
//! client has no cookie store), no credentials, a fixed User-Agent, only `after` and
//! `limit` in the query. What the feed learns is that some node asked for entries after a
//! seq, which every node does.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::entry::Refusal;
use super::node::NodeFeed;
use super::operator::PAGE_LIMIT;
use crate::clock::SharedClock;
use crate::worker::Worker;

/// The User-Agent of every feed request, the same on every node.
pub const USER_AGENT: &str = "Kollegium-Broadcast-Sync/1";
/// Largest feed page a node reads, in bytes (100 entries at their size limit fit).
pub const MAX_PAGE_BYTES: usize = 8 * 1024 * 1024;
/// Most pages one round reads (a node that is far behind catches up over several rounds).
const MAX_PAGES_PER_ROUND: usize = 1_000;

/// Where and how often a node syncs.
#[derive(Debug, Clone)]
pub struct SyncSettings {
    /// `http(s)://…/feed` of the operator side.
    pub feed_url: String,
    pub interval: Duration,
}

/// Why a round ended early without a refusal: the feed could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("broadcast feed {url} unreachable: {why}")]
    Unreachable { url: String, why: String },
    #[error(transparent)]
    Storage(#[from] super::BroadcastError),
    #[error("the verification task failed: {0}")]
    Task(String),
}

/// What a round did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoundReport {
    pub stored: usize,
    pub refused: Option<(i64, Refusal)>,
    /// The last verified seq after the round.
    pub last_seq: i64,
}

#[derive(serde::Deserialize)]
struct Page {
    entries: Vec<serde_json::Value>,
    next: Option<i64>,
}

/// Fetches and verifies; one round at a time.
pub struct Syncer {
    feed: Arc<NodeFeed>,
    http: reqwest::Client,
    settings: SyncSettings,
    clock: SharedClock,
    round: tokio::sync::Mutex<()>,
    /// Rounds run to their end (tests wait for the one at start).
    rounds: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for Syncer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Syncer")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Syncer {
    pub fn new(
        feed: Arc<NodeFeed>,
        settings: SyncSettings,
        clock: SharedClock,
    ) -> reqwest::Result<Self> {
        let http = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(1)
            .build()?;
        Ok(Self {
            feed,
            http,
            settings,
            clock,
            round: tokio::sync::Mutex::new(()),
            rounds: Default::default(),
        })
    }

    pub fn feed(&self) -> &Arc<NodeFeed> {
        &self.feed
    }

    /// How many rounds have run to their end, successful or not.
    pub fn rounds(&self) -> u64 {
        self.rounds.load(Ordering::SeqCst)
    }

    /// Reads the feed from the last verified seq on until it has no more or an entry is
    /// refused.
    pub async fn round(&self) -> Result<RoundReport, SyncError> {
        let _one = self.round.lock().await;
        let result = self.pages().await;
        self.rounds.fetch_add(1, Ordering::SeqCst);
        result
    }

    async fn pages(&self) -> Result<RoundReport, SyncError> {
        let mut report = RoundReport {
            last_seq: self.feed.last_seq(),
            ..RoundReport::default()
        };
        for _ in 0..MAX_PAGES_PER_ROUND {
            let after = self.feed.last_seq();
            let page = match self.fetch(after).await? {
                Ok(page) => page,
                Err(why) => {
                    let feed = self.feed.clone();
                    let now = self.clock.now();
                    let refusal = Refusal::MalformedPage(why);
                    let r = refusal.clone();
                    tokio::task::spawn_blocking(move || feed.refuse(after + 1, &r, now))
                        .await
                        .map_err(|e| SyncError::Task(e.to_string()))??;
                    report.refused = Some((after + 1, refusal));
                    break;
                }
            };
            if page.entries.is_empty() {
                break;
            }
            let feed = self.feed.clone();
            let now = self.clock.now();
            let entries = page.entries;
            let done = tokio::task::spawn_blocking(move || feed.accept(entries, now))
                .await
                .map_err(|e| SyncError::Task(e.to_string()))??;
            report.stored += done.stored;
            if done.refused.is_some() {
                report.refused = done.refused;
                break;
            }
            if page.next.is_none() {
                break;
            }
        }
        report.last_seq = self.feed.last_seq();
        Ok(report)
    }

    /// One page after `after`: the outer error is an unreachable feed (kept for the next
    /// round), the inner one a page that is not the feed's JSON (a refusal).
    async fn fetch(&self, after: i64) -> Result<Result<Page, String>, SyncError> {
        let url = &self.settings.feed_url;
        let unreachable = |why: String| SyncError::Unreachable {
            url: url.clone(),
            why,
        };
        let mut response = self
            .http
            .get(url)
            .query(&[
                ("after", after.to_string()),
                ("limit", PAGE_LIMIT.to_string()),
            ])
            .send()
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        if !response.status().is_success() {
            return Err(unreachable(format!("answered {}", response.status())));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| unreachable(e.to_string()))?
        {
            if body.len() + chunk.len() > MAX_PAGE_BYTES {
                return Ok(Err(format!("larger than {MAX_PAGE_BYTES} bytes")));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(serde_json::from_slice::<Page>(&body).map_err(|e| e.to_string()))
    }
}

/// The node's sync task: a round at start, then every interval or when kicked.
pub struct SyncWorker {
    worker: Worker,
    syncer: Arc<Syncer>,
}

impl SyncWorker {
    /// Starts the task on the current tokio runtime.
    pub fn spawn(syncer: Arc<Syncer>) -> Self {
        let s = syncer.clone();
        let worker = Worker::spawn("broadcast sync", move |control| async move {
            loop {
                match s.round().await {
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "broadcast sync: keeping what this node has; retrying at the next interval")
                    }
                }
                if control.stopping.load(Ordering::SeqCst) {
                    break;
                }
                tokio::select! {
                    _ = tokio::time::sleep(s.settings.interval) => {}
                    _ = control.wake.notified() => {}
                }
                if control.stopping.load(Ordering::SeqCst) {
                    break;
                }
            }
        });
        Self { worker, syncer }
    }

    /// The syncer (tests run rounds with it).
    pub fn syncer(&self) -> &Arc<Syncer> {
        &self.syncer
    }

    /// Runs a round now.
    pub fn kick(&self) {
        self.worker.kick();
    }

    pub async fn stop(self, grace: Duration) {
        self.worker.stop(grace).await;
    }
}
