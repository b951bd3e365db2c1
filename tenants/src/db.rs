//! SQLite databases: connection pragmas, embedded migrations and a small bounded pool.
//!
//! Every connection runs with WAL, `foreign_keys=ON`, a busy timeout and
//! `synchronous=FULL`, so a committed write survives power loss. Pools are deliberately
//! tiny: a node holds thousands of practices, most of them idle.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::migration::{Migration, MigrationSource};
use diesel::sqlite::Sqlite;
use diesel::{Connection, SqliteConnection};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness};

/// A kind of per-practice database (`idp`, `platform`): file name and embedded migrations.
/// Each app crate declares its own kind; the tenancy layer opens and migrates it.
pub struct DbKind {
    pub name: &'static str,
    pub file: &'static str,
    pub migrations: EmbeddedMigrations,
}

impl std::fmt::Debug for DbKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbKind")
            .field("name", &self.name)
            .field("file", &self.file)
            .finish()
    }
}

/// Lends an `EmbeddedMigrations` (which is not `Clone`) to diesel's harness.
struct Borrowed<'a>(&'a EmbeddedMigrations);

impl MigrationSource<Sqlite> for Borrowed<'_> {
    fn migrations(&self) -> diesel::migration::Result<Vec<Box<dyn Migration<Sqlite>>>> {
        MigrationSource::<Sqlite>::migrations(self.0)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("cannot open database {path}: {source}")]
    Open {
        path: String,
        #[source]
        source: diesel::ConnectionError,
    },
    #[error("cannot configure database {path}: {source}")]
    Pragma {
        path: String,
        #[source]
        source: diesel::result::Error,
    },
    #[error("migrations of {path} failed: {why}")]
    Migrate { path: String, why: String },
    #[error("database {0} is busy: no connection became free in time")]
    Exhausted(String),
    #[error(transparent)]
    Query(#[from] diesel::result::Error),
}

pub const BUSY_TIMEOUT_MS: u64 = 5_000;

/// Opens one connection with the house pragmas. A missing database file is created with
/// mode 0600 first (SQLite gives its `-wal` and `-shm` files the main file's mode).
pub fn open_connection(path: &Path) -> Result<SqliteConnection, DbError> {
    let url = path.to_string_lossy();
    crate::perms::precreate_file(path).map_err(|e| DbError::Open {
        path: url.to_string(),
        source: diesel::ConnectionError::BadConnection(e.to_string()),
    })?;
    let mut conn = SqliteConnection::establish(&url).map_err(|source| DbError::Open {
        path: url.to_string(),
        source,
    })?;
    conn.batch_execute(&format!(
        "PRAGMA busy_timeout = {BUSY_TIMEOUT_MS};
         PRAGMA journal_mode = WAL;
         PRAGMA synchronous = FULL;
         PRAGMA foreign_keys = ON;
         PRAGMA cache_size = -512;
         PRAGMA temp_store = MEMORY;"
    ))
    .map_err(|source| DbError::Pragma {
        path: url.to_string(),
        source,
    })?;
    Ok(conn)
}

/// Runs every pending embedded migration of `kind` on `conn`. After migrations ran, the
/// write-ahead log is checkpointed and truncated, so rows a migration erased (e.g. mail
/// bodies) do not linger in old log frames.
pub fn migrate(conn: &mut SqliteConnection, kind: &DbKind, path: &Path) -> Result<(), DbError> {
    let applied = conn
        .run_pending_migrations(Borrowed(&kind.migrations))
        .map_err(|e| DbError::Migrate {
            path: path.display().to_string(),
            why: e.to_string(),
        })?;
    if !applied.is_empty() {
        checkpoint_truncate(conn)?;
    }
    Ok(())
}

#[derive(diesel::QueryableByName)]
struct Checkpoint {
    #[diesel(sql_type = diesel::sql_types::Integer)]
    busy: i32,
}

/// Copies the write-ahead log into the database file and truncates the log to zero bytes,
/// so content overwritten since (purged mail bodies) is in neither file. Waits for readers
/// up to the busy timeout; `Ok(false)` if the log could not be reset (still in use: the
/// next call does it).
pub fn checkpoint_truncate(conn: &mut SqliteConnection) -> Result<bool, DbError> {
    use diesel::RunQueryDsl;
    let rows: Vec<Checkpoint> = diesel::sql_query("PRAGMA wal_checkpoint(TRUNCATE)").load(conn)?;
    Ok(rows.first().is_some_and(|r| r.busy == 0))
}

/// Counts open SQLite connections node-wide (exported as a metric).
#[derive(Debug, Default)]
pub struct ConnCounter(AtomicUsize);

impl ConnCounter {
    pub fn get(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }
}

struct PoolState {
    idle: Vec<SqliteConnection>,
    total: usize,
    /// Most connections in use at once since the last [`DbPool::shrink`].
    peak: usize,
}

/// A bounded pool of connections to one database file.
pub struct DbPool {
    path: PathBuf,
    max: usize,
    max_idle: usize,
    state: Mutex<PoolState>,
    freed: Condvar,
    counter: Arc<ConnCounter>,
    writes: Arc<crate::group_commit::WriteQueue>,
}

