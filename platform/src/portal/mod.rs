//! The practice start page (`/`).

use actix_web::http::header::ContentType;
use actix_web::{HttpResponse, web};
use askama::Template;
use kollegium_tenants::web::{CsrfToken, Layout, WebError};
use kollegium_tenants::{Tenant, kv};

use crate::PLATFORM_DB;

#[derive(Template)]
#[template(path = "pages/portal.html")]
struct PortalPage {
    layout: Layout,
    practice_name: String,
    welcome: Option<String>,
}

async fn home(tenant: Tenant, csrf: CsrfToken) -> Result<HttpResponse, WebError> {
    let t = tenant.clone();
    let welcome = web::block(move || -> Result<Option<String>, WebError> {
        let mut conn = t.conn(&PLATFORM_DB)?;
        kv::get(&mut conn, "welcome_text").map_err(|e| {
            tracing::error!(error = %e, "reading practice settings failed");
            WebError::Internal
        })
    })
    .await??;
    let page = PortalPage {
        layout: Layout {
            csrf_token: Some(csrf.0),
            ..Layout::practice(tenant.display_name())
        },
        practice_name: tenant.display_name().to_owned(),
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
