//! The node's mail delivery worker: one tokio task that delivers due mail from the
//! `mail_queue` of every practice database kind it is given.
//!
//! Which practices it looks at:
//! - practices poked through the [`MailSignal`] (request code that just queued mail);
//! - practices known to hold undelivered mail, when their next attempt is due;
//! - a periodic sweep: every live practice at start-up, afterwards the practices that are
//!   open on this node plus those created since the last sweep (mail queued by the CLI or
//!   by code that forgot to poke still goes out).
//!
//! Delivery is at least once: a mail is marked sent after the relay accepted it.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

use super::message::build_message;
use super::queue::{self, QueuedMail};
use super::recipient_domain;
use super::signal::MailSignal;
use super::transport::Mailer;
use crate::clock::UnixTime;
use crate::db::{self, DbKind};
use crate::registry::{self, PracticeStatus};
use crate::slug::Slug;
use crate::store::{StoreError, Tenant, TenantStore, practice_dir};
use crate::worker::Worker;

/// Tunables of the worker.
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
    /// Seconds between sweeps for mail nobody poked for.
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

/// The running worker; [`MailWorker::stop`] ends it.
pub struct MailWorker(Worker);

struct Ctx {
    store: Arc<TenantStore>,
    mailer: Arc<Mailer>,
    settings: WorkerSettings,
    stopping: Arc<AtomicBool>,
}

impl MailWorker {
    /// Starts the worker on the current tokio runtime.
    pub fn spawn(
        store: Arc<TenantStore>,
        mailer: Arc<Mailer>,
        signal: Arc<MailSignal>,
        settings: WorkerSettings,
    ) -> Self {
        Self(Worker::spawn("mail", move |c| {
            let ctx = Ctx {
                store,
                mailer,
                settings,
                stopping: c.stopping,
            };
            run(ctx, signal, c.wake)
        }))
    }

    /// Asks the worker to stop after the mail in hand; aborts it after `grace`.
    pub async fn stop(self, grace: Duration) {
        self.0.stop(grace).await;
    }
}

async fn run(ctx: Ctx, signal: Arc<MailSignal>, wake: Arc<Notify>) {
    let mut pending: HashMap<String, UnixTime> = HashMap::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut sweep = tokio::time::interval(Duration::from_secs(ctx.settings.sweep_secs.max(1)));
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_sweep: Option<UnixTime> = None;
    tracing::info!(outbox = ctx.mailer.uses_outbox(), "mail worker started");
    while !ctx.stopping.load(Ordering::SeqCst) {
        let mut candidates = BTreeSet::new();
        tokio::select! {
            _ = wake.notified() => continue,
            _ = signal.notified() => {}
            _ = tick.tick() => {}
            _ = sweep.tick() => {
                let now = ctx.store.clock().now();
                match sweep_candidates(&ctx.store, last_sweep).await {
                    Ok(found) => {
                        candidates.extend(found);
                        last_sweep = Some(now);
                    }
                    Err(e) => tracing::warn!(error = %e, "mail sweep failed"),
                }
            }
        }
        candidates.extend(signal.take());
        let now = ctx.store.clock().now();
        candidates.extend(
            pending
                .iter()
                .filter(|(_, due)| **due <= now)
                .map(|(slug, _)| slug.clone()),
        );
        for slug in candidates {
            if ctx.stopping.load(Ordering::SeqCst) {
                break;
            }
            match deliver_practice(&ctx, &slug).await {
                Ok(Some(next)) => {
                    pending.insert(slug, next);
                }
                Ok(None) => {
                    pending.remove(&slug);
                }
                Err(e) => {
                    tracing::warn!(practice = %slug, error = %e, "mail delivery round failed");
                    let retry = ctx.store.clock().now() + ctx.settings.retry_initial_secs;
                    pending.insert(slug, retry);
                }
            }
        }
    }
    tracing::info!("mail worker stopped");
}

/// Practices to scan in a sweep: all live ones the first time, then the open ones and
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
        Ok(out)
    })
    .await?
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, WorkError> + Send + 'static,
) -> Result<T, WorkError> {
    tokio::task::spawn_blocking(f).await?
}

/// When the next undelivered mail in a practice database that is not open is due, read
/// straight from its file without opening it in the store (a node holds thousands of idle
/// practices, and an open practice need not have every database open; a sweep must open
/// neither). `Some(None)`: nothing waits (or no such file yet). `None`: cannot tell (e.g. a
/// database not yet migrated); the caller opens the database instead.
fn peek(dir: &Path, kind: &DbKind) -> Option<Option<UnixTime>> {
    let path = dir.join(kind.file);
    if !path.exists() {
        return Some(None);
    }
    let mut conn = db::open_connection(&path).ok()?;
    queue::next_due(&mut conn).ok()
}

