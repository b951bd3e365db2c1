//! The client registry: relying parties of the practice's IdP. Redirect, post-logout and
//! back-channel addresses are parsed into [`RedirectUri`] on registration and matched by
//! exact string at use. Confidential clients get a random secret that is shown once;
//! only its SHA-256 is stored (secrets are 256-bit random, so a fast hash suffices).

use diesel::prelude::*;
use kollegium_tenants::UnixTime;
use kollegium_tenants::secrets::random_token;
use subtle::ConstantTimeEq;

use super::jwt::Alg;
use crate::links::token_hash;
use crate::schema::clients;

/// Scopes this provider knows.
pub const SCOPES: &[&str] = &["openid", "profile", "email", "practice", "offline_access"];

/// The scope of the member directory (`GET /id/api/members`). Not among [`SCOPES`]: it is
/// never offered to admins, never published in discovery and never part of a user's grant;
/// only the practice's first-party client obtains it, and only with `client_credentials`.
pub const DIRECTORY_SCOPE: &str = "directory";

/// The platform's client id in every practice.
pub const PLATFORM_CLIENT_ID: &str = "platform";

/// An address a client may be sent to: https, or http on loopback addresses and
/// `localhost`/`*.localhost` (development); no fragment, no user info. Stored in the
/// normalised form `url` prints; compared by exact string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedirectUri(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    #[error("invalid address {0:?}: {1}")]
    Uri(String, &'static str),
    #[error("the name must be 1-120 characters without control characters")]
    Name,
    #[error("at least one redirect URI is required")]
    NoRedirect,
    #[error("unknown scope {0:?}")]
    Scope(String),
    #[error("a client with id {0:?} exists")]
    Exists(String),
}

impl RedirectUri {
    pub fn parse(s: &str) -> Result<Self, ClientError> {
        let bad = |why| ClientError::Uri(s.chars().take(200).collect(), why);
        if s.len() > 2000 || s.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(bad("too long or contains spaces"));
        }
        let u = url::Url::parse(s).map_err(|_| bad("not an absolute URL"))?;
        if u.fragment().is_some() || s.contains('#') {
            return Err(bad("must not contain a fragment"));
        }
        if !u.username().is_empty() || u.password().is_some() || s.contains('@') {
            return Err(bad("must not contain user info"));
        }
        let host = u.host().ok_or_else(|| bad("needs a host"))?;
        match u.scheme() {
            "https" => {}
            "http" => {
                let local = match host {
                    url::Host::Ipv4(ip) => ip.is_loopback(),
                    url::Host::Ipv6(ip) => ip.is_loopback(),
                    url::Host::Domain(d) => d == "localhost" || d.ends_with(".localhost"),
                };
                if !local {
                    return Err(bad("http is only allowed for localhost and loopback"));
                }
            }
            _ => return Err(bad("scheme must be https")),
        }
        Ok(Self(u.to_string()))
    }
    /// An address on the node's own origin (first-party client), which may be plain http
    /// when the node is configured so.
    pub fn own(s: &str) -> Result<Self, ClientError> {
        match Self::parse(s) {
            Err(ClientError::Uri(_, "http is only allowed for localhost and loopback")) => {
                let u = url::Url::parse(s)
                    .map_err(|_| ClientError::Uri(s.to_owned(), "not an absolute URL"))?;
                Ok(Self(u.to_string()))
            }
            other => other,
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A registered client.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = clients)]
pub struct Client {
    pub client_id: String,
    pub name: String,
    #[diesel(column_name = secret_hash)]
    secret_hash: Option<String>,
    pub confidential: bool,
    pub first_party: bool,
    redirect_uris: String,
    post_logout_uris: String,
    pub backchannel_logout_uri: Option<String>,
    allowed_scopes: String,
    pub launch_url: Option<String>,
    pub initiate_login_uri: Option<String>,
    pub enabled: bool,
    signing_alg: String,
}

fn list(json: &str) -> Vec<String> {
    serde_json::from_str(json).unwrap_or_default()
}

