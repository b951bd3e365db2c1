//! Back-channel logout (OpenID Connect Back-Channel Logout 1.0): when a browser session
//! ends, every client that received tokens within it is told so by a signed logout token.
//!
//! Notices are queued in the practice's `backchannel_queue` (same transaction as the
//! logout) and delivered concurrently by the node's worker: the practices' own workspaces
//! on a lane of their own, third-party endpoints bounded node-wide, per practice and per
//! endpoint, so a slow endpoint delays neither another practice nor a workspace logout.
//! Third-party addresses pass the egress rules ([`super::egress`]) at every attempt.

use diesel::prelude::*;
use kollegium_tenants::UnixTime;

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::web;
use kollegium_tenants::web::WebContext;
use kollegium_tenants::{Slug, Tenant, TenantStore};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

use super::egress::Refusal;
use super::jwt::{self, Signer256};
use crate::IDP_DB;
use crate::state::IdpState;

use crate::schema::{backchannel_queue, clients, session_clients, sessions, users};

/// Queues a logout notice for each client that had the session. The logout token itself
/// is built and signed at delivery; the queue row holds its claims.
pub fn session_ended(
    conn: &mut SqliteConnection,
    session_id: i64,
    now: UnixTime,
) -> QueryResult<()> {
    let targets: Vec<(String, Option<String>)> = session_clients::table
        .inner_join(clients::table.on(clients::client_id.eq(session_clients::client_id)))
        .filter(session_clients::session_id.eq(session_id))
        .filter(clients::backchannel_logout_uri.is_not_null())
        .select((clients::client_id, clients::backchannel_logout_uri))
        .load(conn)?;
    if targets.is_empty() {
        return Ok(());
    }
    let (sid, sub): (String, String) = sessions::table
        .inner_join(users::table.on(users::id.eq(sessions::user_id)))
        .filter(sessions::id.eq(session_id))
        .select((sessions::sid, users::sub))
        .first(conn)?;
    for (client_id, uri) in targets {
        let Some(uri) = uri else { continue };
        let claims = serde_json::json!({ "sid": sid, "sub": sub, "aud": client_id }).to_string();
        diesel::insert_into(backchannel_queue::table)
            .values((
                backchannel_queue::client_id.eq(&client_id),
                backchannel_queue::uri.eq(&uri),
                backchannel_queue::logout_token.eq(&claims),
                backchannel_queue::next_attempt_at.eq(now),
                backchannel_queue::created_at.eq(now),
            ))
            .execute(conn)?;
    }
    Ok(())
}

// ---- queue ---------------------------------------------------------------------------

/// Attempts per notice before it is given up (kept in the table with its last error).
pub const MAX_ATTEMPTS: i64 = 8;
/// How often the worker looks at practices with pending notices.
pub const TICK: Duration = Duration::from_secs(3);
/// How often the worker also sweeps every open practice (notices queued by code paths that
/// did not call [`Outbox::note`], e.g. idle timeouts).
pub const SWEEP: Duration = Duration::from_secs(15);

/// Practices with notices to deliver, and a wake-up for the worker.
#[derive(Debug, Default)]
pub struct Outbox {
    pending: Mutex<HashSet<String>>,
    wake: tokio::sync::Notify,
}

impl Outbox {
    /// Marks a practice as having queued notices and wakes the worker.
    pub fn note(&self, slug: &str) {
        self.remember(slug);
        self.wake.notify_one();
    }
    fn remember(&self, slug: &str) {
        if let Ok(mut p) = self.pending.lock() {
            p.insert(slug.to_owned());
        }
    }
    fn take(&self) -> Vec<String> {
        self.pending
            .lock()
            .map(|mut p| p.drain().collect())
            .unwrap_or_default()
    }
}

/// Seconds to wait before attempt `attempts + 1`.
pub fn backoff(attempts: i64) -> i64 {
    (10_i64 << attempts.clamp(0, 12)).min(3600)
}

/// A notice due for delivery.
#[derive(Debug, Clone)]
pub struct Due {
    pub id: i64,
    pub client_id: String,
    pub uri: String,
    pub attempts: i64,
    pub claims: String,
    /// For the practice's own workspace: delivered on its own lane, before anything else.
    pub first_party: bool,
}

