//! Platform sessions and the `Member` extractor: a signed-in member of this practice.
//! Access tokens are refreshed at the IdP when they expire, so a user disabled there loses
//! access here within one access-token lifetime. A session refreshes one request at a time
//! (the IdP revokes the grant when a rotated refresh token is used twice); the IdP
//! refusing ends the session, the IdP being unreachable answers 503 and keeps it.

use std::future::Future;
use std::pin::Pin;

use actix_web::cookie::{Cookie, SameSite, time::Duration as CookieDuration};
use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpMessage, HttpRequest, HttpResponse, ResponseError, web};
use diesel::prelude::*;
use kollegium_tenants::secrets::random_token;
use kollegium_tenants::web::{ErrorPage, Scheme, WebContext};
use kollegium_tenants::{Tenant, UnixTime};
use sha2::{Digest, Sha256};

use super::SignIn;
use super::rp::{self, RpError, Signed};
use crate::PLATFORM_DB;
use crate::members::{self, Member as MemberRow};
use crate::schema::sessions;

/// Purpose under which session tokens are sealed.
const TOKEN_PURPOSE: &str = "platform-session-tokens";

/// The name of a platform cookie: `https` (a `__Host-` name, which the browser accepts only
/// Secure, on `/` and without `Domain`, so a sibling practice cannot set it) under https,
/// `http` over plain http.
pub(super) fn host_only_name(
    scheme: Scheme,
    https: &'static str,
    http: &'static str,
) -> &'static str {
    match scheme {
        Scheme::Https => https,
        Scheme::Http => http,
    }
}

/// A platform cookie: host-only (no `Domain`), on `/`, HttpOnly, SameSite=Lax, and Secure
/// under https.
pub(super) fn host_only_cookie(
    name: impl Into<std::borrow::Cow<'static, str>>,
    scheme: Scheme,
    value: String,
) -> Cookie<'static> {
    Cookie::build(name, value)
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(scheme == Scheme::Https)
        .finish()
}

pub fn cookie_name(scheme: Scheme) -> &'static str {
    host_only_name(scheme, "__Host-kollegium-app", "kollegium-app")
}

pub fn cookie(scheme: Scheme, token: &str) -> Cookie<'static> {
    host_only_cookie(cookie_name(scheme), scheme, token.to_owned())
}

pub fn removal(scheme: Scheme) -> Cookie<'static> {
    let mut c = cookie(scheme, "");
    c.set_max_age(CookieDuration::ZERO);
    c
}

pub fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Creates a session for a signed-in member; returns the cookie token.
pub fn create(
    conn: &mut SqliteConnection,
    tenant: &Tenant,
    member: &MemberRow,
    s: &Signed,
    now: UnixTime,
) -> QueryResult<String> {
    let token = random_token(32);
    diesel::insert_into(sessions::table)
        .values((
            sessions::token_hash.eq(hash(&token)),
            sessions::member_id.eq(member.id.0),
            sessions::idp_sid.eq(&s.sid),
            sessions::id_token.eq(&s.id_token),
            sessions::access_token.eq(tenant.secret().seal(
                TOKEN_PURPOSE,
                TOKEN_PURPOSE,
                s.access_token.as_bytes(),
            )),
            sessions::refresh_token.eq(s.refresh_token.as_ref().map(|r| {
                tenant
                    .secret()
                    .seal(TOKEN_PURPOSE, TOKEN_PURPOSE, r.as_bytes())
            })),
            sessions::access_expires_at.eq(now + s.expires_in),
            sessions::created_at.eq(now),
            sessions::last_seen_at.eq(now),
        ))
        .execute(conn)?;
    Ok(token)
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = sessions)]
pub struct SessionRow {
    pub id: i64,
    pub member_id: i64,
    pub idp_sid: Option<String>,
    pub id_token: String,
    pub access_token: String,
    pub refresh_token: Option<String>,
    pub access_expires_at: i64,
    pub created_at: i64,
    pub last_seen_at: i64,
    pub ended_at: Option<i64>,
}

