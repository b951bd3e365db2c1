//! Devices ("Arbeitsplatz freischalten"): with the approval policy, a browser unknown to
//! an account is held as a pending device until an admin approves it.

use actix_web::cookie::{Cookie, SameSite, time::Duration as CookieDuration};
use diesel::prelude::*;
use kollegium_tenants::UnixTime;
use kollegium_tenants::secrets::random_token;
use kollegium_tenants::web::Scheme;

use crate::links::token_hash;
use crate::schema::devices;
use crate::sessions::Origin;
use crate::users::UserId;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceStatus {
    Pending,
    Approved,
    Suspended,
    Rejected,
}

impl DeviceStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Approved => "approved",
            Self::Suspended => "suspended",
            Self::Rejected => "rejected",
        }
    }
    pub fn label(self) -> &'static str {
        match self {
            Self::Pending => "Wartet auf Freigabe",
            Self::Approved => "Freigegeben",
            Self::Suspended => "Gesperrt",
            Self::Rejected => "Abgelehnt",
        }
    }
    fn parse(s: &str) -> Self {
        match s {
            "approved" => Self::Approved,
            "pending" => Self::Pending,
            "suspended" => Self::Suspended,
            _ => Self::Rejected,
        }
    }
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = devices)]
struct Row {
    id: i64,
    user_id: i64,
    name: Option<String>,
    status: String,
    user_agent: String,
    ip: String,
    created_at: i64,
    decided_at: Option<i64>,
    last_seen_at: i64,
}

#[derive(Debug, Clone)]
pub struct Device {
    pub id: i64,
    pub user: UserId,
    pub name: Option<String>,
    pub status: DeviceStatus,
    pub user_agent: String,
    pub ip: String,
    pub created_at: UnixTime,
    pub decided_at: Option<UnixTime>,
    pub last_seen_at: UnixTime,
}

impl From<Row> for Device {
    fn from(r: Row) -> Self {
        Self {
            id: r.id,
            user: UserId(r.user_id),
            name: r.name,
            status: DeviceStatus::parse(&r.status),
            user_agent: r.user_agent,
            ip: r.ip,
            created_at: r.created_at,
            decided_at: r.decided_at,
            last_seen_at: r.last_seen_at,
        }
    }
}

pub fn cookie_name(scheme: Scheme) -> &'static str {
    match scheme {
        Scheme::Https => "__Host-kollegium-device",
        Scheme::Http => "kollegium-device",
    }
}

/// The long-lived device cookie.
pub fn cookie(scheme: Scheme, token: &str) -> Cookie<'static> {
    let mut c = Cookie::build(cookie_name(scheme), token.to_owned())
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(scheme == Scheme::Https)
        .finish();
    c.set_max_age(CookieDuration::days(400));
    c
}

/// Bytes of randomness in a device token.
const TOKEN_BYTES: usize = 32;