fn earliest(a: Option<UnixTime>, b: Option<UnixTime>) -> Option<UnixTime> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// What one delivery round of a practice found.
enum Found {
    /// Unknown or deleted practice.
    Gone,
    /// Nothing due now; the next undelivered mail is due then. Nothing was opened.
    NotYet(Option<UnixTime>),
    /// The practice with the due mail of each database read, and the next due time in the
    /// databases that were left closed.
    Due(
        Tenant,
        Vec<(&'static DbKind, Vec<QueuedMail>)>,
        Option<UnixTime>,
    ),
}

/// Delivers the due mail of one practice. Returns when its next undelivered mail is due
/// (`None`: nothing waits, or the practice is gone).
async fn deliver_practice(ctx: &Ctx, slug: &str) -> Result<Option<UnixTime>, WorkError> {
    let Ok(slug) = Slug::parse(slug) else {
        return Ok(None);
    };
    let store = ctx.store.clone();
    let (kinds, batch) = (ctx.settings.kinds.clone(), ctx.settings.batch);
    let now = store.clock().now();
    let found = blocking(move || {
        // Databases already open are read through the store; the others are peeked at
        // from their files and opened only when mail in them is due.
        let open = store.open_tenant(&slug);
        let dir = practice_dir(store.data_dir(), &slug);
        let mut read = Vec::new();
        let mut later = None;
        for kind in kinds {
            if open.as_ref().is_some_and(|t| t.is_open(kind)) {
                read.push(kind);
                continue;
            }
            match peek(&dir, kind) {
                Some(None) => {}
                Some(Some(t)) if t > now => later = earliest(later, Some(t)),
                _ => read.push(kind),
            }
        }
        if read.is_empty() {
            return Ok(Found::NotYet(later));
        }
        let tenant = match open {
            Some(t) => t,
            None => match store.tenant(&slug)? {
                Some(t) => t,
                None => return Ok(Found::Gone),
            },
        };
        let mut due = Vec::new();
        if tenant.status() == PracticeStatus::Active {
            for kind in read {
                due.push((kind, queue::due(&mut *tenant.conn(kind)?, now, batch)?));
            }
        }
        Ok(Found::Due(tenant, due, later))
    })
    .await?;
    let (tenant, due, later) = match found {
        Found::Due(tenant, due, later) => (tenant, due, later),
        Found::Gone => return Ok(None),
        Found::NotYet(next_due) => return Ok(next_due), // the databases stay closed
    };
    if tenant.status() != PracticeStatus::Active {
        // Suspended: mail waits until the practice is resumed.
        return Ok(Some(now + ctx.settings.sweep_secs as i64));
    }
    let mut full = false;
    let read: Vec<&'static DbKind> = due.iter().map(|(kind, _)| *kind).collect();
    let mut handled: Vec<&'static DbKind> = Vec::new();
    let mut stopped = false;
    'kinds: for (kind, mails) in due {
        full |= mails.len() as i64 >= ctx.settings.batch;
        if !mails.is_empty() {
            handled.push(kind);
        }
        for mail in mails {
            if ctx.stopping.load(Ordering::SeqCst) {
                stopped = true;
                break 'kinds;
            }
            deliver_one(ctx, &tenant, kind, mail).await?;
        }
    }
    let slug = tenant.slug().to_string();
    blocking(move || {
        // Delivered bodies were overwritten in the database pages; the write-ahead log
        // still holds the pages as they were until it is checkpointed and truncated.
        for kind in handled {
            match db::checkpoint_truncate(&mut *tenant.conn(kind)?) {
                Ok(true) => {}
                Ok(false) => tracing::debug!(practice = %slug, db = kind.name,
                    "write-ahead log in use; truncated after the next delivery"),
                Err(e) => tracing::warn!(practice = %slug, db = kind.name, error = %e,
                    "checkpoint after mail delivery failed"),
            }
        }
        if stopped || full {
            return Ok(Some(now));
        }
        let mut next = later;
        for kind in read {
            next = earliest(next, queue::next_due(&mut *tenant.conn(kind)?)?);
        }
        Ok(next)
    })
    .await
}

async fn deliver_one(
    ctx: &Ctx,
    tenant: &Tenant,
    kind: &'static DbKind,
    mail: QueuedMail,
) -> Result<(), WorkError> {
    let slug = tenant.slug().to_string();
    let domain = recipient_domain(&mail.recipient).to_owned();
    let (id, attempts, created_at) = (mail.id, mail.attempts, mail.created_at);
    let mail_kind = mail.kind.clone();
    let message = match build_message(ctx.mailer.from(), &slug, kind.name, &mail) {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!(practice = %slug, db = kind.name, mail_id = id, mail_kind = %mail_kind,
                to_domain = %domain, reason = %e, "mail cannot be built; given up");
            let (t, now, why) = (tenant.clone(), ctx.store.clock().now(), e.to_string());
            return blocking(move || Ok(queue::mark_failed(&mut *t.conn(kind)?, id, now, &why)?))
                .await;
        }
    };
    let name = format!("{created_at}-{}-{id}", kind.name);
    let outcome = ctx.mailer.deliver(message, tenant.outbox_dir(), name).await;
    let now = ctx.store.clock().now();
    let t = tenant.clone();
    match outcome {
        Ok(()) => {
            tracing::info!(practice = %slug, db = kind.name, mail_id = id, mail_kind = %mail_kind,
                to_domain = %domain, "mail delivered");
            blocking(move || Ok(queue::mark_sent(&mut *t.conn(kind)?, id, now)?)).await
        }
        Err(e) => {
            let failures = attempts + 1;
            let s = &ctx.settings;
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
                return blocking(move || {
                    Ok(queue::mark_failed(&mut *t.conn(kind)?, id, now, &detail)?)
                })
                .await;
            }
            tracing::warn!(practice = %slug, db = kind.name, mail_id = id, mail_kind = %mail_kind,
                to_domain = %domain, attempts = failures, retry_in_secs = delay,
                error = %e.log_class(), "mail delivery failed; will retry");
            blocking(move || {
                Ok(queue::mark_retry(
                    &mut *t.conn(kind)?,
                    id,
                    now + delay,
                    &detail,
                )?)
            })
            .await
        }
    }
}
