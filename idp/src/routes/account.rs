//! Self-service (`/id/account`): profile, password, sessions.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use kollegium_tenants::web::{CsrfToken, Layout, WebContext};
use kollegium_tenants::{Tenant, catalog};

use super::attempt::{self, Attempt, Reserved};
use super::confirm::Confirm;
use super::done::{Done, DoneQuery};
use crate::error::{IdpError, IdpResult};
use crate::events::{self, Event, EventKind};
use crate::passwords::{self, PasswordContext, PolicyError, Verified};
use crate::sessions::{self, IdpSession, Origin, Session, Stage};
use crate::state::IdpState;
use crate::throttle;
use crate::users::{self, Profile};
use crate::views::{layout, page_status, see_other, when};
use crate::{IDP_DB, devices, lockout, oidc};

pub struct SessionView {
    pub id: i64,
    /// The name its member gave the device ("Empfang-PC"), if any.
    pub name: Option<String>,
    /// Browser and system ("Firefox 133 auf Windows").
    pub agent: String,
    pub ip: String,
    pub last_seen: String,
    pub created: String,
    pub current: bool,
}

impl SessionView {
    fn of(
        s: &Session,
        device_names: &[(i64, String)],
        current: i64,
        tenant: &Tenant,
        now: i64,
    ) -> Self {
        // A name given on this session wins; else the approved device's own name.
        let device_name = || {
            s.device_id.and_then(|d| {
                device_names
                    .iter()
                    .find(|(id, _)| *id == d)
                    .map(|(_, n)| n.clone())
            })
        };
        Self {
            id: s.id,
            name: s.device_name.clone().or_else(device_name),
            agent: sessions::describe_agent(&s.user_agent),
            ip: s.ip.clone(),
            last_seen: when(tenant, s.last_seen_at, now),
            created: when(tenant, s.created_at, now),
            current: s.id == current,
        }
    }
}

#[derive(Template)]
#[template(path = "pages/idp/account.html")]
struct AccountPage {
    layout: Layout,
    display_name: String,
    username: String,
    email: String,
    roles: Vec<String>,
    is_admin: bool,
    specialty: Option<String>,
    kv_region: Option<String>,
    work_areas: Vec<String>,
    has_totp: bool,
    sessions: Vec<SessionView>,
    error: Option<String>,
    notice: Option<&'static str>,
}

async fn render(
    s: &IdpSession,
    csrf: &CsrfToken,
    now: i64,
    error: Option<String>,
    notice: Option<&'static str>,
    status: StatusCode,
) -> IdpResult<HttpResponse> {
    let t = s.tenant.clone();
    let uid = s.user.id;
    let (list, names) = kollegium_tenants::web::block(move || -> IdpResult<_> {
        let mut conn = t.conn(&IDP_DB)?;
        Ok((
            sessions::list_open(&mut conn, uid)?,
            devices::names_of(&mut conn, uid)?,
        ))
    })
    .await??;
    let u = &s.user;
    page_status(
        status,
        &AccountPage {
            layout: layout(&s.tenant, Some(s), csrf, "/id/account").with_script(passwords::METER),
            display_name: u.display_name.clone(),
            username: u.username.clone(),
            email: u.email.clone(),
            roles: u.role_labels(),
            is_admin: u.is_admin,
            specialty: u
                .specialty
                .as_deref()
                .map(|x| catalog::label(catalog::SPECIALTIES, x)),
            kv_region: u
                .kv_region
                .as_deref()
                .map(|x| catalog::label(catalog::KV_REGIONS, x)),
            work_areas: u.work_areas.clone(),
            has_totp: u.has_totp(),
            sessions: list
                .iter()
                .map(|x| SessionView::of(x, &names, s.session.id, &s.tenant, now))
                .collect(),
            error,
            notice,
        },
    )
}

async fn show(
    s: IdpSession,
    csrf: CsrfToken,
    state: web::Data<IdpState>,
    q: web::Query<DoneQuery>,
) -> IdpResult<HttpResponse> {
    render(&s, &csrf, state.now(), None, q.notice(), StatusCode::OK).await
}

