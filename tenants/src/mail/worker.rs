//! Mail delivery as a kind of background job ([`crate::jobs`]): every mail in a
//! `mail_queue` has a job of kind [`JOB_KIND`] keyed by its row id, queued with it in the
//! same transaction ([`super::queue::enqueue`]). The node's job worker hands due mail jobs
//! to [`MailJobs`], which delivers them through the [`Mailer`], drops the bodies of what
//! went out (or was given up) and truncates the write-ahead log.
//!
//! Delivery is at least once: a mail is marked sent after the relay accepted it, and its
//! job is deleted after that.

use std::sync::Arc;

use super::message::build_message;
use super::queue::{self, QueuedMail};
use super::recipient_domain;
use super::transport::Mailer;
use crate::clock::SharedClock;
use crate::db::{self, DbKind};
use crate::jobs::{BoxFuture, Handler, Job, Outcome, Outcomes, Policy};
use crate::store::{StoreError, Tenant};

/// The kind of a mail's job.
pub const JOB_KIND: &str = "mail";

/// Tunables of mail delivery.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// Practice database kinds that have a `mail_queue` table.
    pub kinds: Vec<&'static DbKind>,
    /// Delay after the first failed attempt; doubled per further failure.
    pub retry_initial_secs: i64,
    /// Longest delay between attempts.
    pub retry_max_secs: i64,
    /// Mail still undelivered this long after it was queued is given up (kept, marked
    /// failed). Its links have expired by then.
    pub give_up_after_secs: i64,
    /// Seconds between the job worker's sweeps for jobs nobody poked for.
    pub sweep_secs: u64,
    /// Mails delivered per practice and database in one go.
    pub batch: i64,
}

