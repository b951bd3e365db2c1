//! Verbundene Anwendungen (`/id/admin/clients`): register third-party tools, show a secret
//! once, rotate it, enable or disable a client, edit its addresses, scopes and signing
//! algorithm (`/id/admin/clients/{id}`).

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use kollegium_tenants::web::{CsrfToken, Layout};

use super::admin_users::Pairs;
use crate::IDP_DB;
use crate::error::{IdpError, IdpResult};
use crate::events::{self, Event, EventKind};
use crate::oidc::clients::{self, Client, NewClient, RedirectUri, SCOPES};
use crate::oidc::jwt::Alg;
use crate::sessions::IdpAdmin;
use crate::state::IdpState;
use crate::views::{layout, page_status, see_other};

use super::confirm::Confirm;
use super::done::{Done, DoneQuery};

const CLIENTS: &str = "/id/admin/clients";

#[derive(Template)]
#[template(path = "pages/idp/admin_clients.html")]
struct ClientsPage {
    layout: Layout,
    clients: Vec<Client>,
    error: Option<String>,
    /// (client id, secret) right after creation or rotation: shown once.
    secret: Option<(String, String)>,
    form_name: String,
    notice: Option<&'static str>,
}

/// What the list page shows besides the tools.
#[derive(Debug, Default)]
struct Shown {
    error: Option<String>,
    secret: Option<(String, String)>,
    form_name: String,
    notice: Option<&'static str>,
}

impl Shown {
    fn error(e: String, form_name: String) -> Self {
        Self {
            error: Some(e),
            form_name,
            ..Self::default()
        }
    }
}

async fn render(
    a: &IdpAdmin,
    csrf: &CsrfToken,
    status: StatusCode,
    shown: Shown,
) -> IdpResult<HttpResponse> {
    let t = a.0.tenant.clone();
    let list = kollegium_tenants::web::block(move || -> IdpResult<_> {
        Ok(clients::all(&mut *t.conn(&IDP_DB)?)?)
    })
    .await??;
    page_status(
        status,
        &ClientsPage {
            layout: layout(&a.0.tenant, Some(&a.0), csrf, "/id/admin/clients"),
            clients: list,
            error: shown.error,
            secret: shown.secret,
            form_name: shown.form_name,
            notice: shown.notice,
        },
    )
}

async fn list(a: IdpAdmin, csrf: CsrfToken, q: web::Query<DoneQuery>) -> IdpResult<HttpResponse> {
    let shown = Shown {
        notice: q.notice(),
        ..Shown::default()
    };
    render(&a, &csrf, StatusCode::OK, shown).await
}

/// "Wirklich …?" before renewing a secret or deactivating a tool
/// (`GET /id/admin/clients/{id}/{action}`); enabling needs no question.
async fn confirm(
    a: IdpAdmin,
    csrf: CsrfToken,
    path: web::Path<(String, String)>,
) -> IdpResult<HttpResponse> {
    let (id, what) = path.into_inner();
    let client = editable(&a, id).await?;
    let (title, question, consequence, button) = match what.as_str() {
        "rotate" if client.confidential => (
            "Geheimnis erneuern?",
            format!(
                "Wollen Sie das Geheimnis von „{}“ wirklich erneuern?",
                client.name
            ),
            "Das bisherige Geheimnis gilt sofort nicht mehr: Die Anwendung kann niemanden \
             anmelden, bis das neue Geheimnis dort eingetragen ist. Es wird nur einmal \
             angezeigt.",
            "Ja, Geheimnis erneuern",
        ),
        "disable" => (
            "Anwendung deaktivieren?",
            format!("Wollen Sie „{}“ wirklich deaktivieren?", client.name),
            "Niemand aus der Praxis kann sich dann über diese Anwendung anmelden; ihre \
             Kachel verschwindet von der Startseite. Sie können sie später wieder aktivieren.",
            "Ja, deaktivieren",
        ),
        "enable" => return Ok(see_other(CLIENTS)),
        _ => return Err(IdpError::NotFound),
    };
    Confirm {
        layout: layout(&a.0.tenant, Some(&a.0), &csrf, CLIENTS),
        title: title.into(),
        question,
        consequence: consequence.into(),
        action: format!("{CLIENTS}/{}/{what}", client.client_id),
        button: button.into(),
        cancel: CLIENTS.into(),
    }
    .response()
}