/// Due notices, the first-party client's first, then oldest first.
pub fn due(conn: &mut SqliteConnection, now: UnixTime, limit: i64) -> QueryResult<Vec<Due>> {
    let rows: Vec<(i64, String, String, i64, String, Option<bool>)> = backchannel_queue::table
        .left_join(clients::table.on(clients::client_id.eq(backchannel_queue::client_id)))
        .filter(backchannel_queue::delivered_at.is_null())
        .filter(backchannel_queue::attempts.lt(MAX_ATTEMPTS))
        .filter(backchannel_queue::next_attempt_at.le(now))
        .order((clients::first_party.desc(), backchannel_queue::id))
        .limit(limit)
        .select((
            backchannel_queue::id,
            backchannel_queue::client_id,
            backchannel_queue::uri,
            backchannel_queue::attempts,
            backchannel_queue::logout_token,
            clients::first_party.nullable(),
        ))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|(id, client_id, uri, attempts, claims, first)| Due {
            id,
            client_id,
            uri,
            attempts,
            claims,
            first_party: first.unwrap_or(false),
        })
        .collect())
}

/// Whether undelivered notices remain that will be tried again.
pub fn pending(conn: &mut SqliteConnection) -> QueryResult<bool> {
    let n: i64 = backchannel_queue::table
        .filter(backchannel_queue::delivered_at.is_null())
        .filter(backchannel_queue::attempts.lt(MAX_ATTEMPTS))
        .count()
        .get_result(conn)?;
    Ok(n > 0)
}

/// Records the outcome of one attempt. `error` is a short reason, never the token. A
/// notice leaves the queue only when delivered or after its last attempt (at least once).
pub fn mark(
    conn: &mut SqliteConnection,
    d: &Due,
    error: Option<&str>,
    now: UnixTime,
) -> QueryResult<()> {
    // Only the attempt that read the row as it is records over it.
    let q = backchannel_queue::table
        .find(d.id)
        .filter(backchannel_queue::attempts.eq(d.attempts));
    match error {
        None => diesel::update(q)
            .set((
                backchannel_queue::delivered_at.eq(now),
                backchannel_queue::attempts.eq(d.attempts + 1),
                backchannel_queue::last_error.eq(None::<String>),
            ))
            .execute(conn)?,
        Some(e) => diesel::update(q)
            .set((
                backchannel_queue::attempts.eq(d.attempts + 1),
                backchannel_queue::next_attempt_at.eq(now + backoff(d.attempts)),
                backchannel_queue::last_error.eq(e),
            ))
            .execute(conn)?,
    };
    Ok(())
}

/// Signs the logout token of a queued notice (OIDC Back-Channel Logout §2.4).
pub fn logout_token(
    signer: &Signer256,
    issuer: &str,
    claims: &str,
    now: UnixTime,
) -> Option<String> {
    let c: serde_json::Value = serde_json::from_str(claims).ok()?;
    let token = serde_json::json!({
        "iss": issuer,
        "aud": c.get("aud")?,
        "iat": now,
        "exp": now + 120,
        "jti": kollegium_tenants::secrets::random_token(18),
        "sid": c.get("sid")?,
        "sub": c.get("sub")?,
        "events": { "http://schemas.openid.net/event/backchannel-logout": {} },
    });
    jwt::sign(signer, jwt::TYP_LOGOUT_TOKEN, &token).ok()
}

// ---- delivery ------------------------------------------------------------------------

/// First-party notices (the practices' own workspaces) in flight at once, node-wide. They
/// go to this node and never wait for a third-party permit.
pub const FIRST_PARTY_LANE: usize = 16;
/// Third-party notices in flight at once, node-wide.
pub const THIRD_PARTY_LANE: usize = 64;
/// Third-party notices of one practice in flight at once: a practice's slow endpoints
/// take at most this share of the third-party lane.
pub const PER_PRACTICE: usize = 4;
/// Notices of one practice to one endpoint (host and port) in flight at once. Keyed per
/// practice: a practice that points its tool at a slow path of a host other practices use
/// slows only its own notices.
pub const PER_ENDPOINT: usize = 2;
/// Third-party notices of one practice taken from its queue (in flight or waiting for a
/// permit); the rest stay queued.
pub const PRACTICE_BACKLOG: usize = 32;
/// Rows read per practice and pass.
const DUE_BATCH: i64 = 100;

