//! The OpenID Connect provider of a practice (issuer `<origin>/id`).
//!
//! One file per concern: signing keys and JWTs, the client registry, discovery, the
//! authorization endpoint with consent, the token endpoint, userinfo, revocation and
//! introspection, RP-initiated and back-channel logout, launching third-party tools
//! from the start page, and the member directory for the workspace. Domain functions take
//! a connection and a time; handlers are thin.

pub mod authorize;
pub mod backchannel;
pub mod client_auth;
pub mod clients;
pub mod consent;
pub mod directory;
pub mod discovery;
pub mod egress;
pub mod errors;
pub mod grants;
pub mod jwt;
pub mod keys;
pub mod launch;
pub mod launchables;
pub mod logout;
pub mod mint;
pub mod params;
pub mod revoke;
pub mod token;
pub mod userinfo;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};
use diesel::SqliteConnection;
use kollegium_tenants::web::WebContext;
use kollegium_tenants::{Tenant, UnixTime};

use crate::error::IdpError;
use crate::state::IdpState;

/// Node-wide OIDC state: cached signing keys.
#[derive(Debug, Default)]
pub struct Runtime {
    pub keys: keys::KeyCache,
}

/// What every OIDC handler needs: the practice, the IdP state and the web context.
#[derive(Clone)]
pub struct Op {
    pub tenant: Tenant,
    pub state: web::Data<IdpState>,
    pub web: web::Data<WebContext>,
}

/// `<origin>/id` of a practice.
pub fn issuer_of(web: &WebContext, slug: &str) -> String {
    format!("{}/id", web.settings.practice_origin(slug))
}

impl Op {
    pub fn issuer(&self) -> String {
        issuer_of(&self.web, self.tenant.slug().as_str())
    }
    pub fn now(&self) -> UnixTime {
        self.state.now()
    }
    /// The practice's current signing key of `alg` (a client's [`Client::signing_alg`]).
    ///
    /// [`Client::signing_alg`]: clients::Client::signing_alg
    pub fn signer_of(
        &self,
        conn: &mut SqliteConnection,
        alg: jwt::Alg,
    ) -> Result<Arc<jwt::Signer256>, keys::KeyError> {
        keys::active_of(
            conn,
            self.web.store.node_key(),
            self.tenant.slug().as_str(),
            &self.state.oidc.keys,
            alg,
            self.now(),
        )
    }
}

impl FromRequest for Op {
    type Error = IdpError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, IdpError>>>>;
    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let tenant = req.extensions().get::<Tenant>().cloned();
        let state = req.app_data::<web::Data<IdpState>>().cloned();
        let web = req.app_data::<web::Data<WebContext>>().cloned();
        Box::pin(async move {
            match (tenant, state, web) {
                (Some(tenant), Some(state), Some(web)) => Ok(Self { tenant, state, web }),
                (None, _, _) => Err(IdpError::NotFound),
                _ => Err(IdpError::invariant("OIDC state missing")),
            }
        })
    }
}

/// Registers the OIDC routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    discovery::configure(cfg);
    authorize::configure(cfg);
    consent::configure(cfg);
    token::configure(cfg);
    userinfo::configure(cfg);
    revoke::configure(cfg);
    logout::configure(cfg);
    launch::configure(cfg);
    launchables::configure(cfg);
    directory::configure(cfg);
}