fn uris(p: &Pairs, key: &str) -> Vec<String> {
    p.get(key)
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

fn optional_uri(p: &Pairs, key: &str) -> Result<Option<RedirectUri>, String> {
    match p.get(key).map(str::trim).filter(|s| !s.is_empty()) {
        Some(u) => RedirectUri::parse(u)
            .map(Some)
            .map_err(|e| format!("{key}: {e}")),
        None => Ok(None),
    }
}

fn parse_form(p: &Pairs) -> Result<NewClient, String> {
    let confidential = p.get("kind") != Some("public");
    let mut c = NewClient::parse(
        p.get("name").unwrap_or_default(),
        &uris(p, "redirect_uris"),
        confidential,
    )
    .map_err(|e| e.to_string())?;
    c.post_logout_uris = uris(p, "post_logout_uris")
        .iter()
        .map(|u| RedirectUri::parse(u))
        .collect::<Result<_, _>>()
        .map_err(|e| format!("post_logout_uris: {e}"))?;
    c.backchannel_logout_uri = optional_uri(p, "backchannel_logout_uri")?;
    c.launch_url = optional_uri(p, "launch_url")?;
    c.initiate_login_uri = optional_uri(p, "initiate_login_uri")?;
    let scopes = p.all("scopes");
    if !scopes.is_empty() {
        c.allowed_scopes = Some(scopes);
    }
    c.signing_alg = match p.get("signing_alg").unwrap_or("RS256") {
        "" | "RS256" => Alg::Rs256,
        "ES256" => Alg::Es256,
        _ => return Err("Signaturverfahren: RS256 oder ES256".into()),
    };
    Ok(c)
}

/// Refuses a back-channel address the server must not send requests to (SSRF): checked
/// here with the name resolved now, and again at every delivery.
async fn check_egress(state: &IdpState, c: &NewClient) -> Result<(), String> {
    match &c.backchannel_logout_uri {
        Some(u) => state.egress.check_uri(u.as_str()).await.map_err(|why| {
            format!(
                "Back-Channel-Logout-Adresse {} abgelehnt: {why}.",
                u.as_str()
            )
        }),
        None => Ok(()),
    }
}

#[derive(Template)]
#[template(path = "pages/idp/admin_client_edit.html")]
struct EditPage {
    layout: Layout,
    client: Client,
    error: Option<String>,
    name: String,
    redirect_uris: String,
    post_logout_uris: String,
    backchannel_logout_uri: String,
    launch_url: String,
    initiate_login_uri: String,
    /// (scope, allowed)
    scopes: Vec<(&'static str, bool)>,
    es256: bool,
}

impl EditPage {
    fn of(layout: Layout, client: Client, error: Option<String>) -> Self {
        let allowed = client.allowed_scopes();
        Self {
            layout,
            error,
            name: client.name.clone(),
            redirect_uris: client.redirect_uris().join("\n"),
            post_logout_uris: client.post_logout_uris().join("\n"),
            backchannel_logout_uri: client.backchannel_logout_uri.clone().unwrap_or_default(),
            launch_url: client.launch_url.clone().unwrap_or_default(),
            initiate_login_uri: client.initiate_login_uri.clone().unwrap_or_default(),
            scopes: SCOPES
                .iter()
                .map(|s| (*s, allowed.iter().any(|a| a == s)))
                .collect(),
            es256: client.signing_alg() == Alg::Es256,
            client,
        }
    }
}

/// A third-party client by id (the first-party workspace is not edited here).
async fn editable(a: &IdpAdmin, id: String) -> IdpResult<Client> {
    let t = a.0.tenant.clone();
    kollegium_tenants::web::block(move || -> IdpResult<_> {
        Ok(clients::by_id(&mut *t.conn(&IDP_DB)?, &id)?)
    })
    .await??
    .filter(|c| !c.first_party)
    .ok_or(IdpError::NotFound)
}

async fn edit_form(
    a: IdpAdmin,
    csrf: CsrfToken,
    path: web::Path<String>,
) -> IdpResult<HttpResponse> {
    let client = editable(&a, path.into_inner()).await?;
    let layout = layout(&a.0.tenant, Some(&a.0), &csrf, "/id/admin/clients");
    page_status(StatusCode::OK, &EditPage::of(layout, client, None))
}

async fn edit(
    a: IdpAdmin,
    csrf: CsrfToken,
    state: web::Data<IdpState>,
    path: web::Path<String>,
    body: web::Bytes,
) -> IdpResult<HttpResponse> {
    let client = editable(&a, path.into_inner()).await?;
    let p = Pairs::parse(&body)?;
    let refuse = |client: Client, e: String| {
        let layout = layout(&a.0.tenant, Some(&a.0), &csrf, "/id/admin/clients");
        let mut page = EditPage::of(layout, client, Some(e));
        // Keep what the admin typed.
        page.name = p
            .get("name")
            .unwrap_or_default()
            .chars()
            .take(120)
            .collect();
        page.redirect_uris = p
            .get("redirect_uris")
            .unwrap_or_default()
            .chars()
            .take(4000)
            .collect();
        page_status(StatusCode::BAD_REQUEST, &page)
    };
    let mut c = match parse_form(&p) {
        Ok(c) => c,
        Err(e) => return refuse(client, e),
    };
    if let Err(e) = check_egress(&state, &c).await {
        return refuse(client, e);
    }
    c.confidential = client.confidential;
    let (t, admin, now, id) = (
        a.0.tenant.clone(),
        a.0.user.id,
        state.now(),
        client.client_id.clone(),
    );
    let outcome = kollegium_tenants::web::block(move || -> IdpResult<Result<(), String>> {
        let mut conn = t.conn(&IDP_DB)?;
        conn.immediate_transaction(|conn| {
            match clients::update(conn, &id, &c, now)? {
                Ok(true) => {}
                Ok(false) => return Err(IdpError::NotFound),
                Err(e) => return Ok(Err(e.to_string())),
            }
            events::record(
                conn,
                now,
                &Event {
                    actor: Some(admin),
                    client_id: Some(&id),
                    detail: "edited",
                    ..Event::new(EventKind::ClientUpdated)
                },
            )?;
            Ok(Ok(()))
        })
    })
    .await??;
    match outcome {
        Ok(()) => Ok(see_other(&Done::ClientSaved.at(CLIENTS))),
        Err(e) => refuse(client, e),
    }
}

async fn create(
    a: IdpAdmin,
    csrf: CsrfToken,
    state: web::Data<IdpState>,
    body: web::Bytes,
) -> IdpResult<HttpResponse> {
    let p = Pairs::parse(&body)?;
    let name = p
        .get("name")
        .unwrap_or_default()
        .chars()
        .take(120)
        .collect::<String>();
    let c = match parse_form(&p) {
        Ok(c) => c,
        Err(e) => return render(&a, &csrf, StatusCode::BAD_REQUEST, Shown::error(e, name)).await,
    };
    if let Err(e) = check_egress(&state, &c).await {
        return render(&a, &csrf, StatusCode::BAD_REQUEST, Shown::error(e, name)).await;
    }
    let (t, admin, now) = (a.0.tenant.clone(), a.0.user.id, state.now());
    let created =
        kollegium_tenants::web::block(move || -> IdpResult<Result<clients::Created, String>> {
            let mut conn = t.conn(&IDP_DB)?;
            let created = match clients::create(&mut conn, &c, now)? {
                Ok(x) => x,
                Err(e) => return Ok(Err(e.to_string())),
            };
            events::record(
                &mut conn,
                now,
                &Event {
                    actor: Some(admin),
                    client_id: Some(&created.client_id),
                    detail: &c.name,
                    ..Event::new(EventKind::ClientCreated)
                },
            )?;
            Ok(Ok(created))
        })
        .await??;
    match created {
        Ok(c) => {
            let shown = Some((c.client_id.clone(), c.secret.unwrap_or_default()));
            let shown = Shown {
                secret: shown,
                ..Shown::default()
            };
            render(&a, &csrf, StatusCode::OK, shown).await
        }
        Err(e) => render(&a, &csrf, StatusCode::BAD_REQUEST, Shown::error(e, name)).await,
    }
}

async fn act(
    a: IdpAdmin,
    csrf: CsrfToken,
    state: web::Data<IdpState>,
    path: web::Path<(String, String)>,
) -> IdpResult<HttpResponse> {
    let (id, what) = path.into_inner();
    let (t, admin, now) = (a.0.tenant.clone(), a.0.user.id, state.now());
    let client_id = id.clone();
    let done = if what == "enable" {
        Done::ClientEnabled
    } else {
        Done::ClientDisabled
    };
    let secret = kollegium_tenants::web::block(move || -> IdpResult<Option<String>> {
        let mut conn = t.conn(&IDP_DB)?;
        let c = clients::by_id(&mut conn, &client_id)?.ok_or(IdpError::NotFound)?;
        if c.first_party && what != "rotate" {
            // The workspace's own registration is part of the practice.
            return Err(IdpError::BadRequest("first-party client".into()));
        }
        let (kind, secret) = match what.as_str() {
            "enable" => {
                clients::set_enabled(&mut conn, &client_id, true, now)?;
                (EventKind::ClientUpdated, None)
            }
            "disable" => {
                clients::set_enabled(&mut conn, &client_id, false, now)?;
                (EventKind::ClientUpdated, None)
            }
            "rotate" if !c.first_party => (
                EventKind::ClientSecretRotated,
                clients::rotate_secret(&mut conn, &client_id, now)?,
            ),
            _ => return Err(IdpError::NotFound),
        };
        events::record(
            &mut conn,
            now,
            &Event {
                actor: Some(admin),
                client_id: Some(&client_id),
                detail: &what,
                ..Event::new(kind)
            },
        )?;
        Ok(secret)
    })
    .await??;
    match secret {
        Some(s) => {
            let shown = Shown {
                secret: Some((id, s)),
                ..Shown::default()
            };
            render(&a, &csrf, StatusCode::OK, shown).await
        }
        None => Ok(see_other(&done.at(CLIENTS))),
    }
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/id/admin/clients", web::get().to(list))
        .route("/id/admin/clients", web::post().to(create))
        .route("/id/admin/clients/{id}", web::get().to(edit_form))
        .route("/id/admin/clients/{id}", web::post().to(edit))
        .route("/id/admin/clients/{id}/{action}", web::get().to(confirm))
        .route("/id/admin/clients/{id}/{action}", web::post().to(act));
}
