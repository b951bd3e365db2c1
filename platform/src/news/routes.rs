//! News pages: `/news` (the member's messages, hidden ones on `?hidden=1`), `/news/{id}`
//! (one message; opening it marks it read) and the forms "Als gelesen markieren",
//! "Ausblenden" and "Wieder einblenden" (POST with CSRF, answered with a redirect, so they
//! work without JavaScript), and the member's own choice of the mail notices
//! (`POST /news/email`, offered while the practice sends them). An id the member may not see (unknown, malformed, withdrawn,
//! expired, another audience) answers 404 everywhere.

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, ContentType};
use actix_web::{HttpResponse, web};
use askama::Template;
use kollegium_tenants::broadcast::NodeFeed;
use kollegium_tenants::web::{CsrfToken, ErrorPage, Layout, WebError};

use super::{Action, NewsError, Shown};
use crate::PLATFORM_DB;
use crate::app::AppContext;
use crate::auth::Member;
use crate::error::ApiError;

/// `?done=` codes and the notice each shows.
const NOTICES: &[(&str, &str)] = &[
    ("read", "Die Nachricht ist als gelesen markiert."),
    ("hidden", "Die Nachricht wurde ausgeblendet."),
    ("restored", "Die Nachricht wird wieder angezeigt."),
    (
        "mail-on",
        "Sie erhalten wieder E-Mail-Hinweise auf neue Neuigkeiten.",
    ),
    (
        "mail-off",
        "Sie erhalten keine E-Mail-Hinweise auf neue Neuigkeiten mehr.",
    ),
];

/// A message as the pages show it.
pub struct Item {
    pub id: String,
    pub title: String,
    pub date: String,
    pub body_html: String,
    pub pinned: bool,
    pub read: bool,
    pub hidden: bool,
}

fn item(s: Shown, zone: &kollegium_tenants::time::Zone) -> Item {
    Item {
        body_html: crate::markdown::render(&s.message.body, &|_| false),
        date: zone.format_date(s.message.published_at),
        id: s.message.id.as_str().to_owned(),
        title: s.message.title,
        pinned: s.message.pinned,
        read: s.read,
        hidden: s.hidden,
    }
}

#[derive(Template)]
#[template(path = "news/list.html")]
struct ListPage {
    layout: Layout,
    items: Vec<Item>,
    /// Showing the hidden ones (`?hidden=1`).
    hidden_view: bool,
    hidden_count: usize,
    notice: Option<&'static str>,
    /// A practice admin: the link to the settings.
    admin: bool,
    /// The practice announces news by mail: the member's own choice is offered.
    practice_mails: bool,
    /// The member gets those mails (has not declined them).
    mine: bool,
}

#[derive(Template)]
#[template(path = "news/message.html")]
struct MessagePage {
    layout: Layout,
    item: Item,
    notice: Option<&'static str>,
}

#[derive(Debug, Default, serde::Deserialize)]
pub struct ListQuery {
    hidden: Option<String>,
    done: Option<String>,
}

fn notice(done: Option<&str>) -> Option<&'static str> {
    let d = done?;
    NOTICES.iter().find(|(k, _)| *k == d).map(|(_, v)| *v)
}

fn internal(e: impl std::fmt::Display) -> WebError {
    tracing::error!(error = %e, "news request failed");
    WebError::Internal
}

fn feed(shared: &AppContext) -> Result<Arc<NodeFeed>, WebError> {
    shared
        .broadcasts
        .clone()
        .ok_or_else(|| internal(NewsError::NoFeed))
}

fn html(t: &impl Template) -> Result<HttpResponse, WebError> {
    Ok(HttpResponse::Ok()
        .content_type(ContentType::html())
        .body(t.render().map_err(internal)?))
}

fn see_other(to: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, to.to_owned()))
        .finish()
}

/// `news.js` comes with every signed-in page through the shell
/// ([`super::app::SHELL_SCRIPTS`]).
fn layout(m: &Member, csrf: &CsrfToken) -> Layout {
    crate::shell::page(m, csrf, super::APP)
}

