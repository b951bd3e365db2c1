//! `/auth/*`: sign in at the practice IdP, the callback, logout, back-channel logout.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use diesel::prelude::*;
use kollegium_tenants::Tenant;
use kollegium_tenants::web::{ErrorPage, Layout, WebContext};

use super::SignIn;
use super::pending::{self, Pending, Presented};
use super::rp::{self, RpError};
use super::session::{self, Member};
use crate::PLATFORM_DB;
use crate::error::{Internal, log_5xx};
use crate::members;

/// Paths of this module that are POSTed without cookies (the IdP calls them).
pub const CSRF_EXEMPT: &[&str] = &["/auth/backchannel-logout"];

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

async fn login(
    req: HttpRequest,
    tenant: Tenant,
    state: web::Data<SignIn>,
    ctx: web::Data<WebContext>,
    q: web::Query<LoginQuery>,
) -> HttpResponse {
    let next = safe_next(q.next.as_deref());
    let origin = ctx.settings.practice_origin(tenant.slug().as_str());
    let reg = match rp::registration_cached(&state, &tenant, &origin).await {
        Ok(r) => r,
        Err(e) => return failed(&e),
    };
    let started = match rp::start(&state, &reg, false).await {
        Ok(s) => s,
        Err(e) => return failed(&e),
    };
    let scheme = ctx.settings.scheme;
    let ttl = state.settings.login_state_ttl_secs;
    let p = Pending {
        state_hash: pending::state_hash(&started.state),
        nonce: started.nonce.clone(),
        pkce_verifier: started.pkce_verifier.clone(),
        next,
        created_at: state.now(),
    };
    let mut res = see_other(&started.url);
    for gone in pending::make_room(&req, scheme, tenant.secret()) {
        let _ = res.add_cookie(&gone);
    }
    let _ = res.add_cookie(&pending::cookie(scheme, tenant.secret(), &p, ttl));
    res
}

#[derive(Debug, serde::Deserialize)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
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
    // Only the browser that started the sign-in completes it (login CSRF): its pending
    // sign-in is in a cookie of that browser. A browser without it consumes nothing, so a
    // callback link opened elsewhere leaves the sign-in to the browser it belongs to.
    let scheme = ctx.settings.scheme;
    let now = state.now();
    let ttl = state.settings.login_state_ttl_secs;
    let h = pending::state_hash(&st);
    let p = match pending::presented(&req, scheme, tenant.secret(), &h, now, ttl) {
        Presented::Found(p) => p,
        Presented::Missing => {
            tracing::info!("sign-in callback without this browser's pending sign-in");
            return stale_callback();
        }
        Presented::Invalid => {
            tracing::warn!("sign-in callback with an invalid or expired pending sign-in");
            let mut res = stale_callback();
            let _ = res.add_cookie(&pending::removal(scheme, &h));
            return res;
        }
    };
    // Single use: the cookie goes with this answer, whatever happens next.
    let used = pending::removal(scheme, &h);
    let answer = |mut res: HttpResponse| {
        let _ = res.add_cookie(&used);
        res
    };
    if let Some(err) = q.error {
        tracing::info!(error = %err.chars().take(64).collect::<String>(), "IdP returned an error to the callback");
        return answer(ErrorPage::new(401).response());
    }
    let Some(code) = q.code.filter(|c| !c.is_empty() && c.len() <= 512) else {
        return answer(ErrorPage::new(400).response());
    };
    let Pending {
        nonce,
        pkce_verifier: verifier,
        next,
        ..
    } = p;
    let origin = ctx.settings.practice_origin(tenant.slug().as_str());
    let reg = match rp::registration_cached(&state, &tenant, &origin).await {
        Ok(r) => r,
        Err(e) => return answer(failed(&e)),
    };
    let signed = match rp::finish(&state, &reg, code, verifier, nonce).await {
        Ok(s) => s,
        Err(e) => return answer(failed(&e)),
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
        Err(e) => return answer(internal_error("sign-in callback failed", &e)),
    };
    let mut res = answer(see_other(&next));
    let _ = res.add_cookie(&session::cookie(scheme, &token));
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
    let target = match rp::registration_cached(&state, &member.tenant, &origin).await {
        Ok(reg) => rp::end_session_url(&state, &reg, &member.id_token).await,
        Err(_) => None,
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
    let reg = match rp::registration_cached(&state, &tenant, &origin).await {
        Ok(reg) => reg,
        Err(RpError::NotRegistered) => return bad(),
        Err(e) => return unavailable(&Internal::new("reading the registration", e)),
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
