//! The search index's kind of background job ([`kollegium_tenants::jobs`]): the node's job
//! worker hands the due `search` jobs of a practice to [`SearchJobs`], which moves them
//! into the practice's index in one commit.
//!
//! Per batch: read the messages' current state, apply it in one commit with the index's
//! writer (opened by the first batch and kept while the index is cached), and only then
//! report the jobs done (a job whose message changed meanwhile has a new revision and
//! stays). A failed batch keeps its jobs (retried with backoff). A kick gathers for
//! [`WorkerSettings::gather`] first, so a burst of posts becomes one commit.

use std::sync::Arc;
use std::time::Duration;

use kollegium_tenants::jobs::{BoxFuture, Handler, Job, Outcome, Outcomes, Policy};
use kollegium_tenants::{DbKind, SharedClock, Tenant, UnixTime};

use super::index::{self, Indexes};
use super::{SearchError, SearchService, queue};
use crate::PLATFORM_DB;

/// Tunables of indexing.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// Changes applied per practice in one commit. A full batch is followed by the next
    /// at once, so under a heavy stream this, not `gather`, sets the commit rate (2,000:
    /// about 3 commits/s at 6,000 posts/s; a batch of the longest messages reads ~20 MB).
    pub batch: i64,
    /// Pause after a kick, so that a burst of messages becomes one commit. Each commit
    /// costs tantivy a new segment (~10 ms of CPU however small), so under a steady stream
    /// this caps the commits at about 2 per second; with the commit itself a message is
    /// searchable within about half a second (the goal is about 1 s).
    pub gather: Duration,
    /// Open indexes unused this long are closed (at the job worker's sweeps).
    pub idle_close: Duration,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        Self {
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

/// What applying a batch of jobs to the index did.
enum Applied {
    /// The changes are in the index (committed).
    Committed(usize),
    /// The index was unusable and was removed; the next round rebuilds it.
    Dropped,
}

/// Applies `jobs` to the practice's index (building it from the database if it is missing)
/// and commits. The jobs are not acknowledged here. Blocking.
fn apply_jobs(
    tenant: &Tenant,
    indexes: &Indexes,
    jobs: Vec<Job>,
    now: UnixTime,
) -> Result<(Applied, queue::Batch), SearchError> {
    let dir = index::dir(tenant);
    let batch = {
        let mut conn = tenant.conn(&PLATFORM_DB)?;
        if !index::exists(&dir) {
            // A new practice, or an index that was lost (e.g. restored without it):
            // build it from the database.
            indexes.forget(&dir);
            let n = queue::requeue_all(&mut conn, now)?;
            if n > 0 {
                tracing::info!(practice = %tenant.slug(), messages = n, "building chat index");
            }
        }
        queue::changes_of(&mut conn, jobs)?
    };
    let idx = match indexes.get(&dir, true) {
        Ok(Some(i)) => i,
        Ok(None) => return Ok((Applied::Dropped, batch)),
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
            return Ok((Applied::Dropped, batch));
        }
        Err(e) => return Err(e),
    };
    if !batch.is_empty() {
        idx.apply(&batch)?;
    }
    Ok((Applied::Committed(batch.len()), batch))
}

/// One indexing round for a practice outside the job worker (tests and tools): a batch of
/// its queued changes into its index, acknowledged after the commit. Blocking.
pub fn index_round(
    tenant: &Tenant,
    indexes: &Indexes,
    batch: i64,
    now: UnixTime,
) -> Result<Round, SearchError> {
    let fresh = !index::exists(&index::dir(tenant));
    let jobs = {
        let mut conn = tenant.conn(&PLATFORM_DB)?;
        if fresh {
            queue::requeue_all(&mut conn, now)?;
        }
        kollegium_tenants::jobs::queue::due(&mut conn, queue::JOB_KIND, i64::MAX, batch.max(1))?
    };
    if jobs.is_empty() && !fresh {
        return Ok(Round::Idle);
    }
    match apply_jobs(tenant, indexes, jobs, now)? {
        (Applied::Dropped, _) => Ok(Round::More(0)),
        (Applied::Committed(0), b) if b.jobs().next().is_none() => Ok(Round::Idle),
        (Applied::Committed(n), b) => {
            let jobs = b.jobs().count();
            queue::ack(&mut *tenant.conn(&PLATFORM_DB)?, &b)?;
            Ok(if jobs as i64 >= batch {
                Round::More(n)
            } else {
                Round::Done(n)
            })
        }
    }
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

/// The search kind of job, registered for `platform.sqlite` by the composition.
pub struct SearchJobs {
    service: Arc<SearchService>,
    clock: SharedClock,
    settings: WorkerSettings,
}

impl SearchJobs {
    pub fn new(
        service: Arc<SearchService>,
        clock: SharedClock,
        settings: WorkerSettings,
    ) -> Arc<Self> {
        Arc::new(Self {
            service,
            clock,
            settings,
        })
    }
}

impl Handler for SearchJobs {
    fn kind(&self) -> &'static str {
        queue::JOB_KIND
    }

    fn policy(&self) -> Policy {
        Policy {
            batch: self.settings.batch.max(1),
            gather: self.settings.gather,
            // The index is a cache: a failed commit (e.g. a writer still closing) is
            // retried soon, and a message is never given up lightly.
            retry_initial_secs: 5,
            retry_max_secs: 600,
            max_attempts: 100,
            // One commit at a time node-wide, as the single indexer did: the commits are
            // CPU-bound and must not crowd out the request threads.
            concurrency: 1,
        }
    }

    fn run(&self, tenant: Tenant, _db: &'static DbKind, jobs: Vec<Job>) -> BoxFuture<Outcomes> {
        let (service, now) = (self.service.clone(), self.clock.now());
        Box::pin(async move {
            let ids: Vec<i64> = jobs.iter().map(|j| j.id).collect();
            let slug = tenant.slug().to_string();
            let outcome = tokio::task::spawn_blocking(move || {
                apply_jobs(&tenant, service.indexes(), jobs, now)
            })
            .await
            .map_err(|e| SearchError::Join(e.to_string()))
            .and_then(|r| r);
            let each = match outcome {
                Ok((Applied::Committed(n), _)) => {
                    tracing::debug!(practice = %slug, changes = n, "chat index updated");
                    Outcome::Done
                }
                // Rebuilt from the database in the next round, these jobs with it.
                Ok((Applied::Dropped, _)) => Outcome::Keep,
                Err(e) => {
                    tracing::warn!(practice = %slug, error = %e, "chat indexing failed; retried later");
                    Outcome::retry(e.to_string())
                }
            };
            ids.into_iter().map(|id| (id, each.clone())).collect()
        })
    }

    fn sweep(&self) {
        match self.service.indexes().evict_idle(self.settings.idle_close) {
            0 => {}
            closed => tracing::debug!(closed, "closed idle chat indexes"),
        }
    }

    fn stop(&self) {
        // Close the writers cleanly (merges in progress finish) before the node goes.
        self.service.indexes().close_all();
    }
}

/// Registers the search kind for `platform.sqlite`.
pub fn register(registry: &mut kollegium_tenants::jobs::Registry, jobs: Arc<SearchJobs>) {
    registry.register(&PLATFORM_DB, jobs);
}
