//! Pending sign-ins live in the browser that started them, sealed.
//!
//! `/auth/login` puts what the callback needs (the state's hash, nonce, PKCE verifier, the
//! page to return to, the start time) into a cookie sealed with the practice secret
//! (XChaCha20-Poly1305, [`kollegium_tenants::secrets::PracticeSecret::seal`]), one cookie
//! per sign-in, named after the state. `/auth/callback` completes a sign-in only with that
//! cookie, so only the browser that started it can (login CSRF, RFC 9700 §4.7.1): a callback
//! link (`code` + `state`) an attacker obtained for their own account signs nobody in
//! elsewhere. The cookie goes with the callback's answer, whatever happens next (single
//! use), and expires with the pending sign-in.
//!
//! Nothing is stored on the server, so an anonymous page load opens no workspace database
//! and writes nothing (no fsync), and anyone starting sign-ins without end fills no table.
//! Two tabs signing in at once each have their own cookie. Under https the `__Host-` prefix
//! keeps sibling practices (`*.<base>`) from planting a cookie of their choosing; over plain
//! http (development only) they could, as with any cookie, but could not forge its seal.

use actix_web::HttpRequest;
use actix_web::cookie::{Cookie, time::Duration as CookieDuration};
use kollegium_tenants::UnixTime;
use kollegium_tenants::secrets::PracticeSecret;
use kollegium_tenants::web::Scheme;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::session::host_only_cookie;

/// Pending sign-ins one browser keeps at once: a new one beyond this replaces its oldest,
/// so a page reloading `/auth/login` without end does not pile up cookies.
pub const MAX_PENDING_PER_BROWSER: usize = 6;

/// Purpose and context of the seal: a cookie made for anything else does not open.
const PURPOSE: &str = "platform-pending-sign-in";

/// Hex characters of the state's hash in a cookie's name.
const TAG_CHARS: usize = 16;

/// Longest cookie value accepted (a page to return to of `MAX_NEXT` plus the rest, sealed).
const MAX_VALUE: usize = 3800;

fn prefix(scheme: Scheme) -> &'static str {
    match scheme {
        Scheme::Https => "__Host-kollegium-login-",
        Scheme::Http => "kollegium-login-",
    }
}

/// SHA-256 of the state, hex: what the cookie names and carries of it.
pub fn state_hash(state: &str) -> String {
    hex::encode(Sha256::digest(state.as_bytes()))
}

/// The cookie name of the sign-in with state hash `state_hash`.
fn name(scheme: Scheme, state_hash: &str) -> String {
    let tag = state_hash.get(..TAG_CHARS).unwrap_or(state_hash);
    format!("{}{tag}", prefix(scheme))
}

/// A pending sign-in, as sealed into its cookie.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    /// SHA-256 of the state (hex).
    #[serde(rename = "s")]
    pub state_hash: String,
    #[serde(rename = "n")]
    pub nonce: String,
    #[serde(rename = "v")]
    pub pkce_verifier: String,
    /// Where to go after sign-in (a local path).
    #[serde(rename = "x")]
    pub next: String,
    #[serde(rename = "t")]
    pub created_at: UnixTime,
}

/// The cookie carrying `p`, living as long as a pending sign-in (`ttl_secs`).
pub fn cookie(
    scheme: Scheme,
    secret: &PracticeSecret,
    p: &Pending,
    ttl_secs: i64,
) -> Cookie<'static> {
    // Serialising plain strings and a number cannot fail.
    let json = serde_json::to_vec(p).unwrap_or_default();
    let sealed = secret.seal(PURPOSE, PURPOSE, &json);
    let mut c = host_only_cookie(name(scheme, &p.state_hash), scheme, sealed);
    c.set_max_age(CookieDuration::seconds(ttl_secs.max(1)));
    c
}

