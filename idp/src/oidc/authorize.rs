//! The authorization endpoint `/id/authorize` (GET and form POST): authorization code flow
//! with PKCE (S256 only). Client and redirect URI are checked first; if either is wrong
//! the user sees an error page and is never redirected. Every later error goes back to
//! the client (RFC 6749 §4.1.2.1) with `iss` (RFC 9207).

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use diesel::prelude::*;
use kollegium_tenants::UnixTime;
use kollegium_tenants::secrets::random_token;
use kollegium_tenants::web::CsrfToken;

use super::Op;
use super::clients::{self, Client, SCOPES};
use super::consent;
use super::errors::{PageError, redirect_error, with_query};
use super::jwt::{self, Expect};
use super::keys;
use super::params::Params;
use crate::IDP_DB;
use crate::error::{IdpError, IdpResult};
use crate::links::token_hash;
use crate::routes::{MAX_NEXT, login};
use crate::schema::{auth_codes, session_clients};
use crate::sessions::{AnySession, IdpSession, Stage};

/// Our own parameter added when `prompt=login` sends the user to the login form: the
/// session must have authenticated at or after this time.
pub const AUTH_AFTER: &str = "auth_after";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Prompt {
    pub none: bool,
    pub login: bool,
    pub consent: bool,
}

/// A validated authorization request.
#[derive(Debug, Clone)]
pub struct AuthRequest {
    pub client: Client,
    pub redirect_uri: String,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub scopes: Vec<String>,
    pub code_challenge: Option<String>,
    pub prompt: Prompt,
    pub max_age: Option<i64>,
    pub auth_after: Option<i64>,
    /// `sub` of a valid `id_token_hint`.
    pub hint_sub: Option<String>,
    /// `login_hint`, if usable: only ever prefills the login form's user name.
    pub login_hint: Option<String>,
    pub params: Params,
}

impl AuthRequest {
    pub fn scope(&self) -> String {
        self.scopes.join(" ")
    }
}

/// Why a request fails.
#[derive(Debug, Clone)]
pub enum Fail {
    /// Shown as a page; never redirected.
    Page(PageError),
    /// Sent back to the (validated) redirect URI.
    Client {
        redirect_uri: String,
        state: Option<String>,
        error: &'static str,
        description: &'static str,
    },
}

impl Fail {
    pub fn response(&self, practice: &str, issuer: &str) -> HttpResponse {
        match self {
            Self::Page(p) => p.response(Some(practice)),
            Self::Client {
                redirect_uri,
                state,
                error,
                description,
            } => redirect_error(redirect_uri, error, description, state.as_deref(), issuer),
        }
    }
}

