//! What an admin does to an account (`/id/admin/users/{id}/{action}`), without HTTP. The
//! action is parsed at the edge ([`UserAction::parse`]); [`check`] decides whether this
//! admin may do it to that account; [`perform`] applies it together with its security
//! event (and mail) in one transaction.

use diesel::prelude::*;
use kollegium_tenants::UnixTime;

use crate::events::{self, Event, EventKind};
use crate::links::{self, LinkKind};
use crate::mail::MailCtx;
use crate::users::{self, User, UserId, UserStatus};
use crate::{oidc, sessions, throttle};

/// An admin's action on an account, named in the path as [`UserAction::as_str`] says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserAction {
    Disable,
    Enable,
    /// Lost phone and lost recovery codes: the second factor is switched off.
    ResetTotp,
    Unlock,
    /// Sends a link to set a new password.
    Reset,
    /// Sends an invited account's invitation again.
    Resend,
    Delete,
}

impl UserAction {
    pub const ALL: &'static [UserAction] = &[
        Self::Disable,
        Self::Enable,
        Self::ResetTotp,
        Self::Unlock,
        Self::Reset,
        Self::Resend,
        Self::Delete,
    ];

    /// The action's name in the path.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Disable => "disable",
            Self::Enable => "enable",
            Self::ResetTotp => "reset-totp",
            Self::Unlock => "unlock",
            Self::Reset => "reset",
            Self::Resend => "resend",
            Self::Delete => "delete",
        }
    }

    pub fn parse(name: &str) -> Result<Self, ActionError> {
        Self::ALL
            .iter()
            .copied()
            .find(|a| a.as_str() == name)
            .ok_or(ActionError::Unknown)
    }

    /// Whether the action queues a mail (the caller then pokes the mail worker).
    pub const fn mails(self) -> bool {
        matches!(self, Self::Reset | Self::Resend)
    }
}

/// Why an action was not performed.
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    #[error("Diese Aktion gibt es nicht.")]
    Unknown,
    #[error(
        "Das Konto der Praxisleitung und das eigene Konto können nicht deaktiviert oder \
         gelöscht werden."
    )]
    OwnerOrSelf,
    #[error("Die eigene Zwei-Faktor-Anmeldung schalten Sie in Ihrem Konto ab.")]
    OwnSecondFactor,
    /// Only the owner resets the owner's password or second factor (no take-over by a
    /// co-admin).
    #[error("Das kann nur die Praxisleitung selbst.")]
    OwnerOnly,
    #[error("Zum Löschen bitte den Benutzernamen eingeben.")]
    ConfirmDelete,
    #[error("Die Einladung lässt sich nur an eingeladene Konten erneut senden.")]
    NotInvited,
    #[error("database")]
    Db(#[from] diesel::result::Error),
}

/// Whether `admin` may perform `action` on `target`; `confirm` is what they typed to
/// confirm a deletion (the target's user name).
pub fn check(
    action: UserAction,
    admin: UserId,
    target: &User,
    confirm: Option<&str>,
) -> Result<(), ActionError> {
    let on_self = target.id == admin;
    if (target.is_owner || on_self) && matches!(action, UserAction::Disable | UserAction::Delete) {
        return Err(ActionError::OwnerOrSelf);
    }
    // One's own second factor is switched off with password and code, not as admin.
    if on_self && action == UserAction::ResetTotp {
        return Err(ActionError::OwnSecondFactor);
    }
    if target.is_owner && !on_self && matches!(action, UserAction::Reset | UserAction::ResetTotp) {
        return Err(ActionError::OwnerOnly);
    }
    if action == UserAction::Delete && confirm != Some(target.username.as_str()) {
        return Err(ActionError::ConfirmDelete);
    }
    Ok(())
}

/// How long the links an action sends stay valid.
#[derive(Debug, Clone, Copy)]
pub struct LinkTtls {
    pub invite_secs: i64,
    pub reset_secs: i64,
}

/// What became of the account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Done {
    Saved,
    Deleted,
}

/// Performs `action` by `admin` on `target` (already [`check`]ed) in one transaction: a
/// link is never issued without its mail, nothing without its event.
pub fn perform(
    conn: &mut SqliteConnection,
    now: UnixTime,
    admin: UserId,
    target: &User,
    action: UserAction,
    mail: &MailCtx,
    ttls: LinkTtls,
) -> Result<Done, ActionError> {
    let u = target;
    conn.immediate_transaction(|conn| {
        let event = |conn: &mut SqliteConnection, kind: EventKind| {
            events::record(
                conn,
                now,
                &Event {
                    user: Some(u.id),
                    actor: Some(admin),
                    ..Event::new(kind)
                },
            )
        };
        match action {
            UserAction::Disable => {
                users::set_status(conn, u.id, UserStatus::Disabled, now)?;
                sessions::end_all(conn, u.id, None, "account disabled", now)?;
                oidc::grants::revoke_all_for_user(conn, u.id, "account disabled", now)?;
                event(conn, EventKind::UserDisabled)?;
            }
            UserAction::Enable => {
                let status = if u.password_hash.is_some() {
                    UserStatus::Active
                } else {
                    UserStatus::Invited
                };
                users::set_status(conn, u.id, status, now)?;
                event(conn, EventKind::UserEnabled)?;
            }
            UserAction::ResetTotp => {
                // The user enrols again at next login if the policy requires it, or on the
                // account page.
                crate::mfa::disable(conn, u.id)?;
                event(conn, EventKind::TotpDisabled)?;
            }
            UserAction::Unlock => {
                users::clear_failures(conn, u.id)?;
                throttle::unlock(conn, u.id, &u.username, &u.email)?;
                event(conn, EventKind::Unlock)?;
            }
            UserAction::Reset => {
                let token = links::issue(conn, u.id, LinkKind::Reset, now, ttls.reset_secs)?;
                crate::mail::password_reset(conn, mail, u, &token, ttls.reset_secs / 3600, now)?;
                event(conn, EventKind::PasswordResetRequested)?;
            }
            UserAction::Resend => {
                if u.status != UserStatus::Invited {
                    return Err(ActionError::NotInvited);
                }
                let token = links::issue(conn, u.id, LinkKind::Invite, now, ttls.invite_secs)?;
                crate::mail::invitation(conn, mail, u, &token, ttls.invite_secs / 3600, now)?;
                event(conn, EventKind::UserInvited)?;
            }
            UserAction::Delete => {
                sessions::end_all(conn, u.id, None, "account deleted", now)?;
                oidc::grants::revoke_all_for_user(conn, u.id, "account deleted", now)?;
                event(conn, EventKind::UserDeleted)?;
                users::delete(conn, u.id)?;
                return Ok(Done::Deleted);
            }
        }
        Ok(Done::Saved)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_parse_by_their_path_names_only() {
        for a in UserAction::ALL {
            assert_eq!(UserAction::parse(a.as_str()).unwrap(), *a);
        }
        for bad in ["", "frobnicate", "Disable", "reset_totp", "delete "] {
            assert!(
                matches!(UserAction::parse(bad), Err(ActionError::Unknown)),
                "{bad}"
            );
        }
        assert!(UserAction::Reset.mails() && UserAction::Resend.mails());
        assert!(!UserAction::Disable.mails());
    }
}
