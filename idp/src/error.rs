//! The IdP's error type, mapped to a status and page (or RFC-shaped OAuth JSON) in one place.
//! Every 5xx keeps the error that caused it and is logged once, with the whole cause chain,
//! where its page is rendered.

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpResponse, ResponseError};
use kollegium_tenants::cause::{self, BoxError};
use kollegium_tenants::web::{ErrorPage, WebError};

pub use kollegium_tenants::cause::Internal;

#[derive(Debug, thiserror::Error)]
pub enum IdpError {
    /// Not signed in: browsers are sent to the login page, returning to `next`.
    #[error("login required")]
    LoginRequired { next: String },
    #[error("forbidden")]
    Forbidden,
    #[error("not found")]
    NotFound,
    #[error("bad request: {0}")]
    BadRequest(String),
    /// A request refused with a German explanation shown on the error page (400).
    #[error("{0}")]
    Refused(String),
    #[error("too many requests")]
    TooManyRequests,
    #[error("database")]
    Db(#[from] diesel::result::Error),
    #[error(transparent)]
    Web(#[from] WebError),
    #[error(transparent)]
    Store(#[from] kollegium_tenants::store::StoreError),
    #[error("blocking task failed")]
    Blocking(#[from] actix_web::error::BlockingError),
    #[error("template")]
    Template(#[from] askama::Error),
    /// Anything else that failed inside, with its cause.
    #[error(transparent)]
    Internal(#[from] Internal),
}

impl IdpError {
    /// `context` failed inside because of `source` (kept for the log).
    pub fn internal(context: &'static str, source: impl Into<BoxError>) -> Self {
        Self::Internal(Internal::new(context, source))
    }

    /// An internal failure without an underlying error (a broken invariant).
    pub fn invariant(context: &'static str) -> Self {
        Self::Internal(Internal::msg(context))
    }
}

pub type IdpResult<T> = Result<T, IdpError>;

impl From<crate::user_admin::ActionError> for IdpError {
    fn from(e: crate::user_admin::ActionError) -> Self {
        use crate::user_admin::ActionError;
        match e {
            ActionError::OwnerOnly => Self::Forbidden,
            ActionError::Db(e) => Self::Db(e),
            refused => Self::Refused(refused.to_string()),
        }
    }
}

impl ResponseError for IdpError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::LoginRequired { .. } => StatusCode::SEE_OTHER,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::BadRequest(_) | Self::Refused(_) => StatusCode::BAD_REQUEST,
            Self::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            Self::Web(e) => e.status_code(),
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            Self::LoginRequired { next } => {
                let q = serde_urlencoded::to_string([("next", next.as_str())]).unwrap_or_default();
                HttpResponse::SeeOther()
                    .insert_header((header::LOCATION, format!("/id/login?{q}")))
                    .finish()
            }
            Self::Refused(why) => {
                let mut page = ErrorPage::new(400);
                page.message = why.clone().into();
                page.response()
            }
            other => {
                let status = other.status_code();
                if status.is_server_error() {
                    cause::log_5xx("idp request failed", other);
                }
                ErrorPage::new(status.as_u16()).response()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_5xx_keeps_its_cause_chain() {
        let e = IdpError::from(diesel::result::Error::NotFound);
        assert_eq!(cause::chain(&e), "database: Record not found");
        let e = IdpError::internal("hashing a password", crate::passwords::HashError::Cancelled);
        assert_eq!(
            cause::chain(&e),
            "hashing a password: hashing was cancelled"
        );
        assert_eq!(e.status_code(), StatusCode::INTERNAL_SERVER_ERROR);
        let e = IdpError::from(crate::oidc::keys::KeyError::NoKey);
        assert_eq!(
            cause::chain(&e),
            "reading the signing key: the practice has no signing key"
        );
    }
}
