//! One-time links (`/id/setup/<token>`): the owner's first setup, invitations and password
//! resets all end here, where the user chooses a password. The admin never sees it.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use kollegium_tenants::Tenant;
use kollegium_tenants::web::{CsrfToken, Layout};

use crate::error::IdpResult;
use crate::events::{self, Event, EventKind};
use crate::links::{self, LinkKind};
use crate::passwords::{self, PasswordContext, PolicyError};
use crate::state::IdpState;
use crate::users::{self, Profile, User, UserStatus};
use crate::views::{layout, page, page_status, see_other};
use crate::{IDP_DB, oidc, sessions, throttle};

#[derive(Template)]
#[template(path = "pages/idp/setup.html")]
struct SetupPage {
    layout: Layout,
    practice_name: String,
    token: String,
    kind: &'static str,
    username: String,
    display_name: String,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "pages/idp/link_invalid.html")]
struct InvalidPage {
    layout: Layout,
}

#[derive(Debug, serde::Deserialize)]
pub struct SetupForm {
    username: Option<String>,
    display_name: Option<String>,
    password: String,
    password_repeat: String,
}

fn kind_str(k: LinkKind) -> &'static str {
    k.as_str()
}

async fn lookup(
    tenant: &Tenant,
    state: &IdpState,
    token: String,
) -> IdpResult<Option<(links::ValidLink, User)>> {
    let t = tenant.clone();
    let now = state.now();
    kollegium_tenants::web::block(move || -> IdpResult<_> {
        let mut conn = t.conn(&IDP_DB)?;
        let Some(link) = links::check(&mut conn, &token, now)? else {
            return Ok(None);
        };
        // A disabled account's links do nothing until an admin enables it again.
        Ok(users::by_id(&mut conn, link.user)?
            .filter(|u| u.status != UserStatus::Disabled)
            .map(|u| (link, u)))
    })
    .await?
}

fn invalid(tenant: &Tenant, csrf: &CsrfToken) -> IdpResult<HttpResponse> {
    page_status(
        StatusCode::GONE,
        &InvalidPage {
            layout: layout(tenant, None, csrf, ""),
        },
    )
}

async fn show(
    tenant: Tenant,
    csrf: CsrfToken,
    state: web::Data<IdpState>,
    token: web::Path<String>,
) -> IdpResult<HttpResponse> {
    let token = token.into_inner();
    let Some((link, user)) = lookup(&tenant, &state, token.clone()).await? else {
        return invalid(&tenant, &csrf);
    };
    page(&SetupPage {
        layout: layout(&tenant, None, &csrf, "").with_script(passwords::METER),
        practice_name: tenant.display_name().to_owned(),
        token,
        kind: kind_str(link.kind),
        username: user.username,
        display_name: user.display_name,
        error: None,
    })
}

async fn submit(
    tenant: Tenant,
    csrf: CsrfToken,
    state: web::Data<IdpState>,
    token: web::Path<String>,
    form: web::Form<SetupForm>,
) -> IdpResult<HttpResponse> {
    let token = token.into_inner();
    let form = form.into_inner();
    let Some((link, user)) = lookup(&tenant, &state, token.clone()).await? else {
        return invalid(&tenant, &csrf);
    };
    // The owner chooses user name and display name at setup; others keep what the admin set.
    let mut profile = Profile {
        username: user.username.clone(),
        email: user.email.clone(),
        display_name: user.display_name.clone(),
        is_admin: user.is_admin,
        roles: user.roles.clone(),
        specialty: user.specialty.clone(),
        kv_region: user.kv_region.clone(),
        work_areas: user.work_areas.clone(),
    };
    if link.kind == LinkKind::Setup {
        profile.username = form.username.clone().unwrap_or_default();
        profile.display_name = form.display_name.clone().unwrap_or_default();
    }
    let again = |error: String, p: &Profile| {
        page_status(
            StatusCode::BAD_REQUEST,
            &SetupPage {
                layout: layout(&tenant, None, &csrf, "").with_script(passwords::METER),
                practice_name: tenant.display_name().to_owned(),
                token: token.clone(),
                kind: kind_str(link.kind),
                username: p.username.clone(),
                display_name: p.display_name.clone(),
                error: Some(error),
            },
        )
    };
    let profile = match profile.clone().validate() {
        Ok(p) => p,
        Err(e) => return again(e.to_string(), &profile),
    };
    if form.password != form.password_repeat {
        return again(PolicyError::Mismatch.to_string(), &profile);
    }
    let context = PasswordContext::person(
        tenant.display_name(),
        tenant.slug().as_str(),
        &profile.username,
        &profile.display_name,
        &profile.email,
        state.now(),
    );
    if let Err(e) = passwords::check_new_password(&form.password, &context) {
        return again(e.to_string(), &profile);
    }
    let hash = state
        .hasher
        .hash(form.password)
        .await
        .map_err(|e| crate::error::IdpError::internal("hashing a password", e))?;
    let now = state.now();
    let t = tenant.clone();
    let p = profile.clone();
    let tok = token.clone();
    let outcome = kollegium_tenants::web::block(move || -> IdpResult<Result<(), String>> {
        let mut conn = t.conn(&IDP_DB)?;
        conn.immediate_transaction(|conn| -> IdpResult<Result<(), String>> {
            // Under the write lock: check again, then refuse before writing anything, so a
            // refused profile (user name taken) does not burn the link.
            if links::check(conn, &tok, now)?.is_none_or(|l| l.id != link.id) {
                return Ok(Err("Dieser Link wurde bereits verwendet.".into()));
            }
            if link.kind == LinkKind::Setup
                && let Err(e) = users::update_profile(conn, user.id, &p, now)?
            {
                return Ok(Err(e.to_string()));
            }
            if !links::consume(conn, &link, now)? {
                // Cannot happen under the write lock; roll back rather than half-apply.
                return Err(crate::error::IdpError::invariant("link consumed twice"));
            }
            users::set_password(conn, user.id, &hash, link.kind != LinkKind::Setup, now)?;
            // Whoever sets a password through a link holds the account's mailbox: the
            // failures counted against the account (from every address) end with the old
            // password, so the new one works at once.
            throttle::unlock(conn, user.id, &user.username, &user.email)?;
            if link.kind == LinkKind::Reset {
                sessions::end_all(conn, user.id, None, "password reset", now)?;
                oidc::grants::revoke_all_for_user(conn, user.id, "password reset", now)?;
            }
            let kind = if link.kind == LinkKind::Reset {
                EventKind::PasswordChanged
            } else {
                EventKind::SetupCompleted
            };
            events::record(
                conn,
                now,
                &Event {
                    user: Some(user.id),
                    actor: Some(user.id),
                    ..Event::new(kind)
                },
            )?;
            Ok(Ok(()))
        })
    })
    .await??;
    match outcome {
        Ok(()) => Ok(see_other("/id/login?done=setup")),
        Err(e) => again(e, &profile),
    }
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/id/setup/{token}", web::get().to(show))
        .route("/id/setup/{token}", web::post().to(submit));
}
