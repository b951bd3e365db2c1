//! The workspace's part in creating a practice.

use kollegium_tenants::kv;
use kollegium_tenants::provision::{BoxError, NewPractice, ProvisionHook, ProvisionReport};

use crate::PLATFORM_DB;

/// Creates and migrates `platform.sqlite` with the practice's default settings.
#[derive(Debug, Default)]
pub struct PlatformProvisioner;

impl ProvisionHook for PlatformProvisioner {
    fn step(&self) -> &'static str {
        "workspace"
    }

    fn provision(
        &self,
        p: &NewPractice<'_>,
        _report: &mut ProvisionReport,
    ) -> Result<(), BoxError> {
        let mut conn = p.open_db(&PLATFORM_DB)?;
        kv::set(&mut conn, "created_at", &p.now.to_string())?;
        Ok(())
    }
}
