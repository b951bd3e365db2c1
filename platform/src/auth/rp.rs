//! The relying-party side of OpenID Connect, against the practice's own IdP.

use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use kollegium_tenants::Tenant;
use kollegium_tenants::kv;
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreErrorResponseType, CoreJsonWebKeySet,
    CoreJwsSigningAlgorithm, CoreProviderMetadata,
};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, JsonWebKey, Nonce,
    OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier, PostLogoutRedirectUrl, RedirectUrl,
    RefreshToken, RequestTokenError, Scope, StandardErrorResponse, TokenResponse,
};

use super::SignIn;
use crate::PLATFORM_DB;
use crate::members::Claims;

/// How long discovery and JWKS answers are trusted.
const METADATA_TTL: Duration = Duration::from_secs(300);
/// A token signed with a key the cached JWKS lacks (the IdP rotated its keys) fetches the
/// keys again, but not more often than this: a caller with made-up key ids cannot make
/// the node fetch them for every request.
const KEYS_REFETCH_AFTER: Duration = Duration::from_secs(30);

/// Settings keys where practices made before [`REGISTRATION_FILE`] keep the platform's
/// client registration.
pub const CLIENT_ID_KEY: &str = "oidc_client_id";
pub const CLIENT_SECRET_KEY: &str = "oidc_client_secret";
/// Purpose under which the client secret is sealed with the practice secret.
pub const SECRET_PURPOSE: &str = "platform-oidc-client";

