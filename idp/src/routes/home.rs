//! The IdP start page (`/id/`): greeting and a tile per third-party tool.

use actix_web::{HttpResponse, web};
use askama::Template;
use diesel::prelude::*;
use kollegium_tenants::web::{CsrfToken, Layout};

use crate::IDP_DB;
use crate::error::IdpResult;
use crate::schema::clients;
use crate::sessions::IdpSession;
use crate::views::{layout, page};

/// A launchable tool on the start page.
#[derive(Debug, Clone)]
pub struct Tile {
    pub client_id: String,
    pub name: String,
    pub href: String,
}

#[derive(Template)]
#[template(path = "pages/idp/home.html")]
struct HomePage {
    layout: Layout,
    name: String,
    tiles: Vec<Tile>,
    is_admin: bool,
}

/// Enabled third-party clients with a launch address, as tiles (the IdP starts the login).
pub fn tiles(conn: &mut SqliteConnection) -> QueryResult<Vec<Tile>> {
    let rows: Vec<(String, String)> = clients::table
        .filter(clients::enabled.eq(true))
        .filter(clients::first_party.eq(false))
        .filter(
            clients::launch_url
                .is_not_null()
                .or(clients::initiate_login_uri.is_not_null()),
        )
        .order(clients::name)
        .select((clients::client_id, clients::name))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|(id, name)| Tile {
            href: format!("/id/launch/{}", path_segment(&id)),
            client_id: id,
            name,
        })
        .collect())
}

/// `s` percent-encoded for use as one path segment (client ids are usually URL-safe).
fn path_segment(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

async fn home(s: IdpSession, csrf: CsrfToken) -> IdpResult<HttpResponse> {
    let t = s.tenant.clone();
    let tiles =
        web::block(move || -> IdpResult<_> { Ok(tiles(&mut *t.conn(&IDP_DB)?)?) }).await??;
    page(&HomePage {
        layout: layout(&s.tenant, Some(&s), &csrf, "/id/"),
        name: s.user.display_name.clone(),
        tiles,
        is_admin: s.user.is_admin,
    })
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/id/", web::get().to(home)).route(
        "/id",
        web::get().to(|| async { crate::views::see_other("/id/") }),
    );
}
