//! `/auth/*`: sign in at the practice IdP, the callback, logout, back-channel logout.

use std::net::IpAddr;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use diesel::prelude::*;
use kollegium_tenants::Tenant;
use kollegium_tenants::web::{ErrorPage, Layout, WebContext};
use sha2::{Digest, Sha256};

use super::SignIn;
use super::binding;
use super::rp::{self, RpError};
use super::session::{self, Member};
use crate::PLATFORM_DB;
use crate::error::{Internal, log_5xx};
use crate::members;
use crate::schema::login_states;

/// Paths of this module that are POSTed without cookies (the IdP calls them).
pub const CSRF_EXEMPT: &[&str] = &["/auth/backchannel-logout"];

fn state_hash(state: &str) -> String {
    hex::encode(Sha256::digest(state.as_bytes()))
}

fn see_other(to: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, to.to_owned()))
        .finish()
}

/// Longest place to return to after sign-in: a page's path and query.
pub const MAX_NEXT: usize = 2048;

/// Only local paths are followed after sign-in (the IdP's rules, see
/// [`kollegium_tenants::web::next`]), and never back into `/auth/`.
fn safe_next(next: Option<&str>) -> String {
    let next = kollegium_tenants::web::safe_next(next, MAX_NEXT, "/");
    if next.starts_with("/auth/") {
        "/".into()
    } else {
        next
    }
}

/// A callback without a pending sign-in of this browser: unknown, expired or already used
/// `state`, or one another browser started.
fn stale_callback() -> HttpResponse {
    let mut page = ErrorPage::new(400);
    page.message = "Diese Anmeldung ist ungültig, abgelaufen oder wurde bereits abgeschlossen. \
        Eine Anmeldung lässt sich nur in dem Browser abschließen, in dem sie begonnen wurde. \
        Bitte melden Sie sich erneut an."
        .into();
    page.response()
}

fn failed(e: &RpError) -> HttpResponse {
    match e {
        RpError::Refused(why) => {
            tracing::warn!(reason = %why, "sign-in refused");
            ErrorPage::new(401).response()
        }
        other => {
            log_5xx("sign-in failed", other);
            ErrorPage::new(503).response()
        }
    }
}

/// A failure inside a sign-in route (the practice's database, the blocking pool): a 5xx
/// with the cause chain logged, never an answer that looks like "not found" or success.
fn internal_error(what: &str, e: &Internal) -> HttpResponse {
    log_5xx(what, e);
    ErrorPage::new(500).response()
}

/// The result of blocking work, with a failed blocking pool as one more internal error.
fn joined<T>(
    r: Result<Result<T, Internal>, actix_web::error::BlockingError>,
) -> Result<T, Internal> {
    r.map_err(|e| Internal::new("blocking pool", e))?
}

/// This practice's `platform.sqlite`.
fn platform_conn(t: &Tenant) -> Result<kollegium_tenants::db::PooledConn, Internal> {
    t.conn(&PLATFORM_DB)
        .map_err(|e| Internal::new("opening platform.sqlite", e))
}

#[derive(Debug, serde::Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
}

/// Pending sign-ins one client address may have at once: anyone may start a sign-in, so a
/// new one beyond this pushes out that address's oldest instead of adding rows without end.
pub const MAX_PENDING_PER_ADDRESS: i64 = 50;

/// What a pending sign-in is counted against: the client's IPv4 address, or the /64
/// network of an IPv6 one (what one host usually has to itself). The client address is the
/// one the plumbing decided (proxy headers only from `trusted_proxies`).
fn address_key(req: &HttpRequest) -> String {
    match kollegium_tenants::web::ClientAddr::of(req).map(|a| a.0) {
        Some(IpAddr::V4(ip)) => ip.to_string(),
        Some(IpAddr::V6(ip)) => match ip.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = ip.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
        None => String::new(),
    }
}

/// A pending sign-in to remember until its callback.
struct NewPending {
    state_hash: String,
    nonce: String,
    sealed_verifier: String,
    next: String,
    browser_hash: String,
    client_key: String,
}