fn is_pkce_value(s: &str) -> bool {
    (43..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

/// Validates an authorization request against the registry.
pub fn validate(
    conn: &mut SqliteConnection,
    params: Params,
    issuer: &str,
    now: UnixTime,
) -> QueryResult<Result<AuthRequest, Fail>> {
    let Some(client) = params
        .get("client_id")
        .map(|id| clients::enabled_at(conn, id, issuer, now))
        .transpose()?
        .flatten()
    else {
        return Ok(Err(Fail::Page(PageError::UnknownClient)));
    };
    let redirect_uri = match params.get("redirect_uri") {
        Some(r) if client.has_redirect_uri(r) => r.to_owned(),
        _ => return Ok(Err(Fail::Page(PageError::RedirectUri))),
    };
    let state = params.get("state").map(str::to_owned);
    let fail = |error, description| {
        Ok(Err(Fail::Client {
            redirect_uri: redirect_uri.clone(),
            state: state.clone(),
            error,
            description,
        }))
    };
    if params.get("request").is_some() {
        return fail("request_not_supported", "request objects are not supported");
    }
    if params.get("request_uri").is_some() {
        return fail("request_uri_not_supported", "request_uri is not supported");
    }
    match params.get("response_type") {
        Some("code") => {}
        None => return fail("invalid_request", "response_type is required"),
        Some(_) => {
            return fail(
                "unsupported_response_type",
                "only response_type=code is supported",
            );
        }
    }
    if params.get("response_mode").is_some_and(|m| m != "query") {
        return fail("invalid_request", "only response_mode=query is supported");
    }
    let mut scopes: Vec<String> = Vec::new();
    for s in params
        .get("scope")
        .unwrap_or("")
        .split(' ')
        .filter(|s| !s.is_empty())
    {
        if !SCOPES.contains(&s) || !client.allowed_scopes().iter().any(|a| a == s) {
            return fail(
                "invalid_scope",
                "a requested scope is not available to this client",
            );
        }
        if !scopes.iter().any(|x| x == s) {
            scopes.push(s.to_owned());
        }
    }
    if !scopes.iter().any(|s| s == "openid") {
        return fail("invalid_scope", "the openid scope is required");
    }
    let code_challenge = params.get("code_challenge").map(str::to_owned);
    match (
        code_challenge.as_deref(),
        params.get("code_challenge_method"),
    ) {
        (Some(c), Some("S256")) if is_pkce_value(c) && c.len() == 43 => {}
        (Some(_), Some("S256")) => return fail("invalid_request", "malformed code_challenge"),
        (Some(_), _) => return fail("invalid_request", "code_challenge_method must be S256"),
        (None, Some(_)) => return fail("invalid_request", "code_challenge is missing"),
        (None, None) if !client.confidential => {
            return fail(
                "invalid_request",
                "PKCE (S256) is required for public clients",
            );
        }
        (None, None) => {}
    }
    let mut prompt = Prompt::default();
    for p in params
        .get("prompt")
        .unwrap_or("")
        .split(' ')
        .filter(|s| !s.is_empty())
    {
        match p {
            "none" => prompt.none = true,
            "login" => prompt.login = true,
            "consent" => prompt.consent = true,
            _ => return fail("invalid_request", "unsupported prompt value"),
        }
    }
    if prompt.none && (prompt.login || prompt.consent) {
        return fail("invalid_request", "prompt=none cannot be combined");
    }
    let int = |name: &str| {
        params
            .get(name)
            .map(|v| v.parse::<i64>().ok().filter(|n| *n >= 0))
    };
    let max_age = match int("max_age") {
        Some(None) => return fail("invalid_request", "max_age must be a non-negative integer"),
        Some(v) => v,
        None => None,
    };
    let auth_after = int(AUTH_AFTER).flatten();
    let hint_sub = match params.get("id_token_hint") {
        None => None,
        Some(hint) => {
            let verifiers = keys::verifiers(conn, now)?;
            let claims = jwt::verify(hint, &verifiers, jwt::TYP_ID_TOKEN).and_then(|c| {
                Expect {
                    issuer,
                    audience: Some(&client.client_id),
                    now,
                    check_exp: false,
                }
                .check(&c)
                .map(|()| c)
            });
            match claims
                .ok()
                .and_then(|c| c.get("sub")?.as_str().map(str::to_owned))
            {
                Some(sub) => Some(sub),
                None => return fail("invalid_request", "invalid id_token_hint"),
            }
        }
    };
    let login_hint = params.get("login_hint").and_then(login::hint);
    Ok(Ok(AuthRequest {
        nonce: params.get("nonce").map(str::to_owned),
        client,
        redirect_uri,
        state,
        scopes,
        code_challenge,
        prompt,
        max_age,
        auth_after,
        hint_sub,
        login_hint,
        params,
    }))
}

/// Issues a single-use code bound to client, redirect URI, PKCE challenge and session;
/// records the session as one the client takes part in (for back-channel logout).
pub fn issue_code(
    conn: &mut SqliteConnection,
    req: &AuthRequest,
    session: &IdpSession,
    now: UnixTime,
    ttl: i64,
) -> QueryResult<String> {
    let code = random_token(32);
    diesel::insert_into(auth_codes::table)
        .values((
            auth_codes::code_hash.eq(token_hash(&code)),
            auth_codes::client_id.eq(&req.client.client_id),
            auth_codes::user_id.eq(session.user.id.0),
            auth_codes::session_id.eq(session.session.id),
            auth_codes::redirect_uri.eq(&req.redirect_uri),
            auth_codes::scope.eq(req.scope()),
            auth_codes::nonce.eq(&req.nonce),
            auth_codes::code_challenge.eq(&req.code_challenge),
            auth_codes::auth_time.eq(session.session.auth_time),
            auth_codes::created_at.eq(now),
            auth_codes::expires_at.eq(now + ttl),
        ))
        .execute(conn)?;
    diesel::insert_or_ignore_into(session_clients::table)
        .values((
            session_clients::session_id.eq(session.session.id),
            session_clients::client_id.eq(&req.client.client_id),
        ))
        .execute(conn)?;
    Ok(code)
}

/// The successful response: back to the client with code, state and issuer.
pub fn code_redirect(req: &AuthRequest, code: &str, issuer: &str) -> HttpResponse {
    let mut params = vec![("code", code)];
    if let Some(s) = &req.state {
        params.push(("state", s));
    }
    params.push(("iss", issuer));
    HttpResponse::Found()
        .insert_header((header::LOCATION, with_query(&req.redirect_uri, &params)))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish()
}

/// Reads the parameters of a GET (query) or POST (form body).
fn read_params(req: &HttpRequest, body: &[u8]) -> Result<Params, PageError> {
    let raw = if req.method() == actix_web::http::Method::POST {
        let is_form = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"));
        if !is_form {
            return Err(PageError::Malformed);
        }
        body
    } else {
        req.query_string().as_bytes()
    };
    let params = Params::parse(raw).map_err(|_| PageError::Malformed)?;
    // The request must survive the detour through the login form, whether or not this
    // browser needs it now: the same request gets the same answer signed in or not. Our
    // own `auth_after` (added for `prompt=login`) is counted at its longest.
    if continuation(&params.clone().with(AUTH_AFTER, &i64::MAX.to_string())).len() > MAX_NEXT {
        return Err(PageError::Malformed);
    }
    Ok(params)
}

/// Where the login form returns to for this request.
fn continuation(params: &Params) -> String {
    format!("/id/authorize?{}", params.to_query())
}

fn login_redirect(params: &Params, force: bool, login_hint: Option<&str>) -> HttpResponse {
    let next = continuation(params);
    let mut q = vec![("next", next.as_str())];
    if force {
        q.push(("force", "1"));
    }
    if let Some(h) = login_hint {
        q.push(("login_hint", h));
    }
    let loc = format!(
        "/id/login?{}",
        serde_urlencoded::to_string(&q).unwrap_or_default()
    );
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, loc))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish()
}

