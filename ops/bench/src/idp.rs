//! The identity provider's flows as a browser and a relying party run them: the password
//! login form, consent, the authorization endpoint (code flow with PKCE S256) and the token
//! endpoint (code exchange, refresh). Each call checks that the step really succeeded.

use std::time::Duration;

use anyhow::{Context, bail, ensure};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use kollegium_tenants::secrets::random_token;
use reqwest::StatusCode;
use sha2::{Digest, Sha256};

use crate::browser::{Answer, Browser, form_csrf};

/// The IdP session cookie on a plain-http origin (`idp::sessions::cookie_name`).
pub const SESSION_COOKIE: &str = "kollegium-id";
/// Where a login continues (the IdP start page).
pub const NEXT: &str = "/id/";
/// Scopes the benchmark client asks for (`offline_access`: a refresh token is issued).
pub const SCOPE: &str = "openid profile offline_access";
/// The registered redirect URI; never followed, the code is read from `Location`.
pub const REDIRECT_URI: &str = "http://127.0.0.1:9/bench/callback";

/// A short description of an unexpected answer, for failure counts.
fn unexpected(step: &str, a: &Answer) -> anyhow::Error {
    let body: String = a.body.chars().take(160).collect();
    anyhow::anyhow!(
        "{step}: {} (Location {:?}) {body}",
        a.status.as_u16(),
        a.location
    )
}

/// Timing of one full password login.
#[derive(Debug, Clone, Copy)]
pub struct LoginTiming {
    /// `GET /id/login` (the form, and the CSRF cookie of a fresh browser).
    pub form: Duration,
    /// `POST /id/login` (throttle, argon2id check, session).
    pub submit: Duration,
}

/// A full password login as a fresh browser: the form, then the post with its CSRF token.
/// Succeeds only if the IdP answered 303 to `NEXT` (the account is active, no second
/// factor or device approval pending) and set the IdP session cookie.
pub async fn login(b: &mut Browser, user: &str, password: &str) -> anyhow::Result<LoginTiming> {
    b.clear_cookies();
    let page = b.get("/id/login").await?;
    if page.status != StatusCode::OK {
        return Err(unexpected("GET /id/login", &page));
    }
    let token = form_csrf(&page.body)
        .context("login page without CSRF token")?
        .to_owned();
    let r = b
        .post_form(
            "/id/login",
            &[
                ("csrf_token", &token),
                ("login", user),
                ("password", password),
                ("next", NEXT),
            ],
        )
        .await?;
    if r.status != StatusCode::SEE_OTHER || r.location.as_deref() != Some(NEXT) {
        return Err(unexpected("POST /id/login", &r));
    }
    ensure!(
        b.cookie(SESSION_COOKIE).is_some_and(|v| !v.is_empty()),
        "POST /id/login: 303 without the IdP session cookie"
    );
    Ok(LoginTiming {
        form: page.took,
        submit: r.took,
    })
}

/// A registered confidential client.
#[derive(Debug, Clone)]
pub struct RpClient {
    pub client_id: String,
    pub secret: String,
}

/// A PKCE pair (RFC 7636, S256).
pub struct Pkce {
    pub verifier: String,
    pub challenge: String,
}

impl Pkce {
    pub fn new() -> Self {
        let verifier = random_token(32);
        let challenge = B64.encode(Sha256::digest(verifier.as_bytes()));
        Self {
            verifier,
            challenge,
        }
    }
}

fn authorize_params<'a>(
    c: &'a RpClient,
    pkce: &'a Pkce,
    state: &'a str,
) -> [(&'static str, &'a str); 7] {
    [
        ("response_type", "code"),
        ("client_id", &c.client_id),
        ("redirect_uri", REDIRECT_URI),
        ("scope", SCOPE),
        ("state", state),
        ("code_challenge", &pkce.challenge),
        ("code_challenge_method", "S256"),
    ]
}

/// The `code` of a redirect to the client, after checking `state`.
fn code_from(a: &Answer, step: &str, state: &str) -> anyhow::Result<String> {
    if a.status != StatusCode::FOUND {
        return Err(unexpected(step, a));
    }
    let loc = a.location.as_deref().unwrap_or_default();
    ensure!(
        loc.starts_with(REDIRECT_URI),
        "{step}: redirect to {loc:?}, not to the client"
    );
    let url = url::Url::parse(loc)?;
    let get = |name: &str| {
        url.query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    };
    if let Some(e) = get("error") {
        bail!("{step}: error {e}: {:?}", get("error_description"));
    }
    ensure!(
        get("state").as_deref() == Some(state),
        "{step}: state differs"
    );
    get("code").with_context(|| format!("{step}: redirect without code"))
}

