//! Benutzerverwaltung (`/id/admin/users`): invite, edit, disable/enable, delete, reset
//! password, unlock. Admins never set or see a password.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use kollegium_tenants::web::{CsrfToken, Layout, WebContext};

use super::confirm::Confirm;
use super::done::{Done, DoneQuery};
use crate::error::{IdpError, IdpResult};
use crate::events::{self, Event, EventKind};
use crate::links::{self, LinkKind};
use crate::sessions::IdpAdmin;
use crate::state::IdpState;
use crate::user_admin::{self, Done as Performed, LinkTtls, UserAction};
use crate::users::{self, Profile, User, UserId, UserStatus};
use crate::views::{layout, page, page_status, see_other, when};
use crate::{IDP_DB, mail_ctx, sessions};
use kollegium_tenants::catalog::{self, Entry};

/// Repeated-key form fields (`roles=a&roles=b`), which `web::Form` cannot express.
pub struct Pairs(pub Vec<(String, String)>);

impl Pairs {
    pub fn parse(body: &[u8]) -> IdpResult<Self> {
        serde_urlencoded::from_bytes(body)
            .map(Pairs)
            .map_err(|_| IdpError::BadRequest("malformed form".into()))
    }
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
    pub fn all(&self, key: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .collect()
    }
}

fn profile_from(p: &Pairs) -> Profile {
    Profile {
        username: p.get("username").unwrap_or_default().to_owned(),
        email: p.get("email").unwrap_or_default().to_owned(),
        display_name: p.get("display_name").unwrap_or_default().to_owned(),
        is_admin: p.get("is_admin") == Some("on"),
        roles: p.all("roles"),
        specialty: p.get("specialty").map(str::to_owned),
        kv_region: p.get("kv_region").map(str::to_owned),
        work_areas: p
            .get("work_areas")
            .unwrap_or_default()
            .split(',')
            .map(str::to_owned)
            .collect(),
    }
}

pub struct Row {
    pub id: i64,
    pub display_name: String,
    pub username: String,
    pub email: String,
    pub roles: String,
    pub status: &'static str,
    /// The end of a lock after failed sign-ins, in local time (`heute 14:05`).
    pub locked_until: Option<String>,
    pub is_admin: bool,
    pub has_totp: bool,
    /// The last use of any of the account's sessions, in local time (`heute 08:12`).
    pub last_seen: Option<String>,
}

#[derive(Template)]
#[template(path = "pages/idp/admin_users.html")]
struct ListPage {
    layout: Layout,
    rows: Vec<Row>,
    notice: Option<String>,
}

#[derive(Template)]
#[template(path = "pages/idp/admin_user_form.html")]
struct FormPage {
    layout: Layout,
    /// `None` when inviting a new user.
    id: Option<i64>,
    p: Profile,
    status: &'static str,
    /// The end of a lock after failed sign-ins, in local time (`heute 14:05`).
    locked_until: Option<String>,
    has_totp: bool,
    is_owner: bool,
    /// The owner, seen by another admin: e-mail, password link and second factor are the
    /// owner's own to change.
    owner_guarded: bool,
    invited: bool,
    roles: &'static [Entry],
    specialties: &'static [Entry],
    kv_regions: &'static [Entry],
    error: Option<String>,
    /// What the last action did ("Gespeichert.", "Entsperrt. …").
    notice: Option<String>,
}

impl FormPage {
    fn has_role(&self, id: &str) -> bool {
        self.p.roles.iter().any(|r| r == id)
    }
    fn is_specialty(&self, id: &str) -> bool {
        self.p.specialty.as_deref() == Some(id)
    }
    fn is_kv(&self, id: &str) -> bool {
        self.p.kv_region.as_deref() == Some(id)
    }
}

fn form_page(
    a: &IdpAdmin,
    csrf: &CsrfToken,
    id: Option<i64>,
    p: Profile,
    user: Option<&User>,
    now: i64,
    error: Option<String>,
) -> FormPage {
    FormPage {
        layout: layout(&a.0.tenant, Some(&a.0), csrf, "/id/admin/users"),
        id,
        p,
        status: user.map_or("", |u| u.status.label()),
        locked_until: user.and_then(|u| locked_until(&a.0.tenant, u, now)),
        has_totp: user.is_some_and(User::has_totp),
        is_owner: user.is_some_and(|u| u.is_owner),
        owner_guarded: user.is_some_and(|u| guarded(a, u)),
        invited: user.is_some_and(|u| u.status == UserStatus::Invited),
        roles: catalog::ROLES,
        specialties: catalog::SPECIALTIES,
        kv_regions: catalog::KV_REGIONS,
        error,
        notice: None,
    }
}

