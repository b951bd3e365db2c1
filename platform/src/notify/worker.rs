//! The node's mention worker: one tokio task that turns due mention notices of every
//! practice into mails ([`super::mentions::deliver_due`]) and pokes the mail worker.
//!
//! Which practices it looks at, every [`TICK`] and when kicked:
//! - the practices open on this node (without keeping them open);
//! - practices known to hold a notice that is due now (remembered from earlier rounds,
//!   opened if they were closed meanwhile);
//! - at start-up, every live practice whose `platform.sqlite` holds an open notice (read
//!   straight from the file, without opening the practice).
//!
//! Before a practice's due notices become mails, the member directory of its IdP is read
//! ([`DirectorySync::sync`]), so nobody whose account was disabled or deleted meanwhile is
//! mailed. If it cannot be read, the notices stay open and the next round tries again.
//!
//! Time is the store's clock, so tests move it and call [`run_practice`] directly.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use actix_web::web;
use diesel::prelude::*;
use kollegium_tenants::registry::{self, PracticeStatus};
use kollegium_tenants::store::{StoreError, practice_dir};
use kollegium_tenants::web::WebContext;
use kollegium_tenants::worker::Worker;
use kollegium_tenants::{Slug, Tenant, UnixTime, db};
use tokio::sync::Notify;

use super::mentions::{self, MailCtx, NotifyError, Round};
use crate::PLATFORM_DB;
use crate::directory::DirectorySync;
use crate::schema::mention_notices;

