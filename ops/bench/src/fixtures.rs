//! Practices created in-process through the library, exactly as `kollegium practice create`
//! does (same hooks, same registry), directly in the data directory the server will use.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kollegium::Config;
use kollegium::practices;
use kollegium::server::open_store;
use kollegium_tenants::provision::CreatePractice;
use kollegium_tenants::{SystemClock, TenantStore};

/// The slug of the `i`-th benchmark practice.
pub fn slug(i: usize) -> String {
    format!("praxis-{i:05}")
}

/// The node (registry and node key) of a data directory, opened by the load driver.
pub struct Node {
    store: Arc<TenantStore>,
}

impl Node {
    pub fn open(data_dir: &Path) -> anyhow::Result<Self> {
        let config = Config {
            data_dir: data_dir.to_path_buf(),
            ..Config::default()
        };
        Ok(Self {
            store: open_store(&config, Arc::new(SystemClock))?,
        })
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
        let web = kollegium_tenants::web::WebSettings {
            base_domain: "localhost".into(),
            scheme: kollegium_tenants::web::Scheme::Http,
            public_port: None,
            limits: kollegium_tenants::web::RequestLimits::default(),
            csrf_exempt: Vec::new(),
        };
        practices::create(
            self.store.data_dir(),
            self.store.node_key(),
            &mut conn,
            now,
            &web,
            &input,
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