#[derive(Debug, thiserror::Error)]
pub enum RpError {
    #[error("the platform is not registered at the practice IdP")]
    NotRegistered,
    #[error("identity provider: {0}")]
    Provider(String),
    #[error("the identity provider refused: {0}")]
    Refused(String),
    #[error(transparent)]
    Store(#[from] kollegium_tenants::store::StoreError),
    #[error("database: {0}")]
    Db(#[from] diesel::result::Error),
}

fn provider<E: std::fmt::Display>(e: E) -> RpError {
    RpError::Provider(e.to_string())
}

/// The platform's registration at its practice IdP.
#[derive(Clone)]
pub struct Registration {
    pub issuer: String,
    pub origin: String,
    pub client_id: String,
    client_secret: String,
}

impl std::fmt::Debug for Registration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registration")
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

impl Registration {
    pub fn redirect_uri(&self) -> String {
        format!("{}/auth/callback", self.origin)
    }
    /// The client secret (for the token request; never logged).
    pub fn client_secret(&self) -> &str {
        &self.client_secret
    }
    pub fn post_logout_uri(&self) -> String {
        format!("{}/auth/logged-out", self.origin)
    }
}

/// The file in the practice directory that keeps the platform's registration at the
/// practice IdP (client id and secret, sealed with the practice secret): read without
/// opening a database, so an anonymous page load opens none of the workspace's.
pub const REGISTRATION_FILE: &str = "platform-client.sealed";
/// Context of the file's seal.
const FILE_CONTEXT: &str = "kollegium platform client v1";

#[derive(serde::Serialize, serde::Deserialize)]
struct Stored {
    client_id: String,
    client_secret: String,
}

/// The sealed content of [`REGISTRATION_FILE`] for a client.
pub fn sealed_file(
    secret: &kollegium_tenants::secrets::PracticeSecret,
    id: &str,
    client_secret: &str,
) -> String {
    let stored = Stored {
        client_id: id.to_owned(),
        client_secret: client_secret.to_owned(),
    };
    // Serialising two strings cannot fail.
    let json = serde_json::to_vec(&stored).unwrap_or_default();
    secret.seal(SECRET_PURPOSE, FILE_CONTEXT, &json)
}

/// Writes [`REGISTRATION_FILE`] into `dir` durably: a temporary file, synced, renamed, the
/// directory synced.
fn write_file(dir: &std::path::Path, sealed: &str) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = dir.join(format!("{REGISTRATION_FILE}.tmp"));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(sealed.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, dir.join(REGISTRATION_FILE))?;
    std::fs::File::open(dir)?.sync_all()
}

/// Reads the registration (blocking): from [`REGISTRATION_FILE`], or for a practice made
/// before the file existed from `platform.sqlite`, then writes the file.
pub fn registration(tenant: &Tenant, origin: &str) -> Result<Registration, RpError> {
    let stored = match std::fs::read_to_string(tenant.dir().join(REGISTRATION_FILE)) {
        Ok(sealed) => {
            let json = tenant
                .secret()
                .open(SECRET_PURPOSE, FILE_CONTEXT, &sealed)
                .map_err(|_| RpError::NotRegistered)?;
            serde_json::from_slice::<Stored>(&json).map_err(|_| RpError::NotRegistered)?
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let stored = from_database(tenant)?;
            let sealed = sealed_file(tenant.secret(), &stored.client_id, &stored.client_secret);
            if let Err(e) = write_file(tenant.dir(), &sealed) {
                tracing::warn!(practice = %tenant.slug(), error = %e,
                    "could not write the platform's registration file; read from the database");
            }
            stored
        }
        Err(e) => {
            return Err(RpError::Provider(format!(
                "reading {REGISTRATION_FILE}: {e}"
            )));
        }
    };
    Ok(Registration {
        issuer: format!("{origin}/id"),
        origin: origin.to_owned(),
        client_id: stored.client_id,
        client_secret: stored.client_secret,
    })
}

/// The registration as practices made before [`REGISTRATION_FILE`] keep it.
fn from_database(tenant: &Tenant) -> Result<Stored, RpError> {
    let mut conn = tenant.conn(&PLATFORM_DB)?;
    let id = kv::get(&mut conn, CLIENT_ID_KEY)?.ok_or(RpError::NotRegistered)?;
    let sealed = kv::get(&mut conn, CLIENT_SECRET_KEY)?.ok_or(RpError::NotRegistered)?;
    let secret = tenant
        .secret()
        .open(SECRET_PURPOSE, SECRET_PURPOSE, &sealed)
        .map_err(|_| RpError::NotRegistered)?;
    Ok(Stored {
        client_id: id,
        client_secret: String::from_utf8_lossy(&secret).into_owned(),
    })
}

/// How long a registration read is used without reading it again. It changes only when a
/// practice is created.
pub const REGISTRATION_TTL: Duration = Duration::from_secs(600);

/// Registrations kept at most; beyond, the cache starts over (a node serves at most a few
/// thousand practices, a registration is a few hundred bytes).
const MAX_REGISTRATIONS: usize = 20_000;

/// The registration of `tenant` at `origin`, from the node's cache or else read (blocking,
/// off the async threads) and cached.
pub async fn registration_cached(
    state: &SignIn,
    tenant: &Tenant,
    origin: &str,
) -> Result<Registration, RpError> {
    // The practice secret's tag in the key: a practice made anew under a slug (its new
    // secret, its new registration) never finds the registration of the one before.
    let tag = hex::encode(&tenant.secret().derive("registration-cache")[..8]);
    let key = (
        format!("{}:{tag}", tenant.slug().as_str()),
        origin.to_owned(),
    );
    let cached = state.registrations.lock().ok().and_then(|c| {
        c.get(&key)
            .filter(|(_, at)| at.elapsed() < REGISTRATION_TTL)
            .map(|(r, _)| r.clone())
    });
    if let Some(r) = cached {
        return Ok(r);
    }
    let (t, o) = (tenant.clone(), origin.to_owned());
    let reg = kollegium_tenants::web::block(move || registration(&t, &o))
        .await
        .map_err(|e| RpError::Provider(format!("blocking pool: {e}")))??;
    if let Ok(mut c) = state.registrations.lock() {
        if c.len() >= MAX_REGISTRATIONS {
            c.clear();
        }
        c.insert(key, (reg.clone(), Instant::now()));
    }
    Ok(reg)
}

/// The IdP's discovery document with its key set (`discover_async` fetches both), cached
/// for [`METADATA_TTL`].
async fn metadata(state: &SignIn, issuer: &str) -> Result<CoreProviderMetadata, RpError> {
    metadata_younger_than(state, issuer, METADATA_TTL).await
}

/// The cached discovery document and keys if fetched less than `max_age` ago, else fetched
/// now. Requests that miss the cache together wait for one fetch.
async fn metadata_younger_than(
    state: &SignIn,
    issuer: &str,
    max_age: Duration,
) -> Result<CoreProviderMetadata, RpError> {
    let cached = || {
        state
            .metadata
            .lock()
            .ok()
            .and_then(|cache| cache.get(issuer).cloned())
            .filter(|(_, at)| at.elapsed() < max_age)
            .map(|(m, _)| m)
    };
    if let Some(m) = cached() {
        return Ok(m);
    }
    let _fetching = state.metadata_lock(issuer).lock().await;
    if let Some(m) = cached() {
        return Ok(m);
    }
    let url = IssuerUrl::new(issuer.to_owned()).map_err(provider)?;
    state.count_metadata_fetch();
    let m = CoreProviderMetadata::discover_async(url, &state.http)
        .await
        .map_err(provider)?;
    if let Ok(mut cache) = state.metadata.lock() {
        cache.insert(issuer.to_owned(), (m.clone(), Instant::now()));
    }
    Ok(m)
}

/// A started sign-in: where to send the browser and what to remember.
pub struct Started {
    pub url: String,
    pub state: String,
    pub nonce: String,
    pub pkce_verifier: String,
}

/// Starts a sign-in. No `offline_access`: the workspace's refresh token is bound to the
/// member's IdP session and ends with it (idle and absolute limits included).
pub async fn start(
    state: &SignIn,
    reg: &Registration,
    prompt_login: bool,
) -> Result<Started, RpError> {
    let meta = metadata(state, &reg.issuer).await?;
    let client = CoreClient::from_provider_metadata(
        meta,
        ClientId::new(reg.client_id.clone()),
        Some(ClientSecret::new(reg.client_secret.clone())),
    )
    .set_redirect_uri(RedirectUrl::new(reg.redirect_uri()).map_err(provider)?);
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut req = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("profile".into()))
        .add_scope(Scope::new("email".into()))
        .add_scope(Scope::new("practice".into()))
        .set_pkce_challenge(challenge);
    if prompt_login {
        req = req.add_prompt(openidconnect::core::CoreAuthPrompt::Login);
    }
    let (url, csrf, nonce) = req.url();
    Ok(Started {
        url: url.to_string(),
        state: csrf.secret().clone(),
        nonce: nonce.secret().clone(),
        pkce_verifier: verifier.secret().clone(),
    })
}

