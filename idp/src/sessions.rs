//! Browser sessions of the IdP: server-side records behind a host-only cookie, with idle
//! and absolute timeouts, and the extractors that turn a request into a signed-in user.

use std::future::Future;
use std::pin::Pin;

use actix_web::cookie::{Cookie, SameSite, time::Duration as CookieDuration};
use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};
use diesel::prelude::*;
use kollegium_tenants::secrets::random_token;
use kollegium_tenants::web::{ClientAddr, Scheme, WebContext};
use kollegium_tenants::{Tenant, UnixTime};

use crate::IDP_DB;
use crate::error::IdpError;
use crate::links::token_hash;
use crate::schema::sessions;
use crate::state::{IdpSettings, IdpState};
use crate::users::{self, User, UserId, UserStatus};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Signed in.
    Active,
    /// Password ok, TOTP code outstanding.
    Totp,
    /// Password ok, second factor must be enrolled first (policy).
    Enroll,
    /// Signed in on a device that waits for an admin's approval.
    Device,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Totp => "totp",
            Self::Enroll => "enroll",
            Self::Device => "device",
        }
    }
    fn parse(s: &str) -> Self {
        match s {
            "active" => Self::Active,
            "totp" => Self::Totp,
            "enroll" => Self::Enroll,
            _ => Self::Device,
        }
    }
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = sessions)]
struct Row {
    id: i64,
    sid: String,
    user_id: i64,
    stage: String,
    device_id: Option<i64>,
    amr: String,
    auth_time: i64,
    created_at: i64,
    last_seen_at: i64,
    user_agent: String,
    ip: String,
    ended_at: Option<i64>,
    device_name: Option<String>,
}

/// A session record.
#[derive(Debug, Clone)]
pub struct Session {
    pub id: i64,
    /// Public session id (the `sid` claim).
    pub sid: String,
    pub user: UserId,
    pub stage: Stage,
    pub device_id: Option<i64>,
    /// Authentication methods: "pwd", "pwd otp".
    pub amr: String,
    pub auth_time: UnixTime,
    pub created_at: UnixTime,
    pub last_seen_at: UnixTime,
    pub user_agent: String,
    pub ip: String,
    pub ended_at: Option<UnixTime>,
    /// The name its member gave this session's device ("Empfang-PC").
    pub device_name: Option<String>,
}

impl From<Row> for Session {
    fn from(r: Row) -> Self {
        Self {
            id: r.id,
            sid: r.sid,
            user: UserId(r.user_id),
            stage: Stage::parse(&r.stage),
            device_id: r.device_id,
            amr: r.amr,
            auth_time: r.auth_time,
            created_at: r.created_at,
            last_seen_at: r.last_seen_at,
            user_agent: r.user_agent,
            ip: r.ip,
            ended_at: r.ended_at,
            device_name: r.device_name,
        }
    }
}

pub fn cookie_name(scheme: Scheme) -> &'static str {
    match scheme {
        Scheme::Https => "__Host-kollegium-id",
        Scheme::Http => "kollegium-id",
    }
}

/// The session cookie: host-only, HttpOnly, SameSite=Lax, Secure on https.
pub fn cookie(scheme: Scheme, token: &str) -> Cookie<'static> {
    Cookie::build(cookie_name(scheme), token.to_owned())
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(scheme == Scheme::Https)
        .finish()
}

/// A cookie that removes the session cookie.
pub fn removal(scheme: Scheme) -> Cookie<'static> {
    let mut c = cookie(scheme, "");
    c.set_max_age(CookieDuration::ZERO);
    c
}

/// Where the session came from.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    pub user_agent: String,
    pub ip: String,
}

