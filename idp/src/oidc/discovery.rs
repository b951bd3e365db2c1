//! Discovery (OpenID Connect Discovery 1.0, RFC 8414) and the JWKS.

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use serde_json::{Value, json};

use super::Op;
use super::clients::SCOPES;
use super::errors::OAuthError;
use crate::IDP_DB;

/// Claims this provider issues.
pub const CLAIMS: &[&str] = &[
    "iss",
    "sub",
    "aud",
    "exp",
    "iat",
    "auth_time",
    "nonce",
    "sid",
    "azp",
    "at_hash",
    "amr",
    "name",
    "preferred_username",
    "email",
    "email_verified",
    "roles",
    "specialty",
    "kv_region",
    "work_areas",
    "practice",
];

/// The provider metadata: exactly what is supported, nothing more.
pub fn metadata(issuer: &str) -> Value {
    json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "userinfo_endpoint": format!("{issuer}/userinfo"),
        "jwks_uri": format!("{issuer}/jwks"),
        "revocation_endpoint": format!("{issuer}/revoke"),
        "introspection_endpoint": format!("{issuer}/introspect"),
        "end_session_endpoint": format!("{issuer}/logout/end"),
        "scopes_supported": SCOPES,
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256", "ES256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": CLAIMS,
        "claims_parameter_supported": false,
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
        "prompt_values_supported": ["none", "login", "consent"],
        "authorization_response_iss_parameter_supported": true,
        "backchannel_logout_supported": true,
        "backchannel_logout_session_supported": true,
        "ui_locales_supported": ["de"],
    })
}

async fn configuration(op: Op) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
        .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"))
        .json(metadata(&op.issuer()))
}

async fn jwks(op: Op) -> Result<HttpResponse, OAuthError> {
    let now = op.now();
    let t = op.tenant.clone();
    let doc = kollegium_tenants::web::block(move || -> Result<Value, OAuthError> {
        let mut conn = t.conn(&IDP_DB)?;
        Ok(super::keys::jwks(&mut conn, now)?)
    })
    .await??;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
        .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"))
        .content_type("application/jwk-set+json")
        .body(doc.to_string()))
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/id/.well-known/openid-configuration",
        web::get().to(configuration),
    )
    // RFC 8414 §3.1: the well-known segment goes before the issuer's path.
    .route(
        "/.well-known/oauth-authorization-server/id",
        web::get().to(configuration),
    )
    .route("/id/jwks", web::get().to(jwks));
}