impl std::fmt::Debug for DbPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbPool")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl DbPool {
    /// Opens the database (creating it), runs migrations, and keeps that first connection.
    pub fn open(
        path: PathBuf,
        kind: &DbKind,
        max: usize,
        counter: Arc<ConnCounter>,
    ) -> Result<Arc<Self>, DbError> {
        let mut conn = open_connection(&path)?;
        migrate(&mut conn, kind, &path)?;
        counter.0.fetch_add(1, Ordering::Relaxed);
        Ok(Arc::new(Self {
            path,
            max: max.max(1),
            // Keep every connection the load needed: closing one on return and opening
            // another for the next request costs the open, the pragmas and every prepared
            // statement. Idle practices close their pools as a whole (`practice_idle_secs`).
            max_idle: max.max(1),
            state: Mutex::new(PoolState {
                idle: vec![conn],
                total: 1,
                peak: 0,
            }),
            freed: Condvar::new(),
            counter,
            writes: Default::default(),
        }))
    }

    /// Takes a connection, opening a new one when all are busy and the cap allows,
    /// otherwise waiting up to the busy timeout. Blocking: call from a blocking thread.
    pub fn get(self: &Arc<Self>) -> Result<PooledConn, DbError> {
        let busy = || DbError::Exhausted(self.path.display().to_string());
        let mut state = self.state.lock().map_err(|_| busy())?;
        loop {
            if let Some(conn) = state.idle.pop() {
                state.peak = state.peak.max(state.total - state.idle.len());
                return Ok(PooledConn {
                    conn: Some(conn),
                    pool: Arc::clone(self),
                });
            }
            if state.total < self.max {
                state.total += 1;
                state.peak = state.peak.max(state.total - state.idle.len());
                drop(state);
                return match open_connection(&self.path) {
                    Ok(conn) => {
                        self.counter.0.fetch_add(1, Ordering::Relaxed);
                        Ok(PooledConn {
                            conn: Some(conn),
                            pool: Arc::clone(self),
                        })
                    }
                    Err(e) => {
                        if let Ok(mut s) = self.state.lock() {
                            s.total -= 1;
                        }
                        self.freed.notify_one();
                        Err(e)
                    }
                };
            }
            let (next, timeout) = self
                .freed
                .wait_timeout(state, Duration::from_millis(BUSY_TIMEOUT_MS))
                .map_err(|_| busy())?;
            state = next;
            if timeout.timed_out() && state.idle.is_empty() && state.total >= self.max {
                return Err(busy());
            }
        }
    }

    fn put_back(&self, conn: SqliteConnection) {
        let Ok(mut state) = self.state.lock() else {
            self.counter.0.fetch_sub(1, Ordering::Relaxed);
            return;
        };
        if state.idle.len() < self.max_idle {
            state.idle.push(conn);
        } else {
            state.total -= 1;
            drop(conn);
            self.counter.0.fetch_sub(1, Ordering::Relaxed);
        }
        drop(state);
        self.freed.notify_one();
    }

    /// Closes idle connections beyond what the load since the previous call needed at once
    /// (at least one stays), and starts the next window. A pool keeps every connection a
    /// burst opened (reopening costs the pragmas and the prepared statements), but each
    /// costs 270–340 KB; a node calls this every few seconds so a practice that needed
    /// three connections once does not keep them for as long as it stays open. Returns how
    /// many it closed.
    pub fn shrink(&self) -> usize {
        let closed = {
            let Ok(mut state) = self.state.lock() else {
                return 0;
            };
            let in_use = state.total - state.idle.len();
            let keep = state.peak.max(1);
            let surplus = state.total.saturating_sub(keep).min(state.idle.len());
            let at = state.idle.len() - surplus;
            let closed: Vec<SqliteConnection> = state.idle.drain(at..).collect();
            state.total -= closed.len();
            state.peak = in_use;
            closed
        };
        let n = closed.len();
        drop(closed);
        self.counter.0.fetch_sub(n, Ordering::Relaxed);
        n
    }

    /// Connections of this pool handed out right now (not counting idle ones).
    pub fn in_use(&self) -> usize {
        self.state
            .lock()
            .map(|s| s.total.saturating_sub(s.idle.len()))
            .unwrap_or(0)
    }

    pub(crate) fn write_queue(&self) -> &Arc<crate::group_commit::WriteQueue> {
        &self.writes
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Number of connections currently open in this pool.
    pub fn open_connections(&self) -> usize {
        self.state.lock().map(|s| s.total).unwrap_or(0)
    }
}

impl Drop for DbPool {
    fn drop(&mut self) {
        if let Ok(state) = self.state.get_mut() {
            self.counter
                .0
                .fetch_sub(state.idle.len(), Ordering::Relaxed);
        }
    }
}

/// A connection on loan from a [`DbPool`]; returns to the pool when dropped.
pub struct PooledConn {
    conn: Option<SqliteConnection>,
    pool: Arc<DbPool>,
}