#[derive(Debug, Default)]
struct InFlight {
    rows: HashSet<(String, i64)>,
    third_party: HashMap<String, usize>,
}

/// The delivery lanes: one for first-party notices, and for third-party ones a node-wide
/// bound plus one per practice and one per endpoint, so one practice's slow endpoint
/// delays neither another practice nor any practice's own workspace logout.
#[derive(Debug)]
struct Lanes {
    first_party: Arc<Semaphore>,
    third_party: Arc<Semaphore>,
    practices: Mutex<HashMap<String, Arc<Semaphore>>>,
    endpoints: Mutex<HashMap<String, Arc<Semaphore>>>,
    in_flight: Mutex<InFlight>,
}

fn keyed(map: &Mutex<HashMap<String, Arc<Semaphore>>>, key: &str, n: usize) -> Arc<Semaphore> {
    match map.lock() {
        Ok(mut m) => m
            .entry(key.to_owned())
            .or_insert_with(|| Arc::new(Semaphore::new(n)))
            .clone(),
        // A poisoned map still bounds nothing worse than a fresh semaphore would.
        Err(_) => Arc::new(Semaphore::new(n)),
    }
}

/// `host:port` of an address: with the practice, the key of its endpoint lane.
fn endpoint_key(uri: &str) -> String {
    url::Url::parse(uri)
        .ok()
        .and_then(|u| {
            let host = u.host_str()?.to_ascii_lowercase();
            Some(format!("{host}:{}", u.port_or_known_default()?))
        })
        .unwrap_or_else(|| uri.to_owned())
}

impl Lanes {
    fn new() -> Self {
        Self {
            first_party: Arc::new(Semaphore::new(FIRST_PARTY_LANE)),
            third_party: Arc::new(Semaphore::new(THIRD_PARTY_LANE)),
            practices: Mutex::default(),
            endpoints: Mutex::default(),
            in_flight: Mutex::default(),
        }
    }

    /// Picks the notices to start: not already in flight; every first-party one; third-party
    /// ones while the practice's backlog has room. Marks them in flight.
    fn claim(&self, slug: &str, rows: Vec<Due>) -> Vec<Due> {
        let Ok(mut f) = self.in_flight.lock() else {
            return Vec::new();
        };
        let mut backlog = f.third_party.get(slug).copied().unwrap_or(0);
        let mut out = Vec::new();
        for d in rows {
            if f.rows.contains(&(slug.to_owned(), d.id)) {
                continue;
            }
            if !d.first_party {
                if backlog >= PRACTICE_BACKLOG {
                    continue;
                }
                backlog += 1;
            }
            f.rows.insert((slug.to_owned(), d.id));
            out.push(d);
        }
        f.third_party.insert(slug.to_owned(), backlog);
        out
    }

    fn release(&self, slug: &str, d: &Due) {
        if let Ok(mut f) = self.in_flight.lock() {
            f.rows.remove(&(slug.to_owned(), d.id));
            if !d.first_party
                && let Some(n) = f.third_party.get_mut(slug)
            {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    f.third_party.remove(slug);
                }
            }
        }
    }

    /// Waits for the permits of a notice: its endpoint's, then its practice's, then the
    /// node-wide third-party lane (in this order, so notices queued behind a slow endpoint
    /// hold nothing the practice's other endpoints need); or only the first-party lane.
    async fn permits(&self, slug: &str, d: &Due) -> Option<Vec<OwnedSemaphorePermit>> {
        if d.first_party {
            return Some(vec![self.first_party.clone().acquire_owned().await.ok()?]);
        }
        let endpoint_lane = format!("{slug} {}", endpoint_key(&d.uri));
        let endpoint = keyed(&self.endpoints, &endpoint_lane, PER_ENDPOINT);
        let practice = keyed(&self.practices, slug, PER_PRACTICE);
        let mut held = Vec::with_capacity(3);
        held.push(endpoint.acquire_owned().await.ok()?);
        held.push(practice.acquire_owned().await.ok()?);
        held.push(self.third_party.clone().acquire_owned().await.ok()?);
        Some(held)
    }

    /// Forgets the practice and endpoint semaphores nobody waits on or holds.
    fn tidy(&self) {
        for map in [&self.practices, &self.endpoints] {
            if let Ok(mut m) = map.lock() {
                m.retain(|_, s| Arc::strong_count(s) > 1);
            }
        }
    }
}