/// Seconds between rounds when nobody kicks the worker.
pub const TICK: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Notify(#[from] NotifyError),
    #[error("background task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// The running worker.
pub struct MentionWorker(Worker);

impl MentionWorker {
    /// Starts the worker on the current tokio runtime; its first round runs at once.
    pub fn spawn(web: web::Data<WebContext>, directory: Arc<DirectorySync>) -> Self {
        Self(Worker::spawn("mention", move |c| {
            run(web, directory, c.stopping, c.wake)
        }))
    }

    /// Runs a round now (e.g. after a test moved the clock).
    pub fn kick(&self) {
        self.0.kick();
    }

    /// Stops the worker after the round in hand; aborts it after `grace`.
    pub async fn stop(self, grace: Duration) {
        self.0.stop(grace).await;
    }

    /// The plain worker handle, for the app's list of jobs.
    pub fn into_worker(self) -> Worker {
        self.0
    }
}

/// Mails the due mentions of one practice and pokes the mail worker if it queued mail.
///
/// When notices are due, the member directory is applied first; if the IdP cannot tell who
/// is still active, nothing is mailed and the round reports the notices as still due.
pub async fn run_practice(
    web: &WebContext,
    directory: &DirectorySync,
    tenant: &Tenant,
) -> Result<Round, WorkerError> {
    let ctx = MailCtx {
        practice_name: tenant.display_name().to_owned(),
        origin: web.settings.practice_origin(tenant.slug().as_str()),
    };
    let now = web.store.clock().now();
    let t = tenant.clone();
    let next = tokio::task::spawn_blocking(move || -> Result<_, WorkerError> {
        let mut conn = t.conn(&PLATFORM_DB)?;
        Ok(mentions::next_due(&mut conn).map_err(NotifyError::from)?)
    })
    .await??;
    if next.is_none_or(|t| t > now) {
        return Ok(Round {
            next_due: next,
            ..Round::default()
        });
    }
    if let Err(e) = directory.sync(web, tenant).await {
        tracing::warn!(practice = %tenant.slug(), error = %e,
            "member directory unreadable; mention mails wait for the next round");
        return Ok(Round {
            next_due: next,
            ..Round::default()
        });
    }
    let t = tenant.clone();
    let round = tokio::task::spawn_blocking(move || -> Result<Round, WorkerError> {
        let mut conn = t.conn(&PLATFORM_DB)?;
        Ok(mentions::deliver_due(&mut conn, &ctx, now)?)
    })
    .await??;
    if round.mails > 0 {
        web.mail.poke(tenant.slug());
        tracing::info!(practice = %tenant.slug(), mails = round.mails,
            notices = round.notices, "mention mails queued");
    }
    Ok(round)
}

/// [`run_practice`] by slug (opens the practice). `None`: no such live practice.
pub async fn run_slug(
    web: &WebContext,
    directory: &DirectorySync,
    slug: &str,
) -> Result<Option<Round>, WorkerError> {
    let Ok(slug) = Slug::parse(slug) else {
        return Ok(None);
    };
    let store = web.store.clone();
    let tenant = tokio::task::spawn_blocking(move || store.tenant(&slug)).await??;
    match tenant {
        Some(t) if t.status() == PracticeStatus::Active => {
            Ok(Some(run_practice(web, directory, &t).await?))
        }
        _ => Ok(None),
    }
}

/// When the next open notice of every live practice is due, read from the files.
async fn startup_scan(web: &WebContext) -> Result<HashMap<String, UnixTime>, WorkerError> {
    let store = web.store.clone();
    tokio::task::spawn_blocking(move || -> Result<_, WorkerError> {
        let all = store.with_registry(registry::list)?;
        let mut out = HashMap::new();
        for p in all
            .into_iter()
            .filter(|p| p.status != PracticeStatus::Deleted)
        {
            let Ok(slug) = Slug::parse(&p.slug) else {
                continue;
            };
            let path = practice_dir(store.data_dir(), &slug).join(PLATFORM_DB.file);
            if !path.exists() {
                continue;
            }
            let next = db::open_connection(&path).ok().and_then(|mut c| {
                mention_notices::table
                    .filter(mention_notices::done_at.is_null())
                    .select(diesel::dsl::min(mention_notices::due_at))
                    .first::<Option<i64>>(&mut c)
                    .ok()
            });
            match next {
                Some(Some(t)) => {
                    out.insert(p.slug, t);
                }
                Some(None) => {}
                // Cannot tell (e.g. not migrated yet): look at it in the first round.
                None => {
                    out.insert(p.slug, 0);
                }
            }
        }
        Ok(out)
    })
    .await?
}

async fn run(
    web: web::Data<WebContext>,
    directory: Arc<DirectorySync>,
    stopping: Arc<AtomicBool>,
    wake: Arc<Notify>,
) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut pending: HashMap<String, UnixTime> = match startup_scan(&web).await {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(error = %e, "mention worker could not scan the practices");
            HashMap::new()
        }
    };
    tracing::info!(waiting = pending.len(), "mention worker started");
    while !stopping.load(Ordering::SeqCst) {
        tokio::select! {
            _ = wake.notified() => {}
            _ = tick.tick() => {}
        }
        if stopping.load(Ordering::SeqCst) {
            break;
        }
        let now = web.store.clock().now();
        let mut open: Vec<Tenant> = web.store.open_tenants();
        // Practices whose workspace database is open; the others are peeked at when due.
        open.retain(|t| t.status() == PracticeStatus::Active && t.is_open(&PLATFORM_DB));
        let mut due: Vec<String> = pending
            .iter()
            .filter(|(slug, at)| **at <= now && !open.iter().any(|t| t.slug().as_str() == *slug))
            .map(|(slug, _)| slug.clone())
            .collect();
        due.sort();
        for t in &open {
            if stopping.load(Ordering::SeqCst) {
                break;
            }
            let slug = t.slug().to_string();
            match run_practice(&web, &directory, t).await {
                Ok(r) => remember(&mut pending, slug, r.next_due),
                Err(e) => {
                    tracing::warn!(practice = %slug, error = %e, "mention round failed");
                }
            }
        }
        for slug in due {
            if stopping.load(Ordering::SeqCst) {
                break;
            }
            match run_slug(&web, &directory, &slug).await {
                Ok(Some(r)) => remember(&mut pending, slug, r.next_due),
                // Gone or suspended: a later round (or the start-up scan) finds it again.
                Ok(None) => {
                    pending.remove(&slug);
                }
                Err(e) => {
                    tracing::warn!(practice = %slug, error = %e, "mention round failed");
                }
            }
        }
    }
    tracing::info!("mention worker stopped");
}

fn remember(pending: &mut HashMap<String, UnixTime>, slug: String, next: Option<UnixTime>) {
    match next {
        Some(t) => {
            pending.insert(slug, t);
        }
        None => {
            pending.remove(&slug);
        }
    }
}
