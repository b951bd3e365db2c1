//! Login throttling per account and per client address: every attempt is counted before
//! the password is checked (so parallel guesses cannot slip past the limit), a success
//! clears the account's count, failures beyond a threshold are delayed with an escalating
//! pause and then locked out for a while. Accounts are keyed by user id when the login
//! names one and by the login string otherwise, so unknown names behave like known ones.
//!
//! The escalating delay of a client address counts only attempts that failed, not those
//! still in flight: a practice's team behind one NAT address signing in at 8:00 is many
//! correct logins at once, not a guessing attack (before, the 4th login in flight waited
//! 500 ms, later ones up to 4 s). Reservations in flight still count towards the address's
//! lockout, so a flood of parallel guesses is still cut off.
//!
//! An attempt refused because a lock is in force is not counted: otherwise each refused
//! guess would keep the count fresh, and one guess per lockout period would keep an account
//! locked for ever. A lock that has run out clears its count, so the first attempt after it
//! starts afresh (and the right password works).

use std::time::Duration;

use diesel::prelude::*;
use diesel::upsert::excluded;
use kollegium_tenants::UnixTime;

use crate::schema::throttle;
use crate::state::IdpSettings;
use crate::users::UserId;

/// The keys an attempt is counted under.
#[derive(Debug, Clone)]
pub struct Keys {
    pub account: String,
    pub address: String,
}

impl Keys {
    /// The key counting the address's failed attempts (for its delay).
    fn address_failures(&self) -> String {
        format!("failed-{}", self.address)
    }

    pub fn new(user: Option<UserId>, login: &str, ip: &str) -> Self {
        let account = match user {
            Some(u) => format!("user:{}", u.0),
            None => format!("login:{}", login.trim().to_lowercase()),
        };
        Self {
            account,
            address: format!("ip:{ip}"),
        }
    }
}

/// Outcome of reserving an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// Go ahead; wait this long first (escalating delay).
    Proceed { delay: Duration },
    /// Locked (account or address). `newly` is true when this attempt caused the lock;
    /// `account` whether it is the account's lock (an address lock says nothing about the
    /// account that happened to make the attempt over the address's threshold).
    Locked {
        newly: bool,
        account: bool,
        until: UnixTime,
    },
}

fn bump(conn: &mut SqliteConnection, key: &str, window: i64, now: UnixTime) -> QueryResult<i64> {
    // Failures older than the window are forgotten, and so are those behind a lock that
    // has run out (the lock was their consequence).
    diesel::update(
        throttle::table.find(key).filter(
            throttle::last_failure_at
                .lt(now - window)
                .or(throttle::locked_until.le(now)),
        ),
    )
    .set((
        throttle::failures.eq(0),
        throttle::locked_until.eq(None::<i64>),
    ))
    .execute(conn)?;
    diesel::insert_into(throttle::table)
        .values((
            throttle::key.eq(key),
            throttle::failures.eq(1),
            throttle::last_failure_at.eq(now),
        ))
        .on_conflict(throttle::key)
        .do_update()
        .set((
            throttle::failures.eq(throttle::failures + 1),
            throttle::last_failure_at.eq(excluded(throttle::last_failure_at)),
        ))
        .returning(throttle::failures)
        .get_result(conn)
}

/// Failures counted on `key` within the window.
fn recent(conn: &mut SqliteConnection, key: &str, window: i64, now: UnixTime) -> QueryResult<i64> {
    Ok(throttle::table
        .find(key)
        .filter(throttle::last_failure_at.ge(now - window))
        .select(throttle::failures)
        .first::<i64>(conn)
        .optional()?
        .unwrap_or(0))
}

/// Records that a reserved attempt failed (wrong password or code), for the address's
/// delay.
pub fn failed(
    conn: &mut SqliteConnection,
    keys: &Keys,
    s: &IdpSettings,
    now: UnixTime,
) -> QueryResult<()> {
    bump(conn, &keys.address_failures(), s.lockout_secs, now).map(|_| ())
}

/// The end of a lock in force on `key`, if there is one.
fn locked_until(conn: &mut SqliteConnection, key: &str, now: UnixTime) -> QueryResult<Option<i64>> {
    throttle::table
        .find(key)
        .filter(throttle::locked_until.gt(now))
        .select(throttle::locked_until)
        .first::<Option<i64>>(conn)
        .optional()
        .map(Option::flatten)
}

/// Locks `key` unless a lock is already in force; true if this call locked it (so that
/// parallel attempts over the threshold report, mail and log one lockout, not several).
fn lock(
    conn: &mut SqliteConnection,
    key: &str,
    until: UnixTime,
    now: UnixTime,
) -> QueryResult<bool> {
    let n = diesel::update(
        throttle::table.find(key).filter(
            throttle::locked_until
                .is_null()
                .or(throttle::locked_until.le(now)),
        ),
    )
    .set(throttle::locked_until.eq(until))
    .execute(conn)?;
    Ok(n == 1)
}

