//! Group commit: write jobs queued for one database at the same time share one
//! transaction, so a burst of writes costs one commit (one fsync) instead of one each.
//!
//! Each database pool has at most one writer thread. A job queued while the writer is
//! busy waits for the next batch; the writer takes everything queued (up to
//! [`MAX_BATCH`]), opens `BEGIN IMMEDIATE`, runs every job in a savepoint of its own (a
//! job that fails rolls back only itself; the savepoint statements are prepared once per
//! connection, see [`crate::db::savepoint`]), commits, and only then answers the jobs: a
//! job reports success only once its change is durable. If the commit fails, every job of
//! the batch gets the error. The writer ends after [`LINGER`] without work. The sizes of
//! the batches are counted in [`BATCH_SIZES`] (`/metrics`).
//!
//! SQLite allows one writer per database anyway; queuing the writers here instead of in
//! SQLite's busy handler (which sleeps in steps of milliseconds) also keeps their latency
//! low under contention.

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::Duration;

use diesel::SqliteConnection;
use tokio::sync::oneshot;

use crate::db::DbPool;
use crate::web::metrics::Histogram;

/// Jobs per batch, node-wide (every database), exported as
/// `kollegium_group_commit_batch_size` on the operator listener.
pub static BATCH_SIZES: Histogram<9> = Histogram::new([1, 2, 4, 8, 16, 32, 64, 128, 256]);

/// Most jobs in one transaction.
pub const MAX_BATCH: usize = 256;
/// Gap between back-to-back batches; while other connections of the database are in use,
/// up to half the last batch's time (within these bounds), so that writers outside the
/// queue get the lock.
const MIN_GAP: Duration = Duration::from_micros(200);
const MAX_GAP: Duration = Duration::from_millis(20);
/// How long an idle writer thread waits for more work before it ends.
const LINGER: Duration = Duration::from_secs(2);

/// Why a queued write did not take effect.
#[derive(Debug, thiserror::Error)]
pub enum WriteError<E> {
    /// The job itself refused or failed; its savepoint was rolled back.
    #[error(transparent)]
    Job(E),
    /// The batch could not run or commit (nothing of it took effect).
    #[error("database write failed: {0}")]
    Db(String),
}

/// A queued job before it ran.
trait Pending: Send {
    /// Runs the job in a savepoint of the batch's transaction. The error says the savepoint
    /// could not be managed: the batch must not commit.
    fn run(
        self: Box<Self>,
        conn: &mut SqliteConnection,
    ) -> (Box<dyn Finished>, Option<diesel::result::Error>);
    /// The batch could not start: answers with the error.
    fn fail(self: Box<Self>, why: &str);
}

/// A job that ran, waiting for the batch's commit.
trait Finished: Send {
    fn finish(self: Box<Self>, committed: Result<(), &str>);
}

struct Job<F, T, E> {
    f: F,
    tx: oneshot::Sender<Result<T, WriteError<E>>>,
}

struct Done<T, E> {
    result: Result<T, E>,
    tx: oneshot::Sender<Result<T, WriteError<E>>>,
}

impl<F, T, E> Pending for Job<F, T, E>
where
    F: FnOnce(&mut SqliteConnection) -> Result<T, E> + Send,
    T: Send + 'static,
    E: From<diesel::result::Error> + Send + 'static,
{
    fn run(
        self: Box<Self>,
        conn: &mut SqliteConnection,
    ) -> (Box<dyn Finished>, Option<diesel::result::Error>) {
        let Job { f, tx } = *self;
        match crate::db::savepoint(conn, f) {
            Ok(result) => (Box::new(Done { result, tx }), None),
            Err(broken) => {
                // The job's answer is the batch's failure (it will not commit).
                let result = Err(E::from(diesel::result::Error::RollbackTransaction));
                (Box::new(Done { result, tx }), Some(broken))
            }
        }
    }

    fn fail(self: Box<Self>, why: &str) {
        let _ = self.tx.send(Err(WriteError::Db(why.to_owned())));
    }
}