impl SessionRow {
    /// Why the session must end at `now` under `settings` (unused too long, or older than
    /// the IdP session it came from may be), if it must.
    pub fn limit_reached(
        &self,
        settings: &super::SessionSettings,
        now: UnixTime,
    ) -> Option<&'static str> {
        if now - self.last_seen_at > settings.session_idle_secs {
            Some("idle timeout")
        } else if now - self.created_at > settings.session_absolute_secs {
            Some("absolute timeout")
        } else {
            None
        }
    }
}

/// A session that has not ended, by the hash of its token.
pub fn by_token_hash(
    conn: &mut SqliteConnection,
    token_hash: &str,
) -> QueryResult<Option<SessionRow>> {
    sessions::table
        .filter(sessions::token_hash.eq(token_hash))
        .filter(sessions::ended_at.is_null())
        .select(SessionRow::as_select())
        .first(conn)
        .optional()
}

/// A session that has not ended, by id.
pub fn by_id(conn: &mut SqliteConnection, id: i64) -> QueryResult<Option<SessionRow>> {
    sessions::table
        .find(id)
        .filter(sessions::ended_at.is_null())
        .select(SessionRow::as_select())
        .first(conn)
        .optional()
}

pub fn end(conn: &mut SqliteConnection, id: i64, reason: &str, now: UnixTime) -> QueryResult<()> {
    diesel::update(
        sessions::table
            .find(id)
            .filter(sessions::ended_at.is_null()),
    )
    .set((sessions::ended_at.eq(now), sessions::end_reason.eq(reason)))
    .execute(conn)
    .map(|_| ())
}

/// When the session's access token expires, or `None` if the session has ended.
pub fn valid_until(conn: &mut SqliteConnection, id: i64) -> QueryResult<Option<i64>> {
    sessions::table
        .find(id)
        .filter(sessions::ended_at.is_null())
        .select(sessions::access_expires_at)
        .first(conn)
        .optional()
}

/// The IdP access token of a session (to call the IdP on the member's behalf).
pub fn access_token(
    conn: &mut SqliteConnection,
    tenant: &Tenant,
    session_id: i64,
) -> QueryResult<Option<String>> {
    let sealed: Option<String> = sessions::table
        .find(session_id)
        .filter(sessions::ended_at.is_null())
        .select(sessions::access_token)
        .first(conn)
        .optional()?;
    Ok(sealed
        .and_then(|s| tenant.secret().open(TOKEN_PURPOSE, TOKEN_PURPOSE, &s).ok())
        .map(|t| String::from_utf8_lossy(&t).into_owned()))
}

/// Ends sessions named by a back-channel logout (by IdP session id, else by subject);
/// returns their ids.
pub fn end_for_logout(
    conn: &mut SqliteConnection,
    sid: Option<&str>,
    sub: Option<&str>,
    now: UnixTime,
) -> QueryResult<Vec<i64>> {
    use crate::schema::members as m;
    let ids: Vec<i64> = match (sid, sub) {
        (Some(sid), _) => sessions::table
            .filter(sessions::idp_sid.eq(sid))
            .filter(sessions::ended_at.is_null())
            .select(sessions::id)
            .load(conn)?,
        (None, Some(sub)) => sessions::table
            .inner_join(m::table)
            .filter(m::sub.eq(sub))
            .filter(sessions::ended_at.is_null())
            .select(sessions::id)
            .load(conn)?,
        (None, None) => Vec::new(),
    };
    for id in &ids {
        end(conn, *id, "back-channel logout", now)?;
    }
    Ok(ids)
}

/// A signed-in member of this practice.
#[derive(Debug, Clone)]
pub struct Member {
    pub member: MemberRow,
    pub session_id: i64,
    pub id_token: String,
    pub tenant: Tenant,
}

impl Member {
    /// The signed-in member of a live session whose access token is still valid.
    fn of(member: MemberRow, session: SessionRow, tenant: Tenant) -> Self {
        Self {
            member,
            session_id: session.id,
            id_token: session.id_token,
            tenant,
        }
    }

    pub fn id(&self) -> crate::members::MemberId {
        self.member.id
    }
}

/// A signed-in member with the practice admin flag.
#[derive(Debug, Clone)]
pub struct MemberAdmin(pub Member);