/// What the delivery tasks share.
struct Delivery {
    lanes: Lanes,
    state: web::Data<IdpState>,
    /// To this node (first-party notices): `*.<base>` resolved to the main listener.
    node_http: reqwest::Client,
    /// To third-party endpoints: egress-checked resolution.
    public_http: reqwest::Client,
}

/// One notice on its way.
struct Job {
    tenant: Tenant,
    slug: String,
    issuer: String,
    signer: Option<Arc<Signer256>>,
    due: Due,
}

fn describe(e: &reqwest::Error) -> String {
    // A refusal of the guarded resolver arrives as the error's source.
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(r) = s.downcast_ref::<Refusal>() {
            return format!("address refused: {}", r.reason());
        }
        source = s.source();
    }
    if e.is_timeout() {
        "timeout".into()
    } else if e.is_connect() {
        "connection failed".into()
    } else {
        "request failed".into()
    }
}

impl Delivery {
    async fn attempt(&self, job: &Job, now: UnixTime) -> Option<String> {
        let Some(token) = job
            .signer
            .as_ref()
            .and_then(|s| logout_token(s, &job.issuer, &job.due.claims, now))
        else {
            return Some("cannot build logout token".into());
        };
        let http = if job.due.first_party {
            &self.node_http
        } else {
            // Checked now, not only at registration; the resolver checks again at connect.
            if let Err(r) = self.state.egress.check_uri(&job.due.uri).await {
                return Some(format!("address refused: {}", r.reason()));
            }
            &self.public_http
        };
        match http
            .post(&job.due.uri)
            .form(&[("logout_token", token)])
            .send()
            .await
        {
            Ok(r) if r.status().is_success() => None,
            Ok(r) => Some(format!("HTTP {}", r.status().as_u16())),
            Err(e) => Some(describe(&e)),
        }
    }

    /// Whether the notice is still as it was read (a pass that read it just before an
    /// earlier attempt was recorded must not send it again).
    async fn still_due(&self, job: &Job) -> bool {
        let (t, d) = (job.tenant.clone(), job.due.clone());
        let found = web::block(move || -> Result<_, crate::error::IdpError> {
            Ok(backchannel_queue::table
                .find(d.id)
                .filter(backchannel_queue::delivered_at.is_null())
                .filter(backchannel_queue::attempts.eq(d.attempts))
                .count()
                .get_result::<i64>(&mut *t.conn(&IDP_DB)?)?)
        })
        .await;
        matches!(found, Ok(Ok(1)))
    }

    /// Delivers one notice once its permits are free, then records the outcome.
    async fn run(self: Arc<Self>, job: Job) {
        let mut outcome = None;
        if let Some(held) = self.lanes.permits(&job.slug, &job.due).await
            && self.still_due(&job).await
        {
            // The time of the attempt: its backoff counts from when it started.
            let now = self.state.now();
            outcome = Some((self.attempt(&job, now).await, now));
            drop(held);
        }
        if let Some((outcome, now)) = outcome {
            if let Some(e) = &outcome {
                tracing::warn!(practice = %job.slug, attempt = job.due.attempts + 1, error = %e, "back-channel logout not delivered");
            }
            let (t, d) = (job.tenant.clone(), job.due.clone());
            let marked = web::block(move || -> Result<_, crate::error::IdpError> {
                Ok(mark(&mut *t.conn(&IDP_DB)?, &d, outcome.as_deref(), now)?)
            })
            .await;
            if !matches!(marked, Ok(Ok(()))) {
                // Not recorded: the notice stays due and is sent again (at least once).
                tracing::error!(practice = %job.slug, "back-channel logout outcome not recorded");
            }
        }
        self.lanes.release(&job.slug, &job.due);
        // The practice may have notices that waited for room in its backlog.
        self.state.oidc.outbox.note(&job.slug);
    }
}