impl Origin {
    pub fn of(req: &HttpRequest) -> Self {
        let ua = req
            .headers()
            .get(actix_web::http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .chars()
            .take(300)
            .collect();
        // The address the plumbing decided (proxy headers only from trusted proxies).
        let ip = ClientAddr::of(req)
            .map(|a| a.to_string())
            .unwrap_or_default();
        Self { user_agent: ua, ip }
    }
}

/// Creates a session and returns the cookie token (only its hash is stored).
pub fn create(
    conn: &mut SqliteConnection,
    user: UserId,
    stage: Stage,
    amr: &str,
    device_id: Option<i64>,
    origin: &Origin,
    now: UnixTime,
) -> QueryResult<(String, Session)> {
    let token = random_token(32);
    let row: Row = diesel::insert_into(sessions::table)
        .values((
            sessions::token_hash.eq(token_hash(&token)),
            sessions::sid.eq(random_token(16)),
            sessions::user_id.eq(user.0),
            sessions::stage.eq(stage.as_str()),
            sessions::device_id.eq(device_id),
            sessions::amr.eq(amr),
            sessions::auth_time.eq(now),
            sessions::created_at.eq(now),
            sessions::last_seen_at.eq(now),
            sessions::user_agent.eq(&origin.user_agent),
            sessions::ip.eq(&origin.ip),
        ))
        .returning(Row::as_returning())
        .get_result(conn)?;
    Ok((token, row.into()))
}

/// Moves a session to `stage` under a fresh token (privilege change → new session id).
pub fn promote(
    conn: &mut SqliteConnection,
    id: i64,
    stage: Stage,
    amr: &str,
    device_id: Option<i64>,
    now: UnixTime,
) -> QueryResult<String> {
    let token = random_token(32);
    diesel::update(sessions::table.find(id))
        .set((
            sessions::token_hash.eq(token_hash(&token)),
            sessions::stage.eq(stage.as_str()),
            sessions::amr.eq(amr),
            sessions::device_id.eq(device_id),
            sessions::auth_time.eq(now),
            sessions::last_seen_at.eq(now),
        ))
        .execute(conn)?;
    Ok(token)
}

pub fn by_token(conn: &mut SqliteConnection, token: &str) -> QueryResult<Option<Session>> {
    if token.is_empty() || token.len() > 100 {
        return Ok(None);
    }
    sessions::table
        .filter(sessions::token_hash.eq(token_hash(token)))
        .select(Row::as_select())
        .first(conn)
        .optional()
        .map(|o| o.map(Session::from))
}

pub fn by_id(conn: &mut SqliteConnection, id: i64) -> QueryResult<Option<Session>> {
    sessions::table
        .find(id)
        .select(Row::as_select())
        .first(conn)
        .optional()
        .map(|o| o.map(Session::from))
}

pub fn by_sid(conn: &mut SqliteConnection, sid: &str) -> QueryResult<Option<Session>> {
    sessions::table
        .filter(sessions::sid.eq(sid))
        .select(Row::as_select())
        .first(conn)
        .optional()
        .map(|o| o.map(Session::from))
}

/// Checks a session token: open, within idle and absolute timeouts, user active. Ends
/// sessions that fail a check. Returns the session and its user.
pub fn validate(
    conn: &mut SqliteConnection,
    token: &str,
    settings: &IdpSettings,
    now: UnixTime,
) -> QueryResult<Option<(Session, User)>> {
    let Some(s) = by_token(conn, token)? else {
        return Ok(None);
    };
    if s.ended_at.is_some() {
        return Ok(None);
    }
    let reason = if now - s.last_seen_at > settings.session_idle_secs {
        Some("idle timeout")
    } else if now - s.created_at > settings.session_absolute_secs {
        Some("absolute timeout")
    } else {
        None
    };
    if let Some(reason) = reason {
        end(conn, s.id, reason, now)?;
        return Ok(None);
    }
    let Some(user) = users::by_id(conn, s.user)? else {
        return Ok(None);
    };
    // A login lock holds back new sign-ins only; ending sessions on it would let anyone
    // who can guess wrong five times sign the owner out.
    if user.status != UserStatus::Active {
        end(conn, s.id, "account not usable", now)?;
        return Ok(None);
    }
    if now - s.last_seen_at >= 30 {
        diesel::update(sessions::table.find(s.id))
            .set(sessions::last_seen_at.eq(now))
            .execute(conn)?;
    }
    Ok(Some((s, user)))
}

/// Ends one session (and notifies relying parties that had it, via back-channel logout).
pub fn end(conn: &mut SqliteConnection, id: i64, reason: &str, now: UnixTime) -> QueryResult<bool> {
    let n = diesel::update(
        sessions::table
            .find(id)
            .filter(sessions::ended_at.is_null()),
    )
    .set((sessions::ended_at.eq(now), sessions::end_reason.eq(reason)))
    .execute(conn)?;
    if n == 1 {
        crate::oidc::backchannel::session_ended(conn, id, now)?;
    }
    Ok(n == 1)
}

/// Ends every open session of a user, except `keep`. Returns how many ended.
pub fn end_all(
    conn: &mut SqliteConnection,
    user: UserId,
    keep: Option<i64>,
    reason: &str,
    now: UnixTime,
) -> QueryResult<usize> {
    let ids: Vec<i64> = sessions::table
        .filter(sessions::user_id.eq(user.0))
        .filter(sessions::ended_at.is_null())
        .select(sessions::id)
        .load(conn)?;
    let mut n = 0;
    for id in ids.into_iter().filter(|id| Some(*id) != keep) {
        if end(conn, id, reason, now)? {
            n += 1;
        }
    }
    Ok(n)
}

/// Ends every session that used a device.
pub fn end_for_device(
    conn: &mut SqliteConnection,
    device: i64,
    reason: &str,
    now: UnixTime,
) -> QueryResult<usize> {
    let ids: Vec<i64> = sessions::table
        .filter(sessions::device_id.eq(device))
        .filter(sessions::ended_at.is_null())
        .select(sessions::id)
        .load(conn)?;
    let mut n = 0;
    for id in ids {
        if end(conn, id, reason, now)? {
            n += 1;
        }
    }
    Ok(n)
}

/// Open, signed-in sessions of a user, newest first.
pub fn list_open(conn: &mut SqliteConnection, user: UserId) -> QueryResult<Vec<Session>> {
    sessions::table
        .filter(sessions::user_id.eq(user.0))
        .filter(sessions::ended_at.is_null())
        .filter(sessions::stage.eq(Stage::Active.as_str()))
        .order(sessions::last_seen_at.desc())
        .select(Row::as_select())
        .load(conn)
        .map(|v| v.into_iter().map(Session::from).collect())
}

/// When each account last used a signed-in session (the newest `last_seen_at` of its
/// sessions that reached the active stage, ended or not): `(user id, time)`.
pub fn last_seen(conn: &mut SqliteConnection) -> QueryResult<Vec<(i64, Option<UnixTime>)>> {
    sessions::table
        .filter(sessions::stage.eq(Stage::Active.as_str()))
        .group_by(sessions::user_id)
        .select((sessions::user_id, diesel::dsl::max(sessions::last_seen_at)))
        .load(conn)
}

/// Longest device name a member gives a session.
pub const MAX_DEVICE_NAME: usize = 60;

/// A device name as typed: trimmed, at most [`MAX_DEVICE_NAME`] characters, no control
/// characters. `Ok(None)`: the name is removed.
pub fn parse_device_name(raw: &str) -> Result<Option<String>, &'static str> {
    let name = raw.trim();
    if name.chars().count() > MAX_DEVICE_NAME {
        return Err("Der Gerätename darf höchstens 60 Zeichen lang sein.");
    }
    if name.chars().any(char::is_control) {
        return Err("Der Gerätename darf keine Steuerzeichen enthalten.");
    }
    Ok((!name.is_empty()).then(|| name.to_owned()))
}