impl Client {
    pub fn redirect_uris(&self) -> Vec<String> {
        list(&self.redirect_uris)
    }
    pub fn post_logout_uris(&self) -> Vec<String> {
        list(&self.post_logout_uris)
    }
    pub fn allowed_scopes(&self) -> Vec<String> {
        list(&self.allowed_scopes)
    }
    /// The algorithm of the client's ID, access and logout tokens.
    pub fn signing_alg(&self) -> Alg {
        Alg::parse(&self.signing_alg).unwrap_or(Alg::Rs256)
    }
    /// Exact string match against the registered redirect URIs.
    pub fn has_redirect_uri(&self, uri: &str) -> bool {
        self.redirect_uris().iter().any(|r| r == uri)
    }
    pub fn has_post_logout_uri(&self, uri: &str) -> bool {
        self.post_logout_uris().iter().any(|r| r == uri)
    }
    /// Constant-time check of a presented secret.
    pub fn secret_matches(&self, secret: &str) -> bool {
        match &self.secret_hash {
            Some(h) if self.confidential && secret.len() <= 256 => {
                bool::from(token_hash(secret).as_bytes().ct_eq(h.as_bytes()))
            }
            _ => false,
        }
    }
}

/// Input for a new client.
#[derive(Debug, Clone)]
pub struct NewClient {
    /// `None`: a random id.
    pub client_id: Option<String>,
    pub name: String,
    pub confidential: bool,
    pub first_party: bool,
    pub redirect_uris: Vec<RedirectUri>,
    pub post_logout_uris: Vec<RedirectUri>,
    pub backchannel_logout_uri: Option<RedirectUri>,
    pub launch_url: Option<RedirectUri>,
    pub initiate_login_uri: Option<RedirectUri>,
    /// `None`: every scope.
    pub allowed_scopes: Option<Vec<String>>,
    /// Signs the client's tokens (RS256 unless the client asks for ES256).
    pub signing_alg: Alg,
}

impl NewClient {
    /// A client with the given name and redirect URIs (strings parsed here).
    pub fn parse(
        name: &str,
        redirect_uris: &[String],
        confidential: bool,
    ) -> Result<Self, ClientError> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 120 || name.chars().any(char::is_control) {
            return Err(ClientError::Name);
        }
        if redirect_uris.is_empty() {
            return Err(ClientError::NoRedirect);
        }
        Ok(Self {
            client_id: None,
            name: name.to_owned(),
            confidential,
            first_party: false,
            redirect_uris: redirect_uris
                .iter()
                .map(|u| RedirectUri::parse(u))
                .collect::<Result<_, _>>()?,
            post_logout_uris: Vec::new(),
            backchannel_logout_uri: None,
            launch_url: None,
            initiate_login_uri: None,
            allowed_scopes: None,
            signing_alg: Alg::Rs256,
        })
    }
}

impl NewClient {
    /// The allowed scopes as stored (every scope when none were chosen), checked against
    /// [`SCOPES`].
    fn scopes_json(&self) -> Result<String, ClientError> {
        let scopes = self
            .allowed_scopes
            .clone()
            .unwrap_or_else(|| SCOPES.iter().map(|s| (*s).to_owned()).collect());
        if let Some(bad) = scopes.iter().find(|s| !SCOPES.contains(&s.as_str())) {
            return Err(ClientError::Scope(bad.clone()));
        }
        Ok(serde_json::to_string(&scopes).unwrap_or_default())
    }
}

/// What registration returns: the id, and the secret of a confidential client (shown once).
#[derive(Debug, Clone)]
pub struct Created {
    pub client_id: String,
    pub secret: Option<String>,
}

fn json_of(v: &[RedirectUri]) -> String {
    serde_json::to_string(&v.iter().map(RedirectUri::as_str).collect::<Vec<_>>())
        .unwrap_or_else(|_| "[]".into())
}

