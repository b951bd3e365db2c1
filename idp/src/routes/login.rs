//! Login (`/id/login`), logout and the device-approval wait page.

use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use kollegium_tenants::Tenant;
use kollegium_tenants::web::{CsrfToken, Layout, WebContext};

use super::attempt::{self, Attempt, Refusal, Reserved};
use super::{next_query, safe_next};
use crate::devices::{self, DeviceStatus};
use crate::error::{IdpError, IdpResult};
use crate::events::{self, Event, EventKind};
use crate::passwords::Verified;
use crate::sessions::{self, AnySession, Origin, PendingLogin, Stage};
use crate::state::IdpState;
use crate::throttle;
use crate::users::{self, UserStatus};
use crate::views::{layout, page, page_status, see_other};
use crate::{IDP_DB, mail_ctx};
use crate::{flow, lockout};

pub use super::attempt::LOCKED;

#[derive(Template)]
#[template(path = "pages/idp/login.html")]
struct LoginPage {
    layout: Layout,
    practice_name: String,
    next: String,
    login: String,
    error: Option<&'static str>,
    notice: Option<&'static str>,
}

#[derive(Debug, serde::Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
    done: Option<String>,
    /// Show the form even when signed in (OIDC `prompt=login`, `max_age`).
    force: Option<String>,
    /// OIDC `login_hint`: prefills the user name, nothing more.
    login_hint: Option<String>,
}

/// Longest user name or e-mail address the login form takes.
pub const MAX_LOGIN: usize = 254;

/// A `login_hint` fit to prefill the user name: trimmed, not empty, at most [`MAX_LOGIN`]
/// bytes, no control characters. Anything else is no hint at all (a cut-off name would
/// only be a wrong one). The template escapes it like any other value.
pub fn hint(raw: &str) -> Option<String> {
    let h = raw.trim();
    (!h.is_empty() && h.len() <= MAX_LOGIN && !h.chars().any(char::is_control))
        .then(|| h.to_owned())
}

#[derive(Debug, serde::Deserialize)]
pub struct LoginForm {
    login: String,
    password: String,
    next: Option<String>,
}

fn login_page(
    tenant: &Tenant,
    csrf: &CsrfToken,
    next: String,
    login: String,
    error: Option<&'static str>,
    notice: Option<&'static str>,
) -> LoginPage {
    LoginPage {
        layout: layout(tenant, None, csrf, ""),
        practice_name: tenant.display_name().to_owned(),
        next,
        login,
        error,
        notice,
    }
}

async fn form(
    tenant: Tenant,
    csrf: CsrfToken,
    any: AnySession,
    q: web::Query<LoginQuery>,
) -> IdpResult<HttpResponse> {
    let next = safe_next(q.next.as_deref());
    if let Some(s) = any.0
        && s.session.stage == Stage::Active
        && q.force.is_none()
    {
        return Ok(see_other(&next));
    }
    let notice = match q.done.as_deref() {
        Some("logout") => Some("Sie wurden abgemeldet."),
        Some("setup") => Some("Ihr Passwort ist gespeichert. Bitte melden Sie sich an."),
        Some("expired") => Some("Ihre Sitzung ist abgelaufen. Bitte melden Sie sich erneut an."),
        _ => None,
    };
    let login = q.login_hint.as_deref().and_then(hint).unwrap_or_default();
    // A sign-in for a tool may end in a redirect to it: its address in `form-action`.
    let csp = tool_form_csp(&tenant, &next).await?;
    with_csp(
        page(&login_page(&tenant, &csrf, next, login, None, notice)),
        csp.as_ref(),
    )
}

/// The page policy of a sign-in step whose form continues at `next`: for a sign-in for a
/// tool, its registered address joins `form-action` (a form's answer that ends in a redirect
/// to the tool is otherwise refused by browsers, e.g. the code step with consent already
/// given). `None`: the default policy.
pub(crate) async fn tool_form_csp(
    tenant: &Tenant,
    next: &str,
) -> IdpResult<Option<actix_web::http::header::HeaderValue>> {
    let (t, n) = (tenant.clone(), next.to_owned());
    let csp = kollegium_tenants::web::block(move || -> IdpResult<Option<String>> {
        let mut conn = t.conn(&IDP_DB)?;
        Ok(crate::oidc::consent::form_target_csp(&mut conn, &n)?)
    })
    .await??;
    Ok(csp.and_then(|c| actix_web::http::header::HeaderValue::from_str(&c).ok()))
}

/// `res` with the page policy `csp`, if there is one.
pub(crate) fn with_csp(
    res: IdpResult<HttpResponse>,
    csp: Option<&actix_web::http::header::HeaderValue>,
) -> IdpResult<HttpResponse> {
    let mut res = res?;
    if let Some(v) = csp {
        res.headers_mut()
            .insert(actix_web::http::header::CONTENT_SECURITY_POLICY, v.clone());
    }
    Ok(res)
}

