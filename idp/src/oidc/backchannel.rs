//! Back-channel logout (OpenID Connect Back-Channel Logout 1.0): when a browser session
//! ends, every client that received tokens within it is told so by a signed logout token.

use diesel::prelude::*;
use kollegium_tenants::UnixTime;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::web;
use kollegium_tenants::web::WebContext;
use kollegium_tenants::{Slug, Tenant, TenantStore};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

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

// ---- delivery -----------------------------------------------------------------------

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
}

pub fn due(conn: &mut SqliteConnection, now: UnixTime, limit: i64) -> QueryResult<Vec<Due>> {
    let rows: Vec<(i64, String, String, i64, String)> = backchannel_queue::table
        .filter(backchannel_queue::delivered_at.is_null())
        .filter(backchannel_queue::attempts.lt(MAX_ATTEMPTS))
        .filter(backchannel_queue::next_attempt_at.le(now))
        .order(backchannel_queue::id)
        .limit(limit)
        .select((
            backchannel_queue::id,
            backchannel_queue::client_id,
            backchannel_queue::uri,
            backchannel_queue::attempts,
            backchannel_queue::logout_token,
        ))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|(id, client_id, uri, attempts, claims)| Due {
            id,
            client_id,
            uri,
            attempts,
            claims,
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

/// Records the outcome of one attempt. `error` is a short reason, never the token.
pub fn mark(
    conn: &mut SqliteConnection,
    d: &Due,
    error: Option<&str>,
    now: UnixTime,
) -> QueryResult<()> {
    let q = backchannel_queue::table.find(d.id);
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

/// Resolves the base domain and its subdomains to the loopback address (where this node
/// serves them), everything else through the system resolver.
#[derive(Debug, Clone)]
struct NodeResolver {
    base: String,
}

impl Resolve for NodeResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_ascii_lowercase();
        let local = host == self.base || host.ends_with(&format!(".{}", self.base));
        Box::pin(async move {
            if local {
                let addrs: Addrs = Box::new(std::iter::once(SocketAddr::from(([127, 0, 0, 1], 0))));
                return Ok(addrs);
            }
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let addrs: Addrs = Box::new(found.into_iter());
            Ok(addrs)
        })
    }
}

/// The HTTP client for server-to-server calls: no redirects, short timeouts.
pub fn http_client(base_domain: &str) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .dns_resolver(Arc::new(NodeResolver {
            base: base_domain.to_owned(),
        }))
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(3))
        .timeout(Duration::from_secs(5))
        .build()
}

/// Delivers what is due for one practice. Returns whether notices remain pending.
pub async fn deliver_practice(
    tenant: Tenant,
    store: &Arc<TenantStore>,
    state: &web::Data<IdpState>,
    web: &WebContext,
    http: &reqwest::Client,
) -> Result<bool, crate::error::IdpError> {
    let slug = tenant.slug().as_str().to_owned();
    let issuer = super::issuer_of(web, &slug);
    let now = state.now();
    let t = tenant.clone();
    let due_rows = web::block(move || -> Result<_, crate::error::IdpError> {
        Ok(due(&mut *t.conn(&IDP_DB)?, now, 50)?)
    })
    .await??;
    if !due_rows.is_empty() {
        let (t, st, sl, cache_state) = (tenant.clone(), store.clone(), slug.clone(), state.clone());
        let clients: Vec<String> = due_rows.iter().map(|d| d.client_id.clone()).collect();
        // Each logout token is signed with its client's algorithm (as its ID tokens are).
        let signers = web::block(move || -> Result<_, crate::error::IdpError> {
            let mut conn = t.conn(&IDP_DB)?;
            let mut by_client = HashMap::new();
            for id in clients {
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
        .await??;
        for d in &due_rows {
            let token = signers
                .get(&d.client_id)
                .and_then(|signer| logout_token(signer, &issuer, &d.claims, now));
            let outcome = match token {
                None => Some("cannot build logout token".to_owned()),
                Some(token) => match http
                    .post(&d.uri)
                    .form(&[("logout_token", token)])
                    .send()
                    .await
                {
                    Ok(r) if r.status().is_success() => None,
                    Ok(r) => Some(format!("HTTP {}", r.status().as_u16())),
                    Err(e) if e.is_timeout() => Some("timeout".into()),
                    Err(e) if e.is_connect() => Some("connection failed".into()),
                    Err(_) => Some("request failed".into()),
                },
            };
            if let Some(e) = &outcome {
                tracing::warn!(practice = %slug, attempt = d.attempts + 1, error = %e, "back-channel logout not delivered");
            }
            let (t, d) = (tenant.clone(), d.clone());
            web::block(move || -> Result<_, crate::error::IdpError> {
                Ok(mark(&mut *t.conn(&IDP_DB)?, &d, outcome.as_deref(), now)?)
            })
            .await??;
        }
    }
    let t = tenant.clone();
    web::block(move || -> Result<_, crate::error::IdpError> {
        Ok(pending(&mut *t.conn(&IDP_DB)?)?)
    })
    .await?
}

/// The node's delivery worker: wakes on [`Outbox::note`] and every [`TICK`], sweeps the
/// open practices every [`SWEEP`]. Runs until aborted.
pub fn spawn_worker(
    store: Arc<TenantStore>,
    web: web::Data<WebContext>,
    state: web::Data<IdpState>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let http = match http_client(&web.settings.base_domain) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "back-channel logout worker cannot start");
                return;
            }
        };
        let mut last_sweep = Instant::now();
        loop {
            tokio::select! {
                () = state.oidc.outbox.wake.notified() => {}
                () = tokio::time::sleep(TICK) => {}
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
                match deliver_practice(tenant, &store, &state, &web, &http).await {
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
