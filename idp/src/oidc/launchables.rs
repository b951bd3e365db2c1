//! `GET /id/api/launchables`: the third-party tools the signed-in user can start from the
//! workspace's start page, for the platform (first-party client) to show as tiles. Bearer
//! access token as for userinfo (this practice's issuer and keys, not expired, recorded
//! and not revoked, user active); tokens of third-party clients are refused with
//! `insufficient_scope`, so one tool cannot list the others.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;

use super::Op;
use super::clients;
use super::errors::OAuthError;
use super::userinfo::{bearer, check_access_token};
use crate::IDP_DB;
use crate::routes::home;

/// One launchable tool.
#[derive(Debug, Clone, Serialize)]
pub struct Launchable {
    pub client_id: String,
    pub name: String,
    /// The IdP's `/id/launch/<client_id>` address (absolute): it starts the tool's login.
    pub href: String,
}

#[derive(Debug, Serialize)]
struct Answer {
    launchables: Vec<Launchable>,
}

async fn launchables(req: HttpRequest, op: Op) -> Result<HttpResponse, OAuthError> {
    let token = bearer(&req)?;
    let issuer = op.issuer();
    let now = op.now();
    let t = op.tenant.clone();
    let iss = issuer.clone();
    let found = kollegium_tenants::web::block(move || -> Result<_, OAuthError> {
        let mut conn = t.conn(&IDP_DB)?;
        let Some(access) = check_access_token(&mut conn, &token, &iss, now)? else {
            return Ok(None);
        };
        let first_party =
            clients::enabled(&mut conn, &access.client_id)?.is_some_and(|c| c.first_party);
        let tiles = if first_party && access.user.is_some() {
            Some(home::tiles(&mut conn)?)
        } else {
            None
        };
        Ok(Some(tiles))
    })
    .await??;
    let tiles = match found {
        None => {
            return Err(OAuthError::invalid_token(
                "the access token is invalid, expired or revoked",
            ));
        }
        Some(None) => {
            return Err(OAuthError::insufficient_scope(
                "only the practice workspace may list the applications",
            ));
        }
        Some(Some(tiles)) => tiles,
    };
    let base = issuer.strip_suffix("/id").unwrap_or(&issuer);
    let launchables = tiles
        .into_iter()
        .map(|t| Launchable {
            client_id: t.client_id.clone(),
            name: t.name,
            href: format!("{base}{}", t.href),
        })
        .collect();
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(Answer { launchables }))
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/id/api/launchables", web::get().to(launchables));
}
