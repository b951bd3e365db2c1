//! Zwei-Faktor in self-service (`/id/account/totp`): status, enrolment with a QR code,
//! recovery codes shown once, and disabling (current password + code).
//!
//! The secret of an enrolment in progress travels in a hidden form field, sealed with a
//! practice key and bound to the account, the session and its start time
//! ([`totp::seal_pending`]); it is stored only once a code from the app confirms it.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use diesel::SqliteConnection;
use kollegium_tenants::secrets::Zeroizing;
use kollegium_tenants::web::{CsrfToken, Layout, WebContext};
use kollegium_tenants::{Tenant, UnixTime};

use super::attempt::{self, Attempt, Reserved};
use crate::error::{IdpError, IdpResult};
use crate::events::{self, Event, EventKind};
use crate::mfa::{self, Check};
use crate::passwords::Verified;
use crate::sessions::{IdpSession, Origin};
use crate::state::IdpState;
use crate::throttle;
use crate::users::{self, User};
use crate::views::{layout, page, page_status, see_other};
use crate::{IDP_DB, devices, lockout, policy, totp};

pub const EXPIRED: &str =
    "Die Einrichtung ist abgelaufen oder ungültig. Bitte beginnen Sie noch einmal.";
pub const WRONG_CODE: &str = "Der Code stimmt nicht. Bitte prüfen Sie die Uhrzeit Ihres Telefons und geben Sie den aktuellen Code ein.";
const ALREADY: &str = "Die Zwei-Faktor-Anmeldung ist für Ihr Konto bereits eingerichtet.";

#[derive(Template)]
#[template(path = "pages/idp/totp_enroll.html")]
pub struct EnrolPage {
    pub layout: Layout,
    pub forced: bool,
    pub action: &'static str,
    pub pending: String,
    pub next: String,
    pub qr: Option<String>,
    pub uri: String,
    pub secret_groups: String,
    pub error: Option<&'static str>,
}

#[derive(Template)]
#[template(path = "pages/idp/totp_codes.html")]
pub struct CodesPage {
    pub layout: Layout,
    pub codes: Vec<String>,
    pub continue_href: String,
}

/// Where an enrolment form posts to and what surrounds it.
pub struct EnrolCtx<'a> {
    pub tenant: &'a Tenant,
    pub user: &'a User,
    pub session_id: i64,
    pub layout: Layout,
    pub forced: bool,
    pub action: &'static str,
    pub next: String,
}

/// The enrolment page for `secret` (a new one, or the pending one shown again).
pub fn enrol_page(
    c: EnrolCtx<'_>,
    secret: &[u8],
    now: UnixTime,
    error: Option<&'static str>,
) -> EnrolPage {
    let uri = totp::otpauth_uri(c.tenant.display_name(), &c.user.username, secret);
    let secret_groups = totp::base32_grouped(secret);
    EnrolPage {
        layout: c.layout,
        forced: c.forced,
        action: c.action,
        pending: totp::seal_pending(
            c.tenant.secret(),
            c.tenant.slug(),
            c.user.id,
            c.session_id,
            secret,
            now,
        ),
        next: c.next,
        qr: totp::qr_data_uri(&uri),
        uri,
        secret_groups,
        error,
    }
}

