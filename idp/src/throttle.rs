//! Login throttling: every attempt is counted before the password is checked (so
//! parallel guesses cannot slip past the limit) under three keys, and failures beyond a
//! threshold are delayed with an escalating pause and then locked out for a while:
//!
//! - the **pair** of account and client address (`lockout_threshold`, 5): the lock a
//!   guesser runs into. It keeps that address away from that account and nobody else, so
//!   five wrong passwords from one place no longer lock the owner out everywhere;
//! - the **account** (`account_lockout_threshold`, 100): a ceiling across all addresses
//!   that stops a guesser spread over many addresses;
//! - the **address** (`address_lockout_threshold`, 50): one place guessing many accounts.
//!
//! A browser that is an approved device of an account with a second factor counts its
//! attempts per device instead of per address and is let past the account's ceiling and
//! the address's lock: the owner with password, code and known device still gets in while
//! the account is under attack from elsewhere. Its own guesses still lock it (per device),
//! and the password alone never gets it in.
//!
//! Accounts are keyed by user id when the login names one and by the login string
//! otherwise, so unknown names behave like known ones. A completed login clears its pair
//! and takes its own reservations back from the account and the address; it never wipes
//! what other addresses counted against the account.
//!
//! The escalating delay of a client address counts only attempts that failed, not those
//! still in flight: a practice's team behind one NAT address signing in at 8:00 is many
//! correct logins at once, not a guessing attack (before, the 4th login in flight waited
//! 500 ms, later ones up to 4 s). Reservations in flight still count towards the address's
//! lockout, so a flood of parallel guesses is still cut off.
//!
//! And it counts the *other accounts* that failed from the address, not failed attempts:
//! one person's typos slow down that person's own account (its pair), never the
//! colleagues signing in from the same practice address; a guesser trying name after name
//! from there is slowed down, and stopped by the address's lock. A completed login takes
//! its account off the address's list.
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
    /// `user:<id>`, or `login:<name>` for a name no account has: the ceiling.
    pub account: String,
    /// `ip:<address>`.
    pub address: String,
    /// The account together with the address, or with the known device.
    pub pair: String,
    /// An approved device of an account with a second factor (see the module comment).
    pub known_device: bool,
}

/// Separates the account from the address or device in a pair key.
const PAIR_SEP: char = '|';

impl Keys {
    /// The start of the keys counting, per account, the failed attempts from the address
    /// (for its delay).
    fn address_failures_prefix(&self) -> String {
        format!("failed-{}{PAIR_SEP}", self.address)
    }

    /// The key counting this account's failed attempts from the address.
    fn address_failures(&self) -> String {
        format!("{}{}", self.address_failures_prefix(), self.account)
    }

    pub fn new(user: Option<UserId>, login: &str, ip: &str) -> Self {
        let account = match user {
            Some(u) => format!("user:{}", u.0),
            None => format!("login:{}", login.trim().to_lowercase()),
        };
        let address = format!("ip:{ip}");
        Self {
            pair: format!("pair:{account}{PAIR_SEP}{address}"),
            account,
            address,
            known_device: false,
        }
    }

    /// Counts the attempt per `device` (an approved device of an account with a second
    /// factor; the caller checks that) instead of per address.
    pub fn on_known_device(self, device: i64) -> Self {
        Self {
            pair: format!("pair:{}{PAIR_SEP}device:{device}", self.account),
            known_device: true,
            ..self
        }
    }
}

/// Which lock refused an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// This account from this address (or known device).
    Pair,
    /// This account from anywhere but its known devices (the ceiling).
    Account,
    /// This address, whatever account it names.
    Address,
}

