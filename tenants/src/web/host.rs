//! Host-based routing: `<slug>.<base>` is a practice, `<base>/<slug>` redirects there,
//! anything else is a 404 that does not reveal whether a practice exists.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::{HttpMessage, HttpResponse, web};

use super::errors::{ErrorPage, WebError};
use super::{WebContext, csrf};
use crate::registry::PracticeStatus;
use crate::slug::Slug;

/// What the `Host` header names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostKind {
    /// The base domain itself.
    Node,
    /// `<slug>.<base>` with a syntactically valid slug (it may still not exist).
    Practice(Slug),
    /// Anything else: other domains, nested labels, IP addresses, missing host.
    Other,
}

/// Classifies a `Host` header value against the base domain. Case-insensitive; the port is
/// ignored; a trailing dot, IP literals and nested labels are not ours.
pub fn classify_host(host: Option<&str>, base: &str) -> HostKind {
    let Some(host) = host else {
        return HostKind::Other;
    };
    let host = host.trim().to_ascii_lowercase();
    if host.starts_with('[') {
        return HostKind::Other;
    }
    let name = match host.rsplit_once(':') {
        Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) && !port.is_empty() => name,
        Some(_) => return HostKind::Other,
        None => host.as_str(),
    };
    if name == base {
        return HostKind::Node;
    }
    let Some(label) = name.strip_suffix(base).and_then(|p| p.strip_suffix('.')) else {
        return HostKind::Other;
    };
    match Slug::parse(label) {
        Ok(slug) => HostKind::Practice(slug),
        Err(_) => HostKind::Other,
    }
}

/// Coarse class of a request, used for metrics and logs (`class="…"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RouteClass(&'static str);

impl RouteClass {
    /// Requests to the base domain itself.
    pub const NODE: Self = Self("node");
    /// Practice paths no registered [`PathClass`] claims (the workspace).
    pub const PRACTICE: Self = Self("platform");
    /// Embedded assets (`/static/…`).
    pub const STATIC: Self = Self("static");
    /// Hosts that are neither the base domain nor a practice.
    pub const UNKNOWN_HOST: Self = Self("unknown_host");

    pub fn as_str(self) -> &'static str {
        self.0
    }

    fn of_practice_path(path: &str, classes: &[PathClass]) -> Self {
        if path.starts_with("/static/") {
            return Self::STATIC;
        }
        classes
            .iter()
            .find(|c| c.matches(path))
            .map_or(Self::PRACTICE, |c| Self(c.class))
    }
}

/// A path prefix on practice origins and the class its requests are counted under,
/// registered by its owner at composition time (the IdP's `/id`, an app's own prefix).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PathClass {
    /// `/id` matches `/id` and `/id/…`, not `/idx`.
    pub prefix: &'static str,
    pub class: &'static str,
}

impl PathClass {
    fn matches(&self, path: &str) -> bool {
        path.strip_prefix(self.prefix)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    }
}

fn host_header(req: &ServiceRequest) -> Option<String> {
    req.headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .or_else(|| req.uri().authority().map(|a| a.to_string()))
}