/// The outcome of confirming an enrolment.
pub enum Confirmed {
    /// Stored; the recovery codes to show once.
    Codes(Vec<String>),
    /// Wrong code: show the same secret again with this message.
    Retry(&'static str, Zeroizing<Vec<u8>>),
    /// Expired, forged or already enrolled.
    Refused(&'static str),
}

/// Confirms an enrolment: the pending secret must be genuine and current, and the code one
/// of its codes. Stores it, issues recovery codes, records `totp_enabled`. Blocking.
pub fn confirm(
    conn: &mut SqliteConnection,
    tenant: &Tenant,
    user: &User,
    session_id: i64,
    form: &ConfirmForm,
    ip: &str,
    now: UnixTime,
) -> IdpResult<Confirmed> {
    let Some(secret) = totp::open_pending(
        tenant.secret(),
        tenant.slug(),
        user.id,
        session_id,
        &form.pending,
        now,
    ) else {
        return Ok(Confirmed::Refused(EXPIRED));
    };
    let Some(step) = totp::matching_step(&secret, &form.code, now) else {
        return Ok(Confirmed::Retry(WRONG_CODE, secret));
    };
    let fresh = users::by_id(conn, user.id)?.ok_or(IdpError::NotFound)?;
    if fresh.has_totp() {
        return Ok(Confirmed::Refused(ALREADY));
    }
    let sealed = totp::seal(tenant.secret(), tenant.slug(), user.id, &secret);
    let codes = mfa::new_recovery_codes();
    mfa::enable(conn, user.id, &sealed, step, &codes)?;
    events::record(
        conn,
        now,
        &Event {
            user: Some(user.id),
            actor: Some(user.id),
            ip: Some(ip),
            ..Event::new(EventKind::TotpEnabled)
        },
    )?;
    Ok(Confirmed::Codes(codes))
}

#[derive(Template)]
#[template(path = "pages/idp/account_totp.html")]
struct StatusPage {
    layout: Layout,
    has_totp: bool,
    required: bool,
    recovery_left: i64,
    notice: Option<&'static str>,
    error: Option<&'static str>,
}

async fn status_page(
    s: &IdpSession,
    csrf: &CsrfToken,
    notice: Option<&'static str>,
    error: Option<&'static str>,
    status: StatusCode,
) -> IdpResult<HttpResponse> {
    let (t, uid, is_admin) = (s.tenant.clone(), s.user.id, s.user.is_admin);
    let (left, required) = kollegium_tenants::web::block(move || -> IdpResult<_> {
        let mut conn = t.conn(&IDP_DB)?;
        Ok((
            mfa::recovery_left(&mut conn, uid)?,
            policy::mfa(&mut conn)?.requires(is_admin),
        ))
    })
    .await??;
    page_status(
        status,
        &StatusPage {
            layout: layout(&s.tenant, Some(s), csrf, "/id/account/totp"),
            has_totp: s.user.has_totp(),
            required,
            recovery_left: left,
            notice,
            error,
        },
    )
}

async fn show(
    s: IdpSession,
    csrf: CsrfToken,
    q: web::Query<super::done::DoneQuery>,
) -> IdpResult<HttpResponse> {
    status_page(&s, &csrf, q.notice(), None, StatusCode::OK).await
}

fn account_ctx<'a>(s: &'a IdpSession, csrf: &CsrfToken) -> EnrolCtx<'a> {
    EnrolCtx {
        tenant: &s.tenant,
        user: &s.user,
        session_id: s.session.id,
        layout: layout(&s.tenant, Some(s), csrf, "/id/account/totp"),
        forced: false,
        action: "/id/account/totp/confirm",
        next: "/id/account/totp".into(),
    }
}

async fn start(
    s: IdpSession,
    csrf: CsrfToken,
    state: web::Data<IdpState>,
) -> IdpResult<HttpResponse> {
    if s.user.has_totp() {
        return Ok(see_other("/id/account/totp"));
    }
    let secret = totp::generate_secret();
    page(&enrol_page(
        account_ctx(&s, &csrf),
        &secret,
        state.now(),
        None,
    ))
}

#[derive(Debug, serde::Deserialize)]
pub struct ConfirmForm {
    pub pending: String,
    pub code: String,
    pub next: Option<String>,
}

async fn confirm_account(
    req: HttpRequest,
    s: IdpSession,
    csrf: CsrfToken,
    state: web::Data<IdpState>,
    form: web::Form<ConfirmForm>,
) -> IdpResult<HttpResponse> {
    let form = form.into_inner();
    let now = state.now();
    let ip = Origin::of(&req).ip;
    let (t, user, sid) = (s.tenant.clone(), s.user.clone(), s.session.id);
    let result = kollegium_tenants::web::block(move || -> IdpResult<_> {
        let mut conn = t.conn(&IDP_DB)?;
        confirm(&mut conn, &t, &user, sid, &form, &ip, now)
    })
    .await??;
    match result {
        Confirmed::Codes(codes) => page(&CodesPage {
            layout: layout(&s.tenant, Some(&s), &csrf, "/id/account/totp"),
            codes,
            continue_href: "/id/account/totp".into(),
        }),
        Confirmed::Retry(msg, secret) => page_status(
            StatusCode::BAD_REQUEST,
            &enrol_page(account_ctx(&s, &csrf), &secret, now, Some(msg)),
        ),
        Confirmed::Refused(msg) => {
            status_page(&s, &csrf, None, Some(msg), StatusCode::BAD_REQUEST).await
        }
    }
}