impl WorkerSettings {
    pub fn new(kinds: Vec<&'static DbKind>) -> Self {
        Self {
            kinds,
            retry_initial_secs: 60,
            retry_max_secs: 3600,
            give_up_after_secs: 7 * 24 * 3600,
            sweep_secs: 60,
            batch: 50,
        }
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

/// The mail kind of job: register it for every database kind in `settings.kinds`
/// ([`MailJobs::register`]).
pub struct MailJobs {
    mailer: Arc<Mailer>,
    settings: WorkerSettings,
    clock: SharedClock,
}

impl MailJobs {
    pub fn new(mailer: Arc<Mailer>, settings: WorkerSettings, clock: SharedClock) -> Arc<Self> {
        Arc::new(Self {
            mailer,
            settings,
            clock,
        })
    }

    /// Registers the kind for each database kind that carries mail.
    pub fn register(self: &Arc<Self>, registry: &mut crate::jobs::Registry) {
        tracing::info!(
            outbox = self.mailer.uses_outbox(),
            "mail delivery registered"
        );
        for db in self.settings.kinds.clone() {
            registry.register(db, self.clone());
        }
    }
}

impl Handler for MailJobs {
    fn kind(&self) -> &'static str {
        JOB_KIND
    }

    fn policy(&self) -> Policy {
        let s = &self.settings;
        Policy {
            batch: s.batch.max(1),
            retry_initial_secs: s.retry_initial_secs,
            retry_max_secs: s.retry_max_secs,
            // Mail is given up by age (`give_up_after_secs`), not by count.
            max_attempts: i64::MAX,
            gather: std::time::Duration::ZERO,
            // A slow relay for one practice holds one lane; the others go on.
            concurrency: 2,
        }
    }

    fn run(&self, tenant: Tenant, db: &'static DbKind, jobs: Vec<Job>) -> BoxFuture<Outcomes> {
        let (mailer, settings, clock) = (
            self.mailer.clone(),
            self.settings.clone(),
            self.clock.clone(),
        );
        Box::pin(async move { deliver_batch(&mailer, &settings, &clock, tenant, db, jobs).await })
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, WorkError> + Send + 'static,
) -> Result<T, WorkError> {
    tokio::task::spawn_blocking(f).await?
}

/// Delivers the mails of a batch of jobs, then truncates the write-ahead log so no
/// delivered body lingers in it.
async fn deliver_batch(
    mailer: &Mailer,
    settings: &WorkerSettings,
    clock: &SharedClock,
    tenant: Tenant,
    db: &'static DbKind,
    jobs: Vec<Job>,
) -> Outcomes {
    let slug = tenant.slug().to_string();
    let ids: Vec<(i64, Option<i64>)> = jobs.iter().map(|j| (j.id, j.key.parse().ok())).collect();
    let t = tenant.clone();
    let wanted: Vec<i64> = ids.iter().filter_map(|(_, m)| *m).collect();
    let mails = match blocking(move || Ok(queue::undelivered(&mut *t.conn(db)?, &wanted)?)).await {
        Ok(m) => m,
        Err(e) => {
            let why = e.to_string();
            return jobs
                .iter()
                .map(|j| (j.id, Outcome::retry(why.clone())))
                .collect();
        }
    };
    let mut out = Vec::with_capacity(jobs.len());
    let mut touched = false;
    for (job, mail_id) in ids {
        let Some(mail) = mail_id.and_then(|m| mails.iter().find(|q| q.id == m)) else {
            // Delivered or given up already (or no such mail): nothing to do.
            out.push((job, Outcome::Done));
            continue;
        };
        let (outcome, body_dropped) =
            deliver_one(mailer, settings, clock, &tenant, db, mail.clone()).await;
        touched |= body_dropped;
        out.push((job, outcome));
    }
    if touched {
        let t = tenant.clone();
        let checkpoint = blocking(move || Ok(db::checkpoint_truncate(&mut *t.conn(db)?))).await;
        // Delivered bodies were overwritten in the database pages; the write-ahead log
        // still holds the pages as they were until it is checkpointed and truncated.
        match checkpoint {
            Ok(Ok(true)) => {}
            Ok(Ok(false)) => tracing::debug!(practice = %slug, db = db.name,
                "write-ahead log in use; truncated after the next delivery"),
            Ok(Err(e)) => tracing::warn!(practice = %slug, db = db.name, error = %e,
                "checkpoint after mail delivery failed"),
            Err(e) => tracing::warn!(practice = %slug, db = db.name, error = %e,
                "checkpoint after mail delivery failed"),
        }
    }
    out
}

/// Delivers one mail and records the attempt on its row. Returns the job's outcome and
/// whether the body was dropped (delivered or given up).
async fn deliver_one(
    mailer: &Mailer,
    s: &WorkerSettings,
    clock: &SharedClock,
    tenant: &Tenant,
    kind: &'static DbKind,
    mail: QueuedMail,
) -> (Outcome, bool) {
    let slug = tenant.slug().to_string();
    let domain = recipient_domain(&mail.recipient).to_owned();
    let (id, attempts, created_at) = (mail.id, mail.attempts, mail.created_at);
    let mail_kind = mail.kind.clone();
    let message = match build_message(mailer.from(), &slug, kind.name, &mail) {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!(practice = %slug, db = kind.name, mail_id = id, mail_kind = %mail_kind,
                to_domain = %domain, reason = %e, "mail cannot be built; given up");
            let (t, now, why) = (tenant.clone(), clock.now(), e.to_string());
            let w = why.clone();
            return match blocking(move || Ok(queue::mark_failed(&mut *t.conn(kind)?, id, now, &w)?))
                .await
            {
                Ok(()) => (Outcome::GiveUp(why), true),
                Err(e) => (Outcome::retry(e.to_string()), false),
            };
        }
    };
    let name = format!("{created_at}-{}-{id}", kind.name);
    let outcome = mailer.deliver(message, tenant.outbox_dir(), name).await;
    let now = clock.now();
    let t = tenant.clone();
    match outcome {
        Ok(()) => {
            tracing::info!(practice = %slug, db = kind.name, mail_id = id, mail_kind = %mail_kind,
                to_domain = %domain, "mail delivered");
            match blocking(move || Ok(queue::mark_sent(&mut *t.conn(kind)?, id, now)?)).await {
                Ok(()) => (Outcome::Done, true),
                // Not recorded: sent again later (at least once).
                Err(e) => (Outcome::retry(e.to_string()), false),
            }
        }
        Err(e) => {
            let failures = attempts + 1;
            let delay = if e.is_permanent() {
                s.retry_max_secs
            } else {
                queue::backoff(failures, s.retry_initial_secs, s.retry_max_secs)
            };
            let detail = e.to_string();
            if now - created_at >= s.give_up_after_secs {
                tracing::warn!(practice = %slug, db = kind.name, mail_id = id, mail_kind = %mail_kind,
                    to_domain = %domain, attempts = failures, error = %e.log_class(),
                    "mail undeliverable for too long; given up");
                let d = detail.clone();
                return match blocking(move || {
                    Ok(queue::mark_failed(&mut *t.conn(kind)?, id, now, &d)?)
                })
                .await
                {
                    Ok(()) => (Outcome::GiveUp(detail), true),
                    Err(e) => (Outcome::retry(e.to_string()), false),
                };
            }
            tracing::warn!(practice = %slug, db = kind.name, mail_id = id, mail_kind = %mail_kind,
                to_domain = %domain, attempts = failures, retry_in_secs = delay,
                error = %e.log_class(), "mail delivery failed; will retry");
            let d = detail.clone();
            if let Err(e) =
                blocking(move || Ok(queue::mark_retry(&mut *t.conn(kind)?, id, now + delay, &d)?))
                    .await
            {
                tracing::warn!(practice = %slug, error = %e, "mail attempt not recorded");
            }
            (
                Outcome::Retry {
                    error: detail,
                    after: Some(delay),
                },
                false,
            )
        }
    }
}
