//! Consent for third-party clients: a German page listing what the tool will learn, a
//! CSRF-protected decision, and the remembered decision per user, client and scope set.
//! First-party clients (the platform) skip consent.

use actix_web::{HttpResponse, web};
use askama::Template;
use diesel::prelude::*;
use kollegium_tenants::UnixTime;
use kollegium_tenants::web::{CsrfToken, Layout};

use super::Op;
use super::authorize::{self, AuthRequest, Fail};
use super::errors::{PageError, redirect_error};
use super::params::Params;
use crate::IDP_DB;
use crate::error::IdpResult;
use crate::events::{self, Event, EventKind};
use crate::schema::consents;
use crate::sessions::IdpSession;
use crate::users::UserId;
use crate::views::layout;

/// What a scope reveals, in German.
pub fn describe(scope: &str) -> Option<(&'static str, &'static str)> {
    match scope {
        "openid" => Some(("Anmeldung", "Ihre Kennung in dieser Praxis")),
        "profile" => Some(("Profil", "Ihr Name und Benutzername")),
        "email" => Some(("E-Mail", "Ihre E-Mail-Adresse")),
        "practice" => Some((
            "Praxisangaben",
            "Ihre Rollen, Fachrichtung, KV-Region, Arbeitsbereiche und der Name der Praxis",
        )),
        "offline_access" => Some((
            "Dauerhafter Zugriff",
            "Die Anwendung bleibt angemeldet, auch wenn Sie die Praxis-Anmeldung beenden",
        )),
        _ => None,
    }
}

/// Whether the user has consented to at least these scopes for the client.
pub fn covers(
    conn: &mut SqliteConnection,
    user: UserId,
    client_id: &str,
    scopes: &[String],
) -> QueryResult<bool> {
    let stored: Option<String> = consents::table
        .find((user.0, client_id))
        .select(consents::scopes)
        .first(conn)
        .optional()?;
    let Some(stored) = stored else {
        return Ok(false);
    };
    let granted: Vec<&str> = stored.split(' ').collect();
    Ok(scopes.iter().all(|s| granted.contains(&s.as_str())))
}

/// Remembers consent to `scopes`, added to what the user consented to before: a later,
/// narrower request does not take back scopes granted earlier (only revoking does).
pub fn remember(
    conn: &mut SqliteConnection,
    user: UserId,
    client_id: &str,
    scopes: &[String],
    now: UnixTime,
) -> QueryResult<()> {
    let stored: Option<String> = consents::table
        .find((user.0, client_id))
        .select(consents::scopes)
        .first(conn)
        .optional()?;
    let mut all: Vec<&str> = stored
        .as_deref()
        .unwrap_or("")
        .split(' ')
        .filter(|s| !s.is_empty())
        .collect();
    for s in scopes {
        if !all.contains(&s.as_str()) {
            all.push(s);
        }
    }
    let joined = all.join(" ");
    diesel::insert_into(consents::table)
        .values((
            consents::user_id.eq(user.0),
            consents::client_id.eq(client_id),
            consents::scopes.eq(&joined),
            consents::granted_at.eq(now),
        ))
        .on_conflict((consents::user_id, consents::client_id))
        .do_update()
        .set((consents::scopes.eq(&joined), consents::granted_at.eq(now)))
        .execute(conn)?;
    events::record(
        conn,
        now,
        &Event {
            user: Some(user),
            client_id: Some(client_id),
            detail: &joined,
            ..Event::new(EventKind::ConsentGiven)
        },
    )
}

/// Withdraws consent and revokes every grant the user gave the client.
pub fn revoke(
    conn: &mut SqliteConnection,
    user: UserId,
    client_id: &str,
    now: UnixTime,
) -> QueryResult<bool> {
    let n = diesel::delete(consents::table.find((user.0, client_id))).execute(conn)?;
    super::grants::revoke_for_client(conn, user, client_id, "consent revoked", now)?;
    if n > 0 {
        events::record(
            conn,
            now,
            &Event {
                user: Some(user),
                client_id: Some(client_id),
                ..Event::new(EventKind::ConsentRevoked)
            },
        )?;
    }
    Ok(n > 0)
}

pub struct ScopeLine {
    pub title: &'static str,
    pub detail: &'static str,
}

#[derive(Template)]
#[template(path = "pages/idp/consent.html")]
struct ConsentPage {
    layout: Layout,
    client_name: String,
    practice_name: String,
    scopes: Vec<ScopeLine>,
    hidden: Vec<(String, String)>,
}

