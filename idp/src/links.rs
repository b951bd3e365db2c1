//! One-time links: owner setup, invitation and password reset. Only a hash of the token is
//! stored; the link carries the token itself.

use diesel::prelude::*;
use kollegium_tenants::UnixTime;
use kollegium_tenants::secrets::random_token;
use sha2::{Digest, Sha256};

use crate::schema::action_tokens;
use crate::users::UserId;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkKind {
    Setup,
    Invite,
    Reset,
}

impl LinkKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Setup => "setup",
            Self::Invite => "invite",
            Self::Reset => "reset",
        }
    }
    fn parse(s: &str) -> Option<Self> {
        match s {
            "setup" => Some(Self::Setup),
            "invite" => Some(Self::Invite),
            "reset" => Some(Self::Reset),
            _ => None,
        }
    }
}

/// Hex SHA-256 of a token: what is stored for every bearer secret.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Issues a link token; earlier unused links of the same kind for the user are voided.
pub fn issue(
    conn: &mut SqliteConnection,
    user: UserId,
    kind: LinkKind,
    now: UnixTime,
    ttl_secs: i64,
) -> QueryResult<String> {
    diesel::update(
        action_tokens::table
            .filter(action_tokens::user_id.eq(user.0))
            .filter(action_tokens::kind.eq(kind.as_str()))
            .filter(action_tokens::used_at.is_null()),
    )
    .set(action_tokens::used_at.eq(now))
    .execute(conn)?;
    let token = random_token(32);
    diesel::insert_into(action_tokens::table)
        .values((
            action_tokens::token_hash.eq(token_hash(&token)),
            action_tokens::user_id.eq(user.0),
            action_tokens::kind.eq(kind.as_str()),
            action_tokens::created_at.eq(now),
            action_tokens::expires_at.eq(now + ttl_secs),
        ))
        .execute(conn)?;
    Ok(token)
}

/// A valid (unused, unexpired) link.
#[derive(Debug, Clone, Copy)]
pub struct ValidLink {
    pub id: i64,
    pub user: UserId,
    pub kind: LinkKind,
}

pub fn check(
    conn: &mut SqliteConnection,
    token: &str,
    now: UnixTime,
) -> QueryResult<Option<ValidLink>> {
    if token.len() > 128 {
        return Ok(None);
    }
    let row: Option<(i64, i64, String)> = action_tokens::table
        .filter(action_tokens::token_hash.eq(token_hash(token)))
        .filter(action_tokens::used_at.is_null())
        .filter(action_tokens::expires_at.gt(now))
        .select((
            action_tokens::id,
            action_tokens::user_id,
            action_tokens::kind,
        ))
        .first(conn)
        .optional()?;
    Ok(row.and_then(|(id, user, kind)| {
        LinkKind::parse(&kind).map(|kind| ValidLink {
            id,
            user: UserId(user),
            kind,
        })
    }))
}

/// Marks the link used; false if someone else used it first.
pub fn consume(conn: &mut SqliteConnection, link: &ValidLink, now: UnixTime) -> QueryResult<bool> {
    let n = diesel::update(
        action_tokens::table
            .find(link.id)
            .filter(action_tokens::used_at.is_null()),
    )
    .set(action_tokens::used_at.eq(now))
    .execute(conn)?;
    Ok(n == 1)
}

/// Whether the user still has an open link of this kind.
pub fn has_open(
    conn: &mut SqliteConnection,
    user: UserId,
    kind: LinkKind,
    now: UnixTime,
) -> QueryResult<bool> {
    let n: i64 = action_tokens::table
        .filter(action_tokens::user_id.eq(user.0))
        .filter(action_tokens::kind.eq(kind.as_str()))
        .filter(action_tokens::used_at.is_null())
        .filter(action_tokens::expires_at.gt(now))
        .count()
        .get_result(conn)?;
    Ok(n > 0)
}
