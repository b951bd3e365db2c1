//! Back-channel logout (OpenID Connect Back-Channel Logout 1.0): when a browser session
//! ends, every client that received tokens within it is told so by a signed logout token.
//!
//! Notices are background jobs of kind [`JOB_KIND`] in the practice's `jobs` table
//! ([`kollegium_tenants::jobs`], same transaction as the logout), the workspace's own ones
//! with a higher priority. The node's job worker hands due notices to [`BackchannelJobs`],
//! which delivers them concurrently: the practices' own workspaces on a lane of their own,
//! third-party endpoints bounded node-wide, per practice and per endpoint, so a slow
//! endpoint delays neither another practice nor a workspace logout. Each delivery records
//! its own outcome. Third-party addresses pass the egress rules ([`super::egress`]) at
//! every attempt.

use diesel::prelude::*;
use kollegium_tenants::UnixTime;

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::web;
use kollegium_tenants::jobs::{self, BoxFuture, Handler, Job, JobType, Outcomes, Policy};
use kollegium_tenants::web::WebContext;
use kollegium_tenants::{DbKind, Tenant, TenantStore};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

use super::egress::Refusal;
use super::jwt::{self, Signer256};
use crate::IDP_DB;
use crate::state::IdpState;

use crate::schema::{clients, session_clients, sessions, users};

/// The kind of a back-channel logout notice's job.
pub const JOB_KIND: &str = "idp.backchannel-logout";

/// What a notice's job carries: where to and the claims of its logout token (the token
/// itself is built and signed at delivery).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Notice {
    pub client_id: String,
    pub uri: String,
    /// `{"sid", "sub", "aud"}` as JSON.
    pub claims: String,
}

/// The job type of a notice.
pub struct LogoutNotice;
impl JobType for LogoutNotice {
    const KIND: &'static str = JOB_KIND;
    type Payload = Notice;
}

/// Queues a logout notice for each client that had the session (one job per session and
/// client; the practice's own workspace first).
pub fn session_ended(
    conn: &mut SqliteConnection,
    session_id: i64,
    now: UnixTime,
) -> QueryResult<()> {
    let targets: Vec<(String, Option<String>, bool)> = session_clients::table
        .inner_join(clients::table.on(clients::client_id.eq(session_clients::client_id)))
        .filter(session_clients::session_id.eq(session_id))
        .filter(clients::backchannel_logout_uri.is_not_null())
        .select((
            clients::client_id,
            clients::backchannel_logout_uri,
            clients::first_party,
        ))
        .load(conn)?;
    if targets.is_empty() {
        return Ok(());
    }
    let (sid, sub): (String, String) = sessions::table
        .inner_join(users::table.on(users::id.eq(sessions::user_id)))
        .filter(sessions::id.eq(session_id))
        .select((sessions::sid, users::sub))
        .first(conn)?;
    for (client_id, uri, first_party) in targets {
        let Some(uri) = uri else { continue };
        let claims = serde_json::json!({ "sid": sid, "sub": sub, "aud": client_id }).to_string();
        let key = format!("{sid}:{client_id}");
        let notice = Notice {
            client_id,
            uri,
            claims,
        };
        jobs::enqueue_typed::<LogoutNotice>(conn, &key, &notice, i64::from(first_party), now)?;
    }
    Ok(())
}

/// How long a page that ended sessions waits for the workspace to have been told.
pub const SETTLE: Duration = Duration::from_millis(1500);

