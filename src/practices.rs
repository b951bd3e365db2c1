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
    Delete { confirm: &'a str },
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
    }
}
