//! The token endpoint `/id/token`: authorization code (with PKCE), refresh token (rotating,
//! with reuse detection) and client credentials; client authentication by
//! `client_secret_basic`, `client_secret_post` or `none` (public clients).
//!
//! `client_credentials` grants the scopes a client is registered for, never `openid` or
//! `offline_access`; the directory scope ([`DIRECTORY_SCOPE`]) only to the first-party client.
//!
//! Refresh tokens are issued when the scope holds `offline_access`, and always to
//! first-party clients (the platform keeps its users signed in through them). A refresh
//! token without `offline_access` (the workspace never asks for it) is bound to the browser
//! session it came from: it works only while that session is open and within its idle and
//! absolute limits, and the access tokens of such a grant expire no later than the session
//! would. A first-party client refreshes only while serving its member, so its refresh
//! counts as activity of the session; a third-party client's (maybe in the background)
//! does not.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use diesel::prelude::*;
use kollegium_tenants::UnixTime;
use kollegium_tenants::secrets::random_token;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::Op;
use super::client_auth::{authenticate, form, presented};
use super::clients::{Client, DIRECTORY_SCOPE};
use super::errors::OAuthError;
use super::mint::{Mint, Minted, Subject, mint};
use super::params::Params;
use crate::IDP_DB;
use crate::events::{self, Event, EventKind};
use crate::links::token_hash;
use crate::schema::{auth_codes, grants, refresh_tokens, sessions};
use crate::state::IdpSettings;
use crate::users::{self, User, UserId, UserStatus};

type OResult<T> = Result<T, OAuthError>;

fn new_refresh(
    conn: &mut SqliteConnection,
    grant_id: &str,
    client_id: &str,
    now: UnixTime,
    expires_at: UnixTime,
) -> QueryResult<String> {
    let token = random_token(32);
    diesel::insert_into(refresh_tokens::table)
        .values((
            refresh_tokens::token_hash.eq(token_hash(&token)),
            refresh_tokens::grant_id.eq(grant_id),
            refresh_tokens::client_id.eq(client_id),
            refresh_tokens::created_at.eq(now),
            refresh_tokens::expires_at.eq(expires_at),
        ))
        .execute(conn)?;
    Ok(token)
}

fn new_grant(
    conn: &mut SqliteConnection,
    client_id: &str,
    user: Option<UserId>,
    session_id: Option<i64>,
    scope: &str,
    auth_time: Option<UnixTime>,
    now: UnixTime,
) -> QueryResult<String> {
    let id = random_token(16);
    diesel::insert_into(grants::table)
        .values((
            grants::id.eq(&id),
            grants::client_id.eq(client_id),
            grants::user_id.eq(user.map(|u| u.0)),
            grants::session_id.eq(session_id),
            grants::scope.eq(scope),
            grants::auth_time.eq(auth_time),
            grants::created_at.eq(now),
        ))
        .execute(conn)?;
    Ok(id)
}

fn usable(user: Option<User>) -> OResult<User> {
    match user {
        // A login lock holds back new sign-ins, not grants made before it.
        Some(u) if u.status == UserStatus::Active => Ok(u),
        _ => Err(OAuthError::invalid_grant("the account is not usable")),
    }
}

fn session_info(
    conn: &mut SqliteConnection,
    id: Option<i64>,
) -> QueryResult<Option<(String, String, Option<i64>)>> {
    let Some(id) = id else { return Ok(None) };
    sessions::table
        .find(id)
        .select((sessions::sid, sessions::amr, sessions::ended_at))
        .first(conn)
        .optional()
}

/// Whether a grant lives only as long as its browser session (see the module).
fn session_bound(scopes: &[String]) -> bool {
    !scopes.iter().any(|s| s == "offline_access")
}

/// The state of the browser session a grant came from.
enum BoundSession {
    /// The grant names no session.
    None,
    /// Ended, or past its idle or absolute limit.
    Over,
    /// Open until this time at the latest (idle and absolute limits).
    Until(UnixTime),
}