/// Names the device of session `id` of `user` (its own device row too, if the session is on
/// an approved device, so the name is there at the next sign-in and in the admins' list).
/// `false`: no such session of this user.
pub fn set_device_name(
    conn: &mut SqliteConnection,
    user: UserId,
    id: i64,
    name: Option<&str>,
) -> QueryResult<bool> {
    let Some(s) = by_id(conn, id)?.filter(|s| s.user == user && s.ended_at.is_none()) else {
        return Ok(false);
    };
    diesel::update(sessions::table.find(id))
        .set(sessions::device_name.eq(name))
        .execute(conn)?;
    if let Some(device) = s.device_id {
        crate::devices::rename(conn, device, name.unwrap_or_default())?;
    }
    Ok(true)
}

/// The major version after `marker` in a user agent (`Chrome/131.0.0.0` → `131`).
fn version_after(ua: &str, marker: &str) -> Option<String> {
    let rest = &ua[ua.find(marker)? + marker.len()..];
    let major: String = rest.chars().take_while(char::is_ascii_digit).collect();
    (!major.is_empty()).then_some(major)
}

/// A short, human description of a user agent: browser with its major version and the
/// system ("Firefox 133 auf Windows", "Safari 17 auf iPhone").
pub fn describe_agent(ua: &str) -> String {
    // Order matters: Edge and Opera say "Chrome" too, Chrome says "Safari".
    const BROWSERS: &[(&str, &str)] = &[
        ("Edg/", "Edge"),
        ("OPR/", "Opera"),
        ("SamsungBrowser/", "Samsung Internet"),
        ("Firefox/", "Firefox"),
        ("FxiOS/", "Firefox"),
        ("CriOS/", "Chrome"),
        ("Chromium/", "Chromium"),
        ("Chrome/", "Chrome"),
        ("Version/", "Safari"),
    ];
    let browser = BROWSERS
        .iter()
        .find(|(marker, _)| {
            ua.contains(marker) && (*marker != "Version/" || ua.contains("Safari/"))
        })
        .map(|(marker, name)| match version_after(ua, marker) {
            Some(v) => format!("{name} {v}"),
            None => (*name).to_owned(),
        });
    let browser = match browser {
        Some(b) => b,
        None if ua.is_empty() => "Unbekannter Browser".to_owned(),
        None => "Anderes Programm".to_owned(),
    };
    let os = if ua.contains("Windows") {
        " auf Windows"
    } else if ua.contains("Android") {
        " auf Android"
    } else if ua.contains("iPhone") {
        " auf iPhone"
    } else if ua.contains("iPad") {
        " auf iPad"
    } else if ua.contains("CrOS") {
        " auf ChromeOS"
    } else if ua.contains("Mac OS") {
        " auf macOS"
    } else if ua.contains("Linux") {
        " auf Linux"
    } else {
        ""
    };
    format!("{browser}{os}")
}

