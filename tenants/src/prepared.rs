//! Statements with fixed SQL that a connection prepares once and then reuses.
//!
//! diesel keeps a prepared statement per connection only for queries that say they are
//! safe to cache; its `UPDATE` and upsert builders, `sql_query` and the savepoints of its
//! transaction manager do not, so SQLite parses and plans them again on every execution
//! (in a profile of a busy message writer about a third of its time). A [`Prepared`] statement
//! is keyed by its SQL type, so diesel's statement cache keeps it.
//!
//! ```ignore
//! struct TouchRoom;
//! impl FixedSql for TouchRoom {
//!     const SQL: &'static str = "UPDATE rooms SET updated_at = ? WHERE id = ?";
//! }
//! Prepared::<TouchRoom, 2>::new([now, room]).execute(conn)?;
//! ```

use std::marker::PhantomData;

use diesel::query_builder::{AstPass, QueryFragment, QueryId};
use diesel::result::Error::QueryBuilderError;
use diesel::sql_types::BigInt;
use diesel::sqlite::Sqlite;
use diesel::{QueryResult, RunQueryDsl, SqliteConnection};

/// The SQL of a [`Prepared`] statement: `?` marks each bound value, in order. It must not
/// contain `?` anywhere else (a string literal, say).
pub trait FixedSql: 'static {
    const SQL: &'static str;
}

/// `K::SQL` with its `N` placeholders bound to integers, in order.
pub struct Prepared<K, const N: usize> {
    binds: [i64; N],
    kind: PhantomData<K>,
}

impl<K: FixedSql, const N: usize> Prepared<K, N> {
    pub fn new(binds: [i64; N]) -> Self {
        Self {
            binds,
            kind: PhantomData,
        }
    }
}

impl<K: FixedSql, const N: usize> QueryId for Prepared<K, N> {
    type QueryId = Self;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl<K: FixedSql, const N: usize> QueryFragment<Sqlite> for Prepared<K, N> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Sqlite>) -> QueryResult<()> {
        let mut parts = K::SQL.split('?');
        if let Some(first) = parts.next() {
            out.push_sql(first);
        }
        let mut binds = self.binds.iter();
        for part in parts {
            let bind = binds
                .next()
                .ok_or_else(|| QueryBuilderError("more placeholders than values".into()))?;
            out.push_bind_param::<BigInt, i64>(bind)?;
            out.push_sql(part);
        }
        if binds.next().is_some() {
            return Err(QueryBuilderError("more values than placeholders".into()));
        }
        Ok(())
    }
}

impl<K: FixedSql, const N: usize> RunQueryDsl<SqliteConnection> for Prepared<K, N> {}

pub(crate) struct Savepoint;
impl FixedSql for Savepoint {
    const SQL: &'static str = "SAVEPOINT kollegium_job";
}

pub(crate) struct Release;
impl FixedSql for Release {
    const SQL: &'static str = "RELEASE kollegium_job";
}

pub(crate) struct RollbackTo;
impl FixedSql for RollbackTo {
    const SQL: &'static str = "ROLLBACK TO kollegium_job";
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::{Arc, Mutex};

    use diesel::connection::{Instrumentation, InstrumentationEvent, SimpleConnection};
    use diesel::prelude::*;

    use super::*;

    /// Records which SQL a connection ran and which it prepared for its statement cache.
    #[derive(Clone, Default)]
    pub(crate) struct Recorder {
        pub ran: Arc<Mutex<Vec<String>>>,
        pub cached: Arc<Mutex<Vec<String>>>,
    }

    impl Recorder {
        pub(crate) fn attach(conn: &mut SqliteConnection) -> Self {
            let r = Self::default();
            conn.set_instrumentation(r.clone());
            r
        }

        /// How often SQL starting with `prefix` ran and was prepared into the cache.
        pub(crate) fn counts(&self, prefix: &str) -> (usize, usize) {
            let n = |v: &Arc<Mutex<Vec<String>>>| {
                v.lock()
                    .unwrap()
                    .iter()
                    .filter(|s| s.starts_with(prefix))
                    .count()
            };
            (n(&self.ran), n(&self.cached))
        }
    }

    impl Instrumentation for Recorder {
        fn on_connection_event(&mut self, event: InstrumentationEvent<'_>) {
            match event {
                InstrumentationEvent::StartQuery { query, .. } => {
                    self.ran.lock().unwrap().push(query.to_string());
                }
                InstrumentationEvent::CacheQuery { sql, .. } => {
                    self.cached.lock().unwrap().push(sql.to_owned());
                }
                _ => {}
            }
        }
    }

    struct Bump;
    impl FixedSql for Bump {
        const SQL: &'static str = "UPDATE t SET v = v + ? WHERE id = ?";
    }

    struct TooFew;
    impl FixedSql for TooFew {
        const SQL: &'static str = "UPDATE t SET v = ? WHERE id = ?";
    }

    #[test]
    fn binds_in_order_and_is_prepared_once() {
        let mut c = SqliteConnection::establish(":memory:").unwrap();
        c.batch_execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v INTEGER NOT NULL); INSERT INTO t VALUES (1, 10), (2, 20);")
            .unwrap();
        let rec = Recorder::attach(&mut c);
        for _ in 0..3 {
            assert_eq!(Prepared::<Bump, 2>::new([5, 2]).execute(&mut c).unwrap(), 1);
        }
        diesel::table! { t (id) { id -> BigInt, v -> BigInt, } }
        let v: Vec<i64> = t::table.order(t::id).select(t::v).load(&mut c).unwrap();
        assert_eq!(v, vec![10, 35]);
        assert_eq!(rec.counts("UPDATE t"), (3, 1), "ran thrice, prepared once");
        // The builder diesel offers for the same statement is prepared every time.
        for _ in 0..2 {
            diesel::sql_query("UPDATE t SET v = v + 1 WHERE id = 1")
                .execute(&mut c)
                .unwrap();
        }
        assert_eq!(rec.counts("UPDATE t SET v = v + 1"), (2, 0));
    }

    #[test]
    fn a_count_mismatch_is_an_error_not_a_statement() {
        let mut c = SqliteConnection::establish(":memory:").unwrap();
        c.batch_execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v INTEGER NOT NULL);")
            .unwrap();
        assert!(Prepared::<TooFew, 1>::new([1]).execute(&mut c).is_err());
        assert!(
            Prepared::<TooFew, 3>::new([1, 2, 3])
                .execute(&mut c)
                .is_err()
        );
        assert_eq!(
            Prepared::<TooFew, 2>::new([1, 2]).execute(&mut c).unwrap(),
            0
        );
    }
}