/// Reserves an attempt (counted as a failure until [`succeeded`] clears it).
pub fn begin(
    conn: &mut SqliteConnection,
    keys: &Keys,
    s: &IdpSettings,
    now: UnixTime,
) -> QueryResult<Gate> {
    // A lock in force refuses the attempt without counting it (see the module comment).
    let acct_lock = locked_until(conn, &keys.account, now)?;
    let addr_lock = locked_until(conn, &keys.address, now)?;
    if let Some(until) = acct_lock.into_iter().chain(addr_lock).max() {
        return Ok(Gate::Locked {
            newly: false,
            account: acct_lock.is_some(),
            until,
        });
    }
    let window = s.lockout_secs;
    let acct = bump(conn, &keys.account, window, now)?;
    let addr = bump(conn, &keys.address, window, now)?;
    let until = now + s.lockout_secs;
    if acct > s.lockout_threshold {
        let newly = lock(conn, &keys.account, until, now)?;
        return Ok(Gate::Locked {
            newly,
            account: true,
            until,
        });
    }
    if addr > s.address_lockout_threshold {
        let newly = lock(conn, &keys.address, until, now)?;
        return Ok(Gate::Locked {
            newly,
            account: false,
            until,
        });
    }
    // This attempt is number `acct` of its account, the ones before it failed (or are
    // guesses in flight); the address counts its failed attempts only.
    let addr_failed = recent(conn, &keys.address_failures(), window, now)?;
    let prior = (acct - 1).max(addr_failed);
    let delay = if prior > s.delay_after {
        let exp = (prior - s.delay_after).min(10) as u32;
        Duration::from_millis((250u64 << exp).min(s.max_delay_ms))
    } else {
        Duration::ZERO
    };
    Ok(Gate::Proceed { delay })
}

/// A completed login: the account's count starts over, and the address's count forgets
/// the `attempts` reservations of this login (password, and code if there was one).
pub fn succeeded(conn: &mut SqliteConnection, keys: &Keys, attempts: i64) -> QueryResult<()> {
    diesel::delete(throttle::table.find(&keys.account)).execute(conn)?;
    diesel::update(throttle::table.find(&keys.address))
        .set(throttle::failures.eq(throttle::failures - attempts))
        .execute(conn)?;
    diesel::update(
        throttle::table
            .find(&keys.address)
            .filter(throttle::failures.lt(0)),
    )
    .set(throttle::failures.eq(0))
    .execute(conn)
    .map(|_| ())
}

/// Admin unlock: forgets everything counted against the account.
pub fn unlock(
    conn: &mut SqliteConnection,
    user: UserId,
    username: &str,
    email: &str,
) -> QueryResult<()> {
    let keys = [
        format!("user:{}", user.0),
        format!("login:{}", username.to_lowercase()),
        format!("login:{}", email.to_lowercase()),
    ];
    diesel::delete(throttle::table.filter(throttle::key.eq_any(keys)))
        .execute(conn)
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logins_in_flight_from_one_address_are_not_delayed_but_its_failures_are() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("idp.sqlite");
        let mut conn = kollegium_tenants::db::open_connection(&path).unwrap();
        kollegium_tenants::db::migrate(&mut conn, &crate::IDP_DB, &path).unwrap();
        let s = IdpSettings::default();
        let team: Vec<Keys> = (1..=12)
            .map(|i| Keys::new(Some(UserId(i)), &format!("mfa{i}"), "192.0.2.7"))
            .collect();
        // A whole team behind one NAT address, all in flight at once: no delay.
        for k in &team {
            assert_eq!(
                begin(&mut conn, k, &s, 100).unwrap(),
                Gate::Proceed {
                    delay: Duration::ZERO
                }
            );
        }
        for k in &team {
            succeeded(&mut conn, k, 1).unwrap();
        }
        // Failed attempts from the address do count: beyond `delay_after` they delay
        // everyone there, escalating.
        let guesser = Keys::new(None, "gibt-es-nicht", "192.0.2.7");
        let mut delays = Vec::new();
        for i in 0..(s.delay_after + 3) {
            let Gate::Proceed { delay } = begin(&mut conn, &team[0], &s, 200 + i).unwrap() else {
                panic!("locked too early");
            };
            delays.push(delay);
            succeeded(&mut conn, &team[0], 1).unwrap();
            begin(&mut conn, &guesser, &s, 200 + i).unwrap();
            failed(&mut conn, &guesser, &s, 200 + i).unwrap();
        }
        let n = s.delay_after as usize;
        assert!(delays[..=n].iter().all(Duration::is_zero), "{delays:?}");
        assert!(delays[n + 1] > Duration::ZERO, "{delays:?}");
        assert!(delays[n + 2] > delays[n + 1], "escalating: {delays:?}");
        // Another address is not affected.
        let elsewhere = Keys::new(Some(UserId(5)), "mfa5", "198.51.100.1");
        assert_eq!(
            begin(&mut conn, &elsewhere, &s, 300).unwrap(),
            Gate::Proceed {
                delay: Duration::ZERO
            }
        );
    }

    #[test]
    fn refused_attempts_are_not_counted_and_a_served_lock_clears_the_count() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("idp.sqlite");
        let mut conn = kollegium_tenants::db::open_connection(&path).unwrap();
        kollegium_tenants::db::migrate(&mut conn, &crate::IDP_DB, &path).unwrap();
        let s = IdpSettings::default();
        let keys = Keys::new(Some(UserId(1)), "anna", "192.0.2.1");
        let until = 100 + s.lockout_secs;
        for _ in 0..s.lockout_threshold {
            assert!(matches!(
                begin(&mut conn, &keys, &s, 100).unwrap(),
                Gate::Proceed { .. }
            ));
        }
        let locked = |newly| Gate::Locked {
            newly,
            account: true,
            until,
        };
        assert_eq!(begin(&mut conn, &keys, &s, 100).unwrap(), locked(true));
        for t in [101, 500, until - 1] {
            assert_eq!(begin(&mut conn, &keys, &s, t).unwrap(), locked(false));
        }
        // The account starts afresh (no delay: from another address, whose count of
        // failures is its own).
        let elsewhere = Keys::new(Some(UserId(1)), "anna", "192.0.2.2");
        assert_eq!(
            begin(&mut conn, &elsewhere, &s, until).unwrap(),
            Gate::Proceed {
                delay: Duration::ZERO
            }
        );
    }
}
