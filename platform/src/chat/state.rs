//! What the chat keeps for the node's lifetime: its settings and the posting limiter, with
//! the shared context (clock, live channel, search). Registered with `app_data` as
//! `web::Data<ChatState>` by [`super::app::Chat`]; no other app reads it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use kollegium_tenants::UnixTime;

use super::live::{self, EventKind};
use crate::app::AppContext;
use crate::search::SearchService;

/// Chat settings of the node.
#[derive(Debug, Clone, Copy)]
pub struct ChatSettings {
    /// Messages a member may send in a burst, refilled at `posts_per_sec`.
    pub post_burst: f64,
    pub posts_per_sec: f64,
}

impl Default for ChatSettings {
    fn default() -> Self {
        Self {
            post_burst: 20.0,
            posts_per_sec: 1.0,
        }
    }
}

impl From<&crate::PlatformSettings> for ChatSettings {
    fn from(s: &crate::PlatformSettings) -> Self {
        Self {
            post_burst: s.post_burst,
            posts_per_sec: s.posts_per_sec,
        }
    }
}

type Buckets = HashMap<(String, i64), (f64, Instant)>;

/// The chat's node-wide state.
pub struct ChatState {
    shared: Arc<AppContext>,
    pub settings: ChatSettings,
    posting: Mutex<Buckets>,
}

impl ChatState {
    pub fn new(shared: Arc<AppContext>, settings: ChatSettings) -> Self {
        Self {
            shared,
            settings,
            posting: Mutex::new(HashMap::new()),
        }
    }

    pub fn now(&self) -> UnixTime {
        self.shared.now()
    }

    /// The search service (chat search, index follow-up of message changes).
    pub fn search(&self) -> Arc<SearchService> {
        self.shared.search.clone()
    }

    /// The live channel.
    pub fn live(&self) -> &crate::live::Hub {
        &self.shared.live
    }

    /// Publishes committed chat events on the live channel, and has the search index
    /// follow message changes (about 1 s later).
    pub fn publish(&self, slug: &str, events: Vec<live::Event>) {
        let mut changed = false;
        for ev in events {
            changed |= matches!(
                ev.kind,
                EventKind::Posted(_) | EventKind::Edited(_) | EventKind::Deleted { .. }
            );
            ev.publish(&self.shared.live, slug);
        }
        if changed {
            self.shared.search.kick_str(slug);
        }
    }

    /// The posting buckets. A panic while they were held leaves them poisoned; they hold
    /// plain numbers that are valid at every step, so the limiter goes on with them
    /// (logged) instead of letting everything through or refusing everyone.
    fn buckets(&self) -> MutexGuard<'_, Buckets> {
        self.posting.lock().unwrap_or_else(|poisoned| {
            tracing::error!("chat posting limiter lock was poisoned; recovered its buckets");
            self.posting.clear_poison();
            poisoned.into_inner()
        })
    }

    /// Whether a member may post now (token bucket per practice and member).
    pub fn allow_post(&self, slug: &str, member: i64) -> bool {
        let mut buckets = self.buckets();
        if buckets.len() > 100_000 {
            buckets.clear();
        }
        let entry = buckets
            .entry((slug.to_owned(), member))
            .or_insert((self.settings.post_burst, Instant::now()));
        let refill = entry.1.elapsed().as_secs_f64() * self.settings.posts_per_sec;
        entry.0 = (entry.0 + refill).min(self.settings.post_burst);
        entry.1 = Instant::now();
        if entry.0 >= 1.0 {
            entry.0 -= 1.0;
            true
        } else {
            false
        }
    }

    /// Members with a posting budget in memory (a gauge).
    pub fn post_buckets(&self) -> usize {
        self.buckets().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(burst: f64) -> Arc<ChatState> {
        let clock: kollegium_tenants::SharedClock =
            Arc::new(kollegium_tenants::clock::ManualClock::new(1_000));
        Arc::new(ChatState::new(
            Arc::new(AppContext::new(
                clock,
                Arc::new(kollegium_tenants::jobs::JobSignal::new()),
            )),
            ChatSettings {
                post_burst: burst,
                posts_per_sec: 1e-9,
            },
        ))
    }

    #[test]
    fn the_limiter_refuses_after_the_burst() {
        let s = state(3.0);
        assert!((0..3).all(|_| s.allow_post("praxis-a", 1)));
        assert!(!s.allow_post("praxis-a", 1));
        assert!(s.allow_post("praxis-a", 2), "another member's own budget");
        assert!(s.allow_post("praxis-b", 1), "another practice's own budget");
    }

    #[test]
    fn a_poisoned_limiter_still_limits() {
        let s = state(3.0);
        let holder = s.clone();
        let _ = std::thread::spawn(move || {
            let _guard = holder.posting.lock().unwrap();
            panic!("a panic while the posting buckets are held");
        })
        .join();
        assert!(s.posting.is_poisoned());
        let allowed = (0..10).filter(|_| s.allow_post("praxis-a", 1)).count();
        assert_eq!(allowed, 3, "the burst, then refused: it does not fail open");
        assert!(!s.posting.is_poisoned(), "recovered");
        assert_eq!(s.post_buckets(), 1);
    }
}
