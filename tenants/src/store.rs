//! The node's view of its practices: registry lookups (cached), lazily opened per-practice
//! databases under an LRU cap, and the [`Tenant`] handle that request code holds.
//!
//! A `Tenant` can only reach files under its own directory: every path and pool it hands
//! out is derived from its slug, never from request input.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use diesel::SqliteConnection;

use crate::clock::SharedClock;
use crate::db::{ConnCounter, DbError, DbKind, DbPool, PooledConn};
use crate::registry::{self, Practice, PracticeStatus};
use crate::secrets::{NodeKey, PracticeSecret, SecretsError};
use crate::slug::Slug;
use crate::time::Zone;

/// Tunables of the store.
#[derive(Debug, Clone)]
pub struct StoreSettings {
    pub data_dir: PathBuf,
    /// Practices whose databases may be open at once; the least recently used is closed.
    pub max_open_practices: usize,
    /// A practice unused this long has its databases closed.
    pub idle_close: Duration,
    /// Connections per practice database.
    pub pool_max: usize,
    /// How long a registry lookup is trusted (CLI changes show up after this).
    pub registry_ttl: Duration,
}

impl StoreSettings {
    pub fn new(data_dir: PathBuf) -> Self {
        Self {
            data_dir,
            max_open_practices: 256,
            idle_close: Duration::from_secs(300),
            pool_max: 4,
            registry_ttl: Duration::from_secs(2),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Secrets(#[from] SecretsError),
    #[error("internal lock poisoned")]
    Poisoned,
}

/// Directory of a practice inside a data directory.
pub fn practice_dir(data_dir: &Path, slug: &Slug) -> PathBuf {
    data_dir.join("tenants").join(slug.as_str())
}

/// The open state of one practice: its secret and its database pools.
struct OpenPractice {
    slug: Slug,
    dir: PathBuf,
    secret: PracticeSecret,
    pools: Mutex<HashMap<&'static str, Arc<DbPool>>>,
    pool_max: usize,
    conns: Arc<ConnCounter>,
}

/// Handle to one practice for the duration of a request or job.
#[derive(Clone)]
pub struct Tenant {
    open: Arc<OpenPractice>,
    display_name: Arc<str>,
    status: PracticeStatus,
    /// From the registry row, so a page shows local times without another query.
    zone: Zone,
}

impl std::fmt::Debug for Tenant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tenant")
            .field("slug", &self.open.slug.as_str())
            .finish_non_exhaustive()
    }
}

impl Tenant {
    pub fn slug(&self) -> &Slug {
        &self.open.slug
    }
    pub fn display_name(&self) -> &str {
        &self.display_name
    }
    pub fn status(&self) -> PracticeStatus {
        self.status
    }
    /// The practice's time zone: every time shown to its users is in it.
    pub fn time_zone(&self) -> &Zone {
        &self.zone
    }
    /// `t` as the practice's local time, German format (`06.12.2026, 14:05`).
    pub fn local_time(&self, t: crate::UnixTime) -> String {
        self.zone.format(t)
    }
    /// `t` as the practice's local time seen at `now`: `heute 04:21`, `gestern 17:03`,
    /// otherwise `06.12.2026, 04:21` ([`Zone::format_relative`]).
    pub fn local_time_at(&self, t: crate::UnixTime, now: crate::UnixTime) -> String {
        self.zone.format_relative(t, now)
    }
    /// `data/tenants/<slug>/`
    pub fn dir(&self) -> &Path {
        &self.open.dir
    }
    /// Content-addressed file contents.
    pub fn files_dir(&self) -> PathBuf {
        self.open.dir.join("files")
    }
    /// The practice's full-text index.
    pub fn index_dir(&self) -> PathBuf {
        self.open.dir.join("index")
    }
    /// Mail written to files when no SMTP relay is configured.
    pub fn outbox_dir(&self) -> PathBuf {
        self.open.dir.join("outbox")
    }
    /// The practice secret (derive purpose keys from it).
    pub fn secret(&self) -> &PracticeSecret {
        &self.open.secret
    }

    /// A connection to this practice's database of `kind`, opened and migrated on first use.
    /// Blocking: call inside `web::block` / `spawn_blocking`.
    pub fn conn(&self, kind: &'static DbKind) -> Result<PooledConn, StoreError> {
        Ok(self.pool(kind)?.get()?)
    }