/// Stores a pending sign-in: expired ones go, and the address keeps at most `max` (its
/// oldest beyond that go), all in one transaction.
fn store_pending(
    conn: &mut SqliteConnection,
    p: NewPending,
    now: kollegium_tenants::UnixTime,
    ttl: i64,
    max: i64,
) -> QueryResult<()> {
    use diesel::sql_types::{BigInt, Text};
    conn.immediate_transaction(|conn| {
        diesel::delete(login_states::table.filter(login_states::created_at.lt(now - ttl)))
            .execute(conn)?;
        diesel::sql_query(
            "DELETE FROM login_states WHERE client_key = ?1 AND rowid NOT IN \
             (SELECT rowid FROM login_states WHERE client_key = ?1 \
              ORDER BY created_at DESC, rowid DESC LIMIT ?2)",
        )
        .bind::<Text, _>(&p.client_key)
        .bind::<BigInt, _>((max - 1).max(0))
        .execute(conn)?;
        diesel::insert_into(login_states::table)
            .values((
                login_states::state_hash.eq(p.state_hash),
                login_states::nonce.eq(p.nonce),
                login_states::pkce_verifier.eq(p.sealed_verifier),
                login_states::next.eq(p.next),
                login_states::created_at.eq(now),
                login_states::browser_hash.eq(p.browser_hash),
                login_states::client_key.eq(p.client_key),
            ))
            .execute(conn)
            .map(|_| ())
    })
}

async fn login(
    req: HttpRequest,
    tenant: Tenant,
    state: web::Data<SignIn>,
    ctx: web::Data<WebContext>,
    q: web::Query<LoginQuery>,
) -> HttpResponse {
    let next = safe_next(q.next.as_deref());
    let origin = ctx.settings.practice_origin(tenant.slug().as_str());
    let t = tenant.clone();
    let reg = match kollegium_tenants::web::block(move || rp::registration(&t, &origin)).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return failed(&e),
        Err(e) => return internal_error("sign-in failed", &Internal::new("blocking pool", e)),
    };
    let started = match rp::start(&state, &reg, false).await {
        Ok(s) => s,
        Err(e) => return failed(&e),
    };
    let now = state.now();
    let ttl = state.settings.login_state_ttl_secs;
    let sealed = tenant.secret().seal(
        "platform-pkce",
        "platform-pkce",
        started.pkce_verifier.as_bytes(),
    );
    let scheme = ctx.settings.scheme;
    let browser = binding::for_login(&req, scheme);
    let pending = NewPending {
        state_hash: state_hash(&started.state),
        nonce: started.nonce.clone(),
        sealed_verifier: sealed,
        next,
        browser_hash: binding::hash(&browser),
        client_key: address_key(&req),
    };
    let stored = kollegium_tenants::web::block(move || -> Result<(), Internal> {
        let mut conn = platform_conn(&tenant)?;
        store_pending(&mut conn, pending, now, ttl, MAX_PENDING_PER_ADDRESS)
            .map_err(|e| Internal::new("storing a pending sign-in", e))
    })
    .await;
    match joined(stored) {
        Ok(()) => {
            let mut res = see_other(&started.url);
            let _ = res.add_cookie(&binding::cookie(scheme, &browser, ttl));
            res
        }
        Err(e) => internal_error("sign-in could not start", &e),
    }
}

#[derive(Debug, serde::Deserialize)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

/// What the callback finds for its `state` and the browser's binding.
enum Pending {
    /// No such pending sign-in (unknown, expired or already used).
    Unknown,
    /// A pending sign-in another browser started: left untouched.
    OtherBrowser,
    /// This browser's pending sign-in, now taken out; `more` if the browser has others.
    Found {
        nonce: String,
        sealed_verifier: String,
        next: String,
        more: bool,
    },
}

/// Takes out the pending sign-in of `state_hash` if the browser `browser_hash` started it.
fn take_pending(
    conn: &mut SqliteConnection,
    state_hash: &str,
    browser_hash: &str,
    now: kollegium_tenants::UnixTime,
    ttl: i64,
) -> QueryResult<Pending> {
    conn.immediate_transaction(|conn| {
        let row: Option<(String, String, String, i64, String)> = login_states::table
            .find(state_hash)
            .select((
                login_states::nonce,
                login_states::pkce_verifier,
                login_states::next,
                login_states::created_at,
                login_states::browser_hash,
            ))
            .first(conn)
            .optional()?;
        let Some((nonce, sealed_verifier, next, created_at, bound_to)) = row else {
            return Ok(Pending::Unknown);
        };
        // Hashes of random values: comparing them reveals nothing about either value.
        if bound_to != browser_hash {
            return Ok(Pending::OtherBrowser);
        }
        // Single use: taken out whatever happens next.
        diesel::delete(login_states::table.find(state_hash)).execute(conn)?;
        if now - created_at > ttl {
            return Ok(Pending::Unknown);
        }
        let more = diesel::select(diesel::dsl::exists(
            login_states::table
                .filter(login_states::browser_hash.eq(browser_hash))
                .filter(login_states::created_at.ge(now - ttl)),
        ))
        .get_result(conn)?;
        Ok(Pending::Found {
            nonce,
            sealed_verifier,
            next,
            more,
        })
    })
}

