//! The node's search indexer: one tokio task that moves queued chat changes into the
//! practices' indexes.
//!
//! Which practices it looks at:
//! - practices kicked through the [`SearchService`] (a post, edit or delete just queued a
//!   change), after a short pause that gathers a burst into one commit;
//! - a periodic sweep: every live practice at start-up (read straight from the database
//!   file, without opening idle practices), afterwards the practices open on this node, so
//!   nothing queued is lost to a restart or a missed kick.
//!
//! Per practice and round: read a batch from `search_queue`, apply it in one commit with
//! the index's writer (opened by the first batch and kept while the index is cached),
//! then delete the queue rows that the commit covered. A failed batch keeps its rows.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use diesel::prelude::*;
use kollegium_tenants::registry::{self, PracticeStatus};
use kollegium_tenants::store::practice_dir;
use kollegium_tenants::worker::Worker;
use kollegium_tenants::{Slug, Tenant, TenantStore, UnixTime, db};
use tokio::sync::Notify;

use super::index::{self, Indexes};
use super::{SearchError, SearchService, queue};
use crate::PLATFORM_DB;
use crate::schema::messages;

/// Tunables of the worker.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// Seconds between sweeps for queued changes nobody kicked for.
    pub sweep_secs: u64,
    /// Changes applied per practice in one commit. A full batch is followed by the next
    /// at once, so under a heavy stream this, not `gather`, sets the commit rate (2,000:
    /// about 3 commits/s at 6,000 posts/s; a batch of the longest messages reads ~20 MB).
    pub batch: i64,
    /// Pause after a kick, so that a burst of messages becomes one commit. Each commit
    /// costs tantivy a new segment (~10 ms of CPU however small), so under a steady stream
    /// this caps the commits at about 2 per second; with the commit itself a message is
    /// searchable within about half a second (the goal is about 1 s).
    pub gather: Duration,
    /// Open indexes unused this long are closed.
    pub idle_close: Duration,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        Self {
            sweep_secs: 30,
            batch: 2_000,
            gather: Duration::from_millis(400),
            idle_close: Duration::from_secs(120),
        }
    }
}

/// What one round for a practice did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Round {
    /// Nothing was queued.
    Idle,
    /// Applied this many changes; the queue is drained.
    Done(usize),
    /// Applied a full batch; more may wait.
    More(usize),
}

/// One indexing round for a practice: a batch from its queue into its index. Blocking.
pub fn index_round(
    tenant: &Tenant,
    indexes: &Indexes,
    batch: i64,
    now: UnixTime,
) -> Result<Round, SearchError> {
    let dir = index::dir(tenant);
    let fresh = !index::exists(&dir);
    let changes = {
        let mut conn = tenant.conn(&PLATFORM_DB)?;
        if fresh {
            // A new practice, or an index that was lost (e.g. restored without it):
            // build it from the database.
            indexes.forget(&dir);
            let n = queue::requeue_all(&mut conn, now)?;
            if n > 0 {
                tracing::info!(practice = %tenant.slug(), messages = n, "building chat index");
            }
        }
        queue::next_batch(&mut conn, batch.max(1))?
    };
    if changes.is_empty() && !fresh {
        return Ok(Round::Idle);
    }
    let idx = match indexes.get(&dir, true) {
        Ok(Some(i)) => i,
        Ok(None) => return Ok(Round::Idle),
        Err(SearchError::Index(
            e @ (tantivy::TantivyError::SchemaError(_)
            | tantivy::TantivyError::DataCorruption(_)
            | tantivy::TantivyError::IncompatibleIndex(_)),
        )) => {
            // An index of another version or a damaged one: drop it; the next round
            // rebuilds it from the database.
            tracing::warn!(practice = %tenant.slug(), error = %e, "chat index unusable; rebuilding");
            indexes.forget(&dir);
            std::fs::remove_dir_all(&dir)?;
            return Ok(Round::More(0));
        }
        Err(e) => return Err(e),
    };
    if changes.is_empty() {
        return Ok(Round::Idle);
    }
    idx.apply(&changes)?;
    let mut conn = tenant.conn(&PLATFORM_DB)?;
    queue::ack(&mut conn, &changes)?;
    let n = changes.len();
    Ok(if n as i64 >= batch {
        Round::More(n)
    } else {
        Round::Done(n)
    })
}

/// Applies everything queued for a practice (tests and tools). Blocking.
pub fn drain(tenant: &Tenant, indexes: &Indexes, now: UnixTime) -> Result<usize, SearchError> {
    let mut total = 0;
    for _ in 0..10_000 {
        match index_round(tenant, indexes, 500, now)? {
            Round::Idle => break,
            Round::Done(n) => {
                total += n;
                break;
            }
            Round::More(n) => total += n,
        }
    }
    Ok(total)
}

/// Whether a practice has work for the indexer: queued changes, or live messages and no
/// index yet.
fn needs_work(conn: &mut SqliteConnection, dir: &Path) -> QueryResult<bool> {
    if queue::pending(conn)? {
        return Ok(true);
    }
    if index::exists(dir) {
        return Ok(false);
    }
    messages::table
        .filter(messages::deleted_at.is_null())
        .select(messages::id)
        .first::<i64>(conn)
        .optional()
        .map(|o| o.is_some())
}

/// The running worker; [`SearchWorker::stop`] ends it.
pub struct SearchWorker(Worker);

struct Ctx {
    store: Arc<TenantStore>,
    service: Arc<SearchService>,
    settings: WorkerSettings,
    stopping: Arc<AtomicBool>,
}