/// Tokens and identity after a sign-in or refresh.
pub struct Signed {
    pub claims: Claims,
    pub sid: Option<String>,
    pub id_token: String,
    pub access_token: String,
    pub refresh_token: Option<String>,
    pub expires_in: i64,
}

async fn userinfo(
    state: &SignIn,
    meta: &CoreProviderMetadata,
    access_token: &str,
) -> Result<Claims, RpError> {
    let url = meta
        .userinfo_endpoint()
        .ok_or_else(|| RpError::Provider("no userinfo endpoint".into()))?;
    let res = state
        .http
        .get(url.as_str())
        .bearer_auth(access_token)
        .send()
        .await
        .map_err(provider)?;
    let status = res.status();
    if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
        return Err(RpError::Refused(format!("userinfo answered {status}")));
    }
    if !status.is_success() {
        return Err(RpError::Provider(format!("userinfo answered {status}")));
    }
    let mut claims: Claims = res.json().await.map_err(provider)?;
    if claims.roles.iter().any(|r| r == "admin") {
        claims.is_admin = true;
    }
    Ok(claims)
}

/// Completes a sign-in: exchanges the code (with the PKCE verifier), verifies the ID token
/// (signature, issuer, audience, nonce) and reads the practice claims from userinfo.
pub async fn finish(
    state: &SignIn,
    reg: &Registration,
    code: String,
    verifier: String,
    nonce: String,
) -> Result<Signed, RpError> {
    let meta = metadata(state, &reg.issuer).await?;
    let client = CoreClient::from_provider_metadata(
        meta.clone(),
        ClientId::new(reg.client_id.clone()),
        Some(ClientSecret::new(reg.client_secret.clone())),
    )
    .set_redirect_uri(RedirectUrl::new(reg.redirect_uri()).map_err(provider)?);
    let token = client
        .exchange_code(AuthorizationCode::new(code))
        .map_err(provider)?
        .set_pkce_verifier(PkceCodeVerifier::new(verifier))
        .request_async(&state.http)
        .await
        .map_err(token_error)?;
    let id_token = token
        .id_token()
        .ok_or_else(|| RpError::Refused("no ID token".into()))?;
    let verified = id_token
        .claims(&client.id_token_verifier(), &Nonce::new(nonce))
        .map_err(|e| RpError::Refused(e.to_string()))?;
    let sub = verified.subject().as_str().to_owned();
    let sid = sid_of(&id_token.to_string());
    let access = token.access_token().secret().clone();
    let mut claims = userinfo(state, &meta, &access).await?;
    if claims.sub != sub {
        return Err(RpError::Refused(
            "userinfo subject differs from the ID token".into(),
        ));
    }
    claims.sub = sub;
    Ok(Signed {
        claims,
        sid,
        id_token: id_token.to_string(),
        access_token: access,
        refresh_token: token.refresh_token().map(|r| r.secret().clone()),
        expires_in: token.expires_in().map_or(300, |d| d.as_secs() as i64),
    })
}

