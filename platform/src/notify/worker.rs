//! Mention mails as a kind of background job ([`kollegium_tenants::jobs`]): posting a
//! mention queues a notice and its job of kind [`JOB_KIND`] (keyed by the notice's id, due
//! after the member's delay) in the same transaction; the node's job worker hands due
//! jobs to [`MentionJobs`], which turns the practice's due notices into mails
//! ([`super::mentions::deliver_due`]) and pokes the job signal for the mail.
//!
//! Before a practice's due notices become mails, the member directory of its IdP is read
//! ([`DirectorySync::sync`]), so nobody whose account was disabled or deleted meanwhile is
//! mailed. If it cannot be read, the notices stay open and their jobs are retried.
//!
//! Time is the store's clock, so tests move it and kick the job worker, or call
//! [`run_practice`] directly.

use std::sync::Arc;

use actix_web::web;
use diesel::prelude::*;
use kollegium_tenants::jobs::{BoxFuture, Handler, Job, Outcome, Outcomes, Policy};
use kollegium_tenants::registry::PracticeStatus;
use kollegium_tenants::store::StoreError;
use kollegium_tenants::web::WebContext;
use kollegium_tenants::{DbKind, Slug, Tenant};

use super::mentions::{self, MailCtx, NotifyError, Round};
use crate::PLATFORM_DB;
use crate::directory::DirectorySync;
use crate::schema::mention_notices;

/// The kind of a mention notice's job.
pub const JOB_KIND: &str = "chat.mention";

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Notify(#[from] NotifyError),
    #[error("background task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// Queues the job of a mention notice (in the transaction that recorded the notice).
pub fn enqueue(
    conn: &mut SqliteConnection,
    notice: i64,
    due_at: kollegium_tenants::UnixTime,
    now: kollegium_tenants::UnixTime,
) -> QueryResult<()> {
    kollegium_tenants::jobs::enqueue(conn, JOB_KIND, &notice.to_string(), None, 0, due_at, now)
}

/// The mention kind of job.
pub struct MentionJobs {
    web: web::Data<WebContext>,
    directory: Arc<DirectorySync>,
}

impl MentionJobs {
    pub fn new(web: web::Data<WebContext>, directory: Arc<DirectorySync>) -> Arc<Self> {
        Arc::new(Self { web, directory })
    }
}

impl Handler for MentionJobs {
    fn kind(&self) -> &'static str {
        JOB_KIND
    }

    fn policy(&self) -> Policy {
        Policy {
            batch: mentions::BATCH,
            // An unreadable member directory: try again soon, for a day at least.
            retry_initial_secs: 30,
            retry_max_secs: 1800,
            max_attempts: 60,
            ..Policy::default()
        }
    }

    fn run(&self, tenant: Tenant, _db: &'static DbKind, jobs: Vec<Job>) -> BoxFuture<Outcomes> {
        let (web, directory) = (self.web.clone(), self.directory.clone());
        Box::pin(async move {
            let outcome = match run_practice(&web, &directory, &tenant).await {
                Ok(r) if !r.directory_unreadable => still_open(&tenant, &jobs).await,
                Ok(_) => Err("member directory unreadable".to_owned()),
                Err(e) => Err(e.to_string()),
            };
            match outcome {
                Ok(open) => jobs
                    .iter()
                    .map(|j| {
                        let keep = j.key.parse::<i64>().is_ok_and(|n| open.contains(&n));
                        (j.id, if keep { Outcome::Keep } else { Outcome::Done })
                    })
                    .collect(),
                Err(e) => jobs
                    .iter()
                    .map(|j| (j.id, Outcome::retry(e.clone())))
                    .collect(),
            }
        })
    }
}

/// The notices of `jobs` that are still open (a round handles at most
/// [`mentions::BATCH`] notices; the rest stay due).
async fn still_open(tenant: &Tenant, jobs: &[Job]) -> Result<Vec<i64>, String> {
    let ids: Vec<i64> = jobs.iter().filter_map(|j| j.key.parse().ok()).collect();
    let t = tenant.clone();
    tokio::task::spawn_blocking(move || -> Result<Vec<i64>, WorkerError> {
        let mut conn = t.conn(&PLATFORM_DB)?;
        Ok(mention_notices::table
            .filter(mention_notices::id.eq_any(&ids))
            .filter(mention_notices::done_at.is_null())
            .select(mention_notices::id)
            .load(&mut *conn)
            .map_err(NotifyError::from)?)
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| e.to_string())
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
            directory_unreadable: true,
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
        web.jobs.poke_kind(
            tenant.slug().as_str(),
            &PLATFORM_DB,
            kollegium_tenants::mail::JOB_KIND,
        );
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
