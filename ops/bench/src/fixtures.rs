//! Practices, accounts and OAuth clients created in-process through the library, directly in
//! the data directory the server will use: practices exactly as `kollegium practice create`
//! does (same hooks, same registry), clients as `kollegium client add` does, accounts as the
//! test harness's `create_user` does (the IdP's own user repository and password hasher).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use kollegium::Config;
use kollegium::practices;
use kollegium::server::open_store;
use kollegium_idp::IDP_DB;
use kollegium_idp::oidc::clients::NewClient;
use kollegium_idp::users::{self, Profile};
use kollegium_tenants::provision::CreatePractice;
use kollegium_tenants::web::WebSettings;
use kollegium_tenants::{Slug, SystemClock, Tenant, TenantStore};

/// The slug of the `i`-th benchmark practice.
pub fn slug(i: usize) -> String {
    format!("praxis-{i:05}")
}

/// The node (registry and node key) of a data directory, opened by the load driver.
pub struct Node {
    store: Arc<TenantStore>,
    web: WebSettings,
}

impl Node {
    /// Opens the node of `data_dir` for a server whose main listener is `listen`: the
    /// practices' origins (e.g. the platform's redirect URI at the IdP) use its port.
    pub fn open(data_dir: &Path, listen: SocketAddr) -> anyhow::Result<Self> {
        let config = Config {
            data_dir: data_dir.to_path_buf(),
            listen: listen.to_string(),
            ..Config::default()
        };
        let web = config.web_settings(listen.port(), Vec::new());
        let store = open_store(&config, Arc::new(SystemClock))?;
        Ok(Self { store, web })
    }

    /// Creates practice `slug`; returns how long `practices::create` took (including the
    /// wait for the registry lock, which nobody else holds here).
    pub fn create(&self, slug: &str) -> anyhow::Result<Duration> {
        let input = CreatePractice::parse(
            slug,
            &format!("Praxis {slug}"),
            &format!("inhaber@{slug}.example.org"),
        )?;
        let started = Instant::now();
        let mut conn = self.store.lock_registry()?;
        let now = self.store.clock().now();
        practices::create(
            self.store.data_dir(),
            self.store.node_key(),
            &mut conn,
            now,
            &self.web,
            &input,
            false,
            &[],
        )?;
        Ok(started.elapsed())
    }

    fn tenant(&self, slug: &str) -> anyhow::Result<Tenant> {
        let slug = Slug::parse(slug)?;
        self.store
            .tenant(&slug)?
            .with_context(|| format!("practice {slug} does not exist"))
    }

    /// Creates an active account `username` at practice `slug` whose password hash is
    /// `password_hash` (as the IdP's setup link stores it after the user chose a password).
    pub fn create_user(
        &self,
        slug: &str,
        username: &str,
        password_hash: &str,
    ) -> anyhow::Result<()> {
        let tenant = self.tenant(slug)?;
        let profile = Profile {
            username: username.into(),
            email: format!("{username}@{slug}.example.org"),
            display_name: format!("Bench {username}"),
            is_admin: false,
            roles: vec!["mfa".into()],
            ..Profile::default()
        }
        .validate()?;
        let now = self.store.clock().now();
        let mut conn = tenant.conn(&IDP_DB)?;
        let id = users::create_invited(&mut conn, &profile, false, now)??;
        users::set_password(&mut conn, id, password_hash, true, now)?;
        Ok(())
    }

    /// The stored password hash of `username` at practice `slug`.
    pub fn password_hash(&self, slug: &str, username: &str) -> anyhow::Result<Option<String>> {
        let tenant = self.tenant(slug)?;
        let mut conn = tenant.conn(&IDP_DB)?;
        Ok(users::by_login(&mut conn, username)?.and_then(|u| u.password_hash))
    }

    /// Registers a confidential third-party client with `redirect_uri` at practice `slug`
    /// (what `kollegium client add` does); returns its id and secret.
    pub fn add_client(
        &self,
        slug: &str,
        name: &str,
        redirect_uri: &str,
        signing_alg: kollegium_idp::oidc::jwt::Alg,
    ) -> anyhow::Result<(String, String)> {
        let mut input = NewClient::parse(name, &[redirect_uri.to_owned()], true)?;
        input.signing_alg = signing_alg;
        let now = self.store.clock().now();
        let created = practices::add_client(&self.store, &Slug::parse(slug)?, &input, now)?;
        let secret = created
            .secret
            .context("a confidential client was registered without a secret")?;
        Ok((created.client_id, secret))
    }
}

/// Bytes allocated on disk under `dir` (recursively).
pub fn disk_usage(dir: &Path) -> std::io::Result<u64> {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d)? {
            let entry = entry?;
            let meta = entry.metadata()?;
            total += meta.blocks() * 512;
            if meta.is_dir() {
                stack.push(entry.path());
            }
        }
    }
    Ok(total)
}
