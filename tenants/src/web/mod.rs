//! Request plumbing shared by the identity provider and the platform: host routing to a
//! [`Tenant`], security headers, CSRF protection, error pages, request ids, metrics,
//! static assets and the shell every page of a practice origin shares ([`shell`]).

pub mod assets;
pub mod blocking;
pub mod client_addr;
pub mod csrf;
pub mod errors;
pub mod headers;
pub mod host;
pub mod layout;
pub mod metrics;
pub mod next;
pub mod shell;

use std::sync::Arc;

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpMessage, HttpRequest};

pub use blocking::block;
pub use client_addr::{ClientAddr, TrustedProxies};
pub use csrf::CsrfToken;
pub use errors::{ErrorPage, WebError};
pub use host::{PathClass, RouteClass};
pub use layout::{Layout, NavItem, SearchField};
pub use next::{LocalPath, safe_next};

use crate::store::{Tenant, TenantStore};

/// `http` or `https` as seen by browsers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Https => "https",
        }
    }
}

/// Limits on what a request may carry.
#[derive(Debug, Clone)]
pub struct RequestLimits {
    /// Largest request body accepted by ordinary (non-upload) routes.
    pub max_body_bytes: usize,
    /// Largest urlencoded form body.
    pub max_form_bytes: usize,
    /// Largest request body on upload paths ([`WebSettings::upload_paths`]); the handler
    /// enforces its own, exact limit on the file while it streams.
    pub max_upload_bytes: usize,
}

impl Default for RequestLimits {
    fn default() -> Self {
        Self {
            max_body_bytes: 1024 * 1024,
            max_form_bytes: 64 * 1024,
            max_upload_bytes: 25 * 1024 * 1024 + 64 * 1024,
        }
    }
}

/// How the node is addressed from outside and what it accepts.
#[derive(Debug, Clone)]
pub struct WebSettings {
    pub base_domain: String,
    pub scheme: Scheme,
    /// Port in generated URLs; `None` when it is the scheme's default.
    pub public_port: Option<u16>,
    pub limits: RequestLimits,
    /// Paths (exact) where state-changing requests authenticate without cookies
    /// (OAuth token, revocation, introspection, back-channel logout): exempt from CSRF.
    pub csrf_exempt: Vec<&'static str>,
    /// Peers whose `X-Forwarded-For`/`Forwarded` name the client (see [`client_addr`]).
    pub trusted_proxies: TrustedProxies,
    /// Paths (exact) where the CSRF token may come in the `csrf_token` query parameter: an
    /// opt-in for multipart uploads, whose body the CSRF check does not read. Everywhere else
    /// a token in the query is ignored (URLs end up in logs, history and `Referer`). The
    /// composition lists the workspace's upload paths (a no-JS multipart form has no other
    /// place for the token before its body).
    pub csrf_query_token_paths: Vec<&'static str>,
    /// Paths (exact) of uploads, registered by their owners: their body may be up to
    /// `limits.max_upload_bytes` instead of `limits.max_body_bytes`.
    pub upload_paths: Vec<&'static str>,
    /// Path prefixes on practice origins with the class their requests are counted under
    /// (metrics, logs), registered by their owners at composition time; the rest is
    /// `platform`.
    pub path_classes: Vec<PathClass>,
}

impl WebSettings {
    fn port_suffix(&self) -> String {
        match (self.scheme, self.public_port) {
            (_, None) | (Scheme::Http, Some(80)) | (Scheme::Https, Some(443)) => String::new(),
            (_, Some(p)) => format!(":{p}"),
        }
    }

    /// `<scheme>://<slug>.<base>[:port]`
    pub fn practice_origin(&self, slug: &str) -> String {
        format!(
            "{}://{slug}.{}{}",
            self.scheme.as_str(),
            self.base_domain,
            self.port_suffix()
        )
    }

    /// `<scheme>://<base>[:port]`
    pub fn node_origin(&self) -> String {
        format!(
            "{}://{}{}",
            self.scheme.as_str(),
            self.base_domain,
            self.port_suffix()
        )
    }
}

/// Shared state of the plumbing, registered once with `app_data`.
pub struct WebContext {
    pub settings: WebSettings,
    pub store: Arc<TenantStore>,
    pub metrics: Arc<metrics::Metrics>,
    /// Poke after committing queued jobs (mail, ...) so the job worker runs them at once.
    pub jobs: Arc<crate::jobs::JobSignal>,
}

impl FromRequest for Tenant {
    type Error = WebError;
    type Future = std::future::Ready<Result<Self, WebError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(
            req.extensions()
                .get::<Tenant>()
                .cloned()
                .ok_or(WebError::NotFound),
        )
    }
}
