//! Background jobs of every app of a practice: one mechanism for everything that happens
//! after a change commits (mail delivery, search indexing, mention mails, back-channel
//! logout notices, ...).
//!
//! - **The table.** Every practice database kind that has jobs has the identical `jobs`
//!   table ([`JOBS_SQL`], created by a migration of the owning crate). Code that changes
//!   something writes the job with [`queue::enqueue`] on its own connection, in the same
//!   transaction as the change: a rolled-back change leaves no job, a committed one always
//!   has its job. A job is `(kind, key)`: the key names what changed (e.g. `<document kind>:42`), so
//!   a change queued twice while the first is pending is one job (its `revision` grows).
//! - **The signal.** After the commit the code pokes the node's [`JobSignal`] with the
//!   practice and database; the worker runs that database's due jobs at once.
//! - **The kinds.** Each kind is a [`Handler`] registered by its owner at composition time
//!   ([`Registry::register`], with the database kind it lives in); `tenants` names no app.
//!   A handler gets a batch of due jobs of its kind and says per job what happened
//!   ([`Outcome`]). Typed payloads: [`JobType`] (`KIND` and `Payload`), [`enqueue_typed`]
//!   and [`Job::payload`].
//! - **The worker** ([`worker::JobWorker`]): one task per node, woken by the signal and by a
//!   timer (due retries, and after a restart everything left in the tables), runs due jobs
//!   per practice, database and kind with bounded concurrency, deletes a job when it
//!   succeeded, and on failure counts the attempt and sets `run_after` with exponential
//!   backoff ([`Policy`]); after the kind's last attempt the job is kept as failed with its
//!   `last_error` (logged, `kollegium_jobs_failed_total` on `/metrics`). A panic or error in
//!   one kind or one practice never stops the others.

pub mod queue;
mod signal;
pub mod worker;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::clock::UnixTime;
use crate::db::DbKind;
use crate::store::Tenant;

pub use queue::{enqueue, enqueue_typed};
pub use signal::JobSignal;
pub use worker::{JobWorker, WorkerSettings};

/// The `jobs` table as every practice database kind with jobs creates it (its migration
/// holds this SQL; the schema check compares it with [`schema::jobs`]).
pub const JOBS_SQL: &str = "CREATE TABLE jobs (
    id INTEGER PRIMARY KEY NOT NULL,
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    payload TEXT,
    priority INTEGER NOT NULL DEFAULT 0,
    revision INTEGER NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    run_after INTEGER NOT NULL,
    last_error TEXT,
    failed_at INTEGER,
    created_at INTEGER NOT NULL
) STRICT;
CREATE UNIQUE INDEX jobs_pending_key ON jobs(kind, key) WHERE failed_at IS NULL;
CREATE INDEX jobs_due ON jobs(kind, priority DESC, run_after) WHERE failed_at IS NULL;";

pub mod schema {
    diesel::table! {
        jobs (id) {
            id -> BigInt,
            kind -> Text,
            key -> Text,
            payload -> Nullable<Text>,
            priority -> BigInt,
            revision -> BigInt,
            attempts -> BigInt,
            run_after -> BigInt,
            last_error -> Nullable<Text>,
            failed_at -> Nullable<BigInt>,
            created_at -> BigInt,
        }
    }
}

/// A due job as its handler gets it.
#[derive(Debug, Clone, PartialEq, Eq, diesel::Queryable, diesel::Selectable)]
#[diesel(table_name = schema::jobs)]
pub struct Job {
    pub id: i64,
    pub kind: String,
    pub key: String,
    pub payload: Option<String>,
    pub priority: i64,
    /// Grows when the same `(kind, key)` is queued again while pending: a job completes
    /// only at the revision its handler read, so a change made meanwhile runs again.
    pub revision: i64,
    /// Failed attempts so far.
    pub attempts: i64,
    pub run_after: UnixTime,
    pub created_at: UnixTime,
}

