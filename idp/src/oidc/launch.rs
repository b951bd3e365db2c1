//! Start-page tiles (`/id/launch/{client_id}`): third-party-initiated login through the
//! tool's `initiate_login_uri?iss=<issuer>` (OIDC Core §4) when it has one, else its
//! launch URL.

use actix_web::http::header;
use actix_web::{HttpResponse, web};

use super::Op;
use super::clients;
use super::errors::with_query;
use crate::IDP_DB;
use crate::error::{IdpError, IdpResult};
use crate::sessions::IdpSession;

async fn launch(op: Op, _s: IdpSession, path: web::Path<String>) -> IdpResult<HttpResponse> {
    let id = path.into_inner();
    let t = op.tenant.clone();
    let client = kollegium_tenants::web::block(move || -> IdpResult<_> {
        Ok(clients::enabled(&mut *t.conn(&IDP_DB)?, &id)?)
    })
    .await??
    .filter(|c| !c.first_party)
    .ok_or(IdpError::NotFound)?;
    let to = match (&client.initiate_login_uri, &client.launch_url) {
        (Some(init), target) => {
            let issuer = op.issuer();
            let mut q = vec![("iss", issuer.as_str())];
            if let Some(t) = target {
                q.push(("target_link_uri", t.as_str()));
            }
            with_query(init, &q)
        }
        (None, Some(url)) => url.clone(),
        (None, None) => return Err(IdpError::NotFound),
    };
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, to))
        .finish())
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/id/launch/{client_id}", web::get().to(launch));
}
