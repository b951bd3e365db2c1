//! Verbundene Anwendungen of a user (`/id/account/apps`): the tools they allowed, with the
//! scopes, and a way to withdraw consent (which revokes that tool's tokens).

use actix_web::{HttpResponse, web};
use askama::Template;
use diesel::prelude::*;
use kollegium_tenants::web::{CsrfToken, Layout};

use crate::IDP_DB;
use crate::error::IdpResult;
use crate::oidc::consent;
use crate::schema::{clients, consents};
use crate::sessions::IdpSession;
use crate::state::IdpState;
use crate::views::{layout, page, see_other, when};

use super::done::{Done, DoneQuery};

pub struct AppRow {
    pub client_id: String,
    pub name: String,
    pub scopes: Vec<String>,
    pub since: String,
}

#[derive(Template)]
#[template(path = "pages/idp/account_apps.html")]
struct AppsPage {
    layout: Layout,
    apps: Vec<AppRow>,
    notice: Option<&'static str>,
}

async fn list(
    s: IdpSession,
    csrf: CsrfToken,
    state: web::Data<IdpState>,
    q: web::Query<DoneQuery>,
) -> IdpResult<HttpResponse> {
    let (t, uid, now) = (s.tenant.clone(), s.user.id, state.now());
    let rows =
        kollegium_tenants::web::block(move || -> IdpResult<Vec<(String, String, String, i64)>> {
            let mut conn = t.conn(&IDP_DB)?;
            Ok(consents::table
                .inner_join(clients::table.on(clients::client_id.eq(consents::client_id)))
                .filter(consents::user_id.eq(uid.0))
                .order(clients::name)
                .select((
                    consents::client_id,
                    clients::name,
                    consents::scopes,
                    consents::granted_at,
                ))
                .load(&mut *conn)?)
        })
        .await??;
    let apps = rows
        .into_iter()
        .map(|(client_id, name, scopes, at)| AppRow {
            client_id,
            name,
            scopes: scopes
                .split_whitespace()
                .map(|sc| {
                    consent::describe(sc).map_or_else(|| sc.to_owned(), |(l, _)| l.to_owned())
                })
                .collect(),
            since: when(&s.tenant, at, now),
        })
        .collect();
    page(&AppsPage {
        layout: layout(&s.tenant, Some(&s), &csrf, "/id/account/apps"),
        apps,
        notice: q.notice(),
    })
}

async fn revoke(
    s: IdpSession,
    state: web::Data<IdpState>,
    id: web::Path<String>,
) -> IdpResult<HttpResponse> {
    let (t, uid, now, client_id) = (s.tenant.clone(), s.user.id, state.now(), id.into_inner());
    kollegium_tenants::web::block(move || -> IdpResult<bool> {
        Ok(consent::revoke(
            &mut *t.conn(&IDP_DB)?,
            uid,
            &client_id,
            now,
        )?)
    })
    .await??;
    Ok(see_other(&Done::AppRevoked.at("/id/account/apps")))
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/id/account/apps", web::get().to(list))
        .route("/id/account/apps/{client}/revoke", web::post().to(revoke));
}
