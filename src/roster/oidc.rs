//! The roster tool as a relying party: discovery, the authorization request with PKCE, the
//! code exchange, the ID token verified with the IdP's keys, and userinfo.

use kollegium_tenants::catalog;
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreGenderClaim, CoreProviderMetadata,
};
use openidconnect::{
    AdditionalClaims, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointMaybeSet,
    EndpointNotSet, EndpointSet, IssuerUrl, Nonce, OAuth2TokenResponse, PkceCodeChallenge,
    PkceCodeVerifier, RedirectUrl, Scope, TokenResponse, UserInfoClaims,
};
use serde::{Deserialize, Serialize};

use super::pages::RosterError;

/// The practice claims of the scope `practice`, as the IdP issues them.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
struct PracticeClaims {
    #[serde(default)]
    roles: Vec<String>,
    specialty: Option<String>,
    kv_region: Option<String>,
    practice: Option<PracticeRef>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
struct PracticeRef {
    name: String,
}

impl AdditionalClaims for PracticeClaims {}

/// Who signed in, with the labels the page shows.
#[derive(Debug, Clone)]
pub struct Person {
    pub name: String,
    /// Role labels (`Praxisleitung`, `MFA`, …).
    pub roles: Vec<String>,
    /// Whether the `roles` claim names the practice's administration.
    pub admin: bool,
    pub specialty: Option<String>,
    pub kv_region: Option<String>,
    pub practice: Option<String>,
}

/// What a started sign-in must remember until the IdP sends the browser back.
#[derive(Debug, Clone)]
pub struct Pending {
    pub state: String,
    nonce: String,
    verifier: String,
}

/// A client configured from discovery (authorization URL set; token and userinfo
/// endpoints as the document names them).
type DiscoveredClient = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// The tool's registration at the practice IdP.
pub struct RelyingParty {
    issuer: String,
    client_id: String,
    client_secret: String,
    redirect: String,
    http: reqwest::Client,
}

fn provider<E: std::fmt::Display>(e: E) -> RosterError {
    RosterError::Provider(e.to_string())
}

fn refused<E: std::fmt::Display>(e: E) -> RosterError {
    RosterError::Refused(e.to_string())
}

impl RelyingParty {
    pub fn new(
        issuer: String,
        client_id: String,
        client_secret: String,
        redirect: String,
        http: reqwest::Client,
    ) -> Self {
        Self {
            issuer,
            client_id,
            client_secret,
            redirect,
            http,
        }
    }

    /// The issuer this tool trusts.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The client, configured from the discovery document (fetched for every sign-in: a
    /// demo signs in rarely, and so key rotation at the IdP needs no cache handling here).
    async fn client(&self) -> Result<DiscoveredClient, RosterError> {
        let issuer = IssuerUrl::new(self.issuer.clone()).map_err(provider)?;
        let meta = CoreProviderMetadata::discover_async(issuer, &self.http)
            .await
            .map_err(provider)?;
        Ok(CoreClient::from_provider_metadata(
            meta,
            ClientId::new(self.client_id.clone()),
            Some(ClientSecret::new(self.client_secret.clone())),
        )
        .set_redirect_uri(RedirectUrl::new(self.redirect.clone()).map_err(provider)?))
    }

    /// Starts a sign-in: the IdP's authorization URL and what to remember.
    pub async fn start(&self) -> Result<(String, Pending), RosterError> {
        let client = self.client().await?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let (url, state, nonce) = client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .add_scope(Scope::new("profile".into()))
            .add_scope(Scope::new("practice".into()))
            .set_pkce_challenge(challenge)
            .url();
        Ok((
            url.to_string(),
            Pending {
                state: state.secret().clone(),
                nonce: nonce.secret().clone(),
                verifier: verifier.secret().clone(),
            },
        ))
    }

    /// Completes a sign-in: exchanges the code with the PKCE verifier and the client
    /// secret, verifies the ID token (signature with the IdP's keys, issuer, audience,
    /// expiry, nonce) and reads the practice claims from userinfo for the same subject.
    pub async fn finish(&self, code: String, pending: Pending) -> Result<Person, RosterError> {
        let client = self.client().await?;
        let token = client
            .exchange_code(AuthorizationCode::new(code))
            .map_err(provider)?
            .set_pkce_verifier(PkceCodeVerifier::new(pending.verifier))
            .request_async(&self.http)
            .await
            .map_err(refused)?;
        let id_token = token
            .id_token()
            .ok_or_else(|| RosterError::Refused("no ID token".into()))?;
        let verified = id_token
            .claims(&client.id_token_verifier(), &Nonce::new(pending.nonce))
            .map_err(refused)?;
        let subject = verified.subject().clone();
        let id_name = verified
            .name()
            .and_then(|n| n.get(None))
            .map(|n| n.as_str().to_owned());
        let info: UserInfoClaims<PracticeClaims, CoreGenderClaim> = client
            .user_info(token.access_token().clone(), Some(subject))
            .map_err(provider)?
            .request_async(&self.http)
            .await
            .map_err(refused)?;
        let name = info
            .name()
            .and_then(|n| n.get(None))
            .map(|n| n.as_str().to_owned())
            .or(id_name)
            .or_else(|| info.preferred_username().map(|u| u.as_str().to_owned()))
            .unwrap_or_else(|| info.subject().as_str().to_owned());
        let extra = info.additional_claims();
        Ok(Person {
            name,
            roles: catalog::labels(catalog::ROLES, &extra.roles),
            admin: extra.roles.iter().any(|r| r == "admin"),
            specialty: extra
                .specialty
                .as_deref()
                .map(|s| catalog::label(catalog::SPECIALTIES, s)),
            kv_region: extra
                .kv_region
                .as_deref()
                .map(|k| catalog::label(catalog::KV_REGIONS, k)),
            practice: extra.practice.as_ref().map(|p| p.name.clone()),
        })
    }
}

#[cfg(test)]
impl Pending {
    pub fn for_test(state: &str) -> Self {
        Self {
            state: state.into(),
            nonce: "n".into(),
            verifier: "v".into(),
        }
    }
}
