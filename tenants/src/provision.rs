//! Creating, suspending, resuming and deleting practices.
//!
//! Creation is all-or-nothing: the practice directory is built under a staging name,
//! every app initialises its own database through a [`ProvisionHook`], and only then are
//! the registry row and the final directory name committed together. Any failure leaves
//! neither a registry row nor a directory behind.

use std::fs;
use std::path::{Path, PathBuf};

use diesel::{Connection, SqliteConnection};

use crate::clock::UnixTime;
use crate::db::{self, DbError, DbKind};
use crate::email::{Email, EmailError};
use crate::perms;
use crate::registry::{self, Practice, PracticeStatus};
use crate::secrets::{NodeKey, PracticeSecret, SecretsError, random_token};
use crate::slug::{Slug, SlugError};
use crate::store::practice_dir;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    #[error("invalid slug: {0}")]
    Slug(#[from] SlugError),
    #[error("invalid owner e-mail: {0}")]
    Email(#[from] EmailError),
    #[error("invalid practice name: {0}")]
    Name(&'static str),
    #[error("a practice with slug {0:?} already exists")]
    Exists(String),
    #[error("slug {0:?} belonged to a deleted practice and is not reused")]
    Tombstoned(String),
    #[error("no practice with slug {0:?}")]
    NotFound(String),
    #[error("practice {slug:?} is {status}; cannot {action}")]
    WrongStatus {
        slug: String,
        status: &'static str,
        action: &'static str,
    },
    #[error("confirmation does not match: pass --confirm {0}")]
    Confirm(String),
    #[error("setting up {step} failed: {source}")]
    Hook {
        step: &'static str,
        #[source]
        source: BoxError,
    },
    #[error("file system: {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("registry: {0}")]
    Registry(#[from] diesel::result::Error),
    #[error(transparent)]
    Secrets(#[from] SecretsError),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ProvisionError + '_ {
    move |source| ProvisionError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Everything a hook may use while a practice is being created.
pub struct NewPractice<'a> {
    pub slug: &'a Slug,
    pub display_name: &'a str,
    pub owner_email: &'a Email,
    /// The (staging) practice directory; its final name is only given at commit.
    pub dir: &'a Path,
    pub node_key: &'a NodeKey,
    pub secret: &'a PracticeSecret,
    /// The practice's public origin (`<scheme>://<slug>.<base>[:port]`) for links.
    pub origin: &'a str,
    pub now: UnixTime,
}

impl NewPractice<'_> {
    /// Opens (creating and migrating) this practice's database of `kind`, in the staging
    /// directory. Its commits are not synced one by one (`synchronous = OFF`): nothing of
    /// the staging directory counts before [`create`] has synced the whole tree once and
    /// committed the registry row, so the migrations and the hooks' rows need no fsync each
    /// (a creation made ~39 fsync calls, most of them these).
    pub fn open_db(&self, kind: &DbKind) -> Result<SqliteConnection, DbError> {
        use diesel::connection::SimpleConnection;
        let path = self.dir.join(kind.file);
        let mut conn = db::open_connection(&path)?;
        conn.batch_execute("PRAGMA synchronous = OFF")
            .map_err(|source| DbError::Pragma {
                path: path.display().to_string(),
                source,
            })?;
        db::migrate(&mut conn, kind, &path)?;
        Ok(conn)
    }
}

/// What hooks report back: lines for the operator (setup links), values for the caller
/// (e.g. the owner's setup link), and the first-party client one hook registers and a
/// later one stores.
#[derive(Debug, Default)]
pub struct ProvisionReport {
    pub notes: Vec<String>,
    pub values: std::collections::BTreeMap<String, String>,
    /// The practice's first-party OIDC client: set by the hook that registers it (the
    /// identity provider's), read by the hook of the app signing in with it (the
    /// workspace's). Never printed.
    pub first_party_client: Option<FirstPartyClient>,
}

/// The credentials of the practice's own confidential OIDC client at its identity
/// provider, as a value handed from one provisioning step to the next (not as keys in a
/// map of strings). `Debug` leaves the secret out.
#[derive(Clone, PartialEq, Eq)]
pub struct FirstPartyClient {
    pub client_id: String,
    pub secret: String,
}

impl std::fmt::Debug for FirstPartyClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FirstPartyClient")
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// An app's part in creating a practice. Hooks run in order inside the create step.
pub trait ProvisionHook: Send + Sync {
    /// Short name used in error messages ("identity provider", "workspace").
    fn step(&self) -> &'static str;
    fn provision(
        &self,
        practice: &NewPractice<'_>,
        report: &mut ProvisionReport,
    ) -> Result<(), BoxError>;
}

/// Validated input of `practice create`.
#[derive(Debug, Clone)]
pub struct CreatePractice {
    pub slug: Slug,
    pub display_name: String,
    pub owner_email: Email,
}

impl CreatePractice {
    pub fn parse(slug: &str, name: &str, owner_email: &str) -> Result<Self, ProvisionError> {
        let name = name.trim();
        if name.is_empty() {
            return Err(ProvisionError::Name("it must not be empty"));
        }
        if name.chars().count() > 120 {
            return Err(ProvisionError::Name("it must be at most 120 characters"));
        }
        if name.chars().any(char::is_control) {
            return Err(ProvisionError::Name(
                "it must not contain control characters",
            ));
        }
        Ok(Self {
            slug: Slug::parse(slug)?,
            display_name: name.to_owned(),
            owner_email: Email::parse(owner_email)?,
        })
    }
}

/// Node-level context for lifecycle operations (used by the CLI and the server alike).
pub struct Node<'a> {
    pub data_dir: &'a Path,
    /// Builds a practice's public origin from its slug.
    pub origin_of: &'a dyn Fn(&Slug) -> String,
    pub node_key: &'a NodeKey,
    pub registry: &'a mut SqliteConnection,
    pub now: UnixTime,
}

/// Creates a practice: directory, secrets, each app's database, registry row.
pub fn create(
    node: &mut Node<'_>,
    input: &CreatePractice,
    hooks: &[&dyn ProvisionHook],
) -> Result<ProvisionReport, ProvisionError> {
    let slug = &input.slug;
    if let Some(existing) = registry::find(node.registry, slug.as_str())? {
        return Err(match existing.status {
            PracticeStatus::Deleted => ProvisionError::Tombstoned(slug.to_string()),
            _ => ProvisionError::Exists(slug.to_string()),
        });
    }
    let tenants = node.data_dir.join("tenants");
    perms::create_dir_all(&tenants).map_err(io(&tenants))?;
    let final_dir = practice_dir(node.data_dir, slug);
    if final_dir.exists() {
        // A directory without a registry row: never adopt or overwrite it.
        return Err(ProvisionError::Exists(slug.to_string()));
    }
    let staging = tenants.join(format!(".staging-{slug}-{}", random_token(6)));
    let result = build_and_commit(node, input, hooks, &staging, &final_dir);
    if result.is_err() {
        let _ = fs::remove_dir_all(&staging);
    }
    result
}

fn build_and_commit(
    node: &mut Node<'_>,
    input: &CreatePractice,
    hooks: &[&dyn ProvisionHook],
    staging: &Path,
    final_dir: &Path,
) -> Result<ProvisionReport, ProvisionError> {
    perms::create_dir(staging).map_err(io(staging))?;
    for sub in ["files", "index", "outbox"] {
        let p = staging.join(sub);
        perms::create_dir(&p).map_err(io(&p))?;
    }
    let secret = PracticeSecret::generate();
    secret.store(node.node_key, &input.slug, staging)?;
    let origin = (node.origin_of)(&input.slug);
    let practice = NewPractice {
        origin: &origin,
        slug: &input.slug,
        display_name: &input.display_name,
        owner_email: &input.owner_email,
        dir: staging,
        node_key: node.node_key,
        secret: &secret,
        now: node.now,
    };
    let mut report = ProvisionReport::default();
    for hook in hooks {
        hook.provision(&practice, &mut report)
            .map_err(|source| ProvisionError::Hook {
                step: hook.step(),
                source,
            })?;
    }
    // The hooks' databases were written without a sync per commit (`open_db`): make the
    // whole staging tree durable once, before the registry row makes it count.
    sync_tree(staging).map_err(io(staging))?;
    let now = node.now;
    node.registry
        .transaction::<_, ProvisionError, _>(|conn| {
            registry::insert(conn, &input.slug, &input.display_name, now)?;
            // Rename inside the transaction: if it fails, the row is rolled back.
            fs::rename(staging, final_dir).map_err(io(final_dir))?;
            sync_dir(final_dir.parent().unwrap_or(final_dir));
            Ok(())
        })
        .inspect_err(|_| {
            // The commit itself failed after the rename: take the directory back out.
            if final_dir.exists() && !staging.exists() {
                let _ = fs::rename(final_dir, staging);
            }
        })?;
    Ok(report)
}

/// Syncs every regular file and directory under `root` (itself included) to the disk.
fn sync_tree(root: &Path) -> std::io::Result<()> {
    for entry in fs::read_dir(root)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            sync_tree(&entry.path())?;
        } else if kind.is_file() {
            fs::File::open(entry.path())?.sync_all()?;
        }
    }
    fs::File::open(root)?.sync_all()
}