/// Starts delivery of what is due for one practice (without waiting for it). Returns
/// whether notices remain pending.
async fn dispatch_practice(
    tenant: Tenant,
    store: &Arc<TenantStore>,
    delivery: &Arc<Delivery>,
    web: &WebContext,
    tasks: &mut JoinSet<()>,
) -> Result<bool, crate::error::IdpError> {
    let slug = tenant.slug().as_str().to_owned();
    let state = &delivery.state;
    let now = state.now();
    let t = tenant.clone();
    let rows = web::block(move || -> Result<_, crate::error::IdpError> {
        Ok(due(&mut *t.conn(&IDP_DB)?, now, DUE_BATCH)?)
    })
    .await??;
    let claimed = delivery.lanes.claim(&slug, rows);
    if !claimed.is_empty() {
        let (t, st, sl, cache_state) = (tenant.clone(), store.clone(), slug.clone(), state.clone());
        let ids: Vec<String> = claimed.iter().map(|d| d.client_id.clone()).collect();
        // Each logout token is signed with its client's algorithm (as its ID tokens are).
        let signers = web::block(move || -> Result<_, crate::error::IdpError> {
            let mut conn = t.conn(&IDP_DB)?;
            let mut by_client = HashMap::new();
            for id in ids {
                if by_client.contains_key(&id) {
                    continue;
                }
                let alg = super::clients::by_id(&mut conn, &id)?
                    .map_or(jwt::Alg::Rs256, |c| c.signing_alg());
                let signer = super::keys::active_of(
                    &mut conn,
                    st.node_key(),
                    &sl,
                    &cache_state.oidc.keys,
                    alg,
                    now,
                )?;
                by_client.insert(id, signer);
            }
            Ok(by_client)
        })
        .await;
        let signers = match signers {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                claimed
                    .iter()
                    .for_each(|d| delivery.lanes.release(&slug, d));
                return Err(e);
            }
            Err(e) => {
                claimed
                    .iter()
                    .for_each(|d| delivery.lanes.release(&slug, d));
                return Err(e.into());
            }
        };
        let issuer = super::issuer_of(web, &slug);
        for d in claimed {
            let job = Job {
                tenant: tenant.clone(),
                slug: slug.clone(),
                issuer: issuer.clone(),
                signer: signers.get(&d.client_id).cloned(),
                due: d,
            };
            tasks.spawn(delivery.clone().run(job));
        }
    }
    let t = tenant.clone();
    web::block(move || -> Result<_, crate::error::IdpError> {
        Ok(pending(&mut *t.conn(&IDP_DB)?)?)
    })
    .await?
}