#[derive(Debug, serde::Deserialize)]
pub struct ProfileForm {
    display_name: String,
}

async fn save_profile(
    s: IdpSession,
    csrf: CsrfToken,
    state: web::Data<IdpState>,
    form: web::Form<ProfileForm>,
) -> IdpResult<HttpResponse> {
    let u = &s.user;
    let p = Profile {
        username: u.username.clone(),
        email: u.email.clone(),
        display_name: form.into_inner().display_name,
        is_admin: u.is_admin,
        roles: u.roles.clone(),
        specialty: u.specialty.clone(),
        kv_region: u.kv_region.clone(),
        work_areas: u.work_areas.clone(),
    };
    let p = match p.validate() {
        Ok(p) => p,
        Err(e) => {
            return render(
                &s,
                &csrf,
                state.now(),
                Some(e.to_string()),
                None,
                StatusCode::BAD_REQUEST,
            )
            .await;
        }
    };
    let (t, uid, now) = (s.tenant.clone(), u.id, state.now());
    kollegium_tenants::web::block(move || -> IdpResult<()> {
        let mut conn = t.conn(&IDP_DB)?;
        users::update_profile(&mut conn, uid, &p, now)?
            .map_err(|e| IdpError::BadRequest(e.to_string()))?;
        events::record(
            &mut conn,
            now,
            &Event {
                user: Some(uid),
                actor: Some(uid),
                detail: "profile",
                ..Event::new(EventKind::UserUpdated)
            },
        )?;
        Ok(())
    })
    .await??;
    Ok(see_other(&Done::ProfileSaved.at(ACCOUNT)))
}

#[derive(Debug, serde::Deserialize)]
pub struct PasswordForm {
    current: String,
    password: String,
    password_repeat: String,
}

async fn change_password(
    req: HttpRequest,
    s: IdpSession,
    csrf: CsrfToken,
    state: web::Data<IdpState>,
    ctx: web::Data<WebContext>,
    form: web::Form<PasswordForm>,
) -> IdpResult<HttpResponse> {
    const WRONG_CURRENT: &str = "Das bisherige Passwort ist falsch.";
    let form = form.into_inner();
    let fail = |msg: String| {
        render(
            &s,
            &csrf,
            state.now(),
            Some(msg),
            None,
            StatusCode::BAD_REQUEST,
        )
    };
    if form.current.len() > 1024 {
        return fail(WRONG_CURRENT.into()).await;
    }
    // The current password is a login in all but name: a stolen session must not be a
    // way to guess it faster. Same keys, delay, lockout and events as at `/id/login`.
    let now = state.now();
    let ip = Origin::of(&req).ip;
    let device_cookie = req
        .cookie(devices::cookie_name(ctx.settings.scheme))
        .map(|c| c.value().to_owned());
    let on_account = Attempt::Account {
        user: Box::new(s.user.clone()),
        login: String::new(),
    };
    let reserved =
        attempt::reserve(&s.tenant, &state, &ctx, on_account, &ip, device_cookie, now).await?;
    let keys = match reserved {
        Ok(Reserved { keys, .. }) => keys,
        Err(refusal) => {
            let msg = refusal.message().into();
            return render(&s, &csrf, now, Some(msg), None, refusal.status()).await;
        }
    };
    let wrong = state
        .hasher
        .verify(form.current, s.user.password_hash.clone())
        .await
        .map_err(|e| IdpError::internal("checking the password", e))?
        == Verified::No;
    let (t, st, uid, at) = (s.tenant.clone(), state.clone(), s.user.id, ip.clone());
    kollegium_tenants::web::block(move || -> IdpResult<()> {
        let mut conn = t.conn(&IDP_DB)?;
        if wrong {
            let detail = "password_change";
            Ok(lockout::failed(
                &mut conn,
                &keys,
                Some(uid),
                &at,
                detail,
                &st.settings,
                now,
            )?)
        } else {
            Ok(throttle::succeeded(&mut conn, &keys, 1)?)
        }
    })
    .await??;
    if wrong {
        return fail(WRONG_CURRENT.into()).await;
    }
    if form.password != form.password_repeat {
        return fail(PolicyError::Mismatch.to_string()).await;
    }
    let context = PasswordContext::person(
        s.tenant.display_name(),
        s.tenant.slug().as_str(),
        &s.user.username,
        &s.user.display_name,
        &s.user.email,
        now,
    );
    if let Err(e) = passwords::check_new_password(&form.password, &context) {
        return fail(e.to_string()).await;
    }
    let hash = state
        .hasher
        .hash(form.password)
        .await
        .map_err(|e| IdpError::internal("hashing a password", e))?;
    let (t, uid, sess) = (s.tenant.clone(), s.user.id, s.session.clone());
    let token = kollegium_tenants::web::block(move || -> IdpResult<String> {
        let mut conn = t.conn(&IDP_DB)?;
        users::set_password(&mut conn, uid, &hash, false, now)?;
        sessions::end_all(&mut conn, uid, Some(sess.id), "password changed", now)?;
        oidc::grants::revoke_all_for_user(&mut conn, uid, "password changed", now)?;
        events::record(
            &mut conn,
            now,
            &Event {
                user: Some(uid),
                actor: Some(uid),
                ip: Some(&ip),
                ..Event::new(EventKind::PasswordChanged)
            },
        )?;
        Ok(sessions::promote(
            &mut conn,
            sess.id,
            Stage::Active,
            &sess.amr,
            sess.device_id,
            now,
        )?)
    })
    .await??;
    oidc::backchannel::settle(&ctx, &s.tenant, now).await;
    let mut res = see_other(&Done::PasswordChanged.at(ACCOUNT));
    let _ = res.add_cookie(&sessions::cookie(ctx.settings.scheme, &token));
    Ok(res)
}

