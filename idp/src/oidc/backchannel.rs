//! Back-channel logout (OpenID Connect Back-Channel Logout 1.0): when a browser session
//! ends, every client that received tokens within it is told so by a signed logout token.

use diesel::prelude::*;
use kollegium_tenants::UnixTime;

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
