//! `/id/`: the practice origin has one start page, the shell's (the workspace's, with a
//! tile per third-party tool from [`tiles`] through `/id/api/launchables`); the IdP's own
//! address leads there.

use actix_web::{HttpResponse, web};
use diesel::prelude::*;
use kollegium_tenants::web::shell;

use crate::schema::clients;

/// A launchable tool on the start page.
#[derive(Debug, Clone)]
pub struct Tile {
    pub client_id: String,
    pub name: String,
    pub href: String,
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

/// The start page is the shell's: a 303 there (signed in or not; it signs in).
async fn home() -> HttpResponse {
    crate::views::see_other(&shell::installed().home)
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/id/", web::get().to(home))
        .route("/id", web::get().to(home));
}