/// Sends the browser to the login form, returning to this request afterwards; for
/// `prompt=login` the request returns without the prompt but demanding a login after now.
pub fn to_login(areq: &AuthRequest, force: bool, now: UnixTime) -> HttpResponse {
    let params = if areq.prompt.login {
        let p = areq.params.without(&["prompt"]);
        p.with(AUTH_AFTER, &now.to_string())
    } else {
        areq.params.clone()
    };
    login_redirect(&params, force, areq.login_hint.as_deref())
}

/// What to do with a validated request for the current browser.
pub enum Next {
    Login { force: bool },
    Consent,
    Code,
}

/// Decides between login, consent and issuing a code.
pub fn decide(
    conn: &mut SqliteConnection,
    req: &AuthRequest,
    session: Option<&IdpSession>,
    now: UnixTime,
) -> QueryResult<Result<Next, (&'static str, &'static str)>> {
    let Some(s) = session else {
        if req.prompt.none {
            return Ok(Err(("login_required", "the user is not signed in")));
        }
        return Ok(Ok(Next::Login { force: false }));
    };
    let too_old = req.max_age.is_some_and(|m| now - s.session.auth_time > m)
        || req.auth_after.is_some_and(|t| s.session.auth_time < t);
    let other_user = req.hint_sub.as_deref().is_some_and(|sub| sub != s.user.sub);
    if too_old || other_user || req.prompt.login {
        if req.prompt.none {
            return Ok(Err(("login_required", "a new login is required")));
        }
        return Ok(Ok(Next::Login { force: true }));
    }
    if req.client.first_party {
        return Ok(Ok(Next::Code));
    }
    let remembered = consent::covers(conn, s.user.id, &req.client.client_id, &req.scopes)?;
    if remembered && !req.prompt.consent {
        return Ok(Ok(Next::Code));
    }
    if req.prompt.none {
        return Ok(Err(("consent_required", "the user has not consented")));
    }
    Ok(Ok(Next::Consent))
}

async fn authorize(
    req: HttpRequest,
    op: Op,
    any: AnySession,
    csrf: CsrfToken,
    body: web::Bytes,
) -> IdpResult<HttpResponse> {
    let practice = op.tenant.display_name().to_owned();
    let params = match read_params(&req, &body) {
        Ok(p) => p,
        Err(e) => return Ok(e.response(Some(&practice))),
    };
    let session = any.0.filter(|s| s.session.stage == Stage::Active);
    let issuer = op.issuer();
    let now = op.now();
    let ttl = op.state.settings.code_ttl_secs;
    let (t, iss, sess) = (op.tenant.clone(), issuer.clone(), session.clone());
    let outcome = kollegium_tenants::web::block(move || -> IdpResult<_> {
        let mut conn = t.conn(&IDP_DB)?;
        let areq = match validate(&mut conn, params, &iss, now)? {
            Ok(r) => r,
            Err(f) => return Ok(Err(f)),
        };
        let next = match decide(&mut conn, &areq, sess.as_ref(), now)? {
            Ok(n) => n,
            Err((error, description)) => {
                return Ok(Err(Fail::Client {
                    redirect_uri: areq.redirect_uri,
                    state: areq.state,
                    error,
                    description,
                }));
            }
        };
        let code = match (&next, sess.as_ref()) {
            (Next::Code, Some(s)) => Some(issue_code(&mut conn, &areq, s, now, ttl)?),
            _ => None,
        };
        Ok(Ok((areq, next, code)))
    })
    .await??;
    let (areq, next, code) = match outcome {
        Ok(v) => v,
        Err(f) => return Ok(f.response(&practice, &issuer)),
    };
    match (next, code, session) {
        (Next::Code, Some(code), _) => Ok(code_redirect(&areq, &code, &issuer)),
        (Next::Consent, _, Some(s)) => consent::page(&op, &s, &csrf, &areq),
        (Next::Login { force }, _, _) => Ok(to_login(&areq, force, now)),
        _ => Err(IdpError::invariant("inconsistent authorization decision")),
    }
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/id/authorize", web::get().to(authorize))
        .route("/id/authorize", web::post().to(authorize));
}
