//! Practices created in-process through the library, exactly as `kollegium practice create`
//! does (same hooks, same registry), directly in the data directory the server will use.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kollegium::Config;
use kollegium::practices;
use kollegium::server::open_store;
use kollegium_tenants::provision::CreatePractice;
use kollegium_tenants::web::WebSettings;
use kollegium_tenants::{SystemClock, TenantStore};

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
