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

/// Coarse class of a request, used for metrics and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RouteClass {
    Node,
    Idp,
    Platform,
    Dav,
    Static,
    UnknownHost,
}

impl RouteClass {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Node => "node",
            Self::Idp => "idp",
            Self::Platform => "platform",
            Self::Dav => "dav",
            Self::Static => "static",
            Self::UnknownHost => "unknown_host",
        }
    }

    fn of_practice_path(path: &str) -> Self {
        if path == "/id" || path.starts_with("/id/") {
            Self::Idp
        } else if path == "/dav" || path.starts_with("/dav/") {
            Self::Dav
        } else if path.starts_with("/static/") {
            Self::Static
        } else {
            Self::Platform
        }
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
            req.extensions_mut().insert(RouteClass::UnknownHost);
            Ok(req.into_response(ErrorPage::not_found().response()))
        }
        HostKind::Node => {
            let path = req.path().to_owned();
            if path.starts_with("/static/") {
                req.extensions_mut().insert(RouteClass::Static);
                return Ok(next.call(req).await?.map_into_boxed_body());
            }
            req.extensions_mut().insert(RouteClass::Node);
            Ok(req.into_response(node_response(&ctx, &path)))
        }
        HostKind::Practice(slug) => {
            req.extensions_mut()
                .insert(RouteClass::of_practice_path(req.path()));
            let store = ctx.store.clone();
            let found = match store.cached_tenant(&slug) {
                Some(hit) => Ok(hit),
                None => web::block(move || store.tenant(&slug))
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
}