    /// The pool of `kind`, opened and migrated on first use (blocking).
    fn pool(&self, kind: &'static DbKind) -> Result<Arc<DbPool>, StoreError> {
        let pool = {
            let mut pools = self.open.pools.lock().map_err(|_| StoreError::Poisoned)?;
            match pools.get(kind.name) {
                Some(p) => Arc::clone(p),
                None => {
                    let p = DbPool::open(
                        self.open.dir.join(kind.file),
                        kind,
                        self.open.pool_max,
                        Arc::clone(&self.open.conns),
                    )?;
                    pools.insert(kind.name, Arc::clone(&p));
                    p
                }
            }
        };
        Ok(pool)
    }

    /// Runs `f` as a write of this practice's database of `kind`, batched with the other
    /// writes queued at the same time into one transaction (group commit, see
    /// [`crate::group_commit`]); returns once the change is committed.
    pub async fn write<F, T, E>(
        &self,
        kind: &'static DbKind,
        f: F,
    ) -> Result<T, crate::group_commit::WriteError<E>>
    where
        F: FnOnce(&mut SqliteConnection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<diesel::result::Error> + Send + 'static,
    {
        use crate::group_commit::WriteError;
        let open = self
            .open
            .pools
            .lock()
            .map_err(|_| WriteError::Db("pools poisoned".into()))?
            .get(kind.name)
            .cloned();
        let pool = match open {
            Some(p) => p,
            None => {
                // First use: opening (and migrating) blocks, so not on this thread.
                let t = self.clone();
                tokio::task::spawn_blocking(move || t.pool(kind))
                    .await
                    .map_err(|e| WriteError::Db(e.to_string()))?
                    .map_err(|e| WriteError::Db(e.to_string()))?
            }
        };
        crate::group_commit::write(&pool, f).await
    }

    /// Number of databases of this practice that are open.
    pub fn open_databases(&self) -> usize {
        self.open.pools.lock().map(|p| p.len()).unwrap_or(0)
    }

    /// Whether the database of `kind` is open (background work on it can then run without
    /// opening files the practice does not use right now).
    pub fn is_open(&self, kind: &DbKind) -> bool {
        self.open
            .pools
            .lock()
            .map(|p| p.contains_key(kind.name))
            .unwrap_or(false)
    }
}

struct Cached {
    practice: Option<Practice>,
    at: Instant,
}

struct LruEntry {
    open: Arc<OpenPractice>,
    last_used: Instant,
}

/// All practices of this node, as seen by the server.
pub struct TenantStore {
    settings: StoreSettings,
    node_key: Arc<NodeKey>,
    clock: SharedClock,
    registry: Mutex<SqliteConnection>,
    cache: Mutex<HashMap<String, Cached>>,
    open: Mutex<HashMap<String, LruEntry>>,
    conns: Arc<ConnCounter>,
}

const CACHE_CAP: usize = 10_000;

impl TenantStore {
    /// Opens the registry of `settings.data_dir` (migrating it).
    pub fn open(
        settings: StoreSettings,
        node_key: Arc<NodeKey>,
        clock: SharedClock,
    ) -> Result<Self, StoreError> {
        crate::perms::create_dir_all(&settings.data_dir.join("tenants")).map_err(|source| {
            SecretsError::Io {
                path: settings.data_dir.display().to_string(),
                source,
            }
        })?;
        let registry = registry::open(&settings.data_dir)?;
        Ok(Self {
            settings,
            node_key,
            clock,
            registry: Mutex::new(registry),
            cache: Mutex::new(HashMap::new()),
            open: Mutex::new(HashMap::new()),
            conns: Arc::new(ConnCounter::default()),
        })
    }

    pub fn settings(&self) -> &StoreSettings {
        &self.settings
    }
    pub fn data_dir(&self) -> &Path {
        &self.settings.data_dir
    }
    pub fn node_key(&self) -> &NodeKey {
        &self.node_key
    }
    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }

    /// The registry connection, locked. Blocking; keep the guard short-lived.
    pub fn lock_registry(&self) -> Result<MutexGuard<'_, SqliteConnection>, StoreError> {
        self.registry.lock().map_err(|_| StoreError::Poisoned)
    }

