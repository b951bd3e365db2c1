//! Demo accounts for `kollegium demo` (never created outside demo mode).

use diesel::SqliteConnection;
use kollegium_tenants::UnixTime;

use crate::passwords::Hasher;
use crate::schema::users as users_t;
use crate::users::{self, Profile, UserId};

/// The fixed password of every demo account (documented in README.md).
pub const DEMO_PASSWORD: &str = "Demo-Praxis-2026";

/// (username, display name, role, admin, specialty, KV region)
type Account = (
    &'static str,
    &'static str,
    &'static str,
    bool,
    Option<&'static str>,
    Option<&'static str>,
);

pub const ACCOUNTS: &[Account] = &[
    (
        "inhaber",
        "Dr. Ines Inhaber",
        "praxisinhaber",
        true,
        Some("allgemeinmedizin"),
        Some("kv-nordrhein"),
    ),
    ("mfa", "Mia Fachmann", "mfa", false, None, None),
    (
        "abrechnung",
        "Anton Abrechnung",
        "abrechnung",
        false,
        None,
        Some("kv-nordrhein"),
    ),
];

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("database: {0}")]
    Db(#[from] diesel::result::Error),
    #[error("demo profile invalid: {0}")]
    Profile(#[from] users::ProfileError),
    #[error("demo client: {0}")]
    Client(String),
    #[error("hashing: {0}")]
    Hash(#[from] crate::passwords::HashError),
}

/// Creates the demo accounts; the practice owner (invited at creation) becomes `inhaber`.
pub fn seed(conn: &mut SqliteConnection, hasher: &Hasher, now: UnixTime) -> Result<(), DemoError> {
    use diesel::prelude::*;
    let hash = hasher.hash_blocking(DEMO_PASSWORD)?;
    let owner: Option<i64> = users_t::table
        .filter(users_t::is_owner.eq(true))
        .select(users_t::id)
        .first(conn)
        .optional()?;
    for (username, name, role, admin, specialty, kv) in ACCOUNTS {
        let profile = Profile {
            username: (*username).into(),
            email: format!("{username}@praxis-demo.example"),
            display_name: (*name).into(),
            is_admin: *admin,
            roles: vec![(*role).into()],
            specialty: specialty.map(Into::into),
            kv_region: kv.map(Into::into),
            work_areas: Vec::new(),
        }
        .validate()?;
        let id = match (owner, *username == "inhaber") {
            (Some(id), true) => {
                users::update_profile(conn, UserId(id), &profile, now)??;
                UserId(id)
            }
            _ => users::create_invited(conn, &profile, false, now)??,
        };
        users::set_password(conn, id, &hash, true, now)?;
    }
    // A sample third-party tool, so the start page has a tile and the registry an entry.
    let mut roster = crate::oidc::clients::NewClient::parse(
        "Dienstplan (Demo)",
        &["http://localhost:9000/callback".to_owned()],
        true,
    )
    .map_err(|e| DemoError::Client(e.to_string()))?;
    roster.client_id = Some("dienstplan-demo".into());
    roster.launch_url = crate::oidc::clients::RedirectUri::parse("http://localhost:9000/").ok();
    crate::oidc::clients::create(conn, &roster, now)?
        .map_err(|e| DemoError::Client(e.to_string()))?;
    Ok(())
}
