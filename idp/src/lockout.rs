//! What every check of a password or second factor does around the throttle: the keys
//! of an attempt (with the known-device exception), reserving it, the consequences of a
//! lock it caused (event, admins' mark, a mail to the account's owner) and the record of
//! a failure. One place, so the login, its second step, the password change and the
//! disabling of the second factor count and lock alike.

use diesel::SqliteConnection;
use diesel::prelude::*;
use kollegium_tenants::UnixTime;

use crate::devices;
use crate::events::{self, Event, EventKind};
use crate::mail::MailCtx;
use crate::schema::security_events;
use crate::state::IdpSettings;
use crate::throttle::{self, Gate, Keys, Scope};
use crate::users::{self, User, UserId};

/// The keys an attempt on `user` (or on the unknown name `login`) from `ip` counts under.
/// A browser whose device cookie names an approved device of an account with a second
/// factor counts per device (see [`throttle`]).
pub fn keys(
    conn: &mut SqliteConnection,
    user: Option<&User>,
    login: &str,
    ip: &str,
    device_cookie: Option<&str>,
) -> QueryResult<Keys> {
    let keys = Keys::new(user.map(|u| u.id), login, ip);
    let known = match (user, device_cookie) {
        (Some(u), Some(cookie)) if u.has_totp() => devices::approved(conn, u.id, cookie)?,
        _ => None,
    };
    Ok(match known {
        Some(device) => keys.on_known_device(device),
        None => keys,
    })
}

/// The event detail naming a lock's scope.
fn scope_detail(scope: Scope) -> &'static str {
    match scope {
        Scope::Pair => "Konto, von dieser Adresse",
        Scope::Account => "Konto, alle unbekannten Geräte",
        Scope::Address => "Adresse",
    }
}

/// Reserves an attempt. A lock this attempt caused is recorded: a `lockout` event; for an
/// existing account also the admins' mark (`locked_until`) and, once per lockout period
/// and kind of lock, a mail to its owner. Returns the gate and whether mail was queued
/// (the caller pokes the mail signal after commit).
pub fn reserve(
    conn: &mut SqliteConnection,
    keys: &Keys,
    user: Option<&User>,
    ip: &str,
    s: &IdpSettings,
    mail: &MailCtx,
    now: UnixTime,
) -> QueryResult<(Gate, bool)> {
    let gate = throttle::begin(conn, keys, s, now)?;
    let Gate::Locked {
        newly: true,
        scope,
        until,
    } = gate
    else {
        return Ok((gate, false));
    };
    let detail = scope_detail(scope);
    let mut mailed = false;
    match (scope, user) {
        // The address is locked: no account is to blame (or to lock, or to tell).
        (Scope::Address, _) => events::record(
            conn,
            now,
            &Event {
                ip: Some(ip),
                detail,
                ..Event::new(EventKind::Lockout)
            },
        )?,
        (Scope::Pair | Scope::Account, Some(u)) => {
            users::lock_until(conn, u.id, until)?;
            if !told_recently(conn, u.id, detail, s, now)? {
                crate::mail::account_locked(conn, mail, u, scope == Scope::Account, now)?;
                mailed = true;
            }
            events::record(
                conn,
                now,
                &Event {
                    user: Some(u.id),
                    ip: Some(ip),
                    detail,
                    ..Event::new(EventKind::Lockout)
                },
            )?;
        }
        // A name nobody has: nothing to record.
        (Scope::Pair | Scope::Account, None) => {}
    }
    Ok((gate, mailed))
}

/// Whether the owner of `user` was already told about a lock of this kind within the
/// lockout period (a guesser moving from address to address must not flood the inbox).
fn told_recently(
    conn: &mut SqliteConnection,
    user: UserId,
    detail: &str,
    s: &IdpSettings,
    now: UnixTime,
) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        security_events::table
            .filter(security_events::kind.eq(EventKind::Lockout.as_str()))
            .filter(security_events::user_id.eq(user.0))
            .filter(security_events::detail.eq(detail))
            .filter(security_events::at.gt(now - s.lockout_secs)),
    ))
    .get_result(conn)
}

/// Records a failed check in one transaction: the account's failure count, the
/// address's failures (its delay) and a `login_failed` event with `detail`.
pub fn failed(
    conn: &mut SqliteConnection,
    keys: &Keys,
    user: Option<UserId>,
    ip: &str,
    detail: &str,
    s: &IdpSettings,
    now: UnixTime,
) -> QueryResult<()> {
    conn.immediate_transaction(|conn| {
        if let Some(u) = user {
            users::record_failure(conn, u, now)?;
        }
        throttle::failed(conn, keys, s, now)?;
        events::record(
            conn,
            now,
            &Event {
                user,
                ip: Some(ip),
                detail,
                ..Event::new(EventKind::LoginFailed)
            },
        )
    })
}