// ---- extractors ---------------------------------------------------------------------

/// A signed-in user of this practice's IdP (stage `active`).
#[derive(Debug, Clone)]
pub struct IdpSession {
    pub session: Session,
    pub user: User,
    pub tenant: Tenant,
}

/// A signed-in practice administrator.
#[derive(Debug, Clone)]
pub struct IdpAdmin(pub IdpSession);

/// A login that passed the password but is not complete (TOTP, enrolment, device).
#[derive(Debug, Clone)]
pub struct PendingLogin(pub IdpSession);

/// The current session if there is one, in any stage.
#[derive(Debug, Clone)]
pub struct AnySession(pub Option<IdpSession>);

fn next_of(req: &HttpRequest) -> String {
    if req.method() == actix_web::http::Method::GET {
        req.uri()
            .path_and_query()
            .map_or_else(|| "/id/".into(), |p| p.as_str().to_owned())
    } else {
        "/id/".into()
    }
}

async fn load(req: HttpRequest) -> Result<Option<IdpSession>, IdpError> {
    let tenant = req
        .extensions()
        .get::<Tenant>()
        .cloned()
        .ok_or(IdpError::NotFound)?;
    let state = req
        .app_data::<web::Data<IdpState>>()
        .cloned()
        .ok_or_else(|| IdpError::invariant("IdpState missing"))?;
    let ctx = req
        .app_data::<web::Data<WebContext>>()
        .cloned()
        .ok_or_else(|| IdpError::invariant("WebContext missing"))?;
    let Some(token) = req
        .cookie(cookie_name(ctx.settings.scheme))
        .map(|c| c.value().to_owned())
    else {
        return Ok(None);
    };
    let t = tenant.clone();
    let found = kollegium_tenants::web::block(move || -> Result<_, IdpError> {
        let mut conn = t.conn(&IDP_DB)?;
        Ok(validate(&mut conn, &token, &state.settings, state.now())?)
    })
    .await??;
    Ok(found.map(|(session, user)| IdpSession {
        session,
        user,
        tenant,
    }))
}