/// After a commit that ended sessions: wakes the job worker for the notices and waits (at
/// most [`SETTLE`]) until the practice's own workspace has been told, so that when the
/// page says "beendet", the other browser's workspace session and live connections are
/// over too (a post from it is refused). Third-party tools are told in the background as
/// ever; a workspace that cannot be reached only makes the page wait the bound.
pub async fn settle(web: &WebContext, tenant: &Tenant, now: UnixTime) {
    use kollegium_tenants::jobs::schema::jobs as j;
    web.jobs
        .poke_kind(tenant.slug().as_str(), &IDP_DB, JOB_KIND);
    let deadline = tokio::time::Instant::now() + SETTLE;
    loop {
        let t = tenant.clone();
        let pending =
            kollegium_tenants::web::block(move || -> Result<i64, crate::error::IdpError> {
                Ok(j::table
                    .filter(j::kind.eq(JOB_KIND))
                    .filter(j::priority.gt(0))
                    .filter(j::failed_at.is_null())
                    .filter(j::run_after.le(now))
                    .count()
                    .get_result::<i64>(&mut *t.conn(&IDP_DB)?)?)
            })
            .await;
        if !matches!(pending, Ok(Ok(n)) if n > 0) || tokio::time::Instant::now() >= deadline {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

// ---- queue ---------------------------------------------------------------------------

/// Attempts per notice before it is given up (kept in the table with its last error).
pub const MAX_ATTEMPTS: i64 = 8;

/// Seconds to wait before attempt `attempts + 1`.
pub fn backoff(attempts: i64) -> i64 {
    (10_i64 << attempts.clamp(0, 12)).min(3600)
}

/// How the job worker runs notices.
fn policy() -> Policy {
    Policy {
        batch: DUE_BATCH,
        retry_initial_secs: 10,
        retry_max_secs: 3600,
        max_attempts: MAX_ATTEMPTS,
        gather: Duration::ZERO,
        // Dispatching is quick; the deliveries have their own lanes.
        concurrency: 2,
    }
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
    /// Its job as read.
    job: Option<Job>,
}

impl Due {
    /// The notice of a job (`None`: a payload this version cannot read).
    fn of(job: Job) -> Option<Self> {
        let n: Notice = job.payload().ok()?;
        Some(Self {
            id: job.id,
            client_id: n.client_id,
            uri: n.uri,
            attempts: job.attempts,
            claims: n.claims,
            first_party: job.priority > 0,
            job: Some(job),
        })
    }
}

/// Records the outcome of one attempt. `error` is a short reason, never the token. A
/// notice leaves the queue only when delivered or after its last attempt (at least once);
/// only the attempt that read the job as it is records over it.
pub fn mark(
    conn: &mut SqliteConnection,
    d: &Due,
    error: Option<&str>,
    now: UnixTime,
) -> QueryResult<()> {
    let Some(job) = &d.job else { return Ok(()) };
    match error {
        None => jobs::queue::complete(conn, job).map(|_| ()),
        Some(e) => jobs::queue::fail(
            conn,
            job,
            &policy(),
            e,
            Some(backoff(d.attempts)),
            false,
            now,
        )
        .map(|_| ()),
    }
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
    web: web::Data<WebContext>,
    store: Arc<TenantStore>,
    /// To this node (first-party notices): `*.<base>` resolved to the main listener.
    node_http: reqwest::Client,
    /// To third-party endpoints: egress-checked resolution.
    public_http: reqwest::Client,
}

/// One notice on its way.
struct Delivering {
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
    async fn attempt(&self, job: &Delivering, now: UnixTime) -> Option<String> {
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
    async fn still_due(&self, job: &Delivering) -> bool {
        use kollegium_tenants::jobs::schema::jobs as j;
        let (t, d) = (job.tenant.clone(), job.due.clone());
        let found = kollegium_tenants::web::block(move || -> Result<_, crate::error::IdpError> {
            Ok(j::table
                .find(d.id)
                .filter(j::failed_at.is_null())
                .filter(j::attempts.eq(d.attempts))
                .count()
                .get_result::<i64>(&mut *t.conn(&IDP_DB)?)?)
        })
        .await;
        matches!(found, Ok(Ok(1)))
    }

    /// Delivers one notice once its permits are free, then records the outcome.
    async fn run(self: Arc<Self>, job: Delivering) {
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
            let marked =
                kollegium_tenants::web::block(move || -> Result<_, crate::error::IdpError> {
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
        self.web.jobs.poke_kind(&job.slug, &IDP_DB, JOB_KIND);
    }

    /// Starts delivery of the claimed notices of one practice (without waiting for them).
    async fn dispatch(
        self: &Arc<Self>,
        tenant: Tenant,
        rows: Vec<Due>,
        tasks: &Mutex<JoinSet<()>>,
    ) -> Result<(), crate::error::IdpError> {
        let slug = tenant.slug().as_str().to_owned();
        let state = &self.state;
        let now = state.now();
        let claimed = self.lanes.claim(&slug, rows);
        if claimed.is_empty() {
            return Ok(());
        }
        let (t, st, sl, cache_state) = (
            tenant.clone(),
            self.store.clone(),
            slug.clone(),
            state.clone(),
        );
        let ids: Vec<String> = claimed.iter().map(|d| d.client_id.clone()).collect();
        // Each logout token is signed with its client's algorithm (as its ID tokens are).
        let signers =
            kollegium_tenants::web::block(move || -> Result<_, crate::error::IdpError> {
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
                claimed.iter().for_each(|d| self.lanes.release(&slug, d));
                return Err(e);
            }
            Err(e) => {
                claimed.iter().for_each(|d| self.lanes.release(&slug, d));
                return Err(e.into());
            }
        };
        let issuer = super::issuer_of(&self.web, &slug);
        let Ok(mut tasks) = tasks.lock() else {
            claimed.iter().for_each(|d| self.lanes.release(&slug, d));
            return Ok(());
        };
        while tasks.try_join_next().is_some() {}
        for d in claimed {
            let job = Delivering {
                tenant: tenant.clone(),
                slug: slug.clone(),
                issuer: issuer.clone(),
                signer: signers.get(&d.client_id).cloned(),
                due: d,
            };
            tasks.spawn(self.clone().run(job));
        }
        Ok(())
    }
}

/// Rows read per practice and pass.
const DUE_BATCH: i64 = 100;

/// The back-channel logout kind of job, registered for `idp.sqlite` by the composition.
/// Its batches return at once: each notice is delivered by a task of its own, which
/// records its outcome (the job worker leaves the jobs as they are).
pub struct BackchannelJobs {
    delivery: Arc<Delivery>,
    tasks: Arc<Mutex<JoinSet<()>>>,
}

impl BackchannelJobs {
    /// `node` is the main listener's address.
    pub fn new(
        store: Arc<TenantStore>,
        web: web::Data<WebContext>,
        state: web::Data<IdpState>,
        node: IpAddr,
    ) -> reqwest::Result<Arc<Self>> {
        let node_http = kollegium_tenants::http::node_client(&web.settings.base_domain, node)?;
        let public_http = super::egress::guarded_client(state.egress.clone())?;
        Ok(Arc::new(Self {
            delivery: Arc::new(Delivery {
                lanes: Lanes::new(),
                state,
                web,
                store,
                node_http,
                public_http,
            }),
            tasks: Arc::new(Mutex::new(JoinSet::new())),
        }))
    }
}

impl Handler for BackchannelJobs {
    fn kind(&self) -> &'static str {
        JOB_KIND
    }

    fn policy(&self) -> Policy {
        policy()
    }

    fn run(&self, tenant: Tenant, _db: &'static DbKind, batch: Vec<Job>) -> BoxFuture<Outcomes> {
        let delivery = self.delivery.clone();
        let mut unreadable = Vec::new();
        let mut rows = Vec::new();
        for job in batch {
            let id = job.id;
            match Due::of(job) {
                Some(d) => rows.push(d),
                None => unreadable.push((id, jobs::Outcome::GiveUp("unreadable notice".into()))),
            }
        }
        // First-party notices first (the batch is ordered by priority already).
        rows.sort_by_key(|d| !d.first_party);
        let tasks = self.tasks.clone();
        Box::pin(async move {
            let slug = tenant.slug().to_string();
            if let Err(e) = delivery.dispatch(tenant, rows, &tasks).await {
                tracing::error!(practice = %slug, error = %e, "back-channel logout delivery failed");
            }
            unreadable
        })
    }

    fn sweep(&self) {
        self.delivery.lanes.tidy();
    }

    fn stop(&self) {
        // Deliveries in flight end with the node; their notices stay queued.
        if let Ok(mut t) = self.tasks.lock() {
            t.abort_all();
        }
    }
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
            job: None,
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
