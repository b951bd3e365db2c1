//! Retention: a practice may have chat messages deleted once they are older than N months
//! (setting `chat_retention_months`; 0 or unset keeps everything). The node runs the job
//! shortly after start and then daily; [`run_node`] is the job, callable directly.
//!
//! A purged message is removed with its reactions and mention notices, queued for removal
//! from the search index, and rooms' `last_message_id` is set to what remains.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use diesel::prelude::*;
use kollegium_tenants::registry::{self, PracticeStatus};
use kollegium_tenants::store::practice_dir;
use kollegium_tenants::{Slug, TenantStore, UnixTime, db, kv};
use tokio::task::JoinHandle;

use crate::PLATFORM_DB;
use crate::schema::{mention_notices, messages, reactions, rooms};
use crate::search::{SearchError, SearchService, queue};

/// Settings key: months after which chat messages are deleted (0: never).
pub const RETENTION_KEY: &str = "chat_retention_months";
/// Largest retention a practice can set.
pub const MAX_RETENTION_MONTHS: u32 = 120;
/// Messages deleted per transaction (keeps write locks short).
const CHUNK: i64 = 500;

/// The practice's retention in months (0: keep forever).
pub fn months(conn: &mut SqliteConnection) -> QueryResult<u32> {
    Ok(kv::get(conn, RETENTION_KEY)?
        .and_then(|v| v.trim().parse::<u32>().ok())
        .map_or(0, |m| m.min(MAX_RETENTION_MONTHS)))
}

/// Stores the practice's retention in months (0: keep forever).
pub fn set_months(conn: &mut SqliteConnection, months: u32) -> QueryResult<()> {
    kv::set(conn, RETENTION_KEY, &months.to_string())
}