/// The tenant middleware. Wrap the app with `from_fn(host::resolve)`.
pub async fn resolve(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let Some(ctx) = req.app_data::<web::Data<WebContext>>().cloned() else {
        return Ok(req.into_response(WebError::Internal.error_page()));
    };
    let kind = classify_host(host_header(&req).as_deref(), &ctx.settings.base_domain);
    match kind {
        HostKind::Other => {
            req.extensions_mut().insert(RouteClass::UNKNOWN_HOST);
            Ok(req.into_response(ErrorPage::not_found().response()))
        }
        HostKind::Node => {
            let path = req.path().to_owned();
            if path.starts_with("/static/") {
                req.extensions_mut().insert(RouteClass::STATIC);
                return Ok(next.call(req).await?.map_into_boxed_body());
            }
            req.extensions_mut().insert(RouteClass::NODE);
            Ok(req.into_response(node_response(&ctx, &path)))
        }
        HostKind::Practice(slug) => {
            let class = RouteClass::of_practice_path(req.path(), &ctx.settings.path_classes);
            req.extensions_mut().insert(class);
            let store = ctx.store.clone();
            let found = match store.cached_tenant(&slug) {
                Some(hit) => Ok(hit),
                None => crate::web::block(move || store.tenant(&slug))
                    .await
                    .map_err(|_| ())
                    .and_then(|r| {
                        r.map_err(|e| {
                            tracing::error!(error = %e, "practice lookup failed");
                        })
                    }),
            };
            let tenant = match found {
                Ok(Some(t)) => t,
                Ok(None) => return Ok(req.into_response(ErrorPage::not_found().response())),
                Err(()) => return Ok(req.into_response(WebError::Internal.error_page())),
            };
            if tenant.status() == PracticeStatus::Suspended {
                return Ok(req.into_response(ErrorPage::suspended().response()));
            }
            req.extensions_mut().insert(tenant);
            csrf::protect(req, next, &ctx).await
        }
    }
}

fn node_response(ctx: &WebContext, path: &str) -> HttpResponse {
    if path == "/" {
        return super::errors::node_home();
    }
    // `<base>/<slug>` redirects to the practice for every well-formed slug, whether or
    // not it exists, so the redirect reveals nothing.
    let candidate = path.trim_start_matches('/').trim_end_matches('/');
    match Slug::parse(candidate) {
        Ok(slug) => HttpResponse::Found()
            .insert_header((
                header::LOCATION,
                format!("{}/", ctx.settings.practice_origin(slug.as_str())),
            ))
            .finish(),
        Err(_) => ErrorPage::not_found().response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> HostKind {
        HostKind::Practice(Slug::parse(s).unwrap())
    }

    #[test]
    fn classifies_hosts() {
        let b = "localhost";
        assert_eq!(classify_host(Some("praxis-a.localhost"), b), p("praxis-a"));
        assert_eq!(
            classify_host(Some("praxis-a.localhost:8080"), b),
            p("praxis-a")
        );
        assert_eq!(classify_host(Some("PRAXIS-A.LOCALHOST"), b), p("praxis-a"));
        assert_eq!(classify_host(Some("localhost:8080"), b), HostKind::Node);
        assert_eq!(
            classify_host(Some("praxis-a.localhost."), b),
            HostKind::Other
        );
        assert_eq!(classify_host(Some("a.b.localhost"), b), HostKind::Other);
        assert_eq!(
            classify_host(Some("x.praxis-a.localhost"), b),
            HostKind::Other
        );
        assert_eq!(classify_host(Some("evil.com"), b), HostKind::Other);
        assert_eq!(classify_host(Some("praxis-alocalhost"), b), HostKind::Other);
        assert_eq!(classify_host(Some("127.0.0.1:8080"), b), HostKind::Other);
        assert_eq!(classify_host(Some("[::1]:8080"), b), HostKind::Other);
        assert_eq!(classify_host(Some("www.localhost"), b), HostKind::Other);
        assert_eq!(
            classify_host(Some("praxis-a.localhost:abc"), b),
            HostKind::Other
        );
        assert_eq!(classify_host(None, b), HostKind::Other);
    }

    #[test]
    fn practice_paths_take_the_class_their_owner_registered() {
        let classes = [
            PathClass {
                prefix: "/id",
                class: "idp",
            },
            PathClass {
                prefix: "/files/sync",
                class: "files",
            },
        ];
        let class = |p| RouteClass::of_practice_path(p, &classes).as_str();
        assert_eq!(class("/id"), "idp");
        assert_eq!(class("/id/login"), "idp");
        assert_eq!(class("/idx"), "platform");
        assert_eq!(class("/files/sync/a.txt"), "files");
        assert_eq!(class("/files"), "platform");
        assert_eq!(class("/static/app.css"), "static");
        assert_eq!(class("/"), "platform");
        assert_eq!(
            RouteClass::of_practice_path("/id/x", &[]).as_str(),
            "platform"
        );
    }
}