/// A cookie that removes the one named `name`.
fn removal_named(scheme: Scheme, name: String) -> Cookie<'static> {
    let mut c = host_only_cookie(name, scheme, String::new());
    c.set_max_age(CookieDuration::ZERO);
    c
}

/// The cookie that removes the pending sign-in of `state_hash`.
pub fn removal(scheme: Scheme, state_hash: &str) -> Cookie<'static> {
    removal_named(scheme, name(scheme, state_hash))
}

/// Opens a cookie value: `None` if it is not a seal of ours.
fn open(secret: &PracticeSecret, value: &str) -> Option<Pending> {
    if value.is_empty() || value.len() > MAX_VALUE {
        return None;
    }
    let json = secret.open(PURPOSE, PURPOSE, value).ok()?;
    serde_json::from_slice(&json).ok()
}

/// What the browser presents for the state hash `state_hash`.
pub enum Presented {
    /// No cookie of that sign-in: unknown state, another browser's, or already used.
    Missing,
    /// A cookie of that name that does not open or does not belong to the state, or whose
    /// sign-in expired.
    Invalid,
    /// This browser's pending sign-in.
    Found(Pending),
}

/// The pending sign-in of `state_hash` this browser presents, valid at `now`.
pub fn presented(
    req: &HttpRequest,
    scheme: Scheme,
    secret: &PracticeSecret,
    state_hash: &str,
    now: UnixTime,
    ttl_secs: i64,
) -> Presented {
    let Some(c) = req.cookie(&name(scheme, state_hash)) else {
        return Presented::Missing;
    };
    match open(secret, c.value()) {
        // Hashes of random values: comparing them reveals nothing about either value.
        Some(p)
            if p.state_hash == state_hash
                && p.created_at <= now
                && now - p.created_at <= ttl_secs =>
        {
            Presented::Found(p)
        }
        _ => Presented::Invalid,
    }
}

