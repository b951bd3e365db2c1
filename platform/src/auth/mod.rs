//! Sign-in: the platform is a relying party of its own practice's IdP (authorization code
//! with PKCE, via the `openidconnect` crate), with a session of its own behind its own
//! cookie. It never reads `idp.sqlite`: who the user is comes from the ID token and the
//! userinfo endpoint, like for any third-party tool. A pending sign-in lives, sealed, in
//! the browser that started it and completes only there (`pending`).

pub mod cache;
pub mod pending;
pub mod routes;
pub mod rp;
pub mod session;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use kollegium_tenants::SharedClock;
use openidconnect::core::CoreProviderMetadata;

use crate::PlatformSettings;
use crate::app::AppContext;

pub use session::{Member, MemberAdmin};

/// Settings under which the platform keeps its sessions.
#[derive(Debug, Clone, Copy)]
pub struct SessionSettings {
    /// A platform session unused this long ends; no longer than the IdP's idle limit.
    pub session_idle_secs: i64,
    /// A platform session ends this long after sign-in, however busy.
    pub session_absolute_secs: i64,
    /// A pending sign-in (state, nonce, PKCE verifier) is valid this long.
    pub login_state_ttl_secs: i64,
}

impl Default for SessionSettings {
    fn default() -> Self {
        Self {
            session_idle_secs: 30 * 60,
            session_absolute_secs: 12 * 3600,
            login_state_ttl_secs: 600,
        }
    }
}

impl From<&PlatformSettings> for SessionSettings {
    fn from(s: &PlatformSettings) -> Self {
        Self {
            session_idle_secs: s.session_idle_secs,
            session_absolute_secs: s.session_absolute_secs,
            login_state_ttl_secs: s.login_state_ttl_secs,
        }
    }
}

/// The sign-in's state: sessions and their cache, token refresh locks, the IdPs' discovery
/// cache and the server-to-server client. Registered once with `app_data`; it holds no
/// app's state.
pub struct SignIn {
    pub clock: SharedClock,
    /// Server-to-server client (`*.<base>` resolves to this node).
    pub http: reqwest::Client,
    pub settings: SessionSettings,
    /// What the apps share: told when sessions end.
    shared: Arc<AppContext>,
    metadata: Mutex<HashMap<String, (CoreProviderMetadata, Instant)>>,
    /// The platform's registrations at the practices' IdPs, by slug and origin, read from
    /// `platform.sqlite` at most once per [`rp::REGISTRATION_TTL`] (see
    /// [`rp::registration_cached`]): a sign-in start opens no workspace database.
    registrations: Mutex<HashMap<(String, String), (rp::Registration, Instant)>>,
    /// One discovery fetch per issuer at a time (see [`SignIn::metadata_lock`]).
    metadata_locks: [tokio::sync::Mutex<()>; METADATA_STRIPES],
    /// Discovery (with key set) fetches from the IdPs since start.
    metadata_fetches: AtomicU64,
    /// Recently read sessions (see [`cache`]).
    pub(crate) sessions: cache::SessionCache,
    /// Token refreshes run one at a time per session (see [`SignIn::refresh_lock`]).
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

impl SignIn {
    pub fn new(shared: Arc<AppContext>, http: reqwest::Client, settings: SessionSettings) -> Self {
        Self {
            clock: shared.clock.clone(),
            http,
            settings,
            shared,
            metadata: Mutex::new(HashMap::new()),
            registrations: Mutex::new(HashMap::new()),
            metadata_locks: std::array::from_fn(|_| tokio::sync::Mutex::new(())),
            metadata_fetches: AtomicU64::new(0),
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

    pub fn now(&self) -> kollegium_tenants::UnixTime {
        self.clock.now()
    }

    /// After sessions ended: forgets their cached copies, closes their live connections
    /// and tells every app.
    pub fn sessions_ended(&self, slug: &str, sessions: &[i64]) {
        self.sessions.forget(slug, sessions);
        self.shared.sessions_ended(slug, sessions);
    }

    /// After members left the practice (the directory no longer lists them as active) and
    /// that committed: every app reacts on the practice's `platform.sqlite` (`conn`).
    pub fn members_deactivated(
        &self,
        conn: &mut diesel::SqliteConnection,
        slug: &str,
        members: &[crate::members::MemberId],
    ) {
        self.shared.members_deactivated(conn, slug, members);
    }
}
