//! The platform's 5xx causes: [`Internal`] keeps the source error, and [`log_5xx`] logs the
//! whole chain once where the answer is rendered. Every web error of the platform
//! (`AuthError`, the apps' `PageError`s and [`ApiError`], the sign-in routes) carries one.

pub use kollegium_tenants::cause::{BoxError, Internal, chain, log_5xx};

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};

/// A refusal of an app's JSON API: status and a German message, as
/// `{"error": <code>, "message": <text>}`. Each app turns its own errors into it (`From`).
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }
}

/// The answer to a JSON body an API cannot read (`web::JsonConfig::error_handler`): too
/// large (413), not JSON (415), malformed (400), each in German.
pub fn json_error(
    err: actix_web::error::JsonPayloadError,
    _: &actix_web::HttpRequest,
) -> actix_web::Error {
    use actix_web::error::JsonPayloadError;
    let e = match &err {
        JsonPayloadError::Overflow { .. } | JsonPayloadError::OverflowKnownLength { .. } => {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                "Die Anfrage ist zu groß.",
            )
        }
        JsonPayloadError::ContentType => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "content_type",
            "Bitte senden Sie JSON (Content-Type: application/json).",
        ),
        other => ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed",
            format!("Ungültiges JSON: {other}"),
        ),
    };
    e.into()
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }
    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status)
            .json(serde_json::json!({"error": self.code, "message": self.message}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("disk I/O error")]
    struct Root;

    #[derive(Debug, thiserror::Error)]
    #[error("database: {0}")]
    struct Wrapper(#[source] Root);

    #[test]
    fn a_page_error_renders_its_chain() {
        let e =
            crate::chat::routes::PageError::Internal(Internal::new("chat request", Wrapper(Root)));
        assert_eq!(chain(&e), "chat request: database: disk I/O error");
    }

    #[test]
    fn an_auth_error_renders_its_chain() {
        let e = crate::auth::session::AuthError::Internal(Internal::new(
            "reading the session",
            Wrapper(Root),
        ));
        assert_eq!(chain(&e), "reading the session: database: disk I/O error");
    }
}
