//! What happens after a correct password: second factor, enrolment, device approval.

use diesel::SqliteConnection;
use diesel::result::QueryResult;
use kollegium_tenants::UnixTime;

use crate::devices::{self, DeviceStatus};
use crate::events::{self, Event, EventKind};
use crate::mail::MailCtx;
use crate::policy::{self, DevicePolicy};
use crate::sessions::{Origin, Stage};
use crate::users::User;

/// The stage a login reaches, and the device cookie to set if a new one was issued.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub stage: Stage,
    pub device_id: Option<i64>,
    pub new_device_cookie: Option<String>,
    /// The device exists but was rejected or suspended: refuse.
    pub device_refused: bool,
}

/// Decides the stage right after the password check.
pub fn after_password(
    conn: &mut SqliteConnection,
    user: &User,
    device_cookie: Option<&str>,
    origin: &Origin,
    mail: &MailCtx,
    now: UnixTime,
) -> QueryResult<Outcome> {
    if user.has_totp() {
        return Ok(Outcome {
            stage: Stage::Totp,
            device_id: None,
            new_device_cookie: None,
            device_refused: false,
        });
    }
    if policy::mfa(conn)?.requires(user.is_admin) {
        return Ok(Outcome {
            stage: Stage::Enroll,
            device_id: None,
            new_device_cookie: None,
            device_refused: false,
        });
    }
    after_second_factor(conn, user, device_cookie, origin, mail, now)
}

/// Decides the stage once the second factor (if any) is done: device approval or active.
pub fn after_second_factor(
    conn: &mut SqliteConnection,
    user: &User,
    device_cookie: Option<&str>,
    origin: &Origin,
    mail: &MailCtx,
    now: UnixTime,
) -> QueryResult<Outcome> {
    if policy::devices(conn)? == DevicePolicy::Off {
        return Ok(Outcome {
            stage: Stage::Active,
            device_id: None,
            new_device_cookie: None,
            device_refused: false,
        });
    }
    let existing = match device_cookie {
        Some(t) => devices::for_cookie(conn, user.id, t)?,
        None => None,
    };
    match existing {
        Some(d) => {
            devices::touch(conn, d.id, now)?;
            let (stage, refused) = match d.status {
                DeviceStatus::Approved => (Stage::Active, false),
                DeviceStatus::Pending => (Stage::Device, false),
                DeviceStatus::Suspended | DeviceStatus::Rejected => (Stage::Device, true),
            };
            Ok(Outcome {
                stage,
                device_id: Some(d.id),
                new_device_cookie: None,
                device_refused: refused,
            })
        }
        None => {
            // The server mints device identifiers. The browser's cookie is kept only if the
            // server issued it (to another account on a shared practice PC); any other
            // value (planted, empty, over-long, malformed) is replaced, never adopted.
            let kept = match device_cookie {
                Some(t) if devices::issued(conn, t)? => Some(t.to_owned()),
                _ => None,
            };
            let token = kept.clone().unwrap_or_else(devices::new_token);
            let d = devices::create_pending(conn, user.id, &token, origin, now)?;
            events::record(
                conn,
                now,
                &Event {
                    user: Some(user.id),
                    ip: Some(&origin.ip),
                    detail: &crate::sessions::describe_agent(&origin.user_agent),
                    ..Event::new(EventKind::DevicePending)
                },
            )?;
            crate::mail::device_waiting(conn, mail, now)?;
            Ok(Outcome {
                stage: Stage::Device,
                device_id: Some(d.id),
                new_device_cookie: kept.is_none().then_some(token),
                device_refused: false,
            })
        }
    }
}
