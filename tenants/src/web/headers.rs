//! The outermost middleware: request id, structured log line, metrics, security headers,
//! default `Cache-Control`, and friendly bodies for bare error responses.

use std::time::Instant;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, web};

use super::errors::{ErrorPage, json_error, wants_json};
use super::{RouteClass, Scheme, WebContext};
use crate::secrets::random_token;

/// The Content-Security-Policy of every page: no inline scripts or styles, nothing foreign.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; \
form-action 'self'";

/// [`CSP`] with form submissions also allowed to end at `origin`: browsers apply
/// `form-action` to the redirects that follow a form submission, so a form whose answer
/// redirects to another origin (the IdP's consent form, answered with a redirect to the
/// relying party) needs that origin. `None` unless `uri` starts with a plain
/// `http(s)://host[:port]` origin (nothing that could change the policy's meaning).
pub fn csp_with_form_target(uri: &str) -> Option<String> {
    let (scheme, rest) = uri.split_once("://")?;
    if scheme != "https" && scheme != "http" {
        return None;
    }
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']');
    if host.is_empty() || !host.chars().all(plain) {
        return None;
    }
    Some(format!("{CSP} {scheme}://{host}"))
}

const PERMISSIONS: &str = "accelerometer=(), camera=(), geolocation=(), gyroscope=(), \
magnetometer=(), microphone=(), payment=(), usb=(), interest-cohort=()";

/// Request-id carrying span field and response header.
pub const REQUEST_ID: &str = "x-request-id";

/// Largest request head (request line and header fields) answered by the application; a
/// larger one gets our 431 page with every security header. actix's HTTP/1 parser refuses
/// heads over 128 KiB or with more than 96 fields itself, before any middleware, with a
/// bare 431 (see ARCHITECTURE.md, "Security decisions"); this limit is well below that, so
/// oversized heads a browser can actually send (cookie bloat) get our answer.
pub const MAX_HEAD_BYTES: usize = 32 * 1024;

/// Size of the request head as sent (approximately: request line plus `name: value\r\n`).
fn head_bytes(req: &ServiceRequest) -> usize {
    let uri = req.uri();
    let target = uri.path().len() + uri.query().map_or(0, |q| q.len() + 1);
    let line = req.method().as_str().len() + target + 12;
    req.headers()
        .iter()
        .fold(line, |n, (k, v)| n + k.as_str().len() + v.len() + 4)
}

pub async fn plumbing(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let started = Instant::now();
    let ctx = req.app_data::<web::Data<WebContext>>().cloned();
    let request_id = random_token(9);
    let method = req.method().clone();
    let json = wants_json(req.headers());
    let span = tracing::info_span!("request", id = %request_id, %method);

    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let max = ctx.as_ref().map_or(usize::MAX, |c| {
        if c.settings.upload_paths.contains(&req.path()) {
            c.settings.limits.max_upload_bytes
        } else {
            c.settings.limits.max_body_bytes
        }
    }) as u64;
    let mut res = if head_bytes(&req) > MAX_HEAD_BYTES {
        let page = if json {
            json_error(actix_web::http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE)
        } else {
            ErrorPage::new(431).response()
        };
        req.into_response(page)
    } else if declared.is_some_and(|n| n > max) {
        // Refuse before reading a byte of the body.
        let page = if json {
            json_error(actix_web::http::StatusCode::PAYLOAD_TOO_LARGE)
        } else {
            ErrorPage::too_large().response()
        };
        req.into_response(page)
    } else {
        // Inner middleware answers every failure with a response; an `Err` here can only
        // come from actix itself and is rendered by it.
        next.call(req).await?.map_into_boxed_body()
    };

    let status = res.status();
    let is_bare = !res.headers().contains_key(header::CONTENT_TYPE)
        || res
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.starts_with("text/plain"));
    if (status.is_client_error() || status.is_server_error()) && is_bare {
        let replacement = if json {
            json_error(status)
        } else {
            ErrorPage::new(status.as_u16()).response()
        };
        let (req, old) = res.into_parts();
        let mut new = replacement;
        for (name, value) in old.headers() {
            if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
                new.headers_mut().append(name.clone(), value.clone());
            }
        }
        res = ServiceResponse::new(req, new);
    }
    if !json && super::errors::is_error_page(res.response()) {
        // In the practice's shell for a signed-in member, with a way back.
        let (req, page) = res.into_parts();
        let page = super::errors::into_shell(&req, page).await;
        res = ServiceResponse::new(req, page);
    }

    let https = ctx
        .as_ref()
        .is_some_and(|c| c.settings.scheme == Scheme::Https);
    let h = res.headers_mut();
    security_headers(h, https);
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        h.insert(HeaderName::from_static(REQUEST_ID), v);
    }

    let class = res
        .request()
        .extensions()
        .get::<RouteClass>()
        .copied()
        .unwrap_or(RouteClass::NODE);
    let elapsed = started.elapsed();
    if let Some(ctx) = &ctx {
        ctx.metrics.record(class.as_str(), status.as_u16(), elapsed);
    }
    // The route pattern, never the concrete path or query: those can carry tokens.
    let route = res.request().match_pattern().unwrap_or_else(|| "-".into());
    tracing::info!(
        parent: &span,
        class = class.as_str(),
        route = %route,
        status = status.as_u16(),
        latency_ms = elapsed.as_secs_f64() * 1000.0,
        "handled"
    );
    Ok(res)
}

/// The security headers of every response (each only where the response has not set its
/// own): CSP, nosniff, referrer policy, frame denial, permissions, cross-origin isolation,
/// `Cache-Control: no-store`, and HSTS on https. The practice origins get them from
/// [`plumbing`]; the operator console applies them to its own responses.
pub fn security_headers(h: &mut header::HeaderMap, https: bool) {
    let mut set_default = |name: HeaderName, value: &'static str| {
        if !h.contains_key(&name) {
            h.insert(name, HeaderValue::from_static(value));
        }
    };
    set_default(header::CONTENT_SECURITY_POLICY, CSP);
    set_default(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set_default(header::REFERRER_POLICY, "same-origin");
    set_default(header::X_FRAME_OPTIONS, "DENY");
    set_default(HeaderName::from_static("permissions-policy"), PERMISSIONS);
    set_default(
        HeaderName::from_static("cross-origin-opener-policy"),
        "same-origin",
    );
    set_default(
        HeaderName::from_static("cross-origin-resource-policy"),
        "same-origin",
    );
    set_default(header::CACHE_CONTROL, "no-store");
    if https {
        set_default(
            header::STRICT_TRANSPORT_SECURITY,
            "max-age=63072000; includeSubDomains",
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_form_target_is_a_plain_origin_or_nothing() {
        assert_eq!(
            csp_with_form_target("http://localhost:9000/callback?x=1").as_deref(),
            Some(format!("{CSP} http://localhost:9000").as_str())
        );
        assert_eq!(
            csp_with_form_target("https://tool.example/cb").as_deref(),
            Some(format!("{CSP} https://tool.example").as_str())
        );
        for bad in [
            "https://tool.example; script-src *",
            "https://tool example/cb",
            "javascript:alert(1)",
            "https:///cb",
            "ftp://tool.example/",
        ] {
            assert_eq!(csp_with_form_target(bad), None, "{bad}");
        }
    }
}
