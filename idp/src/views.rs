//! Rendering helpers and the IdP's page layout.

use actix_web::HttpResponse;
use actix_web::http::header::ContentType;
use askama::Template;
use kollegium_tenants::Tenant;
use kollegium_tenants::web::layout::NavItem;
use kollegium_tenants::web::{CsrfToken, Layout};

use crate::error::IdpResult;
use crate::sessions::IdpSession;

/// Renders a page.
pub fn page(t: &impl Template) -> IdpResult<HttpResponse> {
    Ok(HttpResponse::Ok()
        .content_type(ContentType::html())
        .body(t.render()?))
}

/// Renders a page with a status (e.g. a form shown again with an error).
pub fn page_status(
    status: actix_web::http::StatusCode,
    t: &impl Template,
) -> IdpResult<HttpResponse> {
    Ok(HttpResponse::build(status)
        .content_type(ContentType::html())
        .body(t.render()?))
}

/// A 303 redirect (after a POST).
pub fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((actix_web::http::header::LOCATION, location.to_owned()))
        .finish()
}

/// The layout of IdP pages; `active` is the href of the current section.
pub fn layout(
    tenant: &Tenant,
    session: Option<&IdpSession>,
    csrf: &CsrfToken,
    active: &str,
) -> Layout {
    let mut l = Layout::practice(tenant.display_name());
    l.csrf_token = Some(csrf.0.clone());
    if let Some(s) = session {
        let mut nav = vec![("Start", "/id/"), ("Mein Konto", "/id/account")];
        if s.user.is_admin {
            nav.push(("Benutzerverwaltung", "/id/admin/users"));
            nav.push(("Geräte", "/id/admin/devices"));
            nav.push(("Anwendungen", "/id/admin/clients"));
            nav.push(("Protokoll", "/id/admin/events"));
        }
        l.nav = nav
            .into_iter()
            .map(|(label, href)| NavItem {
                label: label.to_owned(),
                href: href.to_owned(),
                active: href == active,
            })
            .collect();
        l.user_name = Some(s.user.display_name.clone());
        l.account_href = Some("/id/account".into());
        l.logout_href = Some("/id/logout".into());
    }
    l
}

/// A Unix time for display: the practice's local time, German format
/// (`06.12.2026, 14:05`).
pub fn when(tenant: &Tenant, t: i64) -> String {
    tenant.local_time(t)
}
