//! Error pages (German) and the crate's web error type.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, ContentType};
use actix_web::{HttpResponse, ResponseError};
use askama::Template;

use super::layout::Layout;

/// A friendly error page.
#[derive(Template)]
#[template(path = "pages/error.html")]
pub struct ErrorPage {
    pub layout: Layout,
    pub status: u16,
    pub title: &'static str,
    pub message: std::borrow::Cow<'static, str>,
}

/// German title and explanation for a status code.
pub fn texts(status: u16) -> (&'static str, &'static str) {
    match status {
        400 => (
            "Ungültige Anfrage",
            "Die Anfrage war fehlerhaft oder unvollständig. Bitte prüfen Sie Ihre Eingaben und versuchen Sie es erneut.",
        ),
        401 => (
            "Anmeldung erforderlich",
            "Bitte melden Sie sich an, um diese Seite zu sehen.",
        ),
        403 => (
            "Zugriff verweigert",
            "Sie haben keine Berechtigung für diese Aktion.",
        ),
        404 => (
            "Seite nicht gefunden",
            "Diese Adresse gibt es nicht. Bitte prüfen Sie die Schreibweise.",
        ),
        405 => (
            "Aktion nicht möglich",
            "Diese Aktion ist an dieser Adresse nicht möglich.",
        ),
        413 => (
            "Anfrage zu groß",
            "Die gesendeten Daten überschreiten die erlaubte Größe.",
        ),
        429 => (
            "Zu viele Anfragen",
            "Bitte warten Sie einen Moment und versuchen Sie es dann erneut.",
        ),
        431 => (
            "Kopfzeilen zu groß",
            "Die Anfrage enthält zu große Kopfzeilen.",
        ),
        503 => (
            "Dienst nicht verfügbar",
            "Der Dienst ist gerade nicht erreichbar. Bitte versuchen Sie es gleich noch einmal.",
        ),
        _ => (
            "Interner Fehler",
            "Etwas ist schiefgelaufen. Der Fehler wurde protokolliert; bitte versuchen Sie es später erneut.",
        ),
    }
}

impl ErrorPage {
    pub fn new(status: u16) -> Self {
        let (title, message) = texts(status);
        Self {
            layout: Layout::plain(),
            status,
            title,
            message: message.into(),
        }
    }

    pub fn not_found() -> Self {
        Self::new(404)
    }

    pub fn too_large() -> Self {
        Self::new(413)
    }

    pub fn csrf() -> Self {
        Self {
            message: "Das Formular ist abgelaufen oder stammt nicht von dieser Praxis. Bitte laden Sie die Seite neu und versuchen Sie es erneut.".into(),
            ..Self::new(403)
        }
    }

    pub fn suspended() -> Self {
        Self {
            title: "Praxis gesperrt",
            message: "Der Zugang zu dieser Praxis ist vorübergehend gesperrt. Bitte wenden Sie sich an die Praxisleitung oder den Betreiber.".into(),
            ..Self::new(403)
        }
    }

    pub fn response(&self) -> HttpResponse {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        match self.render() {
            Ok(body) => HttpResponse::build(status)
                .content_type(ContentType::html())
                .body(body),
            Err(e) => {
                tracing::error!(error = %e, "error page failed to render");
                HttpResponse::build(status)
                    .content_type(ContentType::plaintext())
                    .body(self.title)
            }
        }
    }
}

/// The landing page of the node itself (`<base>/`): says what this is, lists no practice.
/// It names only what exists: the apps of the installed shell ([`super::shell::offers`]).
#[derive(Template)]
#[template(path = "pages/node_home.html")]
struct NodeHome {
    layout: Layout,
    offers: String,
}

pub fn node_home() -> HttpResponse {
    match (NodeHome {
        layout: Layout::plain(),
        offers: super::shell::german_list(&super::shell::installed().offers()),
    })
    .render()
    {
        Ok(body) => HttpResponse::Ok()
            .content_type(ContentType::html())
            .body(body),
        Err(_) => ErrorPage::new(500).response(),
    }
}

/// Errors of the plumbing and of simple handlers, mapped to a status and page in one place.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("authentication required")]
    Unauthorized,
    #[error("forbidden")]
    Forbidden,
    #[error("not found")]
    NotFound,
    #[error("payload too large")]
    TooLarge,
    #[error("too many requests")]
    TooManyRequests,
    #[error("internal error")]
    Internal,
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("blocking task failed")]
    Blocking(#[from] actix_web::error::BlockingError),
}

impl WebError {
    pub fn error_page(&self) -> HttpResponse {
        ErrorPage::new(self.status_code().as_u16()).response()
    }
}

impl ResponseError for WebError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            Self::Internal | Self::Store(_) | Self::Blocking(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }

    fn error_response(&self) -> HttpResponse {
        if self.status_code().is_server_error() {
            tracing::error!(error = %self, cause = ?std::error::Error::source(self), "request failed");
        }
        self.error_page()
    }
}

/// Whether the client asked for JSON rather than a page.
pub fn wants_json(headers: &header::HeaderMap) -> bool {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    (accept.contains("application/json") && !accept.contains("text/html"))
        || (accept.is_empty() && ct.starts_with("application/json"))
}

/// A JSON error body `{"error": "...", "message": "..."}`.
pub fn json_error(status: StatusCode) -> HttpResponse {
    let (title, message) = texts(status.as_u16());
    let code = status
        .canonical_reason()
        .unwrap_or("error")
        .to_ascii_lowercase()
        .replace(' ', "_");
    HttpResponse::build(status)
        .json(serde_json::json!({ "error": code, "title": title, "message": message }))
}