/// Outcome of reserving an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// Go ahead; wait this long first (escalating delay).
    Proceed { delay: Duration },
    /// Locked. `newly` is true when this attempt caused the lock (so that parallel attempts
    /// over a threshold report, mail and log one lockout, not several).
    Locked {
        newly: bool,
        scope: Scope,
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

/// How many accounts other than the one of `keys` failed from its address within the
/// window.
fn other_accounts_failed(
    conn: &mut SqliteConnection,
    keys: &Keys,
    window: i64,
    now: UnixTime,
) -> QueryResult<i64> {
    throttle::table
        .filter(
            throttle::key
                .like(like_prefix(&keys.address_failures_prefix()))
                .escape('\\'),
        )
        .filter(throttle::key.ne(keys.address_failures()))
        .filter(throttle::last_failure_at.ge(now - window))
        .filter(throttle::failures.gt(0))
        .count()
        .get_result(conn)
}

/// `s` escaped (with `\`) for a `LIKE` pattern.
fn like_escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

/// A `LIKE` pattern (escaped with `\`) matching every key that starts with `prefix`.
fn like_prefix(prefix: &str) -> String {
    format!("{}%", like_escape(prefix))
}

/// Records that a reserved attempt failed (wrong password or code), for the address's
/// delay (which counts the accounts failing there, see the module comment).
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
    // A known device is held back by its own pair only.
    let mut in_force = vec![(Scope::Pair, locked_until(conn, &keys.pair, now)?)];
    if !keys.known_device {
        in_force.push((Scope::Account, locked_until(conn, &keys.account, now)?));
        in_force.push((Scope::Address, locked_until(conn, &keys.address, now)?));
    }
    if let Some((scope, until)) = in_force
        .into_iter()
        .filter_map(|(scope, until)| until.map(|u| (scope, u)))
        .max_by_key(|(_, until)| *until)
    {
        return Ok(Gate::Locked {
            newly: false,
            scope,
            until,
        });
    }
    let window = s.lockout_secs;
    let pair = bump(conn, &keys.pair, window, now)?;
    let acct = bump(conn, &keys.account, window, now)?;
    let addr = bump(conn, &keys.address, window, now)?;
    let until = now + s.lockout_secs;
    let over = [
        (Scope::Pair, &keys.pair, pair > s.lockout_threshold),
        (
            Scope::Account,
            &keys.account,
            !keys.known_device && acct > s.account_lockout_threshold,
        ),
        (
            Scope::Address,
            &keys.address,
            !keys.known_device && addr > s.address_lockout_threshold,
        ),
    ];
    if let Some((scope, key, _)) = over.into_iter().find(|(_, _, over)| *over) {
        let newly = lock(conn, key, until, now)?;
        return Ok(Gate::Locked {
            newly,
            scope,
            until,
        });
    }
    // This attempt is number `pair` of its pair, the ones before it failed (or are
    // guesses in flight); the address counts the other accounts that failed there (not
    // attempts in flight, not this account's own typos), and does not slow a known device.
    let addr_failed = if keys.known_device {
        0
    } else {
        other_accounts_failed(conn, keys, window, now)?
    };
    let prior = (pair - 1).max(addr_failed);
    let delay = if prior > s.delay_after {
        let exp = (prior - s.delay_after).min(10) as u32;
        Duration::from_millis((250u64 << exp).min(s.max_delay_ms))
    } else {
        Duration::ZERO
    };
    Ok(Gate::Proceed { delay })
}

/// Takes `n` reservations back from `key` (not below zero).
fn release(conn: &mut SqliteConnection, key: &str, n: i64) -> QueryResult<()> {
    diesel::update(throttle::table.find(key))
        .set(throttle::failures.eq(throttle::failures - n))
        .execute(conn)?;
    diesel::update(throttle::table.find(key).filter(throttle::failures.lt(0)))
        .set(throttle::failures.eq(0))
        .execute(conn)
        .map(|_| ())
}

/// A completed login: the pair's count starts over, and the account and the address
/// forget the `attempts` reservations of this login (password, and code if there was
/// one). What other addresses counted against the account stays.
pub fn succeeded(conn: &mut SqliteConnection, keys: &Keys, attempts: i64) -> QueryResult<()> {
    diesel::delete(throttle::table.find(&keys.pair)).execute(conn)?;
    diesel::delete(throttle::table.find(keys.address_failures())).execute(conn)?;
    release(conn, &keys.account, attempts)?;
    release(conn, &keys.address, attempts)
}

