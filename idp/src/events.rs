//! Security events, kept in the practice's own `idp.sqlite` and shown to its admins.
//! Never a password, token or code in here.

use diesel::prelude::*;
use kollegium_tenants::UnixTime;

use crate::schema::security_events;
use crate::users::UserId;

/// Declares the event kinds: variant, stored value (kept as it is: rows written earlier
/// must still read), German label.
macro_rules! event_kinds {
    ($($variant:ident => $stored:literal, $label:literal;)*) => {
        /// Kinds of security events.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum EventKind {
            $($variant,)*
        }

        impl EventKind {
            /// Every kind, in the order the admins' filter lists them.
            pub const ALL: &'static [EventKind] = &[$(EventKind::$variant,)*];

            /// The value stored in `security_events.kind`.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(EventKind::$variant => $stored,)*
                }
            }

            /// The German label shown to admins.
            pub const fn label(self) -> &'static str {
                match self {
                    $(EventKind::$variant => $label,)*
                }
            }
        }

        /// Kinds of security events as stored, with their German labels.
        pub const KINDS: &[(&str, &str)] = &[$(($stored, $label),)*];
    };
}

event_kinds! {
    LoginOk => "login_ok", "Anmeldung erfolgreich";
    LoginFailed => "login_failed", "Anmeldung fehlgeschlagen";
    Lockout => "lockout", "Konto gesperrt (Fehlversuche)";
    Unlock => "unlock", "Konto entsperrt";
    Logout => "logout", "Abmeldung";
    PasswordChanged => "password_changed", "Passwort geändert";
    PasswordResetRequested => "password_reset_requested", "Passwort-Zurücksetzung angefordert";
    TotpEnabled => "totp_enabled", "Zwei-Faktor aktiviert";
    TotpDisabled => "totp_disabled", "Zwei-Faktor deaktiviert";
    RecoveryCodeUsed => "recovery_code_used", "Wiederherstellungscode verwendet";
    DevicePending => "device_pending", "Gerät wartet auf Freigabe";
    DeviceApproved => "device_approved", "Gerät freigegeben";
    DeviceRejected => "device_rejected", "Gerät abgelehnt";
    DeviceSuspended => "device_suspended", "Gerät gesperrt";
    DeviceRemoved => "device_removed", "Gerät entfernt";
    DeviceRenamed => "device_renamed", "Gerät benannt";
    UserInvited => "user_invited", "Benutzer eingeladen";
    UserUpdated => "user_updated", "Benutzer geändert";
    UserDisabled => "user_disabled", "Benutzer deaktiviert";
    UserEnabled => "user_enabled", "Benutzer aktiviert";
    UserDeleted => "user_deleted", "Benutzer gelöscht";
    SetupCompleted => "setup_completed", "Konto eingerichtet";
    SessionRevoked => "session_revoked", "Sitzung beendet";
    ClientCreated => "client_created", "Anwendung registriert";
    ClientUpdated => "client_updated", "Anwendung geändert";
    ClientSecretRotated => "client_secret_rotated", "Anwendungsgeheimnis erneuert";
    ConsentGiven => "consent_given", "Zustimmung erteilt";
    ConsentRevoked => "consent_revoked", "Zustimmung widerrufen";
    CodeReuse => "code_reuse", "Autorisierungscode wiederverwendet";
    RefreshReuse => "refresh_reuse", "Refresh-Token wiederverwendet";
    SettingsChanged => "settings_changed", "Einstellungen geändert";
    KeysRotated => "keys_rotated", "Signaturschlüssel erneuert";
}

