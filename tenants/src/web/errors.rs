//! Error pages (German) and the crate's web error type.
//!
//! Whoever renders an error page ([`ErrorPage::response`]) does so without the request;
//! the page marks its response, and the plumbing ([`into_shell`]) renders it again in the
//! practice's shell for a signed-in member (top bar, navigation, user menu), with a way
//! back. An anonymous 404 stays exactly as for an unknown practice.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, ContentType};
use actix_web::{HttpMessage, HttpRequest, HttpResponse, ResponseError, web};
use askama::Template;

use super::layout::Layout;
use super::next::LocalPath;
use super::shell;
use super::{CsrfToken, WebContext};
use crate::store::Tenant;

/// A friendly error page.
#[derive(Template, Debug, Clone)]
#[template(path = "pages/error.html")]
pub struct ErrorPage {
    pub layout: Layout,
    pub status: u16,
    pub title: &'static str,
    pub message: std::borrow::Cow<'static, str>,
    /// A refused form whose input is kept: sent again from the page with a fresh token.
    pub resend: Option<Resend>,
    /// The page the person came from on this origin ("Zurück").
    pub back: Option<String>,
}

/// A form refused for its stale token, to send again: where to, the fields as posted and
/// the fresh token. Never made for a form with a password or code in it
/// ([`is_secret_field`]): those are not echoed into a page.
#[derive(Debug, Clone)]
pub struct Resend {
    pub action: String,
    pub fields: Vec<(String, String)>,
    pub csrf: String,
}

impl Resend {
    /// Longest value shown in the list of kept input.
    const SHOWN: usize = 160;

    /// The kept values worth showing (not empty), shortened for the list.
    pub fn shown(&self) -> Vec<String> {
        self.fields
            .iter()
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty() && *v != "on")
            .map(|v| {
                if v.chars().count() > Self::SHOWN {
                    let cut: String = v.chars().take(Self::SHOWN).collect();
                    format!("{cut}…")
                } else {
                    v.to_owned()
                }
            })
            .collect()
    }
}

/// Field names never echoed into a page: passwords, one-time codes, secrets, tokens.
pub fn is_secret_field(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n == "current"
        || ["password", "secret", "token", "code", "otp"]
            .iter()
            .any(|s| n.contains(s))
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
        422 => (
            "Nicht angenommen",
            "Die gesendeten Daten wurden geprüft und nicht angenommen.",
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
            resend: None,
            back: None,
        }
    }

    pub fn not_found() -> Self {
        Self::new(404)
    }

    pub fn too_large() -> Self {
        Self::new(413)
    }

    /// A form that did not come from this practice's own page (foreign origin).
    pub fn csrf() -> Self {
        Self {
            title: "Formular abgelehnt",
            message: "Das Formular ist abgelaufen oder stammt nicht von dieser Praxis. Bitte laden Sie die Seite neu und versuchen Sie es erneut.".into(),
            ..Self::new(403)
        }
    }

    /// A form of this practice's own page with a stale token (open too long, or signed out
    /// and in again meanwhile): says so, and keeps the input to send again.
    pub fn stale_form(practice: &str, resend: Option<Resend>) -> Self {
        let kept = if resend.is_some() {
            " Ihre Eingaben sind nicht verloren: Prüfen Sie sie unten und senden Sie sie erneut."
        } else {
            " Bitte laden Sie die Seite neu und geben Sie Ihre Eingaben noch einmal ein."
        };
        Self {
            layout: Layout::practice(practice),
            title: "Formular abgelaufen",
            message: format!(
                "Das Formular ist abgelaufen: {practice} hat es aus Sicherheitsgründen nicht \
                 angenommen, weil es zu lange geöffnet war oder Sie sich zwischendurch ab- und \
                 wieder angemeldet haben.{kept}"
            )
            .into(),
            resend,
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
            Ok(body) => {
                let mut res = HttpResponse::build(status)
                    .content_type(ContentType::html())
                    .body(body);
                res.extensions_mut().insert(Rendered(self.clone()));
                res
            }
            Err(e) => {
                tracing::error!(error = %e, "error page failed to render");
                HttpResponse::build(status)
                    .content_type(ContentType::plaintext())
                    .body(self.title)
            }
        }
    }
}

/// The page a response was rendered from, for [`into_shell`].
#[derive(Debug, Clone)]
struct Rendered(ErrorPage);

/// Whether `res` is an error page that [`into_shell`] may render again.
pub fn is_error_page(res: &HttpResponse) -> bool {
    res.extensions().contains::<Rendered>()
}

/// A same-origin page the request came from (`Referer`), as a local path.
fn came_from(req: &HttpRequest, origin: &str) -> Option<String> {
    let referer = req.headers().get(header::REFERER)?.to_str().ok()?;
    let path = referer.strip_prefix(origin)?;
    if path == req.uri().path_and_query().map_or("", |p| p.as_str()) {
        return None;
    }
    LocalPath::parse(path, 2048)
        .ok()
        .map(LocalPath::into_string)
}

/// An error page on a practice origin, rendered again in the practice's shell: with the
/// navigation and user menu for a signed-in member, with the practice's name otherwise
/// (but an anonymous 404 stays as it is: it must not tell a known practice from an
/// unknown one), and with a way back to the page the person came from.
pub async fn into_shell(req: &HttpRequest, res: HttpResponse) -> HttpResponse {
    let rendered = res.extensions().get::<Rendered>().map(|r| r.0.clone());
    let Some(mut page) = rendered else {
        return res;
    };
    let (Some(tenant), Some(csrf)) = (
        req.extensions().get::<Tenant>().cloned(),
        req.extensions().get::<CsrfToken>().cloned(),
    ) else {
        return res;
    };
    let viewer = shell::signed_in(req).await;
    if viewer.is_none() && page.status == 404 {
        return res;
    }
    let practice = tenant.display_name();
    page.layout = match &viewer {
        Some(v) => shell::installed().layout(practice, &csrf, &v.viewer(), ""),
        None => {
            let mut l = Layout::practice(practice);
            l.csrf_token = Some(csrf.0.clone());
            l
        }
    };
    if let Some(ctx) = req.app_data::<web::Data<WebContext>>() {
        let origin = ctx.settings.practice_origin(tenant.slug().as_str());
        page.back = came_from(req, &origin);
    }
    let mut new = page.response();
    for (name, value) in res.headers() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            new.headers_mut().append(name.clone(), value.clone());
        }
    }
    new
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