async fn callback(
    req: HttpRequest,
    tenant: Tenant,
    state: web::Data<SignIn>,
    ctx: web::Data<WebContext>,
    q: web::Query<CallbackQuery>,
) -> HttpResponse {
    let q = q.into_inner();
    let Some(st) = q.state.filter(|s| !s.is_empty() && s.len() <= 512) else {
        return stale_callback();
    };
    // Only the browser that started the sign-in completes it (login CSRF). A browser
    // without that binding consumes nothing, so a callback link opened elsewhere leaves
    // the pending sign-in (and the unredeemed code) to the browser it belongs to.
    let scheme = ctx.settings.scheme;
    let Some(browser) = binding::presented(&req, scheme) else {
        tracing::info!("sign-in callback without a browser binding");
        return stale_callback();
    };
    let now = state.now();
    let ttl = state.settings.login_state_ttl_secs;
    let t = tenant.clone();
    let (h, bh) = (state_hash(&st), binding::hash(&browser));
    let pending = kollegium_tenants::web::block(move || -> Result<Pending, Internal> {
        let mut conn = platform_conn(&t)?;
        take_pending(&mut conn, &h, &bh, now, ttl)
            .map_err(|e| Internal::new("taking out a pending sign-in", e))
    })
    .await;
    let (nonce, sealed_verifier, next, more_pending) = match joined(pending) {
        Ok(Pending::Found {
            nonce,
            sealed_verifier,
            next,
            more,
        }) => (nonce, sealed_verifier, next, more),
        Ok(Pending::OtherBrowser) => {
            tracing::warn!("sign-in callback from a browser that did not start the sign-in");
            return stale_callback();
        }
        Ok(Pending::Unknown) => return stale_callback(),
        // Not "unknown sign-in": the pending one may well exist, the database failed.
        Err(e) => return internal_error("sign-in callback failed", &e),
    };
    if let Some(err) = q.error {
        tracing::info!(error = %err.chars().take(64).collect::<String>(), "IdP returned an error to the callback");
        return ErrorPage::new(401).response();
    }
    let Some(code) = q.code.filter(|c| !c.is_empty() && c.len() <= 512) else {
        return ErrorPage::new(400).response();
    };
    let Ok(verifier) = tenant
        .secret()
        .open("platform-pkce", "platform-pkce", &sealed_verifier)
    else {
        return ErrorPage::new(400).response();
    };
    let verifier = String::from_utf8_lossy(&verifier).into_owned();
    let origin = ctx.settings.practice_origin(tenant.slug().as_str());
    let t = tenant.clone();
    let reg = match kollegium_tenants::web::block(move || rp::registration(&t, &origin)).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return failed(&e),
        Err(e) => return internal_error("sign-in failed", &Internal::new("blocking pool", e)),
    };
    let signed = match rp::finish(&state, &reg, code, verifier, nonce).await {
        Ok(s) => s,
        Err(e) => return failed(&e),
    };
    let t = tenant.clone();
    let created = kollegium_tenants::web::block(move || -> Result<String, Internal> {
        let mut conn = platform_conn(&t)?;
        conn.immediate_transaction(|conn| {
            let m = members::upsert(conn, &signed.claims, now)?;
            diesel::update(crate::schema::members::table.find(m.id.0))
                .set(crate::schema::members::last_login_at.eq(now))
                .execute(conn)?;
            session::create(conn, &t, &m, &signed, now)
        })
        .map_err(|e| Internal::new("creating the workspace session", e))
    })
    .await;
    let token = match joined(created) {
        Ok(token) => token,
        Err(e) => return internal_error("sign-in callback failed", &e),
    };
    let mut res = see_other(&next);
    let _ = res.add_cookie(&session::cookie(scheme, &token));
    // Another tab's sign-in still needs the binding; otherwise it has done its job.
    if !more_pending {
        let _ = res.add_cookie(&binding::removal(scheme));
    }
    res
}

