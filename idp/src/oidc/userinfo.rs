//! `/id/userinfo` (GET and POST) with a bearer access token, and the access-token check
//! shared with introspection: signed by this practice, this issuer, not expired, recorded
//! and not revoked, its user still active.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use diesel::prelude::*;
use kollegium_tenants::UnixTime;
use serde_json::Value;

use super::Op;
use super::errors::OAuthError;
use super::jwt::{self, Expect};
use super::keys;
use super::mint::user_claims;
use crate::IDP_DB;
use crate::schema::access_tokens;
use crate::users::{self, User, UserId, UserStatus};

/// A valid access token.
#[derive(Debug, Clone)]
pub struct ValidAccess {
    pub claims: Value,
    pub jti: String,
    pub client_id: String,
    pub user: Option<User>,
}

impl ValidAccess {
    pub fn scopes(&self) -> Vec<&str> {
        self.claims
            .get("scope")
            .and_then(Value::as_str)
            .unwrap_or("")
            .split(' ')
            .filter(|s| !s.is_empty())
            .collect()
    }
}

/// Checks an access token of this practice. `None` for anything not valid right now.
pub fn check_access_token(
    conn: &mut SqliteConnection,
    token: &str,
    issuer: &str,
    now: UnixTime,
) -> QueryResult<Option<ValidAccess>> {
    let verifiers = keys::verifiers(conn, now)?;
    let Ok(claims) = jwt::verify(token, &verifiers, jwt::TYP_ACCESS_TOKEN) else {
        return Ok(None);
    };
    let expect = Expect {
        issuer,
        audience: None,
        now,
        check_exp: true,
    };
    if expect.check(&claims).is_err() {
        return Ok(None);
    }
    let Some(jti) = claims.get("jti").and_then(Value::as_str) else {
        return Ok(None);
    };
    let row: Option<(String, Option<i64>, i64, Option<i64>)> = access_tokens::table
        .find(jti)
        .select((
            access_tokens::client_id,
            access_tokens::user_id,
            access_tokens::expires_at,
            access_tokens::revoked_at,
        ))
        .first(conn)
        .optional()?;
    let Some((client_id, user_id, expires_at, None)) = row else {
        return Ok(None);
    };
    if expires_at <= now {
        return Ok(None);
    }
    let user = match user_id {
        Some(id) => match users::by_id(conn, UserId(id))? {
            Some(u) if u.status == UserStatus::Active => Some(u),
            _ => return Ok(None),
        },
        None => None,
    };
    Ok(Some(ValidAccess {
        jti: jti.to_owned(),
        claims,
        client_id,
        user,
    }))
}

/// The bearer token of the `Authorization` header.
pub fn bearer(req: &HttpRequest) -> Result<String, OAuthError> {
    let value = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(OAuthError::bearer_missing)?;
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(OAuthError::bearer_missing)?;
    if token.len() > jwt::MAX_TOKEN_LEN {
        return Err(OAuthError::invalid_token("token too long"));
    }
    Ok(token.to_owned())
}

async fn userinfo(req: HttpRequest, op: Op) -> Result<HttpResponse, OAuthError> {
    let token = bearer(&req)?;
    let issuer = op.issuer();
    let now = op.now();
    let t = op.tenant.clone();
    let found = kollegium_tenants::web::block(move || -> Result<_, OAuthError> {
        let mut conn = t.conn(&IDP_DB)?;
        Ok(check_access_token(&mut conn, &token, &issuer, now)?)
    })
    .await??;
    let Some(access) = found else {
        return Err(OAuthError::invalid_token(
            "the access token is invalid, expired or revoked",
        ));
    };
    let scopes = access.scopes();
    let Some(user) = access.user.as_ref().filter(|_| scopes.contains(&"openid")) else {
        return Err(OAuthError::insufficient_scope(
            "the openid scope is required",
        ));
    };
    let claims = user_claims(
        user,
        &scopes,
        op.tenant.slug().as_str(),
        op.tenant.display_name(),
    );
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(Value::Object(claims)))
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/id/userinfo", web::get().to(userinfo))
        .route("/id/userinfo", web::post().to(userinfo));
}
