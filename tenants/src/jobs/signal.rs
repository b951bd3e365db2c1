//! The doorbell between code that queued jobs and the node's job worker.

use std::collections::HashSet;
use std::sync::Mutex;

use tokio::sync::Notify;

use crate::db::DbKind;
use crate::slug::Slug;

/// A poked practice database and, if only one kind queued jobs, that kind.
pub type Poked = (String, &'static str, Option<&'static str>);

/// Poked with the practice and database after a transaction that queued jobs committed;
/// the worker wakes and runs that database's due jobs at once. Cheap and non-blocking.
#[derive(Debug, Default)]
pub struct JobSignal {
    dirty: Mutex<HashSet<Poked>>,
    notify: Notify,
}

impl JobSignal {
    pub fn new() -> Self {
        Self::default()
    }

    /// Marks `db` of `slug` as having fresh jobs and wakes the worker.
    pub fn poke(&self, slug: &Slug, db: &DbKind) {
        self.poke_str(slug.as_str(), db);
    }

    /// [`Self::poke`] for a slug already known to be valid (from a `Tenant`).
    pub fn poke_str(&self, slug: &str, db: &DbKind) {
        self.mark((slug.to_owned(), db.name, None));
    }

    /// Wakes only the kind `kind` of `db` of `slug` (code on a busy path that queued jobs of
    /// one kind: the other kinds are not looked at for it).
    pub fn poke_kind(&self, slug: &str, db: &DbKind, kind: &'static str) {
        self.mark((slug.to_owned(), db.name, Some(kind)));
    }

    fn mark(&self, poked: Poked) {
        if let Ok(mut d) = self.dirty.lock() {
            d.insert(poked);
        }
        self.notify.notify_one();
    }

    /// The practice databases (and kinds) poked since the last call.
    pub fn take(&self) -> Vec<Poked> {
        self.dirty
            .lock()
            .map(|mut d| d.drain().collect())
            .unwrap_or_default()
    }

    /// Waits for the next poke (returns at once if one came since the last wait).
    pub async fn notified(&self) {
        self.notify.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn pokes_are_collected_per_practice_and_database_and_wake_the_waiter() {
        static A: DbKind = DbKind {
            name: "a",
            file: "a.sqlite",
            migrations: diesel_migrations::EmbeddedMigrations::new(&[]),
        };
        let s = JobSignal::new();
        let p = Slug::parse("praxis-a").unwrap();
        s.poke(&p, &A);
        s.poke(&p, &A);
        s.notified().await; // the stored permit: returns at once
        assert_eq!(s.take(), vec![("praxis-a".to_owned(), "a", None)]);
        assert!(s.take().is_empty());
        s.poke_kind("praxis-a", &A, "search");
        s.poke_kind("praxis-a", &A, "search");
        assert_eq!(s.take(), vec![("praxis-a".to_owned(), "a", Some("search"))]);
    }
}
