//! RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0) at `/id/logout/end`, GET
//! and POST. A valid `id_token_hint` for the current session ends it at once; without one
//! the user confirms on a German page (a CSRF-protected form), so a foreign page cannot
//! sign anyone out. `post_logout_redirect_uri` must be registered for the client, exactly.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use diesel::prelude::*;
use kollegium_tenants::web::{CsrfToken, Layout};
use serde_json::Value;

use super::Op;
use super::clients;
use super::errors::{PageError, with_query};
use super::jwt::{self, Expect};
use super::keys;
use super::params::Params;
use crate::IDP_DB;
use crate::error::IdpResult;
use crate::events::{self, Event, EventKind};
use crate::sessions::{self, AnySession, IdpSession};
use crate::views::{layout, page};

/// A validated logout request.
#[derive(Debug, Clone)]
pub struct LogoutRequest {
    /// Where to send the browser afterwards (registered, exact), with `state`.
    pub redirect: Option<String>,
    /// `sid` and `sub` of a valid `id_token_hint`.
    pub hint: Option<(Option<String>, Option<String>)>,
    pub client_name: Option<String>,
    pub params: Params,
}

impl LogoutRequest {
    /// Whether the hint names this session (or at least its user).
    fn hint_matches(&self, s: &IdpSession) -> bool {
        match &self.hint {
            Some((Some(sid), _)) => *sid == s.session.sid,
            Some((None, Some(sub))) => *sub == s.user.sub,
            _ => false,
        }
    }
}

pub fn validate(
    conn: &mut SqliteConnection,
    params: Params,
    issuer: &str,
    now: kollegium_tenants::UnixTime,
) -> QueryResult<Result<LogoutRequest, PageError>> {
    let mut aud: Option<String> = None;
    let mut hint = None;
    if let Some(h) = params.get("id_token_hint") {
        let verifiers = keys::verifiers(conn, now)?;
        let expect = Expect {
            issuer,
            audience: None,
            now,
            check_exp: false,
        };
        let Ok(claims) = jwt::verify(h, &verifiers, jwt::TYP_ID_TOKEN)
            .and_then(|c| expect.check(&c).map(|()| c))
        else {
            return Ok(Err(PageError::IdTokenHint));
        };
        let s = |k: &str| claims.get(k).and_then(Value::as_str).map(str::to_owned);
        aud = jwt::audiences(&claims).into_iter().next();
        hint = Some((s("sid"), s("sub")));
    }
    let client_id = match (params.get("client_id"), aud) {
        (Some(c), Some(a)) if c != a => return Ok(Err(PageError::IdTokenHint)),
        (Some(c), _) => Some(c.to_owned()),
        (None, a) => a,
    };
    let client = match &client_id {
        Some(id) => match clients::enabled_at(conn, id, issuer, now)? {
            Some(c) => Some(c),
            None => return Ok(Err(PageError::UnknownClient)),
        },
        None => None,
    };
    let redirect = match params.get("post_logout_redirect_uri") {
        None => None,
        Some(uri) => match &client {
            Some(c) if c.has_post_logout_uri(uri) => {
                let mut q = Vec::new();
                if let Some(st) = params.get("state") {
                    q.push(("state", st));
                }
                Some(with_query(uri, &q))
            }
            _ => return Ok(Err(PageError::PostLogoutUri)),
        },
    };
    Ok(Ok(LogoutRequest {
        redirect,
        hint,
        client_name: client.map(|c| c.name),
        params,
    }))
}

#[derive(Template)]
#[template(path = "pages/idp/logout.html")]
struct LogoutPage {
    layout: Layout,
    confirm: bool,
    client_name: Option<String>,
    hidden: Vec<(String, String)>,
}

fn read(req: &HttpRequest, body: &[u8]) -> Result<Params, PageError> {
    let raw = if req.method() == actix_web::http::Method::POST {
        body
    } else {
        req.query_string().as_bytes()
    };
    Params::parse(raw).map_err(|_| PageError::Malformed)
}

