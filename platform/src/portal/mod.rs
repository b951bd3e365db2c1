//! The practice start page (`/`): greeting, the chat tile with unread messages and
//! mentions, and a tile per third-party tool the practice IdP lets the member launch.

pub mod tools;

use actix_web::http::header::ContentType;
use actix_web::{HttpResponse, web};
use askama::Template;
use kollegium_tenants::kv;
use kollegium_tenants::web::layout::NavItem;
use kollegium_tenants::web::{CsrfToken, Layout, WebContext, WebError};

use crate::PLATFORM_DB;
use crate::auth::{Member, PlatformState, session};
use crate::chat::rooms;

#[derive(Template)]
#[template(path = "pages/portal.html")]
struct PortalPage {
    layout: Layout,
    practice_name: String,
    name: String,
    welcome: Option<String>,
    unread: i64,
    mentions: i64,
    tools: Vec<tools::Tool>,
    tools_unavailable: bool,
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

fn internal<E: std::fmt::Display>(what: &'static str) -> impl FnOnce(E) -> WebError {
    move |e| {
        tracing::error!(error = %e, "{what}");
        WebError::Internal
    }
}

async fn home(
    m: Member,
    csrf: CsrfToken,
    state: web::Data<PlatformState>,
    ctx: web::Data<WebContext>,
) -> Result<HttpResponse, WebError> {
    let (t, me, sid) = (m.tenant.clone(), m.id(), m.session_id);
    let (welcome, rooms, token) = web::block(move || -> Result<_, WebError> {
        let mut conn = t.conn(&PLATFORM_DB)?;
        let welcome =
            kv::get(&mut conn, "welcome_text").map_err(internal("reading practice settings"))?;
        let rooms = rooms::list_for(&mut conn, me).map_err(internal("listing chat rooms"))?;
        let token = session::access_token(&mut conn, &t, sid)
            .map_err(internal("reading the session's access token"))?;
        Ok((welcome, rooms, token))
    })
    .await??;
    let unread = rooms.iter().map(|r| r.unread).sum();
    let mentions = rooms.iter().map(|r| r.mentions).sum();
    let issuer = format!(
        "{}/id",
        ctx.settings.practice_origin(m.tenant.slug().as_str())
    );
    let fetched = match token {
        Some(token) => tools::fetch(&state, &issuer, &token).await,
        None => Err(tools::ToolsError::Request("no access token".into())),
    };
    let (tools, tools_unavailable) = match fetched {
        Ok(t) => (t, false),
        Err(e) => {
            tracing::warn!(practice = %m.tenant.slug(), error = %e,
                "the IdP's list of applications is unavailable");
            (Vec::new(), true)
        }
    };
    let mut layout = layout(&m, &csrf);
    layout.nav = vec![
        NavItem {
            label: "Start".into(),
            href: "/".into(),
            active: true,
        },
        NavItem {
            label: "Chat".into(),
            href: "/chat".into(),
            active: false,
        },
    ];
    let page = PortalPage {
        layout,
        practice_name: m.tenant.display_name().to_owned(),
        name: m.member.display_name.clone(),
        welcome,
        unread,
        mentions,
        tools,
        tools_unavailable,
    };
    let body = page
        .render()
        .map_err(internal("portal page failed to render"))?;
    Ok(HttpResponse::Ok()
        .content_type(ContentType::html())
        .body(body))
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(home));
}
