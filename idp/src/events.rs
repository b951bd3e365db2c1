//! Security events, kept in the practice's own `idp.sqlite` and shown to its admins.
//! Never a password, token or code in here.

use diesel::prelude::*;
use kollegium_tenants::UnixTime;

use crate::schema::security_events;
use crate::users::UserId;

/// Kinds of security events, with their German labels.
pub const KINDS: &[(&str, &str)] = &[
    ("login_ok", "Anmeldung erfolgreich"),
    ("login_failed", "Anmeldung fehlgeschlagen"),
    ("lockout", "Konto gesperrt (Fehlversuche)"),
    ("unlock", "Konto entsperrt"),
    ("logout", "Abmeldung"),
    ("password_changed", "Passwort geändert"),
    (
        "password_reset_requested",
        "Passwort-Zurücksetzung angefordert",
    ),
    ("totp_enabled", "Zwei-Faktor aktiviert"),
    ("totp_disabled", "Zwei-Faktor deaktiviert"),
    ("recovery_code_used", "Wiederherstellungscode verwendet"),
    ("device_pending", "Gerät wartet auf Freigabe"),
    ("device_approved", "Gerät freigegeben"),
    ("device_rejected", "Gerät abgelehnt"),
    ("device_suspended", "Gerät gesperrt"),
    ("device_removed", "Gerät entfernt"),
    ("device_renamed", "Gerät benannt"),
    ("user_invited", "Benutzer eingeladen"),
    ("user_updated", "Benutzer geändert"),
    ("user_disabled", "Benutzer deaktiviert"),
    ("user_enabled", "Benutzer aktiviert"),
    ("user_deleted", "Benutzer gelöscht"),
    ("setup_completed", "Konto eingerichtet"),
    ("session_revoked", "Sitzung beendet"),
    ("client_created", "Anwendung registriert"),
    ("client_updated", "Anwendung geändert"),
    ("client_secret_rotated", "Anwendungsgeheimnis erneuert"),
    ("consent_given", "Zustimmung erteilt"),
    ("consent_revoked", "Zustimmung widerrufen"),
    ("code_reuse", "Autorisierungscode wiederverwendet"),
    ("refresh_reuse", "Refresh-Token wiederverwendet"),
    ("settings_changed", "Einstellungen geändert"),
    ("keys_rotated", "Signaturschlüssel erneuert"),
];

pub fn label(kind: &str) -> &str {
    KINDS
        .iter()
        .find(|(k, _)| *k == kind)
        .map_or(kind, |(_, l)| l)
}

/// One event to record.
#[derive(Debug, Default, Clone)]
pub struct Event<'a> {
    pub kind: &'a str,
    pub user: Option<UserId>,
    pub actor: Option<UserId>,
    pub client_id: Option<&'a str>,
    pub ip: Option<&'a str>,
    pub detail: &'a str,
}

pub fn record(conn: &mut SqliteConnection, now: UnixTime, e: &Event<'_>) -> QueryResult<()> {
    diesel::insert_into(security_events::table)
        .values((
            security_events::at.eq(now),
            security_events::kind.eq(e.kind),
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
    use super::Filter;

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
