//! The node's directory worker: one tokio task that applies the IdP's member directory to
//! every practice whose `platform.sqlite` is open on this node, at most every
//! [`INTERVAL_SECS`] per practice (by the store's clock, so tests move it and kick). It never
//! opens a closed practice: an idle practice sends no mail and shows no lists, and the
//! mention worker syncs before it mails anyway.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use actix_web::web;
use kollegium_tenants::registry::PracticeStatus;
use kollegium_tenants::web::WebContext;
use kollegium_tenants::worker::Worker;
use kollegium_tenants::{Tenant, UnixTime};
use tokio::sync::Notify;

use super::DirectorySync;
use crate::PLATFORM_DB;

/// Seconds between two syncs of one practice.
pub const INTERVAL_SECS: i64 = 5 * 60;
/// How often the worker looks for practices due a sync.
pub const TICK: Duration = Duration::from_secs(60);

/// The running worker.
pub struct DirectoryWorker(Worker);

impl DirectoryWorker {
    /// Starts the worker on the current tokio runtime; its first round runs at once.
    pub fn spawn(web: web::Data<WebContext>, sync: Arc<DirectorySync>) -> Self {
        Self(Worker::spawn("directory", move |c| {
            run(web, sync, c.stopping, c.wake)
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
}

/// The open practices due a sync at `now`, given when each was last tried.
fn due(open: Vec<Tenant>, tried: &HashMap<String, UnixTime>, now: UnixTime) -> Vec<Tenant> {
    open.into_iter()
        .filter(|t| t.status() == PracticeStatus::Active && t.is_open(&PLATFORM_DB))
        .filter(|t| {
            tried
                .get(t.slug().as_str())
                .is_none_or(|at| now - at >= INTERVAL_SECS || *at > now)
        })
        .collect()
}

/// A practice counts as in use while one of its sessions was seen this recently (the
/// default idle limit of a platform session).
const IN_USE_SECS: i64 = 12 * 3600;

/// Whether a member uses the practice's workspace (a session not ended and seen within
/// [`IN_USE_SECS`]): only then do lists and audiences need the directory. Mention mails
/// sync on their own before they are sent.
async fn in_use(t: &Tenant, now: UnixTime) -> bool {
    use diesel::prelude::*;

    use crate::schema::sessions;
    let t = t.clone();
    kollegium_tenants::web::block(move || {
        let Ok(mut c) = t.conn(&PLATFORM_DB) else {
            return true;
        };
        diesel::select(diesel::dsl::exists(
            sessions::table
                .filter(sessions::ended_at.is_null())
                .filter(sessions::last_seen_at.ge(now - IN_USE_SECS)),
        ))
        .get_result::<bool>(&mut *c)
        .unwrap_or(true)
    })
    .await
    .unwrap_or(true)
}

async fn run(
    web: web::Data<WebContext>,
    sync: Arc<DirectorySync>,
    stopping: Arc<AtomicBool>,
    wake: Arc<Notify>,
) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // When each practice was last tried (successfully or not: a failing IdP is asked again
    // after the interval, not every tick).
    let mut tried: HashMap<String, UnixTime> = HashMap::new();
    while !stopping.load(Ordering::SeqCst) {
        tokio::select! {
            _ = wake.notified() => {}
            _ = tick.tick() => {}
        }
        if stopping.load(Ordering::SeqCst) {
            break;
        }
        let now = web.store.clock().now();
        let open = web.store.open_tenants();
        tried.retain(|slug, _| open.iter().any(|t| t.slug().as_str() == slug));
        for t in due(open, &tried, now) {
            if stopping.load(Ordering::SeqCst) {
                break;
            }
            let slug = t.slug().to_string();
            if !in_use(&t, now).await {
                // Nobody uses this workspace now (an open database need not mean that: a
                // visitor's sign-in page opens it too); try again next tick.
                continue;
            }
            if let Err(e) = sync.sync(&web, &t).await {
                tracing::warn!(practice = %slug, error = %e, "member directory sync failed");
            }
            tried.insert(slug, now);
        }
    }
    tracing::info!("directory worker stopped");
}