/// Checks the browser session `id` against the limits of `settings`, as the IdP's own
/// pages do. With `touch` (the first-party workspace refreshing for its member) the use
/// counts as activity: the session's idle time starts again.
fn bound_session(
    conn: &mut SqliteConnection,
    id: Option<i64>,
    settings: &IdpSettings,
    now: UnixTime,
    touch: bool,
) -> QueryResult<BoundSession> {
    let Some(id) = id else {
        return Ok(BoundSession::None);
    };
    let Some(s) = crate::sessions::by_id(conn, id)? else {
        return Ok(BoundSession::Over);
    };
    let absolute_end = s.created_at + settings.session_absolute_secs;
    if s.ended_at.is_some()
        || now - s.last_seen_at > settings.session_idle_secs
        || now > absolute_end
    {
        return Ok(BoundSession::Over);
    }
    let mut last_seen = s.last_seen_at;
    if touch && now - last_seen >= 30 {
        diesel::update(sessions::table.find(id))
            .set(sessions::last_seen_at.eq(now))
            .execute(conn)?;
        last_seen = now;
    }
    Ok(BoundSession::Until(
        (last_seen + settings.session_idle_secs).min(absolute_end),
    ))
}

/// `m` with access tokens that expire by `until` (at least one second from now).
fn expiring_by<'a>(m: &Mint<'a>, until: Option<UnixTime>) -> Mint<'a> {
    let access_ttl = until.map_or(m.access_ttl, |u| m.access_ttl.min(u - m.now).max(1));
    Mint { access_ttl, ..*m }
}

#[derive(Queryable)]
struct CodeRow {
    client_id: String,
    user_id: i64,
    session_id: Option<i64>,
    redirect_uri: String,
    scope: String,
    nonce: Option<String>,
    code_challenge: Option<String>,
    auth_time: i64,
    expires_at: i64,
    used_at: Option<i64>,
}

/// How an exchange inside the token transaction ends: tokens, or a refusal whose writes
/// are kept (a code burnt by a failed PKCE check), where any other error rolls back.
enum Exchange {
    Tokens(Minted),
    Burnt(OAuthError),
}

/// Burns a code: a failed PKCE check means someone without the verifier holds it, so the
/// legitimate client's later exchange must fail too (and reveal the theft as a reuse).
fn burn(conn: &mut SqliteConnection, hash: &str, now: UnixTime) -> QueryResult<()> {
    diesel::update(
        auth_codes::table
            .find(hash)
            .filter(auth_codes::used_at.is_null()),
    )
    .set(auth_codes::used_at.eq(now))
    .execute(conn)
    .map(|_| ())
}

