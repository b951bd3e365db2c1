//! The one lockout path of every check of a password or second factor over HTTP (the
//! login, its second step, the password change, switching off the second factor): the
//! attempt is reserved under the throttle ([`lockout::keys`] and [`lockout::reserve`] in
//! one blocking call), a lockout notice it queued goes to the mail worker, and the
//! address's delay is waited out before the check. And why a login step refuses, with
//! status and message in one place ([`Refusal`]), so no status is chosen by comparing
//! message text.

use actix_web::http::StatusCode;
use actix_web::web;
use kollegium_tenants::web::WebContext;
use kollegium_tenants::{Tenant, UnixTime};

use crate::IDP_DB;
use crate::error::IdpResult;
use crate::lockout;
use crate::state::IdpState;
use crate::throttle::{Gate, Keys};
use crate::users::{self, User};

pub const WRONG_PASSWORD: &str = "Benutzername oder Passwort ist falsch.";
pub const LOCKED: &str = "Zu viele Fehlversuche. Die Anmeldung ist vorübergehend gesperrt. Bitte versuchen Sie es später erneut oder wenden Sie sich an Ihre Praxisleitung.";
pub const DISABLED: &str =
    "Ihr Konto ist deaktiviert. Bitte wenden Sie sich an Ihre Praxisleitung.";
pub const DEVICE_REFUSED: &str =
    "Dieses Gerät ist für Ihr Konto gesperrt. Bitte wenden Sie sich an Ihre Praxisleitung.";
pub const WRONG_CODE: &str = "Der Code ist falsch, abgelaufen oder wurde bereits verwendet.";

/// Why a login step refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Wrong user name or password (the same for names nobody has).
    WrongPassword,
    /// Too many failed attempts: locked for now.
    Locked,
    /// The account is disabled (or not set up).
    Disabled,
    /// This browser's device is rejected or suspended for the account.
    DeviceRefused,
    /// A wrong, expired or already used second-factor code.
    WrongCode,
}

impl Refusal {
    pub const fn status(self) -> StatusCode {
        match self {
            Self::Locked => StatusCode::TOO_MANY_REQUESTS,
            Self::DeviceRefused => StatusCode::FORBIDDEN,
            Self::WrongPassword | Self::Disabled | Self::WrongCode => StatusCode::UNAUTHORIZED,
        }
    }

    /// The German message shown on the form.
    pub const fn message(self) -> &'static str {
        match self {
            Self::WrongPassword => WRONG_PASSWORD,
            Self::Locked => LOCKED,
            Self::Disabled => DISABLED,
            Self::DeviceRefused => DEVICE_REFUSED,
            Self::WrongCode => WRONG_CODE,
        }
    }

    /// Whether the refusal ends the pending login (its session cookie is removed).
    pub const fn ends_login(self) -> bool {
        matches!(self, Self::DeviceRefused)
    }
}

/// Whose attempt it is.
pub enum Attempt {
    /// A login form's name (user name or e-mail address), perhaps of nobody.
    Name(String),
    /// A signed-in (or half signed-in) account, counted under `login`.
    Account { user: Box<User>, login: String },
}

/// An attempt that may go ahead: the account it is on (if any) and its throttle keys, to
/// record the outcome with ([`lockout::failed`] or [`crate::throttle::succeeded`]).
pub struct Reserved {
    pub user: Option<User>,
    pub keys: Keys,
}

/// Reserves an attempt from `ip` and waits out the address's delay; `Err(Refusal::Locked)`
/// if the attempt is locked out (the lock, its event and mail are recorded).
pub async fn reserve(
    tenant: &Tenant,
    state: &web::Data<IdpState>,
    ctx: &WebContext,
    attempt: Attempt,
    ip: &str,
    device_cookie: Option<String>,
    now: UnixTime,
) -> IdpResult<Result<Reserved, Refusal>> {
    let mail = crate::mail_ctx(tenant, ctx);
    let (t, st, ip) = (tenant.clone(), state.clone(), ip.to_owned());
    let (user, keys, gate, mailed) = kollegium_tenants::web::block(move || -> IdpResult<_> {
        let mut conn = t.conn(&IDP_DB)?;
        let (user, login) = match attempt {
            Attempt::Name(login) => (users::by_login(&mut conn, &login)?, login),
            Attempt::Account { user, login } => (Some(*user), login),
        };
        let keys = lockout::keys(
            &mut conn,
            user.as_ref(),
            &login,
            &ip,
            device_cookie.as_deref(),
        )?;
        let (gate, mailed) = lockout::reserve(
            &mut conn,
            &keys,
            user.as_ref(),
            &ip,
            &st.settings,
            &mail,
            now,
        )?;
        Ok((user, keys, gate, mailed))
    })
    .await??;
    if mailed {
        ctx.jobs.poke(tenant.slug(), &crate::IDP_DB); // the lockout notice was queued
    }
    match gate {
        Gate::Locked { .. } => return Ok(Err(Refusal::Locked)),
        Gate::Proceed { delay } if !delay.is_zero() => tokio::time::sleep(delay).await,
        Gate::Proceed { .. } => {}
    }
    Ok(Ok(Reserved { user, keys }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_refusal_has_its_own_status_and_message() {
        let all = [
            Refusal::WrongPassword,
            Refusal::Locked,
            Refusal::Disabled,
            Refusal::DeviceRefused,
            Refusal::WrongCode,
        ];
        let messages: std::collections::HashSet<_> = all.iter().map(|r| r.message()).collect();
        assert_eq!(messages.len(), all.len());
        assert_eq!(Refusal::Locked.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(Refusal::DeviceRefused.status(), StatusCode::FORBIDDEN);
        assert_eq!(Refusal::WrongCode.status(), StatusCode::UNAUTHORIZED);
        assert!(Refusal::DeviceRefused.ends_login() && !Refusal::WrongCode.ends_login());
    }
}