pub fn create(
    conn: &mut SqliteConnection,
    c: &NewClient,
    now: UnixTime,
) -> QueryResult<Result<Created, ClientError>> {
    let scopes = match c.scopes_json() {
        Ok(s) => s,
        Err(e) => return Ok(Err(e)),
    };
    let client_id = c.client_id.clone().unwrap_or_else(|| random_token(16));
    if by_id(conn, &client_id)?.is_some() {
        return Ok(Err(ClientError::Exists(client_id)));
    }
    let secret = c.confidential.then(|| random_token(32));
    diesel::insert_into(clients::table)
        .values((
            clients::client_id.eq(&client_id),
            clients::name.eq(&c.name),
            clients::secret_hash.eq(secret.as_deref().map(token_hash)),
            clients::confidential.eq(c.confidential),
            clients::first_party.eq(c.first_party),
            clients::redirect_uris.eq(json_of(&c.redirect_uris)),
            clients::post_logout_uris.eq(json_of(&c.post_logout_uris)),
            clients::backchannel_logout_uri
                .eq(c.backchannel_logout_uri.as_ref().map(RedirectUri::as_str)),
            clients::allowed_scopes.eq(&scopes),
            clients::launch_url.eq(c.launch_url.as_ref().map(RedirectUri::as_str)),
            clients::initiate_login_uri.eq(c.initiate_login_uri.as_ref().map(RedirectUri::as_str)),
            clients::enabled.eq(true),
            clients::signing_alg.eq(c.signing_alg.as_str()),
            clients::created_at.eq(now),
            clients::updated_at.eq(now),
        ))
        .execute(conn)?;
    Ok(Ok(Created { client_id, secret }))
}

/// Changes what an admin may edit of a registered client: name, addresses, allowed
/// scopes and signing algorithm (not its kind, id or secret). `Ok(false)`: no such client.
pub fn update(
    conn: &mut SqliteConnection,
    client_id: &str,
    c: &NewClient,
    now: UnixTime,
) -> QueryResult<Result<bool, ClientError>> {
    let scopes = match c.scopes_json() {
        Ok(s) => s,
        Err(e) => return Ok(Err(e)),
    };
    let n = diesel::update(clients::table.filter(clients::client_id.eq(client_id)))
        .set((
            clients::name.eq(&c.name),
            clients::redirect_uris.eq(json_of(&c.redirect_uris)),
            clients::post_logout_uris.eq(json_of(&c.post_logout_uris)),
            clients::backchannel_logout_uri
                .eq(c.backchannel_logout_uri.as_ref().map(RedirectUri::as_str)),
            clients::allowed_scopes.eq(&scopes),
            clients::launch_url.eq(c.launch_url.as_ref().map(RedirectUri::as_str)),
            clients::initiate_login_uri.eq(c.initiate_login_uri.as_ref().map(RedirectUri::as_str)),
            clients::signing_alg.eq(c.signing_alg.as_str()),
            clients::updated_at.eq(now),
        ))
        .execute(conn)?;
    Ok(Ok(n == 1))
}

/// A client by id, enabled or not.
pub fn by_id(conn: &mut SqliteConnection, client_id: &str) -> QueryResult<Option<Client>> {
    if client_id.is_empty() || client_id.len() > 200 {
        return Ok(None);
    }
    clients::table
        .filter(clients::client_id.eq(client_id))
        .select(Client::as_select())
        .first(conn)
        .optional()
}

/// Every registered client, first-party first, then by name.
pub fn all(conn: &mut SqliteConnection) -> QueryResult<Vec<Client>> {
    clients::table
        .order((clients::first_party.desc(), clients::name))
        .select(Client::as_select())
        .load(conn)
}

/// An enabled client by id.
pub fn enabled(conn: &mut SqliteConnection, client_id: &str) -> QueryResult<Option<Client>> {
    Ok(by_id(conn, client_id)?.filter(|c| c.enabled))
}

