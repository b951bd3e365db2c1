//! The second login step (`/id/login/totp`) and forced enrolment (`/id/login/enroll`).
//!
//! Both act on a [`PendingLogin`] (password checked, nothing else authorised). Wrong codes
//! are counted and locked out exactly like wrong passwords (same throttle keys), so the
//! six digits cannot be guessed in parallel. Success continues to device approval
//! ([`flow::after_second_factor`]) under a fresh session token with `amr` "pwd otp".

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use kollegium_tenants::Tenant;
use kollegium_tenants::web::{CsrfToken, Layout, WebContext};

use super::attempt::{self, Attempt, Refusal, Reserved};
use super::login::{NextQuery, continue_at, tool_form_csp, with_csp};
use super::safe_next;
use super::totp::{CodesPage, ConfirmForm, Confirmed, EnrolCtx, enrol_page};
use crate::devices;
use crate::error::{IdpError, IdpResult};
use crate::events::{self, Event, EventKind};
use crate::mfa::{self, Check};
use crate::sessions::{self, IdpSession, Origin, PendingLogin, Stage};
use crate::state::IdpState;
use crate::throttle;
use crate::totp;
use crate::users;
use crate::views::{layout, page, page_status, see_other};
use crate::{IDP_DB, mail_ctx};
use crate::{flow, lockout};

pub use super::attempt::WRONG_CODE;

#[derive(Template)]
#[template(path = "pages/idp/login_totp.html")]
struct TotpPage {
    layout: Layout,
    practice_name: String,
    next: String,
    error: Option<&'static str>,
}

fn totp_page(
    tenant: &Tenant,
    csrf: &CsrfToken,
    next: String,
    error: Option<&'static str>,
) -> TotpPage {
    TotpPage {
        layout: layout(tenant, None, csrf, ""),
        practice_name: tenant.display_name().to_owned(),
        next,
        error,
    }
}

async fn totp_form(
    tenant: Tenant,
    csrf: CsrfToken,
    pending: PendingLogin,
    q: web::Query<NextQuery>,
) -> IdpResult<HttpResponse> {
    let next = safe_next(q.next.as_deref());
    if pending.0.session.stage != Stage::Totp {
        return Ok(see_other(&continue_at(pending.0.session.stage, &next)));
    }
    // The code's answer may end in a redirect to the tool the sign-in is for.
    let csp = tool_form_csp(&tenant, &next).await?;
    with_csp(page(&totp_page(&tenant, &csrf, next, None)), csp.as_ref())
}

#[derive(Debug, serde::Deserialize)]
pub struct CodeForm {
    code: String,
    next: Option<String>,
}

/// After the second factor: device approval or signed in, under a fresh token. Blocking.
/// `Err(Refusal::DeviceRefused)` when the device is refused (the session is ended).
fn finish(
    conn: &mut diesel::SqliteConnection,
    s: &IdpSession,
    device_cookie: Option<&str>,
    origin: &Origin,
    mail: &crate::mail::MailCtx,
    now: i64,
) -> IdpResult<Result<(String, flow::Outcome), Refusal>> {
    let outcome = flow::after_second_factor(conn, &s.user, device_cookie, origin, mail, now)?;
    if outcome.device_refused {
        sessions::end(conn, s.session.id, "device refused", now)?;
        return Ok(Err(Refusal::DeviceRefused));
    }
    let token = sessions::promote(
        conn,
        s.session.id,
        outcome.stage,
        "pwd otp",
        outcome.device_id,
        now,
    )?;
    events::record(
        conn,
        now,
        &Event {
            user: Some(s.user.id),
            ip: Some(&origin.ip),
            detail: outcome.stage.as_str(),
            ..Event::new(EventKind::LoginOk)
        },
    )?;
    Ok(Ok((token, outcome)))
}

fn continue_response(
    ctx: &WebContext,
    mut res: HttpResponse,
    token: &str,
    outcome: &flow::Outcome,
) -> HttpResponse {
    let _ = res.add_cookie(&sessions::cookie(ctx.settings.scheme, token));
    if let Some(d) = &outcome.new_device_cookie {
        let _ = res.add_cookie(&devices::cookie(ctx.settings.scheme, d));
    }
    res
}