fn code_grant(
    conn: &mut SqliteConnection,
    m: &Mint<'_>,
    client: &Client,
    p: &Params,
    settings: &IdpSettings,
) -> OResult<Exchange> {
    let code = p
        .get("code")
        .ok_or_else(|| OAuthError::invalid_request("code is required"))?;
    let hash = token_hash(code);
    let row: Option<CodeRow> = auth_codes::table
        .find(&hash)
        .select((
            auth_codes::client_id,
            auth_codes::user_id,
            auth_codes::session_id,
            auth_codes::redirect_uri,
            auth_codes::scope,
            auth_codes::nonce,
            auth_codes::code_challenge,
            auth_codes::auth_time,
            auth_codes::expires_at,
            auth_codes::used_at,
        ))
        .first(conn)
        .optional()?;
    let invalid = || OAuthError::invalid_grant("invalid, expired or used authorization code");
    let Some(row) = row else {
        return Err(invalid());
    };
    if row.used_at.is_some() {
        return Err(invalid());
    }
    if row.expires_at <= m.now || row.client_id != client.client_id {
        return Err(invalid());
    }
    if p.get("redirect_uri") != Some(row.redirect_uri.as_str()) {
        return Err(OAuthError::invalid_grant("redirect_uri does not match"));
    }
    match (&row.code_challenge, p.get("code_verifier")) {
        (Some(ch), Some(v)) => {
            let ok_shape = (43..=128).contains(&v.len())
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
            if !ok_shape || B64.encode(Sha256::digest(v.as_bytes())) != *ch {
                burn(conn, &hash, m.now)?;
                return Ok(Exchange::Burnt(OAuthError::invalid_grant(
                    "PKCE verification failed",
                )));
            }
        }
        (Some(_), None) => return Err(OAuthError::invalid_grant("code_verifier is required")),
        (None, Some(_)) => return Err(OAuthError::invalid_grant("no code_challenge was sent")),
        (None, None) if !client.confidential => {
            return Err(OAuthError::invalid_grant("PKCE is required"));
        }
        (None, None) => {}
    }
    let n = diesel::update(
        auth_codes::table
            .find(&hash)
            .filter(auth_codes::used_at.is_null()),
    )
    .set(auth_codes::used_at.eq(m.now))
    .execute(conn)?;
    if n != 1 {
        return Err(invalid());
    }
    let user = usable(users::by_id(conn, UserId(row.user_id))?)?;
    let scopes: Vec<String> = row.scope.split(' ').map(str::to_owned).collect();
    let until = if session_bound(&scopes) {
        match bound_session(conn, row.session_id, settings, m.now, client.first_party)? {
            BoundSession::Over => {
                return Err(OAuthError::invalid_grant("the sign-in session has ended"));
            }
            BoundSession::None => None,
            BoundSession::Until(t) => Some(t),
        }
    } else {
        None
    };
    let m = &expiring_by(m, until);
    let grant_id = new_grant(
        conn,
        &client.client_id,
        Some(user.id),
        row.session_id,
        &row.scope,
        Some(row.auth_time),
        m.now,
    )?;
    diesel::update(auth_codes::table.find(&hash))
        .set(auth_codes::grant_id.eq(&grant_id))
        .execute(conn)?;
    let refresh = if scopes.iter().any(|s| s == "offline_access") || client.first_party {
        Some(new_refresh(
            conn,
            &grant_id,
            &client.client_id,
            m.now,
            m.now + settings.refresh_token_ttl_secs,
        )?)
    } else {
        None
    };
    let sess = session_info(conn, row.session_id)?;
    mint(
        conn,
        m,
        &Subject {
            grant_id: &grant_id,
            client,
            user: Some(&user),
            scopes,
            nonce: row.nonce,
            auth_time: Some(row.auth_time),
            sid: sess.as_ref().map(|s| s.0.clone()),
            amr: sess.map(|s| s.1),
            refresh_token: refresh,
        },
    )
    .map(Exchange::Tokens)
}

/// Detects a second use of a code or of a rotated refresh token and revokes what was issued
/// from it. Runs (and commits) before the exchange itself, which refuses such tokens anyway.
fn detect_reuse(
    conn: &mut SqliteConnection,
    client: &Client,
    grant_type: Option<&str>,
    p: &Params,
    now: UnixTime,
) -> QueryResult<bool> {
    match (grant_type, p.get("code"), p.get("refresh_token")) {
        (Some("authorization_code"), Some(code), _) => {
            let row: Option<(String, i64, Option<i64>, Option<String>)> = auth_codes::table
                .find(token_hash(code))
                .select((
                    auth_codes::client_id,
                    auth_codes::user_id,
                    auth_codes::used_at,
                    auth_codes::grant_id,
                ))
                .first(conn)
                .optional()?;
            let Some((client_id, user_id, Some(_), grant_id)) = row else {
                return Ok(false);
            };
            // A second use means the code leaked: revoke everything issued from it.
            if let Some(g) = &grant_id {
                super::grants::revoke_grant(conn, g, "code reuse", now)?;
            }
            events::record(
                conn,
                now,
                &Event {
                    user: Some(UserId(user_id)),
                    client_id: Some(&client_id),
                    ..Event::new(EventKind::CodeReuse)
                },
            )?;
            Ok(true)
        }
        (Some("refresh_token"), _, Some(token)) => {
            let row: Option<(String, String, Option<i64>)> = refresh_tokens::table
                .find(token_hash(token))
                .select((
                    refresh_tokens::grant_id,
                    refresh_tokens::client_id,
                    refresh_tokens::rotated_at,
                ))
                .first(conn)
                .optional()?;
            let Some((grant_id, client_id, Some(_))) = row else {
                return Ok(false);
            };
            if client_id != client.client_id {
                return Ok(false);
            }
            let (user_id, revoked): (Option<i64>, Option<i64>) = grants::table
                .find(&grant_id)
                .select((grants::user_id, grants::revoked_at))
                .first(conn)?;
            if revoked.is_none() {
                super::grants::revoke_grant(conn, &grant_id, "refresh reuse", now)?;
                events::record(
                    conn,
                    now,
                    &Event {
                        user: user_id.map(UserId),
                        client_id: Some(&client_id),
                        ..Event::new(EventKind::RefreshReuse)
                    },
                )?;
            }
            Ok(true)
        }
        _ => Ok(false),
    }
}