impl EventKind {
    /// The kind of a stored value, if this version knows it.
    pub fn parse(stored: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|k| k.as_str() == stored)
    }
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The label of a stored kind (the stored value itself for a kind this version does not
/// know).
pub fn label(kind: &str) -> &str {
    EventKind::parse(kind).map_or(kind, |k| k.label())
}

/// The detail of a stored event in German words for the admins' log: the codes some
/// events keep (a login's stage, what was changed, a policy's values, a device's number)
/// are named; free text (a device's name, a lock's scope) is shown as it is.
pub fn detail_label(kind: &str, detail: &str) -> String {
    use crate::policy::{DevicePolicy, MfaPolicy};
    let fixed = match (EventKind::parse(kind), detail) {
        (_, "") => Some(""),
        (Some(EventKind::LoginOk), "active") => Some("angemeldet"),
        (Some(EventKind::LoginOk), "totp") => Some("Passwort richtig, Code aus der App folgt"),
        (Some(EventKind::LoginOk), "enroll") => {
            Some("Passwort richtig, Zwei-Faktor-Anmeldung wird eingerichtet")
        }
        (Some(EventKind::LoginOk), "device") => Some("Passwort richtig, Gerät wartet auf Freigabe"),
        (Some(EventKind::LoginFailed), "totp") => Some("falscher Code aus der App"),
        (Some(EventKind::LoginFailed), "password_change") => {
            Some("falsches bisheriges Passwort beim Ändern des Passworts")
        }
        (Some(EventKind::LoginFailed), "totp_disable") => {
            Some("falsches Passwort beim Abschalten der Zwei-Faktor-Anmeldung")
        }
        (Some(EventKind::UserInvited), "owner") => {
            Some("Praxisleitung, bei der Einrichtung der Praxis")
        }
        (Some(EventKind::UserUpdated), "email") => Some("E-Mail-Adresse geändert"),
        (Some(EventKind::UserUpdated), "profile") => Some("eigenes Profil"),
        (Some(EventKind::SessionRevoked), "all others") => Some("alle anderen Sitzungen"),
        (Some(EventKind::Logout), "rp-initiated") => Some("über eine verbundene Anwendung"),
        (Some(EventKind::ClientUpdated), "edited") => Some("bearbeitet"),
        (Some(EventKind::ClientUpdated), "enable") => Some("aktiviert"),
        (Some(EventKind::ClientUpdated), "disable") => Some("deaktiviert"),
        (Some(EventKind::ClientSecretRotated), "rotate") => Some(""),
        _ => None,
    };
    if let Some(f) = fixed {
        return f.to_owned();
    }
    match EventKind::parse(kind) {
        Some(EventKind::SettingsChanged) => {
            let value = |key: &str| {
                detail
                    .split_whitespace()
                    .find_map(|p| p.strip_prefix(key)?.strip_prefix('='))
            };
            let devices = value("device_policy").and_then(DevicePolicy::parse);
            let mfa = value("mfa_policy").and_then(MfaPolicy::parse);
            match (devices, mfa) {
                (Some(d), Some(m)) => format!(
                    "Gerätefreigabe: {}; Zwei-Faktor-Anmeldung: {}",
                    d.label(),
                    m.label()
                ),
                _ => detail.to_owned(),
            }
        }
        Some(EventKind::ConsentGiven) => detail
            .split_whitespace()
            .map(|sc| crate::oidc::consent::describe(sc).map_or(sc, |(l, _)| l))
            .collect::<Vec<_>>()
            .join(", "),
        _ => match detail.strip_prefix("device ") {
            Some(rest) => {
                let (no, name) = rest.split_once(": ").unwrap_or((rest, ""));
                if no.bytes().all(|b| b.is_ascii_digit()) && !no.is_empty() {
                    if name.is_empty() {
                        format!("Gerät Nr. {no}")
                    } else {
                        format!("Gerät Nr. {no}: {name}")
                    }
                } else {
                    detail.to_owned()
                }
            }
            None => detail.to_owned(),
        },
    }
}

/// One event to record: `Event { user: Some(u), ..Event::new(EventKind::Lockout) }`.
#[derive(Debug, Clone)]
pub struct Event<'a> {
    pub kind: EventKind,
    pub user: Option<UserId>,
    pub actor: Option<UserId>,
    pub client_id: Option<&'a str>,
    pub ip: Option<&'a str>,
    pub detail: &'a str,
}

impl Event<'_> {
    /// An event of `kind` with no user, actor, client, address or detail yet.
    pub fn new(kind: EventKind) -> Self {
        Self {
            kind,
            user: None,
            actor: None,
            client_id: None,
            ip: None,
            detail: "",
        }
    }
}

pub fn record(conn: &mut SqliteConnection, now: UnixTime, e: &Event<'_>) -> QueryResult<()> {
    diesel::insert_into(security_events::table)
        .values((
            security_events::at.eq(now),
            security_events::kind.eq(e.kind.as_str()),
            security_events::user_id.eq(e.user.map(|u| u.0)),
            security_events::actor_id.eq(e.actor.map(|u| u.0)),
            security_events::client_id.eq(e.client_id),
            security_events::ip.eq(e.ip),
            security_events::detail.eq(e.detail),
        ))
        .execute(conn)
        .map(|_| ())
}

#[derive(Debug, Clone, Queryable)]
pub struct StoredEvent {
    pub id: i64,
    pub at: i64,
    pub kind: String,
    pub user_id: Option<i64>,
    pub actor_id: Option<i64>,
    pub client_id: Option<String>,
    pub ip: Option<String>,
    pub detail: String,
}

