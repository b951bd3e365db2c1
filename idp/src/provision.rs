//! The identity provider's part in creating a practice.

use kollegium_tenants::provision::{BoxError, NewPractice, ProvisionHook, ProvisionReport};

use kollegium_tenants::kv as settings;

use crate::IDP_DB;

/// Creates and migrates `idp.sqlite` and records who the owner will be.
#[derive(Debug, Default)]
pub struct IdpProvisioner;

impl ProvisionHook for IdpProvisioner {
    fn step(&self) -> &'static str {
        "identity provider"
    }

    fn provision(
        &self,
        p: &NewPractice<'_>,
        _report: &mut ProvisionReport,
    ) -> Result<(), BoxError> {
        let mut conn = p.open_db(&IDP_DB)?;
        settings::set(&mut conn, "owner_email", p.owner_email.as_str())?;
        settings::set(&mut conn, "created_at", &p.now.to_string())?;
        Ok(())
    }
}