/// An enabled client by id, for a request to the practice's issuer `issuer` as the node is
/// configured now (`<origin>/id`). The workspace ([`PLATFORM_CLIENT_ID`]) lives on that
/// origin, so its redirect, post-logout and back-channel addresses follow it: where the
/// stored ones were made for another origin (a practice created by a CLI without the
/// server's port, a changed public address), they are replaced, so sign-in, logout and
/// back-channel notices use the origin the node serves.
pub fn enabled_at(
    conn: &mut SqliteConnection,
    client_id: &str,
    issuer: &str,
    now: UnixTime,
) -> QueryResult<Option<Client>> {
    let Some(c) = enabled(conn, client_id)? else {
        return Ok(None);
    };
    if c.client_id != PLATFORM_CLIENT_ID || !c.first_party {
        return Ok(Some(c));
    }
    let Some(want) = issuer
        .strip_suffix("/id")
        .and_then(|origin| crate::provision::platform_client(origin).ok())
    else {
        return Ok(Some(c));
    };
    let strings = |v: &[RedirectUri]| v.iter().map(|u| u.as_str().to_owned()).collect::<Vec<_>>();
    let back_channel = want
        .backchannel_logout_uri
        .as_ref()
        .map(|u| u.as_str().to_owned());
    if c.redirect_uris() == strings(&want.redirect_uris)
        && c.post_logout_uris() == strings(&want.post_logout_uris)
        && c.backchannel_logout_uri == back_channel
    {
        return Ok(Some(c));
    }
    diesel::update(clients::table.filter(clients::client_id.eq(&c.client_id)))
        .set((
            clients::redirect_uris.eq(json_of(&want.redirect_uris)),
            clients::post_logout_uris.eq(json_of(&want.post_logout_uris)),
            clients::backchannel_logout_uri.eq(back_channel),
            clients::updated_at.eq(now),
        ))
        .execute(conn)?;
    tracing::info!(
        issuer,
        "the workspace's addresses follow the configured origin"
    );
    enabled(conn, client_id)
}

/// A new secret for a confidential client (shown once); `None` for unknown or public ones.
pub fn rotate_secret(
    conn: &mut SqliteConnection,
    client_id: &str,
    now: UnixTime,
) -> QueryResult<Option<String>> {
    let secret = random_token(32);
    let n = diesel::update(
        clients::table
            .filter(clients::client_id.eq(client_id))
            .filter(clients::confidential.eq(true)),
    )
    .set((
        clients::secret_hash.eq(token_hash(&secret)),
        clients::updated_at.eq(now),
    ))
    .execute(conn)?;
    Ok((n == 1).then_some(secret))
}

pub fn set_enabled(
    conn: &mut SqliteConnection,
    client_id: &str,
    enabled: bool,
    now: UnixTime,
) -> QueryResult<bool> {
    let n = diesel::update(clients::table.filter(clients::client_id.eq(client_id)))
        .set((clients::enabled.eq(enabled), clients::updated_at.eq(now)))
        .execute(conn)?;
    Ok(n == 1)
}

#[cfg(test)]
mod tests {
    use super::RedirectUri;

    #[test]
    fn redirect_uris_are_parsed_strictly() {
        for ok in [
            "https://dienstplan.example/cb",
            "https://dienstplan.example/cb?x=1",
            "http://127.0.0.1:9000/cb",
            "http://[::1]/cb",
            "http://localhost:8080/cb",
            "http://praxis-a.localhost:8080/auth/callback",
        ] {
            assert!(RedirectUri::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://dienstplan.example/cb",
            "https://dienstplan.example/cb#frag",
            "https://user:pw@dienstplan.example/cb",
            "https://a@b@dienstplan.example/cb",
            "javascript:alert(1)",
            "JaVaScRiPt:alert(1)",
            "data:text/html,x",
            "/relative",
            "https://dienst plan.example/",
            "http://localhost.evil.example/cb",
            "ftp://example.com/",
            "",
        ] {
            assert!(RedirectUri::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            RedirectUri::parse("https://Example.COM").unwrap().as_str(),
            "https://example.com/"
        );
    }
}