#[derive(Queryable)]
struct RefreshRow {
    grant_id: String,
    client_id: String,
    expires_at: i64,
    rotated_at: Option<i64>,
    revoked_at: Option<i64>,
}

#[derive(Queryable)]
struct GrantRow {
    user_id: Option<i64>,
    session_id: Option<i64>,
    scope: String,
    auth_time: Option<i64>,
    revoked_at: Option<i64>,
}

fn refresh_grant(
    conn: &mut SqliteConnection,
    m: &Mint<'_>,
    client: &Client,
    p: &Params,
    settings: &IdpSettings,
) -> OResult<Minted> {
    let token = p
        .get("refresh_token")
        .ok_or_else(|| OAuthError::invalid_request("refresh_token is required"))?;
    let hash = token_hash(token);
    let invalid = || OAuthError::invalid_grant("invalid or expired refresh token");
    let row: RefreshRow = refresh_tokens::table
        .find(&hash)
        .select((
            refresh_tokens::grant_id,
            refresh_tokens::client_id,
            refresh_tokens::expires_at,
            refresh_tokens::rotated_at,
            refresh_tokens::revoked_at,
        ))
        .first(conn)
        .optional()?
        .ok_or_else(invalid)?;
    if row.client_id != client.client_id {
        return Err(invalid());
    }
    let grant: GrantRow = grants::table
        .find(&row.grant_id)
        .select((
            grants::user_id,
            grants::session_id,
            grants::scope,
            grants::auth_time,
            grants::revoked_at,
        ))
        .first(conn)?;
    if row.rotated_at.is_some()
        || row.revoked_at.is_some()
        || grant.revoked_at.is_some()
        || row.expires_at <= m.now
    {
        return Err(invalid());
    }
    let granted: Vec<String> = grant.scope.split(' ').map(str::to_owned).collect();
    let scopes = match p.get("scope") {
        None => granted.clone(),
        Some(s) => {
            let asked: Vec<String> = s
                .split(' ')
                .filter(|x| !x.is_empty())
                .map(str::to_owned)
                .collect();
            if asked.iter().any(|a| !granted.contains(a)) {
                return Err(OAuthError::invalid_scope("scope exceeds the grant"));
            }
            asked
        }
    };
    let user = usable(users::by_id(conn, UserId(grant.user_id.unwrap_or(-1)))?)?;
    let until = if session_bound(&granted) {
        match bound_session(conn, grant.session_id, settings, m.now, client.first_party)? {
            BoundSession::Until(t) => Some(t),
            BoundSession::None | BoundSession::Over => {
                return Err(OAuthError::invalid_grant("the sign-in session has ended"));
            }
        }
    } else {
        None
    };
    let m = &expiring_by(m, until);
    let sess = session_info(conn, grant.session_id)?;
    let n = diesel::update(
        refresh_tokens::table
            .find(&hash)
            .filter(refresh_tokens::rotated_at.is_null()),
    )
    .set(refresh_tokens::rotated_at.eq(m.now))
    .execute(conn)?;
    if n != 1 {
        return Err(invalid());
    }
    let next = new_refresh(
        conn,
        &row.grant_id,
        &client.client_id,
        m.now,
        row.expires_at,
    )?;
    mint(
        conn,
        m,
        &Subject {
            grant_id: &row.grant_id,
            client,
            user: Some(&user),
            scopes,
            nonce: None,
            auth_time: grant.auth_time,
            sid: sess.as_ref().map(|s| s.0.clone()),
            amr: sess.map(|s| s.1),
            refresh_token: Some(next),
        },
    )
}