/// Tokens after a refresh, and the claims read with them.
pub struct Refreshed {
    /// A new ID token, if the IdP sent one.
    pub id_token: Option<String>,
    pub access_token: String,
    /// The rotated refresh token (`None`: the IdP kept the old one valid).
    pub refresh_token: Option<String>,
    pub expires_in: i64,
    /// The current claims from userinfo, or why they could not be read. The tokens above
    /// are valid either way and must be kept: the old refresh token is spent.
    pub claims: Result<Claims, RpError>,
}

/// Why a token request failed: the IdP refusing the grant (an OAuth error response such
/// as `invalid_grant`) is [`RpError::Refused`]; a transport fault, an unparsable answer or
/// the IdP's own `server_error`/`temporarily_unavailable` is [`RpError::Provider`].
fn token_error<RE: std::error::Error + 'static>(
    e: RequestTokenError<RE, StandardErrorResponse<CoreErrorResponseType>>,
) -> RpError {
    match e {
        RequestTokenError::ServerResponse(r) => match r.error() {
            CoreErrorResponseType::Extension(code) => {
                RpError::Provider(format!("token endpoint: {code}"))
            }
            _ => RpError::Refused(r.to_string()),
        },
        other => RpError::Provider(format!("token endpoint: {other}")),
    }
}

/// Refreshes the tokens of a session and re-reads the claims (roles may have changed).
pub async fn refresh(
    state: &SignIn,
    reg: &Registration,
    refresh_token: String,
) -> Result<Refreshed, RpError> {
    let meta = metadata(state, &reg.issuer).await?;
    let client = CoreClient::from_provider_metadata(
        meta.clone(),
        ClientId::new(reg.client_id.clone()),
        Some(ClientSecret::new(reg.client_secret.clone())),
    );
    let token = client
        .exchange_refresh_token(&RefreshToken::new(refresh_token))
        .map_err(provider)?
        .request_async(&state.http)
        .await
        .map_err(token_error)?;
    let access = token.access_token().secret().clone();
    let claims = userinfo(state, &meta, &access).await;
    Ok(Refreshed {
        id_token: token.id_token().map(|t| t.to_string()),
        access_token: access,
        refresh_token: token.refresh_token().map(|r| r.secret().clone()),
        expires_in: token.expires_in().map_or(300, |d| d.as_secs() as i64),
        claims,
    })
}