/// Where a login in `stage` continues.
pub fn continue_at(stage: Stage, next: &str) -> String {
    match stage {
        Stage::Active => next.to_owned(),
        Stage::Totp => format!("/id/login/totp?{}", next_query(next)),
        Stage::Enroll => format!("/id/login/enroll?{}", next_query(next)),
        Stage::Device => format!("/id/login/device?{}", next_query(next)),
    }
}

async fn submit(
    req: HttpRequest,
    tenant: Tenant,
    csrf: CsrfToken,
    state: web::Data<IdpState>,
    ctx: web::Data<WebContext>,
    form: web::Form<LoginForm>,
) -> IdpResult<HttpResponse> {
    let form = form.into_inner();
    let next = safe_next(form.next.as_deref());
    // The page shown again (a typo) may be the one whose form ends at the tool.
    let csp = tool_form_csp(&tenant, &next).await?;
    let again = |refusal: Refusal| {
        with_csp(
            page_status(
                refusal.status(),
                &login_page(
                    &tenant,
                    &csrf,
                    next.clone(),
                    form.login.chars().take(MAX_LOGIN).collect(),
                    Some(refusal.message()),
                    None,
                ),
            ),
            csp.as_ref(),
        )
    };
    if form.login.trim().is_empty()
        || form.login.len() > MAX_LOGIN
        || form.password.is_empty()
        || form.password.len() > 1024
    {
        return again(Refusal::WrongPassword);
    }
    let origin = Origin::of(&req);
    let now = state.now();
    let mail = mail_ctx(&tenant, &ctx);
    let device_cookie = req
        .cookie(devices::cookie_name(ctx.settings.scheme))
        .map(|c| c.value().to_owned());

    // 1. Find the account and reserve the attempt.
    let reserved = attempt::reserve(
        &tenant,
        &state,
        &ctx,
        Attempt::Name(form.login.clone()),
        &origin.ip,
        device_cookie.clone(),
        now,
    )
    .await?;
    let Reserved { user, keys } = match reserved {
        Ok(r) => r,
        Err(refusal) => return again(refusal),
    };

    // 2. Check the password (unknown users against the dummy hash: same cost).
    let stored = user.as_ref().and_then(|u| u.password_hash.clone());
    let verified = state
        .hasher
        .verify(form.password, stored)
        .await
        .map_err(|e| IdpError::internal("checking the password", e))?;

    // 3. Record the outcome and open the session.
    let old_session = req
        .cookie(sessions::cookie_name(ctx.settings.scheme))
        .map(|c| c.value().to_owned());
    let (t, ip, st2) = (tenant.clone(), origin.ip.clone(), state.clone());
    let result = kollegium_tenants::web::block(
        move || -> IdpResult<Result<(String, flow::Outcome), Refusal>> {
            let mut conn = t.conn(&IDP_DB)?;
            let user = match user {
                Some(u) if verified != Verified::No => u,
                other => {
                    // One commit for known and unknown names alike: no timing difference.
                    let uid = other.as_ref().map(|u| u.id);
                    lockout::failed(&mut conn, &keys, uid, &ip, "", &st2.settings, now)?;
                    return Ok(Err(Refusal::WrongPassword));
                }
            };
            // With a second factor still to come the attempt stays counted until the code is
            // right: otherwise each correct password would reset the count of wrong codes.
            if !user.has_totp() {
                throttle::succeeded(&mut conn, &keys, 1)?;
            }
            if user.status != UserStatus::Active {
                return Ok(Err(Refusal::Disabled));
            }
            // Locks were decided by the throttle before the password was checked; the
            // account's `locked_until` is the admins' view of them, not a gate of its own.
            if !user.has_totp() {
                users::reset_failures(&mut conn, user.id)?;
            }
            if let Verified::YesRehashed(h) = &verified {
                users::replace_hash(&mut conn, user.id, h)?;
            }
            // Never adopt a session cookie the browser brought along: end it, start fresh.
            if let Some(old) = old_session.as_deref()
                && let Some(s) = sessions::by_token(&mut conn, old)?
            {
                sessions::end(&mut conn, s.id, "replaced by new login", now)?;
            }
            let outcome = flow::after_password(
                &mut conn,
                &user,
                device_cookie.as_deref(),
                &origin,
                &mail,
                now,
            )?;
            if outcome.device_refused {
                return Ok(Err(Refusal::DeviceRefused));
            }
            let amr = "pwd";
            let (token, _) = sessions::create(
                &mut conn,
                user.id,
                outcome.stage,
                amr,
                outcome.device_id,
                &origin,
                now,
            )?;
            events::record(
                &mut conn,
                now,
                &Event {
                    user: Some(user.id),
                    ip: Some(&origin.ip),
                    detail: outcome.stage.as_str(),
                    ..Event::new(EventKind::LoginOk)
                },
            )?;
            Ok(Ok((token, outcome)))
        },
    )
    .await??;
    let (token, outcome) = match result {
        Ok(v) => v,
        Err(refusal) => return again(refusal),
    };
    if matches!(outcome.stage, Stage::Device) {
        ctx.jobs.poke(tenant.slug(), &crate::IDP_DB); // admins may have been told about a new device
    }
    let mut res = see_other(&continue_at(outcome.stage, &next));
    let _ = res.add_cookie(&sessions::cookie(ctx.settings.scheme, &token));
    if let Some(d) = outcome.new_device_cookie {
        let _ = res.add_cookie(&devices::cookie(ctx.settings.scheme, &d));
    }
    Ok(res)
}