fn sync_dir(dir: &Path) {
    if let Ok(f) = fs::File::open(dir) {
        let _ = f.sync_all();
    }
}

fn require(node: &mut Node<'_>, slug: &Slug) -> Result<Practice, ProvisionError> {
    match registry::find(node.registry, slug.as_str())? {
        Some(p) if p.status != PracticeStatus::Deleted => Ok(p),
        _ => Err(ProvisionError::NotFound(slug.to_string())),
    }
}

pub fn suspend(node: &mut Node<'_>, slug: &Slug) -> Result<(), ProvisionError> {
    let p = require(node, slug)?;
    if p.status != PracticeStatus::Active {
        return Err(ProvisionError::WrongStatus {
            slug: slug.to_string(),
            status: p.status.as_str(),
            action: "suspend",
        });
    }
    Ok(registry::set_status(
        node.registry,
        slug,
        PracticeStatus::Suspended,
        node.now,
    )?)
}

pub fn resume(node: &mut Node<'_>, slug: &Slug) -> Result<(), ProvisionError> {
    let p = require(node, slug)?;
    if p.status != PracticeStatus::Suspended {
        return Err(ProvisionError::WrongStatus {
            slug: slug.to_string(),
            status: p.status.as_str(),
            action: "resume",
        });
    }
    Ok(registry::set_status(
        node.registry,
        slug,
        PracticeStatus::Active,
        node.now,
    )?)
}