/// Why a job's payload could not be read.
#[derive(Debug, thiserror::Error)]
pub enum PayloadError {
    #[error("job has no payload")]
    Missing,
    #[error("job payload: {0}")]
    Json(#[from] serde_json::Error),
}

impl Job {
    /// The payload as the kind's type.
    pub fn payload<P: DeserializeOwned>(&self) -> Result<P, PayloadError> {
        let text = self.payload.as_deref().ok_or(PayloadError::Missing)?;
        Ok(serde_json::from_str(text)?)
    }
}

/// A kind of job with a typed payload: what [`enqueue_typed`] writes and
/// [`Job::payload`] reads.
pub trait JobType {
    /// The stored kind (`mail`, `search`, ...): unique per database kind.
    const KIND: &'static str;
    type Payload: Serialize + DeserializeOwned;
}

/// What became of one job of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Done: the job is deleted (if it was not queued again meanwhile).
    Done,
    /// Failed this time: the attempt counts; it runs again after the kind's backoff, or
    /// after `after` seconds if given. After the kind's last attempt it is kept as failed.
    Retry { error: String, after: Option<i64> },
    /// Can never succeed: kept as failed with the error, not retried.
    GiveUp(String),
    /// Left as it is: the handler records the outcome itself later (deliveries still in
    /// flight), or the job is simply still due (a batch cut short).
    Keep,
}

impl Outcome {
    pub fn retry(error: impl Into<String>) -> Self {
        Self::Retry {
            error: error.into(),
            after: None,
        }
    }
}

/// How the worker runs a kind.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Due jobs handed to the handler at once (a full batch is followed by the next).
    pub batch: i64,
    /// Delay after the first failure; doubled per further failure.
    pub retry_initial_secs: i64,
    /// Longest delay between attempts.
    pub retry_max_secs: i64,
    /// Attempts before a job is kept as failed.
    pub max_attempts: i64,
    /// Pause after a poke before the batch is read, so a burst becomes one batch (search:
    /// each index commit costs ~10 ms of CPU however small).
    pub gather: Duration,
    /// Rounds of this kind running at once, node-wide (each in another practice).
    pub concurrency: usize,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            batch: 100,
            retry_initial_secs: 30,
            retry_max_secs: 3600,
            max_attempts: 20,
            gather: Duration::ZERO,
            concurrency: 2,
        }
    }
}

/// A boxed future, so handlers of every kind fit in one list.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// The outcome of each job of a batch, by job id. A job of the batch not named is left as
/// it is ([`Outcome::Keep`]).
pub type Outcomes = Vec<(i64, Outcome)>;

/// A kind of job and how to run it, registered by its owner.
pub trait Handler: Send + Sync + 'static {
    /// The stored kind.
    fn kind(&self) -> &'static str;

    /// How the worker runs it.
    fn policy(&self) -> Policy {
        Policy::default()
    }

    /// Runs a batch of due jobs of one practice and database (ordered by priority, then
    /// due time). It runs as a task of its own: a panic fails only this batch (every job
    /// counts a failed attempt).
    fn run(&self, tenant: Tenant, db: &'static DbKind, jobs: Vec<Job>) -> BoxFuture<Outcomes>;

    /// Housekeeping at each of the worker's sweeps (e.g. closing idle resources). Runs off
    /// the async threads.
    fn sweep(&self) {}

    /// Called once when the worker stops, after the rounds in hand (e.g. to close writers
    /// or abort work the handler left in flight). Runs off the async threads.
    fn stop(&self) {}
}

/// The kinds the node runs, each with the database kind its jobs live in.
#[derive(Clone, Default)]
pub struct Registry {
    kinds: Vec<(&'static DbKind, Arc<dyn Handler>)>,
}

impl Registry {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a kind whose jobs live in `db` (a kind may be registered for several
    /// databases, e.g. mail).
    pub fn register(&mut self, db: &'static DbKind, handler: Arc<dyn Handler>) -> &mut Self {
        self.kinds.push((db, handler));
        self
    }

    /// The database kinds that have jobs.
    pub fn dbs(&self) -> Vec<&'static DbKind> {
        let mut out: Vec<&'static DbKind> = Vec::new();
        for (db, _) in &self.kinds {
            if !out.iter().any(|d| d.name == db.name) {
                out.push(db);
            }
        }
        out
    }

    /// The kinds of `db`.
    pub fn of(&self, db: &str) -> Vec<Arc<dyn Handler>> {
        self.kinds
            .iter()
            .filter(|(d, _)| d.name == db)
            .map(|(_, h)| h.clone())
            .collect()
    }

    fn db(&self, name: &str) -> Option<&'static DbKind> {
        self.kinds
            .iter()
            .find(|(d, _)| d.name == name)
            .map(|(d, _)| *d)
    }

    fn handler(&self, db: &str, kind: &str) -> Option<Arc<dyn Handler>> {
        self.kinds
            .iter()
            .find(|(d, h)| d.name == db && h.kind() == kind)
            .map(|(_, h)| h.clone())
    }
}