/// The node's delivery worker: wakes on [`Outbox::note`], every [`TICK`] and when a
/// delivery ends, sweeps the open practices every [`SWEEP`], and starts each due notice as
/// a task of its own on its lane. Runs until aborted (which aborts the deliveries in
/// flight; their notices stay queued). `node` is the main listener's address.
pub fn spawn_worker(
    store: Arc<TenantStore>,
    web: web::Data<WebContext>,
    state: web::Data<IdpState>,
    node: IpAddr,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let clients = kollegium_tenants::http::node_client(&web.settings.base_domain, node)
            .and_then(|n| Ok((n, super::egress::guarded_client(state.egress.clone())?)));
        let (node_http, public_http) = match clients {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "back-channel logout worker cannot start");
                return;
            }
        };
        let delivery = Arc::new(Delivery {
            lanes: Lanes::new(),
            state: state.clone(),
            node_http,
            public_http,
        });
        let mut tasks = JoinSet::new();
        let mut last_sweep = Instant::now();
        loop {
            tokio::select! {
                () = state.oidc.outbox.wake.notified() => {}
                () = tokio::time::sleep(TICK) => {}
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            }
            let mut slugs: Vec<Option<Tenant>> = Vec::new();
            for s in state.oidc.outbox.take() {
                let Ok(slug) = Slug::parse(&s) else { continue };
                let st = store.clone();
                slugs.push(
                    web::block(move || st.tenant(&slug))
                        .await
                        .ok()
                        .and_then(Result::ok)
                        .flatten(),
                );
            }
            if last_sweep.elapsed() >= SWEEP {
                last_sweep = Instant::now();
                delivery.lanes.tidy();
                // Practices whose IdP database is open; a logout queued in a closed one
                // was remembered when it was queued.
                slugs.extend(
                    store
                        .open_tenants()
                        .into_iter()
                        .filter(|t| t.is_open(&IDP_DB))
                        .map(Some),
                );
            }
            let mut seen = HashSet::new();
            for tenant in slugs.into_iter().flatten() {
                let slug = tenant.slug().as_str().to_owned();
                if !seen.insert(slug.clone()) {
                    continue;
                }
                match dispatch_practice(tenant, &store, &delivery, &web, &mut tasks).await {
                    Ok(true) => state.oidc.outbox.remember(&slug),
                    Ok(false) => {}
                    Err(e) => {
                        tracing::error!(practice = %slug, error = %e, "back-channel logout delivery failed");
                        state.oidc.outbox.remember(&slug);
                    }
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn notice(id: i64, uri: &str, first_party: bool) -> Due {
        Due {
            id,
            client_id: "c".into(),
            uri: uri.into(),
            attempts: 0,
            claims: "{}".into(),
            first_party,
        }
    }

    #[test]
    fn a_slow_endpoint_holds_only_its_own_permits() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let lanes = Lanes::new();
            let slow = "https://langsam.example:443/bc";
            // Practice A: its endpoint's bound is taken by notices that hang.
            let mut held = Vec::new();
            for id in 0..PER_ENDPOINT as i64 {
                held.push(
                    lanes
                        .permits("praxis-a", &notice(id, slow, false))
                        .await
                        .unwrap(),
                );
            }
            let wait = Duration::from_millis(100);
            let third = notice(9, slow, false);
            let next_slow = lanes.permits("praxis-a", &third);
            assert!(
                tokio::time::timeout(wait, next_slow).await.is_err(),
                "a third notice to the same endpoint waits"
            );
            // Notices waiting for the slow endpoint hold nothing.
            let queued: Vec<Due> = (20..30).map(|id| notice(id, slow, false)).collect();
            let mut waiting =
                futures_util::future::join_all(queued.iter().map(|d| lanes.permits("praxis-a", d)));
            assert!(
                tokio::time::timeout(wait, &mut waiting).await.is_err(),
                "queued behind the slow endpoint"
            );
            // Another endpoint of A, another practice (even at the same host), a first-party
            // notice: no waiting.
            for (slug, d) in [
                ("praxis-a", notice(10, "https://schnell.example/bc", false)),
                ("praxis-b", notice(11, slow, false)),
                (
                    "praxis-a",
                    notice(12, "http://praxis-a.localhost/auth/bc", true),
                ),
            ] {
                assert!(
                    tokio::time::timeout(wait, lanes.permits(slug, &d))
                        .await
                        .is_ok(),
                    "{slug} {} waited",
                    d.uri
                );
            }
            drop(waiting);
            drop(held);
            assert!(
                tokio::time::timeout(wait, lanes.permits("praxis-a", &third))
                    .await
                    .is_ok()
            );
        });
    }

    #[test]
    fn first_party_notices_are_always_claimed_third_party_ones_up_to_the_backlog() {
        let lanes = Lanes::new();
        let many: Vec<Due> = (0..PRACTICE_BACKLOG as i64 + 5)
            .map(|id| notice(id, "https://tool.example/bc", false))
            .collect();
        assert_eq!(
            lanes.claim("praxis-a", many.clone()).len(),
            PRACTICE_BACKLOG
        );
        // Already in flight: not claimed twice; the backlog is full for A but not for B.
        let mut again = many.clone();
        again.push(notice(1000, "http://praxis-a.localhost/auth/bc", true));
        let claimed = lanes.claim("praxis-a", again);
        assert_eq!(claimed.len(), 1);
        assert!(claimed[0].first_party);
        assert_eq!(lanes.claim("praxis-b", many[..3].to_vec()).len(), 3);
        // A finished notice makes room.
        lanes.release("praxis-a", &many[0]);
        let claimed = lanes.claim("praxis-a", many.clone());
        assert_eq!(claimed.len(), 1);
        assert_eq!(claimed[0].id, 0);
    }

    #[test]
    fn endpoints_are_keyed_by_host_and_port() {
        assert_eq!(endpoint_key("https://Tool.Example/a"), "tool.example:443");
        assert_eq!(endpoint_key("http://127.0.0.1:9000/b"), "127.0.0.1:9000");
    }
}