/// An access token of the platform itself (no user: the `client_credentials` grant) with
/// `scope`, for server-to-server calls such as the member directory; and its lifetime in
/// seconds.
pub async fn client_token(
    state: &SignIn,
    reg: &Registration,
    scope: &str,
) -> Result<(String, i64), RpError> {
    let meta = metadata(state, &reg.issuer).await?;
    let client = CoreClient::from_provider_metadata(
        meta,
        ClientId::new(reg.client_id.clone()),
        Some(ClientSecret::new(reg.client_secret.clone())),
    );
    let token = client
        .exchange_client_credentials()
        .map_err(provider)?
        .add_scope(Scope::new(scope.to_owned()))
        .request_async(&state.http)
        .await
        .map_err(token_error)?;
    Ok((
        token.access_token().secret().clone(),
        token.expires_in().map_or(300, |d| d.as_secs() as i64),
    ))
}

/// The RP-initiated logout URL at the IdP, if it has one.
///
/// `end_session_endpoint` (OIDC RP-Initiated Logout) is not among the core metadata the
/// `openidconnect` crate keeps, so it is read from the discovery document itself; it must
/// lie under the issuer.
pub async fn end_session_url(state: &SignIn, reg: &Registration, id_token: &str) -> Option<String> {
    let doc: serde_json::Value = state
        .http
        .get(format!("{}/.well-known/openid-configuration", reg.issuer))
        .send()
        .await
        .ok()?
        .error_for_status()
        .ok()?
        .json()
        .await
        .ok()?;
    let endpoint = doc.get("end_session_endpoint")?.as_str()?.to_owned();
    if !endpoint.starts_with(&format!("{}/", reg.issuer)) {
        return None;
    }
    let _ = PostLogoutRedirectUrl::new(reg.post_logout_uri()).ok()?;
    let q = serde_urlencoded::to_string([
        ("id_token_hint", id_token),
        ("client_id", reg.client_id.as_str()),
        ("post_logout_redirect_uri", reg.post_logout_uri().as_str()),
    ])
    .ok()?;
    Some(format!("{endpoint}?{q}"))
}

/// Whether `signature` over `message` verifies with the RS256 key `kid` of `jwks`; `None`
/// if the set has no key that could have made it.
fn signed_by(jwks: &CoreJsonWebKeySet, kid: &str, message: &str, signature: &[u8]) -> Option<bool> {
    let mut candidates = jwks
        .keys()
        .iter()
        .filter(|k| k.key_id().is_none_or(|id| id.as_str() == kid))
        .peekable();
    candidates.peek()?;
    Some(candidates.any(|k| {
        k.verify_signature(
            &CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
            message.as_bytes(),
            signature,
        )
        .is_ok()
    }))
}

fn payload_of(jwt: &str) -> Option<serde_json::Value> {
    let part = jwt.split('.').nth(1)?;
    serde_json::from_slice(&B64.decode(part).ok()?).ok()
}

fn sid_of(jwt: &str) -> Option<String> {
    payload_of(jwt)?.get("sid")?.as_str().map(str::to_owned)
}

/// What a verified back-channel logout token says.
#[derive(Debug, Clone)]
pub struct LogoutNotice {
    pub sid: Option<String>,
    pub sub: Option<String>,
}