async fn list(
    m: Member,
    csrf: CsrfToken,
    shared: web::Data<AppContext>,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse, WebError> {
    let (feed, now, t, row) = (
        feed(&shared)?,
        shared.now(),
        m.tenant.clone(),
        m.member.clone(),
    );
    let (all, practice_mails, mine) =
        kollegium_tenants::web::block(move || -> Result<_, WebError> {
            let mut conn = t.conn(&PLATFORM_DB)?;
            let all = super::for_member(&feed, &mut conn, &row, now).map_err(internal)?;
            let practice_mails = super::mail::enabled(&mut conn).map_err(internal)?;
            let mine = super::mail::mine(&mut conn, row.id).map_err(internal)?;
            Ok((all, practice_mails, mine))
        })
        .await??;
    let hidden_view = q
        .hidden
        .as_deref()
        .is_some_and(|h| !h.is_empty() && h != "0");
    let hidden_count = all.iter().filter(|s| s.hidden).count();
    let zone = m.tenant.time_zone().clone();
    let items = all
        .into_iter()
        .filter(|s| s.hidden == hidden_view)
        .map(|s| item(s, &zone))
        .collect();
    html(&ListPage {
        layout: layout(&m, &csrf),
        items,
        hidden_view,
        hidden_count,
        notice: notice(q.done.as_deref()),
        admin: m.member.is_admin,
        practice_mails,
        mine,
    })
}

/// The form "E-Mail-Hinweise": `mail=an` or `mail=aus` (and the CSRF token), nothing else.
fn parse_mine(fields: &[(String, String)]) -> Option<bool> {
    let mut wants = None;
    for (k, v) in fields {
        match (k.as_str(), v.as_str(), wants) {
            ("csrf_token", _, _) => {}
            ("mail", "an", None) => wants = Some(true),
            ("mail", "aus", None) => wants = Some(false),
            _ => return None,
        }
    }
    wants
}

/// `POST /news/email`: the member's own choice of the news notices by mail.
async fn email(
    m: Member,
    shared: web::Data<AppContext>,
    form: web::Form<Vec<(String, String)>>,
) -> Result<HttpResponse, WebError> {
    let Some(wants) = parse_mine(&form) else {
        return Ok(ErrorPage {
            message: "Die Eingabe ist ungültig. Bitte wählen Sie auf der Seite „Neuigkeiten“, ob \
                      Sie E-Mail-Hinweise erhalten möchten."
                .into(),
            back: Some("/news".to_owned()),
            ..ErrorPage::new(400)
        }
        .response());
    };
    let (me, now) = (m.id(), shared.now());
    m.tenant
        .write(&PLATFORM_DB, move |c| {
            super::mail::set_mine(c, me, wants, now)
        })
        .await
        .map_err(|e| internal(format!("recording the news mail choice: {e}")))?;
    tracing::info!(practice = %m.tenant.slug(), wants, "news mail choice changed");
    Ok(see_other(if wants {
        "/news?done=mail-on"
    } else {
        "/news?done=mail-off"
    }))
}

/// The message `id` if `m` may see it now (else 404).
async fn visible(m: &Member, shared: &AppContext, id: String) -> Result<Shown, WebError> {
    let (feed, now, t, row) = (
        feed(shared)?,
        shared.now(),
        m.tenant.clone(),
        m.member.clone(),
    );
    kollegium_tenants::web::block(move || -> Result<_, WebError> {
        let mut conn = t.conn(&PLATFORM_DB)?;
        super::one_for_member(&feed, &mut conn, &row, &id, now).map_err(internal)
    })
    .await??
    .ok_or(WebError::NotFound)
}

async fn record(m: &Member, shared: &AppContext, id: &str, action: Action) -> Result<(), WebError> {
    let (me, now, id) = (m.id(), shared.now(), id.to_owned());
    m.tenant
        .write(&PLATFORM_DB, move |c| {
            super::record(c, me, &id, action, now)
        })
        .await
        .map_err(|e| internal(format!("recording news state: {e}")))?;
    super::live::changed_for(shared, m.tenant.slug().as_str(), me);
    Ok(())
}

async fn message(
    m: Member,
    csrf: CsrfToken,
    shared: web::Data<AppContext>,
    id: web::Path<String>,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse, WebError> {
    let mut shown = visible(&m, &shared, id.into_inner()).await?;
    if !shown.read {
        record(&m, &shared, shown.message.id.as_str(), Action::Read).await?;
        shown.read = true;
    }
    let zone = m.tenant.time_zone().clone();
    html(&MessagePage {
        layout: layout(&m, &csrf),
        item: item(shown, &zone),
        notice: notice(q.done.as_deref()),
    })
}

async fn act(
    m: Member,
    shared: web::Data<AppContext>,
    path: web::Path<(String, String)>,
    // Read so that an oversized or malformed body is refused (413/400) like every form.
    _form: web::Form<Vec<(String, String)>>,
) -> Result<HttpResponse, WebError> {
    let (id, what) = path.into_inner();
    let (action, done) = match what.as_str() {
        "read" => (Action::Read, "read"),
        "hide" => (Action::Hide, "hidden"),
        "restore" => (Action::Restore, "restored"),
        _ => return Err(WebError::NotFound),
    };
    let shown = visible(&m, &shared, id).await?;
    record(&m, &shared, shown.message.id.as_str(), action).await?;
    Ok(see_other(&format!("/news?done={done}")))
}

/// `GET /api/news/unread`: `{"unread": n}`, the member's unread and not hidden messages,
/// for the navigation's badge (`news.js`).
async fn unread_count(m: Member, shared: web::Data<AppContext>) -> Result<HttpResponse, ApiError> {
    let failed = |e: &dyn std::fmt::Display| {
        tracing::error!(error = %e, "news unread count failed");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Die Neuigkeiten sind gerade nicht erreichbar.",
        )
    };
    let feed = shared
        .broadcasts
        .clone()
        .ok_or_else(|| failed(&NewsError::NoFeed))?;
    let (now, t, row) = (shared.now(), m.tenant.clone(), m.member.clone());
    let n = kollegium_tenants::web::block(move || -> Result<usize, String> {
        let mut conn = t.conn(&PLATFORM_DB).map_err(|e| e.to_string())?;
        super::unread_count(&feed, &mut conn, &row, now).map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| failed(&e))?
    .map_err(|e| failed(&e))?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "unread": n })))
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    super::admin::configure(cfg);
    cfg.route("/api/news/unread", web::get().to(unread_count))
        .route("/news", web::get().to(list))
        .route("/news/email", web::post().to(email))
        .route("/news/{id}", web::get().to(message))
        .route("/news/{id}/{what}", web::post().to(act));
}
