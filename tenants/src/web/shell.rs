//! The one shell of a practice origin: the same top bar, navigation, search field and user
//! menu on every page, whichever crate renders it (the workspace's apps, "Mein Konto" and
//! the administration of the IdP).
//!
//! `tenants` names no app: the shell is data. The binary composes it once at start-up from
//! the workspace's app list and the IdP's sections ([`install`]); a page asks for its
//! [`Layout`] with the viewer and the id of the section it belongs to
//! ([`Shell::layout`]). Like [`super::assets::register`], the composition is process-wide:
//! it is a fact of the binary (compiled-in lists), not configuration, so every server a
//! process starts has the same one. Without an installed shell, pages get the minimal bar.

use std::sync::{Arc, LazyLock, RwLock};

use actix_web::HttpRequest;
use futures_util::future::LocalBoxFuture;

use super::CsrfToken;
use super::layout::{Layout, NavItem, SearchField, SubNav};

/// Who sees an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    Everyone,
    /// Practice administrators only (the IdP's admin flag, the `is_admin` claim).
    Admins,
}

/// An entry of the navigation or of the user menu.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The id of the section it leads to; a page of that section marks it active.
    pub section: String,
    pub label: String,
    pub href: String,
    pub audience: Audience,
}

impl Entry {
    pub fn new(section: &str, label: &str, href: &str, audience: Audience) -> Self {
        Self {
            section: section.to_owned(),
            label: label.to_owned(),
            href: href.to_owned(),
            audience,
        }
    }
}

/// The shell as the binary composes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shell {
    /// The practice's one start page (the brand in the top bar leads there).
    pub home: String,
    /// The main navigation, in order.
    pub nav: Vec<Entry>,
    /// The search field of the top bar.
    pub search: Option<SearchField>,
    /// Links of the user menu, above "Abmelden".
    pub user_menu: Vec<Entry>,
    /// Registered assets (by name) every signed-in page of the shell loads, whoever renders
    /// it: e.g. the workspace's live channel, which keeps the navigation's counts current.
    pub scripts: Vec<String>,
}

impl Default for Shell {
    /// No navigation: the minimal bar with the brand leading to `/`.
    fn default() -> Self {
        Self {
            home: "/".into(),
            nav: Vec::new(),
            search: None,
            user_menu: Vec::new(),
            scripts: Vec::new(),
        }
    }
}

/// The signed-in person a page is rendered for.
#[derive(Debug, Clone)]
pub struct Viewer<'a> {
    pub name: &'a str,
    pub is_admin: bool,
    /// Role labels (the shared catalogue's), shown in the user menu.
    pub roles: Vec<String>,
    /// Where "Abmelden" posts to: the owner of the page ends its own session (and with it
    /// the others).
    pub logout_href: &'a str,
}

fn visible(audience: Audience, viewer: &Viewer<'_>) -> bool {
    match audience {
        Audience::Everyone => true,
        Audience::Admins => viewer.is_admin,
    }
}

fn items(entries: &[Entry], viewer: &Viewer<'_>, active: &str) -> Vec<NavItem> {
    entries
        .iter()
        .filter(|e| visible(e.audience, viewer))
        .map(|e| NavItem {
            label: e.label.clone(),
            href: e.href.clone(),
            active: !active.is_empty() && e.section == active,
        })
        .collect()
}

impl Shell {
    /// The layout of a page of the shell for `viewer`; `active` is the id of the section the
    /// page belongs to (its navigation or user-menu entry is marked).
    pub fn layout(
        &self,
        practice: &str,
        csrf: &CsrfToken,
        viewer: &Viewer<'_>,
        active: &str,
    ) -> Layout {
        let mut l = Layout::practice(practice);
        l.home_href = self.home.clone();
        l.csrf_token = Some(csrf.0.clone());
        l.nav = items(&self.nav, viewer, active);
        l.search = self.search.clone();
        l.user_name = Some(viewer.name.to_owned());
        l.user_roles = (!viewer.roles.is_empty()).then(|| viewer.roles.join(" · "));
        l.menu = items(&self.user_menu, viewer, active);
        l.logout_href = Some(viewer.logout_href.to_owned());
        for name in &self.scripts {
            l = l.with_script(name);
        }
        l
    }
}

impl Shell {
    /// What every member finds in the navigation besides the start page (the apps' labels,
    /// e.g. one label per app): the words pages use to say what the workspace offers, so they name
    /// only what exists.
    pub fn offers(&self) -> Vec<String> {
        self.nav
            .iter()
            .filter(|e| e.audience == Audience::Everyone && e.href != self.home)
            .map(|e| e.label.clone())
            .collect()
    }
}

/// Items as German prose: `A`, `A und B`, `A, B und C`.
pub fn german_list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} und {last}", init.join(", ")),
    }
}

impl Layout {
    /// Adds the sections of the page's area, with the entry whose href is `active` marked.
    pub fn with_subnav(mut self, label: &str, entries: &[(&str, &str)], active: &str) -> Self {
        self.subnav = Some(SubNav {
            label: label.to_owned(),
            items: entries
                .iter()
                .map(|(label, href)| NavItem {
                    label: (*label).to_owned(),
                    href: (*href).to_owned(),
                    active: *href == active,
                })
                .collect(),
        });
        self
    }
}

/// The signed-in person behind a request, as the composition finds them (pages rendered
/// without their owner's help, such as error pages, need it for the shell).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedIn {
    pub name: String,
    pub is_admin: bool,
    pub roles: Vec<String>,
    pub logout_href: String,
}