/// Verifies a back-channel logout token (OIDC Back-Channel Logout 1.0 §2.6): signature
/// by a key of the IdP's JWKS, issuer, audience, event claim, sid or sub, no nonce.
pub async fn verify_logout_token(
    state: &SignIn,
    reg: &Registration,
    token: &str,
    now: i64,
) -> Result<LogoutNotice, RpError> {
    let bad = |why: &str| RpError::Refused(format!("logout token: {why}"));
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad("malformed"));
    };
    let header: serde_json::Value =
        serde_json::from_slice(&B64.decode(h).map_err(|_| bad("header"))?)
            .map_err(|_| bad("header"))?;
    if header.get("alg").and_then(|a| a.as_str()) != Some("RS256") {
        return Err(bad("algorithm"));
    }
    let kid = header.get("kid").and_then(|k| k.as_str()).unwrap_or("");
    let signature = B64.decode(s).map_err(|_| bad("signature"))?;
    let message = format!("{h}.{p}");
    // The keys cached with the discovery document (as for sign-in); fetched again only
    // for a key id they lack, and then at most every `KEYS_REFETCH_AFTER`.
    let meta = metadata(state, &reg.issuer).await?;
    let verdict = match signed_by(meta.jwks(), kid, &message, &signature) {
        None => {
            let meta = metadata_younger_than(state, &reg.issuer, KEYS_REFETCH_AFTER).await?;
            signed_by(meta.jwks(), kid, &message, &signature)
        }
        known => known,
    };
    if verdict != Some(true) {
        return Err(bad("signature"));
    }
    let claims = payload_of(token).ok_or_else(|| bad("payload"))?;
    if claims.get("iss").and_then(|v| v.as_str()) != Some(reg.issuer.as_str()) {
        return Err(bad("issuer"));
    }
    let aud_ok = match claims.get("aud") {
        Some(serde_json::Value::String(a)) => a == &reg.client_id,
        Some(serde_json::Value::Array(list)) => list
            .iter()
            .any(|a| a.as_str() == Some(reg.client_id.as_str())),
        _ => false,
    };
    if !aud_ok {
        return Err(bad("audience"));
    }
    if claims.get("nonce").is_some() {
        return Err(bad("nonce present"));
    }
    if claims
        .pointer("/events/http:~1~1schemas.openid.net~1event~1backchannel-logout")
        .is_none()
    {
        return Err(bad("event"));
    }
    if claims
        .get("iat")
        .and_then(|v| v.as_i64())
        .is_some_and(|iat| iat > now + 300 || iat < now - 3600)
    {
        return Err(bad("issued at"));
    }
    let sid = claims
        .get("sid")
        .and_then(|v| v.as_str())
        .map(str::to_owned);
    let sub = claims
        .get("sub")
        .and_then(|v| v.as_str())
        .map(str::to_owned);
    if sid.is_none() && sub.is_none() {
        return Err(bad("neither sid nor sub"));
    }
    Ok(LogoutNotice { sid, sub })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(code: CoreErrorResponseType) -> RpError {
        token_error::<std::io::Error>(RequestTokenError::ServerResponse(
            StandardErrorResponse::new(code, None, None),
        ))
    }

    #[test]
    fn a_refused_grant_is_told_apart_from_a_faulty_idp() {
        for code in [
            CoreErrorResponseType::InvalidGrant,
            CoreErrorResponseType::InvalidClient,
            CoreErrorResponseType::UnauthorizedClient,
        ] {
            assert!(matches!(answer(code), RpError::Refused(_)));
        }
        for code in ["server_error", "temporarily_unavailable"] {
            let e = answer(CoreErrorResponseType::Extension(code.into()));
            assert!(matches!(e, RpError::Provider(_)), "{code}");
        }
        let e = token_error::<std::io::Error>(RequestTokenError::Request(std::io::Error::other(
            "connection refused",
        )));
        assert!(matches!(e, RpError::Provider(_)));
        let e = token_error::<std::io::Error>(RequestTokenError::Other("empty answer".into()));
        assert!(matches!(e, RpError::Provider(_)));
    }
}
