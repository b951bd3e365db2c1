//! Console sessions: a random token in a host-only cookie, stored as its SHA-256, with an
//! idle and an absolute timeout. Only an active account's sessions count, so suspending an
//! operator ends them at once (they are also deleted).

use diesel::prelude::*;
use kollegium_tenants::UnixTime;
use kollegium_tenants::secrets::random_token;

use super::accounts::token_hash;
use super::schema::{operator_sessions, operators};

/// A session ends after this long without a request.
pub const IDLE_SECS: i64 = 30 * 60;
/// And this long after sign-in, whatever happens.
pub const ABSOLUTE_SECS: i64 = 12 * 3600;
/// `last_seen_at` is written at most this often per session.
const TOUCH_SECS: i64 = 60;

/// Who a session belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedIn {
    pub session: i64,
    pub operator: i64,
    pub name: String,
}

/// Starts a session of `operator`; returns the cookie's token.
pub fn create(conn: &mut SqliteConnection, now: UnixTime, operator: i64) -> QueryResult<String> {
    let token = random_token(32);
    diesel::insert_into(operator_sessions::table)
        .values((
            operator_sessions::token_hash.eq(token_hash(&token)),
            operator_sessions::operator_id.eq(operator),
            operator_sessions::created_at.eq(now),
            operator_sessions::last_seen_at.eq(now),
        ))
        .execute(conn)?;
    Ok(token)
}

/// The live session of `token`: its account active, neither idle nor too old. Marks it
/// seen.
pub fn lookup(
    conn: &mut SqliteConnection,
    now: UnixTime,
    token: &str,
) -> QueryResult<Option<SignedIn>> {
    if token.is_empty() || token.len() > 64 {
        return Ok(None);
    }
    let found: Option<(i64, i64, String, i64)> = operator_sessions::table
        .inner_join(operators::table)
        .filter(operator_sessions::token_hash.eq(token_hash(token)))
        .filter(operators::status.eq("active"))
        .filter(operators::totp_secret.is_not_null())
        .filter(operator_sessions::created_at.gt(now - ABSOLUTE_SECS))
        .filter(operator_sessions::last_seen_at.gt(now - IDLE_SECS))
        .select((
            operator_sessions::id,
            operators::id,
            operators::name,
            operator_sessions::last_seen_at,
        ))
        .first(conn)
        .optional()?;
    let Some((session, operator, name, seen)) = found else {
        return Ok(None);
    };
    if seen + TOUCH_SECS <= now {
        diesel::update(operator_sessions::table.find(session))
            .set(operator_sessions::last_seen_at.eq(now))
            .execute(conn)?;
    }
    Ok(Some(SignedIn {
        session,
        operator,
        name,
    }))
}

/// Ends a session.
pub fn end(conn: &mut SqliteConnection, session: i64) -> QueryResult<()> {
    diesel::delete(operator_sessions::table.find(session))
        .execute(conn)
        .map(|_| ())
}

/// Deletes sessions that can no longer be used.
pub fn sweep(conn: &mut SqliteConnection, now: UnixTime) -> QueryResult<usize> {
    diesel::delete(
        operator_sessions::table.filter(
            operator_sessions::created_at
                .le(now - ABSOLUTE_SECS)
                .or(operator_sessions::last_seen_at.le(now - IDLE_SECS)),
        ),
    )
    .execute(conn)
}