#[derive(Debug, serde::Deserialize)]
pub struct DisableForm {
    current: String,
    code: String,
}

async fn disable(
    req: HttpRequest,
    s: IdpSession,
    csrf: CsrfToken,
    state: web::Data<IdpState>,
    ctx: web::Data<WebContext>,
    form: web::Form<DisableForm>,
) -> IdpResult<HttpResponse> {
    const WRONG: &str = "Passwort oder Code ist falsch.";
    let form = form.into_inner();
    let now = state.now();
    let ip = Origin::of(&req).ip;
    if !s.user.has_totp() {
        return Ok(see_other("/id/account/totp"));
    }
    if form.current.len() > 1024 || form.code.len() > 64 {
        return status_page(&s, &csrf, None, Some(WRONG), StatusCode::BAD_REQUEST).await;
    }
    // Guesses count against the account like wrong passwords at login.
    let device_cookie = req
        .cookie(devices::cookie_name(ctx.settings.scheme))
        .map(|c| c.value().to_owned());
    let on_account = Attempt::Account {
        user: Box::new(s.user.clone()),
        login: String::new(),
    };
    let reserved =
        attempt::reserve(&s.tenant, &state, &ctx, on_account, &ip, device_cookie, now).await?;
    let Ok(Reserved { keys, .. }) = reserved else {
        return Err(IdpError::TooManyRequests);
    };
    let (t, is_admin) = (s.tenant.clone(), s.user.is_admin);
    let required = kollegium_tenants::web::block(move || -> IdpResult<bool> {
        Ok(policy::mfa(&mut *t.conn(&IDP_DB)?)?.requires(is_admin))
    })
    .await??;
    if required {
        return status_page(
            &s,
            &csrf,
            None,
            Some("Ihre Praxis verlangt die Zwei-Faktor-Anmeldung; sie kann nicht deaktiviert werden."),
            StatusCode::FORBIDDEN,
        )
        .await;
    }
    let pw = state
        .hasher
        .verify(form.current, s.user.password_hash.clone())
        .await
        .map_err(|e| IdpError::internal("checking the password", e))?;
    let (t, user, st) = (s.tenant.clone(), s.user.clone(), state.clone());
    let ok = kollegium_tenants::web::block(move || -> IdpResult<bool> {
        let mut conn = t.conn(&IDP_DB)?;
        let code = if pw == Verified::No {
            Check::Wrong
        } else {
            mfa::check(
                &mut conn,
                &t,
                user.id,
                user.totp_secret.as_deref(),
                &form.code,
                now,
            )?
        };
        if code == Check::Wrong {
            let detail = "totp_disable";
            lockout::failed(
                &mut conn,
                &keys,
                Some(user.id),
                &ip,
                detail,
                &st.settings,
                now,
            )?;
            return Ok(false);
        }
        throttle::succeeded(&mut conn, &keys, 1)?;
        mfa::disable(&mut conn, user.id)?;
        events::record(
            &mut conn,
            now,
            &Event {
                user: Some(user.id),
                actor: Some(user.id),
                ip: Some(&ip),
                ..Event::new(EventKind::TotpDisabled)
            },
        )?;
        Ok(true)
    })
    .await??;
    if !ok {
        return status_page(&s, &csrf, None, Some(WRONG), StatusCode::BAD_REQUEST).await;
    }
    Ok(see_other(
        &super::done::Done::TotpDisabled.at("/id/account/totp"),
    ))
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/id/account/totp", web::get().to(show))
        .route("/id/account/totp/start", web::post().to(start))
        .route("/id/account/totp/confirm", web::post().to(confirm_account))
        .route("/id/account/totp/disable", web::post().to(disable));
}