impl std::ops::Deref for PooledConn {
    type Target = SqliteConnection;
    fn deref(&self) -> &SqliteConnection {
        // Only `Drop` takes the connection out.
        self.conn
            .as_ref()
            .unwrap_or_else(|| unreachable!("connection used after drop"))
    }
}

impl std::ops::DerefMut for PooledConn {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        self.conn
            .as_mut()
            .unwrap_or_else(|| unreachable!("connection used after drop"))
    }
}

impl PooledConn {
    /// Closes the connection instead of returning it (its state is not trusted).
    pub fn discard(mut self) {
        if let Some(conn) = self.conn.take() {
            drop(conn);
            if let Ok(mut state) = self.pool.state.lock() {
                state.total -= 1;
            }
            self.pool.counter.0.fetch_sub(1, Ordering::Relaxed);
            self.pool.freed.notify_one();
        }
    }
}

/// Runs `f` in a write transaction: `BEGIN IMMEDIATE` on its own, a savepoint when the
/// connection is already in a transaction (a group-commit batch, see
/// [`crate::group_commit`]), where `BEGIN` would fail.
pub fn write_transaction<T, E>(
    conn: &mut SqliteConnection,
    f: impl FnOnce(&mut SqliteConnection) -> Result<T, E>,
) -> Result<T, E>
where
    E: From<diesel::result::Error>,
{
    use diesel::connection::{AnsiTransactionManager, TransactionManager};
    let nested = AnsiTransactionManager::transaction_manager_status_mut(conn)
        .transaction_depth()
        .map_err(E::from)?
        .is_some();
    if nested {
        savepoint(conn, f)?
    } else {
        conn.immediate_transaction(f)
    }
}

/// Runs `f` in a savepoint of the transaction `conn` is in; if `f` fails, its changes are
/// rolled back. The savepoint statements are prepared once per connection (diesel's own
/// savepoints are SQL text, parsed on every use). The outer error means the savepoint could
/// not be set, released or rolled back: the transaction's state is unknown, and it must not
/// be committed.
pub fn savepoint<T, E>(
    conn: &mut SqliteConnection,
    f: impl FnOnce(&mut SqliteConnection) -> Result<T, E>,
) -> Result<Result<T, E>, diesel::result::Error> {
    use crate::prepared::{Prepared, Release, RollbackTo, Savepoint};
    use diesel::RunQueryDsl;
    Prepared::<Savepoint, 0>::new([]).execute(conn)?;
    let result = f(conn);
    if result.is_err() {
        Prepared::<RollbackTo, 0>::new([]).execute(conn)?;
    }
    Prepared::<Release, 0>::new([]).execute(conn)?;
    Ok(result)
}

impl Drop for PooledConn {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.pool.put_back(conn);
        }
    }
}

#[cfg(test)]
mod tests {
    use diesel::prelude::*;
    use diesel::sql_types::Text;

    #[derive(QueryableByName)]
    struct CompileOption {
        #[diesel(sql_type = Text)]
        compile_options: String,
    }

    #[test]
    fn sqlite_is_built_with_the_flags_of_the_cargo_config() {
        let mut c = super::SqliteConnection::establish(":memory:").unwrap();
        let opts: Vec<String> = diesel::sql_query("PRAGMA compile_options")
            .load::<CompileOption>(&mut c)
            .unwrap()
            .into_iter()
            .map(|o| o.compile_options)
            .collect();
        // See .cargo/config.toml: without QPSG every `LIMIT ?` query is planned anew.
        assert!(opts.iter().any(|o| o == "ENABLE_QPSG"), "{opts:?}");
        assert!(opts.iter().any(|o| o == "DEFAULT_MEMSTATUS=0"), "{opts:?}");
        assert!(
            opts.iter().any(|o| o == "DEFAULT_PCACHE_INITSZ=0"),
            "{opts:?}"
        );
    }

    #[test]
    fn a_pool_gives_back_the_connections_a_burst_opened_once_the_load_is_gone() {
        use std::sync::Arc;
        let dir = tempfile::tempdir().unwrap();
        let counter = Arc::new(super::ConnCounter::default());
        let pool = super::DbPool::open(
            dir.path().join("t.sqlite"),
            &crate::registry::REGISTRY_DB,
            4,
            counter.clone(),
        )
        .unwrap();
        // A burst: three requests at once.
        let held: Vec<_> = (0..3).map(|_| pool.get().unwrap()).collect();
        drop(held);
        assert_eq!(pool.open_connections(), 3);
        // The window with the burst keeps what it needed.
        assert_eq!(pool.shrink(), 0);
        assert_eq!(pool.open_connections(), 3);
        // A window of one request at a time: back to one connection.
        drop(pool.get().unwrap());
        drop(pool.get().unwrap());
        assert_eq!(pool.shrink(), 2);
        assert_eq!(pool.open_connections(), 1);
        assert_eq!(counter.get(), 1);
        // A quiet window keeps the last connection, and one in use is never closed.
        assert_eq!(pool.shrink(), 0);
        let busy = pool.get().unwrap();
        assert_eq!(pool.shrink(), 0);
        assert_eq!(pool.open_connections(), 1);
        drop(busy);
        assert_eq!(counter.get(), 1);
    }
}
