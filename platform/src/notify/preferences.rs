//! `/chat/settings`: a member's personal chat settings (read receipts, mention mails and
//! their delay).

use actix_web::http::header::{self, ContentType};
use actix_web::{HttpResponse, web};
use askama::Template;
use kollegium_tenants::web::{CsrfToken, Layout, WebError};

use crate::PLATFORM_DB;
use crate::auth::{Member, SignIn};
use crate::members::{self, MemberId};

/// Delays a member can choose for mention mails: (seconds, label).
pub const DELAYS: &[(i64, &str)] = &[
    (0, "sofort"),
    (5 * 60, "nach 5 Minuten"),
    (15 * 60, "nach 15 Minuten"),
    (60 * 60, "nach 60 Minuten"),
];

/// Validated personal settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Preferences {
    pub send_read_receipts: bool,
    pub mention_mail: bool,
    pub delay_secs: i64,
}

/// The form as posted. Checkboxes are absent when unticked; any other value is refused.
#[derive(Debug, Default, serde::Deserialize)]
pub struct Form {
    pub read_receipts: Option<String>,
    pub mention_mail: Option<String>,
    pub delay: Option<String>,
}

fn checkbox(v: Option<&str>) -> Result<bool, &'static str> {
    match v {
        None => Ok(false),
        Some("on" | "1" | "ja") => Ok(true),
        Some(_) => Err("Ungültige Auswahl."),
    }
}

impl Preferences {
    /// Parses the form; the error is German and shown to the user.
    pub fn parse(f: &Form) -> Result<Self, &'static str> {
        let send_read_receipts = checkbox(f.read_receipts.as_deref())?;
        let mention_mail = checkbox(f.mention_mail.as_deref())?;
        let delay_secs = f
            .delay
            .as_deref()
            .and_then(|d| d.trim().parse::<i64>().ok())
            .filter(|d| DELAYS.iter().any(|(s, _)| s == d))
            .ok_or("Bitte wählen Sie eine der angebotenen Verzögerungen.")?;
        Ok(Self {
            send_read_receipts,
            mention_mail,
            delay_secs,
        })
    }
}

#[derive(Template)]
#[template(path = "pages/chat_preferences.html")]
struct Page {
    layout: Layout,
    prefs: Preferences,
    delays: &'static [(i64, &'static str)],
    error: Option<&'static str>,
    saved: bool,
}

fn nav(m: &Member, csrf: &CsrfToken) -> Layout {
    crate::shell::page(m, csrf, crate::chat::live::APP)
}

fn render(status: u16, page: &Page) -> Result<HttpResponse, WebError> {
    let body = page.render().map_err(|e| {
        tracing::error!(error = %e, "chat settings page failed to render");
        WebError::Internal
    })?;
    let status = actix_web::http::StatusCode::from_u16(status)
        .unwrap_or(actix_web::http::StatusCode::BAD_REQUEST);
    Ok(HttpResponse::build(status)
        .content_type(ContentType::html())
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(body))
}

fn current(m: &Member) -> Preferences {
    Preferences {
        send_read_receipts: m.member.send_read_receipts,
        mention_mail: m.member.mention_mail,
        delay_secs: m.member.mention_mail_delay_secs,
    }
}

#[derive(Debug, serde::Deserialize)]
struct Query {
    saved: Option<String>,
}

async fn show(m: Member, csrf: CsrfToken, q: web::Query<Query>) -> Result<HttpResponse, WebError> {
    render(
        200,
        &Page {
            layout: nav(&m, &csrf),
            prefs: current(&m),
            delays: DELAYS,
            error: None,
            saved: q.saved.is_some(),
        },
    )
}

async fn save(
    m: Member,
    csrf: CsrfToken,
    state: web::Data<SignIn>,
    form: web::Form<Form>,
) -> Result<HttpResponse, WebError> {
    let prefs = match Preferences::parse(&form) {
        Ok(p) => p,
        Err(msg) => {
            return render(
                400,
                &Page {
                    layout: nav(&m, &csrf),
                    prefs: current(&m),
                    delays: DELAYS,
                    error: Some(msg),
                    saved: false,
                },
            );
        }
    };
    let (t, id): (_, MemberId) = (m.tenant.clone(), m.id());
    kollegium_tenants::web::block(move || -> Result<(), WebError> {
        let mut conn = t.conn(&PLATFORM_DB)?;
        members::set_preferences(
            &mut conn,
            id,
            prefs.send_read_receipts,
            prefs.mention_mail,
            prefs.delay_secs,
        )
        .map_err(|e| {
            tracing::error!(error = %e, "saving chat settings failed");
            WebError::Internal
        })
    })
    .await??;
    // The member's cached row holds the old settings.
    state.sessions.forget_member(m.tenant.slug().as_str(), id.0);
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/chat/settings?saved=1"))
        .finish())
}

/// Registers `/chat/settings`; must come before `/chat/{room}`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/chat/settings", web::get().to(show))
        .route("/chat/settings", web::post().to(save));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(r: Option<&str>, m: Option<&str>, d: Option<&str>) -> Form {
        Form {
            read_receipts: r.map(Into::into),
            mention_mail: m.map(Into::into),
            delay: d.map(Into::into),
        }
    }

    #[test]
    fn only_offered_values_are_accepted() {
        assert_eq!(
            Preferences::parse(&form(Some("on"), None, Some("300"))),
            Ok(Preferences {
                send_read_receipts: true,
                mention_mail: false,
                delay_secs: 300
            })
        );
        assert!(Preferences::parse(&form(None, Some("on"), Some("0"))).is_ok());
        for bad in [
            form(None, None, None),
            form(None, None, Some("301")),
            form(None, None, Some("-1")),
            form(None, None, Some("abc")),
            form(Some("yes please"), None, Some("0")),
            form(None, Some("x"), Some("900")),
        ] {
            assert!(Preferences::parse(&bad).is_err(), "{bad:?}");
        }
    }
}
