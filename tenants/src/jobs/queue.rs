//! The `jobs` table of a practice database: enqueue (inside the caller's transaction),
//! due jobs of a kind, outcomes. Plain functions on a connection.

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Text};

use super::schema::jobs;
use super::{Job, JobType, Outcome, Policy};
use crate::clock::UnixTime;

/// Longest error text kept in `last_error`.
const MAX_ERROR_CHARS: usize = 500;

/// The upsert every enqueue runs: a pending job of the same `(kind, key)` is the same job;
/// queued again, it gets the new payload, the earlier due time and a new revision (so a
/// run that read the old revision does not delete it). Owners with a hot path may prepare
/// the same statement with [`crate::prepared`] (an app's queue on a hot path does).
pub const ENQUEUE_SQL: &str = "INSERT INTO jobs (kind, key, payload, priority, run_after, created_at) \
     VALUES (?, ?, ?, ?, ?, ?) \
     ON CONFLICT (kind, key) WHERE failed_at IS NULL DO UPDATE SET \
     payload = excluded.payload, revision = revision + 1, \
     run_after = min(run_after, excluded.run_after), priority = excluded.priority";

/// Queues a job of `kind` for `key`, due at `run_after`. Call it in the transaction of the
/// change it is about, then poke the [`super::JobSignal`] after the commit.
pub fn enqueue(
    conn: &mut SqliteConnection,
    kind: &str,
    key: &str,
    payload: Option<&str>,
    priority: i64,
    run_after: UnixTime,
    now: UnixTime,
) -> QueryResult<()> {
    diesel::sql_query(ENQUEUE_SQL)
        .bind::<Text, _>(kind)
        .bind::<Text, _>(key)
        .bind::<Nullable<Text>, _>(payload)
        .bind::<BigInt, _>(priority)
        .bind::<BigInt, _>(run_after)
        .bind::<BigInt, _>(now)
        .execute(conn)
        .map(|_| ())
}

/// [`enqueue`] for a kind with a typed payload, due now.
pub fn enqueue_typed<J: JobType>(
    conn: &mut SqliteConnection,
    key: &str,
    payload: &J::Payload,
    priority: i64,
    now: UnixTime,
) -> QueryResult<()> {
    let text = serde_json::to_string(payload)
        .map_err(|e| diesel::result::Error::SerializationError(Box::new(e)))?;
    enqueue(conn, J::KIND, key, Some(&text), priority, now, now)
}

/// Due jobs of `kind`: highest priority first, then oldest due first.
pub fn due(
    conn: &mut SqliteConnection,
    kind: &str,
    now: UnixTime,
    limit: i64,
) -> QueryResult<Vec<Job>> {
    jobs::table
        .filter(jobs::kind.eq(kind))
        .filter(jobs::failed_at.is_null())
        .filter(jobs::run_after.le(now))
        .order((jobs::priority.desc(), jobs::run_after, jobs::id))
        .limit(limit.max(1))
        .select(Job::as_select())
        .load(conn)
}

/// When the next pending job of `kind` is due (`None`: none waits).
pub fn next_due_of(conn: &mut SqliteConnection, kind: &str) -> QueryResult<Option<UnixTime>> {
    jobs::table
        .filter(jobs::kind.eq(kind))
        .filter(jobs::failed_at.is_null())
        .select(diesel::dsl::min(jobs::run_after))
        .first(conn)
}

/// When the next pending job of any kind is due (`None`: none waits).
pub fn next_due(conn: &mut SqliteConnection) -> QueryResult<Option<UnixTime>> {
    jobs::table
        .filter(jobs::failed_at.is_null())
        .select(diesel::dsl::min(jobs::run_after))
        .first(conn)
}

/// Whether a job of `kind` is pending (due or not).
pub fn pending(conn: &mut SqliteConnection, kind: &str) -> QueryResult<bool> {
    Ok(next_due_of(conn, kind)?.is_some())
}

/// Jobs kept as failed, of every kind.
pub fn failed(conn: &mut SqliteConnection) -> QueryResult<i64> {
    jobs::table
        .filter(jobs::failed_at.is_not_null())
        .count()
        .get_result(conn)
}

/// Deletes a job that succeeded, unless it was queued again since `job` was read. Returns
/// whether it went.
pub fn complete(conn: &mut SqliteConnection, job: &Job) -> QueryResult<bool> {
    diesel::delete(
        jobs::table
            .find(job.id)
            .filter(jobs::revision.eq(job.revision)),
    )
    .execute(conn)
    .map(|n| n > 0)
}

/// Delay before attempt `attempts + 1` after `attempts` failures: `initial`, doubled per
/// failure, capped at `max`.
pub fn backoff(attempts: i64, initial: i64, max: i64) -> i64 {
    let initial = initial.max(1);
    let shift = attempts.saturating_sub(1).clamp(0, 40) as u32;
    initial.saturating_mul(1_i64 << shift).min(max.max(initial))
}

fn clip(error: &str) -> String {
    error.chars().take(MAX_ERROR_CHARS).collect()
}

