//! The tasks web layer's shared parts: the error of pages and API calls, running domain
//! work on the practice's database (reads on a pooled connection, writes through the
//! group commit: `BEGIN IMMEDIATE`, so concurrent moves serialise), and publishing.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, ContentType};
use actix_web::{HttpResponse, ResponseError};
use askama::Template;
use diesel::SqliteConnection;
use kollegium_tenants::web::{CsrfToken, ErrorPage, Layout};

use super::TaskError;
use super::live::Event;
use crate::PLATFORM_DB;
use crate::app::AppContext;
use crate::auth::Member;

/// Errors of tasks pages.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    #[error(transparent)]
    Task(#[from] TaskError),
    /// Something failed inside: 500, the cause chain logged where the answer is rendered.
    #[error(transparent)]
    Internal(#[from] crate::error::Internal),
}

pub fn internal<E: Into<crate::error::BoxError>>(e: E) -> PageError {
    PageError::Internal(crate::error::Internal::new("tasks request", e))
}

impl PageError {
    pub fn is_internal(&self) -> bool {
        matches!(self, Self::Internal(_) | Self::Task(TaskError::Db(_)))
    }
}

impl ResponseError for PageError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Task(t) => StatusCode::from_u16(t.status()).unwrap_or(StatusCode::BAD_REQUEST),
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        match self {
            _ if self.is_internal() => {
                crate::error::log_5xx("tasks request failed", self);
                ErrorPage::new(500).response()
            }
            Self::Task(t) if t.is_not_found() => ErrorPage::new(404).response(),
            Self::Task(t) => {
                let mut page = ErrorPage::new(status.as_u16());
                page.message = t.to_string().into();
                page.response()
            }
            Self::Internal(_) => ErrorPage::new(500).response(),
        }
    }
}

pub type PageResult = Result<HttpResponse, PageError>;

pub fn html(t: &impl Template) -> PageResult {
    Ok(HttpResponse::Ok()
        .content_type(ContentType::html())
        .body(t.render().map_err(internal)?))
}

pub fn see_other(to: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, to.to_owned()))
        .finish()
}

/// The layout of a tasks page.
pub fn layout(m: &Member, csrf: &CsrfToken) -> Layout {
    crate::shell::page(m, csrf, super::APP)
}

/// Runs blocking reads on this practice's database.
pub async fn read<T: Send + 'static>(
    m: &Member,
    f: impl FnOnce(&mut SqliteConnection) -> Result<T, TaskError> + Send + 'static,
) -> Result<T, PageError> {
    let t = m.tenant.clone();
    kollegium_tenants::web::block(move || {
        let mut conn = t.conn(&PLATFORM_DB).map_err(internal)?;
        f(&mut conn).map_err(PageError::from)
    })
    .await
    .map_err(internal)?
}

/// Runs a write through the practice's group commit (one `BEGIN IMMEDIATE` transaction,
/// the job in a savepoint of its own); answers once it is committed.
pub async fn write<T: Send + 'static>(
    m: &Member,
    f: impl FnOnce(&mut SqliteConnection) -> Result<T, TaskError> + Send + 'static,
) -> Result<T, PageError> {
    use kollegium_tenants::group_commit::WriteError;
    m.tenant.write(&PLATFORM_DB, f).await.map_err(|e| match e {
        WriteError::Job(e) => PageError::Task(e),
        WriteError::Db(why) => internal(format!("group commit: {why}")),
    })
}

/// After a committed change: its live events go out, the search index follows (its jobs
/// were queued in the change's transaction), and queued mail is sent.
pub fn after_commit(shared: &AppContext, m: &Member, events: Vec<Event>, mail: bool) {
    let slug = m.tenant.slug().as_str();
    for e in events {
        e.publish(shared, slug);
    }
    shared.search.kick_str(slug);
    if mail {
        shared.jobs.poke_str(slug, &PLATFORM_DB);
    }
}
