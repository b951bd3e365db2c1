//! Grants and the tokens issued from them: revocation by user, client or grant.

use diesel::prelude::*;
use kollegium_tenants::UnixTime;

use crate::schema::{access_tokens, grants, refresh_tokens};
use crate::users::UserId;

/// Revokes every grant (refresh and access tokens) of a user, e.g. on disable or password
/// change. Returns how many grants were revoked.
pub fn revoke_all_for_user(
    conn: &mut SqliteConnection,
    user: UserId,
    reason: &str,
    now: UnixTime,
) -> QueryResult<usize> {
    let ids: Vec<String> = grants::table
        .filter(grants::user_id.eq(user.0))
        .filter(grants::revoked_at.is_null())
        .select(grants::id)
        .load(conn)?;
    for id in &ids {
        revoke_grant(conn, id, reason, now)?;
    }
    diesel::update(
        access_tokens::table
            .filter(access_tokens::user_id.eq(user.0))
            .filter(access_tokens::revoked_at.is_null()),
    )
    .set(access_tokens::revoked_at.eq(now))
    .execute(conn)?;
    Ok(ids.len())
}

/// Revokes one grant with all its tokens.
pub fn revoke_grant(
    conn: &mut SqliteConnection,
    grant_id: &str,
    reason: &str,
    now: UnixTime,
) -> QueryResult<()> {
    diesel::update(
        grants::table
            .find(grant_id)
            .filter(grants::revoked_at.is_null()),
    )
    .set((
        grants::revoked_at.eq(now),
        grants::revoked_reason.eq(reason),
    ))
    .execute(conn)?;
    diesel::update(
        refresh_tokens::table
            .filter(refresh_tokens::grant_id.eq(grant_id))
            .filter(refresh_tokens::revoked_at.is_null()),
    )
    .set(refresh_tokens::revoked_at.eq(now))
    .execute(conn)?;
    diesel::update(
        access_tokens::table
            .filter(access_tokens::grant_id.eq(grant_id))
            .filter(access_tokens::revoked_at.is_null()),
    )
    .set(access_tokens::revoked_at.eq(now))
    .execute(conn)?;
    Ok(())
}

/// Revokes every grant a user gave one client (consent withdrawn).
pub fn revoke_for_client(
    conn: &mut SqliteConnection,
    user: UserId,
    client_id: &str,
    reason: &str,
    now: UnixTime,
) -> QueryResult<usize> {
    let ids: Vec<String> = grants::table
        .filter(grants::user_id.eq(user.0))
        .filter(grants::client_id.eq(client_id))
        .filter(grants::revoked_at.is_null())
        .select(grants::id)
        .load(conn)?;
    for id in &ids {
        revoke_grant(conn, id, reason, now)?;
    }
    Ok(ids.len())
}
