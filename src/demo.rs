//! `kollegium demo`: the demo practice with fixed sample data, on loopback only.

use kollegium_tenants::provision::{
    BoxError, CreatePractice, NewPractice, ProvisionHook, ProvisionReport,
};
use kollegium_tenants::{Slug, TenantStore, registry};

use crate::config::Config;

pub const DEMO_SLUG: &str = "praxis-demo";
pub const DEMO_NAME: &str = "Praxis Dr. Demo";
pub const DEMO_OWNER: &str = "inhaber@praxis-demo.example";

/// Demo mode serves fixed, published passwords: it must never be reachable from outside.
pub fn check_loopback(config: &Config) -> Result<(), String> {
    let listen = config.listen_addr().map_err(|e| e.to_string())?;
    let operator = config.operator_addr().map_err(|e| e.to_string())?;
    if !listen.ip().is_loopback() {
        return Err(format!(
            "configuration key `listen`: demo mode refuses to listen on the non-loopback address {listen}"
        ));
    }
    if !operator.ip().is_loopback() {
        return Err(format!(
            "configuration key `operator_listen`: demo mode refuses to listen on the non-loopback address {operator}"
        ));
    }
    Ok(())
}

/// Creates the demo practice unless it exists. Returns whether it was created.
pub fn ensure_demo(
    argon2: kollegium_idp::passwords::Argon2Params,
    store: &TenantStore,
    web: &kollegium_tenants::web::WebSettings,
) -> anyhow::Result<bool> {
    let slug = Slug::parse(DEMO_SLUG)?;
    if store
        .with_registry(|c| registry::find(c, slug.as_str()))?
        .is_some()
    {
        return Ok(false);
    }
    let input = CreatePractice::parse(DEMO_SLUG, DEMO_NAME, DEMO_OWNER)?;
    let now = store.clock().now();
    let seed = DemoSeed { argon2 };
    let mut conn = store.lock_registry()?;
    // Sample content is part of the create step: all of it or nothing.
    crate::practices::create(
        store.data_dir(),
        store.node_key(),
        &mut conn,
        now,
        web,
        &input,
        false,
        &[&seed],
    )?;
    drop(conn);
    store.invalidate(&slug);
    Ok(true)
}

/// Seeds the demo practice's sample data while it is being created.
struct DemoSeed {
    argon2: kollegium_idp::passwords::Argon2Params,
}

impl ProvisionHook for DemoSeed {
    fn step(&self) -> &'static str {
        "demo sample data"
    }

    fn provision(&self, p: &NewPractice<'_>, _: &mut ProvisionReport) -> Result<(), BoxError> {
        let hasher = kollegium_idp::passwords::Hasher::new(self.argon2)?;
        let mut idp = p.open_db(&kollegium_idp::IDP_DB)?;
        kollegium_idp::demo::seed(&mut idp, &hasher, p.now)?;
        Ok(())
    }
}

/// What `demo` prints once the server listens.
pub fn banner(practice_origin: &str, operator: std::net::SocketAddr) -> String {
    format!(
        "\nKollegium demo is running.\n\n  Demo practice:  {DEMO_NAME}\n  Open:           {practice_origin}/\n  Operator:       http://{operator}/metrics\n\n  Demo logins (password {pw} for each):\n    inhaber     Praxisinhaber:in, Administrator:in\n    mfa         MFA\n    abrechnung  Abrechnung\n\nStop with Ctrl+C.\n",
        pw = kollegium_idp::demo::DEMO_PASSWORD
    )
}
