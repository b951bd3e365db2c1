//! Practice policies of the IdP, stored in `settings`.

use diesel::SqliteConnection;
use diesel::result::QueryResult;
use kollegium_tenants::kv;

/// Who must use a second factor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MfaPolicy {
    Optional,
    Admins,
    Everyone,
}

impl MfaPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Optional => "optional",
            Self::Admins => "admins",
            Self::Everyone => "everyone",
        }
    }
    /// German label, as the admins' form and log name it.
    pub fn label(self) -> &'static str {
        match self {
            Self::Optional => "Freiwillig",
            Self::Admins => "Pflicht für Administrator:innen",
            Self::Everyone => "Pflicht für alle",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "optional" => Some(Self::Optional),
            "admins" => Some(Self::Admins),
            "everyone" => Some(Self::Everyone),
            _ => None,
        }
    }
    pub fn requires(self, is_admin: bool) -> bool {
        match self {
            Self::Optional => false,
            Self::Admins => is_admin,
            Self::Everyone => true,
        }
    }
}

/// Whether unknown browsers need an admin's approval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DevicePolicy {
    Off,
    Approval,
}

impl DevicePolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::Approval => "approval",
        }
    }
    /// German label, as the admins' form and log name it.
    pub fn label(self) -> &'static str {
        match self {
            Self::Off => "Aus – jedes Gerät darf sich anmelden",
            Self::Approval => "Neue Geräte brauchen eine Freigabe",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "off" => Some(Self::Off),
            "approval" => Some(Self::Approval),
            _ => None,
        }
    }
}

pub fn mfa(conn: &mut SqliteConnection) -> QueryResult<MfaPolicy> {
    Ok(kv::get(conn, "mfa_policy")?
        .and_then(|v| MfaPolicy::parse(&v))
        .unwrap_or(MfaPolicy::Optional))
}

pub fn devices(conn: &mut SqliteConnection) -> QueryResult<DevicePolicy> {
    Ok(kv::get(conn, "device_policy")?
        .and_then(|v| DevicePolicy::parse(&v))
        .unwrap_or(DevicePolicy::Off))
}

pub fn set_mfa(conn: &mut SqliteConnection, p: MfaPolicy) -> QueryResult<()> {
    kv::set(conn, "mfa_policy", p.as_str())
}

pub fn set_devices(conn: &mut SqliteConnection, p: DevicePolicy) -> QueryResult<()> {
    kv::set(conn, "device_policy", p.as_str())
}