/// Whether `token` has the shape of a token [`new_token`] mints (43 characters of
/// unpadded base64url). Anything else was never issued here.
pub fn well_formed(token: &str) -> bool {
    token.len() == (TOKEN_BYTES * 4).div_ceil(3)
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn cookie_hash(user: UserId, token: &str) -> String {
    token_hash(&format!("{}:{token}", user.0))
}

/// The device of `user` that this browser's cookie names, if any.
pub fn for_cookie(
    conn: &mut SqliteConnection,
    user: UserId,
    token: &str,
) -> QueryResult<Option<Device>> {
    if !well_formed(token) {
        return Ok(None);
    }
    devices::table
        .filter(devices::user_id.eq(user.0))
        .filter(devices::cookie_hash.eq(cookie_hash(user, token)))
        .select(Row::as_select())
        .first(conn)
        .optional()
        .map(|o| o.map(Device::from))
}

/// The id of the approved device of `user` this browser's cookie names, if any.
pub fn approved(
    conn: &mut SqliteConnection,
    user: UserId,
    token: &str,
) -> QueryResult<Option<i64>> {
    Ok(for_cookie(conn, user, token)?
        .filter(|d| d.status == DeviceStatus::Approved)
        .map(|d| d.id))
}

/// Whether the server issued `token` as the device cookie of any account (a practice PC
/// shared by several accounts keeps one cookie, with a device row per account). Rows are
/// keyed by account and token together, so each account's key is tried.
pub fn issued(conn: &mut SqliteConnection, token: &str) -> QueryResult<bool> {
    if !well_formed(token) {
        return Ok(false);
    }
    let owners: Vec<i64> = devices::table
        .select(devices::user_id)
        .distinct()
        .load(conn)?;
    let hashes: Vec<String> = owners
        .into_iter()
        .map(|u| cookie_hash(UserId(u), token))
        .collect();
    diesel::select(diesel::dsl::exists(
        devices::table.filter(devices::cookie_hash.eq_any(hashes)),
    ))
    .get_result(conn)
}

/// Registers this browser as a pending device of `user`. The cookie token may be shared by
/// several accounts on one practice PC; each account has its own device row. `token` must
/// be one the server minted ([`new_token`], or [`issued`] for another account).
pub fn create_pending(
    conn: &mut SqliteConnection,
    user: UserId,
    token: &str,
    origin: &Origin,
    now: UnixTime,
) -> QueryResult<Device> {
    diesel::insert_into(devices::table)
        .values((
            devices::user_id.eq(user.0),
            devices::cookie_hash.eq(cookie_hash(user, token)),
            devices::status.eq(DeviceStatus::Pending.as_str()),
            devices::user_agent.eq(&origin.user_agent),
            devices::ip.eq(&origin.ip),
            devices::created_at.eq(now),
            devices::last_seen_at.eq(now),
        ))
        .returning(Row::as_returning())
        .get_result(conn)
        .map(Device::from)
}

pub fn new_token() -> String {
    random_token(TOKEN_BYTES)
}

pub fn by_id(conn: &mut SqliteConnection, id: i64) -> QueryResult<Option<Device>> {
    devices::table
        .find(id)
        .select(Row::as_select())
        .first(conn)
        .optional()
        .map(|o| o.map(Device::from))
}

pub fn list(conn: &mut SqliteConnection) -> QueryResult<Vec<Device>> {
    devices::table
        .order((devices::status.desc(), devices::created_at.desc()))
        .select(Row::as_select())
        .load(conn)
        .map(|v| v.into_iter().map(Device::from).collect())
}

pub fn set_status(
    conn: &mut SqliteConnection,
    id: i64,
    status: DeviceStatus,
    admin: UserId,
    now: UnixTime,
) -> QueryResult<()> {
    diesel::update(devices::table.find(id))
        .set((
            devices::status.eq(status.as_str()),
            devices::decided_at.eq(now),
            devices::decided_by.eq(admin.0),
        ))
        .execute(conn)
        .map(|_| ())
}

pub fn rename(conn: &mut SqliteConnection, id: i64, name: &str) -> QueryResult<()> {
    let name = name.trim();
    let value = if name.is_empty() { None } else { Some(name) };
    diesel::update(devices::table.find(id))
        .set(devices::name.eq(value))
        .execute(conn)
        .map(|_| ())
}

pub fn remove(conn: &mut SqliteConnection, id: i64) -> QueryResult<()> {
    diesel::delete(devices::table.find(id))
        .execute(conn)
        .map(|_| ())
}

pub fn touch(conn: &mut SqliteConnection, id: i64, now: UnixTime) -> QueryResult<()> {
    diesel::update(devices::table.find(id))
        .set(devices::last_seen_at.eq(now))
        .execute(conn)
        .map(|_| ())
}

/// The named devices of `user`: `(device id, name)`.
pub fn names_of(conn: &mut SqliteConnection, user: UserId) -> QueryResult<Vec<(i64, String)>> {
    devices::table
        .filter(devices::user_id.eq(user.0))
        .filter(devices::name.is_not_null())
        .select((devices::id, devices::name.assume_not_null()))
        .load(conn)
}
