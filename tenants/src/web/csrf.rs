//! CSRF protection for every state-changing request on a practice origin.
//!
//! Each browser gets a random, host-only CSRF cookie. The token that forms and scripts
//! send back is `HMAC(practice csrf key, cookie value)`, so it can neither be forged
//! without the practice secret nor carried from one practice to another. A state-changing
//! request (anything but GET/HEAD/OPTIONS) must carry the token in the `X-CSRF-Token`
//! header or the `csrf_token` form field, and, if it sends an `Origin`, that must be the
//! practice's own origin. The `csrf_token` query parameter counts only on the paths listed
//! in [`super::WebSettings::csrf_query_token_paths`] (multipart uploads).
//!
//! The operator console checks its forms with the same parts ([`cookie_value`],
//! [`supplied`], [`token_matches`]) under its own key, cookie and origin rule.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::cookie::{Cookie, SameSite};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::{Method, StatusCode, header};
use actix_web::middleware::Next;
use actix_web::web::BytesMut;
use actix_web::{FromRequest, HttpMessage, HttpRequest};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use futures_util::StreamExt;
use subtle::ConstantTimeEq;

use super::errors::{ErrorPage, Resend, WebError, is_secret_field};
use super::{Scheme, WebContext};
use crate::secrets::{hmac_sha256, random_token};
use crate::store::Tenant;

pub const FORM_FIELD: &str = "csrf_token";
pub const HEADER: &str = "x-csrf-token";

/// The CSRF token for the current request, to be embedded in forms (`csrf_token` field)
/// or sent by scripts in the `X-CSRF-Token` header.
#[derive(Debug, Clone)]
pub struct CsrfToken(pub String);

impl FromRequest for CsrfToken {
    type Error = WebError;
    type Future = std::future::Ready<Result<Self, WebError>>;
    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(
            req.extensions()
                .get::<CsrfToken>()
                .cloned()
                .ok_or(WebError::NotFound),
        )
    }
}

pub fn cookie_name(scheme: Scheme) -> &'static str {
    match scheme {
        Scheme::Https => "__Host-kollegium-csrf",
        Scheme::Http => "kollegium-csrf",
    }
}

fn token_for(tenant: &Tenant, cookie_value: &str) -> String {
    let key = tenant.secret().derive("csrf");
    B64.encode(hmac_sha256(key.as_ref(), cookie_value.as_bytes()))
}

fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

fn form_token(body: &[u8]) -> Option<String> {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
        .ok()?
        .into_iter()
        .find(|(k, _)| k == FORM_FIELD)
        .map(|(_, v)| v)
}

fn query_token(query: &str) -> Option<String> {
    serde_urlencoded::from_str::<Vec<(String, String)>>(query)
        .ok()?
        .into_iter()
        .find(|(k, _)| k == FORM_FIELD)
        .map(|(_, v)| v)
}

/// The browser's CSRF cookie value `name` (at least 16 and at most 64 characters, as this
/// code makes them), or a fresh one to set: `(value, fresh)`. A fresh cookie never passes a
/// check: the request cannot carry the token derived from it.
pub fn cookie_value(req: &ServiceRequest, name: &str) -> (String, bool) {
    match req
        .cookie(name)
        .map(|c| c.value().to_owned())
        .filter(|v| (16..=64).contains(&v.len()))
    {
        Some(v) => (v, false),
        None => (random_token(24), true),
    }
}

/// Why a form body could not be read for its token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFault {
    /// The body broke off.
    Incomplete,
    /// Larger than the limit.
    TooLarge,
}

/// A state-changing request with the token it supplies: the `X-CSRF-Token` header, else
/// `query` (a token from the query string, where the caller allows one), else for an
/// urlencoded form the `csrf_token` field of its body. A form body is read up to `limit`
/// bytes and put back for the handler (`body` keeps a copy).
pub struct Supplied {
    pub req: ServiceRequest,
    pub token: Option<String>,
    pub body: Option<actix_web::web::Bytes>,
}

/// Reads what `req` supplies as its CSRF token ([`Supplied`]); a body that breaks off or
/// exceeds `limit` is a [`BodyFault`], with the request to answer.
pub async fn supplied(
    req: ServiceRequest,
    query: Option<String>,
    limit: usize,
) -> Result<Supplied, (HttpRequest, BodyFault)> {
    let token = req
        .headers()
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or(query);
    let is_form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"));
    if token.is_some() || !is_form {
        return Ok(Supplied {
            req,
            token,
            body: None,
        });
    }
    let (http_req, mut payload) = req.into_parts();
    let mut body = BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let Ok(chunk) = chunk else {
            return Err((http_req, BodyFault::Incomplete));
        };
        if body.len() + chunk.len() > limit {
            return Err((http_req, BodyFault::TooLarge));
        }
        body.extend_from_slice(&chunk);
    }
    let body = body.freeze();
    Ok(Supplied {
        token: form_token(&body),
        req: ServiceRequest::from_parts(http_req, Payload::from(body.clone())),
        body: Some(body),
    })
}

