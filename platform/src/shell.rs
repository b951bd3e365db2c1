//! The one page builder of the workspace: every workspace page's layout comes from the
//! practice origin's shell ([`kollegium_tenants::web::shell`]), with the page's app marked.
//! The workspace contributes its part of the navigation ([`entries`]: the start page and
//! every app of the app list, [`crate::app::navigation`]); the binary composes it with the
//! IdP's sections. No page builds a navigation of its own.

use kollegium_tenants::web::shell::{self, Audience, Entry, Viewer};
use kollegium_tenants::web::{CsrfToken, Layout, SearchField};

use crate::auth::Member;

/// Where "Abmelden" posts on workspace pages (ends the workspace session and, through the
/// IdP's end-session endpoint, the sign-in).
pub const LOGOUT: &str = "/auth/logout";

/// The layout of a workspace page for a signed-in member; `active` is the id of the app
/// the page belongs to ([`crate::app::START`] for the start page). The composition puts the
/// live channel's script ([`crate::live::SCRIPT`]) into the shell, so every page of the
/// practice origin, the IdP's included, holds the one socket.
pub fn page(m: &Member, csrf: &CsrfToken, active: &str) -> Layout {
    let viewer = Viewer {
        name: &m.member.display_name,
        is_admin: m.member.is_admin,
        roles: m.member.role_labels(),
        logout_href: LOGOUT,
    };
    shell::installed().layout(m.tenant.display_name(), csrf, &viewer, active)
}

/// The workspace's entries of the shell's navigation: the start page, then every app's entry
/// by order, each with its app's id as section.
pub fn entries() -> Vec<Entry> {
    crate::app::navigation()
        .iter()
        .map(|(id, e)| Entry::new(id, e.label, e.href, Audience::Everyone))
        .collect()
}

/// The scripts every signed-in page of the practice origin loads: the live channel's, then
/// each app's [`crate::app::WorkspaceApp::shell_scripts`] (the composition puts them into the
/// shell, so the IdP's pages have them too).
pub fn scripts() -> Vec<String> {
    let mut all = vec![crate::live::SCRIPT.to_owned()];
    for app in crate::app::apps() {
        all.extend(app.shell_scripts().iter().map(|s| (*s).to_owned()));
    }
    all
}

/// The practice's one start page (the workspace's, [`crate::app::START`]).
pub fn home() -> &'static str {
    crate::app::navigation()
        .iter()
        .find(|(id, _)| *id == crate::app::START)
        .map_or("/", |(_, e)| e.href)
}

/// The search field of the shell: the workspace's search over every app (`/search?q=`).
pub fn search_field() -> SearchField {
    SearchField {
        action: "/search".into(),
        name: "q".into(),
        label: "Suche".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_workspaces_entries_come_from_the_app_list() {
        let got: Vec<_> = entries()
            .into_iter()
            .map(|e| (e.section, e.label, e.href))
            .collect();
        let expected: Vec<_> = crate::app::navigation()
            .iter()
            .map(|(id, e)| (id.to_string(), e.label.to_owned(), e.href.to_owned()))
            .collect();
        assert_eq!(got, expected);
        assert_eq!(
            got[..2],
            [
                ("start".into(), "Start".into(), "/".into()),
                ("chat".into(), "Chat".into(), "/chat".into())
            ]
        );
        assert!(entries().iter().all(|e| e.audience == Audience::Everyone));
        assert_eq!(home(), "/");
    }
}
