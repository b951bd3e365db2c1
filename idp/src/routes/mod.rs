//! HTTP routes of the IdP. One file per resource; handlers are thin.

pub mod account;
pub mod admin_clients;
pub mod admin_devices;
pub mod admin_events;
pub mod admin_users;
pub mod apps;
pub mod attempt;
pub mod confirm;
pub mod done;
pub mod home;
pub mod login;
pub mod login_totp;
pub mod setup;
pub mod totp;

use actix_web::web;

pub fn configure(cfg: &mut web::ServiceConfig) {
    login::configure(cfg);
    login_totp::configure(cfg);
    setup::configure(cfg);
    home::configure(cfg);
    account::configure(cfg);
    admin_clients::configure(cfg);
    apps::configure(cfg);
    totp::configure(cfg);
    admin_users::configure(cfg);
    admin_devices::configure(cfg);
    admin_events::configure(cfg);
}

/// Longest place to return to after login. An authorization request carried along can be
/// long; `/id/authorize` refuses one whose continuation would not fit (rather than losing
/// the flow here), so this is also the bound on what a login can carry through.
pub const MAX_NEXT: usize = 8192;

/// Only local paths are accepted as a place to return to after login (up to [`MAX_NEXT`]);
/// the rules are the workspace's too ([`kollegium_tenants::web::next`]).
pub fn safe_next(next: Option<&str>) -> String {
    kollegium_tenants::web::safe_next(next, MAX_NEXT, "/id/")
}

/// `?next=...` for a redirect, URL-encoded.
pub fn next_query(next: &str) -> String {
    serde_urlencoded::to_string([("next", next)]).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn only_local_paths_are_followed() {
        assert_eq!(safe_next(Some("/id/account")), "/id/account");
        assert_eq!(safe_next(Some("/chat?x=1")), "/chat?x=1");
        for bad in [
            "//evil.com",
            "https://evil.com",
            "/\\evil.com",
            "javascript:alert(1)",
            "",
            "/a\nb",
            "/\t/evil.com",
            "/%2f/evil.com",
            "/\u{ff0f}evil.com",
        ] {
            assert_eq!(safe_next(Some(bad)), "/id/", "{bad}");
        }
        assert_eq!(safe_next(None), "/id/");
    }
}
