//! "Dienstplan (Demo)": the demo's sample third-party tool, a tiny duty roster that
//! `kollegium demo` serves on loopback next to the practice.
//!
//! It is a relying party of the demo practice's identity provider like any other tool an
//! integrator would write: it knows the issuer, its client id and secret, and nothing of
//! Kollegium's internals. Sign-in is the authorization code flow with PKCE, configured from
//! the discovery document; the ID token is verified with the IdP's published keys (the
//! `openidconnect` crate), the practice claims (roles, specialty, KV region) come from
//! userinfo. Sessions live in memory; signing out ends the tool's session only (the
//! practice session stays, so signing in again needs no password).

mod oidc;
mod pages;
mod sessions;

use std::net::{SocketAddr, TcpListener};

use actix_web::dev::ServerHandle;
use actix_web::{App, HttpServer, web};

pub use oidc::{Person, RelyingParty};

/// What the tool is configured with, as an integrator would configure it.
pub struct RosterSettings {
    /// The practice IdP's issuer (`<practice origin>/id`).
    pub issuer: String,
    pub client_id: String,
    pub client_secret: String,
    /// Where "Zur Praxis" leads: the practice's start page.
    pub practice_url: String,
    /// The HTTP client for discovery, token and userinfo requests.
    pub http: reqwest::Client,
}

/// The tool's address for a port: `http://localhost:<port>` (what the IdP registers).
pub fn origin(port: u16) -> String {
    format!("http://localhost:{port}")
}

/// A running roster tool.
pub struct RunningRoster {
    pub addr: SocketAddr,
    handle: ServerHandle,
    join: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl RunningRoster {
    /// `http://localhost:<port>`
    pub fn origin(&self) -> String {
        origin(self.addr.port())
    }

    /// Stops serving (in-flight requests finish).
    pub async fn stop(self) {
        self.handle.stop(true).await;
        if let Ok(Err(e)) = self.join.await {
            tracing::warn!("demo roster tool stopped with an error: {e}");
        }
    }
}

/// Serves the tool on `listener` (bound by the caller, on loopback).
pub fn serve(listener: TcpListener, settings: RosterSettings) -> std::io::Result<RunningRoster> {
    let addr = listener.local_addr()?;
    let state = web::Data::new(pages::State::new(settings, &origin(addr.port())));
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .configure(pages::configure)
    })
    .listen(listener)?
    .workers(1)
    .disable_signals()
    .shutdown_timeout(2)
    .run();
    let handle = server.handle();
    let join = tokio::spawn(server);
    Ok(RunningRoster { addr, handle, join })
}