/// Ends the session, pokes the job worker for the back-channel notices, then redirects or
/// shows the "signed out" page.
async fn finish(
    op: &Op,
    csrf: &CsrfToken,
    session: Option<IdpSession>,
    lr: LogoutRequest,
) -> IdpResult<HttpResponse> {
    let ended = session.is_some();
    if let Some(s) = session {
        let now = op.now();
        let t = op.tenant.clone();
        kollegium_tenants::web::block(move || -> IdpResult<()> {
            let mut conn = t.conn(&IDP_DB)?;
            sessions::end(&mut conn, s.session.id, "rp logout", now)?;
            events::record(
                &mut conn,
                now,
                &Event {
                    user: Some(s.user.id),
                    detail: "rp-initiated",
                    ..Event::new(EventKind::Logout)
                },
            )?;
            Ok(())
        })
        .await??;
        op.web.jobs.poke(op.tenant.slug(), &IDP_DB);
    }
    let mut res = match &lr.redirect {
        Some(to) => HttpResponse::SeeOther()
            .insert_header((header::LOCATION, to.clone()))
            .finish(),
        None => page(&LogoutPage {
            layout: layout(&op.tenant, None, csrf, ""),
            confirm: false,
            client_name: lr.client_name,
            hidden: Vec::new(),
        })?,
    };
    res.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    if ended {
        let _ = res.add_cookie(&sessions::removal(op.web.settings.scheme));
    }
    Ok(res)
}

async fn end_session(
    req: HttpRequest,
    op: Op,
    any: AnySession,
    csrf: CsrfToken,
    body: web::Bytes,
) -> IdpResult<HttpResponse> {
    let practice = op.tenant.display_name().to_owned();
    let params = match read(&req, &body) {
        Ok(p) => p,
        Err(e) => return Ok(e.response(Some(&practice))),
    };
    let (issuer, now, t) = (op.issuer(), op.now(), op.tenant.clone());
    let lr = kollegium_tenants::web::block(move || -> IdpResult<_> {
        Ok(validate(&mut *t.conn(&IDP_DB)?, params, &issuer, now)?)
    })
    .await??;
    let lr = match lr {
        Ok(lr) => lr,
        Err(e) => return Ok(e.response(Some(&practice))),
    };
    match any.0 {
        Some(s) if lr.hint_matches(&s) => finish(&op, &csrf, Some(s), lr).await,
        Some(s) => {
            let mut res = page(&LogoutPage {
                layout: layout(&op.tenant, Some(&s), &csrf, ""),
                confirm: true,
                client_name: lr.client_name.clone(),
                hidden: lr.params.without(&["csrf_token"]).pairs().to_vec(),
            })?;
            res.headers_mut().insert(
                header::CACHE_CONTROL,
                header::HeaderValue::from_static("no-store"),
            );
            Ok(res)
        }
        None => finish(&op, &csrf, None, lr).await,
    }
}

async fn confirm(
    op: Op,
    any: AnySession,
    csrf: CsrfToken,
    body: web::Bytes,
) -> IdpResult<HttpResponse> {
    let practice = op.tenant.display_name().to_owned();
    let Ok(params) = Params::parse(&body).map(|p| p.without(&["csrf_token"])) else {
        return Ok(PageError::Malformed.response(Some(&practice)));
    };
    let (issuer, now, t) = (op.issuer(), op.now(), op.tenant.clone());
    let lr = kollegium_tenants::web::block(move || -> IdpResult<_> {
        Ok(validate(&mut *t.conn(&IDP_DB)?, params, &issuer, now)?)
    })
    .await??;
    match lr {
        Ok(lr) => finish(&op, &csrf, any.0, lr).await,
        Err(e) => Ok(e.response(Some(&practice))),
    }
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/id/logout/end", web::get().to(end_session))
        .route("/id/logout/end", web::post().to(end_session))
        .route("/id/logout/end/confirm", web::post().to(confirm));
}