impl SearchWorker {
    /// Starts the worker on the current tokio runtime.
    pub fn spawn(
        store: Arc<TenantStore>,
        service: Arc<SearchService>,
        settings: WorkerSettings,
    ) -> Self {
        Self(Worker::spawn("search", move |c| {
            let ctx = Ctx {
                store,
                service,
                settings,
                stopping: c.stopping,
            };
            run(ctx, c.wake)
        }))
    }

    /// Asks the worker to stop after the round in hand; aborts it after `grace`.
    pub async fn stop(self, grace: Duration) {
        self.0.stop(grace).await;
    }
}

async fn run(ctx: Ctx, wake: Arc<Notify>) {
    let mut sweep = tokio::time::interval(Duration::from_secs(ctx.settings.sweep_secs.max(1)));
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut first_sweep = true;
    tracing::info!("search worker started");
    while !ctx.stopping.load(Ordering::SeqCst) {
        let mut candidates = BTreeSet::new();
        tokio::select! {
            _ = wake.notified() => continue,
            _ = ctx.service.notified() => {
                tokio::time::sleep(ctx.settings.gather).await;
            }
            _ = sweep.tick() => {
                match sweep_candidates(&ctx, first_sweep).await {
                    Ok(found) => {
                        candidates.extend(found);
                        first_sweep = false;
                    }
                    Err(e) => tracing::warn!(error = %e, "search sweep failed"),
                }
                evict_idle(&ctx).await;
            }
        }
        candidates.extend(ctx.service.take());
        for slug in candidates {
            if ctx.stopping.load(Ordering::SeqCst) {
                break;
            }
            index_practice(&ctx, &slug).await;
        }
    }
    // Close the writers cleanly (merges in progress finish) before the node goes.
    let service = ctx.service.clone();
    if let Err(e) = tokio::task::spawn_blocking(move || service.indexes().close_all()).await {
        tracing::warn!(error = %e, "closing chat indexes failed");
    }
    tracing::info!("search worker stopped");
}

/// Closes indexes unused for a while; closing a writer waits for its merges, so off the
/// async threads.
async fn evict_idle(ctx: &Ctx) {
    let (service, idle) = (ctx.service.clone(), ctx.settings.idle_close);
    match tokio::task::spawn_blocking(move || service.indexes().evict_idle(idle)).await {
        Ok(0) => {}
        Ok(closed) => tracing::debug!(closed, "closed idle chat indexes"),
        Err(e) => tracing::warn!(error = %e, "closing idle chat indexes failed"),
    }
}

/// Rounds for one practice until its queue is drained (or a round fails).
async fn index_practice(ctx: &Ctx, slug: &str) {
    let Ok(slug) = Slug::parse(slug) else {
        return;
    };
    loop {
        if ctx.stopping.load(Ordering::SeqCst) {
            return;
        }
        let (store, service, batch) = (ctx.store.clone(), ctx.service.clone(), ctx.settings.batch);
        let s = slug.clone();
        let outcome = tokio::task::spawn_blocking(move || -> Result<Round, SearchError> {
            let Some(tenant) = store.tenant(&s)? else {
                return Ok(Round::Idle);
            };
            index_round(&tenant, service.indexes(), batch, store.clock().now())
        })
        .await
        .map_err(|e| SearchError::Join(e.to_string()))
        .and_then(|r| r);
        match outcome {
            Ok(Round::More(_)) => continue,
            Ok(Round::Done(n)) => {
                tracing::debug!(practice = %slug, changes = n, "chat index updated");
                return;
            }
            Ok(Round::Idle) => return,
            Err(e) => {
                tracing::warn!(practice = %slug, error = %e, "chat indexing failed; retried at the next sweep");
                return;
            }
        }
    }
}

/// Practices to look at in a sweep: every live one the first time (idle ones are peeked
/// at without opening them), afterwards the open ones.
async fn sweep_candidates(ctx: &Ctx, first: bool) -> Result<Vec<String>, SearchError> {
    let store = ctx.store.clone();
    tokio::task::spawn_blocking(move || -> Result<Vec<String>, SearchError> {
        let mut out = Vec::new();
        // Only practices whose workspace database is open: the others changed nothing since
        // their last sweep (or are peeked at below on the first one).
        for tenant in store.open_tenants() {
            if !tenant.is_open(&PLATFORM_DB) {
                continue;
            }
            let dir = index::dir(&tenant);
            let mut conn = tenant.conn(&PLATFORM_DB)?;
            if needs_work(&mut conn, &dir)? {
                out.push(tenant.slug().to_string());
            }
        }
        if first {
            let all = store.with_registry(registry::list)?;
            for p in all {
                if p.status == PracticeStatus::Deleted || out.contains(&p.slug) {
                    continue;
                }
                let Ok(slug) = Slug::parse(&p.slug) else {
                    continue;
                };
                let dir = practice_dir(store.data_dir(), &slug);
                if peek(&dir) != Some(false) {
                    out.push(p.slug);
                }
            }
        }
        Ok(out)
    })
    .await
    .map_err(|e| SearchError::Join(e.to_string()))?
}

/// Whether an idle practice needs the indexer, read from its database file without opening
/// the practice. `None`: cannot tell (e.g. not migrated yet); the caller opens it.
fn peek(practice: &Path) -> Option<bool> {
    let path = practice.join(PLATFORM_DB.file);
    if !path.exists() {
        return Some(false);
    }
    let mut conn = db::open_connection(&path).ok()?;
    let index_dir = practice.join("index").join(index::DIR);
    needs_work(&mut conn, &index_dir).ok()
}
