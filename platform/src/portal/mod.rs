//! The practice start page (`/`): greeting, a tile per workspace app (each app renders its
//! own, e.g. chat's unread messages and mentions; a failing tile is left out), and a tile per
//! third-party tool the practice IdP lets the member launch.

pub mod tools;

use actix_web::http::header::ContentType;
use actix_web::{HttpResponse, web};
use askama::Template;
use kollegium_tenants::kv;
use kollegium_tenants::web::{CsrfToken, Layout, WebContext, WebError};

use crate::PLATFORM_DB;
use crate::app::{self, Tile};
use crate::auth::{Member, SignIn, session};

#[derive(Template)]
#[template(path = "pages/portal.html")]
struct PortalPage {
    layout: Layout,
    practice_name: String,
    name: String,
    welcome: Option<String>,
    /// What the workspace offers, in words (`Chat`): only apps that exist.
    offers: String,
    app_tiles: Vec<Tile>,
    tools: Vec<tools::Tool>,
    tools_unavailable: bool,
}

/// The layout of the start page (see [`crate::shell::page`]).
pub fn layout(m: &Member, csrf: &CsrfToken) -> Layout {
    crate::shell::page(m, csrf, app::START)
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
    state: web::Data<SignIn>,
    ctx: web::Data<WebContext>,
    shared: web::Data<app::AppContext>,
) -> Result<HttpResponse, WebError> {
    let (t, me, sid) = (m.tenant.clone(), m.id(), m.session_id);
    let now = ctx.store.clock().now();
    let (welcome, app_tiles, token) =
        kollegium_tenants::web::block(move || -> Result<_, WebError> {
            let mut conn = t.conn(&PLATFORM_DB)?;
            let welcome = kv::get(&mut conn, "welcome_text")
                .map_err(internal("reading practice settings"))?;
            let tiles = app::tiles(app::apps(), &shared, &mut conn, me, now);
            let token = session::access_token(&mut conn, &t, sid)
                .map_err(internal("reading the session's access token"))?;
            Ok((welcome, tiles, token))
        })
        .await??;
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
    let page = PortalPage {
        // The news tile follows the live channel through `news.js`, which the shell brings.
        layout: layout(&m, &csrf),
        practice_name: m.tenant.display_name().to_owned(),
        name: m.member.display_name.clone(),
        welcome,
        offers: kollegium_tenants::web::shell::german_list(
            &kollegium_tenants::web::shell::installed().offers(),
        ),
        app_tiles,
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
