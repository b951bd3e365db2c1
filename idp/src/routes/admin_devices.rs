//! Geräte (`/id/admin/devices`): pending devices to approve or reject, approved devices to
//! name, suspend or remove. Suspending or removing a device ends its sessions.

use actix_web::{HttpResponse, web};
use askama::Template;
use kollegium_tenants::web::{CsrfToken, Layout, WebContext};

use crate::IDP_DB;
use crate::devices::{self, DeviceStatus};
use crate::error::{IdpError, IdpResult};
use crate::events::{self, Event, EventKind};
use crate::policy::{self, DevicePolicy, MfaPolicy};
use crate::sessions::{self, IdpAdmin};
use crate::state::IdpState;
use crate::users::{self, UserId};
use crate::views::{layout, page, see_other, when};

use super::confirm::Confirm;
use super::done::{Done, DoneQuery};

pub struct DeviceRow {
    pub id: i64,
    pub user: String,
    pub name: String,
    pub agent: String,
    pub ip: String,
    pub created: String,
    pub last_seen: String,
    pub status: &'static str,
    pub pending: bool,
    pub approved: bool,
    pub suspended: bool,
}

#[derive(Template)]
#[template(path = "pages/idp/admin_devices.html")]
struct DevicesPage {
    layout: Layout,
    rows: Vec<DeviceRow>,
    device_policy: &'static str,
    mfa_policy: &'static str,
    notice: Option<&'static str>,
}

const DEVICES: &str = "/id/admin/devices";

async fn list(
    a: IdpAdmin,
    csrf: CsrfToken,
    state: web::Data<IdpState>,
    q: web::Query<DoneQuery>,
) -> IdpResult<HttpResponse> {
    let (t, now) = (a.0.tenant.clone(), state.now());
    let (rows, dp, mp) = kollegium_tenants::web::block(move || -> IdpResult<_> {
        let mut conn = t.conn(&IDP_DB)?;
        let all = devices::list(&mut conn)?;
        let people = users::list(&mut conn)?;
        let name_of = |id: UserId| {
            people
                .iter()
                .find(|u| u.id == id)
                .map_or_else(String::new, |u| u.display_name.clone())
        };
        let rows = all
            .into_iter()
            .map(|d| DeviceRow {
                id: d.id,
                user: name_of(d.user),
                name: d.name.clone().unwrap_or_default(),
                agent: sessions::describe_agent(&d.user_agent),
                ip: d.ip.clone(),
                created: when(&t, d.created_at, now),
                last_seen: when(&t, d.last_seen_at, now),
                status: d.status.label(),
                pending: d.status == DeviceStatus::Pending,
                approved: d.status == DeviceStatus::Approved,
                suspended: d.status == DeviceStatus::Suspended,
            })
            .collect::<Vec<_>>();
        Ok((rows, policy::devices(&mut conn)?, policy::mfa(&mut conn)?))
    })
    .await??;
    page(&DevicesPage {
        layout: layout(&a.0.tenant, Some(&a.0), &csrf, "/id/admin/devices"),
        rows,
        device_policy: dp.as_str(),
        mfa_policy: mp.as_str(),
        notice: q.notice(),
    })
}

/// "Wirklich …?" before rejecting, suspending or removing a device
/// (`GET /id/admin/devices/{id}/{action}`); other actions need no question.
async fn confirm(
    a: IdpAdmin,
    csrf: CsrfToken,
    path: web::Path<(i64, String)>,
) -> IdpResult<HttpResponse> {
    let (id, what) = path.into_inner();
    let t = a.0.tenant.clone();
    let (device, owner) = kollegium_tenants::web::block(move || -> IdpResult<_> {
        let mut conn = t.conn(&IDP_DB)?;
        let d = devices::by_id(&mut conn, id)?.ok_or(IdpError::NotFound)?;
        let owner = users::by_id(&mut conn, d.user)?.map(|u| u.display_name);
        Ok((d, owner.unwrap_or_default()))
    })
    .await??;
    let named = device
        .name
        .clone()
        .unwrap_or_else(|| sessions::describe_agent(&device.user_agent));
    let (title, consequence, button) = match what.as_str() {
        "reject" => (
            "Gerät ablehnen?",
            "Die Anmeldung von diesem Gerät aus wird abgelehnt; wer dort wartet, wird abgemeldet.",
            "Ja, ablehnen",
        ),
        "suspend" => (
            "Gerät sperren?",
            "Alle Sitzungen auf diesem Gerät enden sofort, auch im Arbeitsplatz. Bis Sie es \
             wieder freigeben, ist dort keine Anmeldung möglich.",
            "Ja, sperren",
        ),
        "remove" => (
            "Gerät entfernen?",
            "Alle Sitzungen auf diesem Gerät enden sofort, auch im Arbeitsplatz. Meldet sich \
             die Person dort wieder an, gilt es als neues Gerät.",
            "Ja, entfernen",
        ),
        "approve" | "rename" => return Ok(see_other(DEVICES)),
        _ => return Err(IdpError::NotFound),
    };
    Confirm {
        layout: layout(&a.0.tenant, Some(&a.0), &csrf, DEVICES),
        title: title.into(),
        question: format!("Gerät „{named}“ von {owner}: wirklich fortfahren?"),
        consequence: consequence.into(),
        action: format!("{DEVICES}/{id}/{what}"),
        button: button.into(),
        cancel: DEVICES.into(),
    }
    .response()
}

