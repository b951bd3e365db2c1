//! Minting tokens for a grant: the access token (`at+jwt`, RFC 9068, recorded by `jti`)
//! and the ID token with the claims the granted scopes allow, both signed with the
//! client's algorithm (RS256 unless the client was registered for ES256).
//!
//! Minting has two steps: [`mint`] records the access token and builds the claims inside
//! the grant's write transaction, [`Minted::sign`] signs them after its commit, so the
//! practice's database is not locked while RSA signs (about 0.35 ms per signature, two per
//! grant): with many clients of one practice the grants queued for the lock.

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

/// The tokens of a grant, recorded but not yet signed.
#[must_use = "the tokens must be signed to be answered"]
pub struct Minted {
    access_claims: Value,
    /// Without `at_hash`, which needs the signed access token.
    id_claims: Option<Map<String, Value>>,
    /// The token response without the tokens.
    response: Value,
}

impl Minted {
    /// Signs the tokens (after the grant's transaction committed) and returns the token
    /// response.
    pub fn sign(self, signer: &Signer256) -> OResult<Value> {
        let Self {
            access_claims,
            id_claims,
            mut response,
        } = self;
        let access = sign(signer, jwt::TYP_ACCESS_TOKEN, &access_claims)?;
        if let Some(mut c) = id_claims {
            c.insert("at_hash".into(), json!(jwt::at_hash(&access)));
            response["id_token"] = json!(sign(signer, jwt::TYP_ID_TOKEN, &Value::Object(c))?);
        }
        response["access_token"] = json!(access);
        Ok(response)
    }
}

/// Records an access token and builds its claims and, for `openid`, the ID token's; sign
/// them with [`Minted::sign`] once the transaction committed.
pub fn mint(conn: &mut SqliteConnection, m: &Mint<'_>, s: &Subject<'_>) -> OResult<Minted> {
    let jti = random_token(18);
    let sub = s.user.map_or(s.client.client_id.clone(), |u| u.sub.clone());
    let scope = s.scopes.join(" ");
    let at_claims = json!({
        "iss": m.issuer, "sub": sub, "aud": s.client.client_id, "client_id": s.client.client_id,
        "iat": m.now, "exp": m.now + m.access_ttl, "jti": jti, "scope": scope,
    });
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
        "token_type": "Bearer", "expires_in": m.access_ttl, "scope": scope,
    });
    let mut id_claims = None;
    if let (Some(user), true) = (s.user, s.scopes.iter().any(|x| x == "openid")) {
        let scopes: Vec<&str> = s.scopes.iter().map(String::as_str).collect();
        let mut c = user_claims(user, &scopes, m.slug, m.practice_name);
        c.insert("iss".into(), json!(m.issuer));
        c.insert("aud".into(), json!(s.client.client_id));
        c.insert("azp".into(), json!(s.client.client_id));
        c.insert("iat".into(), json!(m.now));
        c.insert("exp".into(), json!(m.now + m.id_ttl));
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
        id_claims = Some(c);
    }
    if let Some(r) = &s.refresh_token {
        out["refresh_token"] = json!(r);
    }
    Ok(Minted {
        access_claims: at_claims,
        id_claims,
        response: out,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer() -> (Signer256, jwt::Verifier256) {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let der = aws_lc_rs::signature::EcdsaKeyPair::generate_pkcs8(
            &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &rng,
        )
        .unwrap();
        let s = Signer256::from_pkcs8_es256("k".into(), der.as_ref()).unwrap();
        let point = s.ec_public_point().unwrap().to_vec();
        (
            s,
            jwt::Verifier256 {
                kid: "k".into(),
                key: jwt::VerifyingKey256::Ec(point),
            },
        )
    }

    #[test]
    fn signing_after_the_commit_gives_the_same_response() {
        let (s, v) = signer();
        let mut id = Map::new();
        id.insert("iss".into(), json!("https://a/id"));
        id.insert("sub".into(), json!("u"));
        let minted = Minted {
            access_claims: json!({"iss": "https://a/id", "sub": "u", "jti": "j"}),
            id_claims: Some(id),
            response: json!({"token_type": "Bearer", "expires_in": 300, "refresh_token": "r"}),
        };
        let out = minted.sign(&s).unwrap();
        let access = out["access_token"].as_str().unwrap();
        let at = jwt::verify(access, std::slice::from_ref(&v), jwt::TYP_ACCESS_TOKEN).unwrap();
        assert_eq!(at["jti"], "j");
        let id = jwt::verify(out["id_token"].as_str().unwrap(), &[v], jwt::TYP_ID_TOKEN).unwrap();
        assert_eq!(
            id["at_hash"],
            jwt::at_hash(access),
            "bound to the signed access token"
        );
        assert_eq!(out["refresh_token"], "r");
        assert_eq!(out["token_type"], "Bearer");
    }
}
