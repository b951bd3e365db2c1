//! The doorbell between code that queued jobs and the node's job worker.
//!
//! A poke costs the poster a lock and, at most once per pause, a wake of the worker. While a
//! round of one kind in one practice database waits out its gather pause
//! ([`super::Policy::gather`]), pokes of exactly that kind there are dropped: the round
//! reads every job committed before its pause ends, so waking the worker for each of a
//! burst of posts would only cost a task wake per post.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use tokio::sync::Notify;

use crate::db::DbKind;
use crate::slug::Slug;

/// A poked practice database and, if only one kind queued jobs, that kind.
pub type Poked = (String, &'static str, Option<&'static str>);

#[derive(Debug, Default)]
struct State {
    /// Pokes the worker has not taken yet.
    dirty: HashSet<Poked>,
    /// Per practice: (database, kind) of the rounds in their gather pause.
    gathering: HashMap<String, Vec<(&'static str, &'static str)>>,
}

/// Poked with the practice and database after a transaction that queued jobs committed;
/// the worker wakes and runs that database's due jobs at once. Cheap and non-blocking.
#[derive(Debug, Default)]
pub struct JobSignal {
    state: Mutex<State>,
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
        self.mark(slug, db.name, None);
    }

    /// Wakes only the kind `kind` of `db` of `slug` (code on a busy path that queued jobs of
    /// one kind: the other kinds are not looked at for it). Nothing happens while a round of
    /// that kind there is in its gather pause: it will read the jobs.
    pub fn poke_kind(&self, slug: &str, db: &DbKind, kind: &'static str) {
        self.mark(slug, db.name, Some(kind));
    }

    fn mark(&self, slug: &str, db: &'static str, kind: Option<&'static str>) {
        let fresh = match self.state.lock() {
            Ok(mut s) => {
                if let Some(k) = kind
                    && s.gathering.get(slug).is_some_and(|g| g.contains(&(db, k)))
                {
                    return;
                }
                // An entry still there was poked since the worker last took: that poke
                // woke it already.
                s.dirty.insert((slug.to_owned(), db, kind))
            }
            Err(_) => true,
        };
        if fresh {
            self.notify.notify_one();
        }
    }

    /// The practice databases (and kinds) poked since the last call.
    pub fn take(&self) -> Vec<Poked> {
        self.state
            .lock()
            .map(|mut s| s.dirty.drain().collect())
            .unwrap_or_default()
    }

    /// Waits for the next poke (returns at once if one came since the last wait).
    pub async fn notified(&self) {
        self.notify.notified().await;
    }

    /// A round of `kind` in `db` of `slug` starts its gather pause: its pokes need no wake
    /// until the returned guard is dropped, which must happen before the round reads jobs.
    pub(crate) fn gathering(
        &self,
        slug: &str,
        db: &'static str,
        kind: &'static str,
    ) -> Gathering<'_> {
        if let Ok(mut s) = self.state.lock() {
            s.gathering
                .entry(slug.to_owned())
                .or_default()
                .push((db, kind));
        }
        Gathering {
            signal: self,
            slug: slug.to_owned(),
            unit: (db, kind),
        }
    }
}

/// A round's gather pause; pokes of its unit count again once this is dropped.
pub(crate) struct Gathering<'a> {
    signal: &'a JobSignal,
    slug: String,
    unit: (&'static str, &'static str),
}

impl Drop for Gathering<'_> {
    fn drop(&mut self) {
        if let Ok(mut s) = self.signal.state.lock()
            && let Some(g) = s.gathering.get_mut(&self.slug)
        {
            if let Some(i) = g.iter().position(|u| *u == self.unit) {
                g.swap_remove(i);
            }
            if g.is_empty() {
                s.gathering.remove(&self.slug);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static A: DbKind = DbKind {
        name: "a",
        file: "a.sqlite",
        migrations: diesel_migrations::EmbeddedMigrations::new(&[]),
    };

    #[tokio::test]
    async fn pokes_are_collected_per_practice_and_database_and_wake_the_waiter() {
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

    #[tokio::test]
    async fn pokes_of_a_gathering_round_are_dropped_until_its_pause_ends() {
        let s = JobSignal::new();
        let pause = s.gathering("praxis-a", "a", "search");
        s.poke_kind("praxis-a", &A, "search");
        // Another kind, another practice and a plain poke still count.
        s.poke_kind("praxis-a", &A, "mail");
        s.poke_kind("praxis-b", &A, "search");
        s.poke_str("praxis-a", &A);
        let mut got = s.take();
        got.sort();
        assert_eq!(
            got,
            vec![
                ("praxis-a".to_owned(), "a", None),
                ("praxis-a".to_owned(), "a", Some("mail")),
                ("praxis-b".to_owned(), "a", Some("search")),
            ]
        );
        drop(pause);
        s.poke_kind("praxis-a", &A, "search");
        assert_eq!(s.take(), vec![("praxis-a".to_owned(), "a", Some("search"))]);
    }

    #[tokio::test]
    async fn a_poke_not_yet_taken_wakes_the_worker_once() {
        let s = JobSignal::new();
        s.poke_kind("praxis-a", &A, "search");
        s.notified().await;
        s.poke_kind("praxis-a", &A, "search");
        // No second permit: the waiter would block until the next fresh poke.
        let waited = tokio::time::timeout(std::time::Duration::from_millis(50), s.notified()).await;
        assert!(waited.is_err(), "a repeated poke woke the worker again");
        assert_eq!(s.take().len(), 1);
    }
}
