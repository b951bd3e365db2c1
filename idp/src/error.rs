//! The IdP's error type, mapped to a status and page (or RFC-shaped OAuth JSON) in one place.

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpResponse, ResponseError};
use kollegium_tenants::web::{ErrorPage, WebError};

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
    #[error("too many requests")]
    TooManyRequests,
    #[error("database: {0}")]
    Db(#[from] diesel::result::Error),
    #[error(transparent)]
    Web(#[from] WebError),
    #[error(transparent)]
    Store(#[from] kollegium_tenants::store::StoreError),
    #[error("blocking task failed")]
    Blocking(#[from] actix_web::error::BlockingError),
    #[error("template: {0}")]
    Template(#[from] askama::Error),
    #[error("internal: {0}")]
    Internal(String),
}

pub type IdpResult<T> = Result<T, IdpError>;

impl ResponseError for IdpError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::LoginRequired { .. } => StatusCode::SEE_OTHER,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
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
            other => {
                let status = other.status_code();
                if status.is_server_error() {
                    tracing::error!(error = %other, "idp request failed");
                }
                ErrorPage::new(status.as_u16()).response()
            }
        }
    }
}
