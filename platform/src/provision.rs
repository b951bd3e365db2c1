//! The workspace's part in creating a practice.

use kollegium_tenants::kv;
use kollegium_tenants::provision::{BoxError, NewPractice, ProvisionHook, ProvisionReport};

use crate::PLATFORM_DB;
use crate::auth::rp::{CLIENT_ID_KEY, CLIENT_SECRET_KEY, SECRET_PURPOSE};

/// Report keys under which the IdP's hook hands over the platform's client registration.
pub const CLIENT_ID_VALUE: &str = "platform_client_id";
pub const CLIENT_SECRET_VALUE: &str = "platform_client_secret";

/// Creates and migrates `platform.sqlite` and stores the platform's client registration at
/// the practice IdP (the secret sealed with the practice secret). Runs after the IdP hook.
#[derive(Debug, Default)]
pub struct PlatformProvisioner;

impl ProvisionHook for PlatformProvisioner {
    fn step(&self) -> &'static str {
        "workspace"
    }

    fn provision(&self, p: &NewPractice<'_>, report: &mut ProvisionReport) -> Result<(), BoxError> {
        let mut conn = p.open_db(&PLATFORM_DB)?;
        kv::set(&mut conn, "created_at", &p.now.to_string())?;
        if let (Some(id), Some(secret)) = (
            report.values.get(CLIENT_ID_VALUE),
            report.values.get(CLIENT_SECRET_VALUE),
        ) {
            kv::set(&mut conn, CLIENT_ID_KEY, id)?;
            kv::set(
                &mut conn,
                CLIENT_SECRET_KEY,
                &p.secret
                    .seal(SECRET_PURPOSE, SECRET_PURPOSE, secret.as_bytes()),
            )?;
        }
        for app in crate::apps() {
            app.provision(&mut conn, p)?;
        }
        Ok(())
    }
}