    /// Runs `f` on the registry connection. Blocking.
    pub fn with_registry<T>(
        &self,
        f: impl FnOnce(&mut SqliteConnection) -> Result<T, DbError>,
    ) -> Result<T, StoreError> {
        let mut conn = self.registry.lock().map_err(|_| StoreError::Poisoned)?;
        Ok(f(&mut conn)?)
    }

    /// The registry entry of `slug`, from the cache when fresh. Blocking on a miss.
    pub fn lookup(&self, slug: &Slug) -> Result<Option<Practice>, StoreError> {
        {
            let cache = self.cache.lock().map_err(|_| StoreError::Poisoned)?;
            if let Some(c) = cache.get(slug.as_str())
                && c.at.elapsed() < self.settings.registry_ttl
            {
                return Ok(c.practice.clone());
            }
        }
        let practice = self.with_registry(|c| registry::find(c, slug.as_str()))?;
        let mut cache = self.cache.lock().map_err(|_| StoreError::Poisoned)?;
        if cache.len() >= CACHE_CAP {
            cache.clear();
        }
        cache.insert(
            slug.to_string(),
            Cached {
                practice: practice.clone(),
                at: Instant::now(),
            },
        );
        Ok(practice)
    }

    /// Drops cached registry data and open databases of `slug` (after a lifecycle change).
    pub fn invalidate(&self, slug: &Slug) {
        if let Ok(mut cache) = self.cache.lock() {
            cache.remove(slug.as_str());
        }
        if let Ok(mut open) = self.open.lock() {
            open.remove(slug.as_str());
        }
    }

    /// A handle to a live practice (active or suspended), opening it if needed.
    /// `None` for unknown and deleted practices. Blocking.
    pub fn tenant(&self, slug: &Slug) -> Result<Option<Tenant>, StoreError> {
        let Some(practice) = self.lookup(slug)? else {
            return Ok(None);
        };
        if practice.status == PracticeStatus::Deleted {
            return Ok(None);
        }
        let open = self.open_practice(slug)?;
        Ok(Some(Tenant {
            open,
            display_name: Arc::from(practice.display_name.as_str()),
            status: practice.status,
            zone: practice.time_zone,
        }))
    }

    /// The answer of [`TenantStore::tenant`] if it can be given without blocking: the
    /// registry entry is fresh in the cache and the practice is open (or unknown).
    pub fn cached_tenant(&self, slug: &Slug) -> Option<Option<Tenant>> {
        let practice = {
            let cache = self.cache.lock().ok()?;
            let c = cache.get(slug.as_str())?;
            if c.at.elapsed() >= self.settings.registry_ttl {
                return None;
            }
            match &c.practice {
                Some(p) if p.status != PracticeStatus::Deleted => p.clone(),
                _ => return Some(None),
            }
        };
        let mut open = self.open.lock().ok()?;
        let entry = open.get_mut(slug.as_str())?;
        entry.last_used = Instant::now();
        Some(Some(Tenant {
            open: Arc::clone(&entry.open),
            display_name: Arc::from(practice.display_name.as_str()),
            status: practice.status,
            zone: practice.time_zone,
        }))
    }

