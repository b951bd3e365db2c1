//! Sicherheitsprotokoll (`/id/admin/events`): security events with filters.

use actix_web::{HttpResponse, web};
use askama::Template;
use kollegium_tenants::web::{CsrfToken, Layout};

use crate::IDP_DB;
use crate::error::IdpResult;
use crate::events::{self, Filter};
use crate::sessions::IdpAdmin;
use crate::state::IdpState;
use crate::users;
use crate::views::{layout, page, when};

pub struct EventRow {
    pub at: String,
    pub label: String,
    pub user: String,
    pub actor: String,
    pub client: String,
    pub ip: String,
    pub detail: String,
}

#[derive(Template)]
#[template(path = "pages/idp/admin_events.html")]
struct EventsPage {
    layout: Layout,
    rows: Vec<EventRow>,
    kinds: &'static [(&'static str, &'static str)],
    people: Vec<(i64, String)>,
    kind: String,
    user: i64,
    older: Option<i64>,
}

impl EventsPage {
    fn is_kind(&self, k: impl AsRef<str>) -> bool {
        self.kind == k.as_ref()
    }
}

const PAGE: i64 = 100;

async fn list(
    a: IdpAdmin,
    csrf: CsrfToken,
    state: web::Data<IdpState>,
    q: web::Query<Filter>,
) -> IdpResult<HttpResponse> {
    let (f, now) = (q.into_inner(), state.now());
    let t = a.0.tenant.clone();
    let f2 = f.clone();
    let (evs, people, tools) = kollegium_tenants::web::block(move || -> IdpResult<_> {
        let mut conn = t.conn(&IDP_DB)?;
        Ok((
            events::list(&mut conn, &f2, PAGE)?,
            users::list(&mut conn)?,
            crate::oidc::clients::all(&mut conn)?,
        ))
    })
    .await??;
    // Tools by name (the technical client id only for one since removed).
    let tool = |id: &Option<String>| {
        id.as_deref().map_or_else(String::new, |id| {
            tools
                .iter()
                .find(|c| c.client_id == id)
                .map_or_else(|| id.to_owned(), |c| c.name.clone())
        })
    };
    let name = |id: Option<i64>| {
        id.map_or_else(String::new, |id| {
            people
                .iter()
                .find(|u| u.id.0 == id)
                .map_or_else(|| format!("#{id} (gelöscht)"), |u| u.display_name.clone())
        })
    };
    let older = (evs.len() as i64 == PAGE)
        .then(|| evs.last().map(|e| e.id))
        .flatten();
    let rows = evs
        .iter()
        .map(|e| EventRow {
            at: when(&a.0.tenant, e.at, now),
            label: events::label(&e.kind).to_owned(),
            user: name(e.user_id),
            actor: name(e.actor_id),
            client: tool(&e.client_id),
            ip: e.ip.clone().unwrap_or_default(),
            detail: events::detail_label(&e.kind, &e.detail),
        })
        .collect();
    page(&EventsPage {
        layout: layout(&a.0.tenant, Some(&a.0), &csrf, "/id/admin/events"),
        rows,
        kinds: events::KINDS,
        people: people
            .iter()
            .map(|u| (u.id.0, u.display_name.clone()))
            .collect(),
        kind: f.kind.unwrap_or_default(),
        user: f.user.unwrap_or(0),
        older,
    })
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/id/admin/events", web::get().to(list));
}