/// When the lock of `u` after failed sign-ins ends, in local time; `None` if not locked.
fn locked_until(tenant: &kollegium_tenants::Tenant, u: &User, now: i64) -> Option<String> {
    u.locked_until
        .filter(|_| u.is_locked(now))
        .map(|until| when(tenant, until, now))
}

/// Whether `u` is the owner and `a` someone else: only the owner changes the owner's
/// e-mail address and second factor or gets a password link sent (no take-over by a
/// co-admin through a changed address).
fn guarded(a: &IdpAdmin, u: &User) -> bool {
    u.is_owner && u.id != a.0.user.id
}

const OWNER_ONLY: &str = "Die E-Mail-Adresse, den Link zum Zurücksetzen des Passworts und \
    die Zwei-Faktor-Anmeldung der Praxisleitung kann nur sie oder er selbst ändern.";

fn profile_of(u: &User) -> Profile {
    Profile {
        username: u.username.clone(),
        email: u.email.clone(),
        display_name: u.display_name.clone(),
        is_admin: u.is_admin,
        roles: u.roles.clone(),
        specialty: u.specialty.clone(),
        kv_region: u.kv_region.clone(),
        work_areas: u.work_areas.clone(),
    }
}

async fn list(
    a: IdpAdmin,
    csrf: CsrfToken,
    state: web::Data<IdpState>,
    q: web::Query<DoneQuery>,
) -> IdpResult<HttpResponse> {
    let t = a.0.tenant.clone();
    let now = state.now();
    let (all, seen) = kollegium_tenants::web::block(move || -> IdpResult<_> {
        let mut conn = t.conn(&IDP_DB)?;
        Ok((users::list(&mut conn)?, sessions::last_seen(&mut conn)?))
    })
    .await??;
    let last_seen = |id: UserId| {
        seen.iter()
            .find(|(u, _)| *u == id.0)
            .and_then(|(_, at)| *at)
            .map(|at| when(&a.0.tenant, at, now))
    };
    let rows = all
        .iter()
        .map(|u| Row {
            id: u.id.0,
            display_name: u.display_name.clone(),
            username: u.username.clone(),
            email: u.email.clone(),
            roles: u.role_labels().join(", "),
            status: u.status.label(),
            locked_until: locked_until(&a.0.tenant, u, now),
            is_admin: u.is_admin,
            has_totp: u.has_totp(),
            last_seen: last_seen(u.id),
        })
        .collect();
    let notice = q.notice().map(str::to_owned);
    page(&ListPage {
        layout: layout(&a.0.tenant, Some(&a.0), &csrf, "/id/admin/users"),
        rows,
        notice,
    })
}

async fn new_form(
    a: IdpAdmin,
    csrf: CsrfToken,
    state: web::Data<IdpState>,
) -> IdpResult<HttpResponse> {
    page(&form_page(
        &a,
        &csrf,
        None,
        Profile::default(),
        None,
        state.now(),
        None,
    ))
}

async fn create(
    a: IdpAdmin,
    csrf: CsrfToken,
    state: web::Data<IdpState>,
    ctx: web::Data<WebContext>,
    body: web::Bytes,
) -> IdpResult<HttpResponse> {
    let raw = profile_from(&Pairs::parse(&body)?);
    let now = state.now();
    let p = match raw.clone().validate() {
        Ok(p) => p,
        Err(e) => {
            return page_status(
                StatusCode::BAD_REQUEST,
                &form_page(&a, &csrf, None, raw, None, now, Some(e.to_string())),
            );
        }
    };
    let (t, admin, mail, ttl) = (
        a.0.tenant.clone(),
        a.0.user.id,
        mail_ctx(&a.0.tenant, &ctx),
        state.settings.invite_ttl_secs,
    );
    let p2 = p.clone();
    let created = kollegium_tenants::web::block(move || -> IdpResult<Result<(), String>> {
        let mut conn = t.conn(&IDP_DB)?;
        conn.immediate_transaction(|conn| -> IdpResult<Result<(), String>> {
            let id = match users::create_invited(conn, &p2, false, now)? {
                Ok(id) => id,
                Err(e) => return Ok(Err(e.to_string())),
            };
            let user = users::by_id(conn, id)?.ok_or(IdpError::NotFound)?;
            let token = links::issue(conn, id, LinkKind::Invite, now, ttl)?;
            crate::mail::invitation(conn, &mail, &user, &token, ttl / 3600, now)?;
            events::record(
                conn,
                now,
                &Event {
                    user: Some(id),
                    actor: Some(admin),
                    ..Event::new(EventKind::UserInvited)
                },
            )?;
            Ok(Ok(()))
        })
    })
    .await??;
    match created {
        Ok(()) => {
            ctx.jobs.poke(a.0.tenant.slug(), &crate::IDP_DB);
            Ok(see_other(&Done::Invited.at("/id/admin/users")))
        }
        Err(e) => page_status(
            StatusCode::BAD_REQUEST,
            &form_page(&a, &csrf, None, p, None, now, Some(e)),
        ),
    }
}