async fn logout(
    tenant: Tenant,
    state: web::Data<IdpState>,
    ctx: web::Data<WebContext>,
    any: AnySession,
) -> IdpResult<HttpResponse> {
    if let Some(s) = any.0 {
        let now = state.now();
        let slug = tenant.slug().as_str().to_owned();
        kollegium_tenants::web::block(move || -> IdpResult<()> {
            let mut conn = tenant.conn(&IDP_DB)?;
            sessions::end(&mut conn, s.session.id, "logout", now)?;
            events::record(
                &mut conn,
                now,
                &Event {
                    user: Some(s.user.id),
                    ip: Some(&s.session.ip),
                    ..Event::new(EventKind::Logout)
                },
            )?;
            Ok(())
        })
        .await??;
        // Tell relying parties now rather than at the next sweep.
        ctx.jobs.poke_str(&slug, &IDP_DB);
    }
    let mut res = see_other("/id/login?done=logout");
    let _ = res.add_cookie(&sessions::removal(ctx.settings.scheme));
    Ok(res)
}

#[derive(Template)]
#[template(path = "pages/idp/device_wait.html")]
struct DeviceWaitPage {
    layout: Layout,
    refused: bool,
    next: String,
}

#[derive(Debug, serde::Deserialize)]
pub struct NextQuery {
    pub next: Option<String>,
}

/// "Dieses Gerät wartet auf Freigabe": checks again on every visit.
async fn device_wait(
    tenant: Tenant,
    csrf: CsrfToken,
    state: web::Data<IdpState>,
    ctx: web::Data<WebContext>,
    pending: PendingLogin,
    q: web::Query<NextQuery>,
) -> IdpResult<HttpResponse> {
    let next = safe_next(q.next.as_deref());
    let s = pending.0;
    if s.session.stage != Stage::Device {
        return Ok(see_other(&continue_at(s.session.stage, &next)));
    }
    let now = state.now();
    let t = tenant.clone();
    let sess = s.session.clone();
    let status = kollegium_tenants::web::block(
        move || -> IdpResult<(Option<DeviceStatus>, Option<String>)> {
            let mut conn = t.conn(&IDP_DB)?;
            let dev = match sess.device_id {
                Some(id) => devices::by_id(&mut conn, id)?,
                None => None,
            };
            let status = dev.map(|d| d.status);
            if status == Some(DeviceStatus::Approved) {
                let token = sessions::promote(
                    &mut conn,
                    sess.id,
                    Stage::Active,
                    &sess.amr,
                    sess.device_id,
                    now,
                )?;
                return Ok((status, Some(token)));
            }
            Ok((status, None))
        },
    )
    .await??;
    if let (_, Some(token)) = &status {
        let mut res = see_other(&next);
        let _ = res.add_cookie(&sessions::cookie(ctx.settings.scheme, token));
        return Ok(res);
    }
    let refused = !matches!(status.0, Some(DeviceStatus::Pending));
    page(&DeviceWaitPage {
        layout: layout(&tenant, None, &csrf, ""),
        refused,
        next,
    })
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/id/login", web::get().to(form))
        .route("/id/login", web::post().to(submit))
        .route("/id/logout", web::post().to(logout))
        .route("/id/login/device", web::get().to(device_wait));
}

#[cfg(test)]
mod tests {
    use super::{MAX_LOGIN, hint};

    #[test]
    fn a_login_hint_is_a_plain_short_name_or_nothing() {
        assert_eq!(hint("  anna "), Some("anna".into()));
        assert_eq!(
            hint("anna@praxis.example"),
            Some("anna@praxis.example".into())
        );
        assert_eq!(hint(""), None);
        assert_eq!(hint("   "), None);
        assert_eq!(hint("an\u{7}na"), None);
        assert_eq!(
            hint(&"a".repeat(MAX_LOGIN)).map(|h| h.len()),
            Some(MAX_LOGIN)
        );
        assert_eq!(hint(&"a".repeat(MAX_LOGIN + 1)), None);
    }
}