/// The moment `months` calendar months before `now` (same day of month and time, clamped
/// to the month's last day).
pub fn cutoff(now: UnixTime, months: u32) -> UnixTime {
    let days = now.div_euclid(86_400);
    let secs = now.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let total = y * 12 + i64::from(m) - 1 - i64::from(months);
    let (y2, m2) = (total.div_euclid(12), (total.rem_euclid(12) + 1) as u32);
    let d2 = d.min(days_in_month(y2, m2));
    days_from_civil(y2, m2, d2) * 86_400 + secs
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

// Howard Hinnant's civil calendar algorithms.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Deletes messages created before `cutoff`, with their reactions and mention notices,
/// queues them for removal from the index and fixes the rooms' last message. Returns how
/// many messages went.
pub fn purge_before(
    conn: &mut SqliteConnection,
    cutoff: UnixTime,
    now: UnixTime,
) -> QueryResult<usize> {
    let mut total = 0;
    loop {
        let n = conn.immediate_transaction(|conn| -> QueryResult<usize> {
            let old: Vec<(i64, i64)> = messages::table
                .filter(messages::created_at.lt(cutoff))
                .order(messages::id)
                .limit(CHUNK)
                .select((messages::id, messages::room_id))
                .load(conn)?;
            if old.is_empty() {
                return Ok(0);
            }
            let ids: Vec<i64> = old.iter().map(|(id, _)| *id).collect();
            let touched: BTreeSet<i64> = old.iter().map(|(_, r)| *r).collect();
            diesel::delete(reactions::table.filter(reactions::message_id.eq_any(&ids)))
                .execute(conn)?;
            diesel::delete(mention_notices::table.filter(mention_notices::message_id.eq_any(&ids)))
                .execute(conn)?;
            diesel::update(messages::table.filter(messages::reply_to.eq_any(&ids)))
                .set(messages::reply_to.eq(None::<i64>))
                .execute(conn)?;
            diesel::delete(messages::table.filter(messages::id.eq_any(&ids))).execute(conn)?;
            for id in &ids {
                queue::enqueue(conn, *id, now)?;
            }
            for room in touched {
                let last: Option<i64> = messages::table
                    .filter(messages::room_id.eq(room))
                    .select(diesel::dsl::max(messages::id))
                    .first(conn)?;
                diesel::update(rooms::table.find(room))
                    .set(rooms::last_message_id.eq(last))
                    .execute(conn)?;
            }
            Ok(ids.len())
        })?;
        total += n;
        if (n as i64) < CHUNK {
            return Ok(total);
        }
    }
}

/// Applies the practice's retention setting at `now`. Returns how many messages went.
pub fn purge(conn: &mut SqliteConnection, now: UnixTime) -> QueryResult<usize> {
    match months(conn)? {
        0 => Ok(0),
        m => purge_before(conn, cutoff(now, m), now),
    }
}

/// The practice's retention read straight from its database file, without opening the
/// practice (a node holds thousands of idle practices). `None`: cannot tell.
fn peek(practice: &std::path::Path) -> Option<u32> {
    let path = practice.join(PLATFORM_DB.file);
    if !path.exists() {
        return Some(0);
    }
    let mut conn = db::open_connection(&path).ok()?;
    months(&mut conn).ok()
}

/// The retention job over every live practice of the node. Practices that keep messages
/// forever are not opened. Returns how many messages went in total.
pub async fn run_node(
    store: Arc<TenantStore>,
    search: Arc<SearchService>,
) -> Result<usize, SearchError> {
    tokio::task::spawn_blocking(move || -> Result<usize, SearchError> {
        let practices = store.with_registry(registry::list)?;
        let mut total = 0;
        for p in practices {
            if p.status == PracticeStatus::Deleted {
                continue;
            }
            let Ok(slug) = Slug::parse(&p.slug) else {
                continue;
            };
            // Read the setting from the file first, so practices without one (open or
            // not) are not made to open their workspace database.
            if peek(&practice_dir(store.data_dir(), &slug)) == Some(0) {
                continue;
            }
            let Some(tenant) = store.tenant(&slug)? else {
                continue;
            };
            let now = store.clock().now();
            let n = match tenant.conn(&PLATFORM_DB) {
                Ok(mut conn) => purge(&mut conn, now),
                Err(e) => {
                    tracing::warn!(practice = %slug, error = %e, "chat retention skipped");
                    continue;
                }
            };
            match n {
                Ok(0) => {}
                Ok(n) => {
                    tracing::info!(practice = %slug, deleted = n, "chat retention deleted old messages");
                    search.kick(&slug);
                    total += n;
                }
                Err(e) => tracing::warn!(practice = %slug, error = %e, "chat retention failed"),
            }
        }
        Ok(total)
    })
    .await
    .map_err(|e| SearchError::Join(e.to_string()))?
}

/// Runs [`run_node`] `first_after` start-up and then every `every`.
pub fn spawn(
    store: Arc<TenantStore>,
    search: Arc<SearchService>,
    first_after: Duration,
    every: Duration,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        tokio::time::sleep(first_after).await;
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = run_node(store.clone(), search.clone()).await {
                tracing::warn!(error = %e, "chat retention run failed");
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cutoff_counts_calendar_months() {
        // 2026-03-31 12:00 UTC minus one month: 2026-02-28 12:00 UTC.
        let now = days_from_civil(2026, 3, 31) * 86_400 + 12 * 3600;
        assert_eq!(
            cutoff(now, 1),
            days_from_civil(2026, 2, 28) * 86_400 + 12 * 3600
        );
        // Across a year, into a leap February.
        let now = days_from_civil(2025, 2, 28) * 86_400;
        assert_eq!(cutoff(now, 12), days_from_civil(2024, 2, 28) * 86_400);
        let now = days_from_civil(2024, 5, 31) * 86_400;
        assert_eq!(cutoff(now, 3), days_from_civil(2024, 2, 29) * 86_400);
        assert_eq!(cutoff(now, 0), now);
        assert_eq!(civil_from_days(days_from_civil(2000, 2, 29)), (2000, 2, 29));
    }
}