impl<T: Send, E: Send> Finished for Done<T, E> {
    fn finish(self: Box<Self>, committed: Result<(), &str>) {
        let answer = match committed {
            Ok(()) => self.result.map_err(WriteError::Job),
            Err(why) => Err(WriteError::Db(why.to_owned())),
        };
        let _ = self.tx.send(answer);
    }
}

/// The write queue of one database pool.
#[derive(Default)]
pub(crate) struct WriteQueue {
    state: Mutex<QueueState>,
    wake: Condvar,
    /// Transactions run so far (for tests and diagnostics).
    batches: std::sync::atomic::AtomicU64,
    /// Batches after which the writer left the lock free for other connections.
    pauses: std::sync::atomic::AtomicU64,
}

#[derive(Default)]
struct QueueState {
    jobs: VecDeque<Box<dyn Pending>>,
    writer: bool,
}

impl WriteQueue {
    /// Waits for the next batch; `None` when the writer should end.
    fn next_batch(&self) -> Option<Vec<Box<dyn Pending>>> {
        let mut state = self.state.lock().ok()?;
        if state.jobs.is_empty() {
            let (s, _) = self.wake.wait_timeout(state, LINGER).ok()?;
            state = s;
            if state.jobs.is_empty() {
                state.writer = false;
                return None;
            }
        }
        let n = state.jobs.len().min(MAX_BATCH);
        self.batches
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Some(state.jobs.drain(..n).collect())
    }
}

/// Queues `f` to run in a shared write transaction of `pool`'s database and waits for the
/// commit. `f` runs on the pool's writer thread, in a savepoint: returning `Err` undoes
/// only its own changes. Nested `transaction` calls inside it are savepoints too, so `f`
/// must not start its own `BEGIN` (see [`crate::db::write_transaction`]).
pub(crate) async fn write<F, T, E>(pool: &Arc<DbPool>, f: F) -> Result<T, WriteError<E>>
where
    F: FnOnce(&mut SqliteConnection) -> Result<T, E> + Send + 'static,
    T: Send + 'static,
    E: From<diesel::result::Error> + Send + 'static,
{
    let (tx, rx) = oneshot::channel();
    let queue = Arc::clone(pool.write_queue());
    let start_writer = {
        let mut state = queue
            .state
            .lock()
            .map_err(|_| WriteError::Db("write queue poisoned".into()))?;
        state.jobs.push_back(Box::new(Job { f, tx }));
        let start = !state.writer;
        state.writer = true;
        start
    };
    if start_writer {
        let (q, p) = (Arc::clone(&queue), Arc::downgrade(pool));
        let spawned = std::thread::Builder::new()
            .name("db-writer".into())
            .spawn(move || writer(&q, &p));
        if let Err(e) = spawned {
            // No thread: answer everything queued so nobody waits forever.
            let jobs = match queue.state.lock() {
                Ok(mut state) => {
                    state.writer = false;
                    state.jobs.drain(..).collect::<Vec<_>>()
                }
                Err(_) => Vec::new(),
            };
            let why = format!("cannot start the database writer: {e}");
            for j in jobs {
                j.fail(&why);
            }
        }
    } else {
        queue.wake.notify_one();
    }
    rx.await
        .map_err(|_| WriteError::Db("the database writer stopped".into()))?
}

