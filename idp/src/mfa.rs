//! The second factor of an account: enabling and disabling TOTP, single-use recovery
//! codes (stored as hashes only), and checking what a user typed at login.

use diesel::prelude::*;
use kollegium_tenants::secrets::Zeroizing;
use kollegium_tenants::{Tenant, UnixTime};
use rand::RngCore;

use crate::links::token_hash;
use crate::schema::recovery_codes;
use crate::totp;
use crate::users::{self, UserId};

/// Recovery codes issued at enrolment.
pub const RECOVERY_COUNT: usize = 10;

/// Fresh recovery codes, e.g. `k3m7-q2xa-9vbn-p4tw` (80 random bits each).
pub fn new_recovery_codes() -> Vec<String> {
    (0..RECOVERY_COUNT)
        .map(|_| {
            let mut raw = Zeroizing::new([0u8; 10]);
            rand::rngs::OsRng.fill_bytes(raw.as_mut());
            let s = totp::base32(raw.as_ref()).to_lowercase();
            s.as_bytes()
                .chunks(4)
                .map(|c| String::from_utf8_lossy(c).into_owned())
                .collect::<Vec<_>>()
                .join("-")
        })
        .collect()
}

/// Normalises typed input (case, dashes, spaces) to what was hashed.
fn normalize_recovery(input: &str) -> Option<String> {
    let s: String = input
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .map(|c| c.to_ascii_lowercase())
        .collect();
    (s.len() == 16
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || ('2'..='7').contains(&c)))
    .then_some(s)
}

fn recovery_hash(normalized: &str) -> String {
    token_hash(&format!("recovery:{normalized}"))
}

/// Stores the sealed secret (marking `step` as used: the confirming code cannot be replayed
/// at login) and replaces the recovery codes. One transaction.
pub fn enable(
    conn: &mut SqliteConnection,
    user: UserId,
    sealed: &str,
    step: i64,
    codes: &[String],
) -> QueryResult<()> {
    conn.immediate_transaction(|conn| {
        users::set_totp(conn, user, Some(sealed), Some(step))?;
        diesel::delete(recovery_codes::table.filter(recovery_codes::user_id.eq(user.0)))
            .execute(conn)?;
        for c in codes {
            let Some(n) = normalize_recovery(c) else {
                continue;
            };
            diesel::insert_into(recovery_codes::table)
                .values((
                    recovery_codes::user_id.eq(user.0),
                    recovery_codes::code_hash.eq(recovery_hash(&n)),
                ))
                .execute(conn)?;
        }
        Ok(())
    })
}

/// Removes the second factor and all recovery codes.
pub fn disable(conn: &mut SqliteConnection, user: UserId) -> QueryResult<()> {
    // `transaction` nests (as a savepoint) when the caller already holds one.
    conn.transaction(|conn| {
        users::set_totp(conn, user, None, None)?;
        diesel::delete(recovery_codes::table.filter(recovery_codes::user_id.eq(user.0)))
            .execute(conn)?;
        Ok(())
    })
}

/// Unused recovery codes of an account.
pub fn recovery_left(conn: &mut SqliteConnection, user: UserId) -> QueryResult<i64> {
    recovery_codes::table
        .filter(recovery_codes::user_id.eq(user.0))
        .filter(recovery_codes::used_at.is_null())
        .count()
        .get_result(conn)
}

/// What a typed second factor turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// A current TOTP code, now used up.
    Totp,
    /// An unused recovery code, now used up.
    Recovery,
    /// Wrong, expired, replayed or already used.
    Wrong,
}

/// Checks a TOTP code (±1 step, each step usable once) or a recovery code (once) of
/// `user`, whose stored secret opens with the tenant's key. Consumes what matched.
pub fn check(
    conn: &mut SqliteConnection,
    tenant: &Tenant,
    user: UserId,
    sealed: Option<&str>,
    input: &str,
    now: UnixTime,
) -> Result<Check, CheckError> {
    let Some(sealed) = sealed else {
        return Ok(Check::Wrong);
    };
    if input.len() > 64 {
        return Ok(Check::Wrong);
    }
    if totp::as_code(input).is_some() {
        let secret = totp::open(tenant.secret(), tenant.slug(), user, sealed)
            .map_err(|_| CheckError::Secret)?;
        let Some(step) = totp::matching_step(&secret, input, now) else {
            return Ok(Check::Wrong);
        };
        return Ok(if users::consume_totp_step(conn, user, step)? {
            Check::Totp
        } else {
            Check::Wrong
        });
    }
    let Some(n) = normalize_recovery(input) else {
        return Ok(Check::Wrong);
    };
    let used = diesel::update(
        recovery_codes::table
            .filter(recovery_codes::user_id.eq(user.0))
            .filter(recovery_codes::code_hash.eq(recovery_hash(&n)))
            .filter(recovery_codes::used_at.is_null()),
    )
    .set(recovery_codes::used_at.eq(now))
    .execute(conn)?;
    Ok(if used == 1 {
        Check::Recovery
    } else {
        Check::Wrong
    })
}

#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("database: {0}")]
    Db(#[from] diesel::result::Error),
    #[error("stored TOTP secret cannot be opened")]
    Secret,
}

impl From<CheckError> for crate::error::IdpError {
    fn from(e: CheckError) -> Self {
        match e {
            CheckError::Db(e) => Self::Db(e),
            CheckError::Secret => Self::invariant("stored TOTP secret cannot be opened"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovery_codes_are_distinct_and_normalise() {
        let codes = new_recovery_codes();
        assert_eq!(codes.len(), RECOVERY_COUNT);
        let mut d = codes.clone();
        d.sort();
        d.dedup();
        assert_eq!(d.len(), RECOVERY_COUNT);
        for c in &codes {
            assert_eq!(c.len(), 19, "{c}");
            let n = normalize_recovery(c).unwrap();
            assert_eq!(normalize_recovery(&c.to_uppercase()), Some(n.clone()));
            assert_eq!(normalize_recovery(&c.replace('-', " ")), Some(n));
        }
        assert_eq!(normalize_recovery("123456"), None);
        assert_eq!(normalize_recovery("abcd-efgh-ijkl-mno1"), None);
    }
}