/// Filters of the admin event list. The filter form sends empty values for "Alle".
#[derive(Debug, Default, Clone, serde::Deserialize)]
pub struct Filter {
    pub kind: Option<String>,
    #[serde(default, deserialize_with = "empty_is_none")]
    pub user: Option<i64>,
    #[serde(default, deserialize_with = "empty_is_none")]
    pub before: Option<i64>,
}

/// An optional number where an empty value means none.
fn empty_is_none<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    let raw: Option<String> = serde::Deserialize::deserialize(d)?;
    match raw.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(v) => v.parse().map(Some).map_err(serde::de::Error::custom),
    }
}

pub fn list(conn: &mut SqliteConnection, f: &Filter, limit: i64) -> QueryResult<Vec<StoredEvent>> {
    let mut q = security_events::table.into_boxed();
    if let Some(k) = f.kind.as_deref().filter(|k| !k.is_empty()) {
        q = q.filter(security_events::kind.eq(k.to_owned()));
    }
    if let Some(u) = f.user {
        q = q.filter(
            security_events::user_id
                .eq(u)
                .or(security_events::actor_id.eq(u)),
        );
    }
    if let Some(b) = f.before {
        q = q.filter(security_events::id.lt(b));
    }
    q.order(security_events::id.desc()).limit(limit).load(conn)
}

pub fn count_kind(conn: &mut SqliteConnection, kind: &str) -> QueryResult<i64> {
    security_events::table
        .filter(security_events::kind.eq(kind))
        .count()
        .get_result(conn)
}

#[cfg(test)]
mod tests {
    use super::{EventKind, Filter, KINDS, detail_label, label};

    #[test]
    fn stored_codes_read_as_german_words() {
        let cases = [
            ("login_ok", "active", "angemeldet"),
            (
                "user_invited",
                "owner",
                "Praxisleitung, bei der Einrichtung der Praxis",
            ),
            ("user_updated", "email", "E-Mail-Adresse geändert"),
            ("session_revoked", "all others", "alle anderen Sitzungen"),
            ("device_removed", "device 3", "Gerät Nr. 3"),
            (
                "device_renamed",
                "device 3: Empfang-PC",
                "Gerät Nr. 3: Empfang-PC",
            ),
            (
                "settings_changed",
                "device_policy=approval mfa_policy=admins",
                "Gerätefreigabe: Neue Geräte brauchen eine Freigabe; \
                 Zwei-Faktor-Anmeldung: Pflicht für Administrator:innen",
            ),
            ("consent_given", "openid profile", "Anmeldung, Profil"),
            ("lockout", "Adresse", "Adresse"),
            (
                "device_pending",
                "Firefox 133 auf Linux",
                "Firefox 133 auf Linux",
            ),
            ("login_ok", "", ""),
        ];
        for (kind, detail, want) in cases {
            assert_eq!(detail_label(kind, detail), want, "{kind} {detail}");
        }
    }

    #[test]
    fn kinds_keep_their_stored_values_and_labels() {
        assert_eq!(EventKind::ALL.len(), KINDS.len());
        for (k, (stored, l)) in EventKind::ALL.iter().zip(KINDS) {
            assert_eq!((k.as_str(), k.label()), (*stored, *l));
            assert_eq!(EventKind::parse(stored), Some(*k));
        }
        assert_eq!(EventKind::Lockout.as_str(), "lockout");
        assert_eq!(EventKind::LoginFailed.as_str(), "login_failed");
        assert_eq!(label("lockout"), "Konto gesperrt (Fehlversuche)");
        assert_eq!(label("from_a_later_version"), "from_a_later_version");
        let mut seen = std::collections::HashSet::new();
        assert!(
            KINDS.iter().all(|(k, _)| seen.insert(*k)),
            "stored values are unique"
        );
    }

    #[test]
    fn empty_filter_values_are_no_filter() {
        let f: Filter = serde_urlencoded::from_str("kind=&user=&before=").unwrap();
        assert_eq!((f.user, f.before), (None, None));
        let f: Filter = serde_urlencoded::from_str("kind=lockout&user=3&before=10").unwrap();
        assert_eq!(
            (f.kind.as_deref(), f.user, f.before),
            (Some("lockout"), Some(3), Some(10))
        );
        assert!(serde_urlencoded::from_str::<Filter>("user=drei").is_err());
    }
}