#[derive(Debug, serde::Deserialize)]
pub struct NameForm {
    name: Option<String>,
}

async fn act(
    a: IdpAdmin,
    state: web::Data<IdpState>,
    ctx: web::Data<WebContext>,
    path: web::Path<(i64, String)>,
    form: web::Form<NameForm>,
) -> IdpResult<HttpResponse> {
    let (id, what) = path.into_inner();
    let (t, admin, now) = (a.0.tenant.clone(), a.0.user.id, state.now());
    let name = form.into_inner().name.unwrap_or_default();
    if name.chars().count() > 80 {
        return Err(IdpError::BadRequest("name too long".into()));
    }
    let done = kollegium_tenants::web::block(move || -> IdpResult<Done> {
        let mut conn = t.conn(&IDP_DB)?;
        let d = devices::by_id(&mut conn, id)?.ok_or(IdpError::NotFound)?;
        let kind = match what.as_str() {
            "approve" => {
                devices::set_status(&mut conn, id, DeviceStatus::Approved, admin, now)?;
                EventKind::DeviceApproved
            }
            "reject" => {
                devices::set_status(&mut conn, id, DeviceStatus::Rejected, admin, now)?;
                sessions::end_for_device(&mut conn, id, "device rejected", now)?;
                EventKind::DeviceRejected
            }
            "suspend" => {
                devices::set_status(&mut conn, id, DeviceStatus::Suspended, admin, now)?;
                sessions::end_for_device(&mut conn, id, "device suspended", now)?;
                EventKind::DeviceSuspended
            }
            "remove" => {
                sessions::end_for_device(&mut conn, id, "device removed", now)?;
                devices::remove(&mut conn, id)?;
                EventKind::DeviceRemoved
            }
            "rename" => {
                devices::rename(&mut conn, id, &name)?;
                EventKind::DeviceRenamed
            }
            _ => return Err(IdpError::NotFound),
        };
        let detail = match kind {
            EventKind::DeviceRenamed => format!("device {id}: {}", name.trim()),
            _ => format!("device {id}"),
        };
        let done = match kind {
            EventKind::DeviceApproved => Done::DeviceApproved,
            EventKind::DeviceRejected => Done::DeviceRejected,
            EventKind::DeviceSuspended => Done::DeviceSuspended,
            EventKind::DeviceRemoved => Done::DeviceRemoved,
            _ => Done::DeviceRenamed,
        };
        events::record(
            &mut conn,
            now,
            &Event {
                user: Some(d.user),
                actor: Some(admin),
                detail: &detail,
                ..Event::new(kind)
            },
        )?;
        Ok(done)
    })
    .await??;
    crate::oidc::backchannel::settle(&ctx, &a.0.tenant, now).await;
    Ok(see_other(&done.at(DEVICES)))
}

#[derive(Debug, serde::Deserialize)]
pub struct PolicyForm {
    device_policy: String,
    mfa_policy: String,
}

async fn set_policy(
    a: IdpAdmin,
    state: web::Data<IdpState>,
    form: web::Form<PolicyForm>,
) -> IdpResult<HttpResponse> {
    let dp = DevicePolicy::parse(&form.device_policy)
        .ok_or_else(|| IdpError::BadRequest("device_policy".into()))?;
    let mp = MfaPolicy::parse(&form.mfa_policy)
        .ok_or_else(|| IdpError::BadRequest("mfa_policy".into()))?;
    let (t, admin, now) = (a.0.tenant.clone(), a.0.user.id, state.now());
    kollegium_tenants::web::block(move || -> IdpResult<()> {
        let mut conn = t.conn(&IDP_DB)?;
        policy::set_devices(&mut conn, dp)?;
        policy::set_mfa(&mut conn, mp)?;
        let detail = format!("device_policy={} mfa_policy={}", dp.as_str(), mp.as_str());
        events::record(
            &mut conn,
            now,
            &Event {
                actor: Some(admin),
                detail: &detail,
                ..Event::new(EventKind::SettingsChanged)
            },
        )?;
        Ok(())
    })
    .await??;
    Ok(see_other(&Done::PolicySaved.at(DEVICES)))
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/id/admin/devices", web::get().to(list))
        .route("/id/admin/policies", web::post().to(set_policy))
        .route("/id/admin/devices/{id}/{action}", web::get().to(confirm))
        .route("/id/admin/devices/{id}/{action}", web::post().to(act));
}
