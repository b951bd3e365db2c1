//! The workspace's part in creating a practice.

use kollegium_tenants::kv;
use kollegium_tenants::provision::{BoxError, NewPractice, ProvisionHook, ProvisionReport};

use crate::PLATFORM_DB;
use crate::auth::rp::{REGISTRATION_FILE, sealed_file};

/// Creates and migrates `platform.sqlite` and stores the platform's client registration at
/// the practice IdP (sealed with the practice secret, in its own file so that a sign-in
/// start opens no database): the first-party client the IdP's hook put into the report,
/// which therefore runs first.
#[derive(Debug, Default)]
pub struct PlatformProvisioner;

impl ProvisionHook for PlatformProvisioner {
    fn step(&self) -> &'static str {
        "workspace"
    }

    fn provision(&self, p: &NewPractice<'_>, report: &mut ProvisionReport) -> Result<(), BoxError> {
        let mut conn = p.open_db(&PLATFORM_DB)?;
        kv::set(&mut conn, "created_at", &p.now.to_string())?;
        // Without it nobody could sign in to the workspace: fail the creation instead.
        let client = report
            .first_party_client
            .as_ref()
            .ok_or("no first-party client registered for the workspace")?;
        // The staging directory is synced as a whole before the practice counts.
        std::fs::write(
            p.dir.join(REGISTRATION_FILE),
            sealed_file(p.secret, &client.client_id, &client.secret),
        )?;
        for app in crate::apps() {
            app.provision(&mut conn, p)?;
        }
        Ok(())
    }
}