impl SignedIn {
    pub fn viewer(&self) -> Viewer<'_> {
        Viewer {
            name: &self.name,
            is_admin: self.is_admin,
            roles: self.roles.clone(),
            logout_href: &self.logout_href,
        }
    }
}

/// Finds who is signed in on a request (installed by the composition: the IdP's session).
pub type FindSignedIn =
    Arc<dyn Fn(&HttpRequest) -> LocalBoxFuture<'static, Option<SignedIn>> + Send + Sync>;

static SIGNED_IN: LazyLock<RwLock<Option<FindSignedIn>>> = LazyLock::new(|| RwLock::new(None));

/// Installs how pages find the signed-in person (at composition time, like [`install`]).
pub fn install_signed_in(find: FindSignedIn) {
    match SIGNED_IN.write() {
        Ok(mut s) => *s = Some(find),
        Err(poisoned) => *poisoned.into_inner() = Some(find),
    }
}

/// Who is signed in on `req`, if anyone (nobody before [`install_signed_in`]).
pub async fn signed_in(req: &HttpRequest) -> Option<SignedIn> {
    let find = match SIGNED_IN.read() {
        Ok(s) => s.clone(),
        Err(poisoned) => poisoned.into_inner().clone(),
    }?;
    find(req).await
}

static INSTALLED: LazyLock<RwLock<Arc<Shell>>> =
    LazyLock::new(|| RwLock::new(Arc::new(Shell::default())));

/// Installs the composed shell for every page of this process (at composition time).
pub fn install(shell: Shell) {
    match INSTALLED.write() {
        Ok(mut s) => *s = Arc::new(shell),
        Err(poisoned) => *poisoned.into_inner() = Arc::new(shell),
    }
}

/// The installed shell (the minimal one before [`install`]).
pub fn installed() -> Arc<Shell> {
    match INSTALLED.read() {
        Ok(s) => s.clone(),
        Err(poisoned) => poisoned.into_inner().clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shell() -> Shell {
        Shell {
            home: "/".into(),
            nav: vec![
                Entry::new("start", "Start", "/", Audience::Everyone),
                Entry::new("a", "App", "/a", Audience::Everyone),
                Entry::new("admin", "Verwaltung", "/admin", Audience::Admins),
            ],
            search: Some(SearchField {
                action: "/search".into(),
                name: "q".into(),
                label: "Suche".into(),
            }),
            user_menu: vec![Entry::new(
                "account",
                "Mein Konto",
                "/account",
                Audience::Everyone,
            )],
            scripts: vec!["shell.js".into()],
        }
    }

    fn viewer(is_admin: bool) -> Viewer<'static> {
        Viewer {
            name: "Ines",
            is_admin,
            roles: vec!["Praxisleitung".into(), "Ärzt:in".into()],
            logout_href: "/logout",
        }
    }

    fn shown(items: &[NavItem]) -> Vec<(&str, bool)> {
        items.iter().map(|i| (i.href.as_str(), i.active)).collect()
    }

    #[test]
    fn admins_see_the_administration_others_do_not() {
        let csrf = CsrfToken("t".into());
        let l = shell().layout("Praxis", &csrf, &viewer(true), "a");
        assert_eq!(
            shown(&l.nav),
            [("/", false), ("/a", true), ("/admin", false)]
        );
        let l = shell().layout("Praxis", &csrf, &viewer(false), "a");
        assert_eq!(shown(&l.nav), [("/", false), ("/a", true)]);
        assert_eq!(l.user_roles.as_deref(), Some("Praxisleitung · Ärzt:in"));
        assert_eq!(l.logout_href.as_deref(), Some("/logout"));
        assert_eq!(l.csrf_token.as_deref(), Some("t"));
        assert_eq!(l.search, shell().search);
        // The shell's scripts come with every signed-in page, whoever renders it.
        assert_eq!(l.scripts.len(), 1);
    }

    #[test]
    fn a_user_menu_section_is_marked_and_no_entry_is_marked_for_no_section() {
        let csrf = CsrfToken("t".into());
        let l = shell().layout("Praxis", &csrf, &viewer(false), "account");
        assert_eq!(shown(&l.menu), [("/account", true)]);
        assert!(l.nav.iter().all(|i| !i.active));
        let l = shell().layout("Praxis", &csrf, &viewer(false), "");
        assert!(l.nav.iter().chain(&l.menu).all(|i| !i.active));
    }

    #[test]
    fn offers_are_the_apps_everyone_sees_in_prose() {
        assert_eq!(shell().offers(), ["App"]);
        assert!(Shell::default().offers().is_empty());
        let list = |v: &[&str]| german_list(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(list(&[]), "");
        assert_eq!(list(&["Alpha"]), "Alpha");
        assert_eq!(list(&["Alpha", "Beta"]), "Alpha und Beta");
        assert_eq!(list(&["Alpha", "Beta", "Gamma"]), "Alpha, Beta und Gamma");
    }

    #[test]
    fn the_subnav_marks_the_current_page() {
        let l = Layout::practice("Praxis").with_subnav(
            "Verwaltung",
            &[("Benutzer", "/u"), ("Geräte", "/d")],
            "/d",
        );
        let sub = l.subnav.unwrap();
        assert_eq!(sub.label, "Verwaltung");
        assert_eq!(shown(&sub.items), [("/u", false), ("/d", true)]);
    }
}
