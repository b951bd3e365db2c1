//! Server-to-server HTTP. Calls to `*.<base>` (a practice's IdP, from its platform) are
//! resolved to the node's own listener, so they work in development (`*.localhost`, which
//! glibc does not resolve) and behind a reverse proxy; other names use the system resolver.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

#[derive(Debug, Clone)]
struct NodeResolver {
    base: String,
    internal: IpAddr,
}

impl Resolve for NodeResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().trim_end_matches('.').to_ascii_lowercase();
        let ours = host == self.base || host.ends_with(&format!(".{}", self.base));
        let internal = self.internal;
        Box::pin(async move {
            if ours {
                let addrs: Addrs = Box::new(std::iter::once(SocketAddr::new(internal, 0)));
                return Ok(addrs);
            }
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let addrs: Addrs = Box::new(found.into_iter());
            Ok(addrs)
        })
    }
}

/// A client for server-to-server calls: no redirects followed (SSRF), short timeouts,
/// `*.<base>` resolved to `internal`.
pub fn node_client(base_domain: &str, internal: IpAddr) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .dns_resolver(Arc::new(NodeResolver {
            base: base_domain.to_ascii_lowercase(),
            internal,
        }))
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(5))
        // Every practice is its own host name: keep few idle connections, briefly, so a
        // node with thousands of practices does not hold a socket pair per practice.
        .pool_max_idle_per_host(1)
        .pool_idle_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(15))
        .user_agent("Kollegium")
        .build()
}