async fn totp_submit(
    req: HttpRequest,
    tenant: Tenant,
    csrf: CsrfToken,
    state: web::Data<IdpState>,
    ctx: web::Data<WebContext>,
    pending: PendingLogin,
    form: web::Form<CodeForm>,
) -> IdpResult<HttpResponse> {
    let form = form.into_inner();
    let next = safe_next(form.next.as_deref());
    let s = pending.0;
    if s.session.stage != Stage::Totp {
        return Ok(see_other(&continue_at(s.session.stage, &next)));
    }
    let origin = Origin::of(&req);
    let now = state.now();
    let mail = mail_ctx(&tenant, &ctx);

    // 1. Reserve the attempt under the same keys as a password guess.
    let device_cookie = req
        .cookie(devices::cookie_name(ctx.settings.scheme))
        .map(|c| c.value().to_owned());
    let csp = tool_form_csp(&tenant, &next).await?;
    let again = |refusal: Refusal| -> IdpResult<HttpResponse> {
        let mut res = with_csp(
            page_status(
                refusal.status(),
                &totp_page(&tenant, &csrf, next.clone(), Some(refusal.message())),
            ),
            csp.as_ref(),
        )?;
        if refusal.ends_login() {
            let _ = res.add_cookie(&sessions::removal(ctx.settings.scheme));
        }
        Ok(res)
    };
    let login = s.user.username.clone();
    let reserved = attempt::reserve(
        &tenant,
        &state,
        &ctx,
        Attempt::Account {
            user: Box::new(s.user.clone()),
            login,
        },
        &origin.ip,
        device_cookie.clone(),
        now,
    )
    .await?;
    let keys = match reserved {
        Ok(Reserved { keys, .. }) => keys,
        Err(refusal) => return again(refusal),
    };

    // 2. Check and consume the code, then continue.
    let (t, st) = (tenant.clone(), state.clone());
    let sess = s.clone();
    let result = kollegium_tenants::web::block(move || -> IdpResult<_> {
        let mut conn = t.conn(&IDP_DB)?;
        let uid = sess.user.id;
        let check = mfa::check(
            &mut conn,
            &t,
            uid,
            sess.user.totp_secret.as_deref(),
            &form.code,
            now,
        )?;
        if check == Check::Wrong {
            lockout::failed(
                &mut conn,
                &keys,
                Some(uid),
                &origin.ip,
                "totp",
                &st.settings,
                now,
            )?;
            return Ok(Err(Refusal::WrongCode));
        }
        throttle::succeeded(&mut conn, &keys, 2)?;
        users::reset_failures(&mut conn, uid)?;
        if check == Check::Recovery {
            let left = mfa::recovery_left(&mut conn, uid)?;
            events::record(
                &mut conn,
                now,
                &Event {
                    user: Some(uid),
                    ip: Some(&origin.ip),
                    detail: &format!("{left} übrig"),
                    ..Event::new(EventKind::RecoveryCodeUsed)
                },
            )?;
        }
        finish(
            &mut conn,
            &sess,
            device_cookie.as_deref(),
            &origin,
            &mail,
            now,
        )
    })
    .await??;
    match result {
        Ok((token, outcome)) => Ok(continue_response(
            &ctx,
            see_other(&continue_at(outcome.stage, &next)),
            &token,
            &outcome,
        )),
        Err(refusal) => again(refusal),
    }
}

fn forced_ctx<'a>(s: &'a IdpSession, csrf: &CsrfToken, next: String) -> EnrolCtx<'a> {
    EnrolCtx {
        tenant: &s.tenant,
        user: &s.user,
        session_id: s.session.id,
        layout: layout(&s.tenant, None, csrf, ""),
        forced: true,
        action: "/id/login/enroll",
        next,
    }
}

async fn enroll_form(
    csrf: CsrfToken,
    state: web::Data<IdpState>,
    pending: PendingLogin,
    q: web::Query<NextQuery>,
) -> IdpResult<HttpResponse> {
    let next = safe_next(q.next.as_deref());
    let s = pending.0;
    if s.session.stage != Stage::Enroll {
        return Ok(see_other(&continue_at(s.session.stage, &next)));
    }
    let secret = totp::generate_secret();
    page(&enrol_page(
        forced_ctx(&s, &csrf, next),
        &secret,
        state.now(),
        None,
    ))
}

async fn enroll_submit(
    req: HttpRequest,
    csrf: CsrfToken,
    state: web::Data<IdpState>,
    ctx: web::Data<WebContext>,
    pending: PendingLogin,
    form: web::Form<ConfirmForm>,
) -> IdpResult<HttpResponse> {
    let form = form.into_inner();
    let next = safe_next(form.next.as_deref());
    let s = pending.0;
    if s.session.stage != Stage::Enroll {
        return Ok(see_other(&continue_at(s.session.stage, &next)));
    }
    let origin = Origin::of(&req);
    let now = state.now();
    let mail = mail_ctx(&s.tenant, &ctx);
    let device_cookie = req
        .cookie(devices::cookie_name(ctx.settings.scheme))
        .map(|c| c.value().to_owned());
    let sess = s.clone();
    let result = kollegium_tenants::web::block(move || -> IdpResult<_> {
        let mut conn = sess.tenant.conn(&IDP_DB)?;
        let confirmed = super::totp::confirm(
            &mut conn,
            &sess.tenant,
            &sess.user,
            sess.session.id,
            &form,
            &origin.ip,
            now,
        )?;
        let codes = match confirmed {
            Confirmed::Codes(codes) => codes,
            other => return Ok(Err(other)),
        };
        let done = finish(
            &mut conn,
            &sess,
            device_cookie.as_deref(),
            &origin,
            &mail,
            now,
        )?;
        Ok(Ok((codes, done)))
    })
    .await??;
    match result {
        Ok((codes, Ok((token, outcome)))) => {
            let res = page(&CodesPage {
                layout: layout(&s.tenant, None, &csrf, ""),
                codes,
                continue_href: continue_at(outcome.stage, &next),
            })?;
            Ok(continue_response(&ctx, res, &token, &outcome))
        }
        Ok((_, Err(refusal))) => {
            let mut res = page_status(
                refusal.status(),
                &totp_page(&s.tenant, &csrf, next, Some(refusal.message())),
            )?;
            if refusal.ends_login() {
                let _ = res.add_cookie(&sessions::removal(ctx.settings.scheme));
            }
            Ok(res)
        }
        Err(Confirmed::Retry(msg, secret)) => page_status(
            StatusCode::BAD_REQUEST,
            &enrol_page(forced_ctx(&s, &csrf, next), &secret, now, Some(msg)),
        ),
        Err(Confirmed::Refused(msg)) => {
            let secret = totp::generate_secret();
            page_status(
                StatusCode::BAD_REQUEST,
                &enrol_page(forced_ctx(&s, &csrf, next), &secret, now, Some(msg)),
            )
        }
        Err(Confirmed::Codes(_)) => Err(IdpError::invariant("unreachable enrolment state")),
    }
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/id/login/totp", web::get().to(totp_form))
        .route("/id/login/totp", web::post().to(totp_submit))
        .route("/id/login/enroll", web::get().to(enroll_form))
        .route("/id/login/enroll", web::post().to(enroll_submit));
}