/// What a member sees while the practice IdP cannot renew their sign-in.
const UNAVAILABLE: &str = "Der Anmeldedienst der Praxis ist gerade nicht erreichbar. Sie bleiben angemeldet; bitte versuchen Sie es in einem Moment erneut.";
/// Seconds after which a retry is suggested.
const RETRY_AFTER_SECS: &str = "5";

/// Why there is no member: the response that sends the browser to sign in.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("sign-in required")]
    SignIn { next: String, json: bool },
    #[error("forbidden")]
    Forbidden,
    /// The IdP could not be asked (network fault, IdP error): the session is kept.
    #[error("the identity provider is unavailable")]
    Unavailable { json: bool },
    /// Something failed inside (database, blocking pool): 500, the cause chain logged.
    #[error(transparent)]
    Internal(#[from] crate::error::Internal),
}

impl ResponseError for AuthError {
    fn status_code(&self) -> actix_web::http::StatusCode {
        match self {
            Self::SignIn { json: false, .. } => actix_web::http::StatusCode::SEE_OTHER,
            Self::SignIn { json: true, .. } => actix_web::http::StatusCode::UNAUTHORIZED,
            Self::Forbidden => actix_web::http::StatusCode::FORBIDDEN,
            Self::Unavailable { .. } => actix_web::http::StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => actix_web::http::StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
    fn error_response(&self) -> HttpResponse {
        match self {
            Self::SignIn { next, json: false } => {
                let q = serde_urlencoded::to_string([("next", next.as_str())]).unwrap_or_default();
                HttpResponse::SeeOther().insert_header((header::LOCATION, format!("/auth/login?{q}"))).finish()
            }
            Self::SignIn { json: true, .. } => HttpResponse::Unauthorized()
                .json(serde_json::json!({"error": "unauthorized", "message": "Bitte melden Sie sich an."})),
            Self::Forbidden => ErrorPage::new(403).response(),
            Self::Unavailable { json: true } => HttpResponse::ServiceUnavailable()
                .insert_header((header::RETRY_AFTER, RETRY_AFTER_SECS))
                .json(serde_json::json!({"error": "unavailable", "message": UNAVAILABLE})),
            Self::Unavailable { json: false } => {
                let mut page = ErrorPage::new(503);
                page.message = UNAVAILABLE.into();
                let mut res = page.response();
                res.headers_mut().insert(
                    header::RETRY_AFTER,
                    header::HeaderValue::from_static(RETRY_AFTER_SECS),
                );
                res
            }
            Self::Internal(_) => {
                crate::error::log_5xx("platform sign-in failed", self);
                ErrorPage::new(500).response()
            }
        }
    }
}

fn internal<E: Into<crate::error::BoxError>>(e: E) -> AuthError {
    AuthError::Internal(crate::error::Internal::new("reading the session", e))
}

/// What the database holds for a session token.
enum Stored {
    Live(Box<(SessionRow, MemberRow)>),
    /// Past the idle or absolute limit: ended now.
    Over(i64),
    None,
}

async fn load(req: HttpRequest) -> Result<Member, AuthError> {
    let next = if req.method() == actix_web::http::Method::GET {
        req.uri()
            .path_and_query()
            .map_or_else(|| "/".into(), |p| p.as_str().to_owned())
    } else {
        "/".into()
    };
    let json = kollegium_tenants::web::errors::wants_json(req.headers())
        || req.path().starts_with("/api/");
    let sign_in = || AuthError::SignIn {
        next: next.clone(),
        json,
    };
    let tenant = req
        .extensions()
        .get::<Tenant>()
        .cloned()
        .ok_or_else(sign_in)?;
    let state = req
        .app_data::<web::Data<SignIn>>()
        .cloned()
        .ok_or_else(|| internal("SignIn missing"))?;
    let ctx = req
        .app_data::<web::Data<WebContext>>()
        .cloned()
        .ok_or_else(|| internal("WebContext missing"))?;
    let token = req
        .cookie(cookie_name(ctx.settings.scheme))
        .map(|c| c.value().to_owned())
        .ok_or_else(sign_in)?;
    let now = state.now();
    let settings = state.settings;
    let slug = tenant.slug().as_str().to_owned();
    if token.is_empty() || token.len() > 100 {
        return Err(sign_in());
    }
    let token_hash = hash(&token);
    let cached = state
        .sessions
        .get(&slug, &token_hash, now)
        .filter(|(s, _)| s.limit_reached(&settings, now).is_none());
    let (session, member) = match cached {
        Some(found) => found,
        None => {
            let read_at = state.sessions.epoch();
            let (t, h) = (tenant.clone(), token_hash.clone());
            let found = kollegium_tenants::web::block(move || -> Result<Stored, AuthError> {
                let mut conn = t.conn(&PLATFORM_DB).map_err(internal)?;
                let Some(mut s) = by_token_hash(&mut conn, &h).map_err(internal)? else {
                    return Ok(Stored::None);
                };
                if let Some(reason) = s.limit_reached(&settings, now) {
                    end(&mut conn, s.id, reason, now).map_err(internal)?;
                    return Ok(Stored::Over(s.id));
                }
                if now - s.last_seen_at >= 30 {
                    diesel::update(sessions::table.find(s.id))
                        .set(sessions::last_seen_at.eq(now))
                        .execute(&mut *conn)
                        .map_err(internal)?;
                    s.last_seen_at = now;
                }
                let m = members::by_id(&mut conn, crate::members::MemberId(s.member_id))
                    .map_err(internal)?;
                Ok(m.map_or(Stored::None, |m| Stored::Live(Box::new((s, m)))))
            })
            .await
            .map_err(internal)??;
            match found {
                Stored::Live(found) => {
                    let (session, member) = *found;
                    state
                        .sessions
                        .put(&slug, &token_hash, &session, &member, now, read_at);
                    (session, member)
                }
                Stored::Over(id) => {
                    state.sessions_ended(&slug, &[id]);
                    return Err(sign_in());
                }
                Stored::None => return Err(sign_in()),
            }
        }
    };
    if session.access_expires_at > now {
        return Ok(Member::of(member, session, tenant));
    }
    // The access token expired: refresh at the IdP (which refuses disabled or locked
    // users), one request of this session at a time.
    let _refreshing = state
        .refresh_lock(tenant.slug().as_str(), session.id)
        .lock()
        .await;
    // While this request waited, another one of the session may have refreshed (or the
    // session may have ended): look again.
    let (t, sid) = (tenant.clone(), session.id);
    let read_at = state.sessions.epoch();
    let current = kollegium_tenants::web::block(
        move || -> Result<Option<(SessionRow, MemberRow)>, AuthError> {
            let mut conn = t.conn(&PLATFORM_DB).map_err(internal)?;
            let Some(s) = by_id(&mut conn, sid).map_err(internal)? else {
                return Ok(None);
            };
            let m = members::by_id(&mut conn, crate::members::MemberId(s.member_id))
                .map_err(internal)?;
            Ok(m.map(|m| (s, m)))
        },
    )
    .await
    .map_err(internal)??;
    let Some((session, member)) = current else {
        state.sessions.forget(&slug, &[sid]);
        return Err(sign_in());
    };
    if session.access_expires_at > now {
        // Refreshed by another request meanwhile: remember the fresh rows.
        state
            .sessions
            .put(&slug, &token_hash, &session, &member, now, read_at);
        return Ok(Member::of(member, session, tenant));
    }
    let refresh = session
        .refresh_token
        .as_deref()
        .and_then(|r| tenant.secret().open(TOKEN_PURPOSE, TOKEN_PURPOSE, r).ok())
        .map(|r| String::from_utf8_lossy(&r).into_owned());
    let Some(refresh) = refresh else {
        end_blocking(&state, &tenant, sid, "no refresh token", now).await?;
        return Err(sign_in());
    };
    let origin = ctx.settings.practice_origin(tenant.slug().as_str());
    let t = tenant.clone();
    let outcome = match kollegium_tenants::web::block(move || rp::registration(&t, &origin))
        .await
        .map_err(internal)?
    {
        Ok(reg) => rp::refresh(&state, &reg, refresh).await,
        Err(e) => Err(e),
    };
    let refreshed = match outcome {
        Ok(r) => r,
        Err(RpError::Refused(why)) => {
            // The IdP said no (user disabled or locked, grant revoked): sign in again.
            tracing::info!(reason = %why, "token refresh refused; the session ends");
            end_blocking(&state, &tenant, sid, "refresh refused", now).await?;
            return Err(sign_in());
        }
        Err(e) => {
            // The IdP could not answer: keep the session (its refresh token is unspent).
            tracing::warn!(error = %e, "token refresh failed; the session is kept");
            return Err(AuthError::Unavailable { json });
        }
    };
    // The refresh token was rotated: whatever happens with the claims, keep the new tokens.
    let rp::Refreshed {
        id_token: new_id_token,
        access_token,
        refresh_token,
        expires_in,
        claims,
    } = refreshed;
    let id_token = new_id_token
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| session.id_token.clone());
    let refresh_sealed = match refresh_token {
        Some(r) => Some(
            tenant
                .secret()
                .seal(TOKEN_PURPOSE, TOKEN_PURPOSE, r.as_bytes()),
        ),
        // Not rotated: the old one stays valid.
        None => session.refresh_token.clone(),
    };
    let access_sealed = tenant
        .secret()
        .seal(TOKEN_PURPOSE, TOKEN_PURPOSE, access_token.as_bytes());
    let (claims, expires_at) = match claims {
        Ok(c) => (Some(c), now + expires_in),
        Err(RpError::Refused(why)) => {
            tracing::info!(reason = %why, "userinfo refused a fresh token; the session ends");
            end_blocking(&state, &tenant, sid, "userinfo refused", now).await?;
            return Err(sign_in());
        }
        // Roles and profile could not be read: keep the new tokens, but marked expired, so
        // that the next request refreshes again and reads them; until then, no access
        // with possibly outdated roles.
        Err(e) => {
            tracing::warn!(error = %e, "userinfo failed after a token refresh");
            (None, now)
        }
    };
    let t = tenant.clone();
    let sub = member.sub.clone();
    let stored_id_token = id_token.clone();
    let member = kollegium_tenants::web::block(move || -> Result<Option<MemberRow>, AuthError> {
        let mut conn = t.conn(&PLATFORM_DB).map_err(internal)?;
        conn.immediate_transaction(|conn| {
            diesel::update(sessions::table.find(sid))
                .set((
                    sessions::access_token.eq(access_sealed),
                    sessions::refresh_token.eq(refresh_sealed),
                    sessions::access_expires_at.eq(expires_at),
                    sessions::id_token.eq(&stored_id_token),
                ))
                .execute(conn)?;
            match claims {
                Some(mut c) => {
                    c.sub = sub;
                    members::upsert(conn, &c, now).map(Some)
                }
                None => Ok(None),
            }
        })
        .map_err(internal)
    })
    .await
    .map_err(internal)??;
    // The copy holds the old tokens (and maybe the old profile): read again next time.
    state.sessions.forget(&slug, &[sid]);
    let Some(member) = member else {
        return Err(AuthError::Unavailable { json });
    };
    Ok(Member {
        member,
        session_id: sid,
        id_token,
        tenant,
    })
}

/// Ends a session from async code.
async fn end_blocking(
    state: &SignIn,
    tenant: &Tenant,
    id: i64,
    reason: &'static str,
    now: UnixTime,
) -> Result<(), AuthError> {
    let t = tenant.clone();
    kollegium_tenants::web::block(move || -> Result<(), AuthError> {
        let mut conn = t.conn(&PLATFORM_DB).map_err(internal)?;
        end(&mut conn, id, reason, now).map_err(internal)
    })
    .await
    .map_err(internal)??;
    state.sessions_ended(tenant.slug().as_str(), &[id]);
    Ok(())
}

type Fut<T> = Pin<Box<dyn Future<Output = Result<T, AuthError>>>>;

impl FromRequest for Member {
    type Error = AuthError;
    type Future = Fut<Self>;
    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            if let Some(m) = req.extensions().get::<Member>() {
                return Ok(m.clone());
            }
            let m = load(req.clone()).await?;
            req.extensions_mut().insert(m.clone());
            Ok(m)
        })
    }
}

impl FromRequest for MemberAdmin {
    type Error = AuthError;
    type Future = Fut<Self>;
    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let m = Member::from_request(req, payload);
        Box::pin(async move {
            let m = m.await?;
            if m.member.is_admin {
                Ok(MemberAdmin(m))
            } else {
                Err(AuthError::Forbidden)
            }
        })
    }
}
