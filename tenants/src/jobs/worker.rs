//! The node's job worker: one tokio task that runs the due jobs of every registered kind
//! in every practice.
//!
//! Which practice databases it looks at:
//! - those poked through the [`JobSignal`] (code that just queued jobs): every kind of the
//!   database runs at once (after the kind's `gather` pause);
//! - those known to hold a pending job, when it is due (remembered from earlier rounds; a
//!   `tick` looks at the clock, so a test that moves the store clock and kicks is served);
//! - a periodic sweep: every live practice at start-up (jobs left by a restart), afterwards
//!   the practices open on this node plus those created since the last sweep (jobs queued
//!   by the CLI, or by code that forgot to poke).
//!
//! A database that is not open is peeked at from its file and opened only when a job in it
//! is due: a node holds thousands of idle practices, and a sweep must open none of them.
//!
//! Per practice, database and kind one round runs at a time (a task of its own, at most
//! `concurrency` at once node-wide, and at most the kind's own `Policy::concurrency`): read a batch of due jobs, hand it to the kind's handler
//! (a task of its own, so a panic fails only that batch), record the outcomes; a full batch
//! is followed by the next. Jobs are at least once: a job is deleted after its handler said
//! it succeeded.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;

use super::queue;
use super::{Handler, Job, JobSignal, Outcome, Registry};
use crate::clock::UnixTime;
use crate::db::{self, DbKind};
use crate::registry::{self, PracticeStatus};
use crate::slug::Slug;
use crate::store::{StoreError, Tenant, TenantStore, practice_dir};
use crate::web::metrics::{Gauge, GaugeKind};
use crate::worker::Worker;

/// Tunables of the worker.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// How often remembered due times are compared with the clock.
    pub tick: Duration,
    /// Seconds between sweeps for jobs nobody poked for.
    pub sweep_secs: u64,
    /// Rounds running at once, node-wide.
    pub concurrency: usize,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        Self {
            tick: Duration::from_secs(1),
            sweep_secs: 60,
            concurrency: 8,
        }
    }
}

/// Counters of the worker for `/metrics`.
#[derive(Debug, Default)]
pub struct JobStats {
    done: AtomicI64,
    retried: AtomicI64,
    failed: AtomicI64,
}

impl JobStats {
    /// Jobs kept as failed since the node started.
    pub fn failed(&self) -> i64 {
        self.failed.load(Ordering::Relaxed)
    }

    /// The counters as gauges, for the composition to register.
    pub fn gauges(self: &Arc<Self>) -> Vec<Gauge> {
        let (a, b, c) = (self.clone(), self.clone(), self.clone());
        vec![
            Gauge::new(
                "kollegium_jobs_done_total",
                "Background jobs that succeeded since the node started.",
                GaugeKind::Counter,
                move || a.done.load(Ordering::Relaxed),
            ),
            Gauge::new(
                "kollegium_jobs_retried_total",
                "Failed attempts of background jobs that will be retried, since the node started.",
                GaugeKind::Counter,
                move || b.retried.load(Ordering::Relaxed),
            ),
            Gauge::new(
                "kollegium_jobs_failed_total",
                "Background jobs given up (kept as failed with their last error) since the node started.",
                GaugeKind::Counter,
                move || c.failed.load(Ordering::Relaxed),
            ),
        ]
    }
}