/// Records a failed attempt of `job`: due again after the backoff (or `after`), or kept as
/// failed once it had its last attempt (`give_up`, or `max_attempts` reached). Returns
/// whether it is now kept as failed.
pub fn fail(
    conn: &mut SqliteConnection,
    job: &Job,
    policy: &Policy,
    error: &str,
    after: Option<i64>,
    give_up: bool,
    now: UnixTime,
) -> QueryResult<bool> {
    let attempts = job.attempts + 1;
    let failed = give_up || attempts >= policy.max_attempts.max(1);
    let delay = after
        .unwrap_or_else(|| backoff(attempts, policy.retry_initial_secs, policy.retry_max_secs));
    diesel::update(jobs::table.find(job.id))
        .set((
            jobs::attempts.eq(attempts),
            jobs::run_after.eq(now + delay.max(0)),
            jobs::last_error.eq(clip(error)),
            jobs::failed_at.eq(failed.then_some(now)),
        ))
        .execute(conn)?;
    Ok(failed)
}

/// What applying a batch's outcomes did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    pub done: usize,
    pub retried: usize,
    /// Jobs now kept as failed.
    pub failed: usize,
}

/// Records the outcomes of a batch in one transaction. Outcomes of ids not in `batch` are
/// ignored; jobs of the batch without an outcome are left as they are.
pub fn apply(
    conn: &mut SqliteConnection,
    batch: &[Job],
    outcomes: &[(i64, Outcome)],
    policy: &Policy,
    now: UnixTime,
) -> QueryResult<Applied> {
    conn.immediate_transaction(|conn| {
        let mut applied = Applied::default();
        for (id, outcome) in outcomes {
            let Some(job) = batch.iter().find(|j| j.id == *id) else {
                continue;
            };
            match outcome {
                Outcome::Done => {
                    complete(conn, job)?;
                    applied.done += 1;
                }
                Outcome::Retry { error, after } => {
                    if fail(conn, job, policy, error, *after, false, now)? {
                        applied.failed += 1;
                    } else {
                        applied.retried += 1;
                    }
                }
                Outcome::GiveUp(error) => {
                    fail(conn, job, policy, error, None, true, now)?;
                    applied.failed += 1;
                }
                Outcome::Keep => {}
            }
        }
        Ok(applied)
    })
}

#[cfg(test)]
mod tests {
    use diesel::connection::SimpleConnection;

    use super::*;

    fn db() -> SqliteConnection {
        let mut c = SqliteConnection::establish(":memory:").unwrap();
        c.batch_execute(super::super::JOBS_SQL).unwrap();
        c
    }

    fn count(c: &mut SqliteConnection) -> i64 {
        jobs::table.count().get_result(c).unwrap()
    }

    #[test]
    fn enqueue_in_a_rolled_back_transaction_leaves_no_job() {
        let mut c = db();
        let r: QueryResult<()> = c.transaction(|c| {
            enqueue(c, "search", "doc:1", None, 0, 100, 100)?;
            Err(diesel::result::Error::RollbackTransaction)
        });
        assert!(r.is_err());
        assert_eq!(count(&mut c), 0);
        c.transaction(|c| enqueue(c, "search", "doc:1", None, 0, 100, 100))
            .unwrap();
        assert_eq!(count(&mut c), 1);
    }

    #[test]
    fn a_key_queued_twice_is_one_job_whose_new_revision_survives_the_old_run() {
        let mut c = db();
        enqueue(&mut c, "search", "doc:1", None, 0, 100, 100).unwrap();
        enqueue(&mut c, "mail", "doc:1", None, 0, 100, 100).unwrap();
        let read = due(&mut c, "search", 100, 10).unwrap();
        assert_eq!(read.len(), 1);
        // Changed again while the handler ran: one job, a new revision, due at the earlier time.
        enqueue(&mut c, "search", "doc:1", Some("{}"), 0, 150, 150).unwrap();
        assert_eq!(count(&mut c), 2);
        let again = due(&mut c, "search", 100, 10).unwrap();
        assert_eq!(
            (again.len(), again[0].revision, again[0].run_after),
            (1, 1, 100)
        );
        assert!(
            !complete(&mut c, &read[0]).unwrap(),
            "the old revision keeps it"
        );
        assert!(complete(&mut c, &again[0]).unwrap());
        assert!(due(&mut c, "search", 1_000, 10).unwrap().is_empty());
        assert_eq!(due(&mut c, "mail", 1_000, 10).unwrap().len(), 1);
    }