/// Whether `supplied` is the `expected` token (compared in constant time) of a cookie the
/// browser already had.
pub fn token_matches(supplied: Option<&str>, expected: &str, fresh: bool) -> bool {
    !fresh && supplied.is_some_and(|s| bool::from(s.as_bytes().ct_eq(expected.as_bytes())))
}

/// Checks the request (buffering urlencoded bodies, bounded) and sets the cookie on the way out.
pub(super) async fn protect(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
    ctx: &WebContext,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let Some(tenant) = req.extensions().get::<Tenant>().cloned() else {
        return Ok(req.into_response(WebError::Internal.error_page()));
    };
    let name = cookie_name(ctx.settings.scheme);
    let (cookie_value, fresh) = cookie_value(&req, name);
    let expected = token_for(&tenant, &cookie_value);
    req.extensions_mut().insert(CsrfToken(expected.clone()));

    let mut req = req;
    if !is_safe(req.method()) && !ctx.settings.csrf_exempt.contains(&req.path()) {
        let own = ctx.settings.practice_origin(tenant.slug().as_str());
        if let Some(origin) = req.headers().get(header::ORIGIN)
            && origin.as_bytes() != own.as_bytes()
        {
            return Ok(req.into_response(ErrorPage::csrf().response()));
        }
        let opted_in = ctx.settings.csrf_query_token_paths.contains(&req.path());
        let query = opted_in.then(|| query_token(req.query_string())).flatten();
        let given = match supplied(req, query, ctx.settings.limits.max_form_bytes).await {
            Ok(given) => given,
            Err((http_req, fault)) => {
                let page = match fault {
                    BodyFault::Incomplete => ErrorPage::new(400),
                    BodyFault::TooLarge => ErrorPage::too_large(),
                };
                return Ok(ServiceResponse::new(http_req, page.response()));
            }
        };
        req = given.req;
        if !token_matches(given.token.as_deref(), &expected, fresh) {
            tracing::warn!(practice = %tenant.slug(), "state-changing request without valid CSRF token refused");
            // A form of our own page (same origin, said by the browser) keeps its input;
            // anything else gets no fresh token for its fields.
            let resend = given
                .body
                .filter(|_| same_origin(&req, &own))
                .and_then(|body| resend_of(&req, &body, &expected));
            let page = ErrorPage::stale_form(tenant.display_name(), resend).response();
            let mut res = req.into_response(page);
            if fresh {
                set_cookie(&mut res, name, cookie_value, ctx);
            }
            return Ok(res);
        }
    }
    let mut res = next.call(req).await?.map_into_boxed_body();
    // No cookie on a 404: an unknown practice's 404 has none, so a known practice's must
    // not either, or the cookie would tell which practices exist.
    if fresh && res.status() != StatusCode::NOT_FOUND {
        set_cookie(&mut res, name, cookie_value, ctx);
    }
    Ok(res)
}

fn set_cookie(res: &mut ServiceResponse<BoxBody>, name: &str, value: String, ctx: &WebContext) {
    let cookie = Cookie::build(name, value)
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(ctx.settings.scheme == Scheme::Https)
        .finish();
    if let Err(e) = res.response_mut().add_cookie(&cookie) {
        tracing::error!(error = %e, "cannot set CSRF cookie");
    }
}

/// Whether the browser says the request came from a page of `own` origin (`Origin`, or
/// `Sec-Fetch-Site: same-origin` where no `Origin` was sent).
fn same_origin(req: &ServiceRequest, own: &str) -> bool {
    match req.headers().get(header::ORIGIN) {
        Some(o) => o.as_bytes() == own.as_bytes(),
        None => req
            .headers()
            .get("sec-fetch-site")
            .is_some_and(|v| v.as_bytes() == b"same-origin"),
    }
}

/// Most fields a refused form keeps.
const MAX_KEPT_FIELDS: usize = 64;

/// The input of a refused form to send again with the fresh `token`: not for a form with a
/// password or code in it (those are never echoed into a page).
fn resend_of(req: &ServiceRequest, body: &[u8], token: &str) -> Option<Resend> {
    let pairs = serde_urlencoded::from_bytes::<Vec<(String, String)>>(body).ok()?;
    let fields: Vec<(String, String)> =
        pairs.into_iter().filter(|(k, _)| k != FORM_FIELD).collect();
    if fields.len() > MAX_KEPT_FIELDS || fields.iter().any(|(k, _)| is_secret_field(k)) {
        return None;
    }
    let action = req.uri().path_and_query().map(|p| p.as_str().to_owned())?;
    Some(Resend {
        action,
        fields,
        csrf: token.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_token_in_form_and_query() {
        assert_eq!(
            form_token(b"a=1&csrf_token=abc&b=2").as_deref(),
            Some("abc")
        );
        assert_eq!(form_token(b"a=1"), None);
        assert_eq!(query_token("csrf_token=x%2By").as_deref(), Some("x+y"));
    }

    #[test]
    fn secret_fields_are_recognised() {
        for name in [
            "password",
            "password_repeat",
            "current",
            "code",
            "client_secret",
        ] {
            assert!(is_secret_field(name), "{name}");
        }
        for name in ["display_name", "name", "body", "email", "roles"] {
            assert!(!is_secret_field(name), "{name}");
        }
    }
}