/// Admin unlock (and a password set through a link): forgets everything counted against
/// the account, from every address and device, and its failures in the addresses' delays.
pub fn unlock(
    conn: &mut SqliteConnection,
    user: UserId,
    username: &str,
    email: &str,
) -> QueryResult<()> {
    let accounts = [
        format!("user:{}", user.0),
        format!("login:{}", username.to_lowercase()),
        format!("login:{}", email.to_lowercase()),
    ];
    diesel::delete(throttle::table.filter(throttle::key.eq_any(&accounts))).execute(conn)?;
    for account in &accounts {
        let pattern = like_prefix(&format!("pair:{account}{PAIR_SEP}"));
        diesel::delete(throttle::table.filter(throttle::key.like(pattern).escape('\\')))
            .execute(conn)?;
        let pattern = format!("failed-%{}", like_escape(&format!("{PAIR_SEP}{account}")));
        diesel::delete(throttle::table.filter(throttle::key.like(pattern).escape('\\')))
            .execute(conn)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Failures counted on `key` within the window.
    fn recent(
        conn: &mut SqliteConnection,
        key: &str,
        window: i64,
        now: UnixTime,
    ) -> QueryResult<i64> {
        Ok(throttle::table
            .find(key)
            .filter(throttle::last_failure_at.ge(now - window))
            .select(throttle::failures)
            .first::<i64>(conn)
            .optional()?
            .unwrap_or(0))
    }

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
        // Failed attempts from the address on name after name do count: beyond
        // `delay_after` names they delay everyone there, escalating.
        let mut delays = Vec::new();
        for i in 0..(s.delay_after + 3) {
            let Gate::Proceed { delay } = begin(&mut conn, &team[0], &s, 200 + i).unwrap() else {
                panic!("locked too early");
            };
            delays.push(delay);
            succeeded(&mut conn, &team[0], 1).unwrap();
            let guesser = Keys::new(None, &format!("gibt-es-nicht-{i}"), "192.0.2.7");
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
            scope: Scope::Pair,
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

    fn conn() -> (tempfile::TempDir, SqliteConnection) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("idp.sqlite");
        let mut conn = kollegium_tenants::db::open_connection(&path).unwrap();
        kollegium_tenants::db::migrate(&mut conn, &crate::IDP_DB, &path).unwrap();
        (dir, conn)
    }

    fn proceeds(g: Gate) -> bool {
        matches!(g, Gate::Proceed { .. })
    }

    #[test]
    fn a_pair_lock_keeps_one_address_away_and_the_ceiling_stops_many() {
        let (_dir, mut conn) = conn();
        let s = IdpSettings {
            account_lockout_threshold: 14,
            ..IdpSettings::default()
        };
        let anna = UserId(1);
        let from = |ip: &str| Keys::new(Some(anna), "anna", ip);
        // One address guesses: its pair locks, nobody else is held back.
        for _ in 0..s.lockout_threshold {
            assert!(proceeds(
                begin(&mut conn, &from("198.51.100.1"), &s, 100).unwrap()
            ));
        }
        let Gate::Locked {
            newly: true,
            scope: Scope::Pair,
            ..
        } = begin(&mut conn, &from("198.51.100.1"), &s, 100).unwrap()
        else {
            panic!("the sixth guess locks the pair");
        };
        let owner = from("192.0.2.50");
        assert_eq!(
            begin(&mut conn, &owner, &s, 101).unwrap(),
            Gate::Proceed {
                delay: Duration::ZERO
            },
            "the owner elsewhere is neither locked nor slowed"
        );
        succeeded(&mut conn, &owner, 1).unwrap();
        // More addresses join in: 6 counted from the first (the locking attempt too), 4
        // each from two more; the next one goes over the ceiling of 14.
        for ip in ["198.51.100.2", "198.51.100.3"] {
            for _ in 0..4 {
                assert!(proceeds(begin(&mut conn, &from(ip), &s, 102).unwrap()));
            }
        }
        assert_eq!(
            begin(&mut conn, &from("198.51.100.4"), &s, 103).unwrap(),
            Gate::Locked {
                newly: true,
                scope: Scope::Account,
                until: 103 + s.lockout_secs
            }
        );
        // Now every unknown place is refused, the owner's address included...
        assert!(matches!(
            begin(&mut conn, &owner, &s, 104).unwrap(),
            Gate::Locked {
                newly: false,
                scope: Scope::Account,
                ..
            }
        ));
        // ...but not the owner's known device, which counts on its own.
        let device = from("192.0.2.50").on_known_device(7);
        for _ in 0..s.lockout_threshold {
            assert!(proceeds(begin(&mut conn, &device, &s, 105).unwrap()));
            failed(&mut conn, &device, &s, 105).unwrap();
        }
        // Its own guesses still lock it (per device).
        assert!(matches!(
            begin(&mut conn, &device, &s, 106).unwrap(),
            Gate::Locked {
                newly: true,
                scope: Scope::Pair,
                ..
            }
        ));
        assert!(proceeds(
            begin(&mut conn, &from("192.0.2.50").on_known_device(8), &s, 106).unwrap()
        ));
    }

    #[test]
    fn a_known_device_passes_an_address_lock_and_success_keeps_other_counts() {
        let (_dir, mut conn) = conn();
        let s = IdpSettings {
            address_lockout_threshold: 3,
            ..IdpSettings::default()
        };
        let nat = "203.0.113.9";
        for (i, name) in ["a", "b", "c", "d"].into_iter().enumerate() {
            let g = begin(&mut conn, &Keys::new(None, name, nat), &s, 100).unwrap();
            assert_eq!(proceeds(g), i < 3, "{name}: {g:?}");
        }
        let ben = Keys::new(Some(UserId(2)), "ben", nat);
        assert!(matches!(
            begin(&mut conn, &ben, &s, 101).unwrap(),
            Gate::Locked {
                scope: Scope::Address,
                ..
            }
        ));
        let ben_known = ben.clone().on_known_device(3);
        assert!(proceeds(begin(&mut conn, &ben_known, &s, 101).unwrap()));
        // Other addresses' counts against ben stay after his login.
        let elsewhere = Keys::new(Some(UserId(2)), "ben", "198.51.100.9");
        assert!(proceeds(begin(&mut conn, &elsewhere, &s, 102).unwrap()));
        succeeded(&mut conn, &ben_known, 1).unwrap();
        assert_eq!(
            recent(&mut conn, &ben.account, s.lockout_secs, 103).unwrap(),
            1
        );
        assert_eq!(
            recent(&mut conn, &elsewhere.pair, s.lockout_secs, 103).unwrap(),
            1
        );
        assert_eq!(
            recent(&mut conn, &ben_known.pair, s.lockout_secs, 103).unwrap(),
            0
        );
    }

    #[test]
    fn unlock_forgets_every_pair_of_the_account_only() {
        let (_dir, mut conn) = conn();
        let s = IdpSettings::default();
        let user = UserId(4);
        let keys = [
            Keys::new(Some(user), "a_b", "198.51.100.1"),
            Keys::new(Some(user), "a_b", "198.51.100.2").on_known_device(9),
            Keys::new(None, "a_b", "198.51.100.3"),
            Keys::new(None, "a_b@praxis.example", "198.51.100.3"),
        ];
        let other = Keys::new(None, "axb", "198.51.100.3");
        for k in keys.iter().chain([&other]) {
            begin(&mut conn, k, &s, 100).unwrap();
        }
        unlock(&mut conn, user, "A_B", "a_b@praxis.example").unwrap();
        for k in &keys {
            assert_eq!(
                recent(&mut conn, &k.pair, s.lockout_secs, 100).unwrap(),
                0,
                "{k:?}"
            );
            assert_eq!(
                recent(&mut conn, &k.account, s.lockout_secs, 100).unwrap(),
                0
            );
        }
        assert_eq!(
            recent(&mut conn, &other.pair, s.lockout_secs, 100).unwrap(),
            1
        );
    }

    #[test]
    fn one_accounts_typos_do_not_slow_colleagues_at_the_same_address() {
        let (_dir, mut conn) = conn();
        let s = IdpSettings::default();
        let nat = "192.0.2.7";
        let anna = Keys::new(Some(UserId(1)), "anna", nat);
        let ben = Keys::new(Some(UserId(2)), "ben", nat);
        let zero = Gate::Proceed {
            delay: Duration::ZERO,
        };
        // Anna mistypes up to just below her pair's lock (one attempt left), and after each
        // failure ben signs in from the same address: never slowed down.
        let mut own = Vec::new();
        for t in 0..s.lockout_threshold - 1 {
            let Gate::Proceed { delay } = begin(&mut conn, &anna, &s, 100 + t).unwrap() else {
                panic!("anna locked too early");
            };
            own.push(delay);
            failed(&mut conn, &anna, &s, 100 + t).unwrap();
            assert_eq!(begin(&mut conn, &ben, &s, 100 + t).unwrap(), zero, "{t}");
            succeeded(&mut conn, &ben, 1).unwrap();
        }
        // Her own attempts are slowed down (her pair).
        let n = s.delay_after as usize;
        assert!(own[..=n].iter().all(Duration::is_zero), "{own:?}");
        assert!(own[n + 1] > Duration::ZERO, "{own:?}");
        // Two colleagues mistyping at once do not slow a third either.
        let carla = Keys::new(Some(UserId(3)), "carla", nat);
        begin(&mut conn, &carla, &s, 120).unwrap();
        failed(&mut conn, &carla, &s, 120).unwrap();
        assert_eq!(begin(&mut conn, &ben, &s, 121).unwrap(), zero);
        succeeded(&mut conn, &ben, 1).unwrap();
        // Anna gets it right: she no longer counts at the address; an unlock (or a new
        // password) forgets carla's failures there too.
        assert!(proceeds(begin(&mut conn, &anna, &s, 122).unwrap()));
        succeeded(&mut conn, &anna, 1).unwrap();
        assert_eq!(
            other_accounts_failed(&mut conn, &ben, s.lockout_secs, 123).unwrap(),
            1
        );
        unlock(&mut conn, UserId(3), "carla", "carla@praxis.example").unwrap();
        assert_eq!(
            other_accounts_failed(&mut conn, &ben, s.lockout_secs, 123).unwrap(),
            0
        );
    }
}