/// Sets the time zone of a live practice (active or suspended): its pages show times in it
/// from the next registry lookup on.
pub fn set_time_zone(
    node: &mut Node<'_>,
    slug: &Slug,
    zone: &crate::time::Zone,
) -> Result<(), ProvisionError> {
    require(node, slug)?;
    registry::set_time_zone(node.registry, slug, zone)?;
    Ok(())
}

/// Deletes a practice's data and keeps a tombstone so the slug is not silently reused.
/// `confirm` must repeat the slug.
pub fn delete(node: &mut Node<'_>, slug: &Slug, confirm: &str) -> Result<(), ProvisionError> {
    if confirm != slug.as_str() {
        return Err(ProvisionError::Confirm(slug.to_string()));
    }
    require(node, slug)?;
    registry::set_status(node.registry, slug, PracticeStatus::Deleted, node.now)?;
    let dir = practice_dir(node.data_dir, slug);
    if dir.exists() {
        let trash = dir.with_file_name(format!(".trash-{slug}-{}", random_token(6)));
        fs::rename(&dir, &trash).map_err(io(&dir))?;
        fs::remove_dir_all(&trash).map_err(io(&trash))?;
    }
    Ok(())
}

/// Paths of leftover staging or trash directories (for `practice list` diagnostics/tests).
pub fn leftovers(data_dir: &Path) -> Vec<PathBuf> {
    fs::read_dir(data_dir.join("tenants"))
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with(".staging-") || n.starts_with(".trash-"))
                })
                .collect()
        })
        .unwrap_or_default()
}