fn client_credentials(
    conn: &mut SqliteConnection,
    m: &Mint<'_>,
    client: &Client,
    p: &Params,
) -> OResult<Minted> {
    if !client.confidential {
        return Err(OAuthError::unauthorized_client(
            "client_credentials needs a confidential client",
        ));
    }
    let allowed = client.allowed_scopes();
    let scopes: Vec<String> = p
        .get("scope")
        .unwrap_or("")
        .split(' ')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    // The directory scope is the first-party client's alone; the others as registered.
    let permitted = |s: &String| {
        if s == DIRECTORY_SCOPE {
            client.first_party
        } else {
            s != "openid" && s != "offline_access" && allowed.contains(s)
        }
    };
    if !scopes.iter().all(permitted) {
        return Err(OAuthError::invalid_scope(
            "scope not available for client_credentials",
        ));
    }
    let grant_id = new_grant(
        conn,
        &client.client_id,
        None,
        None,
        &scopes.join(" "),
        None,
        m.now,
    )?;
    mint(
        conn,
        m,
        &Subject {
            grant_id: &grant_id,
            client,
            user: None,
            scopes,
            nonce: None,
            auth_time: None,
            sid: None,
            amr: None,
            refresh_token: None,
        },
    )
}

async fn token(req: HttpRequest, op: Op, body: web::Bytes) -> OResult<HttpResponse> {
    let p = form(&req, &body)?;
    let creds = presented(&req, &p)?;
    let grant_type = p.get("grant_type").map(str::to_owned);
    let issuer = op.issuer();
    let now = op.now();
    let op2 = op.clone();
    let out = kollegium_tenants::web::block(move || -> OResult<Value> {
        let mut conn = op2.tenant.conn(&IDP_DB)?;
        let client = authenticate(&mut conn, &creds)?;
        let signer = op2
            .signer_of(&mut conn, client.signing_alg())
            .map_err(|e| OAuthError::from(crate::error::IdpError::from(e)))?;
        let settings = &op2.state.settings;
        let m = Mint {
            issuer: &issuer,
            now,
            access_ttl: settings.access_token_ttl_secs,
            id_ttl: settings.id_token_ttl_secs,
            slug: op2.tenant.slug().as_str(),
            practice_name: op2.tenant.display_name(),
        };
        if detect_reuse(&mut conn, &client, grant_type.as_deref(), &p, now)? {
            return Err(OAuthError::invalid_grant("invalid, expired or used grant"));
        }
        let exchange = conn.immediate_transaction(|conn| match grant_type.as_deref() {
            Some("authorization_code") => code_grant(conn, &m, &client, &p, settings),
            Some("refresh_token") => {
                refresh_grant(conn, &m, &client, &p, settings).map(Exchange::Tokens)
            }
            Some("client_credentials") => {
                client_credentials(conn, &m, &client, &p).map(Exchange::Tokens)
            }
            Some(_) => Err(OAuthError::new(
                actix_web::http::StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "unsupported grant_type",
            )),
            None => Err(OAuthError::invalid_request("grant_type is required")),
        })?;
        // Signed after the commit: the practice's database is not locked while RSA signs.
        match exchange {
            Exchange::Tokens(minted) => minted.sign(&signer),
            Exchange::Burnt(e) => Err(e),
        }
    })
    .await??;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"))
        .json(out))
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/id/token", web::post().to(token));
}
