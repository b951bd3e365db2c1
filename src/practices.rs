//! Practice lifecycle with every app's provisioning hook wired in.

use std::path::Path;

use diesel::SqliteConnection;
use kollegium_idp::IdpProvisioner;
use kollegium_platform::PlatformProvisioner;
use kollegium_tenants::provision::{
    self, CreatePractice, Node, ProvisionError, ProvisionHook, ProvisionReport,
};
use kollegium_tenants::secrets::NodeKey;
use kollegium_tenants::web::WebSettings;
use kollegium_tenants::{Slug, UnixTime};

/// The hooks that initialise each app's database for a new practice, in order.
/// `mail_setup_link`: also queue the owner's setup link as mail (SMTP configured).
pub fn hooks(mail_setup_link: bool) -> Vec<&'static dyn ProvisionHook> {
    static IDP: IdpProvisioner = IdpProvisioner {
        mail_setup_link: false,
    };
    static IDP_MAIL: IdpProvisioner = IdpProvisioner {
        mail_setup_link: true,
    };
    static PLATFORM: PlatformProvisioner = PlatformProvisioner;
    let idp: &'static dyn ProvisionHook = if mail_setup_link { &IDP_MAIL } else { &IDP };
    vec![idp, &PLATFORM]
}

/// Creates a practice with every app initialised, plus `extra` hooks (tests inject faults).
/// With `mail_setup_link` the owner's setup link is also queued as mail.
#[allow(clippy::too_many_arguments)]
pub fn create(
    data_dir: &Path,
    node_key: &NodeKey,
    registry: &mut SqliteConnection,
    now: UnixTime,
    web: &WebSettings,
    input: &CreatePractice,
    mail_setup_link: bool,
    extra: &[&dyn ProvisionHook],
) -> Result<ProvisionReport, ProvisionError> {
    let mut all = hooks(mail_setup_link);
    all.extend_from_slice(extra);
    let origin_of = |slug: &Slug| web.practice_origin(slug.as_str());
    let mut node = Node {
        data_dir,
        origin_of: &origin_of,
        node_key,
        registry,
        now,
    };
    provision::create(&mut node, input, &all)
}

/// Which lifecycle change to make.
#[derive(Debug, Clone, Copy)]
pub enum Change<'a> {
    Suspend,
    Resume,
    Delete {
        confirm: &'a str,
    },
    /// The practice's time zone (every time its users see is shown in it).
    SetTimeZone(&'a kollegium_tenants::time::Zone),
}

pub fn change(
    data_dir: &Path,
    node_key: &NodeKey,
    registry: &mut SqliteConnection,
    now: UnixTime,
    slug: &Slug,
    change: Change<'_>,
) -> Result<(), ProvisionError> {
    // Lifecycle changes create no links, so no origin is needed.
    let origin_of = |slug: &Slug| slug.to_string();
    let mut node = Node {
        data_dir,
        origin_of: &origin_of,
        node_key,
        registry,
        now,
    };
    match change {
        Change::Suspend => provision::suspend(&mut node, slug),
        Change::Resume => provision::resume(&mut node, slug),
        Change::Delete { confirm } => provision::delete(&mut node, slug, confirm),
        Change::SetTimeZone(zone) => provision::set_time_zone(&mut node, slug, zone),
    }
}

/// Why an IdP administration command failed.
#[derive(Debug, thiserror::Error)]
pub enum IdpAdminError {
    #[error("no practice with slug {0:?}")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] kollegium_tenants::store::StoreError),
    #[error("database: {0}")]
    Db(#[from] diesel::result::Error),
    #[error(transparent)]
    Keys(#[from] kollegium_idp::oidc::keys::KeyError),
}

fn idp_conn(
    store: &kollegium_tenants::TenantStore,
    slug: &Slug,
) -> Result<kollegium_tenants::PooledConn, IdpAdminError> {
    let tenant = store
        .tenant(slug)?
        .ok_or_else(|| IdpAdminError::NotFound(slug.to_string()))?;
    Ok(tenant.conn(&kollegium_idp::IDP_DB)?)
}

/// `practice rotate-keys`: a new signing key; the previous ones stay published as long as
/// tokens they signed can live. Returns the new key id.
pub fn rotate_keys(
    store: &kollegium_tenants::TenantStore,
    slug: &Slug,
    settings: &kollegium_idp::IdpSettings,
    now: UnixTime,
) -> Result<String, IdpAdminError> {
    use kollegium_idp::{events, oidc::keys};
    let mut conn = idp_conn(store, slug)?;
    let overlap = settings
        .access_token_ttl_secs
        .max(settings.id_token_ttl_secs)
        + 300;
    let kid = keys::rotate(&mut conn, store.node_key(), slug.as_str(), now, overlap)?;
    events::record(
        &mut conn,
        now,
        &events::Event::new(events::EventKind::KeysRotated),
    )?;
    Ok(kid)
}

/// `client add`: registers a client. The secret (confidential clients) is returned once.
pub fn add_client(
    store: &kollegium_tenants::TenantStore,
    slug: &Slug,
    client: &kollegium_idp::oidc::clients::NewClient,
    now: UnixTime,
) -> Result<kollegium_idp::oidc::clients::Created, IdpAdminError> {
    use kollegium_idp::{events, oidc::clients};
    let mut conn = idp_conn(store, slug)?;
    let created = clients::create(&mut conn, client, now)?
        .map_err(|e| IdpAdminError::Invalid(e.to_string()))?;
    events::record(
        &mut conn,
        now,
        &events::Event {
            client_id: Some(&created.client_id),
            detail: &client.name,
            ..events::Event::new(events::EventKind::ClientCreated)
        },
    )?;
    Ok(created)
}
