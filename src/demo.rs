//! `kollegium demo`: the demo practice with fixed sample data, on loopback only.

use diesel::SqliteConnection;
use kollegium_tenants::provision::{
    BoxError, CreatePractice, NewPractice, ProvisionHook, ProvisionReport,
};
use kollegium_tenants::{Slug, TenantStore, UnixTime, registry};

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
        let mut platform = p.open_db(&kollegium_platform::PLATFORM_DB)?;
        seed_workspace(&mut idp, &mut platform, p.now)?;
        Ok(())
    }
}

/// The demo users as workspace members, with the `sub` the IdP puts into their ID tokens
/// (so their first sign-in maps onto these rows), and sample rooms and messages.
fn seed_workspace(
    idp: &mut SqliteConnection,
    platform: &mut SqliteConnection,
    now: UnixTime,
) -> Result<(), BoxError> {
    use kollegium_platform::chat::rooms::{self, Visibility};
    use kollegium_platform::chat::{RoomId, messages};
    use kollegium_platform::members::{self, Claims, MemberId};

    let mut member = |username: &str| -> Result<MemberId, BoxError> {
        let u = kollegium_idp::users::by_login(idp, username)?
            .ok_or_else(|| format!("demo user {username} missing"))?;
        let mut roles = u.roles.clone();
        if u.is_admin {
            roles.push("admin".into());
        }
        let claims = Claims {
            sub: u.sub.clone(),
            preferred_username: u.username.clone(),
            name: u.display_name.clone(),
            email: u.email.clone(),
            roles,
            is_admin: u.is_admin,
            specialty: u.specialty.clone(),
            kv_region: u.kv_region.clone(),
            work_areas: u.work_areas.clone(),
        };
        Ok(members::upsert(platform, &claims, now)?.id)
    };
    let inhaber = member("inhaber")?;
    let mfa = member("mfa")?;
    let abrechnung = member("abrechnung")?;

    let start = now - 3 * 3600;
    let general = rooms::create_group(
        platform,
        inhaber,
        "Allgemein",
        "Alles, was das ganze Team betrifft",
        Visibility::Open,
        &[mfa, abrechnung],
        start,
    )?;
    let billing = rooms::create_group(
        platform,
        inhaber,
        "Abrechnung",
        "Quartalsabrechnung und Rückfragen der KV",
        Visibility::Private,
        &[abrechnung],
        start,
    )?;
    let direct = rooms::direct(platform, inhaber, mfa, start)?;
    let script: &[(RoomId, MemberId, &str)] = &[
        (
            general,
            inhaber,
            "Guten Morgen zusammen! Ab Montag gelten die neuen Sprechzeiten: \
             Mittwochnachmittag bleibt die Praxis geschlossen.",
        ),
        (
            general,
            mfa,
            "Danke! Ich passe die Ansage auf dem Anrufbeantworter an.",
        ),
        (
            general,
            abrechnung,
            "Erinnerung: Bitte die Überweisungsscheine bis Freitag **vollständig** einscannen.",
        ),
        (
            general,
            mfa,
            "Mache ich. Der Impfstoff-Kühlschrank wurde heute früh geprüft – alles im grünen Bereich.",
        ),
        (
            billing,
            abrechnung,
            "Die Quartalsabrechnung ist vorbereitet. Es fehlen noch drei Unterschriften.",
        ),
        (
            billing,
            inhaber,
            "Danke, ich unterschreibe heute nach der Sprechstunde.",
        ),
        (
            direct,
            inhaber,
            "Kannst du morgen früh die Blutabnahmen übernehmen?",
        ),
        (direct, mfa, "Ja, ich bin ab 7:30 Uhr da."),
    ];
    for (i, (room, author, body)) in script.iter().enumerate() {
        let r = rooms::by_id(platform, *room)?.ok_or("demo room missing")?;
        let at = start + 600 * (i as i64 + 1);
        messages::post(platform, &r, *author, body, None, at)?;
    }
    Ok(())
}

/// What `demo` prints once the server listens.
pub fn banner(practice_origin: &str, operator: std::net::SocketAddr) -> String {
    format!(
        "\nKollegium demo is running.\n\n  Demo practice:  {DEMO_NAME}\n  Open:           {practice_origin}/\n  Operator:       http://{operator}/metrics\n\n  Demo logins (password {pw} for each):\n    inhaber     Praxisleitung, Administrator:in\n    mfa         MFA\n    abrechnung  Abrechnung\n\nStop with Ctrl+C.\n",
        pw = kollegium_idp::demo::DEMO_PASSWORD
    )
}