#[derive(Debug, thiserror::Error)]
enum WorkError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Db(#[from] diesel::result::Error),
    #[error("background task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// The running worker; [`JobWorker::stop`] ends it.
pub struct JobWorker {
    worker: Worker,
    stats: Arc<JobStats>,
    kicked: Arc<AtomicBool>,
}

struct Ctx {
    store: Arc<TenantStore>,
    registry: Registry,
    signal: Arc<JobSignal>,
    settings: WorkerSettings,
    stopping: Arc<AtomicBool>,
    stats: Arc<JobStats>,
    /// Set by [`JobWorker::kick`]: look at every live practice now.
    kicked: Arc<AtomicBool>,
    limit: Semaphore,
    /// Per kind: its rounds running at once ([`super::Policy::concurrency`]).
    kind_limits: HashMap<&'static str, Semaphore>,
}

impl JobWorker {
    /// Starts the worker on the current tokio runtime.
    pub fn spawn(
        store: Arc<TenantStore>,
        registry: Registry,
        signal: Arc<JobSignal>,
        settings: WorkerSettings,
    ) -> Self {
        let stats = Arc::new(JobStats::default());
        let s = stats.clone();
        let kicked = Arc::new(AtomicBool::new(false));
        let k = kicked.clone();
        let worker = Worker::spawn("jobs", move |c| {
            let kind_limits = registry
                .kinds
                .iter()
                .map(|(_, h)| (h.kind(), Semaphore::new(h.policy().concurrency.max(1))))
                .collect();
            let ctx = Arc::new(Ctx {
                kind_limits,
                store,
                registry,
                signal,
                limit: Semaphore::new(settings.concurrency.max(1)),
                settings,
                stopping: c.stopping,
                stats: s,
                kicked: k,
            });
            run(ctx, c.wake)
        });
        Self {
            worker,
            stats,
            kicked,
        }
    }

    /// The worker's counters (for `/metrics` and tests).
    pub fn stats(&self) -> Arc<JobStats> {
        self.stats.clone()
    }

    /// Looks at every live practice and the clock now (e.g. after a test moved it): due
    /// jobs run at once, also in practices that are not open (peeked at first).
    pub fn kick(&self) {
        self.kicked.store(true, Ordering::SeqCst);
        self.worker.kick();
    }

    /// Stops after the batches in hand; aborts after `grace`.
    pub async fn stop(self, grace: Duration) {
        self.worker.stop(grace).await;
    }
}

/// A practice database.
type Place = (String, &'static str);
/// A practice database and a kind of job in it.
type Unit = (String, &'static str, &'static str);

/// What a finished task reports to the loop.
enum Report {
    /// A practice database was looked at without opening it.
    Looked(Place, Look),
    /// A round of a kind ended; its next pending job is due then.
    Ran(Unit, Option<UnixTime>),
}

enum Look {
    /// Nothing pending.
    Nothing,
    /// The next job is due then; the database stays closed.
    Later(UnixTime),
    /// Open or due: run its kinds.
    Run,
}

struct Loop {
    ctx: Arc<Ctx>,
    /// Practice databases with a job due then, not yet open.
    places: HashMap<Place, UnixTime>,
    /// Kinds of practice databases with a job due then.
    units: HashMap<Unit, UnixTime>,
    /// Rounds in progress, and whether a poke came meanwhile.
    running: HashMap<Unit, bool>,
    /// Units poked while their round ran: they start again as poked rounds (gathering
    /// first), so a steady stream of pokes is batched instead of running a round per poke.
    repoked: HashSet<Unit>,
    looking: HashSet<Place>,
    rounds: JoinSet<Report>,
}

async fn run(ctx: Arc<Ctx>, wake: Arc<Notify>) {
    let mut tick = tokio::time::interval(ctx.settings.tick.max(Duration::from_millis(10)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut sweep = tokio::time::interval(Duration::from_secs(ctx.settings.sweep_secs.max(1)));
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_sweep: Option<UnixTime> = None;
    let kinds: Vec<&str> = ctx.registry.kinds.iter().map(|(_, h)| h.kind()).collect();
    tracing::info!(kinds = ?kinds, "job worker started");
    let mut l = Loop {
        ctx: ctx.clone(),
        places: HashMap::new(),
        units: HashMap::new(),
        running: HashMap::new(),
        repoked: HashSet::new(),
        looking: HashSet::new(),
        rounds: JoinSet::new(),
    };
    while !ctx.stopping.load(Ordering::SeqCst) {
        tokio::select! {
            _ = wake.notified() => {
                if ctx.kicked.swap(false, Ordering::SeqCst) {
                    let now = ctx.store.clock().now();
                    match sweep_candidates(&ctx.store, None).await {
                        Ok(found) => {
                            for slug in found {
                                for db in ctx.registry.dbs() {
                                    l.places.insert((slug.clone(), db.name), now);
                                }
                            }
                        }
                        Err(e) => tracing::warn!(error = %e, "job sweep failed"),
                    }
                }
            }
            _ = ctx.signal.notified() => {}
            _ = tick.tick() => {}
            _ = sweep.tick() => {
                let now = ctx.store.clock().now();
                match sweep_candidates(&ctx.store, last_sweep).await {
                    Ok(found) => {
                        last_sweep = Some(now);
                        for slug in found {
                            for db in ctx.registry.dbs() {
                                l.places.insert((slug.clone(), db.name), now);
                            }
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "job sweep failed"),
                }
                for (_, h) in ctx.registry.kinds.clone() {
                    drop(tokio::task::spawn_blocking(move || h.sweep()));
                }
            }
            Some(done) = l.rounds.join_next(), if !l.rounds.is_empty() => l.report(done),
        }
        if ctx.stopping.load(Ordering::SeqCst) {
            break;
        }
        while let Some(done) = l.rounds.try_join_next() {
            l.report(done);
        }
        l.start();
    }
    // The rounds in hand finish their batch (they check the flag between batches).
    while let Some(done) = l.rounds.join_next().await {
        if let Err(e) = done {
            tracing::warn!(error = %e, "job round failed while stopping");
        }
    }
    for (_, h) in ctx.registry.kinds.clone() {
        if let Err(e) = tokio::task::spawn_blocking(move || h.stop()).await {
            tracing::warn!(error = %e, "a job kind failed to stop");
        }
    }
    tracing::info!("job worker stopped");
}

impl Loop {
    fn report(&mut self, done: Result<Report, tokio::task::JoinError>) {
        match done {
            Ok(Report::Looked(place, look)) => {
                self.looking.remove(&place);
                match look {
                    Look::Nothing => {}
                    Look::Later(t) => {
                        self.places.insert(place, t);
                    }
                    Look::Run => {
                        let now = self.ctx.store.clock().now();
                        for h in self.ctx.registry.of(place.1) {
                            self.units
                                .entry((place.0.clone(), place.1, h.kind()))
                                .or_insert(now);
                        }
                    }
                }
            }
            Ok(Report::Ran(unit, next)) => {
                let poked_meanwhile = self.running.remove(&unit).unwrap_or(false);
                if poked_meanwhile {
                    self.repoked.insert(unit.clone());
                }
                if let Some(t) = next {
                    let e = self.units.entry(unit).or_insert(t);
                    *e = (*e).min(t);
                }
            }
            // A round's task cannot panic (the handler runs in a task of its own); if it
            // did, its unit stays marked running and the sweep does not revive it: log it.
            Err(e) => tracing::error!(error = %e, "job round task failed"),
        }
    }

    /// Starts what is due: poked databases, due kinds, due looks.
    fn start(&mut self) {
        let ctx = self.ctx.clone();
        let now = ctx.store.clock().now();
        // Due kinds, and poked ones (which gather first).
        let mut starts: HashMap<Unit, bool> = self
            .units
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(u, _)| (u.clone(), false))
            .collect();
        for unit in self.repoked.drain() {
            starts.insert(unit, true);
        }
        for (slug, db, kind) in ctx.signal.take() {
            for h in ctx.registry.of(db) {
                if kind.is_none_or(|k| k == h.kind()) {
                    starts.insert((slug.clone(), db, h.kind()), true);
                }
            }
        }
        for (unit, poke) in starts {
            if let Some(again) = self.running.get_mut(&unit) {
                *again |= poke;
                continue;
            }
            self.units.remove(&unit);
            let (Some(db), Some(handler)) = (
                ctx.registry.db(unit.1),
                ctx.registry.handler(unit.1, unit.2),
            ) else {
                continue;
            };
            self.running.insert(unit.clone(), false);
            let c = ctx.clone();
            self.rounds.spawn(async move {
                let next = round(&c, &unit.0, db, handler, poke).await;
                Report::Ran(unit, next)
            });
        }
        let due_places: Vec<Place> = self
            .places
            .iter()
            .filter(|(p, at)| **at <= now && !self.looking.contains(*p))
            .map(|(p, _)| p.clone())
            .collect();
        for place in due_places {
            self.places.remove(&place);
            let Some(db) = ctx.registry.db(place.1) else {
                continue;
            };
            self.looking.insert(place.clone());
            let c = ctx.clone();
            self.rounds.spawn(async move {
                let Ok(_permit) = c.limit.acquire().await else {
                    return Report::Looked(place, Look::Nothing);
                };
                let (store, slug) = (c.store.clone(), place.0.clone());
                let look = tokio::task::spawn_blocking(move || look(&store, &slug, db, now))
                    .await
                    .unwrap_or(Look::Run);
                Report::Looked(place, look)
            });
        }
    }
}

/// Whether a practice database has due jobs, without opening it in the store if it is not
/// open already.
fn look(store: &TenantStore, slug: &str, db: &'static DbKind, now: UnixTime) -> Look {
    let Ok(slug) = Slug::parse(slug) else {
        return Look::Nothing;
    };
    if store.open_tenant(&slug).is_some_and(|t| t.is_open(db)) {
        return Look::Run;
    }
    match peek(&practice_dir(store.data_dir(), &slug), db) {
        Some(None) => Look::Nothing,
        Some(Some(t)) if t > now => Look::Later(t),
        _ => Look::Run,
    }
}

/// When the next pending job in a practice database is due, read straight from its file.
/// `Some(None)`: nothing waits (or no such file yet). `None`: cannot tell (e.g. a database
/// not yet migrated); the caller opens the database instead.
fn peek(dir: &Path, db: &DbKind) -> Option<Option<UnixTime>> {
    let path = dir.join(db.file);
    if !path.exists() {
        return Some(None);
    }
    let mut conn = db::open_connection(&path).ok()?;
    queue::next_due(&mut conn).ok()
}

/// Practices to look at in a sweep: all live ones the first time, then the open ones and
/// those created since the previous sweep.
async fn sweep_candidates(
    store: &Arc<TenantStore>,
    last: Option<UnixTime>,
) -> Result<Vec<String>, WorkError> {
    let store = store.clone();
    tokio::task::spawn_blocking(move || -> Result<Vec<String>, WorkError> {
        let all = store.with_registry(registry::list)?;
        let mut out: Vec<String> = all
            .into_iter()
            .filter(|p| p.status != PracticeStatus::Deleted)
            .filter(|p| last.is_none_or(|t| p.created_at >= t - 300))
            .map(|p| p.slug)
            .collect();
        if last.is_some() {
            out.extend(store.open_slugs());
        }
        out.sort();
        out.dedup();
        Ok(out)
    })
    .await?
}

/// What a round read.
enum Read {
    Gone,
    Suspended,
    Idle(Option<UnixTime>),
    Batch(Tenant, Vec<Job>),
}

/// Rounds of one kind in one practice database until nothing is due. Returns when its next
/// pending job is due.
async fn round(
    ctx: &Arc<Ctx>,
    slug: &str,
    db: &'static DbKind,
    handler: Arc<dyn Handler>,
    poked: bool,
) -> Option<UnixTime> {
    let policy = handler.policy();
    let kind = handler.kind();
    if poked && !policy.gather.is_zero() {
        tokio::time::sleep(policy.gather).await;
    }
    let _kind_permit = match ctx.kind_limits.get(kind) {
        Some(s) => match s.acquire().await {
            Ok(p) => Some(p),
            Err(_) => return None,
        },
        None => None,
    };
    let Ok(_permit) = ctx.limit.acquire().await else {
        return None;
    };
    let Ok(slug) = Slug::parse(slug) else {
        return None;
    };
    loop {
        let now = ctx.store.clock().now();
        if ctx.stopping.load(Ordering::SeqCst) {
            return Some(now);
        }
        let (store, s, limit) = (ctx.store.clone(), slug.clone(), policy.batch);
        let read = tokio::task::spawn_blocking(move || -> Result<Read, WorkError> {
            // A database that is not open is peeked at first and opened only when a job in
            // it is due (a poke for a practice nobody uses opens nothing).
            if !store.open_tenant(&s).is_some_and(|t| t.is_open(db)) {
                match peek(&practice_dir(store.data_dir(), &s), db) {
                    Some(None) => return Ok(Read::Idle(None)),
                    Some(Some(t)) if t > now => return Ok(Read::Idle(Some(t))),
                    _ => {}
                }
            }
            let Some(tenant) = store.tenant(&s)? else {
                return Ok(Read::Gone);
            };
            if tenant.status() != PracticeStatus::Active {
                return Ok(Read::Suspended);
            }
            let mut conn = tenant.conn(db)?;
            let batch = queue::due(&mut conn, kind, now, limit)?;
            if batch.is_empty() {
                return Ok(Read::Idle(queue::next_due_of(&mut conn, kind)?));
            }
            drop(conn);
            Ok(Read::Batch(tenant, batch))
        })
        .await
        .map_err(WorkError::from)
        .and_then(|r| r);
        let (tenant, batch) = match read {
            Ok(Read::Batch(t, b)) => (t, b),
            Ok(Read::Idle(next)) => return next,
            Ok(Read::Gone) => return None,
            // Jobs of a suspended practice wait until it is resumed.
            Ok(Read::Suspended) => return Some(now + ctx.settings.sweep_secs as i64),
            Err(e) => {
                tracing::warn!(practice = %slug, db = db.name, kind, error = %e, "job round failed");
                return Some(now + ctx.settings.sweep_secs as i64);
            }
        };
        let n = batch.len();
        let (h, t, b) = (handler.clone(), tenant.clone(), batch.clone());
        let outcomes = match tokio::spawn(async move { h.run(t, db, b).await }).await {
            Ok(o) => o,
            Err(e) => {
                tracing::error!(practice = %slug, db = db.name, kind, error = %e, "job handler failed; the batch is retried");
                batch
                    .iter()
                    .map(|j| (j.id, Outcome::retry("handler failed")))
                    .collect()
            }
        };
        let progress = outcomes.iter().any(|(_, o)| *o != Outcome::Keep);
        for (id, o) in &outcomes {
            let Some(job) = batch.iter().find(|j| j.id == *id) else {
                continue;
            };
            match o {
                Outcome::GiveUp(e) => {
                    tracing::warn!(practice = %slug, db = db.name, kind, job = job.id, error = %e, "job given up")
                }
                Outcome::Retry { error, .. } if job.attempts + 1 >= policy.max_attempts => {
                    tracing::warn!(practice = %slug, db = db.name, kind, job = job.id, attempts = job.attempts + 1, error = %error, "job failed for the last time; kept as failed")
                }
                Outcome::Retry { error, .. } => {
                    tracing::debug!(practice = %slug, db = db.name, kind, job = job.id, attempts = job.attempts + 1, error = %error, "job failed; will retry")
                }
                _ => {}
            }
        }
        let (t, p) = (tenant.clone(), policy.clone());
        let now = ctx.store.clock().now();
        let applied = tokio::task::spawn_blocking(move || -> Result<_, WorkError> {
            let mut conn = t.conn(db)?;
            let applied = queue::apply(&mut conn, &batch, &outcomes, &p, now)?;
            Ok((applied, queue::next_due_of(&mut conn, kind)?))
        })
        .await
        .map_err(WorkError::from)
        .and_then(|r| r);
        let next = match applied {
            Ok((a, next)) => {
                let s = &ctx.stats;
                s.done.fetch_add(a.done as i64, Ordering::Relaxed);
                s.retried.fetch_add(a.retried as i64, Ordering::Relaxed);
                s.failed.fetch_add(a.failed as i64, Ordering::Relaxed);
                next
            }
            Err(e) => {
                // Not recorded: the jobs stay due and run again (at least once).
                tracing::error!(practice = %slug, db = db.name, kind, error = %e, "job outcomes not recorded");
                return Some(now + ctx.settings.sweep_secs as i64);
            }
        };
        if !progress {
            // Everything kept (in flight elsewhere): look again after a poke or a second.
            return next.map(|t| t.max(now + 1));
        }
        if (n as i64) < policy.batch {
            return next;
        }
    }
}

#[cfg(test)]
#[path = "worker_tests.rs"]
mod tests;
