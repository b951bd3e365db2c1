//! Rendering helpers and the IdP's pages in the practice origin's shell.

use actix_web::HttpResponse;
use actix_web::http::header::ContentType;
use askama::Template;
use kollegium_tenants::Tenant;
use kollegium_tenants::catalog;
use kollegium_tenants::web::shell::{self, Audience, Entry, SignedIn, Viewer};
use kollegium_tenants::web::{CsrfToken, Layout};

use crate::error::IdpResult;
use crate::sessions::{AnySession, IdpSession, Stage};

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

/// The IdP's sections in the practice origin's shell: the binary puts them into the shell
/// (the administration as one navigation entry for admins, "Mein Konto" in the user menu).
pub mod section {
    /// "Mein Konto" (`/id/account…`).
    pub const ACCOUNT: &str = "account";
    /// "Verwaltung" (`/id/admin/…`), for practice administrators.
    pub const ADMIN: &str = "admin";
}

/// The administration's one name, in the navigation and above its pages ("Verwaltung" alone
/// would read like the role of the same name).
pub const ADMIN_LABEL: &str = "Praxisverwaltung";

/// The IdP's entries of the shell's navigation: "Praxisverwaltung", for admins only.
pub fn shell_nav() -> Vec<Entry> {
    vec![Entry::new(
        section::ADMIN,
        ADMIN_LABEL,
        "/id/admin/users",
        Audience::Admins,
    )]
}

/// Who is signed in on a request, for pages rendered without the IdP's help (error pages
/// in the shell): the IdP's session, as every IdP page reads it. The composition installs
/// it ([`kollegium_tenants::web::shell::install_signed_in`]).
pub fn signed_in(
    req: &actix_web::HttpRequest,
) -> futures_util::future::LocalBoxFuture<'static, Option<SignedIn>> {
    let req = req.clone();
    Box::pin(async move {
        let s = <AnySession as actix_web::FromRequest>::extract(&req)
            .await
            .ok()?
            .0?;
        (s.session.stage == Stage::Active).then(|| SignedIn {
            roles: catalog::labels(catalog::ROLES, &s.user.roles),
            name: s.user.display_name,
            is_admin: s.user.is_admin,
            logout_href: LOGOUT.to_owned(),
        })
    })
}

/// The IdP's entries of the shell's user menu: "Mein Konto".
pub fn shell_user_menu() -> Vec<Entry> {
    vec![Entry::new(
        section::ACCOUNT,
        "Mein Konto",
        "/id/account",
        Audience::Everyone,
    )]
}

/// Where "Abmelden" posts on the IdP's pages.
pub const LOGOUT: &str = "/id/logout";

/// The pages of the administration, shown as its sections on each of them.
const ADMIN_PAGES: &[(&str, &str)] = &[
    ("Benutzer", "/id/admin/users"),
    ("Geräte", "/id/admin/devices"),
    ("Anwendungen", "/id/admin/clients"),
    ("Sicherheitsprotokoll", "/id/admin/events"),
];

/// The pages of "Mein Konto".
const ACCOUNT_PAGES: &[(&str, &str)] = &[
    ("Übersicht", "/id/account"),
    ("Zwei-Faktor-Anmeldung", "/id/account/totp"),
    ("Verbundene Anwendungen", "/id/account/apps"),
];

/// The layout of IdP pages; `active` is the href of the current page's section (e.g.
/// `/id/admin/users`, `/id/account`). With a signed-in session the page has the practice
/// origin's shell; without one (sign-in, setup links, consent before sign-in) the minimal
/// bar.
pub fn layout(
    tenant: &Tenant,
    session: Option<&IdpSession>,
    csrf: &CsrfToken,
    active: &str,
) -> Layout {
    let Some(s) = session else {
        let mut l = Layout::practice(tenant.display_name());
        l.csrf_token = Some(csrf.0.clone());
        return l;
    };
    let viewer = Viewer {
        name: &s.user.display_name,
        is_admin: s.user.is_admin,
        roles: catalog::labels(catalog::ROLES, &s.user.roles),
        logout_href: LOGOUT,
    };
    let area = if active.starts_with("/id/admin") && s.user.is_admin {
        Some((section::ADMIN, ADMIN_LABEL, ADMIN_PAGES))
    } else if active.starts_with("/id/account") {
        Some((section::ACCOUNT, "Mein Konto", ACCOUNT_PAGES))
    } else {
        None
    };
    let shell = shell::installed();
    match area {
        Some((id, label, pages)) => shell
            .layout(tenant.display_name(), csrf, &viewer, id)
            .with_subnav(label, pages, active),
        None => shell.layout(tenant.display_name(), csrf, &viewer, ""),
    }
}

/// A Unix time for display, seen at `now`: the practice's local time in German, `heute
/// 04:21`, `gestern 17:03`, otherwise `06.12.2026, 04:21` (the one formatter of
/// [`kollegium_tenants::time`]).
pub fn when(tenant: &Tenant, t: i64, now: i64) -> String {
    tenant.local_time_at(t, now)
}
