//! Signing in: name, password and TOTP code in one form. Throttled with the IdP's own code
//! and numbers (`kollegium_idp::throttle` on the same-shaped `throttle` table of
//! `operator.sqlite`): per account and address pair, per account, per address, with the
//! escalating delay and the lockout. Unknown names cost a dummy hash and answer the same
//! as a wrong password. The password is checked between [`begin`] and [`finish`] on the
//! hashing threads.

use diesel::prelude::*;
use kollegium_idp::IdpSettings;
use kollegium_idp::throttle::{self, Gate, Keys};
use kollegium_idp::users::UserId;
use kollegium_tenants::UnixTime;

use super::accounts::{self, Account};
use super::{audit, sessions};

/// Why a sign-in was refused (German text for the form).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Wrong name, password or code, an account not set up or suspended: one answer.
    Wrong,
    /// Too many failed attempts.
    Locked,
}

impl Refusal {
    pub fn message(self) -> &'static str {
        match self {
            Self::Wrong => "Name, Passwort oder Code ist falsch.",
            Self::Locked => {
                "Zu viele Fehlversuche. Die Anmeldung ist vorübergehend gesperrt. Bitte versuchen Sie es später erneut."
            }
        }
    }

    pub fn status(self) -> actix_web::http::StatusCode {
        match self {
            Self::Wrong => actix_web::http::StatusCode::UNAUTHORIZED,
            Self::Locked => actix_web::http::StatusCode::TOO_MANY_REQUESTS,
        }
    }
}

/// A reserved attempt: the account named (if any), its throttle keys and the delay to
/// wait before checking the password.
#[derive(Debug)]
pub struct Attempt {
    pub account: Option<Account>,
    pub keys: Keys,
    pub delay: std::time::Duration,
}

/// Reserves an attempt of `name` from `ip`. A lock this attempt causes is audited once.
pub fn begin(
    conn: &mut SqliteConnection,
    s: &IdpSettings,
    now: UnixTime,
    name: &str,
    ip: &str,
) -> QueryResult<Result<Attempt, Refusal>> {
    conn.immediate_transaction(|conn| {
        let account = accounts::find(conn, name)?;
        let keys = Keys::new(account.as_ref().map(|a| UserId(a.id)), name, ip);
        Ok(
            gate(conn, s, now, account.as_ref(), &keys)?.map(|delay| Attempt {
                account,
                keys,
                delay,
            }),
        )
    })
}

/// The throttle's gate for `keys`: the delay before the check, or the lock (audited once,
/// for the account it locks).
fn gate(
    conn: &mut SqliteConnection,
    s: &IdpSettings,
    now: UnixTime,
    account: Option<&Account>,
    keys: &Keys,
) -> QueryResult<Result<std::time::Duration, Refusal>> {
    Ok(match throttle::begin(conn, keys, s, now)? {
        Gate::Proceed { delay } => Ok(delay),
        Gate::Locked { newly, .. } => {
            if newly && let Some(a) = account {
                audit::record(conn, now, &a.name, "operator.lockout", &a.name)?;
            }
            Err(Refusal::Locked)
        }
    })
}

/// Finishes an attempt whose password check said `password_ok`: checks the account's
/// state and the TOTP `code` (each step once) and starts a session. Returns the session's
/// token and the account's name.
pub fn finish(
    conn: &mut SqliteConnection,
    s: &IdpSettings,
    totp_key: &[u8; 32],
    now: UnixTime,
    attempt: &Attempt,
    password_ok: bool,
    code: &str,
) -> QueryResult<Result<(String, String), Refusal>> {
    conn.immediate_transaction(|conn| {
        let ok = match (&attempt.account, password_ok) {
            (Some(a), true) if a.is_active() => match accounts::totp_secret(totp_key, a) {
                Some(secret) => match kollegium_idp::totp::matching_step(&secret, code, now) {
                    Some(step) => accounts::consume_totp_step(conn, a.id, step)?,
                    None => false,
                },
                None => false,
            },
            _ => false,
        };
        let Some(account) = attempt.account.as_ref().filter(|_| ok) else {
            throttle::failed(conn, &attempt.keys, s, now)?;
            return Ok(Err(Refusal::Wrong));
        };
        throttle::succeeded(conn, &attempt.keys, 1)?;
        let token = start_session(conn, now, account)?;
        Ok(Ok((token, account.name.clone())))
    })
}

/// A new session for `account`, signed in or just set up: expired sessions are swept and the
/// sign-in is in the audit log. Returns the session token.
pub fn start_session(
    conn: &mut SqliteConnection,
    now: UnixTime,
    account: &accounts::Account,
) -> QueryResult<String> {
    sessions::sweep(conn, now)?;
    let token = sessions::create(conn, now, account.id)?;
    audit::record(conn, now, &account.name, "operator.sign_in", &account.name)?;
    Ok(token)
}

/// Reserves an attempt at the confirming code of a setup link for `account` from `ip`:
/// counted like a sign-in (a guessed code there is a guessed second factor), so wrong
/// codes lock the setup as they lock the sign-in.
pub fn begin_setup_code(
    conn: &mut SqliteConnection,
    s: &IdpSettings,
    now: UnixTime,
    account: &Account,
    ip: &str,
) -> QueryResult<Result<Keys, Refusal>> {
    let keys = Keys::new(Some(UserId(account.id)), &account.name, ip);
    Ok(gate(conn, s, now, Some(account), &keys)?.map(|_| keys))
}

/// The outcome of a setup code reserved with [`begin_setup_code`].
pub fn end_setup_code(
    conn: &mut SqliteConnection,
    s: &IdpSettings,
    now: UnixTime,
    keys: &Keys,
    ok: bool,
) -> QueryResult<()> {
    if ok {
        throttle::succeeded(conn, keys, 1)
    } else {
        throttle::failed(conn, keys, s, now)
    }
}
