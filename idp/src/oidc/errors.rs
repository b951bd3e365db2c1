//! Errors of the OAuth/OIDC endpoints in the RFC shapes: JSON `{error, error_description}`
//! (RFC 6749 §5.2, RFC 6750 §3) for the back-channel endpoints, a German error page for
//! authorization requests that cannot safely be sent back to the client, and the redirect
//! back to the client (RFC 6749 §4.1.2.1 with `iss`, RFC 9207) for all other errors.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, ContentType};
use actix_web::{HttpResponse, ResponseError};
use askama::Template;
use kollegium_tenants::web::Layout;

use crate::error::IdpError;

/// An error of a token, revocation, introspection or userinfo request.
#[derive(Debug, thiserror::Error)]
#[error("{error}: {description}")]
pub struct OAuthError {
    pub status: StatusCode,
    pub error: &'static str,
    pub description: String,
    /// Value of `WWW-Authenticate` (401 and bearer errors).
    pub challenge: Option<String>,
}

impl OAuthError {
    pub fn new(status: StatusCode, error: &'static str, description: impl Into<String>) -> Self {
        Self {
            status,
            error,
            description: description.into(),
            challenge: None,
        }
    }
    pub fn invalid_request(d: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", d)
    }
    pub fn invalid_grant(d: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_grant", d)
    }
    pub fn invalid_scope(d: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_scope", d)
    }
    pub fn unauthorized_client(d: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "unauthorized_client", d)
    }
    /// Client authentication failed (401 with a Basic challenge).
    pub fn invalid_client(d: impl Into<String>) -> Self {
        Self {
            challenge: Some("Basic realm=\"kollegium\", charset=\"UTF-8\"".into()),
            ..Self::new(StatusCode::UNAUTHORIZED, "invalid_client", d)
        }
    }
    /// A bearer token was missing (no error code, RFC 6750 §3.1).
    pub fn bearer_missing() -> Self {
        Self {
            challenge: Some("Bearer realm=\"kollegium\"".into()),
            ..Self::new(
                StatusCode::UNAUTHORIZED,
                "invalid_request",
                "bearer token required",
            )
        }
    }
    /// A bearer token was invalid, expired or revoked.
    pub fn invalid_token(d: &str) -> Self {
        Self {
            challenge: Some(format!(
                "Bearer realm=\"kollegium\", error=\"invalid_token\", error_description=\"{d}\""
            )),
            ..Self::new(StatusCode::UNAUTHORIZED, "invalid_token", d)
        }
    }
    pub fn insufficient_scope(d: &str) -> Self {
        Self {
            challenge: Some(format!(
                "Bearer realm=\"kollegium\", error=\"insufficient_scope\", error_description=\"{d}\""
            )),
            ..Self::new(StatusCode::FORBIDDEN, "insufficient_scope", d)
        }
    }
    pub fn server_error() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "internal error",
        )
    }
}

impl From<IdpError> for OAuthError {
    fn from(e: IdpError) -> Self {
        kollegium_tenants::cause::log_5xx("oauth endpoint failed", &e);
        Self::server_error()
    }
}

impl From<diesel::result::Error> for OAuthError {
    fn from(e: diesel::result::Error) -> Self {
        IdpError::from(e).into()
    }
}

impl From<actix_web::error::BlockingError> for OAuthError {
    fn from(e: actix_web::error::BlockingError) -> Self {
        IdpError::from(e).into()
    }
}

impl From<kollegium_tenants::store::StoreError> for OAuthError {
    fn from(e: kollegium_tenants::store::StoreError) -> Self {
        IdpError::from(e).into()
    }
}

impl ResponseError for OAuthError {
    fn status_code(&self) -> StatusCode {
        self.status
    }
    fn error_response(&self) -> HttpResponse {
        let mut b = HttpResponse::build(self.status);
        b.insert_header((header::CACHE_CONTROL, "no-store"))
            .insert_header((header::PRAGMA, "no-cache"));
        if let Some(c) = &self.challenge {
            b.insert_header((header::WWW_AUTHENTICATE, c.clone()));
        }
        b.json(serde_json::json!({
            "error": self.error,
            "error_description": self.description,
        }))
    }
}

/// The German error page for requests that must not be redirected (unknown client,
/// unregistered redirect or logout address, malformed request).
#[derive(Template)]
#[template(path = "pages/idp/oidc_error.html")]
pub struct OidcErrorPage {
    pub layout: Layout,
    pub title: &'static str,
    pub message: &'static str,
}

/// Why a request is answered with an error page instead of a redirect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PageError {
    #[error("malformed request")]
    Malformed,
    #[error("unknown or disabled client")]
    UnknownClient,
    #[error("redirect uri not registered")]
    RedirectUri,
    #[error("post-logout redirect uri not registered")]
    PostLogoutUri,
    #[error("invalid id_token_hint")]
    IdTokenHint,
}

impl PageError {
    fn texts(self) -> (&'static str, &'static str) {
        match self {
            Self::Malformed => (
                "Ungültige Anmeldeanfrage",
                "Die Anfrage der Anwendung ist fehlerhaft (zu lange, doppelte oder ungültig kodierte Angaben). Bitte wenden Sie sich an den Anbieter der Anwendung.",
            ),
            Self::UnknownClient => (
                "Unbekannte Anwendung",
                "Diese Anwendung ist bei Ihrer Praxis nicht registriert oder wurde deaktiviert.",
            ),
            Self::RedirectUri => (
                "Unzulässige Rücksprungadresse",
                "Die Anwendung möchte Sie an eine Adresse zurückleiten, die für sie nicht registriert ist. Aus Sicherheitsgründen wurde die Anmeldung abgebrochen.",
            ),
            Self::PostLogoutUri => (
                "Unzulässige Rücksprungadresse",
                "Die Anwendung möchte Sie nach der Abmeldung an eine Adresse leiten, die für sie nicht registriert ist. Sie wurden nicht weitergeleitet.",
            ),
            Self::IdTokenHint => (
                "Ungültige Abmeldeanfrage",
                "Die Abmeldeanfrage der Anwendung konnte nicht geprüft werden.",
            ),
        }
    }

    pub fn response(self, practice: Option<&str>) -> HttpResponse {
        let (title, message) = self.texts();
        let mut layout = match practice {
            Some(p) => Layout::practice(p),
            None => Layout::plain(),
        };
        layout.csrf_token = None;
        let page = OidcErrorPage {
            layout,
            title,
            message,
        };
        match page.render() {
            Ok(body) => HttpResponse::BadRequest()
                .insert_header((header::CACHE_CONTROL, "no-store"))
                .content_type(ContentType::html())
                .body(body),
            Err(_) => HttpResponse::BadRequest().body(title),
        }
    }
}

/// An error sent back to the client's redirect URI.
pub fn redirect_error(
    redirect_uri: &str,
    error: &str,
    description: &str,
    state: Option<&str>,
    issuer: &str,
) -> HttpResponse {
    let mut params = vec![("error", error), ("error_description", description)];
    if let Some(s) = state {
        params.push(("state", s));
    }
    params.push(("iss", issuer));
    HttpResponse::Found()
        .insert_header((header::LOCATION, with_query(redirect_uri, &params)))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish()
}

/// `uri` with `params` appended to its query.
pub fn with_query(uri: &str, params: &[(&str, &str)]) -> String {
    let q = serde_urlencoded::to_string(params).unwrap_or_default();
    if q.is_empty() {
        return uri.to_owned();
    }
    let sep = if uri.contains('?') { '&' } else { '?' };
    format!("{uri}{sep}{q}")
}