type Fut<T> = Pin<Box<dyn Future<Output = Result<T, IdpError>>>>;

impl FromRequest for AnySession {
    type Error = IdpError;
    type Future = Fut<Self>;
    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            if let Some(s) = req.extensions().get::<AnySession>() {
                return Ok(s.clone());
            }
            let s = AnySession(load(req.clone()).await?);
            req.extensions_mut().insert(s.clone());
            Ok(s)
        })
    }
}

impl FromRequest for IdpSession {
    type Error = IdpError;
    type Future = Fut<Self>;
    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let any = AnySession::from_request(req, payload);
        let next = next_of(req);
        Box::pin(async move {
            match any.await?.0 {
                Some(s) if s.session.stage == Stage::Active => Ok(s),
                _ => Err(IdpError::LoginRequired { next }),
            }
        })
    }
}

impl FromRequest for IdpAdmin {
    type Error = IdpError;
    type Future = Fut<Self>;
    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let s = IdpSession::from_request(req, payload);
        Box::pin(async move {
            let s = s.await?;
            if s.user.is_admin {
                Ok(IdpAdmin(s))
            } else {
                Err(IdpError::Forbidden)
            }
        })
    }
}

impl FromRequest for PendingLogin {
    type Error = IdpError;
    type Future = Fut<Self>;
    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let any = AnySession::from_request(req, payload);
        Box::pin(async move {
            match any.await?.0 {
                Some(s) if s.session.stage != Stage::Active => Ok(PendingLogin(s)),
                _ => Err(IdpError::LoginRequired {
                    next: "/id/".into(),
                }),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_agents_read_as_browser_version_and_system() {
        let cases = [
            (
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
                "Chrome 131 auf Windows",
            ),
            (
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.2903.86",
                "Edge 131 auf Windows",
            ),
            (
                "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
                "Firefox 133 auf Linux",
            ),
            (
                "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
                "Safari 17 auf iPhone",
            ),
            (
                "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
                "Safari 17 auf macOS",
            ),
            ("", "Unbekannter Browser"),
            ("curl/8.5.0", "Anderes Programm"),
        ];
        for (ua, want) in cases {
            assert_eq!(describe_agent(ua), want, "{ua}");
        }
    }

    #[test]
    fn device_names_are_trimmed_and_bounded() {
        assert_eq!(
            parse_device_name("  Empfang-PC "),
            Ok(Some("Empfang-PC".into()))
        );
        assert_eq!(parse_device_name("   "), Ok(None));
        assert!(parse_device_name(&"x".repeat(61)).is_err());
        assert!(parse_device_name("a\u{7}b").is_err());
        assert_eq!(
            parse_device_name(&"ü".repeat(60)).map(|n| n.is_some()),
            Ok(true)
        );
    }
}