const ACCOUNT: &str = "/id/account";

/// Only the user's own open session: someone else's id is simply not found.
async fn own_session(s: &IdpSession, id: i64) -> IdpResult<Session> {
    let (t, uid) = (s.tenant.clone(), s.user.id);
    kollegium_tenants::web::block(move || -> IdpResult<Session> {
        sessions::by_id(&mut *t.conn(&IDP_DB)?, id)?
            .filter(|x| x.user == uid && x.ended_at.is_none())
            .ok_or(IdpError::NotFound)
    })
    .await?
}

/// "Wirklich beenden?" before ending one session (`GET /id/account/sessions/{id}/end`).
async fn confirm_end(
    s: IdpSession,
    csrf: CsrfToken,
    id: web::Path<i64>,
) -> IdpResult<HttpResponse> {
    let target = own_session(&s, id.into_inner()).await?;
    let what = target
        .device_name
        .clone()
        .unwrap_or_else(|| sessions::describe_agent(&target.user_agent));
    let current = target.id == s.session.id;
    Confirm {
        layout: layout(&s.tenant, Some(&s), &csrf, ACCOUNT),
        title: "Sitzung beenden?".into(),
        question: if current {
            format!("Wollen Sie diese Sitzung ({what}) wirklich beenden? Sie werden abgemeldet.")
        } else {
            format!("Wollen Sie die Sitzung „{what}“ wirklich beenden?")
        },
        consequence: "Der Browser dort ist sofort abgemeldet, auch im Arbeitsplatz; \
                      ungesendete Eingaben dort gehen verloren."
            .into(),
        action: format!("/id/account/sessions/{}/end", target.id),
        button: "Ja, beenden".into(),
        cancel: ACCOUNT.into(),
    }
    .response()
}

async fn end_session(
    s: IdpSession,
    state: web::Data<IdpState>,
    ctx: web::Data<WebContext>,
    id: web::Path<i64>,
) -> IdpResult<HttpResponse> {
    let (t, uid, now, id) = (s.tenant.clone(), s.user.id, state.now(), id.into_inner());
    kollegium_tenants::web::block(move || -> IdpResult<()> {
        let mut conn = t.conn(&IDP_DB)?;
        // Only the user's own sessions: someone else's id is simply not found.
        let target = sessions::by_id(&mut conn, id)?
            .filter(|x| x.user == uid)
            .ok_or(IdpError::NotFound)?;
        sessions::end(&mut conn, target.id, "revoked by user", now)?;
        events::record(
            &mut conn,
            now,
            &Event {
                user: Some(uid),
                actor: Some(uid),
                ..Event::new(EventKind::SessionRevoked)
            },
        )?;
        Ok(())
    })
    .await??;
    oidc::backchannel::settle(&ctx, &s.tenant, now).await;
    if id == s.session.id {
        let mut res = see_other("/id/login?done=logout");
        let _ = res.add_cookie(&sessions::removal(ctx.settings.scheme));
        return Ok(res);
    }
    Ok(see_other(&Done::SessionEnded.at(ACCOUNT)))
}

