//! The identity provider's shared state and settings.

use std::sync::Arc;

use kollegium_tenants::SharedClock;

use crate::passwords::{Argon2Params, Hasher};

/// Tunables of the identity provider (`[idp]` in the configuration).
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
#[serde(default)]
pub struct IdpSettings {
    /// argon2id cost; lower only in tests, never in production.
    pub argon2: Argon2Params,
    /// Seconds without activity after which a session ends.
    pub session_idle_secs: i64,
    /// Seconds after login after which a session ends regardless of activity.
    pub session_absolute_secs: i64,
    /// Failed logins on one account from one client address (or one known device) before
    /// that address is locked out of that account.
    pub lockout_threshold: i64,
    /// Failed logins on one account from all addresses together before the account is
    /// locked for every browser but its known devices (see `throttle`).
    pub account_lockout_threshold: i64,
    /// Seconds a lock lasts (and the window failures are counted in).
    pub lockout_secs: i64,
    /// Failed logins from one client address before that address is locked.
    pub address_lockout_threshold: i64,
    /// Failures after which each further attempt is delayed (escalating, capped).
    pub delay_after: i64,
    /// Upper bound of the escalating delay, in milliseconds.
    pub max_delay_ms: u64,
    pub invite_ttl_secs: i64,
    pub reset_ttl_secs: i64,
    pub access_token_ttl_secs: i64,
    pub id_token_ttl_secs: i64,
    pub refresh_token_ttl_secs: i64,
    pub code_ttl_secs: i64,
    /// Let back-channel logout addresses reach loopback and private networks (demo,
    /// development, tests). Off in production: such addresses are refused (SSRF).
    pub allow_private_endpoints: bool,
}

impl Default for IdpSettings {
    fn default() -> Self {
        Self {
            argon2: Argon2Params::default(),
            session_idle_secs: 30 * 60,
            session_absolute_secs: 12 * 3600,
            lockout_threshold: 5,
            account_lockout_threshold: 100,
            lockout_secs: 15 * 60,
            address_lockout_threshold: 50,
            delay_after: 2,
            max_delay_ms: 4_000,
            invite_ttl_secs: 72 * 3600,
            reset_ttl_secs: 24 * 3600,
            access_token_ttl_secs: 5 * 60,
            id_token_ttl_secs: 5 * 60,
            refresh_token_ttl_secs: 30 * 24 * 3600,
            code_ttl_secs: 60,
            allow_private_endpoints: false,
        }
    }
}

/// Registered once with `app_data`.
pub struct IdpState {
    pub clock: SharedClock,
    pub hasher: Arc<Hasher>,
    pub settings: IdpSettings,
    /// OIDC provider runtime: signing key cache.
    pub oidc: crate::oidc::Runtime,
    /// Where the server may send requests on an admin's word (back-channel logout).
    pub egress: Arc<crate::oidc::egress::Egress>,
}

impl IdpState {
    pub fn new(
        clock: SharedClock,
        settings: IdpSettings,
    ) -> Result<Self, crate::passwords::HashError> {
        Ok(Self {
            clock,
            hasher: Arc::new(Hasher::new(settings.argon2)?),
            egress: Arc::new(crate::oidc::egress::Egress {
                allow_private: settings.allow_private_endpoints,
                ..Default::default()
            }),
            settings,
            oidc: crate::oidc::Runtime::default(),
        })
    }

    /// Tells the egress rules the node's base domain and bound listeners.
    #[must_use]
    pub fn with_node(mut self, base_domain: &str, listeners: Vec<std::net::SocketAddr>) -> Self {
        self.egress = Arc::new(crate::oidc::egress::Egress {
            allow_private: self.settings.allow_private_endpoints,
            base_domain: base_domain.to_ascii_lowercase(),
            listeners,
        });
        self
    }

    pub fn now(&self) -> kollegium_tenants::UnixTime {
        self.clock.now()
    }
}
