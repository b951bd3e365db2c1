//! Client authentication at the token, revocation and introspection endpoints:
//! `client_secret_basic`, `client_secret_post`, or `none` for public clients.

use actix_web::HttpRequest;
use actix_web::http::header;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64STD;
use diesel::SqliteConnection;

use super::clients::{self, Client};
use super::errors::OAuthError;
use super::params::Params;

type OResult<T> = Result<T, OAuthError>;

/// Reads a form body strictly.
pub fn form(req: &HttpRequest, body: &[u8]) -> OResult<Params> {
    let is_form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return Err(OAuthError::invalid_request(
            "content type must be application/x-www-form-urlencoded",
        ));
    }
    Params::parse(body).map_err(|e| OAuthError::invalid_request(e.to_string()))
}

/// Client credentials as presented (not yet checked).
#[derive(Debug, Clone)]
pub struct Presented {
    pub client_id: String,
    pub secret: Option<String>,
}

/// Reads `client_secret_basic`, `client_secret_post` or `none`; more than one is an error.
pub fn presented(req: &HttpRequest, p: &Params) -> OResult<Presented> {
    let basic = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Basic ")
                .or_else(|| v.strip_prefix("basic "))
        });
    if let Some(b) = basic {
        if p.get("client_secret").is_some() {
            return Err(OAuthError::invalid_request(
                "use one client authentication method",
            ));
        }
        let bad = || OAuthError::invalid_client("malformed basic credentials");
        let raw = B64STD.decode(b.trim()).map_err(|_| bad())?;
        let text = String::from_utf8(raw).map_err(|_| bad())?;
        let (id, secret) = text.split_once(':').ok_or_else(bad)?;
        let dec = |s: &str| -> OResult<String> {
            let p = Params::parse(format!("v={s}").as_bytes()).map_err(|_| bad())?;
            Ok(p.get("v").unwrap_or("").to_owned())
        };
        let id = dec(id)?;
        if p.get("client_id").is_some_and(|c| c != id) {
            return Err(OAuthError::invalid_client("client ids differ"));
        }
        return Ok(Presented {
            client_id: id,
            secret: Some(dec(secret)?),
        });
    }
    let id = p
        .get("client_id")
        .ok_or_else(|| OAuthError::invalid_client("client authentication required"))?;
    Ok(Presented {
        client_id: id.to_owned(),
        secret: p.get("client_secret").map(str::to_owned),
    })
}

/// Checks presented credentials: confidential clients need their secret, public clients
/// must not send one.
pub fn authenticate(conn: &mut SqliteConnection, p: &Presented) -> OResult<Client> {
    let client = clients::enabled(conn, &p.client_id)?
        .ok_or_else(|| OAuthError::invalid_client("unknown client or wrong credentials"))?;
    let ok = match (&p.secret, client.confidential) {
        (Some(s), true) => client.secret_matches(s),
        (None, false) => true,
        _ => false,
    };
    if ok {
        Ok(client)
    } else {
        Err(OAuthError::invalid_client(
            "unknown client or wrong credentials",
        ))
    }
}
