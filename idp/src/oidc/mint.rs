//! Minting tokens for a grant: the access token (`at+jwt`, RFC 9068, recorded by `jti`)
//! and the ID token with the claims the granted scopes allow, both signed with the
//! client's algorithm (RS256 unless the client was registered for ES256).

use diesel::prelude::*;
use kollegium_tenants::UnixTime;
use kollegium_tenants::secrets::random_token;
use serde_json::{Map, Value, json};

use super::clients::Client;
use super::errors::OAuthError;
use super::jwt::{self, Signer256};
use crate::schema::access_tokens;
use crate::users::User;

type OResult<T> = Result<T, OAuthError>;

/// Claims about a user for the granted scopes (ID token and userinfo).
pub fn user_claims(
    user: &User,
    scopes: &[&str],
    slug: &str,
    practice_name: &str,
) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("sub".into(), json!(user.sub));
    if scopes.contains(&"profile") {
        m.insert("name".into(), json!(user.display_name));
        m.insert("preferred_username".into(), json!(user.username));
    }
    if scopes.contains(&"email") {
        m.insert("email".into(), json!(user.email));
        m.insert("email_verified".into(), json!(user.email_verified));
    }
    if scopes.contains(&"practice") {
        let mut roles = user.roles.clone();
        if user.is_admin {
            roles.push("admin".into());
        }
        m.insert("roles".into(), json!(roles));
        m.insert("specialty".into(), json!(user.specialty));
        m.insert("kv_region".into(), json!(user.kv_region));
        m.insert("work_areas".into(), json!(user.work_areas));
        m.insert(
            "practice".into(),
            json!({ "slug": slug, "name": practice_name }),
        );
    }
    m
}

/// Everything needed to mint tokens for one response.
pub struct Mint<'a> {
    pub issuer: &'a str,
    /// The practice's key of the client's algorithm.
    pub signer: &'a Signer256,
    pub now: UnixTime,
    pub access_ttl: i64,
    pub id_ttl: i64,
    pub slug: &'a str,
    pub practice_name: &'a str,
}

/// What a grant's tokens carry.
pub struct Subject<'a> {
    pub grant_id: &'a str,
    pub client: &'a Client,
    pub user: Option<&'a User>,
    pub scopes: Vec<String>,
    pub nonce: Option<String>,
    pub auth_time: Option<UnixTime>,
    pub sid: Option<String>,
    pub amr: Option<String>,
    pub refresh_token: Option<String>,
}

fn sign(signer: &Signer256, typ: &str, claims: &Value) -> OResult<String> {
    jwt::sign(signer, typ, claims).map_err(|_| OAuthError::server_error())
}

/// Signs and records an access token and, for `openid`, an ID token.
pub fn mint(conn: &mut SqliteConnection, m: &Mint<'_>, s: &Subject<'_>) -> OResult<Value> {
    let jti = random_token(18);
    let sub = s.user.map_or(s.client.client_id.clone(), |u| u.sub.clone());
    let scope = s.scopes.join(" ");
    let at_claims = json!({
        "iss": m.issuer, "sub": sub, "aud": s.client.client_id, "client_id": s.client.client_id,
        "iat": m.now, "exp": m.now + m.access_ttl, "jti": jti, "scope": scope,
    });
    let access = sign(m.signer, jwt::TYP_ACCESS_TOKEN, &at_claims)?;
    diesel::insert_into(access_tokens::table)
        .values((
            access_tokens::jti.eq(&jti),
            access_tokens::grant_id.eq(s.grant_id),
            access_tokens::client_id.eq(&s.client.client_id),
            access_tokens::user_id.eq(s.user.map(|u| u.id.0)),
            access_tokens::expires_at.eq(m.now + m.access_ttl),
        ))
        .execute(conn)?;
    let mut out = json!({
        "access_token": access, "token_type": "Bearer", "expires_in": m.access_ttl, "scope": scope,
    });
    if let (Some(user), true) = (s.user, s.scopes.iter().any(|x| x == "openid")) {
        let scopes: Vec<&str> = s.scopes.iter().map(String::as_str).collect();
        let mut c = user_claims(user, &scopes, m.slug, m.practice_name);
        c.insert("iss".into(), json!(m.issuer));
        c.insert("aud".into(), json!(s.client.client_id));
        c.insert("azp".into(), json!(s.client.client_id));
        c.insert("iat".into(), json!(m.now));
        c.insert("exp".into(), json!(m.now + m.id_ttl));
        c.insert("at_hash".into(), json!(jwt::at_hash(&access)));
        if let Some(t) = s.auth_time {
            c.insert("auth_time".into(), json!(t));
        }
        if let Some(n) = &s.nonce {
            c.insert("nonce".into(), json!(n));
        }
        if let Some(sid) = &s.sid {
            c.insert("sid".into(), json!(sid));
        }
        if let Some(amr) = &s.amr {
            c.insert("amr".into(), json!(amr.split(' ').collect::<Vec<_>>()));
        }
        out["id_token"] = json!(sign(m.signer, jwt::TYP_ID_TOKEN, &Value::Object(c))?);
    }
    if let Some(r) = &s.refresh_token {
        out["refresh_token"] = json!(r);
    }
    Ok(out)
}