/// Cookies that remove this browser's oldest pending sign-ins so that, with one more, it
/// keeps at most [`MAX_PENDING_PER_BROWSER`]; ones that do not open go as well.
pub fn make_room(
    req: &HttpRequest,
    scheme: Scheme,
    secret: &PracticeSecret,
) -> Vec<Cookie<'static>> {
    let prefix = prefix(scheme);
    let Ok(cookies) = req.cookies() else {
        return Vec::new();
    };
    let mut held: Vec<(UnixTime, String)> = Vec::new();
    let mut gone = Vec::new();
    for c in cookies.iter().filter(|c| c.name().starts_with(prefix)) {
        match open(secret, c.value()) {
            Some(p) => held.push((p.created_at, c.name().to_owned())),
            None => gone.push(c.name().to_owned()),
        }
    }
    held.sort();
    let excess = (held.len() + 1).saturating_sub(MAX_PENDING_PER_BROWSER);
    gone.extend(held.into_iter().take(excess).map(|(_, n)| n));
    gone.into_iter().map(|n| removal_named(scheme, n)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    /// A fresh practice secret (`n` only tells the calls apart for the reader).
    fn secret(_n: u8) -> PracticeSecret {
        PracticeSecret::generate()
    }

    fn pending(state: &str, at: UnixTime) -> Pending {
        Pending {
            state_hash: state_hash(state),
            nonce: "nonce".into(),
            pkce_verifier: "verifier".into(),
            next: "/chat".into(),
            created_at: at,
        }
    }

    fn with(cookies: &[Cookie<'static>]) -> actix_web::HttpRequest {
        let mut req = TestRequest::default();
        for c in cookies {
            req = req.cookie(Cookie::new(c.name().to_owned(), c.value().to_owned()));
        }
        req.to_http_request()
    }

    #[test]
    fn a_pending_sign_in_opens_only_in_its_browser_for_its_state_and_within_its_time() {
        let s = secret(1);
        let p = pending("state-a", 1000);
        let c = cookie(Scheme::Http, &s, &p, 600);
        let req = with(std::slice::from_ref(&c));
        let h = state_hash("state-a");
        assert!(matches!(
            presented(&req, Scheme::Http, &s, &h, 1200, 600),
            Presented::Found(found) if found == p
        ));
        // Another state, another browser (no cookie), too late, another practice's secret.
        assert!(matches!(
            presented(&req, Scheme::Http, &s, &state_hash("state-b"), 1200, 600),
            Presented::Missing
        ));
        assert!(matches!(
            presented(&with(&[]), Scheme::Http, &s, &h, 1200, 600),
            Presented::Missing
        ));
        assert!(matches!(
            presented(&req, Scheme::Http, &s, &h, 1601, 600),
            Presented::Invalid
        ));
        assert!(matches!(
            presented(&req, Scheme::Http, &secret(2), &h, 1200, 600),
            Presented::Invalid
        ));
        // https reads the `__Host-` name only.
        assert!(matches!(
            presented(&req, Scheme::Https, &s, &h, 1200, 600),
            Presented::Missing
        ));
    }

    #[test]
    fn a_cookie_moved_to_another_states_name_does_not_open_for_it() {
        let s = secret(1);
        let a = cookie(Scheme::Http, &s, &pending("state-a", 1000), 600);
        let hb = state_hash("state-b");
        let moved = Cookie::new(name(Scheme::Http, &hb), a.value().to_owned());
        let req = with(&[moved]);
        assert!(matches!(
            presented(&req, Scheme::Http, &s, &hb, 1100, 600),
            Presented::Invalid
        ));
    }

    #[test]
    fn tampered_or_oversized_values_do_not_open() {
        let s = secret(1);
        let c = cookie(Scheme::Http, &s, &pending("state-a", 1000), 600);
        let mut v = c.value().to_owned();
        let last = v.pop().map_or('A', |ch| if ch == 'A' { 'B' } else { 'A' });
        v.push(last);
        assert_eq!(open(&s, &v), None);
        assert_eq!(open(&s, ""), None);
        assert_eq!(open(&s, &"A".repeat(MAX_VALUE + 1)), None);
    }

    #[test]
    fn a_browser_keeps_its_newest_sign_ins_only() {
        let s = secret(1);
        let cookies: Vec<_> = (0..MAX_PENDING_PER_BROWSER + 2)
            .map(|i| {
                cookie(
                    Scheme::Http,
                    &s,
                    &pending(&format!("state-{i}"), 1000 + i as i64),
                    600,
                )
            })
            .collect();
        let mut all = cookies.clone();
        all.push(Cookie::new("kollegium-login-ffff", "kaputt"));
        let removed: Vec<String> = make_room(&with(&all), Scheme::Http, &s)
            .iter()
            .map(|c| c.name().to_owned())
            .collect();
        // The unreadable one and the three oldest go: five remain, the new one makes six.
        assert_eq!(removed.len(), 4, "{removed:?}");
        assert!(removed.contains(&"kollegium-login-ffff".to_owned()));
        for old in &cookies[..3] {
            assert!(removed.contains(&old.name().to_owned()));
        }
        assert!(make_room(&with(&cookies[..3]), Scheme::Http, &s).is_empty());
    }

    #[test]
    fn cookie_flags() {
        let s = secret(1);
        let c = cookie(Scheme::Https, &s, &pending("state-a", 1000), 600);
        assert!(c.name().starts_with("__Host-kollegium-login-"));
        assert_eq!(c.secure(), Some(true));
        assert_eq!(c.http_only(), Some(true));
        assert_eq!(c.path(), Some("/"));
        assert_eq!(c.domain(), None);
        assert_eq!(c.max_age(), Some(CookieDuration::seconds(600)));
        let r = removal(Scheme::Http, &state_hash("state-a"));
        assert_eq!(r.max_age(), Some(CookieDuration::ZERO));
        assert!(r.name().starts_with("kollegium-login-"));
    }
}