    #[test]
    fn due_orders_by_priority_then_time_and_skips_what_is_not_due() {
        let mut c = db();
        enqueue(&mut c, "k", "a", None, 0, 100, 100).unwrap();
        enqueue(&mut c, "k", "b", None, 0, 90, 100).unwrap();
        enqueue(&mut c, "k", "c", None, 1, 110, 100).unwrap();
        enqueue(&mut c, "k", "d", None, 5, 500, 100).unwrap();
        let keys = |v: Vec<Job>| v.into_iter().map(|j| j.key).collect::<Vec<_>>();
        assert_eq!(keys(due(&mut c, "k", 200, 10).unwrap()), ["c", "b", "a"]);
        assert_eq!(keys(due(&mut c, "k", 200, 2).unwrap()), ["c", "b"]);
        assert_eq!(next_due(&mut c).unwrap(), Some(90));
        assert_eq!(next_due_of(&mut c, "other").unwrap(), None);
    }

    #[test]
    fn a_failure_counts_the_attempt_and_backs_off_until_the_cap_keeps_it_failed() {
        let mut c = db();
        let policy = Policy {
            retry_initial_secs: 10,
            retry_max_secs: 25,
            max_attempts: 3,
            ..Policy::default()
        };
        enqueue(&mut c, "k", "a", None, 0, 100, 100).unwrap();
        let mut now = 100;
        let mut delays = Vec::new();
        for _ in 0..3 {
            let batch = due(&mut c, "k", now, 10).unwrap();
            assert_eq!(batch.len(), 1);
            let a = apply(
                &mut c,
                &batch,
                &[(batch[0].id, Outcome::retry("relay down"))],
                &policy,
                now,
            )
            .unwrap();
            let (attempts, run_after, err, failed): (i64, i64, Option<String>, Option<i64>) =
                jobs::table
                    .select((
                        jobs::attempts,
                        jobs::run_after,
                        jobs::last_error,
                        jobs::failed_at,
                    ))
                    .first(&mut c)
                    .unwrap();
            assert_eq!(attempts, batch[0].attempts + 1);
            assert_eq!(err.as_deref(), Some("relay down"));
            delays.push(run_after - now);
            assert!(due(&mut c, "k", run_after - 1, 10).unwrap().is_empty());
            if attempts < 3 {
                assert_eq!((a.retried, a.failed, failed), (1, 0, None));
            } else {
                assert_eq!((a.retried, a.failed, failed), (0, 1, Some(now)));
            }
            now = run_after;
        }
        assert_eq!(&delays[..2], &[10, 20]);
        // Kept as failed: never due again, counted, and the key may be queued afresh.
        assert!(due(&mut c, "k", i64::MAX, 10).unwrap().is_empty());
        assert_eq!(next_due(&mut c).unwrap(), None);
        assert_eq!(failed(&mut c).unwrap(), 1);
        enqueue(&mut c, "k", "a", None, 0, now, now).unwrap();
        assert_eq!(count(&mut c), 2);
    }

    #[test]
    fn outcomes_done_give_up_keep_and_an_explicit_delay() {
        let mut c = db();
        for k in ["a", "b", "c", "d"] {
            enqueue(&mut c, "k", k, None, 0, 100, 100).unwrap();
        }
        let batch = due(&mut c, "k", 100, 10).unwrap();
        let id = |k: &str| batch.iter().find(|j| j.key == k).unwrap().id;
        let outcomes = vec![
            (id("a"), Outcome::Done),
            (id("b"), Outcome::GiveUp("bad address".into())),
            (
                id("c"),
                Outcome::Retry {
                    error: "later".into(),
                    after: Some(3600),
                },
            ),
            (id("d"), Outcome::Keep),
            (9_999, Outcome::Done),
        ];
        let a = apply(&mut c, &batch, &outcomes, &Policy::default(), 100).unwrap();
        assert_eq!(
            a,
            Applied {
                done: 1,
                retried: 1,
                failed: 1
            }
        );
        let left: Vec<(String, i64, Option<i64>)> = jobs::table
            .order(jobs::key)
            .select((jobs::key, jobs::run_after, jobs::failed_at))
            .load(&mut c)
            .unwrap();
        assert_eq!(
            left,
            vec![
                ("b".into(), 130, Some(100)),
                ("c".into(), 3700, None),
                ("d".into(), 100, None)
            ]
        );
    }

    #[test]
    fn typed_payloads_round_trip() {
        #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
        struct Notice {
            uri: String,
        }
        struct Logout;
        impl JobType for Logout {
            const KIND: &'static str = "logout";
            type Payload = Notice;
        }
        let mut c = db();
        let p = Notice {
            uri: "https://tool.example/bc".into(),
        };
        enqueue_typed::<Logout>(&mut c, "n1", &p, 1, 100).unwrap();
        let j = due(&mut c, Logout::KIND, 100, 1).unwrap().remove(0);
        assert_eq!((j.priority, j.payload::<Notice>().unwrap()), (1, p));
    }

    #[test]
    fn backoff_doubles_and_caps() {
        assert_eq!(backoff(1, 60, 3600), 60);
        assert_eq!(backoff(2, 60, 3600), 120);
        assert_eq!(backoff(3, 60, 3600), 240);
        assert_eq!(backoff(10, 60, 3600), 3600);
        assert_eq!(backoff(i64::MAX, 60, 3600), 3600);
        assert_eq!(backoff(0, 0, 0), 1);
    }
}
