//! Token revocation (RFC 7009) and introspection (RFC 7662).
//!
//! Revocation: a refresh token revokes its whole grant; an access token only itself.
//! Unknown tokens and tokens of other clients are answered with 200 and left alone, as
//! RFC 7009 §2.2 asks. Introspection is for confidential clients; a client learns about
//! its own tokens, a first-party client about any token of the practice.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use diesel::prelude::*;
use serde_json::{Value, json};

use super::Op;
use super::client_auth::{authenticate, form, presented};
use super::errors::OAuthError;
use super::jwt;
use super::userinfo::check_access_token;
use crate::IDP_DB;
use crate::links::token_hash;
use crate::schema::{access_tokens, grants, refresh_tokens, users};

async fn revoke(req: HttpRequest, op: Op, body: web::Bytes) -> Result<HttpResponse, OAuthError> {
    let p = form(&req, &body)?;
    let creds = presented(&req, &p)?;
    let token = p
        .get("token")
        .ok_or_else(|| OAuthError::invalid_request("token is required"))?
        .to_owned();
    let now = op.now();
    let t = op.tenant.clone();
    kollegium_tenants::web::block(move || -> Result<(), OAuthError> {
        let mut pooled = t.conn(&IDP_DB)?;
        let conn: &mut diesel::SqliteConnection = &mut pooled;
        let client = authenticate(conn, &creds)?;
        let refresh: Option<(String, String)> = refresh_tokens::table
            .find(token_hash(&token))
            .select((refresh_tokens::grant_id, refresh_tokens::client_id))
            .first(conn)
            .optional()?;
        if let Some((grant_id, owner)) = refresh {
            if owner == client.client_id {
                super::grants::revoke_grant(conn, &grant_id, "revoked by client", now)?;
            }
            return Ok(());
        }
        // An access token: signature and issuer are not needed to revoke by id, but the
        // id must belong to this client.
        if let Ok((_, claims)) = jwt::peek(&token)
            && let Some(jti) = claims.get("jti").and_then(Value::as_str)
        {
            diesel::update(
                access_tokens::table
                    .find(jti)
                    .filter(access_tokens::client_id.eq(&client.client_id))
                    .filter(access_tokens::revoked_at.is_null()),
            )
            .set(access_tokens::revoked_at.eq(now))
            .execute(conn)?;
        }
        Ok(())
    })
    .await??;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish())
}

/// grant id, client id, expires, rotated, revoked, created
type RefreshRow = (String, String, i64, Option<i64>, Option<i64>, i64);

async fn introspect(
    req: HttpRequest,
    op: Op,
    body: web::Bytes,
) -> Result<HttpResponse, OAuthError> {
    let p = form(&req, &body)?;
    let creds = presented(&req, &p)?;
    let token = p
        .get("token")
        .ok_or_else(|| OAuthError::invalid_request("token is required"))?
        .to_owned();
    let issuer = op.issuer();
    let now = op.now();
    let t = op.tenant.clone();
    let answer = kollegium_tenants::web::block(move || -> Result<Value, OAuthError> {
        let mut pooled = t.conn(&IDP_DB)?;
        let conn: &mut diesel::SqliteConnection = &mut pooled;
        let client = authenticate(conn, &creds)?;
        if !client.confidential {
            return Err(OAuthError::invalid_client(
                "introspection needs a confidential client",
            ));
        }
        let may_see = |owner: &str| owner == client.client_id || client.first_party;
        if let Some(a) = check_access_token(conn, &token, &issuer, now)? {
            if !may_see(&a.client_id) {
                return Ok(json!({ "active": false }));
            }
            let c = &a.claims;
            let mut out = json!({
                "active": true, "token_type": "Bearer", "client_id": a.client_id,
                "scope": c.get("scope"), "sub": c.get("sub"), "aud": c.get("aud"),
                "iss": c.get("iss"), "exp": c.get("exp"), "iat": c.get("iat"), "jti": a.jti,
            });
            if let Some(u) = &a.user {
                out["username"] = json!(u.username);
            }
            return Ok(out);
        }
        let refresh: Option<RefreshRow> = refresh_tokens::table
            .find(token_hash(&token))
            .select((
                refresh_tokens::grant_id,
                refresh_tokens::client_id,
                refresh_tokens::expires_at,
                refresh_tokens::rotated_at,
                refresh_tokens::revoked_at,
                refresh_tokens::created_at,
            ))
            .first(conn)
            .optional()?;
        let Some((grant_id, owner, exp, None, None, iat)) = refresh else {
            return Ok(json!({ "active": false }));
        };
        if exp <= now || !may_see(&owner) {
            return Ok(json!({ "active": false }));
        }
        let grant: Option<(String, String, String)> = grants::table
            .inner_join(users::table.on(grants::user_id.eq(users::id.nullable())))
            .filter(grants::id.eq(&grant_id))
            .filter(grants::revoked_at.is_null())
            .filter(users::status.eq("active"))
            .select((grants::scope, users::sub, users::username))
            .first(conn)
            .optional()?;
        let Some((scope, sub, username)) = grant else {
            return Ok(json!({ "active": false }));
        };
        Ok(json!({
            "active": true, "token_type": "refresh_token", "client_id": owner, "scope": scope,
            "sub": sub, "username": username, "iss": issuer, "exp": exp, "iat": iat,
        }))
    })
    .await??;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(answer))
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/id/revoke", web::post().to(revoke))
        .route("/id/introspect", web::post().to(introspect));
}
