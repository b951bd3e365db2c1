//! Chat settings of the practice (`/chat/admin`, practice admins only): how long authors
//! may edit or delete their messages, and after how many months messages are deleted.

use actix_web::http::header::ContentType;
use actix_web::http::{StatusCode, header};
use actix_web::{HttpResponse, web};
use askama::Template;
use diesel::prelude::*;
use kollegium_tenants::kv;
use kollegium_tenants::web::{CsrfToken, ErrorPage, Layout};

use super::retention::{self, MAX_RETENTION_MONTHS};
use super::routes::DEFAULT_EDIT_WINDOW_SECS;
use super::search_routes::chat_layout;
use crate::PLATFORM_DB;
use crate::auth::MemberAdmin;

/// Settings key of the edit/delete window, in seconds (read by the chat pages).
pub const EDIT_WINDOW_KEY: &str = "chat_edit_window_secs";
/// Bounds of the edit/delete window, in minutes.
pub const MIN_WINDOW_MINUTES: i64 = 1;
pub const MAX_WINDOW_MINUTES: i64 = 1440;

/// Validated chat settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChatSettings {
    pub edit_window_minutes: i64,
    pub retention_months: u32,
}

/// Why settings were refused; German, shown to the admin.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    #[error(
        "Das Zeitfenster zum Bearbeiten und Löschen muss eine ganze Zahl zwischen {MIN_WINDOW_MINUTES} und {MAX_WINDOW_MINUTES} Minuten sein."
    )]
    Window,
    #[error(
        "Die Aufbewahrungsdauer muss eine ganze Zahl zwischen 0 und {MAX_RETENTION_MONTHS} Monaten sein (0 oder leer: unbegrenzt)."
    )]
    Retention,
}

impl ChatSettings {
    /// Parses the form fields (retention empty: keep forever).
    pub fn parse(window: &str, retention: &str) -> Result<Self, SettingsError> {
        let edit_window_minutes = window
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|m| (MIN_WINDOW_MINUTES..=MAX_WINDOW_MINUTES).contains(m))
            .ok_or(SettingsError::Window)?;
        let r = retention.trim();
        let retention_months = if r.is_empty() {
            0
        } else {
            r.parse::<u32>()
                .ok()
                .filter(|m| *m <= MAX_RETENTION_MONTHS)
                .ok_or(SettingsError::Retention)?
        };
        Ok(Self {
            edit_window_minutes,
            retention_months,
        })
    }

    /// The practice's current settings.
    pub fn load(conn: &mut SqliteConnection) -> QueryResult<Self> {
        let secs = kv::get(conn, EDIT_WINDOW_KEY)?
            .and_then(|v| v.parse::<i64>().ok())
            .unwrap_or(DEFAULT_EDIT_WINDOW_SECS);
        Ok(Self {
            // Round up, so a window of 90 s shows as 2 minutes rather than 1.
            edit_window_minutes: (secs + 59) / 60,
            retention_months: retention::months(conn)?,
        })
    }

    /// Stores both settings in one transaction.
    pub fn save(&self, conn: &mut SqliteConnection) -> QueryResult<()> {
        conn.immediate_transaction(|conn| {
            kv::set(
                conn,
                EDIT_WINDOW_KEY,
                &(self.edit_window_minutes * 60).to_string(),
            )?;
            retention::set_months(conn, self.retention_months)
        })
    }
}

#[derive(Template)]
#[template(path = "pages/chat_admin.html")]
struct AdminPage {
    layout: Layout,
    window: String,
    retention: String,
    error: Option<String>,
    saved: bool,
    max_window: i64,
    max_retention: u32,
}

impl AdminPage {
    fn render_with(&self, status: StatusCode) -> HttpResponse {
        match self.render() {
            Ok(body) => HttpResponse::build(status)
                .content_type(ContentType::html())
                .body(body),
            Err(e) => {
                tracing::error!(error = %e, "chat settings page failed to render");
                ErrorPage::new(500).response()
            }
        }
    }
}

#[derive(Debug, serde::Deserialize)]
pub struct SavedQuery {
    gespeichert: Option<String>,
}

async fn with_db<T: Send + 'static>(
    a: &MemberAdmin,
    f: impl FnOnce(&mut SqliteConnection) -> QueryResult<T> + Send + 'static,
) -> Result<T, HttpResponse> {
    let t = a.0.tenant.clone();
    let r = kollegium_tenants::web::block(move || -> Result<T, String> {
        let mut conn = t.conn(&PLATFORM_DB).map_err(|e| e.to_string())?;
        f(&mut conn).map_err(|e| e.to_string())
    })
    .await;
    match r {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "chat settings failed");
            Err(ErrorPage::new(500).response())
        }
        Err(e) => {
            tracing::error!(error = %e, "chat settings failed");
            Err(ErrorPage::new(500).response())
        }
    }
}

async fn show(a: MemberAdmin, csrf: CsrfToken, q: web::Query<SavedQuery>) -> HttpResponse {
    let current = match with_db(&a, ChatSettings::load).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    AdminPage {
        layout: chat_layout(&a.0, &csrf),
        window: current.edit_window_minutes.to_string(),
        retention: current.retention_months.to_string(),
        error: None,
        saved: q.gespeichert.is_some(),
        max_window: MAX_WINDOW_MINUTES,
        max_retention: MAX_RETENTION_MONTHS,
    }
    .render_with(StatusCode::OK)
}

#[derive(Debug, serde::Deserialize)]
pub struct SettingsForm {
    #[serde(default)]
    edit_window_minutes: String,
    #[serde(default)]
    retention_months: String,
}

async fn save(a: MemberAdmin, csrf: CsrfToken, form: web::Form<SettingsForm>) -> HttpResponse {
    let f = form.into_inner();
    let parsed = match ChatSettings::parse(&f.edit_window_minutes, &f.retention_months) {
        Ok(s) => s,
        Err(e) => {
            return AdminPage {
                layout: chat_layout(&a.0, &csrf),
                window: f.edit_window_minutes.chars().take(20).collect(),
                retention: f.retention_months.chars().take(20).collect(),
                error: Some(e.to_string()),
                saved: false,
                max_window: MAX_WINDOW_MINUTES,
                max_retention: MAX_RETENTION_MONTHS,
            }
            .render_with(StatusCode::BAD_REQUEST);
        }
    };
    if let Err(r) = with_db(&a, move |c| parsed.save(c)).await {
        return r;
    }
    tracing::info!(
        practice = %a.0.tenant.slug(),
        edit_window_minutes = parsed.edit_window_minutes,
        retention_months = parsed.retention_months,
        "chat settings changed"
    );
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/chat/admin?gespeichert=1"))
        .finish()
}

/// Registers `/chat/admin`. Must come before `/chat/{room}` in the app's routing.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/chat/admin", web::get().to(show))
        .route("/chat/admin", web::post().to(save));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_parsed_strictly() {
        assert_eq!(
            ChatSettings::parse("30", ""),
            Ok(ChatSettings {
                edit_window_minutes: 30,
                retention_months: 0
            })
        );
        assert_eq!(
            ChatSettings::parse(" 1440 ", "120").map(|s| s.retention_months),
            Ok(120)
        );
        for w in ["0", "1441", "-5", "", "abc", "1.5", "15 Minuten"] {
            assert_eq!(
                ChatSettings::parse(w, "0"),
                Err(SettingsError::Window),
                "{w}"
            );
        }
        for r in ["121", "-1", "x", "3.0"] {
            assert_eq!(
                ChatSettings::parse("15", r),
                Err(SettingsError::Retention),
                "{r}"
            );
        }
    }
}
