//! Sign-in: the platform is a relying party of its own practice's IdP (authorization code
//! with PKCE, via the `openidconnect` crate), with a session of its own behind its own
//! cookie. It never reads `idp.sqlite`: who the user is comes from the ID token and the
//! userinfo endpoint, like for any third-party tool. A pending sign-in completes only in
//! the browser that started it (`binding`).

pub mod binding;
pub mod cache;
pub mod routes;
pub mod rp;
pub mod session;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use kollegium_tenants::SharedClock;
use openidconnect::core::CoreProviderMetadata;

pub use session::{Member, MemberAdmin};

/// Settings under which the platform keeps its sessions.
#[derive(Debug, Clone)]
pub struct PlatformSettings {
    /// A platform session unused this long ends; no longer than the IdP's idle limit.
    pub session_idle_secs: i64,
    /// A platform session ends this long after sign-in, however busy: the IdP session's
    /// absolute limit (the workspace never outlives the sign-in it came from).
    pub session_absolute_secs: i64,
    /// A pending sign-in (state, nonce, PKCE verifier) is valid this long.
    pub login_state_ttl_secs: i64,
    /// Chat messages a member may send in a burst, refilled at `posts_per_sec`.
    pub post_burst: f64,
    pub posts_per_sec: f64,
}

impl Default for PlatformSettings {
    fn default() -> Self {
        Self {
            session_idle_secs: 30 * 60,
            session_absolute_secs: 12 * 3600,
            login_state_ttl_secs: 600,
            post_burst: 20.0,
            posts_per_sec: 1.0,
        }
    }
}

/// Registered once with `app_data`.
pub struct PlatformState {
    pub clock: SharedClock,
    /// Server-to-server client (`*.<base>` resolves to this node).
    pub http: reqwest::Client,
    pub settings: PlatformSettings,
    /// Live chat delivery to open WebSocket connections.
    pub live: crate::chat::live::Hub,
    metadata: Mutex<HashMap<String, (CoreProviderMetadata, Instant)>>,
    /// One discovery fetch per issuer at a time (see [`PlatformState::metadata_lock`]).
    metadata_locks: [tokio::sync::Mutex<()>; METADATA_STRIPES],
    /// Discovery (with key set) fetches from the IdPs since start.
    metadata_fetches: AtomicU64,
    posting: Mutex<HashMap<(String, i64), (f64, Instant)>>,
    search: Arc<crate::search::SearchService>,
    /// Recently read sessions (see [`cache`]).
    pub(crate) sessions: cache::SessionCache,
    /// Token refreshes run one at a time per session (see [`PlatformState::refresh_lock`]).
    refresh_locks: [tokio::sync::Mutex<()>; REFRESH_STRIPES],
}

/// Lock stripes for token refreshes: sessions share a stripe by hash, so memory stays
/// fixed; two sessions on one stripe only wait for each other's IdP round trip.
const REFRESH_STRIPES: usize = 64;
/// Lock stripes for discovery fetches, by issuer.
const METADATA_STRIPES: usize = 16;

fn stripe(key: impl std::hash::Hash, stripes: usize) -> usize {
    use std::hash::Hasher;
    let mut h = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut h);
    (h.finish() % stripes as u64) as usize
}

impl PlatformState {
    pub fn new(clock: SharedClock, http: reqwest::Client, settings: PlatformSettings) -> Self {
        Self {
            clock,
            http,
            settings,
            live: crate::chat::live::Hub::default(),
            metadata: Mutex::new(HashMap::new()),
            metadata_locks: std::array::from_fn(|_| tokio::sync::Mutex::new(())),
            metadata_fetches: AtomicU64::new(0),
            posting: Mutex::new(HashMap::new()),
            search: Arc::new(crate::search::SearchService::new()),
            sessions: cache::SessionCache::default(),
            refresh_locks: std::array::from_fn(|_| tokio::sync::Mutex::new(())),
        }
    }

    /// The lock under which session `session` of practice `slug` refreshes its tokens.
    ///
    /// The IdP rotates refresh tokens and treats a second use of a rotated one as theft
    /// (it revokes the whole grant), so concurrent requests of one session (a page, the
    /// script's API calls, the WebSocket) must not each refresh: the first refreshes, the
    /// others wait here and then find the session refreshed. The lock is per process; a
    /// deployment with several nodes serving one practice needs session affinity.
    pub(crate) fn refresh_lock(&self, slug: &str, session: i64) -> &tokio::sync::Mutex<()> {
        &self.refresh_locks[stripe((slug, session), REFRESH_STRIPES)]
    }

    /// The lock under which the discovery document and keys of `issuer` are fetched, so
    /// that requests missing the cache at once (a burst of back-channel posts) cause one
    /// fetch, not one each.
    pub(crate) fn metadata_lock(&self, issuer: &str) -> &tokio::sync::Mutex<()> {
        &self.metadata_locks[stripe(issuer, METADATA_STRIPES)]
    }

    pub(crate) fn count_metadata_fetch(&self) {
        self.metadata_fetches.fetch_add(1, Ordering::Relaxed);
    }

    /// How often the IdPs' discovery documents (with their keys) were fetched since start.
    pub fn metadata_fetches(&self) -> u64 {
        self.metadata_fetches.load(Ordering::Relaxed)
    }

    /// The chat search service (index cache and the indexer's doorbell), for the worker.
    pub fn search(&self) -> Arc<crate::search::SearchService> {
        self.search.clone()
    }

    /// Tells the search indexer that `slug` queued index changes (after the commit).
    pub fn search_kick(&self, slug: &kollegium_tenants::Slug) {
        self.search.kick(slug);
    }

    pub fn now(&self) -> kollegium_tenants::UnixTime {
        self.clock.now()
    }

    /// Publishes committed chat events to the practice's live connections, and has the
    /// search index follow message changes (about 1 s later).
    pub fn publish(&self, slug: &str, events: Vec<crate::chat::live::Event>) {
        use crate::chat::live::EventKind;
        let mut changed = false;
        for ev in events {
            changed |= matches!(
                ev.kind,
                EventKind::Posted(_) | EventKind::Edited(_) | EventKind::Deleted { .. }
            );
            self.live.publish(slug, ev);
        }
        if changed {
            self.search.kick_str(slug);
        }
    }

    /// After sessions ended: forgets their cached copies and closes their live connections.
    pub fn sessions_ended(&self, slug: &str, sessions: &[i64]) {
        self.sessions.forget(slug, sessions);
        for s in sessions {
            self.live.publish(
                slug,
                crate::chat::live::Event {
                    room: 0,
                    audience: crate::chat::live::Audience::Session(*s),
                    kind: crate::chat::live::EventKind::SessionEnded,
                },
            );
        }
    }

    /// Whether a member may post now (token bucket per practice and member).
    pub fn allow_post(&self, slug: &str, member: i64) -> bool {
        let Ok(mut buckets) = self.posting.lock() else {
            return true;
        };
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
}