/// First authorization of the client by a signed-in user: the consent page, then "allow".
pub async fn consent(b: &mut Browser, c: &RpClient) -> anyhow::Result<()> {
    let pkce = Pkce::new();
    let state = random_token(12);
    let params = authorize_params(c, &pkce, &state);
    let query = form_query(&params);
    let page = b.get(&format!("/id/authorize?{query}")).await?;
    if page.status != StatusCode::OK {
        return Err(unexpected("GET /id/authorize (consent page)", &page));
    }
    let token = form_csrf(&page.body)
        .context("consent page without CSRF token")?
        .to_owned();
    let mut fields: Vec<(&str, &str)> = params.to_vec();
    fields.push(("csrf_token", &token));
    fields.push(("decision", "allow"));
    let r = b.post_form("/id/authorize/consent", &fields).await?;
    code_from(&r, "POST /id/authorize/consent", &state).map(|_| ())
}

fn form_query(pairs: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

/// A code from the authorization endpoint for the signed-in browser, with its verifier.
pub struct Code {
    pub code: String,
    pub verifier: String,
}

/// `GET /id/authorize` with PKCE for a client the user already consented to: a 302 to the
/// client with a code (the redirect is not followed).
pub async fn authorize(b: &mut Browser, c: &RpClient) -> anyhow::Result<(Code, Duration)> {
    let pkce = Pkce::new();
    let state = random_token(12);
    let query = form_query(&authorize_params(c, &pkce, &state));
    let r = b.get(&format!("/id/authorize?{query}")).await?;
    let code = code_from(&r, "GET /id/authorize", &state)?;
    Ok((
        Code {
            code,
            verifier: pkce.verifier,
        },
        r.took,
    ))
}

/// The parts of a token response the benchmark checks.
pub struct Tokens {
    pub refresh_token: String,
}

fn tokens(a: &Answer, step: &str, want_id_token: bool) -> anyhow::Result<Tokens> {
    if a.status != StatusCode::OK {
        return Err(unexpected(step, a));
    }
    let v: serde_json::Value =
        serde_json::from_str(&a.body).with_context(|| format!("{step}: the answer is not JSON"))?;
    let has = |k: &str| v[k].as_str().is_some_and(|s| !s.is_empty());
    ensure!(has("access_token"), "{step}: no access_token");
    ensure!(!want_id_token || has("id_token"), "{step}: no id_token");
    let refresh_token = v["refresh_token"]
        .as_str()
        .with_context(|| format!("{step}: no refresh_token"))?
        .to_owned();
    Ok(Tokens { refresh_token })
}

/// `POST /id/token` `grant_type=authorization_code` with `client_secret_basic`.
pub async fn exchange(
    rp: &mut Browser,
    c: &RpClient,
    code: &Code,
) -> anyhow::Result<(Tokens, Duration)> {
    let r = rp
        .post_basic(
            "/id/token",
            &c.client_id,
            &c.secret,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code.code),
                ("redirect_uri", REDIRECT_URI),
                ("code_verifier", &code.verifier),
            ],
        )
        .await?;
    Ok((tokens(&r, "POST /id/token (code)", true)?, r.took))
}

/// `POST /id/token` `grant_type=refresh_token`; the answer carries the next refresh token.
pub async fn refresh(
    rp: &mut Browser,
    c: &RpClient,
    refresh_token: &str,
) -> anyhow::Result<(Tokens, Duration)> {
    let r = rp
        .post_basic(
            "/id/token",
            &c.client_id,
            &c.secret,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
            ],
        )
        .await?;
    Ok((tokens(&r, "POST /id/token (refresh)", true)?, r.took))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_challenge_is_s256_of_the_verifier() {
        let p = Pkce::new();
        assert_eq!(p.verifier.len(), 43);
        assert_eq!(p.challenge.len(), 43);
        assert_eq!(
            p.challenge,
            B64.encode(Sha256::digest(p.verifier.as_bytes()))
        );
        // RFC 7636 appendix B.
        let v = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        assert_eq!(
            B64.encode(Sha256::digest(v.as_bytes())),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn reads_the_code_and_checks_state() {
        let ok = Answer {
            status: StatusCode::FOUND,
            location: Some(format!("{REDIRECT_URI}?code=abc&state=s1&iss=x")),
            body: String::new(),
            took: Duration::ZERO,
        };
        assert_eq!(code_from(&ok, "t", "s1").unwrap(), "abc");
        assert!(code_from(&ok, "t", "other").is_err());
        let err = Answer {
            location: Some(format!("{REDIRECT_URI}?error=access_denied&state=s1")),
            ..ok
        };
        assert!(code_from(&err, "t", "s1").is_err());
    }
}