/// Renders the consent page for a validated request.
pub fn page(
    op: &Op,
    s: &IdpSession,
    csrf: &CsrfToken,
    req: &AuthRequest,
) -> IdpResult<HttpResponse> {
    let hidden = req
        .params
        .without(&["csrf_token", "decision"])
        .pairs()
        .to_vec();
    let mut res = crate::views::page(&ConsentPage {
        layout: layout(&op.tenant, Some(s), csrf, ""),
        client_name: req.client.name.clone(),
        practice_name: op.tenant.display_name().to_owned(),
        scopes: req
            .scopes
            .iter()
            .filter_map(|s| describe(s))
            .map(|(title, detail)| ScopeLine { title, detail })
            .collect(),
        hidden,
    })?;
    res.headers_mut().insert(
        actix_web::http::header::CACHE_CONTROL,
        actix_web::http::header::HeaderValue::from_static("no-store"),
    );
    // The decision is answered with a redirect to the tool (its registered address):
    // without it in `form-action`, browsers refuse to follow.
    if let Some(csp) = kollegium_tenants::web::headers::csp_with_form_target(&req.redirect_uri)
        .and_then(|c| actix_web::http::header::HeaderValue::from_str(&c).ok())
    {
        res.headers_mut()
            .insert(actix_web::http::header::CONTENT_SECURITY_POLICY, csp);
    }
    Ok(res)
}

/// The page policy for a sign-in step whose form continues at `next`: when `next` is an
/// authorization request of an enabled client with one of its registered redirect URIs,
/// [`CSP`](kollegium_tenants::web::headers::CSP) with that address's origin in
/// `form-action` (the form's answer may end in a redirect to the tool, which browsers
/// otherwise refuse to follow); else `None` (the default policy).
pub fn form_target_csp(conn: &mut SqliteConnection, next: &str) -> QueryResult<Option<String>> {
    let Some(query) = next.strip_prefix("/id/authorize?") else {
        return Ok(None);
    };
    let Ok(pairs) = serde_urlencoded::from_str::<Vec<(String, String)>>(query) else {
        return Ok(None);
    };
    let value = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let (Some(client_id), Some(redirect)) = (value("client_id"), value("redirect_uri")) else {
        return Ok(None);
    };
    Ok(super::clients::enabled(conn, client_id)?
        .filter(|c| c.has_redirect_uri(redirect))
        .and_then(|_| kollegium_tenants::web::headers::csp_with_form_target(redirect)))
}

/// What a consent decision comes to.
enum Decided {
    Code(String),
    Declined,
    /// The session no longer satisfies the request (`max_age`, `prompt=login`, a hint
    /// naming someone else): the user logs in again; nothing was written.
    Login {
        force: bool,
    },
}

async fn decide(op: Op, s: IdpSession, body: web::Bytes) -> IdpResult<HttpResponse> {
    let practice = op.tenant.display_name().to_owned();
    let Ok(all) = Params::parse(&body) else {
        return Ok(PageError::Malformed.response(Some(&practice)));
    };
    let allow = all.get("decision") == Some("allow");
    let params = all.without(&["csrf_token", "decision"]);
    let issuer = op.issuer();
    let now = op.now();
    let ttl = op.state.settings.code_ttl_secs;
    let (t, iss) = (op.tenant.clone(), issuer.clone());
    let outcome = kollegium_tenants::web::block(
        move || -> IdpResult<Result<(AuthRequest, Decided), Fail>> {
            let mut conn = t.conn(&IDP_DB)?;
            let req = match authorize::validate(&mut conn, params, &iss, now)? {
                Ok(r) => r,
                Err(f) => return Ok(Err(f)),
            };
            // The same decision as the authorization endpoint, for the session as it is now:
            // the consent page may have been open longer than `max_age` allows.
            match authorize::decide(&mut conn, &req, Some(&s), now)? {
                Ok(authorize::Next::Login { force }) => {
                    return Ok(Ok((req, Decided::Login { force })));
                }
                Ok(authorize::Next::Consent | authorize::Next::Code) => {}
                Err((error, description)) => {
                    return Ok(Err(Fail::Client {
                        redirect_uri: req.redirect_uri,
                        state: req.state,
                        error,
                        description,
                    }));
                }
            }
            if !allow {
                return Ok(Ok((req, Decided::Declined)));
            }
            let code = conn.immediate_transaction(|conn| -> QueryResult<String> {
                remember(conn, s.user.id, &req.client.client_id, &req.scopes, now)?;
                authorize::issue_code(conn, &req, &s, now, ttl)
            })?;
            Ok(Ok((req, Decided::Code(code))))
        },
    )
    .await??;
    match outcome {
        Err(f) => Ok(f.response(&practice, &issuer)),
        Ok((req, Decided::Login { force })) => Ok(authorize::to_login(&req, force, now)),
        Ok((req, Decided::Code(code))) => Ok(authorize::code_redirect(&req, &code, &issuer)),
        Ok((req, Decided::Declined)) => Ok(redirect_error(
            &req.redirect_uri,
            "access_denied",
            "the user declined",
            req.state.as_deref(),
            &issuer,
        )),
    }
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/id/authorize/consent", web::post().to(decide));
}