async fn load_user(a: &IdpAdmin, id: i64) -> IdpResult<User> {
    let t = a.0.tenant.clone();
    kollegium_tenants::web::block(move || -> IdpResult<User> {
        users::by_id(&mut *t.conn(&IDP_DB)?, UserId(id))?.ok_or(IdpError::NotFound)
    })
    .await?
}

async fn edit_form(
    a: IdpAdmin,
    csrf: CsrfToken,
    state: web::Data<IdpState>,
    id: web::Path<i64>,
    q: web::Query<DoneQuery>,
) -> IdpResult<HttpResponse> {
    let u = load_user(&a, id.into_inner()).await?;
    let notice = q.done().map(|d| match d {
        Done::Unlocked => format!("Entsperrt. {} kann sich wieder anmelden.", u.display_name),
        d => d.text().to_owned(),
    });
    page(&FormPage {
        notice,
        ..form_page(
            &a,
            &csrf,
            Some(u.id.0),
            profile_of(&u),
            Some(&u),
            state.now(),
            None,
        )
    })
}

async fn update(
    a: IdpAdmin,
    csrf: CsrfToken,
    state: web::Data<IdpState>,
    ctx: web::Data<WebContext>,
    id: web::Path<i64>,
    body: web::Bytes,
) -> IdpResult<HttpResponse> {
    let u = load_user(&a, id.into_inner()).await?;
    let mut raw = profile_from(&Pairs::parse(&body)?);
    let now = state.now();
    if u.is_owner {
        raw.is_admin = true; // the owner always stays an administrator
    }
    let p = match raw.clone().validate() {
        Ok(p) => p,
        Err(e) => {
            return page_status(
                StatusCode::BAD_REQUEST,
                &form_page(
                    &a,
                    &csrf,
                    Some(u.id.0),
                    raw,
                    Some(&u),
                    now,
                    Some(e.to_string()),
                ),
            );
        }
    };
    if u.id == a.0.user.id && !p.is_admin {
        let msg = "Sie können sich die Administrationsrechte nicht selbst entziehen.".to_owned();
        return page_status(
            StatusCode::BAD_REQUEST,
            &form_page(&a, &csrf, Some(u.id.0), p, Some(&u), now, Some(msg)),
        );
    }
    let email_changed = !u.email.eq_ignore_ascii_case(&p.email);
    if email_changed && guarded(&a, &u) {
        return page_status(
            StatusCode::FORBIDDEN,
            &form_page(
                &a,
                &csrf,
                Some(u.id.0),
                profile_of(&u),
                Some(&u),
                now,
                Some(OWNER_ONLY.to_owned()),
            ),
        );
    }
    let (t, admin, uid, p2) = (a.0.tenant.clone(), a.0.user.id, u.id, p.clone());
    let (before, mail) = (u.clone(), mail_ctx(&a.0.tenant, &ctx));
    let privileges_changed = u.is_admin != p.is_admin || u.roles != p.roles;
    let res = kollegium_tenants::web::block(move || -> IdpResult<Result<(), String>> {
        let mut conn = t.conn(&IDP_DB)?;
        conn.immediate_transaction(|conn| -> IdpResult<Result<(), String>> {
            if let Err(e) = users::update_profile(conn, uid, &p2, now)? {
                return Ok(Err(e.to_string()));
            }
            if email_changed {
                // The old address learns of it, in the same transaction as the change.
                crate::mail::email_changed(conn, &mail, &before, now)?;
            }
            if privileges_changed {
                // New privileges take effect with a new session (and fresh tokens).
                sessions::end_all(conn, uid, None, "privileges changed", now)?;
            }
            events::record(
                conn,
                now,
                &Event {
                    user: Some(uid),
                    actor: Some(admin),
                    detail: if email_changed { "email" } else { "" },
                    ..Event::new(EventKind::UserUpdated)
                },
            )?;
            Ok(Ok(()))
        })
    })
    .await??;
    match res {
        Ok(()) => {
            if email_changed {
                ctx.jobs.poke(a.0.tenant.slug(), &crate::IDP_DB);
            }
            if privileges_changed {
                crate::oidc::backchannel::settle(&ctx, &a.0.tenant, now).await;
            }
            Ok(see_other(
                &Done::Saved.at(&format!("/id/admin/users/{}", u.id.0)),
            ))
        }
        Err(e) => page_status(
            StatusCode::BAD_REQUEST,
            &form_page(&a, &csrf, Some(u.id.0), p, Some(&u), now, Some(e)),
        ),
    }
}

