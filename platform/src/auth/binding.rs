//! Browser binding of pending sign-ins (login CSRF, RFC 9700 §4.7.1): `/auth/login` gives
//! the browser a random value in a short-lived cookie and stores only its SHA-256 with the
//! pending sign-in; `/auth/callback` completes a sign-in only in a browser presenting it.
//! Without it, a callback link (`code` + `state`) an attacker obtained for their own
//! account would sign whoever opens it in as the attacker.
//!
//! One binding per browser, reused by every sign-in it starts while the cookie lives: two
//! tabs signing in at once share it (a binding per sign-in under one cookie name would
//! overwrite the other tab's). The callback removes the cookie once no pending sign-in of
//! the browser is left. Under https the `__Host-` name keeps sibling practices
//! (`*.<base>`) from planting a binding of their choosing; over plain http (development
//! only) they could, as with any cookie.

use actix_web::HttpRequest;
use actix_web::cookie::{Cookie, time::Duration as CookieDuration};
use kollegium_tenants::secrets::random_token;
use kollegium_tenants::web::Scheme;
use sha2::{Digest, Sha256};

use super::session::{host_only_cookie, host_only_name};

/// Random bytes in a binding (base64url without padding in the cookie).
const BINDING_BYTES: usize = 32;
/// Characters of an encoded binding.
const BINDING_CHARS: usize = 43;

pub fn cookie_name(scheme: Scheme) -> &'static str {
    host_only_name(scheme, "__Host-kollegium-login", "kollegium-login")
}

/// The binding cookie, living as long as a pending sign-in (`ttl_secs`).
pub fn cookie(scheme: Scheme, binding: &str, ttl_secs: i64) -> Cookie<'static> {
    let mut c = host_only_cookie(cookie_name(scheme), scheme, binding.to_owned());
    c.set_max_age(CookieDuration::seconds(ttl_secs.max(1)));
    c
}

pub fn removal(scheme: Scheme) -> Cookie<'static> {
    let mut c = host_only_cookie(cookie_name(scheme), scheme, String::new());
    c.set_max_age(CookieDuration::ZERO);
    c
}

/// The well-formed binding the browser presents, if any.
pub fn presented(req: &HttpRequest, scheme: Scheme) -> Option<String> {
    let c = req.cookie(cookie_name(scheme))?;
    let v = c.value();
    let well_formed = v.len() == BINDING_CHARS
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    well_formed.then(|| v.to_owned())
}

/// The binding for a new sign-in: the browser's current one, else a fresh one.
pub fn for_login(req: &HttpRequest, scheme: Scheme) -> String {
    presented(req, scheme).unwrap_or_else(|| random_token(BINDING_BYTES))
}

/// What is stored of a binding.
pub fn hash(binding: &str) -> String {
    hex::encode(Sha256::digest(binding.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    #[test]
    fn fresh_bindings_are_well_formed_and_random() {
        let req = TestRequest::default().to_http_request();
        let a = for_login(&req, Scheme::Http);
        let b = for_login(&req, Scheme::Http);
        assert_ne!(a, b);
        let req = TestRequest::default()
            .cookie(Cookie::new("kollegium-login", a.clone()))
            .to_http_request();
        assert_eq!(presented(&req, Scheme::Http).as_deref(), Some(a.as_str()));
        assert_eq!(
            for_login(&req, Scheme::Http),
            a,
            "a browser keeps its binding"
        );
        assert_eq!(
            presented(&req, Scheme::Https),
            None,
            "https reads __Host- only"
        );
    }

    #[test]
    fn malformed_bindings_are_ignored() {
        for v in ["", "kurz", &"a".repeat(44), &format!("{}=", "a".repeat(42))] {
            let req = TestRequest::default()
                .cookie(Cookie::new("kollegium-login", v.to_owned()))
                .to_http_request();
            assert_eq!(presented(&req, Scheme::Http), None, "{v:?}");
        }
    }

    #[test]
    fn cookie_flags() {
        let c = cookie(Scheme::Https, "x", 600);
        assert_eq!(c.name(), "__Host-kollegium-login");
        assert_eq!(c.secure(), Some(true));
        assert_eq!(c.http_only(), Some(true));
        assert_eq!(c.path(), Some("/"));
        assert_eq!(c.domain(), None);
        assert_eq!(c.max_age(), Some(CookieDuration::seconds(600)));
        assert_eq!(removal(Scheme::Http).max_age(), Some(CookieDuration::ZERO));
    }
}
