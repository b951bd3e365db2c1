//! The one page builder of the workspace: every workspace page's layout (practice name,
//! member menu, CSRF token) with the navigation from the app list
//! ([`crate::app::navigation`]) and the current app's entry marked. No page builds a
//! navigation of its own.

use kollegium_tenants::web::layout::NavItem;
use kollegium_tenants::web::{CsrfToken, Layout};

use crate::auth::Member;

/// The layout of a workspace page for a signed-in member; `active` is the id of the app
/// the page belongs to ([`crate::app::START`] for the start page).
pub fn page(m: &Member, csrf: &CsrfToken, active: &str) -> Layout {
    let mut l = Layout::practice(m.tenant.display_name());
    l.csrf_token = Some(csrf.0.clone());
    l.user_name = Some(m.member.display_name.clone());
    l.account_href = Some("/id/account".into());
    l.logout_href = Some("/auth/logout".into());
    l.nav = nav(active);
    l
}

/// The navigation entries with `active` marked.
pub fn nav(active: &str) -> Vec<NavItem> {
    crate::app::navigation()
        .iter()
        .map(|(id, e)| NavItem {
            label: e.label.to_owned(),
            href: e.href.to_owned(),
            active: *id == active,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_navigation_comes_from_the_app_list_with_one_entry_active() {
        let items = nav("chat");
        let expected: Vec<_> = crate::app::navigation()
            .iter()
            .map(|(_, e)| (e.label, e.href))
            .collect();
        let got: Vec<_> = items
            .iter()
            .map(|i| (i.label.as_str(), i.href.as_str()))
            .collect();
        assert_eq!(got, expected);
        assert_eq!(got[..2], [("Start", "/"), ("Chat", "/chat")]);
        let active: Vec<_> = items.iter().filter(|i| i.active).map(|i| &i.href).collect();
        assert_eq!(active, ["/chat"]);
        let start = nav(crate::app::START);
        assert!(start[0].active && start.iter().filter(|i| i.active).count() == 1);
    }
}