async fn logout(
    member: Member,
    state: web::Data<SignIn>,
    ctx: web::Data<WebContext>,
) -> HttpResponse {
    let now = state.now();
    let (t, sid) = (member.tenant.clone(), member.session_id);
    let ended = kollegium_tenants::web::block(move || -> Result<(), Internal> {
        let mut conn = platform_conn(&t)?;
        session::end(&mut conn, sid, "logout", now)
            .map_err(|e| Internal::new("ending the workspace session", e))
    })
    .await;
    if let Err(e) = joined(ended) {
        // The session lives on: saying "signed out" (and dropping the cookie) would leave
        // it usable by whoever holds the cookie. The member can try again.
        log_5xx("workspace logout failed", &e);
        let mut page = ErrorPage::new(503);
        page.message = LOGOUT_FAILED.into();
        return page.response();
    }
    state.sessions_ended(member.tenant.slug().as_str(), &[sid]);
    let origin = ctx.settings.practice_origin(member.tenant.slug().as_str());
    let t = member.tenant.clone();
    let target = match kollegium_tenants::web::block(move || rp::registration(&t, &origin)).await {
        Ok(Ok(reg)) => rp::end_session_url(&state, &reg, &member.id_token).await,
        _ => None,
    };
    let mut res = see_other(target.as_deref().unwrap_or("/auth/logged-out"));
    let _ = res.add_cookie(&session::removal(ctx.settings.scheme));
    res
}

/// What a member sees when their session could not be ended.
const LOGOUT_FAILED: &str = "Die Abmeldung ist gerade nicht möglich; Sie sind noch angemeldet. \
    Bitte versuchen Sie es in einem Moment erneut.";

#[derive(Template)]
#[template(path = "pages/logged_out.html")]
struct LoggedOut {
    layout: Layout,
}

async fn logged_out(tenant: Tenant) -> HttpResponse {
    match (LoggedOut {
        layout: Layout::practice(tenant.display_name()),
    })
    .render()
    {
        Ok(body) => HttpResponse::Ok()
            .content_type("text/html; charset=utf-8")
            .body(body),
        Err(_) => ErrorPage::new(500).response(),
    }
}

#[derive(Debug, serde::Deserialize)]
pub struct LogoutToken {
    logout_token: String,
}

/// OIDC back-channel logout: the IdP tells us a session ended.
async fn backchannel(
    tenant: Tenant,
    state: web::Data<SignIn>,
    ctx: web::Data<WebContext>,
    form: web::Form<LogoutToken>,
) -> HttpResponse {
    let bad = || HttpResponse::BadRequest().json(serde_json::json!({"error": "invalid_request"}));
    if form.logout_token.len() > 16 * 1024 {
        return bad();
    }
    // The IdP retries a delivery that is not answered 2xx: a failure on this side (the
    // practice's database) must not look like success, nor like a bad token.
    let unavailable = |e: &Internal| {
        log_5xx("back-channel logout failed", e);
        HttpResponse::ServiceUnavailable()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .json(serde_json::json!({"error": "temporarily_unavailable"}))
    };
    let origin = ctx.settings.practice_origin(tenant.slug().as_str());
    let t = tenant.clone();
    let reg = match kollegium_tenants::web::block(move || rp::registration(&t, &origin)).await {
        Ok(Ok(reg)) => reg,
        Ok(Err(RpError::NotRegistered)) => return bad(),
        Ok(Err(e)) => return unavailable(&Internal::new("reading the registration", e)),
        Err(e) => return unavailable(&Internal::new("blocking pool", e)),
    };
    let now = state.now();
    let notice = match rp::verify_logout_token(&state, &reg, &form.logout_token, now).await {
        Ok(n) => n,
        Err(RpError::Refused(why)) => {
            tracing::warn!(reason = %why, "back-channel logout refused");
            return bad();
        }
        // The IdP's keys could not be read: not the token's fault, so the IdP retries.
        Err(e) => return unavailable(&Internal::new("verifying a logout token", e)),
    };
    let t = tenant.clone();
    let ended = kollegium_tenants::web::block(move || -> Result<Vec<i64>, Internal> {
        let mut conn = platform_conn(&t)?;
        session::end_for_logout(&mut conn, notice.sid.as_deref(), notice.sub.as_deref(), now)
            .map_err(|e| Internal::new("ending sessions for a back-channel logout", e))
    })
    .await;
    match joined(ended) {
        Ok(ids) => {
            tracing::info!(sessions = ids.len(), "back-channel logout");
            state.sessions_ended(tenant.slug().as_str(), &ids);
            HttpResponse::Ok()
                .insert_header((header::CACHE_CONTROL, "no-store"))
                .finish()
        }
        Err(e) => unavailable(&e),
    }
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/auth/login", web::get().to(login))
        .route("/auth/callback", web::get().to(callback))
        .route("/auth/logout", web::post().to(logout))
        .route("/auth/logged-out", web::get().to(logged_out))
        .route("/auth/backchannel-logout", web::post().to(backchannel));
}