#[derive(Debug, serde::Deserialize)]
pub struct ActionForm {
    confirm: Option<String>,
}

async fn action(
    a: IdpAdmin,
    state: web::Data<IdpState>,
    ctx: web::Data<WebContext>,
    path: web::Path<(i64, String)>,
    form: web::Form<ActionForm>,
) -> IdpResult<HttpResponse> {
    let (id, name) = path.into_inner();
    let action = UserAction::parse(&name)?;
    let u = load_user(&a, id).await?;
    user_admin::check(action, a.0.user.id, &u, form.confirm.as_deref())?;
    let (t, admin, now, mail) = (
        a.0.tenant.clone(),
        a.0.user.id,
        state.now(),
        mail_ctx(&a.0.tenant, &ctx),
    );
    let ttls = LinkTtls {
        invite_secs: state.settings.invite_ttl_secs,
        reset_secs: state.settings.reset_ttl_secs,
    };
    let done = kollegium_tenants::web::block(move || -> IdpResult<Performed> {
        let mut conn = t.conn(&IDP_DB)?;
        Ok(user_admin::perform(
            &mut conn, now, admin, &u, action, &mail, ttls,
        )?)
    })
    .await??;
    if action.mails() {
        ctx.jobs.poke(a.0.tenant.slug(), &crate::IDP_DB);
    }
    // Deactivating or deleting ended the account's sessions: the workspace learns it now.
    crate::oidc::backchannel::settle(&ctx, &a.0.tenant, now).await;
    let told = match action {
        UserAction::Disable => Done::Disabled,
        UserAction::Enable => Done::Enabled,
        UserAction::ResetTotp => Done::TotpReset,
        UserAction::Unlock => Done::Unlocked,
        UserAction::Reset => Done::LinkSent,
        UserAction::Resend => Done::InvitationResent,
        UserAction::Delete => Done::Deleted,
    };
    Ok(match done {
        Performed::Deleted => see_other(&told.at("/id/admin/users")),
        Performed::Saved => see_other(&told.at(&format!("/id/admin/users/{id}"))),
    })
}

/// The question before an action (`GET /id/admin/users/{id}/{action}`): deactivating an
/// account, resetting its second factor or deleting it is asked first; the other actions
/// need no question and lead back to the account's page.
async fn confirm(
    a: IdpAdmin,
    csrf: CsrfToken,
    path: web::Path<(i64, String)>,
) -> IdpResult<HttpResponse> {
    let (id, name) = path.into_inner();
    let action = UserAction::parse(&name).map_err(|_| IdpError::NotFound)?;
    let u = load_user(&a, id).await?;
    // Refused actions say so now, not after the question.
    user_admin::check(action, a.0.user.id, &u, Some(u.username.as_str()))?;
    let back = format!("/id/admin/users/{id}");
    let (title, question, consequence, button) = match action {
        UserAction::Disable => (
            "Konto deaktivieren?",
            format!(
                "Wollen Sie das Konto von {} wirklich deaktivieren?",
                u.display_name
            ),
            "Alle Sitzungen dieses Kontos enden sofort, auch im Arbeitsplatz. Die Person kann              sich nicht mehr anmelden, bis Sie das Konto wieder aktivieren. Nachrichten und              Daten bleiben erhalten.",
            "Ja, deaktivieren",
        ),
        UserAction::ResetTotp => (
            "Zwei-Faktor-Anmeldung zurücksetzen?",
            format!(
                "Wollen Sie die Zwei-Faktor-Anmeldung von {} wirklich zurücksetzen?",
                u.display_name
            ),
            "Danach reicht für dieses Konto das Passwort, bis die Person die              Zwei-Faktor-Anmeldung neu einrichtet. Tun Sie das nur, wenn das Telefon und die              Wiederherstellungscodes verloren sind.",
            "Ja, zurücksetzen",
        ),
        // Deleting asks for the user name on the account's page; the rest needs no question.
        _ => return Ok(see_other(&back)),
    };
    Confirm {
        layout: layout(&a.0.tenant, Some(&a.0), &csrf, "/id/admin/users"),
        title: title.into(),
        question,
        consequence: consequence.into(),
        action: format!("/id/admin/users/{id}/{}", action.as_str()),
        button: button.into(),
        cancel: back,
    }
    .response()
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/id/admin/users", web::get().to(list))
        .route("/id/admin/users", web::post().to(create))
        .route("/id/admin/users/new", web::get().to(new_form))
        .route("/id/admin/users/{id}", web::get().to(edit_form))
        .route("/id/admin/users/{id}", web::post().to(update))
        .route("/id/admin/users/{id}/{action}", web::get().to(confirm))
        .route("/id/admin/users/{id}/{action}", web::post().to(action));
}