/// "Wirklich alle anderen beenden?" (`GET /id/account/sessions/end-others`).
async fn confirm_end_others(s: IdpSession, csrf: CsrfToken) -> IdpResult<HttpResponse> {
    Confirm {
        layout: layout(&s.tenant, Some(&s), &csrf, ACCOUNT),
        title: "Alle anderen Sitzungen beenden?".into(),
        question: "Wollen Sie wirklich alle Sitzungen außer dieser beenden?".into(),
        consequence: "Alle anderen Browser, in denen Sie angemeldet sind, sind sofort \
                      abgemeldet, auch im Arbeitsplatz. Diese Sitzung bleibt bestehen."
            .into(),
        action: "/id/account/sessions/end-others".into(),
        button: "Ja, alle anderen beenden".into(),
        cancel: ACCOUNT.into(),
    }
    .response()
}

async fn end_others(
    s: IdpSession,
    state: web::Data<IdpState>,
    ctx: web::Data<WebContext>,
) -> IdpResult<HttpResponse> {
    let (t, uid, keep, now) = (s.tenant.clone(), s.user.id, s.session.id, state.now());
    kollegium_tenants::web::block(move || -> IdpResult<()> {
        let mut conn = t.conn(&IDP_DB)?;
        sessions::end_all(&mut conn, uid, Some(keep), "revoked by user", now)?;
        events::record(
            &mut conn,
            now,
            &Event {
                user: Some(uid),
                actor: Some(uid),
                detail: "all others",
                ..Event::new(EventKind::SessionRevoked)
            },
        )?;
        Ok(())
    })
    .await??;
    oidc::backchannel::settle(&ctx, &s.tenant, now).await;
    Ok(see_other(&Done::OthersEnded.at(ACCOUNT)))
}

#[derive(Debug, serde::Deserialize)]
pub struct DeviceNameForm {
    name: String,
}

/// Names the device of one of the member's sessions ("Empfang-PC").
async fn name_device(
    s: IdpSession,
    csrf: CsrfToken,
    state: web::Data<IdpState>,
    id: web::Path<i64>,
    form: web::Form<DeviceNameForm>,
) -> IdpResult<HttpResponse> {
    let name = match sessions::parse_device_name(&form.name) {
        Ok(n) => n,
        Err(why) => {
            let now = state.now();
            return render(
                &s,
                &csrf,
                now,
                Some(why.into()),
                None,
                StatusCode::BAD_REQUEST,
            )
            .await;
        }
    };
    let (t, uid, id) = (s.tenant.clone(), s.user.id, id.into_inner());
    let found = kollegium_tenants::web::block(move || -> IdpResult<bool> {
        Ok(sessions::set_device_name(
            &mut *t.conn(&IDP_DB)?,
            uid,
            id,
            name.as_deref(),
        )?)
    })
    .await??;
    if !found {
        return Err(IdpError::NotFound);
    }
    Ok(see_other(&Done::DeviceNamed.at(ACCOUNT)))
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/id/account", web::get().to(show))
        .route("/id/account/profile", web::post().to(save_profile))
        .route("/id/account/password", web::post().to(change_password))
        .route(
            "/id/account/sessions/end-others",
            web::get().to(confirm_end_others),
        )
        .route(
            "/id/account/sessions/end-others",
            web::post().to(end_others),
        )
        .route("/id/account/sessions/{id}/end", web::get().to(confirm_end))
        .route("/id/account/sessions/{id}/end", web::post().to(end_session))
        .route(
            "/id/account/sessions/{id}/name",
            web::post().to(name_device),
        );
}