    fn lock_open(&self) -> Result<MutexGuard<'_, HashMap<String, LruEntry>>, StoreError> {
        self.open.lock().map_err(|_| StoreError::Poisoned)
    }

    fn open_practice(&self, slug: &Slug) -> Result<Arc<OpenPractice>, StoreError> {
        {
            let mut open = self.lock_open()?;
            if let Some(entry) = open.get_mut(slug.as_str()) {
                entry.last_used = Instant::now();
                return Ok(Arc::clone(&entry.open));
            }
        }
        // Load outside the lock: reading and unwrapping the secret touches the disk.
        let dir = practice_dir(&self.settings.data_dir, slug);
        let secret = PracticeSecret::load(&self.node_key, slug, &dir)?;
        let fresh = Arc::new(OpenPractice {
            slug: slug.clone(),
            dir,
            secret,
            pools: Mutex::new(HashMap::new()),
            pool_max: self.settings.pool_max,
            conns: Arc::clone(&self.conns),
        });
        let mut open = self.lock_open()?;
        let entry = open.entry(slug.to_string()).or_insert_with(|| LruEntry {
            open: fresh,
            last_used: Instant::now(),
        });
        entry.last_used = Instant::now();
        let handle = Arc::clone(&entry.open);
        while open.len() > self.settings.max_open_practices {
            let Some(victim) = open
                .iter()
                .min_by_key(|(_, e)| e.last_used)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            open.remove(&victim);
        }
        Ok(handle)
    }

    /// Handles to the practices open right now, without marking them used, for background
    /// jobs that must not keep idle practices open. Blocking only on internal locks.
    pub fn open_tenants(&self) -> Vec<Tenant> {
        let names: HashMap<String, (String, PracticeStatus, Zone)> = self
            .cache
            .lock()
            .map(|c| {
                c.iter()
                    .filter_map(|(k, v)| {
                        v.practice.as_ref().map(|p| {
                            (
                                k.clone(),
                                (p.display_name.clone(), p.status, p.time_zone.clone()),
                            )
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        let Ok(open) = self.open.lock() else {
            return Vec::new();
        };
        open.iter()
            .map(|(slug, e)| {
                let (name, status, zone) = names.get(slug).cloned().unwrap_or_else(|| {
                    (slug.clone(), PracticeStatus::Active, Zone::default_zone())
                });
                Tenant {
                    open: Arc::clone(&e.open),
                    display_name: Arc::from(name.as_str()),
                    status,
                    zone,
                }
            })
            .collect()
    }

    /// A handle to `slug` if the practice is open right now, without marking it used (for
    /// background jobs that must neither open a practice nor keep it open).
    pub fn open_tenant(&self, slug: &Slug) -> Option<Tenant> {
        let (name, status, zone) = self
            .cache
            .lock()
            .ok()
            .and_then(|c| {
                c.get(slug.as_str())
                    .and_then(|v| v.practice.as_ref())
                    .map(|p| (p.display_name.clone(), p.status, p.time_zone.clone()))
            })
            .unwrap_or_else(|| {
                (
                    slug.to_string(),
                    PracticeStatus::Active,
                    Zone::default_zone(),
                )
            });
        let open = self.open.lock().ok()?;
        let entry = open.get(slug.as_str())?;
        Some(Tenant {
            open: Arc::clone(&entry.open),
            display_name: Arc::from(name.as_str()),
            status,
            zone,
        })
    }

    /// Closes practices idle for longer than the configured time. Returns how many.
    pub fn close_idle(&self) -> usize {
        let Ok(mut open) = self.open.lock() else {
            return 0;
        };
        let before = open.len();
        let limit = self.settings.idle_close;
        open.retain(|_, e| e.last_used.elapsed() < limit);
        before - open.len()
    }

    /// Shrinks every open database pool to what its load since the previous call needed
    /// at once ([`crate::db::DbPool::shrink`]). Returns the connections closed.
    pub fn shrink_pools(&self) -> usize {
        let pools: Vec<Arc<DbPool>> = match self.open.lock() {
            Ok(open) => open
                .values()
                .flat_map(|e| {
                    e.open
                        .pools
                        .lock()
                        .map(|p| p.values().cloned().collect::<Vec<_>>())
                        .unwrap_or_default()
                })
                .collect(),
            Err(_) => return 0,
        };
        pools.iter().map(|p| p.shrink()).sum()
    }

    /// Closes every open practice database (shutdown).
    pub fn close_all(&self) {
        if let Ok(mut open) = self.open.lock() {
            open.clear();
        }
    }

    /// Whether `slug`'s databases are open right now.
    pub fn is_open(&self, slug: &Slug) -> bool {
        self.open
            .lock()
            .is_ok_and(|o| o.contains_key(slug.as_str()))
    }

    /// Slugs of the practices that are open right now.
    pub fn open_slugs(&self) -> Vec<String> {
        self.open
            .lock()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Practices with open databases right now.
    pub fn open_practices(&self) -> usize {
        self.open.lock().map(|o| o.len()).unwrap_or(0)
    }

    /// Open practice database files (pools) right now.
    pub fn open_databases(&self) -> usize {
        self.open
            .lock()
            .map(|o| {
                o.values()
                    .map(|e| e.open.pools.lock().map(|p| p.len()).unwrap_or(0))
                    .sum()
            })
            .unwrap_or(0)
    }

    /// Open SQLite connections to practice databases right now.
    pub fn open_connections(&self) -> usize {
        self.conns.get()
    }
}
