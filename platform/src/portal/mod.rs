//! The practice start page (`/`).

use actix_web::http::header::ContentType;
use actix_web::{HttpResponse, web};
use askama::Template;
use kollegium_tenants::kv;
use kollegium_tenants::web::{CsrfToken, Layout, WebError};

use crate::PLATFORM_DB;
use crate::auth::Member;

#[derive(Template)]
#[template(path = "pages/portal.html")]
struct PortalPage {
    layout: Layout,
    practice_name: String,
    name: String,
    welcome: Option<String>,
}

/// The layout of workspace pages for a signed-in member.
pub fn layout(m: &Member, csrf: &CsrfToken) -> Layout {
    let mut l = Layout::practice(m.tenant.display_name());
    l.csrf_token = Some(csrf.0.clone());
    l.user_name = Some(m.member.display_name.clone());
    l.account_href = Some("/id/account".into());
    l.logout_href = Some("/auth/logout".into());
    l
}

async fn home(m: Member, csrf: CsrfToken) -> Result<HttpResponse, WebError> {
    let t = m.tenant.clone();
    let welcome = web::block(move || -> Result<Option<String>, WebError> {
        let mut conn = t.conn(&PLATFORM_DB)?;
        kv::get(&mut conn, "welcome_text").map_err(|e| {
            tracing::error!(error = %e, "reading practice settings failed");
            WebError::Internal
        })
    })
    .await??;
    let page = PortalPage {
        layout: layout(&m, &csrf),
        practice_name: m.tenant.display_name().to_owned(),
        name: m.member.display_name.clone(),
        welcome,
    };
    let body = page.render().map_err(|e| {
        tracing::error!(error = %e, "portal page failed to render");
        WebError::Internal
    })?;
    Ok(HttpResponse::Ok()
        .content_type(ContentType::html())
        .body(body))
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(home));
}