/// The writer thread of one pool: runs batches until the queue stays empty. It holds the
/// pool only while it writes, so a practice closed for idleness closes its files at once.
fn writer(queue: &WriteQueue, weak: &Weak<DbPool>) {
    while let Some(batch) = queue.next_batch() {
        let Some(pool) = weak.upgrade() else {
            for j in batch {
                j.fail("the database was closed");
            }
            continue;
        };
        let mut conn = match pool.get() {
            Ok(c) => c,
            Err(e) => {
                let why = e.to_string();
                for j in batch {
                    j.fail(&why);
                }
                continue;
            }
        };
        let mut finished: Vec<Box<dyn Finished>> = Vec::with_capacity(batch.len());
        let began = std::time::Instant::now();
        BATCH_SIZES.observe(batch.len() as u64);
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            conn.immediate_transaction(|c| {
                let mut broken = None;
                for job in batch {
                    if broken.is_some() {
                        // The batch rolls back anyway: answer without running.
                        job.fail("database write failed: the batch was rolled back");
                        continue;
                    }
                    let (done, error) = job.run(c);
                    finished.push(done);
                    broken = error;
                }
                broken.map_or(Ok(()), Err)
            })
        }));
        match outcome {
            Ok(committed) => {
                let why = committed.err().map(|e| e.to_string());
                for f in finished {
                    f.finish(why.as_deref().map_or(Ok(()), Err));
                }
            }
            Err(_) => {
                // A job panicked: its batch is lost (the dropped answers tell the callers)
                // and the connection, whose transaction state is unknown, is closed.
                tracing::error!(db = %pool.path().display(), "a write job panicked; batch rolled back");
                drop(finished);
                conn.discard();
                continue;
            }
        }
        // Connections of this database in use outside the queue (sessions, the indexer,
        // settings) may be waiting for the write lock in SQLite's busy handler, which
        // sleeps and tries again at moments of its own: if batches followed each other
        // without a gap they would time out ("database is locked"). While any is in use,
        // the lock stays free after each batch until they are done, at most half the
        // batch's time; otherwise only a breath for writers of other processes. What
        // arrives meanwhile joins the next batch.
        drop(conn);
        drop(pool);
        let in_use = || weak.upgrade().is_some_and(|p| p.in_use() > 0);
        let longest = (began.elapsed() / 2).clamp(MIN_GAP, MAX_GAP);
        std::thread::sleep(MIN_GAP);
        if in_use() {
            queue
                .pauses
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let until = std::time::Instant::now() + longest;
            while in_use() && std::time::Instant::now() < until {
                std::thread::sleep(MIN_GAP);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use diesel::connection::SimpleConnection;
    use diesel::prelude::*;
    use diesel::sql_types::BigInt;

    use super::*;
    use crate::db::{ConnCounter, DbPool};
    use crate::registry::REGISTRY_DB;

    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }

    fn pool(dir: &tempfile::TempDir) -> Arc<DbPool> {
        let pool = DbPool::open(
            dir.path().join("t.sqlite"),
            &REGISTRY_DB,
            4,
            Arc::new(ConnCounter::default()),
        )
        .unwrap();
        pool.get()
            .unwrap()
            .batch_execute(
                "CREATE TABLE parent (id INTEGER PRIMARY KEY);
                 INSERT INTO parent VALUES (1);
                 CREATE TABLE t (v INTEGER NOT NULL UNIQUE,
                    p INTEGER REFERENCES parent(id) DEFERRABLE INITIALLY DEFERRED);",
            )
            .unwrap();
        pool
    }

    fn rows(pool: &Arc<DbPool>) -> i64 {
        diesel::sql_query("SELECT count(*) AS n FROM t")
            .get_result::<Count>(&mut *pool.get().unwrap())
            .unwrap()
            .n
    }

    fn insert(v: i64, p: i64) -> impl FnOnce(&mut SqliteConnection) -> QueryResult<i64> + Send {
        move |c| {
            diesel::sql_query(format!("INSERT INTO t (v, p) VALUES ({v}, {p})")).execute(c)?;
            Ok(v)
        }
    }

    fn spawn_write<F, T>(
        pool: &Arc<DbPool>,
        f: F,
    ) -> tokio::task::JoinHandle<Result<T, WriteError<diesel::result::Error>>>
    where
        F: FnOnce(&mut SqliteConnection) -> QueryResult<T> + Send + 'static,
        T: Send + 'static,
    {
        let p = Arc::clone(pool);
        tokio::spawn(async move { write(&p, f).await })
    }

    /// Keeps the writer busy so that the jobs queued meanwhile form one batch.
    async fn hold_writer(pool: &Arc<DbPool>) -> tokio::task::JoinHandle<()> {
        let (started_tx, started) = oneshot::channel();
        let p = Arc::clone(pool);
        let h = tokio::spawn(async move {
            write(&p, move |_| {
                let _ = started_tx.send(());
                std::thread::sleep(Duration::from_millis(200));
                QueryResult::Ok(())
            })
            .await
            .unwrap();
        });
        started.await.unwrap();
        h
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writes_share_transactions_and_all_commit() {
        let dir = tempfile::tempdir().unwrap();
        let pool = pool(&dir);
        let hold = hold_writer(&pool).await;
        let mut handles = Vec::new();
        for v in 0..200 {
            handles.push(spawn_write(&pool, insert(v, 1)));
        }
        for (v, t) in handles.into_iter().enumerate() {
            assert_eq!(t.await.unwrap().unwrap(), v as i64);
        }
        hold.await.unwrap();
        assert_eq!(rows(&pool), 200, "every write is committed");
        let batches = pool.write_queue().batches.load(Ordering::Relaxed);
        assert!(
            (2..10).contains(&batches),
            "the 200 writes queued behind a busy writer share a few batches: {batches}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_job_rolls_back_only_itself() {
        let dir = tempfile::tempdir().unwrap();
        let pool = pool(&dir);
        let hold = hold_writer(&pool).await;
        let (a, b, c) = (
            spawn_write(&pool, insert(1, 1)),
            spawn_write(&pool, |c: &mut SqliteConnection| {
                insert(2, 1)(c)?;
                // Its own duplicate (whatever order the jobs were queued in): this job
                // fails after its first insert.
                insert(2, 1)(c)
            }),
            spawn_write(&pool, insert(3, 1)),
        );
        hold.await.unwrap();
        assert_eq!(a.await.unwrap().unwrap(), 1);
        assert!(matches!(b.await.unwrap(), Err(WriteError::Job(_))));
        assert_eq!(c.await.unwrap().unwrap(), 3);
        assert_eq!(
            rows(&pool),
            2,
            "the failed job's first insert is undone too"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_commit_fails_every_job_of_its_batch_and_nothing_remains() {
        let dir = tempfile::tempdir().unwrap();
        let pool = pool(&dir);
        let hold = hold_writer(&pool).await;
        // The deferred foreign key of the first job fails only at COMMIT.
        let (a, b) = (
            spawn_write(&pool, insert(1, 99)),
            spawn_write(&pool, insert(2, 1)),
        );
        hold.await.unwrap();
        assert!(matches!(a.await.unwrap(), Err(WriteError::Db(_))));
        assert!(
            matches!(b.await.unwrap(), Err(WriteError::Db(_))),
            "a job succeeds only with its commit"
        );
        assert_eq!(rows(&pool), 0);
        assert_eq!(
            write(&pool, insert(3, 1)).await.unwrap(),
            3,
            "next batch works"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panicking_job_loses_its_batch_but_not_the_writer() {
        let dir = tempfile::tempdir().unwrap();
        let pool = pool(&dir);
        let hold = hold_writer(&pool).await;
        let (a, b) = (
            spawn_write(&pool, insert(1, 1)),
            spawn_write(&pool, |_: &mut SqliteConnection| {
                if true {
                    panic!("job bug");
                }
                QueryResult::Ok(0)
            }),
        );
        hold.await.unwrap();
        assert!(matches!(a.await.unwrap(), Err(WriteError::Db(_))));
        assert!(matches!(b.await.unwrap(), Err(WriteError::Db(_))));
        assert_eq!(rows(&pool), 0);
        assert_eq!(write(&pool, insert(2, 1)).await.unwrap(), 2);
        assert_eq!(rows(&pool), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn writers_outside_the_queue_are_not_starved_by_a_busy_writer() {
        let dir = tempfile::tempdir().unwrap();
        let pool = pool(&dir);
        // Keep the queue full for 3 s: each job holds the write lock about 1 ms.
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut load = Vec::new();
        for t in 0..8 {
            let (p, stop) = (Arc::clone(&pool), Arc::clone(&stop));
            load.push(tokio::spawn(async move {
                let mut v = 1_000_000 * (t + 1);
                while !stop.load(Ordering::Relaxed) {
                    write(&p, move |c: &mut SqliteConnection| {
                        std::thread::sleep(Duration::from_millis(1));
                        insert(v, 1)(c)
                    })
                    .await
                    .unwrap();
                    v += 1;
                }
            }));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        // Another connection writes on its own (as the session and indexer code does).
        // A starved writer would give up with SQLITE_BUSY after the busy timeout; each of
        // these must commit, while the queue keeps committing too. (How long they wait is a
        // figure for the benchmarks, not an assertion here.)
        let p = Arc::clone(&pool);
        let before = rows(&pool);
        let other = tokio::task::spawn_blocking(move || {
            (0..20)
                .map(|v| {
                    let mut c = p.get().unwrap();
                    let done = crate::db::write_transaction(&mut c, insert(v, 1));
                    std::thread::sleep(Duration::from_millis(50));
                    done.map_err(|e| e.to_string())
                })
                .collect::<Vec<_>>()
        });
        let outcomes = other.await.unwrap();
        let during = rows(&pool) - before;
        stop.store(true, Ordering::Relaxed);
        for l in load {
            l.await.unwrap();
        }
        let failed: Vec<_> = outcomes.iter().filter_map(|o| o.as_ref().err()).collect();
        assert!(
            failed.is_empty(),
            "writes beside the busy queue failed: {failed:?}"
        );
        assert!(
            during > 20,
            "the queue kept writing meanwhile ({during} rows)"
        );
    }

    #[tokio::test]
    async fn the_writer_leaves_the_lock_free_only_while_other_connections_are_in_use() {
        let dir = tempfile::tempdir().unwrap();
        let pool = pool(&dir);
        let pauses = || pool.write_queue().pauses.load(Ordering::Relaxed);
        for v in 0..5 {
            write(&pool, insert(v, 1)).await.unwrap();
        }
        // Give the writer time to finish its last round.
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(pauses(), 0, "nobody else on the database: no pause");
        assert_eq!(pool.in_use(), 0);
        let held = pool.get().unwrap();
        assert_eq!(pool.in_use(), 1);
        write(&pool, insert(10, 1)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(pauses(), 1, "a connection in use: the writer paused for it");
        drop(held);
        assert_eq!(pool.in_use(), 0);
        assert_eq!(rows(&pool), 6);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn savepoints_are_prepared_once_and_batch_sizes_are_counted() {
        let dir = tempfile::tempdir().unwrap();
        let pool = pool(&dir);
        // The pool's only open connection: the writer will use it.
        let rec = {
            let mut c = pool.get().unwrap();
            crate::prepared::tests::Recorder::attach(&mut c)
        };
        let before = BATCH_SIZES.count();
        for v in 0..5 {
            // A job that nests a write transaction, as app writes on the hot path do.
            write(&pool, move |c: &mut SqliteConnection| {
                crate::db::write_transaction(c, insert(v, 1))
            })
            .await
            .unwrap();
        }
        assert_eq!(rows(&pool), 5);
        assert_eq!(
            rec.counts("SAVEPOINT kollegium_job"),
            (10, 1),
            "two savepoints per job, prepared once"
        );
        assert_eq!(rec.counts("RELEASE kollegium_job"), (10, 1));
        assert_eq!(
            rec.counts("SAVEPOINT diesel"),
            (0, 0),
            "no savepoint as text"
        );
        assert!(BATCH_SIZES.count() >= before + 5);
        let mut text = String::new();
        BATCH_SIZES.render(&mut text, "b", "h");
        assert!(text.contains("b_bucket{le=\"1\"}"), "{text}");
    }

    #[tokio::test]
    async fn write_transaction_is_immediate_alone_and_a_savepoint_inside_a_batch() {
        let dir = tempfile::tempdir().unwrap();
        let pool = pool(&dir);
        let mut c = pool.get().unwrap();
        crate::db::write_transaction(&mut c, insert(1, 1)).unwrap();
        drop(c);
        let v = write(&pool, |c: &mut SqliteConnection| {
            crate::db::write_transaction(c, insert(2, 1))
        })
        .await
        .unwrap();
        assert_eq!(v, 2);
        assert_eq!(rows(&pool), 2);
    }
}
